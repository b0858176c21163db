//! Target descriptions: which machine code is generated for, and how.
//!
//! Invariant: every per-target fact (LLVM triple, default CPU, MLIR pass pipeline, object
//! format, LLVM back-end initialisation, and for GPUs the device API, chips and device code
//! passes) lives in exactly one place, the [`ArchSpec`] constant of that target's module
//! (`x86_64.rs`, `aarch64.rs`, `aarch64_apple.rs`, `nvptx.rs`, `amdgpu.rs`, `spirv.rs`,
//! `metal.rs`). The rest of the crate reads these facts through [`Target`] and never matches on
//! the architecture itself, so adding a target means adding one module and one [`Arch`] variant.
//!
//! A GPU target describes device code; the host part of its artifacts is compiled for
//! [`Target::host_target`] (this machine's architecture at its deployment CPU, or arm64 macOS
//! for Metal).

mod aarch64;
mod aarch64_apple;
mod amdgpu;
mod cpu;
pub mod gpu;
mod llvm_cpu;
mod metal;
mod nvptx;
mod spirv;
mod x86_64;

pub use gpu::{ContractionTile, DeviceApi, DeviceImage, DeviceTools, GpuConfig, ImageFormat};

pub use cpu::{CPU_PIPELINE, CPU_PLANNED_PIPELINE};
pub use llvm_cpu::{cpu_is_valid, cpu_names, enabled_features, llvm_version};

use crate::error::{CodegenError, Result};
use std::fmt;

/// An instruction-set family Kiln generates code for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// 64-bit x86 CPUs.
    X86_64,
    /// 64-bit Arm CPUs (Linux, GNU ABI).
    Aarch64,
    /// 64-bit Arm macOS (Mach-O): the host part of Metal artifacts.
    Aarch64Apple,
    /// NVIDIA GPUs (PTX, CUDA).
    Nvptx,
    /// AMD GPUs (amdgcn, HSA, ROCm).
    Amdgpu,
    /// Vulkan compute (SPIR-V).
    Spirv,
    /// Apple GPUs (Metal Shading Language).
    Metal,
}

impl Arch {
    /// Every architecture, in a stable order.
    pub const ALL: [Arch; 7] = [
        Arch::X86_64,
        Arch::Aarch64,
        Arch::Aarch64Apple,
        Arch::Nvptx,
        Arch::Amdgpu,
        Arch::Spirv,
        Arch::Metal,
    ];

    /// The facts that describe this architecture (the one `match` on `Arch` in the crate).
    pub(crate) fn spec(self) -> &'static ArchSpec {
        match self {
            Arch::X86_64 => &x86_64::SPEC,
            Arch::Aarch64 => &aarch64::SPEC,
            Arch::Aarch64Apple => &aarch64_apple::SPEC,
            Arch::Nvptx => &nvptx::SPEC,
            Arch::Amdgpu => &amdgpu::SPEC,
            Arch::Spirv => &spirv::SPEC,
            Arch::Metal => &metal::SPEC,
        }
    }

    /// The short name used in target strings (`x86_64`, `aarch64`, `cuda`, `rocm`, `vulkan`,
    /// `metal`, ...).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Whether this is a GPU (device) architecture.
    pub fn is_gpu(self) -> bool {
        self.spec().gpu.is_some()
    }

    /// The chips a GPU architecture lists (`--print-targets`); empty for CPUs.
    pub fn chips(self) -> &'static [gpu::Chip] {
        self.spec().gpu.map_or(&[], |g| g.chips)
    }

    /// The device API of a GPU architecture.
    pub fn device_api(self) -> Option<DeviceApi> {
        self.spec().gpu.map(|g| g.api)
    }

    /// The architecture this library itself was compiled for, if Kiln can target it.
    pub fn of_host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }
}

/// The per-architecture constants. One instance per target module.
pub(crate) struct ArchSpec {
    /// Short name, also the prefix of target strings.
    pub name: &'static str,
    /// LLVM target triple.
    pub triple: &'static str,
    /// LLVM CPU used when the target string names none.
    pub default_cpu: &'static str,
    /// The CPU `kiln compile` generates for when no `--cpu` is given: what a
    /// deployed artifact should assume about the machines it will run on.
    pub deploy_cpu: &'static str,
    /// Machine and byte order of host objects; `None` for GPUs, whose code is embedded in a
    /// host object rather than linked as its own file.
    pub elf: Option<(object::Architecture, object::Endianness)>,
    /// The object file format of host objects (ELF, or Mach-O on macOS).
    pub object_format: object::BinaryFormat,
    /// Registers the LLVM back end (idempotent, cheap after the first call).
    pub initialize_llvm: fn(),
    /// The MLIR pass pipeline (textual, `builtin.module(...)`) for a given CPU/chip name.
    pub mlir_pipeline: fn(cpu: &str) -> String,
    /// The CPU code generation choices for a CPU with these LLVM features (every feature the
    /// CPU name and feature string imply, without `+`); `None` for GPUs.
    pub cpu_config: Option<fn(features: &[String]) -> CpuConfig>,
    /// The GPU lowering's per-target part; `None` for CPUs.
    pub gpu: Option<&'static gpu::GpuSpec>,
}

/// What the CPU code of an artifact is tuned for: the one place where tile sizes, vector width
/// and kernel strategy are chosen per target (filled by each CPU target's module). Passes see
/// the part they need through the driver (the layout convolution chains run in, the panel
/// width of packed weights); the lowering reads the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuConfig {
    /// The kernel library's instantiation: vector lanes and GEMM register tile.
    pub variant: crate::kernels::Variant,
    /// Whether convolution chains run in NHWC (the layout the convolution kernels read).
    pub conv_nhwc: bool,
    /// Whether the CPU has 8-bit dot products in the variant's vector width (x86 VNNI
    /// `vpdpbusd`: AVX512-VNNI for `w16r32`, AVX-VNNI or AVX512-VNNI with VL for `w8r16`;
    /// AArch64 SDOT with the dot product extension), so `quant.matmul_integer` calls the
    /// `igemmv` kernel.
    pub int8_dot: bool,
    /// Whether, lacking those, the CPU multiplies u8 by i8 in pairs summed into int16
    /// (`pmaddubsw`, which saturates) in the variant's vector width: x86 AVX2 (`w8r16`). Exact
    /// where the i8 operand stays within [-64, 64], so `pack-weights` packs such constant
    /// weights of `quant.matmul_integer` as `int8_gemm_b_narrow`, the lowering calls the
    /// `igemmp` kernel on them, and `quantize-weights` makes its dynamic int8 weights 7-bit
    /// (`int7`, codes within [-63, 63]), as ONNX Runtime's `reduce_range` does for this
    /// instruction.
    pub int8_pairs: bool,
    /// Whether 3x3 stride-1 convolutions with enough output tiles run Winograd F(2x2, 3x3)
    /// (`kernels/wino.h`; which ones: `kernels::abi::wino_chunk_tiles`).
    pub winograd: bool,
    /// Whether one-row products with 4-bit weights read them re-laid out in panels of 16
    /// output columns (`row_panels_k8` codes, `row_panels` scales; `qg_gemvp` in
    /// `kernels/qgemm.h`): 16-lane lookups add 16 columns' products per instruction with no
    /// horizontal sums. Only the 16-lane variant has the fast loop.
    pub qgemv_panels: bool,
}

impl CpuConfig {
    /// Rows per panel of the 4-bit GEMV's weights, 0 where they stay as stored.
    pub fn qgemv_panel(&self) -> usize {
        if self.qgemv_panels {
            crate::kernels::abi::QG_PANEL as usize
        } else {
            0
        }
    }

    /// Width of packed weight panels (`gemm_b`, `conv_nhwc`): the GEMM tile's NR.
    pub fn panel_width(&self) -> usize {
        self.variant.nr()
    }
}

/// A complete code generation target: architecture, CPU (or GPU chip) and LLVM feature string.
///
/// Build one with [`Target::parse`], [`Target::host`] or [`Target::new`]. Target strings:
///
/// | string                         | meaning                                            |
/// |--------------------------------|----------------------------------------------------|
/// | `host`, `native`               | this machine's CPU and features                    |
/// | `x86-64`, `x86-64-v2/-v3/-v4`  | x86-64 with that LLVM CPU (micro-architecture level)|
/// | `x86_64[:CPU]`                 | x86-64 with any LLVM CPU name (`skylake`, ...)     |
/// | `aarch64[-linux-gnu][:CPU]`    | AArch64 Linux, default CPU `generic`               |
/// | `aarch64-apple-darwin[:CPU]`   | arm64 macOS (Mach-O), default `apple-m1`           |
/// | `cuda[:sm_NN]`, `nvptx64-nvidia-cuda` | NVIDIA GPUs (PTX), default `sm_90`          |
/// | `rocm[:gfxNNN]`, `amdgcn-amd-amdhsa`  | AMD GPUs (HSACO), default `gfx942`          |
/// | `vulkan`                       | Vulkan compute (SPIR-V)                            |
/// | `metal`                        | Apple GPUs (MSL; host code arm64 macOS)            |
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    arch: Arch,
    cpu: String,
    features: String,
}

impl Target {
    /// A target with an explicit CPU and LLVM feature string (e.g. `+avx2,+fma`; may be empty).
    pub fn new(arch: Arch, cpu: impl Into<String>, features: impl Into<String>) -> Self {
        Self {
            arch,
            cpu: cpu.into(),
            features: features.into(),
        }
    }

    /// The default CPU of an architecture, with no extra features.
    pub fn generic(arch: Arch) -> Self {
        Self::new(arch, arch.spec().default_cpu, "")
    }

    /// The portable default of a deployed artifact for `arch` (see
    /// `ArchSpec::deploy_cpu`): `x86-64-v3` (AVX2, FMA, BMI2; every x86-64
    /// server CPU since 2015), AArch64 `generic` (Armv8-A with NEON).
    pub fn deploy(arch: Arch) -> Self {
        Self::new(arch, arch.spec().deploy_cpu, "")
    }

    /// The machine this code runs on, with its exact CPU and features (as `-march=native`).
    pub fn host() -> Result<Self> {
        let arch = Arch::of_host().ok_or_else(|| CodegenError::UnknownTarget("host".into()))?;
        let cpu = inkwell::targets::TargetMachine::get_host_cpu_name();
        let features = inkwell::targets::TargetMachine::get_host_cpu_features();
        Ok(Self::new(
            arch,
            cpu.to_string_lossy().into_owned(),
            features.to_string_lossy().into_owned(),
        ))
    }

    /// Parses a target string (see the table on [`Target`]).
    pub fn parse(spec: &str) -> Result<Self> {
        let unknown = || CodegenError::UnknownTarget(spec.to_owned());
        match spec {
            "host" | "native" => return Self::host(),
            "x86-64" | "x86-64-v2" | "x86-64-v3" | "x86-64-v4" => {
                return Ok(Self::new(Arch::X86_64, spec, ""))
            }
            _ => {}
        }
        let (name, cpu) = match spec.split_once(':') {
            Some((name, cpu)) if !cpu.is_empty() => (name, Some(cpu)),
            Some(_) => return Err(unknown()),
            None => (spec, None),
        };
        let arch = match name {
            "x86_64" | "x86_64-linux-gnu" | "x86_64-unknown-linux-gnu" => Arch::X86_64,
            "aarch64" | "aarch64-linux-gnu" | "aarch64-unknown-linux-gnu" => Arch::Aarch64,
            "aarch64-apple"
            | "aarch64-apple-darwin"
            | "arm64-apple-darwin"
            | "arm64-apple-macosx" => Arch::Aarch64Apple,
            "cuda" | "nvptx" | "nvptx64" | "nvptx64-nvidia-cuda" => Arch::Nvptx,
            "rocm" | "hip" | "amdgpu" | "amdgcn" | "amdgcn-amd-amdhsa" => Arch::Amdgpu,
            "vulkan" | "spirv" | "spirv64" | "spirv64-unknown-vulkan" => Arch::Spirv,
            "metal" => Arch::Metal,
            _ => return Err(unknown()),
        };
        // The CPU name ends up inside the MLIR pipeline text for GPUs, so only plain
        // identifiers are accepted (no braces, commas or spaces that could alter the pipeline).
        if let Some(cpu) = cpu {
            if !cpu
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(unknown());
            }
        }
        Ok(Self::new(arch, cpu.unwrap_or(arch.spec().default_cpu), ""))
    }

    /// Checks with LLVM that the CPU name exists for this architecture, so
    /// that a misspelt `--cpu` is an error rather than LLVM's warning and a
    /// generic fallback.
    pub fn validate(&self) -> Result<()> {
        if let Some(g) = self.arch.spec().gpu {
            let listed = g.chips.iter().any(|c| c.name == self.cpu);
            if listed || (g.llvm_chips && cpu_is_valid(self, &self.cpu)?) {
                return Ok(());
            }
            return Err(CodegenError::UnknownCpu {
                arch: self.arch.name(),
                cpu: self.cpu.clone(),
            });
        }
        if cpu_is_valid(self, &self.cpu)? {
            Ok(())
        } else {
            Err(CodegenError::UnknownCpu {
                arch: self.arch.name(),
                cpu: self.cpu.clone(),
            })
        }
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The LLVM CPU (or GPU chip) name.
    pub fn cpu(&self) -> &str {
        &self.cpu
    }

    /// The LLVM feature string (comma-separated `+feat`/`-feat`, possibly empty).
    pub fn features(&self) -> &str {
        &self.features
    }

    /// The CPU code generation choices for this target (`None` for GPUs), from every feature
    /// its CPU and feature string imply (LLVM's own CPU tables, so `znver3` or `x86-64-v4`
    /// need no table here).
    pub fn cpu_config(&self) -> Option<CpuConfig> {
        let choose = self.arch.spec().cpu_config?;
        let features = match llvm_cpu::enabled_features(self) {
            Ok(f) => f,
            // An unknown CPU was refused earlier; fall back to the explicit feature string.
            Err(_) => self
                .features
                .split(',')
                .filter_map(|f| f.strip_prefix('+'))
                .map(str::to_owned)
                .collect(),
        };
        Some(choose(&features))
    }

    /// The LLVM target triple.
    pub fn triple(&self) -> &'static str {
        self.arch.spec().triple
    }

    /// The MLIR pass pipeline that lowers this target's input to the LLVM dialect, in the
    /// textual form accepted by `mlir-opt --pass-pipeline=` and `parse_pass_pipeline`.
    pub fn mlir_pipeline(&self) -> String {
        (self.arch.spec().mlir_pipeline)(&self.cpu)
    }

    /// Machine and byte order of host objects for this target, `None` for GPUs.
    pub fn elf_arch(&self) -> Option<(object::Architecture, object::Endianness)> {
        self.arch.spec().elf
    }

    /// The object file format of host objects (ELF, or Mach-O on macOS).
    pub fn object_format(&self) -> object::BinaryFormat {
        self.arch.spec().object_format
    }

    /// The CPU target of the host part of an artifact: the target itself for CPUs; for GPUs
    /// this machine's architecture at its deployment CPU (`x86-64-v3`), or arm64 macOS for
    /// Metal.
    pub fn host_target(&self) -> Result<Target> {
        match self.arch.spec().gpu {
            None => Ok(self.clone()),
            Some(g) => match g.host {
                Some((arch, cpu)) => Ok(Target::new(arch, cpu, "")),
                None => Arch::of_host()
                    .map(Target::deploy)
                    .ok_or_else(|| CodegenError::UnknownTarget("host".into())),
            },
        }
    }

    /// The code generation facts of a GPU target's chip; `None` for CPUs.
    pub fn gpu_config(&self) -> Option<GpuConfig> {
        self.arch.spec().gpu.map(|g| (g.config)(&self.cpu))
    }

    /// The per-target part of the GPU lowering.
    pub(crate) fn gpu_spec(&self) -> Option<&'static gpu::GpuSpec> {
        self.arch.spec().gpu
    }

    /// Registers this target's LLVM back end (idempotent).
    pub fn initialize_llvm(&self) {
        (self.arch.spec().initialize_llvm)();
    }
}

/// Displays `arch:cpu`. Feature strings (long for host targets) appear only in `Debug`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.arch.name(), self.cpu)
    }
}

impl std::str::FromStr for Target {
    type Err = CodegenError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_targets() {
        let t = Target::parse("x86-64-v3").unwrap();
        assert_eq!((t.arch(), t.cpu()), (Arch::X86_64, "x86-64-v3"));
        let t = Target::parse("aarch64-linux-gnu").unwrap();
        assert_eq!(
            (t.arch(), t.cpu(), t.triple()),
            (Arch::Aarch64, "generic", "aarch64-unknown-linux-gnu")
        );
        let t = Target::parse("nvptx:sm_80").unwrap();
        assert_eq!((t.arch(), t.cpu()), (Arch::Nvptx, "sm_80"));
        assert!(t.mlir_pipeline().contains("chip=sm_80"));
        let t = Target::parse("amdgpu").unwrap();
        assert_eq!((t.arch(), t.cpu()), (Arch::Amdgpu, "gfx942"));
        assert_eq!(t.to_string(), "rocm:gfx942");
        for (spec, arch, chip) in [
            ("cuda", Arch::Nvptx, "sm_90"),
            ("cuda:sm_86", Arch::Nvptx, "sm_86"),
            ("nvptx64-nvidia-cuda", Arch::Nvptx, "sm_90"),
            ("rocm:gfx1100", Arch::Amdgpu, "gfx1100"),
            ("amdgcn-amd-amdhsa", Arch::Amdgpu, "gfx942"),
            ("vulkan", Arch::Spirv, "generic"),
            ("metal", Arch::Metal, "generic"),
        ] {
            let t = Target::parse(spec).unwrap();
            assert_eq!((t.arch(), t.cpu()), (arch, chip), "{spec}");
            t.validate().unwrap();
            assert!(t.arch().is_gpu());
        }
        assert_eq!(
            Target::parse("metal")
                .unwrap()
                .host_target()
                .unwrap()
                .arch(),
            Arch::Aarch64Apple
        );
        assert_eq!(
            Target::parse("cuda").unwrap().host_target().unwrap().arch(),
            Arch::of_host().unwrap()
        );
    }

    #[test]
    fn rejects_bad_targets() {
        for bad in [
            "",
            "mips",
            "x86_64:",
            "nvptx:sm_90}, evil",
            "aarch64:a b",
            "cuda:sm 90",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(CodegenError::UnknownTarget(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn host_target_matches_build_arch() {
        let host = Target::host().unwrap();
        assert_eq!(Some(host.arch()), Arch::of_host());
        assert!(!host.cpu().is_empty());
    }

    #[test]
    fn gpu_targets_have_no_host_object() {
        for arch in Arch::ALL {
            assert_eq!(arch.is_gpu(), Target::generic(arch).elf_arch().is_none());
            assert_eq!(arch.is_gpu(), !arch.chips().is_empty());
        }
        assert!(Arch::Nvptx.is_gpu() && Arch::Amdgpu.is_gpu() && !Arch::X86_64.is_gpu());
        assert!(Arch::Spirv.is_gpu() && Arch::Metal.is_gpu() && !Arch::Aarch64Apple.is_gpu());
    }

    #[test]
    fn contraction_tiles_and_reduction_trees_fit_each_chip() {
        for arch in Arch::ALL.into_iter().filter(|a| a.is_gpu()) {
            for chip in arch.chips() {
                let t = Target::new(arch, chip.name, "");
                let c = t.gpu_config().unwrap();
                let tile = c
                    .contraction_tile
                    .expect("every GPU target tiles contractions");
                // The tile kernel's launch: within the threads a mapped loop may use (the
                // API's guarantee) and the chip's shared memory, whole warps, and a staged
                // tile that splits evenly over the block (what the pass requires).
                assert!(tile.block_threads() <= c.block_size, "{t}");
                assert_eq!(tile.block_threads() % c.warp_size.min(32), 0, "{t}");
                assert!(tile.shared_bytes() <= c.shared_memory_bytes, "{t}");
                assert_eq!(
                    (tile.k * tile.threads * tile.micro) % tile.block_threads(),
                    0,
                    "{t}"
                );
                assert!(crate::gpu::shared_passes(&c).contains(&format!(
                    "kiln-gpu-tile-contractions{{threads={} micro={} tile-k={}",
                    tile.threads, tile.micro, tile.k
                )));
                // Reduction trees: a block of at most block_size threads, one value each in
                // workgroup memory, and at least a warp of elements per thread block.
                let min = c
                    .reduction_tree_min_extent
                    .expect("every GPU target has trees");
                assert!(min >= c.warp_size.min(32) && c.block_size * 4 <= c.shared_memory_bytes);
                assert!(crate::gpu::shared_passes(&c).contains(&format!(
                    "kiln-gpu-reduction-trees{{block-size={} min-extent={min}",
                    c.block_size
                )));
            }
        }
    }

    #[test]
    fn unknown_chips_are_refused() {
        for bad in ["vulkan:sm_90", "metal:gfx942", "cuda:gfx942", "rocm:sm_80"] {
            let t = Target::parse(bad).unwrap();
            assert!(
                matches!(t.validate(), Err(CodegenError::UnknownCpu { .. })),
                "{bad} was accepted"
            );
        }
    }
}
