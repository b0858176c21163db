//! AArch64 Linux (GNU ABI).

use super::{cpu, ArchSpec, CpuConfig};
use crate::kernels::Variant;

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "aarch64",
    triple: "aarch64-unknown-linux-gnu",
    // `generic` is ARMv8-A with NEON; named cores (`neoverse-v2`, `apple-m1`) opt into more.
    default_cpu: "generic",
    deploy_cpu: "generic",
    elf: Some((object::Architecture::Aarch64, object::Endianness::Little)),
    object_format: object::BinaryFormat::Elf,
    initialize_llvm,
    mlir_pipeline: cpu::pipeline,
    cpu_config: Some(cpu_config),
    gpu: None,
};

fn initialize_llvm() {
    inkwell::targets::Target::initialize_aarch64(&Default::default());
}

/// The kernel instantiation and layouts for a CPU with `features`.
fn cpu_config(features: &[String]) -> CpuConfig {
    // NEON is part of ARMv8-A: 32 registers of 128 bits; SDOT (the int8 product's `igemmv`)
    // comes with the dot product extension.
    CpuConfig {
        variant: Variant::W4R32,
        int8_dot: features.iter().any(|f| f == "dotprod"),
        int8_pairs: false,
        conv_nhwc: true,
        winograd: true,
        qgemv_panels: false,
    }
}
