//! AArch64 Linux (GNU ABI).

use super::{cpu, ArchSpec};

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "aarch64",
    triple: "aarch64-unknown-linux-gnu",
    // `generic` is ARMv8-A with NEON; named cores (`neoverse-v2`, `apple-m1`) opt into more.
    default_cpu: "generic",
    deploy_cpu: "generic",
    elf: Some((object::Architecture::Aarch64, object::Endianness::Little)),
    initialize_llvm,
    mlir_pipeline: cpu::pipeline,
};

fn initialize_llvm() {
    inkwell::targets::Target::initialize_aarch64(&Default::default());
}
