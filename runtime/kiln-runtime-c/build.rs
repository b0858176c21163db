//! Link settings for `libkiln_runtime.so`.
//!
//! `-z nodelete`: the library keeps per-thread state (the last error) whose
//! destructor runs at thread exit; if a host `dlclose`d the library while such
//! threads were alive, that destructor would point into unmapped code. Never
//! unloading the library rules this out (std-based libraries rely on glibc's
//! equivalent for their thread-locals).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux" || os == "android") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
}
