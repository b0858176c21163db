//! Vulkan compute through SPIR-V (`--target=vulkan`): Linux and Android GPUs, and Mesa's
//! lavapipe on machines without one (the path CI executes).
//!
//! The kernels are converted to one SPIR-V module (GLSL.std.450 math, 32-bit indices,
//! storage buffers: one descriptor binding per kernel argument in argument order, set 0);
//! capabilities beyond `Shader` are declared as available and `spirv-update-vce` keeps only
//! those a module uses, so a model without f64 or 8-bit values runs on devices without them.
//! Block sizes stay at 128 threads, the workgroup size every Vulkan device supports, and
//! grids at 65,535 blocks per dimension (longer loops stride).

use super::gpu::{
    Chip, ContractionTile, DeviceApi, DeviceImage, DeviceTools, GpuConfig, GpuSpec, ImageFormat,
    MathLowering,
};
use super::ArchSpec;
use crate::error::Result;

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "vulkan",
    triple: "spirv64-unknown-vulkan",
    default_cpu: "generic",
    deploy_cpu: "generic",
    elf: None,
    object_format: object::BinaryFormat::Elf,
    initialize_llvm,
    mlir_pipeline,
    cpu_config: None,
    gpu: Some(&GPU),
};

const GPU: GpuSpec = GpuSpec {
    api: DeviceApi::Vulkan,
    chips: &[Chip {
        name: "generic",
        description: "any Vulkan 1.1 device with compute (SPIR-V 1.3)",
    }],
    llvm_chips: false,
    config,
    device_passes,
    images,
    image_per_kernel: false,
    host: None,
};

/// No LLVM back end is involved: SPIR-V comes from MLIR's own serializer.
fn initialize_llvm() {}

fn mlir_pipeline(chip: &str) -> String {
    crate::gpu::whole_pipeline(&config(chip), &GPU, &DeviceTools::default(), true)
        .unwrap_or_default()
}

/// Math ops GLSL.std.450 lacks (everything else maps onto its extended instructions), `trunc`,
/// which MLIR's SPIR-V conversion lacks (computed from floor and ceil), `tanh`, whose GLSL
/// form loses accuracy near 0 on some drivers (lavapipe), `remf`, whose OpFRem is
/// x - y * trunc(x / y), NaN for a finite x and an infinite y (IEEE fmod: x), and f64
/// `roundeven`, which lavapipe rounds ties toward zero on AVX2 machines (QuantizeLinear
/// rounds its f64 quotient: 3 / 2 became 1, not 2).
pub(super) const APPROXIMATED: &[&str] = &[
    "erf",
    "erfc",
    "expm1",
    "log1p",
    "cbrt",
    "tanh",
    "trunc",
    "remf",
    "roundeven",
];

pub(super) fn config(chip: &str) -> GpuConfig {
    GpuConfig {
        api: DeviceApi::Vulkan,
        chip: chip.to_owned(),
        warp_size: 32,
        block_size: 128,
        max_grid: 65535,
        shared_memory_bytes: 16 * 1024,
        index_bytes: 4,
        split_reductions_above: super::gpu::SPLIT_REDUCTIONS_ABOVE,
        reduction_tree_min_extent: Some(super::gpu::REDUCTION_TREE_MIN_EXTENT),
        contraction_tile: Some(ContractionTile {
            // Vulkan 1.1 guarantees 128 invocations per workgroup: 64 threads computing
            // 32 x 32 outputs (4 KiB of workgroup memory).
            threads: 8,
            ..super::gpu::CONTRACTION_TILE
        }),
        math: MathLowering {
            approximate: APPROXIMATED.to_vec(),
            libdevice: false,
            // GLSL.std.450 has them for 16- and 32-bit floats only.
            f64_via_f32: super::gpu::TRANSCENDENTAL.to_vec(),
            f64: true,
        },
    }
}

/// The SPIR-V conversion shared with Metal (which translates the same module to MSL).
pub(super) fn spirv_passes(c: &GpuConfig) -> String {
    let demote = if c.math.f64 {
        ""
    } else {
        "kiln-gpu-demote-f64, "
    };
    format!(
        "spirv-attach-target{{ver=v1.3 caps=Shader,Int64,Int16,Int8,Float64,Float16,\
         StorageBuffer8BitAccess,StorageBuffer16BitAccess,StorageUniformBufferBlock16 \
         exts=SPV_KHR_8bit_storage,SPV_KHR_16bit_storage,SPV_KHR_storage_buffer_storage_class \
         client_api=Vulkan}}, \
         kiln-gpu-spirv-abi, \
         gpu.module({demote}kiln-gpu-spirv-workgroup, kiln-gpu-bf16-storage, \
         math-extend-to-supported-types{{extra-types=f16 target-type=f32}}, \
         arith-emulate-unsupported-floats{{source-types=bf16 target-type=f32}}, \
         arith-expand{{include-bf16=true}}, canonicalize, \
         math-expand-ops{{ops=tan,sinh,cosh,asinh,acosh,atanh,fpowi,ctlz}}, \
         kiln-gpu-math{{ops={} f64-via-f32={}}}, convert-math-to-spirv, kiln-gpu-loop-results), \
         fold-memref-alias-ops, convert-gpu-to-spirv{{use-64bit-index=false}}, \
         kiln-gpu-nest-spirv, \
         gpu.module(spirv.module(spirv-lower-abi-attrs, spirv-update-vce)), \
         gpu-module-to-binary",
        c.math.approximate.join(","),
        c.math.f64_via_f32.join(",")
    )
}

fn device_passes(c: &GpuConfig, _tools: &DeviceTools, _asm: bool) -> Result<String> {
    Ok(spirv_passes(c))
}

fn images(
    spirv: Vec<u8>,
    _c: &GpuConfig,
    _tools: &DeviceTools,
    _kernels: &[String],
) -> Result<Vec<DeviceImage>> {
    Ok(vec![DeviceImage {
        format: ImageFormat::Spirv,
        chip: String::new(),
        group: 0,
        data: spirv,
    }])
}
