//! CPU names and CPU features as LLVM's target descriptions define them,
//! through the small C++ shim `llvm_cpu.cpp` (LLVM's C API has no way to
//! list a target's CPUs, to check a CPU name without LLVM printing a
//! warning, or to expand a CPU name into the features it implies).
//!
//! Invariant: every question is answered by a target machine created with a
//! CPU already known to be valid, so LLVM never prints "is not a recognized
//! processor" on stderr.

use super::Target;
use crate::error::{CodegenError, Result};
use inkwell::llvm_sys::core::LLVMDisposeMessage;
use inkwell::llvm_sys::target_machine::LLVMTargetMachineRef;
use inkwell::targets::{CodeModel, RelocMode, TargetMachine, TargetTriple};
use inkwell::OptimizationLevel;
use std::ffi::{c_char, c_int, CStr, CString};

extern "C" {
    fn kiln_llvm_cpu_is_valid(tm: LLVMTargetMachineRef, cpu: *const c_char) -> c_int;
    fn kiln_llvm_cpu_names(tm: LLVMTargetMachineRef) -> *mut c_char;
    fn kiln_llvm_enabled_features(tm: LLVMTargetMachineRef) -> *mut c_char;
}

/// Takes a message allocated by the shim (`LLVMCreateMessage`).
fn take_message(ptr: *mut c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: a NUL-terminated string from LLVMCreateMessage, freed once here.
    unsafe {
        let s = CStr::from_ptr(ptr).to_string_lossy().into_owned();
        LLVMDisposeMessage(ptr);
        s
    }
}

/// A target machine for `target`'s triple with `cpu` and `features`
/// (the caller guarantees that LLVM knows `cpu`).
fn machine(target: &Target, cpu: &str, features: &str) -> Result<TargetMachine> {
    target.initialize_llvm();
    let triple = TargetTriple::create(target.triple());
    let error = |message: String| CodegenError::TargetMachine {
        triple: target.triple().to_owned(),
        cpu: cpu.to_owned(),
        message,
    };
    inkwell::targets::Target::from_triple(&triple)
        .map_err(|e| error(e.to_string()))?
        .create_target_machine(
            &triple,
            cpu,
            features,
            OptimizationLevel::None,
            RelocMode::PIC,
            CodeModel::Default,
        )
        .ok_or_else(|| error("LLVM returned no target machine".to_owned()))
}

/// A machine with the architecture's default CPU, for questions about names.
fn default_machine(target: &Target) -> Result<TargetMachine> {
    machine(target, target.arch().spec().default_cpu, "")
}

/// Whether LLVM knows `cpu` for `target`'s architecture.
pub fn cpu_is_valid(target: &Target, cpu: &str) -> Result<bool> {
    let Ok(name) = CString::new(cpu) else {
        return Ok(false);
    };
    let tm = default_machine(target)?;
    // SAFETY: a live target machine and a C string.
    Ok(unsafe { kiln_llvm_cpu_is_valid(tm.as_mut_ptr(), name.as_ptr()) } != 0)
}

/// Every CPU name LLVM accepts for `target`'s architecture, sorted.
pub fn cpu_names(target: &Target) -> Result<Vec<String>> {
    let tm = default_machine(target)?;
    // SAFETY: a live target machine.
    let text = take_message(unsafe { kiln_llvm_cpu_names(tm.as_mut_ptr()) });
    let mut names: Vec<String> = text.lines().map(str::to_owned).collect();
    names.sort();
    Ok(names)
}

/// The features `target`'s CPU and feature string enable, implied ones
/// included, sorted (LLVM names without `+`).
pub fn enabled_features(target: &Target) -> Result<Vec<String>> {
    target.validate()?;
    let tm = machine(target, target.cpu(), target.features())?;
    // SAFETY: a live target machine.
    let text = take_message(unsafe { kiln_llvm_enabled_features(tm.as_mut_ptr()) });
    let mut features: Vec<String> = text
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    features.sort();
    Ok(features)
}

/// The version of the LLVM library in use (major, minor, patch).
pub fn llvm_version() -> (u32, u32, u32) {
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: writes three integers.
    unsafe { inkwell::llvm_sys::core::LLVMGetVersion(&mut major, &mut minor, &mut patch) };
    (major, minor, patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Arch;

    #[test]
    fn cpu_names_come_from_llvm() {
        let x86 = Target::generic(Arch::X86_64);
        let names = cpu_names(&x86).unwrap();
        for cpu in ["x86-64-v3", "skylake", "znver3", "sapphirerapids"] {
            assert!(names.iter().any(|n| n == cpu), "{cpu} missing");
        }
        assert!(cpu_is_valid(&x86, "znver4").unwrap());
        assert!(!cpu_is_valid(&x86, "bogus").unwrap());
        let arm = Target::generic(Arch::Aarch64);
        assert!(cpu_is_valid(&arm, "neoverse-v1").unwrap());
        assert!(!cpu_is_valid(&arm, "skylake").unwrap());
    }

    #[test]
    fn a_cpu_name_expands_to_its_features() {
        let v3 = enabled_features(&Target::new(Arch::X86_64, "x86-64-v3", "")).unwrap();
        for f in ["avx2", "fma", "bmi2", "f16c", "sse4.2"] {
            assert!(v3.iter().any(|x| x == f), "x86-64-v3 lacks {f}: {v3:?}");
        }
        assert!(!v3.iter().any(|x| x == "avx512f"), "{v3:?}");
        let v4 = enabled_features(&Target::new(Arch::X86_64, "x86-64-v4", "")).unwrap();
        assert!(v4.iter().any(|x| x == "avx512f"), "{v4:?}");
        let amd = enabled_features(&Target::new(Arch::X86_64, "znver3", "")).unwrap();
        assert!(amd.iter().any(|x| x == "sse4a"), "{amd:?}");
        // An explicit feature string adds to the CPU's.
        let plus = enabled_features(&Target::new(Arch::X86_64, "x86-64", "+avx2")).unwrap();
        assert!(plus.iter().any(|x| x == "avx2") && plus.iter().any(|x| x == "avx"));
    }

    #[test]
    fn llvm_is_version_22() {
        assert_eq!(llvm_version().0, 22);
    }
}
