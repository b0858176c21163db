//! What the GPU targets share: the device APIs, the per-chip facts ([`GpuConfig`]) every GPU
//! target module fills in, and the tools device code generation may call.
//!
//! The lowering itself (one pipeline for every GPU) lives in [`crate::gpu`]; a target's module
//! (`nvptx.rs`, `amdgpu.rs`, `spirv.rs`, `metal.rs`) contributes its [`GpuSpec`]: the chips it
//! knows, the [`GpuConfig`] of a chip, the MLIR passes that turn the outlined kernels into its
//! device code, and how the serialized device code becomes the images an artifact embeds.

use crate::error::Result;
use std::path::PathBuf;

/// The driver API an artifact's device code runs on (the runtime opens it with `dlopen`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceApi {
    /// NVIDIA's CUDA driver API (`libcuda.so.1`).
    Cuda,
    /// AMD's HIP runtime (`libamdhip64.so`).
    Hip,
    /// Vulkan compute (`libvulkan.so.1`).
    Vulkan,
    /// Apple's Metal (macOS).
    Metal,
}

impl DeviceApi {
    /// The code in `kiln_artifact_device.api` (`KILN_DEVICE_*` in `kiln.h`).
    pub fn abi_code(self) -> u32 {
        match self {
            DeviceApi::Cuda => 1,
            DeviceApi::Hip => 2,
            DeviceApi::Vulkan => 3,
            DeviceApi::Metal => 4,
        }
    }

    /// The API's name, as users know it.
    pub fn name(self) -> &'static str {
        match self {
            DeviceApi::Cuda => "CUDA",
            DeviceApi::Hip => "HIP",
            DeviceApi::Vulkan => "Vulkan",
            DeviceApi::Metal => "Metal",
        }
    }
}

/// The format of one device image (`KILN_DEVICE_FORMAT_*` in `kiln.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// PTX text (NUL-terminated), JIT-compiled by the CUDA driver.
    Ptx,
    /// A CUDA binary (SASS) for one `sm_NN`, from `ptxas`.
    Cubin,
    /// An AMD GPU code object (ELF shared object) for one `gfxNNN`.
    Hsaco,
    /// A SPIR-V module (32-bit words, little endian).
    Spirv,
    /// Metal Shading Language source (NUL-terminated).
    Msl,
}

impl ImageFormat {
    /// The code in `kiln_device_image.format`.
    pub fn abi_code(self) -> u32 {
        match self {
            ImageFormat::Ptx => 1,
            ImageFormat::Cubin => 2,
            ImageFormat::Hsaco => 3,
            ImageFormat::Spirv => 4,
            ImageFormat::Msl => 5,
        }
    }

    /// The usual file extension (`--emit=device` writes one file per image).
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Ptx => "ptx",
            ImageFormat::Cubin => "cubin",
            ImageFormat::Hsaco => "hsaco",
            ImageFormat::Spirv => "spv",
            ImageFormat::Msl => "metal",
        }
    }
}

/// A chip a GPU target lists (`kiln compile --print-targets`).
#[derive(Clone, Copy, Debug)]
pub struct Chip {
    /// The name after the target (`cuda:sm_90`).
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
}

/// How math functions without a device instruction become device code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MathLowering {
    /// Math ops replaced by Kiln's polynomial approximations (`kiln-gpu-math`), f32 (and
    /// f16/bf16 through f32).
    pub approximate: Vec<&'static str>,
    /// Link NVIDIA's libdevice for every other math function (CUDA only).
    pub libdevice: bool,
    /// Math ops whose f64 form is computed in f32 (where the device's math library has only
    /// f32 versions: GLSL's transcendental functions).
    pub f64_via_f32: Vec<&'static str>,
    /// Whether the device computes in f64 at all. Without (Apple GPUs), f64 values inside
    /// kernels are computed in f32 (`kiln-gpu-demote-f64`) and f64 tensors at the model's edge
    /// (inputs, outputs, weights) are refused.
    pub f64: bool,
}

/// A target's image step: `(object, config, tools, kernel names)` to the images an artifact
/// embeds.
pub type ImagesFn = fn(
    object: Vec<u8>,
    config: &GpuConfig,
    tools: &DeviceTools,
    kernels: &[String],
) -> Result<Vec<DeviceImage>>;

/// The transcendental math ops (MLIR `math` names): what a device without an f64 math
/// library computes in f32 ([`MathLowering::f64_via_f32`]).
pub const TRANSCENDENTAL: &[&str] = &[
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "powf", "sin", "cos", "tan", "asin",
    "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc",
    "cbrt",
];

/// The code generation facts of one GPU chip: the one place where block sizes and device
/// limits are chosen (filled by each GPU target's module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuConfig {
    /// The driver API.
    pub api: DeviceApi,
    /// The chip (`sm_90`, `gfx942`; `generic` for Vulkan and Metal).
    pub chip: String,
    /// Threads of a warp (NVIDIA), wavefront (AMD) or SIMD group (Apple); the subgroup size
    /// Vulkan code may assume at least.
    pub warp_size: u32,
    /// Threads per block of a mapped parallel loop (a multiple of `warp_size`, at most the
    /// API's guaranteed workgroup size).
    pub block_size: u32,
    /// Most blocks of a grid's x dimension the API guarantees; larger loops stride.
    pub max_grid: u32,
    /// Shared memory (LDS, threadgroup memory) one block may use, in bytes.
    pub shared_memory_bytes: u32,
    /// Bytes of an `index` value in device code (8, or 4 where indices are 32-bit: SPIR-V).
    pub index_bytes: u32,
    /// Math lowering.
    pub math: MathLowering,
    /// Reductions of more elements than this per result run in two stages, partial results
    /// over chunks first (one thread each), so that no thread loops over a whole large tensor:
    /// a whole-tensor reduction would otherwise be one thread's loop (and lavapipe stops a
    /// loop after 65535 iterations).
    pub split_reductions_above: u64,
    /// How contractions (MatMul, Gemm, batched products, convolutions) are tiled over workgroup
    /// memory; `None` leaves them one thread per output, as every other op.
    pub contraction_tile: Option<ContractionTile>,
    /// Reductions along their inputs' innermost dimension over at least this many elements
    /// per result run as one block per result with a tree in workgroup memory
    /// (`kiln-gpu-reduction-trees`); `None` keeps one thread per result.
    pub reduction_tree_min_extent: Option<u32>,
}

/// [`GpuConfig::reduction_tree_min_extent`] of every GPU target: a warp's worth of elements.
pub const REDUCTION_TREE_MIN_EXTENT: u32 = 32;

/// The shape of a tiled contraction kernel (`kiln-gpu-tile-contractions`): blocks of
/// `threads`² threads, each computing `micro`² outputs of a (`threads`·`micro`)² output
/// tile from tiles of A and B of `k` along the reduction, staged in workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContractionTile {
    /// Threads along the rows and along the columns of a block.
    pub threads: u32,
    /// Outputs per thread along the rows and along the columns.
    pub micro: u32,
    /// Reduction extent of a staged tile.
    pub k: u32,
    /// Contractions whose static row or column extent is smaller stay one thread per output
    /// (a GEMV would leave most of a tile idle).
    pub min_extent: u32,
}

impl ContractionTile {
    /// Threads per block.
    pub fn block_threads(&self) -> u32 {
        self.threads * self.threads
    }

    /// Workgroup memory one block uses (two f32 tiles of `k` × `threads`·`micro`).
    pub fn shared_bytes(&self) -> u32 {
        2 * self.k * self.threads * self.micro * 4
    }
}

/// The contraction tile of the CUDA, ROCm and Metal targets: 256 threads computing 64 × 64
/// outputs from 16-deep tiles (8 KiB of shared memory).
pub const CONTRACTION_TILE: ContractionTile = ContractionTile {
    threads: 16,
    micro: 4,
    k: 16,
    min_extent: 16,
};

/// [`GpuConfig::split_reductions_above`] of every GPU target: chunks of 4096 elements keep
/// each thread's loop short and give a reduction of 10^6 elements 245 threads.
pub const SPLIT_REDUCTIONS_ABOVE: u64 = 4096;

/// Tools and libraries device code generation may use, found by the driver (see
/// `kiln_driver::gpu_tools`); each is optional and its absence is reported where it matters.
#[derive(Clone, Debug, Default)]
pub struct DeviceTools {
    /// NVIDIA's `libdevice.10.bc` (CUDA math functions).
    pub libdevice: Option<PathBuf>,
    /// NVIDIA's `ptxas` (SASS for each requested architecture, and a check of every PTX).
    pub ptxas: Option<PathBuf>,
    /// `ld.lld` (AMD code objects).
    pub ld_lld: Option<PathBuf>,
    /// `spirv-cross` (Metal Shading Language from SPIR-V).
    pub spirv_cross: Option<PathBuf>,
    /// Extra CUDA architectures to build SASS for, beyond the target's chip.
    pub extra_sms: Vec<String>,
    /// A folder with `llvm/bin/ld.lld` (see `gpu::tools::lld_toolkit`), set by the GPU
    /// lowering itself while it builds AMD code objects.
    pub lld_toolkit: Option<PathBuf>,
}

/// One device image an artifact embeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceImage {
    /// Its format.
    pub format: ImageFormat,
    /// The chip it was built for (`""` when any device of the API runs it).
    pub chip: String,
    /// Images with the same group hold the same kernels (alternatives: SASS for one chip,
    /// PTX for the rest); the runtime loads one image per group.
    pub group: u32,
    /// The bytes.
    pub data: Vec<u8>,
}

/// The per-target part of the GPU lowering (one constant per GPU target module).
pub(crate) struct GpuSpec {
    /// The driver API.
    pub api: DeviceApi,
    /// Chips listed by `--print-targets` (any chip LLVM knows is accepted where
    /// `llvm_chips` is set).
    pub chips: &'static [Chip],
    /// Whether any chip name LLVM knows for the architecture is accepted.
    pub llvm_chips: bool,
    /// The code generation facts of a chip.
    pub config: fn(chip: &str) -> GpuConfig,
    /// The passes (textual, comma-separated, inside `builtin.module(...)`) that turn the
    /// outlined `gpu.module` into `gpu.binary` objects holding this target's device code;
    /// `asm` asks for assembly text instead of binary objects where the two differ.
    pub device_passes: fn(config: &GpuConfig, tools: &DeviceTools, asm: bool) -> Result<String>,
    /// Turns the serialized device code (the object of the one `gpu.binary`) into the images
    /// an artifact embeds (SASS next to PTX, MSL per kernel, ...).
    pub images: ImagesFn,
    /// Whether each kernel gets an image of its own (image group = kernel index), rather than
    /// one image holding every kernel.
    pub image_per_kernel: bool,
    /// The CPU the host part of an artifact is compiled for (`None`: this machine's
    /// architecture, its deployment CPU).
    pub host: Option<(super::Arch, &'static str)>,
}
