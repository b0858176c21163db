//! Tests of the C library from C: the misuse checks (`fixtures/misuse.c`),
//! concurrent runs with per-thread last errors (`fixtures/concurrent.c`) and a
//! statically linked program (`fixtures/static_link.c`), all built with `cc`
//! against `kiln.h` and run on the hand-written artifact
//! `runtime/fixtures/affine.c` (y = x * w + 1). The C programs compute their
//! expected values from the fixture's constants, independently of the runtime.
//!
//! They run twice: against this test build's libraries, and against the
//! shipped ones (`runtime/scripts/build-c-lib.sh`: the no_std
//! `runtime-release` build), whose stripped size must stay within budget.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Budget for the shipped shared library, stripped (about 165 KiB with the CUDA, HIP and
/// Vulkan back ends, 51 KiB without them).
const SIZE_BUDGET_BYTES: u64 = 200 * 1024;
/// Budget for the static library: one relocatable object (`ld -r`), which keeps every
/// function of the device back ends (Vulkan's `ash` tables most of all) that a final link
/// of a CPU-only program drops again; about 405 KiB with the device-memory API.
const ARCHIVE_BUDGET_BYTES: u64 = 420 * 1024;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn include_dir() -> PathBuf {
    crate_dir().join("../include")
}

fn fixture(name: &str) -> PathBuf {
    crate_dir().join("tests/fixtures").join(name)
}

/// `target/<profile>`, the parent of the test binary's `deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn cc(args: &[&OsStr]) {
    let compiler = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let output = Command::new(&compiler)
        .args(args)
        .output()
        .expect("run the C compiler");
    assert!(
        output.status.success(),
        "cc {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run(exe: &Path, args: &[&Path]) -> String {
    let output = Command::new(exe)
        .args(args)
        .env("KILN_NUM_THREADS", "2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}: stdout:\n{stdout}\nstderr:\n{}",
        exe.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Builds the fixtures and runs every C check against the libraries in `lib`.
fn check_c_library(lib: &Path) {
    let so = lib.join("libkiln_runtime.so");
    let archive = lib.join("libkiln_runtime.a");
    assert!(so.exists(), "{}", so.display());
    assert!(archive.exists(), "{}", archive.display());
    let dir = tempfile::tempdir().unwrap();
    let include = format!("-I{}", include_dir().display());
    let affine = crate_dir().join("../fixtures/affine.c");

    let artifact = dir.path().join("affine.so");
    cc(&[
        "-shared".as_ref(),
        "-fPIC".as_ref(),
        "-O2".as_ref(),
        include.as_ref(),
        affine.as_os_str(),
        "-o".as_ref(),
        artifact.as_os_str(),
    ]);
    // Sealed as `kiln compile` seals its artifacts (kiln_model_load checks it).
    kiln_runtime::seal_file(
        &artifact,
        &kiln_runtime::integrity::Record {
            abi_version: kiln_runtime::abi::ABI_VERSION,
            symbol: "kiln_artifact".into(),
            arch: kiln_runtime::cpu::host_arch().into(),
            cpu: "generic".into(),
            features: String::new(),
            weights: None,
            alternates: Vec::new(),
        },
    )
    .unwrap();
    let link_dir = format!("-L{}", lib.display());
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    for program in ["misuse", "concurrent"] {
        let exe = dir.path().join(program);
        cc(&[
            "-std=c11".as_ref(),
            "-D_DEFAULT_SOURCE".as_ref(),
            "-Wall".as_ref(),
            "-Werror".as_ref(),
            include.as_ref(),
            fixture(&format!("{program}.c")).as_os_str(),
            "-o".as_ref(),
            exe.as_os_str(),
            link_dir.as_ref(),
            "-lkiln_runtime".as_ref(),
            rpath.as_ref(),
            "-lpthread".as_ref(),
            "-lm".as_ref(),
        ]);
        assert!(run(&exe, &[&artifact]).contains("all checks passed"));
    }

    let object = dir.path().join("affine.o");
    cc(&[
        "-c".as_ref(),
        "-O2".as_ref(),
        include.as_ref(),
        affine.as_os_str(),
        "-o".as_ref(),
        object.as_os_str(),
    ]);
    let exe = dir.path().join("static_link");
    cc(&[
        "-std=c11".as_ref(),
        include.as_ref(),
        fixture("static_link.c").as_os_str(),
        object.as_os_str(),
        archive.as_os_str(),
        "-lpthread".as_ref(),
        "-ldl".as_ref(),
        "-lm".as_ref(),
        "-o".as_ref(),
        exe.as_os_str(),
    ]);
    assert!(run(&exe, &[]).contains("static_link: ok"));
}

#[test]
fn c_programs_pass_against_the_test_build() {
    check_c_library(&profile_dir());
}

/// Global symbols an object or library defines (`nm`).
fn defined_globals(path: &Path, dynamic: bool) -> Vec<String> {
    let mut cmd = Command::new("nm");
    if dynamic {
        cmd.arg("-D");
    }
    let output = cmd
        .args(["-g", "--defined-only"])
        .arg(path)
        .output()
        .expect("run nm");
    assert!(output.status.success(), "nm {}", path.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

#[test]
fn shipped_libraries_are_small_export_only_the_api_and_pass() {
    // A separate target directory: this test's own build holds the lock on
    // the current one.
    let target = profile_dir().parent().unwrap().join("kiln-c-package");
    let out = target.join("kiln-c");
    let script = crate_dir().join("../scripts/build-c-lib.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run build-c-lib.sh");
    assert!(
        output.status.success(),
        "build-c-lib.sh failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lib = out.join("lib");
    for (name, budget) in [
        ("libkiln_runtime.so", SIZE_BUDGET_BYTES),
        ("libkiln_runtime.a", ARCHIVE_BUDGET_BYTES),
    ] {
        let size = std::fs::metadata(lib.join(name)).unwrap().len();
        assert!(size <= budget, "{name} is {size} bytes, budget {budget}");
    }
    // The archive is self-contained Rust with only the C API visible, so it
    // can be linked next to other Rust static libraries.
    let globals = defined_globals(&lib.join("libkiln_runtime.a"), false);
    assert!(
        globals.iter().all(|s| s.starts_with("kiln_")),
        "{globals:?}"
    );
    assert!(globals.iter().any(|s| s == "kiln_model_run"), "{globals:?}");
    // The shared library exports exactly the 24 functions of kiln.h.
    let exports = defined_globals(&lib.join("libkiln_runtime.so"), true);
    assert!(
        exports.iter().all(|s| s.starts_with("kiln_")),
        "{exports:?}"
    );
    assert_eq!(exports.len(), 24, "{exports:?}");
    check_c_library(&lib);
}
