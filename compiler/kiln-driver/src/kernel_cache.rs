//! Objects of the kernel library's kernels and of the runtime shims,
//! compiled once per target and reused.
//!
//! Compiling a kernel for a CPU (LLVM's whole optimisation pipeline over the
//! library's bitcode) costs about a second, and every artifact for that CPU
//! needs the same object. Each kernel symbol is compiled on its own and kept
//! in a cache folder under a key of everything the object depends on: Kiln's
//! version, the library's bitcode, the target (triple, CPU, features), the
//! optimisation level and the symbol. The object is a pure function of that
//! key, so artifacts stay byte-identical with or without the cache.
//!
//! The folder is `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln/kernels`, else
//! `$HOME/.cache/kiln/kernels`; `KILN_CACHE_DIR=off` turns the cache off.
//! Entries are written to a temporary file and renamed, so concurrent compiles
//! never see half an object; a cache that cannot be created or written is
//! skipped (the kernels are then compiled into the build folder).

use crate::error::{DriverError, Result};
use kiln_codegen::{OptLevel, Target};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use xxhash_rust::xxh3::xxh3_64;

/// Environment variable naming the cache folder (`off` disables it).
pub const CACHE_ENV: &str = "KILN_CACHE_DIR";

/// The cache folder, or `None` when caching is off or no folder is known.
fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os(CACHE_ENV) {
        Some(v) if v == "off" || v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(base.join("kiln").join("kernels"))
        }
    }
}

/// The cache folder, created if missing; `None` when caching is off or the folder cannot be made.
fn usable_cache_dir() -> Option<PathBuf> {
    cache_dir().filter(|d| std::fs::create_dir_all(d).is_ok())
}

/// The cache key of one object: `symbol` is the kernel's (or shim's) name, `bitcode` the bytes
/// it is compiled from.
fn key(target: &Target, level: OptLevel, symbol: &str, bitcode: &[u8]) -> String {
    let text = format!(
        "kiln {}|{}|{}|{}|O{}|{symbol}|{:016x}",
        env!("CARGO_PKG_VERSION"),
        target.triple(),
        target.cpu(),
        target.features(),
        level.number(),
        xxh3_64(bitcode)
    );
    format!("{symbol}-{:016x}.o", xxh3_64(text.as_bytes()))
}

/// Object files holding the kernels `used`, one per kernel in symbol order,
/// compiled for `target`: from the cache where possible, else compiled (and
/// cached, or written into `build_dir` when there is no usable cache).
///
/// Each kernel is its own LLVM module in its own context, so the ones to
/// compile are taken from a queue by up to `available_parallelism` threads
/// (a cold compile of ResNet-50's five kernels: 4.7 s on one core of a
/// 2-core Zen 4, 2.6 s on both). The objects do not depend on which thread
/// compiled them.
pub fn kernel_objects(
    target: &Target,
    level: OptLevel,
    used: &[String],
    build_dir: &Path,
) -> Result<Vec<PathBuf>> {
    objects_in(usable_cache_dir(), target, level, used, build_dir)
}

/// [`kernel_objects`] with the cache folder `dir` (`None`: no cache).
fn objects_in(
    dir: Option<PathBuf>,
    target: &Target,
    level: OptLevel,
    used: &[String],
    build_dir: &Path,
) -> Result<Vec<PathBuf>> {
    let mut symbols: Vec<&str> = used.iter().map(String::as_str).collect();
    symbols.sort_unstable();
    symbols.dedup();
    let bitcode = kiln_codegen::kernels::library_bitcode(target)?;
    let one = |symbol: &str| {
        let name = key(target, level, symbol, bitcode);
        cached(dir.as_deref(), build_dir, &name, || {
            Ok(kiln_codegen::kernels::compile_kernels(
                target,
                level,
                &[symbol],
            )?)
        })
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(symbols.len());
    if workers <= 1 {
        return symbols.into_iter().map(one).collect();
    }
    // LLVM's target registry is filled once, before the threads start.
    target.initialize_llvm();
    let next = AtomicUsize::new(0);
    let done: Vec<Mutex<Option<Result<PathBuf>>>> =
        symbols.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(symbol) = symbols.get(i) else { break };
                let object = one(symbol);
                *done[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(object);
            });
        }
    });
    done.into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .expect("every queued kernel was compiled")
        })
        .collect()
}

/// The object of a runtime shim (`name`, an `llvm`-dialect module that does not depend on the
/// model), compiled for `target` at `level`: from the cache, else compiled and cached (or
/// written into `build_dir`). The key holds the module's text, so a changed shim is rebuilt.
pub fn shim_object(
    target: &Target,
    level: OptLevel,
    name: &str,
    mlir: &str,
    build_dir: &Path,
) -> Result<PathBuf> {
    let dir = usable_cache_dir();
    let file = key(target, level, name, mlir.as_bytes());
    cached(dir.as_deref(), build_dir, &file, || {
        Ok(kiln_codegen::emit_with_pipeline(
            mlir,
            target,
            "",
            level,
            kiln_codegen::Emit::Obj,
        )?)
    })
}

/// The object `name`: the cached file when `dir` holds it, else `compile`'s bytes, stored in
/// `dir` (or in `build_dir` when there is no usable cache).
fn cached(
    dir: Option<&Path>,
    build_dir: &Path,
    name: &str,
    compile: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<PathBuf> {
    if let Some(path) = dir.map(|d| d.join(name)) {
        if path.is_file() {
            return Ok(path);
        }
    }
    let obj = compile()?;
    if let Some(dir) = dir {
        let path = dir.join(name);
        match store(dir, &path, &obj) {
            Ok(()) => return Ok(path),
            // A read-only or full cache: the build folder holds the object.
            Err(e) => {
                tracing::debug!(error = %e, dir = %dir.display(), "kernel cache not writable")
            }
        }
    }
    let local = build_dir.join(name);
    std::fs::write(&local, obj).map_err(|e| DriverError::io("write", &local, e))?;
    Ok(local)
}

/// Writes `obj` to `path` atomically (a temporary file in `dir`, renamed).
fn store(dir: &Path, path: &Path, obj: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kernel-")
        .tempfile_in(dir)?;
    tmp.write_all(obj)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_cached_object_is_compiled_once_and_read_back() {
        let cache = tempfile::tempdir().unwrap();
        let build = tempfile::tempdir().unwrap();
        let compiles = Cell::new(0);
        let compile = || {
            compiles.set(compiles.get() + 1);
            Ok(b"object".to_vec())
        };
        let first = cached(Some(cache.path()), build.path(), "k-1.o", compile).unwrap();
        let second = cached(Some(cache.path()), build.path(), "k-1.o", compile).unwrap();
        assert_eq!(compiles.get(), 1);
        assert_eq!(first, cache.path().join("k-1.o"));
        assert_eq!(second, first);
        assert_eq!(std::fs::read(&first).unwrap(), b"object");
        // Only the object itself is left in the cache (no temporary file).
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
    }

    #[test]
    fn without_a_usable_cache_the_object_goes_to_the_build_folder() {
        let build = tempfile::tempdir().unwrap();
        let path = cached(None, build.path(), "k-2.o", || Ok(b"a".to_vec())).unwrap();
        assert_eq!(path, build.path().join("k-2.o"));
        assert_eq!(std::fs::read(&path).unwrap(), b"a");
        // A cache "folder" that is a file cannot be written: the build folder again.
        let not_dir = build.path().join("file");
        std::fs::write(&not_dir, b"").unwrap();
        let path = cached(Some(&not_dir), build.path(), "k-3.o", || Ok(b"b".to_vec())).unwrap();
        assert_eq!(path, build.path().join("k-3.o"));
    }

    /// Kernels compiled on several threads are the objects compiled one at a
    /// time, in symbol order (duplicates once), whether from the cache or
    /// from the build folder.
    #[test]
    fn kernels_compiled_in_parallel_are_the_serial_objects_in_symbol_order() {
        let target = Target::parse("x86-64-v3").unwrap();
        let used: Vec<String> = ["pool2d", "copy", "gpool", "copy"]
            .iter()
            .map(|k| format!("kiln_k_{k}_w8r16"))
            .collect();
        let mut want = used.clone();
        want.sort();
        want.dedup();
        let cache = tempfile::tempdir().unwrap();
        let build = tempfile::tempdir().unwrap();
        for dir in [Some(cache.path().to_path_buf()), None] {
            let got = objects_in(dir, &target, OptLevel::O3, &used, build.path()).unwrap();
            assert_eq!(got.len(), want.len());
            for (path, symbol) in got.iter().zip(&want) {
                let name = path.file_name().unwrap().to_string_lossy();
                assert!(
                    name.starts_with(&format!("{symbol}-")),
                    "{name} for {symbol}"
                );
                let serial =
                    kiln_codegen::kernels::compile_kernels(&target, OptLevel::O3, &[symbol])
                        .unwrap();
                assert!(std::fs::read(path).unwrap() == serial, "{symbol} differs");
            }
        }
    }

    #[test]
    fn keys_differ_by_level_name_and_source() {
        let t = Target::host().unwrap();
        let k = |level, name, src: &[u8]| key(&t, level, name, src);
        let base = k(OptLevel::O2, "parallel-shim", b"module {}");
        assert_ne!(base, k(OptLevel::O0, "parallel-shim", b"module {}"));
        assert_ne!(base, k(OptLevel::O2, "gpu-shim", b"module {}"));
        assert_ne!(base, k(OptLevel::O2, "parallel-shim", b"module { }"));
        assert!(base.starts_with("parallel-shim-") && base.ends_with(".o"));
    }
}
