//! Build steps of kiln-codegen:
//! - the CPU kernel library (`kernels/kernels.c`) compiled to LLVM bitcode, once per CPU
//!   architecture Kiln targets, for `src/kernels/mod.rs` to embed. The bitcode is deliberately
//!   target-neutral in everything but the triple: no `-march`, no LLVM optimisation
//!   (`-disable-llvm-passes`), so that vectorization, unrolling and instruction selection happen
//!   per artifact, for the artifact's own CPU (see `src/kernels/mod.rs`);
//! - `src/targets/llvm_cpu.cpp`, the few LLVM C++ calls the C API lacks (valid CPU names, the
//!   features a CPU implies), against the LLVM that llvm-sys links (`LLVM_SYS_221_PREFIX`, set in
//!   `.cargo/config.toml`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The architectures and the triples their bitcode is built for (`src/kernels/mod.rs` includes
/// `kernels-<name>.bc` for each).
const ARCHES: [(&str, &str); 2] = [
    ("x86_64", "x86_64-unknown-linux-gnu"),
    ("aarch64", "aarch64-unknown-linux-gnu"),
];

/// The flags every compile uses (see `docs/middle-end.md` section 4 for why).
const FLAGS: &[&str] = &[
    "-std=c11",
    "-ffreestanding",
    "-O2",
    "-Xclang",
    "-disable-llvm-passes",
    "-ffp-contract=fast",
    "-fno-math-errno",
    "-fno-strict-aliasing",
    "-fPIC",
    "-fvisibility=hidden",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-ident",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-emit-llvm",
    "-c",
];

fn find_clang() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(prefix) = std::env::var("LLVM_SYS_221_PREFIX") {
        candidates.push(Path::new(&prefix).join("bin/clang"));
    }
    candidates.push(PathBuf::from("/usr/lib/llvm-22/bin/clang"));
    for c in candidates {
        if c.is_file() {
            return Some(c);
        }
    }
    // On PATH.
    let ok = Command::new("clang-22")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| PathBuf::from("clang-22"))
}

fn build_kernels() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let dir = manifest.join("kernels");
    println!("cargo:rerun-if-changed={}", dir.display());
    println!("cargo:rerun-if-env-changed=LLVM_SYS_221_PREFIX");
    for entry in std::fs::read_dir(&dir).expect("kernels/ exists") {
        let path = entry.expect("readable kernels/").path();
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let Some(clang) = find_clang() else {
        panic!(
            "kiln-codegen needs clang 22 to compile its CPU kernel library (kernels/*.c): \
             install the Debian package `clang-22` (scripts/setup.sh does), or set \
             LLVM_SYS_221_PREFIX to an LLVM 22 installation with bin/clang"
        );
    };
    for (name, triple) in ARCHES {
        let output = out.join(format!("kernels-{name}.bc"));
        let result = Command::new(&clang)
            .arg(format!("--target={triple}"))
            .args(FLAGS)
            .arg(dir.join("kernels.c"))
            .arg("-o")
            .arg(&output)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", clang.display()));
        if !result.status.success() {
            panic!(
                "{} failed to compile kernels/kernels.c for {triple}:\n{}",
                clang.display(),
                String::from_utf8_lossy(&result.stderr)
            );
        }
    }
}

fn build_llvm_cpu() {
    let prefix =
        std::env::var("LLVM_SYS_221_PREFIX").unwrap_or_else(|_| "/usr/lib/llvm-22".to_owned());
    println!("cargo:rerun-if-env-changed=LLVM_SYS_221_PREFIX");
    println!("cargo:rerun-if-changed=src/targets/llvm_cpu.cpp");
    cc::Build::new()
        .cpp(true)
        .file("src/targets/llvm_cpu.cpp")
        .include(format!("{prefix}/include"))
        // LLVM's own flags (`llvm-config --cxxflags`): C++17, no exceptions
        // or RTTI, the C++11 string ABI.
        .std("c++17")
        .flag("-fno-exceptions")
        .flag("-fno-rtti")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("__STDC_CONSTANT_MACROS", None)
        .define("__STDC_FORMAT_MACROS", None)
        .define("__STDC_LIMIT_MACROS", None)
        .warnings(false)
        .compile("kiln_llvm_cpu");
}

/// Kiln's GPU passes (MLIR C++ API), linked like `llvm_cpu.cpp` against the MLIR that
/// mlir-sys links statically.
fn build_gpu_passes() {
    let prefix =
        std::env::var("LLVM_SYS_221_PREFIX").unwrap_or_else(|_| "/usr/lib/llvm-22".to_owned());
    println!("cargo:rerun-if-changed=src/gpu/passes.cpp");
    cc::Build::new()
        .cpp(true)
        .file("src/gpu/passes.cpp")
        .include(format!("{prefix}/include"))
        .std("c++17")
        .flag("-fno-exceptions")
        .flag("-fno-rtti")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("__STDC_CONSTANT_MACROS", None)
        .define("__STDC_FORMAT_MACROS", None)
        .define("__STDC_LIMIT_MACROS", None)
        .warnings(false)
        .compile("kiln_gpu_passes");
}

fn main() {
    build_kernels();
    build_llvm_cpu();
    build_gpu_passes();
}
