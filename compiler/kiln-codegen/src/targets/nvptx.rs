//! NVIDIA GPUs through PTX.
//!
//! The LLVM triple/CPU describe *device* code (LLVM emits PTX text as "assembly"). The MLIR
//! pipeline covers the whole program: `scf.parallel` loops are mapped to GPU blocks/threads,
//! outlined into a `gpu.module`, lowered to NVVM and serialised to PTX (`format=isa`, which needs
//! no CUDA toolkit) inside a `gpu.binary`; the host side is lowered to the LLVM dialect.
//! Math functions become libdevice calls (`__nv_expf`), absent on the build machines, so Kiln
//! will need its own expansions before kernels using them can be assembled.

use super::ArchSpec;

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "nvptx",
    triple: "nvptx64-nvidia-cuda",
    // Hopper; PTX ISA 8.0 is the first with sm_90 support.
    default_cpu: "sm_90",
    deploy_cpu: "sm_90",
    elf: None,
    initialize_llvm,
    mlir_pipeline,
    cpu_config: None,
};

fn initialize_llvm() {
    inkwell::targets::Target::initialize_nvptx(&Default::default());
}

fn mlir_pipeline(chip: &str) -> String {
    format!(
        "builtin.module(\
         func.func(gpu-map-parallel-loops, convert-parallel-loops-to-gpu), \
         gpu-kernel-outlining, \
         nvvm-attach-target{{chip={chip} features=+ptx80}}, \
         gpu.module(lower-affine, convert-scf-to-cf, convert-gpu-to-nvvm, reconcile-unrealized-casts), \
         lower-affine, convert-scf-to-cf, gpu-to-llvm, convert-to-llvm, reconcile-unrealized-casts, \
         gpu-module-to-binary{{format=isa}})"
    )
}
