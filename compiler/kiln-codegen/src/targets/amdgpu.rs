//! AMD GPUs (amdgcn, HSA ABI).
//!
//! Same structure as [`super::nvptx`]: the LLVM triple/CPU describe device code, the MLIR
//! pipeline maps `scf.parallel` loops to a `gpu.module` lowered through ROCDL and serialised to
//! GCN assembly (`format=isa`, no ROCm device libraries needed). Math ops are lowered to LLVM
//! intrinsics first (`convert-math-to-llvm`), which the AMDGPU back end implements natively.

use super::ArchSpec;

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "amdgpu",
    triple: "amdgcn-amd-amdhsa",
    // MI300 (CDNA 3).
    default_cpu: "gfx942",
    deploy_cpu: "gfx942",
    elf: None,
    initialize_llvm,
    mlir_pipeline,
    cpu_config: None,
};

fn initialize_llvm() {
    inkwell::targets::Target::initialize_amd_gpu(&Default::default());
}

fn mlir_pipeline(chip: &str) -> String {
    format!(
        "builtin.module(\
         func.func(gpu-map-parallel-loops, convert-parallel-loops-to-gpu), \
         gpu-kernel-outlining, \
         rocdl-attach-target{{chip={chip}}}, \
         gpu.module(lower-affine, convert-scf-to-cf, convert-math-to-llvm, convert-gpu-to-rocdl, reconcile-unrealized-casts), \
         lower-affine, convert-scf-to-cf, gpu-to-llvm, convert-to-llvm, reconcile-unrealized-casts, \
         gpu-module-to-binary{{format=isa}})"
    )
}
