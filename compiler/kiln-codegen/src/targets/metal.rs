//! Apple GPUs through Metal (`--target=metal`).
//!
//! Device code is the Vulkan target's SPIR-V (the same kernels, argument bindings and math),
//! translated per kernel into Metal Shading Language by SPIRV-Cross (`spirv-cross --msl`):
//! each kernel becomes one MSL source (its own image group), compiled by the Metal driver when
//! the model loads; buffer `[[buffer(i)]]` is kernel argument `i`. The host part is arm64
//! macOS code (Mach-O) that launches through the runtime's Metal back end.

use super::gpu::{Chip, DeviceApi, DeviceImage, DeviceTools, GpuConfig, GpuSpec, ImageFormat};
use super::{spirv, Arch, ArchSpec};
use crate::error::{CodegenError, Result};

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "metal",
    triple: "air64-apple-macosx",
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
    api: DeviceApi::Metal,
    chips: &[Chip {
        name: "generic",
        description: "Apple GPUs with Metal 2.3 (macOS 11+; host code arm64 macOS)",
    }],
    llvm_chips: false,
    config,
    device_passes,
    images,
    image_per_kernel: true,
    host: Some((Arch::Aarch64Apple, "apple-m1")),
};

fn initialize_llvm() {}

fn mlir_pipeline(chip: &str) -> String {
    crate::gpu::whole_pipeline(&config(chip), &GPU, &DeviceTools::default(), true)
        .unwrap_or_default()
}

fn config(chip: &str) -> GpuConfig {
    let mut c = spirv::config(chip);
    c.api = DeviceApi::Metal;
    // Apple GPUs allow 1,024 threads per threadgroup and 32 KiB of threadgroup memory.
    c.block_size = 256;
    c.max_grid = i32::MAX as u32;
    c.shared_memory_bytes = 32 * 1024;
    c.contraction_tile = Some(super::gpu::CONTRACTION_TILE);
    // MSL has no double: f64 inside kernels runs in f32, f64 model tensors are refused.
    c.math.f64 = false;
    c
}

fn device_passes(c: &GpuConfig, _tools: &DeviceTools, _asm: bool) -> Result<String> {
    Ok(spirv::spirv_passes(c))
}

fn images(
    spirv: Vec<u8>,
    _c: &GpuConfig,
    tools: &DeviceTools,
    kernels: &[String],
) -> Result<Vec<DeviceImage>> {
    let cross = tools
        .spirv_cross
        .as_ref()
        .ok_or(CodegenError::UnsupportedTarget {
            operation: "Metal Shading Language without spirv-cross (Debian package spirv-cross)",
            target: "metal".into(),
        })?;
    kernels
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut msl = crate::gpu::tools::spirv_to_msl(cross, &spirv, name)?;
            msl.push(0);
            Ok(DeviceImage {
                format: ImageFormat::Msl,
                chip: String::new(),
                group: k as u32,
                data: msl,
            })
        })
        .collect()
}
