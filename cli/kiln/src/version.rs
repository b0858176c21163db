//! `kiln --version`: the Kiln version and git commit, and with `--version`
//! (not `-V`) also the LLVM/MLIR release, the runtime ABI and the targets.

/// The git commit the binary was built from (`build.rs`; "unknown" outside
/// a git checkout).
pub const GIT_HASH: &str = env!("KILN_GIT_HASH");

/// `-V`: `0.1.0 (git 0123456789ab)`; clap puts `kiln ` in front.
pub fn short() -> &'static str {
    leak(format!("{} (git {GIT_HASH})", env!("CARGO_PKG_VERSION")))
}

/// `--version`: the short line, then one line each for LLVM/MLIR, the
/// runtime ABI and the targets.
pub fn long() -> &'static str {
    let (major, minor, patch) = kiln_driver::llvm_version();
    let host = kiln_driver::Arch::of_host();
    let targets: Vec<String> = kiln_driver::Arch::ALL
        .iter()
        .map(|&a| {
            let mut s = a.name().to_owned();
            if a.is_gpu() {
                s.push_str(" (MLIR stages only)");
            } else if host == Some(a) {
                s.push_str(" (this machine)");
            }
            s
        })
        .collect();
    leak(format!(
        "{}\nLLVM {major}.{minor}.{patch} (MLIR from the same LLVM release)\nruntime ABI {}\ntargets: {}",
        short(),
        kiln_driver::RUNTIME_ABI_VERSION,
        targets.join(", ")
    ))
}

/// clap keeps `&'static str`s; the strings are built once per process.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
