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

/// The cache key of one kernel object.
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
pub fn kernel_objects(
    target: &Target,
    level: OptLevel,
    used: &[String],
    build_dir: &Path,
) -> Result<Vec<PathBuf>> {
    let mut symbols: Vec<&str> = used.iter().map(String::as_str).collect();
    symbols.sort_unstable();
    symbols.dedup();
    let dir = cache_dir().filter(|d| std::fs::create_dir_all(d).is_ok());
    let bitcode = kiln_codegen::kernels::library_bitcode(target)?;
    symbols
        .into_iter()
        .map(|symbol| {
            let name = key(target, level, symbol, bitcode);
            cached(dir.as_deref(), build_dir, &name, || {
                Ok(kiln_codegen::kernels::compile_kernels(
                    target,
                    level,
                    &[symbol],
                )?)
            })
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
    let dir = cache_dir().filter(|d| std::fs::create_dir_all(d).is_ok());
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
