//! LLVM helpers: target machines, the optimisation pipeline and code emission.
//!
//! Invariants:
//! - A module is optimised and emitted only after [`prepare_module`] stamped it with the target
//!   machine's triple and data layout, so the optimiser and the back end agree on type sizes.
//! - Code is position independent (`RelocMode::PIC`): objects are linked into shared libraries.

use crate::error::{CodegenError, Result};
use crate::targets::Target;
use inkwell::{
    module::Module,
    passes::PassBuilderOptions,
    targets::{CodeModel, FileType, RelocMode, TargetMachine, TargetTriple},
    OptimizationLevel,
};

/// Optimisation level of the LLVM pipeline (`default<ON>`) and of the back end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OptLevel {
    /// No optimisation; fastest compile, for debugging.
    O0,
    /// Light optimisation.
    O1,
    /// Standard optimisation.
    O2,
    /// Aggressive optimisation (the default for artifacts).
    #[default]
    O3,
}

impl OptLevel {
    /// The level's number (0 to 3).
    pub fn number(self) -> u8 {
        match self {
            OptLevel::O0 => 0,
            OptLevel::O1 => 1,
            OptLevel::O2 => 2,
            OptLevel::O3 => 3,
        }
    }

    /// The LLVM new-pass-manager pipeline for this level.
    pub fn llvm_pipeline(self) -> &'static str {
        match self {
            OptLevel::O0 => "default<O0>",
            OptLevel::O1 => "default<O1>",
            OptLevel::O2 => "default<O2>",
            OptLevel::O3 => "default<O3>",
        }
    }

    fn codegen_level(self) -> OptimizationLevel {
        match self {
            OptLevel::O0 => OptimizationLevel::None,
            OptLevel::O1 => OptimizationLevel::Less,
            OptLevel::O2 => OptimizationLevel::Default,
            OptLevel::O3 => OptimizationLevel::Aggressive,
        }
    }
}

/// The kind of text or binary produced by the LLVM back end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LlvmOutput {
    /// Textual LLVM IR (`.ll`).
    Ir,
    /// Target assembly (`.s`; PTX for NVPTX).
    Asm,
    /// Relocatable object file (`.o`).
    Obj,
}

/// Creates an LLVM target machine for `target`, registering its back end first.
pub fn target_machine(target: &Target, opt: OptLevel) -> Result<TargetMachine> {
    target.initialize_llvm();
    // Checked first: LLVM itself only warns on stderr and falls back.
    target.validate()?;
    let error = |message: String| CodegenError::TargetMachine {
        triple: target.triple().to_owned(),
        cpu: target.cpu().to_owned(),
        message,
    };
    let triple = TargetTriple::create(target.triple());
    let llvm_target =
        inkwell::targets::Target::from_triple(&triple).map_err(|e| error(e.to_string()))?;
    llvm_target
        .create_target_machine(
            &triple,
            target.cpu(),
            target.features(),
            opt.codegen_level(),
            RelocMode::PIC,
            CodeModel::Default,
        )
        .ok_or_else(|| error("LLVM returned no target machine".to_owned()))
}

/// Stamps `module` with the machine's triple and data layout, then runs the LLVM verifier.
pub fn prepare_module(module: &Module, machine: &TargetMachine) -> Result<()> {
    module.set_triple(&machine.get_triple());
    module.set_data_layout(&machine.get_target_data().get_data_layout());
    module
        .verify()
        .map_err(|message| CodegenError::LlvmVerify(message.to_string()))
}

/// Runs the standard LLVM optimisation pipeline for `opt` on a prepared module.
pub fn optimize(module: &Module, machine: &TargetMachine, opt: OptLevel) -> Result<()> {
    let pipeline = opt.llvm_pipeline();
    module
        .run_passes(pipeline, machine, PassBuilderOptions::create())
        .map_err(|message| CodegenError::LlvmPasses {
            pipeline: pipeline.to_owned(),
            message: message.to_string(),
        })
}

/// Emits a prepared module as IR text, assembly text or an object file.
pub fn emit_module(
    module: &Module,
    machine: &TargetMachine,
    output: LlvmOutput,
) -> Result<Vec<u8>> {
    let file_type = match output {
        LlvmOutput::Ir => return Ok(module.print_to_string().to_bytes().to_vec()),
        LlvmOutput::Asm => FileType::Assembly,
        LlvmOutput::Obj => FileType::Object,
    };
    let buffer = machine
        .write_to_memory_buffer(module, file_type)
        .map_err(|message| CodegenError::Emission(message.to_string()))?;
    Ok(buffer.as_slice().to_vec())
}
