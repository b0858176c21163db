//! x86-64 Linux (System V ABI).

use super::{cpu, ArchSpec, CpuConfig};
use crate::kernels::Variant;

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "x86_64",
    triple: "x86_64-unknown-linux-gnu",
    // The baseline every x86-64 CPU supports; `x86-64-v3` (AVX2, FMA) is the usual opt-in.
    default_cpu: "x86-64",
    deploy_cpu: "x86-64-v3",
    elf: Some((object::Architecture::X86_64, object::Endianness::Little)),
    object_format: object::BinaryFormat::Elf,
    initialize_llvm,
    mlir_pipeline: cpu::pipeline,
    cpu_config: Some(cpu_config),
    gpu: None,
};

fn initialize_llvm() {
    inkwell::targets::Target::initialize_x86(&Default::default());
}

/// The kernel instantiation and layouts for a CPU with `features`.
fn cpu_config(features: &[String]) -> CpuConfig {
    let has = |f: &str| features.iter().any(|x| x == f);
    // The widest vectors the CPU has, with enough registers for the GEMM tile: AVX-512 has
    // 32 zmm registers, AVX2 16 ymm, SSE2 16 xmm.
    let variant = if has("avx512f") {
        Variant::W16R32
    } else if has("avx2") && has("fma") {
        Variant::W8R16
    } else {
        Variant::W4R16
    };
    let int8_dot = match variant {
        Variant::W16R32 => has("avx512vnni"),
        Variant::W8R16 => has("avxvnni") || (has("avx512vnni") && has("avx512vl")),
        _ => false,
    };
    CpuConfig {
        variant,
        conv_nhwc: true,
        int8_dot,
        int8_pairs: !int8_dot && variant == Variant::W8R16,
        winograd: true,
        qgemv_panels: variant == Variant::W16R32,
    }
}
