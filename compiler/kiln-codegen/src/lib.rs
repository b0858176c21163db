//! Code generation: MLIR (melior) → LLVM IR (inkwell) → object code, data objects and linking.
//!
//! Data flow, one module per stage:
//! - [`targets`]: what code is generated for ([`Target`]); each target's triple, CPU, features and
//!   MLIR pass pipeline live in one module per target, and nowhere else.
//! - [`mlir`]: context creation, parsing, textual pass pipelines, translation to LLVM IR.
//! - [`llvm`]: target machines, `default<ON>` optimisation, IR/assembly/object emission.
//! - [`objects`]: ELF objects holding weights as raw read-only data (never LLVM constants).
//! - [`link`]: objects → shared library, written atomically.
//! - [`parallel`]: the OpenMP entry points compiled loops call, implemented on the runtime's pool
//!   and carried by every artifact.
//! - [`kernels`]: the CPU kernel library (C micro-kernels embedded as bitcode), compiled per
//!   artifact for its target CPU; the lowering calls its kernels through [`kernels::abi`].
//! - [`gpu`]: the GPU lowering (one pipeline for CUDA, ROCm, Vulkan and Metal): kernels and
//!   their images, the host code that launches them, and the shim that reaches the runtime's
//!   device API.
//!
//! [`emit`] runs the whole chain and can stop after any stage ([`Emit`]), so each boundary is
//! printable and testable.
//!
//! Invariants: this crate knows nothing about Kiln IR or ONNX (it takes MLIR text); it never
//! prints (diagnostics are returned in [`CodegenError`]); it needs no GPU or GPU toolkit
//! (`ptxas`, libdevice and `spirv-cross` are optional tools found by the driver).

mod error;
mod fsutil;
pub mod gpu;
pub mod kernels;
pub mod link;
pub mod llvm;
pub mod lower;
pub mod mlir;
pub mod objects;
pub mod parallel;
pub mod targets;

pub use error::{CodegenError, Result};
pub use link::{link_shared_library, Linker, LinkerKind};
pub use llvm::OptLevel;
pub use object::BinaryFormat;
pub use objects::{blobs_object, data_object, write_data_object};
pub use targets::{
    cpu_names, enabled_features, llvm_version, Arch, DeviceApi, DeviceImage, DeviceTools,
    GpuConfig, ImageFormat, Target,
};

use llvm::LlvmOutput;

/// Where [`emit`] stops and what it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Emit {
    /// MLIR text after the target's pass pipeline (the LLVM dialect, for CPUs).
    Mlir,
    /// LLVM IR text after translation and optimisation.
    Llvm,
    /// Target assembly text.
    Asm,
    /// A relocatable object file.
    Obj,
}

/// Compiles MLIR text with `target`'s pipeline and returns the stage asked for by `emit`.
///
/// For GPU targets only [`Emit::Mlir`] is available: their pipeline embeds the device ISA in a
/// host module that must be compiled for a CPU target. (Device-only modules already in the LLVM
/// dialect can be compiled for a GPU with [`emit_with_pipeline`].)
pub fn emit(mlir_text: &str, target: &Target, opt: OptLevel, emit: Emit) -> Result<Vec<u8>> {
    if target.arch().is_gpu() && emit != Emit::Mlir {
        return Err(CodegenError::UnsupportedTarget {
            operation: "LLVM emission of a whole program (use Emit::Mlir)",
            target: target.to_string(),
        });
    }
    emit_with_pipeline(mlir_text, target, &target.mlir_pipeline(), opt, emit)
}

/// Compiles MLIR text for a CPU target into a relocatable object file.
pub fn compile_mlir_to_object(mlir_text: &str, target: &Target, opt: OptLevel) -> Result<Vec<u8>> {
    emit(mlir_text, target, opt, Emit::Obj)
}

/// Like [`emit`], with an explicit MLIR pass pipeline (`builtin.module(...)`) instead of the
/// target's; an empty pipeline runs no MLIR passes (the input must then be in the LLVM dialect).
pub fn emit_with_pipeline(
    mlir_text: &str,
    target: &Target,
    pipeline: &str,
    opt: OptLevel,
    emit: Emit,
) -> Result<Vec<u8>> {
    let context = mlir::create_context();
    let mut module = mlir::parse_module(&context, mlir_text)?;
    if !pipeline.trim().is_empty() {
        mlir::run_pipeline(&context, &mut module, pipeline)?;
    }
    let output = match emit {
        Emit::Mlir => return Ok(module.as_operation().to_string().into_bytes()),
        Emit::Llvm => LlvmOutput::Ir,
        Emit::Asm => LlvmOutput::Asm,
        Emit::Obj => LlvmOutput::Obj,
    };
    let llvm_context = inkwell::context::Context::create();
    let llvm_module = mlir::translate_to_llvm(&context, &module, &llvm_context)?;
    let machine = llvm::target_machine(target, opt)?;
    llvm::prepare_module(&llvm_module, &machine)?;
    llvm::optimize(&llvm_module, &machine, opt)?;
    llvm::emit_module(&llvm_module, &machine, output)
}
