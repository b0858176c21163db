//! Builds `src/targets/llvm_cpu.cpp`, the few LLVM C++ calls the C API
//! lacks (valid CPU names, the features a CPU implies), against the LLVM
//! that llvm-sys links (`LLVM_SYS_221_PREFIX`, set in `.cargo/config.toml`).
fn main() {
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
