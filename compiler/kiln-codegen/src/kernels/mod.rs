//! The CPU kernel library: micro-kernels written once in C (`kernels/`), compiled per artifact.
//!
//! `build.rs` compiles `kernels/kernels.c` with clang 22 to LLVM bitcode for each CPU
//! architecture, without any target CPU, features or LLVM optimisation. [`compile_kernels`]
//! turns that bitcode into an object for one artifact's [`Target`]:
//! 1. the function attributes that name the build machine's CPU (`target-cpu`,
//!    `target-features`, `tune-cpu`) are removed, so the artifact's target machine supplies its
//!    own CPU and features: the same bitcode becomes AVX-512 code for `x86-64-v4`, AVX2 code for
//!    `x86-64-v3`, SSE2 code for `x86-64` and NEON code for AArch64, and an artifact never
//!    executes an instruction its target CPU lacks;
//! 2. every kernel not in `used` becomes internal and is dropped before optimisation, so an
//!    artifact pays compile time and code size only for the kernels it calls;
//! 3. the artifact's own LLVM pipeline (`default<ON>`) makes the vectorization, unrolling and
//!    instruction selection decisions for the target.
//!
//! Invariants:
//! - Kernels are `void kiln_k_<kernel>_<variant>(const int64_t *args)` with hidden visibility;
//!   the argument block is described by [`abi`] (mirroring `kernels/kiln_kernels.h`).
//! - Kernels call nothing but the parallel shim's `kiln_par_for`, `kiln_par_threads` and
//!   `kiln_par_min_work` (see [`PAR_SYMBOLS`]) and, possibly, `memcpy`/`memset`: no libm.
//! - A variant is a register budget (vector lanes x registers), not an ISA: any variant runs
//!   correctly on any CPU of the architecture, except the 16-lane one, which uses AVX-512F
//!   builtins, and the 8-bit dot-product kernels ([`Kernel::compiles_for`]);
//!   [`Variant::for_target`] picks the fast one.

pub mod abi;
pub mod harness;

use crate::error::{CodegenError, Result};
use crate::llvm::{self, LlvmOutput, OptLevel};
use crate::targets::{Arch, Target};
use inkwell::attributes::AttributeLoc;
use inkwell::context::Context;
use inkwell::memory_buffer::MemoryBuffer;
use inkwell::module::{Linkage, Module};
use inkwell::passes::PassBuilderOptions;

/// Bitcode of the library for x86-64 (see `build.rs`).
static X86_64_BITCODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernels-x86_64.bc"));
/// Bitcode of the library for AArch64.
static AARCH64_BITCODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernels-aarch64.bc"));

/// The parallel-shim functions kernels call (defined in `parallel/shim.c`).
pub const PAR_SYMBOLS: [&str; 3] = ["kiln_par_for", "kiln_par_threads", "kiln_par_min_work"];

/// A kernel of the library (the `<kernel>` part of `kiln_k_<kernel>_<variant>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `C = epilogue(A . B)`, batched; B packed (`gemm_b`) or runtime ([`abi::GemmArgs`]).
    Gemm,
    /// NHWC convolution with `conv_nhwc` weights ([`abi::ConvArgs`]).
    Conv2d,
    /// Depthwise NHWC convolution with `dwconv_nhwc` weights ([`abi::DwConvArgs`]).
    DwConv2d,
    /// An epilogue program over a matrix view ([`abi::EltwiseArgs`]).
    Eltwise,
    /// Softmax or log-softmax over rows ([`abi::SoftmaxArgs`]).
    Softmax,
    /// Layer-norm or RMS-norm over rows ([`abi::NormArgs`]).
    Norm,
    /// NHWC max or average pooling ([`abi::PoolArgs`]).
    Pool2d,
    /// Global max or average pooling ([`abi::GlobalPoolArgs`]).
    GlobalPool,
    /// Fused attention with an online softmax ([`abi::AttentionArgs`]).
    Attention,
    /// Product with a block-quantized weight decoded as it is read
    /// ([`abi::QGemmArgs`]).
    QGemm,
    /// A strided copy of a box: concat, split, slice, transpose ([`abi::CopyArgs`]).
    Copy,
    /// Exact 8-bit integer product, portable path ([`abi::IGemmArgs`]).
    IGemm,
    /// The same with 8-bit dot products (x86 VNNI, Arm SDOT): only for targets with
    /// `CpuConfig::int8_dot`.
    IGemmVnni,
    /// The same dot products as x86 `pmaddubsw` pairs (AVX2 without VNNI), exact for an i8 B
    /// within [-64, 64]: only for targets with `CpuConfig::int8_pairs`, on a B packed as
    /// `int8_gemm_b_narrow`.
    IGemmPairs,
    /// `quant.conv_integer` on the int8 product, portable path ([`abi::IConvArgs`]).
    IConv,
    /// The same with 8-bit dot products (as [`Kernel::IGemmVnni`]).
    IConvVnni,
    /// Max or min of a whole tensor ([`abi::RMinMaxArgs`]).
    RMinMax,
    /// Per-tensor quantization of f32 to u8/i8 ([`abi::QuantizeArgs`]).
    Quantize,
}

impl Kernel {
    /// Every kernel, in a stable order.
    pub const ALL: [Kernel; 18] = [
        Kernel::Gemm,
        Kernel::Conv2d,
        Kernel::DwConv2d,
        Kernel::Eltwise,
        Kernel::Softmax,
        Kernel::Norm,
        Kernel::Pool2d,
        Kernel::GlobalPool,
        Kernel::Attention,
        Kernel::QGemm,
        Kernel::Copy,
        Kernel::IGemm,
        Kernel::IGemmVnni,
        Kernel::IGemmPairs,
        Kernel::IConv,
        Kernel::IConvVnni,
        Kernel::RMinMax,
        Kernel::Quantize,
    ];

    /// The name in the symbol (`gemm`, `conv2d`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Gemm => "gemm",
            Kernel::Conv2d => "conv2d",
            Kernel::DwConv2d => "dwconv2d",
            Kernel::Eltwise => "eltwise",
            Kernel::Softmax => "softmax",
            Kernel::Norm => "norm",
            Kernel::Pool2d => "pool2d",
            Kernel::GlobalPool => "gpool",
            Kernel::Attention => "attention",
            Kernel::QGemm => "qgemm",
            Kernel::Copy => "copy",
            Kernel::IGemm => "igemm",
            Kernel::IGemmVnni => "igemmv",
            Kernel::IGemmPairs => "igemmp",
            Kernel::IConv => "iconv",
            Kernel::IConvVnni => "iconvv",
            Kernel::RMinMax => "rminmax",
            Kernel::Quantize => "quantize",
        }
    }

    /// The symbol of this kernel in `variant`.
    pub fn symbol(self, variant: Variant) -> String {
        format!("kiln_k_{}_{}", self.name(), variant.name())
    }

    /// Whether `variant`'s instance of this kernel can be compiled for `target`: the 8-bit
    /// dot-product kernels need the instruction (`CpuConfig::int8_dot`) and the variant the
    /// target's CPU uses, and every [`Variant::W16R32`] kernel needs AVX-512F (its 4-bit
    /// table lookups are `vpermps` builtins); LLVM cannot select those instructions
    /// otherwise, and the lowering never calls them there.
    pub fn compiles_for(self, target: &Target, variant: Variant) -> bool {
        let config = target.cpu_config();
        if matches!(self, Kernel::IGemmVnni | Kernel::IConvVnni) {
            return config.is_some_and(|c| c.int8_dot && c.variant == variant);
        }
        if self == Kernel::IGemmPairs {
            return config.is_some_and(|c| c.int8_pairs && c.variant == variant);
        }
        variant != Variant::W16R32 || config.is_some_and(|c| c.variant == Variant::W16R32)
    }
}

/// A register budget the kernels are instantiated for: vector lanes (f32) and the GEMM register
/// tile `mr x nr`. Packed B operands (`gemm_b`, `conv_nhwc`) must use the [`Variant::nr`] of
/// the variant that reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// 4 lanes, 16 registers, tile 6 x 8: x86-64 without AVX (the `x86-64`/`-v2` baseline).
    W4R16,
    /// 8 lanes, 16 registers, tile 6 x 16: x86-64 with AVX2 + FMA (`x86-64-v3`, Zen 1-3,
    /// Haswell to Alder Lake).
    W8R16,
    /// 16 lanes, 32 registers, tile 6 x 64: x86-64 with AVX-512F (`x86-64-v4`, Skylake-SP and
    /// later Xeons, Zen 4/5).
    W16R32,
    /// 4 lanes, 32 registers, tile 8 x 12: AArch64 (NEON).
    W4R32,
}

impl Variant {
    /// Every variant, in a stable order.
    pub const ALL: [Variant; 4] = [
        Variant::W4R16,
        Variant::W8R16,
        Variant::W16R32,
        Variant::W4R32,
    ];

    /// The symbol suffix (`w8r16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Variant::W4R16 => "w4r16",
            Variant::W8R16 => "w8r16",
            Variant::W16R32 => "w16r32",
            Variant::W4R32 => "w4r32",
        }
    }

    /// f32 lanes of a vector.
    pub fn lanes(self) -> usize {
        match self {
            Variant::W4R16 | Variant::W4R32 => 4,
            Variant::W8R16 => 8,
            Variant::W16R32 => 16,
        }
    }

    /// Rows of the GEMM register tile.
    pub fn mr(self) -> usize {
        abi::variant_tile(self).0
    }

    /// Columns of the GEMM register tile: the panel width of packed B operands.
    pub fn nr(self) -> usize {
        abi::variant_tile(self).1
    }

    /// The fastest variant for `target`, from its CPU name and feature string. Any variant is
    /// correct on any CPU of its architecture (the code is compiled for the target's own
    /// features), so a wrong guess costs speed only.
    pub fn for_target(target: &Target) -> Option<Variant> {
        match target.arch() {
            Arch::Aarch64 => Some(Variant::W4R32),
            Arch::X86_64 => {
                let has = |f: &str| target.features().split(',').any(|x| x == f);
                let cpu = target.cpu();
                if has("+avx512f") || AVX512_CPUS.contains(&cpu) {
                    Some(Variant::W16R32)
                } else if has("+avx2") || AVX2_CPUS.contains(&cpu) {
                    Some(Variant::W8R16)
                } else {
                    Some(Variant::W4R16)
                }
            }
            Arch::Aarch64Apple | Arch::Nvptx | Arch::Amdgpu | Arch::Spirv | Arch::Metal => None,
        }
    }
}

/// LLVM x86 CPU names with AVX-512F (used when the feature string does not say).
const AVX512_CPUS: &[&str] = &[
    "x86-64-v4",
    "skylake-avx512",
    "cascadelake",
    "cooperlake",
    "cannonlake",
    "icelake-client",
    "icelake-server",
    "tigerlake",
    "rocketlake",
    "sapphirerapids",
    "emeraldrapids",
    "graniterapids",
    "graniterapids-d",
    "diamondrapids",
    "znver4",
    "znver5",
];

/// LLVM x86 CPU names with AVX2 (and FMA) but not AVX-512F.
const AVX2_CPUS: &[&str] = &[
    "x86-64-v3",
    "haswell",
    "broadwell",
    "skylake",
    "alderlake",
    "raptorlake",
    "meteorlake",
    "arrowlake",
    "arrowlake-s",
    "lunarlake",
    "pantherlake",
    "gracemont",
    "sierraforest",
    "grandridge",
    "clearwaterforest",
    "znver1",
    "znver2",
    "znver3",
    "bdver4",
];

/// Every kernel symbol the library defines (kernels x variants).
pub fn kernel_names() -> Vec<String> {
    Variant::ALL
        .iter()
        .flat_map(|&v| Kernel::ALL.iter().map(move |k| k.symbol(v)))
        .collect()
}

/// The library's bitcode for `target`'s architecture: what a cache of compiled kernels must key
/// on, besides the target and the symbol.
pub fn library_bitcode(target: &Target) -> Result<&'static [u8]> {
    bitcode(target)
}

fn bitcode(target: &Target) -> Result<&'static [u8]> {
    match target.arch() {
        Arch::X86_64 => Ok(X86_64_BITCODE),
        Arch::Aarch64 => Ok(AARCH64_BITCODE),
        Arch::Aarch64Apple | Arch::Nvptx | Arch::Amdgpu | Arch::Spirv | Arch::Metal => {
            Err(CodegenError::UnsupportedTarget {
                operation: "the CPU kernel library",
                target: target.to_string(),
            })
        }
    }
}

/// The function attributes that name the bitcode's build CPU; removed so that the artifact's
/// target machine decides.
const TARGET_ATTRIBUTES: [&str; 3] = ["target-cpu", "target-features", "tune-cpu"];

/// Compiles the kernels named in `used` (symbols from [`kernel_names`]) for `target` and returns
/// a relocatable object defining them (hidden visibility). Other kernels are not compiled.
pub fn compile_kernels(target: &Target, opt: OptLevel, used: &[&str]) -> Result<Vec<u8>> {
    let bitcode = bitcode(target)?;
    let known = kernel_names();
    if let Some(bad) = used.iter().find(|u| !known.iter().any(|k| k == *u)) {
        return Err(CodegenError::UnknownKernel((*bad).to_owned()));
    }
    let context = Context::create();
    let buffer = MemoryBuffer::create_from_memory_range(bitcode, "kiln-kernels");
    let module = Module::parse_bitcode_from_buffer(&buffer, &context)
        .map_err(|e| CodegenError::KernelBitcode(e.to_string()))?;
    retarget_and_prune(&module, used);
    let machine = llvm::target_machine(target, opt)?;
    llvm::prepare_module(&module, &machine)?;
    // Drop the unused kernels (and what only they call) before the expensive pipeline.
    module
        .run_passes("globaldce", &machine, PassBuilderOptions::create())
        .map_err(|message| CodegenError::LlvmPasses {
            pipeline: "globaldce".to_owned(),
            message: message.to_string(),
        })?;
    llvm::optimize(&module, &machine, opt)?;
    llvm::emit_module(&module, &machine, LlvmOutput::Obj)
}

/// Removes the build CPU's attributes from every function and internalizes every definition
/// that is not in `used`.
fn retarget_and_prune(module: &Module<'_>, used: &[&str]) {
    for function in module.get_functions() {
        for key in TARGET_ATTRIBUTES {
            if function
                .get_string_attribute(AttributeLoc::Function, key)
                .is_some()
            {
                function.remove_string_attribute(AttributeLoc::Function, key);
            }
        }
        let is_definition = function.count_basic_blocks() > 0;
        let name = function.get_name().to_string_lossy();
        if is_definition && !used.contains(&name.as_ref()) {
            function.set_linkage(Linkage::Internal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcode_defines_every_kernel_for_every_arch() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let context = Context::create();
            let bc = bitcode(&Target::generic(arch)).unwrap();
            let buffer = MemoryBuffer::create_from_memory_range(bc, "k");
            let module = Module::parse_bitcode_from_buffer(&buffer, &context).unwrap();
            for name in kernel_names() {
                let f = module
                    .get_function(&name)
                    .unwrap_or_else(|| panic!("{name} missing for {arch:?}"));
                assert!(f.count_basic_blocks() > 0, "{name} is only declared");
            }
        }
    }

    #[test]
    fn sixteen_lane_kernels_compile_only_for_avx512() {
        let t = |s: &str| Target::parse(s).unwrap();
        for kernel in [Kernel::QGemm, Kernel::Gemm] {
            assert!(kernel.compiles_for(&t("x86-64-v4"), Variant::W16R32));
            assert!(!kernel.compiles_for(&t("x86-64-v3"), Variant::W16R32));
            assert!(!kernel.compiles_for(&t("x86-64"), Variant::W16R32));
            assert!(kernel.compiles_for(&t("x86-64-v4"), Variant::W8R16));
            assert!(kernel.compiles_for(&t("x86-64"), Variant::W4R32));
        }
        assert!(!Kernel::IGemmVnni.compiles_for(&t("x86-64-v4"), Variant::W16R32));
        assert!(Kernel::IGemmVnni.compiles_for(&t("x86_64:cascadelake"), Variant::W16R32));
    }

    #[test]
    fn variants_follow_target_features() {
        let t = |s: &str| Target::parse(s).unwrap();
        assert_eq!(Variant::for_target(&t("x86-64")), Some(Variant::W4R16));
        assert_eq!(Variant::for_target(&t("x86-64-v3")), Some(Variant::W8R16));
        assert_eq!(
            Variant::for_target(&t("x86_64:znver3")),
            Some(Variant::W8R16)
        );
        assert_eq!(Variant::for_target(&t("x86-64-v4")), Some(Variant::W16R32));
        assert_eq!(Variant::for_target(&t("aarch64")), Some(Variant::W4R32));
        assert_eq!(Variant::for_target(&t("nvptx")), None);
        let avx512 = Target::new(Arch::X86_64, "generic", "+sse2,+avx2,+avx512f");
        assert_eq!(Variant::for_target(&avx512), Some(Variant::W16R32));
        let no512 = Target::new(Arch::X86_64, "generic", "+avx2,-avx512f");
        assert_eq!(Variant::for_target(&no512), Some(Variant::W8R16));
    }

    #[test]
    fn unknown_kernels_are_refused() {
        let err = compile_kernels(
            &Target::generic(Arch::X86_64),
            OptLevel::O2,
            &["kiln_k_nope"],
        );
        assert!(matches!(err, Err(CodegenError::UnknownKernel(n)) if n == "kiln_k_nope"));
    }
}
