//! x86-64 Linux (System V ABI).

use super::{cpu, ArchSpec};

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "x86_64",
    triple: "x86_64-unknown-linux-gnu",
    // The baseline every x86-64 CPU supports; `x86-64-v3` (AVX2, FMA) is the usual opt-in.
    default_cpu: "x86-64",
    deploy_cpu: "x86-64-v3",
    elf: Some((object::Architecture::X86_64, object::Endianness::Little)),
    initialize_llvm,
    mlir_pipeline: cpu::pipeline,
};

fn initialize_llvm() {
    inkwell::targets::Target::initialize_x86(&Default::default());
}
