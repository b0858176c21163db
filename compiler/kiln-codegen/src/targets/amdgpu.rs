//! AMD GPUs (`--target=rocm[:gfxNNN]`, `amdgcn-amd-amdhsa`).
//!
//! Same structure as [`super::nvptx`]: the LLVM triple/CPU describe device code; the kernels
//! are lowered through ROCDL and serialized by MLIR into an HSA code object (HSACO: an ELF
//! shared object linked by `ld.lld`, with one kernel descriptor per kernel), which the
//! runtime's HIP back end loads. No ROCm device libraries exist on the build machines, so
//! math ops become LLVM intrinsics the AMDGPU back end implements (`exp`, `log`, `sin`, `cos`,
//! `sqrt`, ...) and Kiln's polynomial approximations for the rest (`erf`, `tanh`, `atan`, ...).

use super::gpu::{
    Chip, DeviceApi, DeviceImage, DeviceTools, GpuConfig, GpuSpec, ImageFormat, MathLowering,
};
use super::ArchSpec;
use crate::error::{CodegenError, Result};

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "rocm",
    triple: "amdgcn-amd-amdhsa",
    // MI300 (CDNA 3).
    default_cpu: "gfx942",
    deploy_cpu: "gfx942",
    elf: None,
    object_format: object::BinaryFormat::Elf,
    initialize_llvm,
    mlir_pipeline,
    cpu_config: None,
    gpu: Some(&GPU),
};

const GPU: GpuSpec = GpuSpec {
    api: DeviceApi::Hip,
    chips: &[
        Chip {
            name: "gfx90a",
            description: "CDNA 2: MI200",
        },
        Chip {
            name: "gfx942",
            description: "CDNA 3: MI300 (default)",
        },
        Chip {
            name: "gfx1100",
            description: "RDNA 3: RX 7900, W7900",
        },
    ],
    llvm_chips: true,
    config,
    device_passes,
    images,
    image_per_kernel: false,
    host: None,
};

fn initialize_llvm() {
    inkwell::targets::Target::initialize_amd_gpu(&Default::default());
}

fn mlir_pipeline(chip: &str) -> String {
    crate::gpu::whole_pipeline(&config(chip), &GPU, &DeviceTools::default(), true)
        .unwrap_or_default()
}

fn config(chip: &str) -> GpuConfig {
    // CDNA runs wavefronts of 64 lanes, RDNA (gfx10+) of 32.
    let rdna = chip.starts_with("gfx1");
    GpuConfig {
        api: DeviceApi::Hip,
        chip: chip.to_owned(),
        warp_size: if rdna { 32 } else { 64 },
        block_size: 256,
        max_grid: i32::MAX as u32,
        shared_memory_bytes: 64 * 1024,
        index_bytes: 8,
        split_reductions_above: super::gpu::SPLIT_REDUCTIONS_ABOVE,
        reduction_tree_min_extent: Some(super::gpu::REDUCTION_TREE_MIN_EXTENT),
        contraction_tile: Some(super::gpu::CONTRACTION_TILE),
        math: MathLowering {
            // Without ROCm's device libraries (ocml) here, every math function MLIR lowers
            // to an ocml call is computed by Kiln's own expansions: sin, cos and floor in
            // f32 included (LLVM's AMDGPU lowering leaves them to ocml).
            approximate: vec![
                "erf", "erfc", "tanh", "atan", "atan2", "asin", "acos", "expm1", "log1p", "cbrt",
                "sin", "cos", "floor",
            ],
            libdevice: false,
            // Only exp and log have f32 instructions: f64 transcendental functions run in f32
            // (a stub until ocml is linked: f64 models lose precision on AMD GPUs).
            f64_via_f32: super::gpu::TRANSCENDENTAL.to_vec(),
            f64: true,
        },
    }
}

fn device_passes(c: &GpuConfig, tools: &DeviceTools, asm: bool) -> Result<String> {
    let chip = &c.chip;
    let math = format!(
        "kiln-gpu-math{{ops={} f64-via-f32={}}}",
        c.math.approximate.join(","),
        c.math.f64_via_f32.join(",")
    );
    // A code object needs ld.lld, which MLIR looks for under `<toolkit>/llvm/bin`
    // (crate::gpu::tools::lld_toolkit); for pipelines that are only printed, a placeholder.
    let format = if asm {
        "format=isa".to_owned()
    } else {
        let toolkit = tools
            .lld_toolkit
            .as_ref()
            .map_or_else(|| "<ld.lld folder>".to_owned(), |t| t.display().to_string());
        if toolkit.contains(['{', '}', ' ', ',']) {
            return Err(CodegenError::UnsupportedTarget {
                operation: "AMD code objects in a temporary folder with spaces or braces",
                target: format!("rocm:{chip}"),
            });
        }
        format!("format=bin toolkit={toolkit}")
    };
    Ok(format!(
        "rocdl-attach-target{{chip={chip} O=3}}, \
         gpu.module(math-expand-ops, {math}, convert-scf-to-cf, \
         convert-math-to-llvm, convert-gpu-to-rocdl{{use-bare-ptr-memref-call-conv=1}}, \
         reconcile-unrealized-casts), \
         gpu-module-to-binary{{{format}}}"
    ))
}

fn images(
    object: Vec<u8>,
    c: &GpuConfig,
    _tools: &DeviceTools,
    _kernels: &[String],
) -> Result<Vec<DeviceImage>> {
    Ok(vec![DeviceImage {
        format: ImageFormat::Hsaco,
        chip: c.chip.clone(),
        group: 0,
        data: object,
    }])
}
