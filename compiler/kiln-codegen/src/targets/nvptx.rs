//! NVIDIA GPUs through PTX (`--target=cuda[:sm_NN]`, `nvptx64-nvidia-cuda`).
//!
//! The LLVM triple/CPU describe *device* code (LLVM emits PTX text as "assembly"); the host
//! part of an artifact is compiled for this machine's CPU and launches kernels through the
//! runtime's CUDA driver back end. Device code: the outlined kernels are lowered to NVVM
//! (bare pointers for buffers), serialized to PTX by MLIR (`format=isa`, no CUDA toolkit
//! needed) and, when `ptxas` is present, also assembled to SASS for the chip (and any extra
//! `sm_NN` asked for): the runtime loads the cubin matching the device and JIT-compiles the
//! PTX anywhere else. Math functions link NVIDIA's libdevice when it is found; without it
//! Kiln's polynomial approximations stand in, so PTX never has an unresolved `.extern .func`.

use super::gpu::{
    Chip, DeviceApi, DeviceImage, DeviceTools, GpuConfig, GpuSpec, ImageFormat, MathLowering,
};
use super::ArchSpec;
use crate::error::{CodegenError, Result};

pub(super) const SPEC: ArchSpec = ArchSpec {
    name: "cuda",
    triple: "nvptx64-nvidia-cuda",
    // Hopper; PTX ISA 8.0 is the first with sm_90 support.
    default_cpu: "sm_90",
    deploy_cpu: "sm_90",
    elf: None,
    object_format: object::BinaryFormat::Elf,
    initialize_llvm,
    mlir_pipeline,
    cpu_config: None,
    gpu: Some(&GPU),
};

const GPU: GpuSpec = GpuSpec {
    api: DeviceApi::Cuda,
    chips: &[
        Chip {
            name: "sm_80",
            description: "Ampere A100",
        },
        Chip {
            name: "sm_86",
            description: "Ampere RTX 30, A10, A40",
        },
        Chip {
            name: "sm_89",
            description: "Ada RTX 40, L4, L40",
        },
        Chip {
            name: "sm_90",
            description: "Hopper H100, H200 (default)",
        },
        Chip {
            name: "sm_100",
            description: "Blackwell B200",
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
    inkwell::targets::Target::initialize_nvptx(&Default::default());
}

fn mlir_pipeline(chip: &str) -> String {
    crate::gpu::whole_pipeline(&config(chip), &GPU, &DeviceTools::default(), true)
        .unwrap_or_default()
}

/// Math without libdevice: every transcendental function Kiln lowers to.
const APPROXIMATED: &[&str] = &[
    "erf", "erfc", "tanh", "exp", "exp2", "expm1", "log", "log2", "log1p", "sin", "cos", "atan",
    "atan2", "asin", "acos", "cbrt",
];

/// The PTX ISA version for a chip: the oldest that supports it (newer drivers JIT older PTX,
/// older drivers cannot read newer PTX).
fn ptx_features(chip: &str) -> &'static str {
    let n: u32 = chip
        .trim_start_matches("sm_")
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .unwrap_or(90);
    match n {
        0..=75 => "+ptx64",
        76..=86 => "+ptx71",
        87..=89 => "+ptx78",
        90..=99 => "+ptx80",
        _ => "+ptx86",
    }
}

fn config(chip: &str) -> GpuConfig {
    GpuConfig {
        api: DeviceApi::Cuda,
        chip: chip.to_owned(),
        warp_size: 32,
        block_size: 256,
        max_grid: i32::MAX as u32,
        // The static shared memory every CUDA GPU gives a block without opting in.
        shared_memory_bytes: 48 * 1024,
        index_bytes: 8,
        split_reductions_above: super::gpu::SPLIT_REDUCTIONS_ABOVE,
        reduction_tree_min_extent: Some(super::gpu::REDUCTION_TREE_MIN_EXTENT),
        contraction_tile: Some(super::gpu::CONTRACTION_TILE),
        math: MathLowering {
            approximate: Vec::new(),
            libdevice: true,
            f64_via_f32: Vec::new(),
            f64: true,
        },
    }
}

fn device_passes(c: &GpuConfig, tools: &DeviceTools, _asm: bool) -> Result<String> {
    let chip = &c.chip;
    let features = ptx_features(chip);
    // libdevice when it is found, else Kiln's approximations of every transcendental.
    let (link, math) = match (&tools.libdevice, c.math.libdevice) {
        (Some(path), true) => {
            let path = path
                .to_str()
                .filter(|p| p.chars().all(|ch| !"{},\"' ".contains(ch)));
            let path = path.ok_or_else(|| CodegenError::UnsupportedTarget {
                operation: "linking libdevice from a path with spaces or braces",
                target: format!("cuda:{chip}"),
            })?;
            (format!(" l={path}"), String::new())
        }
        // The rest (fma, sqrt, floor, ...) become calls of LLVM intrinsics, which NVPTX has
        // instructions for (convert-gpu-to-nvvm would send them to libdevice); f64
        // transcendental functions run in f32 (a stub: only libdevice has their f64 forms).
        _ => (
            String::new(),
            format!(
                "math-expand-ops, kiln-gpu-math{{ops={} f64-via-f32={}}}, kiln-gpu-llvm-intrinsics, \
                 convert-math-to-llvm, ",
                APPROXIMATED.join(","),
                super::gpu::TRANSCENDENTAL.join(",")
            ),
        ),
    };
    Ok(format!(
        "nvvm-attach-target{{chip={chip} features={features} O=3{link}}}, \
         gpu.module({math}convert-scf-to-cf, \
         convert-gpu-to-nvvm{{use-bare-ptr-memref-call-conv=1}}, reconcile-unrealized-casts), \
         gpu-module-to-binary{{format=isa}}"
    ))
}

fn images(
    ptx: Vec<u8>,
    c: &GpuConfig,
    tools: &DeviceTools,
    _kernels: &[String],
) -> Result<Vec<DeviceImage>> {
    let mut out = Vec::new();
    if let Some(ptxas) = &tools.ptxas {
        let mut chips = vec![c.chip.clone()];
        chips.extend(tools.extra_sms.iter().filter(|s| **s != c.chip).cloned());
        for chip in chips {
            let cubin = crate::gpu::tools::ptxas(ptxas, &ptx, &chip)?;
            out.push(DeviceImage {
                format: ImageFormat::Cubin,
                chip,
                group: 0,
                data: cubin,
            });
        }
    }
    let mut text = ptx;
    text.push(0);
    out.push(DeviceImage {
        format: ImageFormat::Ptx,
        chip: c.chip.clone(),
        group: 0,
        data: text,
    });
    Ok(out)
}
