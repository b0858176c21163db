//! The pass interface.

use kiln_ir::Graph;
use std::collections::BTreeSet;
use thiserror::Error;

/// Options every pass sees. Built by the caller (the CLI or the driver) and
/// passed down; passes read nothing from the environment.
#[derive(Clone, Debug)]
pub struct PassOptions {
    /// Upper bound on the sweeps a fixpoint pass (canonicalize,
    /// shape-inference) makes over the graph before it stops.
    pub max_iterations: usize,
    /// Largest number of elements `fold-constants` gives one folded result
    /// (a new weight). Folding `nn.constant_of_shape`, `nn.expand` or
    /// `nn.tile` of tiny constants could otherwise turn a kilobyte model
    /// into gigabytes of weights.
    pub fold_max_elements: u64,
    /// Weights (by name) that stand for graph inputs frozen to constants
    /// only so that shapes become static (`kiln run` specializing a model
    /// to the values of its shape-defining inputs). `fold-constants` folds
    /// a node computed from one of them only when the node's results are
    /// needed at compile time (they reach an op's static operand), so the
    /// data path they feed stays generated code instead of being computed
    /// by the interpreter.
    pub specialized_inputs: BTreeSet<String>,
    /// Facts about the target's kernels (layout, panel width, epilogue
    /// length).
    pub target: TargetFacts,
    /// Weight quantization (`quantize-weights`; no scheme: off).
    pub quantize: crate::passes::quantize_weights::Options,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions {
            max_iterations: 32,
            fold_max_elements: 1 << 16,
            specialized_inputs: BTreeSet::new(),
            target: TargetFacts::default(),
            quantize: crate::passes::quantize_weights::Options::default(),
        }
    }
}

/// What the target-dependent passes need to know about the target's
/// kernels. The driver fills it from the target module (its kernel
/// configuration); the default describes no kernel library, so the
/// layout and packing passes leave the graph as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetFacts {
    /// The activation layout convolution chains should run in
    /// (`assign-layout`); NCHW means "leave them".
    pub conv_layout: kiln_ir::ops::layout::DataLayout,
    /// Panel width NR of packed GEMM and convolution weights (`gemm_b`,
    /// `conv_nhwc`) for `pack-weights`; 0 leaves weights unpacked.
    pub gemm_nr: u64,
    /// Pack depthwise convolution weights (`dwconv_nhwc`).
    pub pack_depthwise: bool,
    /// Most ops one fused epilogue may hold (`fuse-epilogue`).
    pub epilogue_max_ops: usize,
    /// The CPU has 8-bit dot products (x86 VNNI): `pack-weights` packs i8
    /// weights of `quant.matmul_integer` as `int8_gemm_b` (panel width
    /// `gemm_nr`).
    pub int8_dot: bool,
    /// Without those, the CPU multiplies u8 by i8 in saturating int16 pairs (x86 AVX2
    /// `pmaddubsw`), exact for i8 values within [-64, 64]: `pack-weights` packs constant i8
    /// weights of `quant.matmul_integer` known to lie there as `int8_gemm_b_narrow`, and
    /// `quantize-weights` quantizes dynamic int8 products' weights as `int7`.
    pub int8_pairs: bool,
    /// Rows per panel of the 4-bit GEMV's weights (`qg_gemvp`): `pack-weights`
    /// packs the constant 4-bit codes of a one-row `quant.matmul` as
    /// `row_panels_k8` and its scales as `row_panels` with this block; 0
    /// leaves them as stored.
    pub qgemv_panel: u64,
}

impl Default for TargetFacts {
    fn default() -> TargetFacts {
        TargetFacts {
            conv_layout: kiln_ir::ops::layout::DataLayout::Nchw,
            gemm_nr: 0,
            pack_depthwise: false,
            epilogue_max_ops: 8,
            int8_dot: false,
            int8_pairs: false,
            qgemv_panel: 0,
        }
    }
}

/// What a pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Number of rewrites (removed nodes, merged nodes, applied patterns,
    /// refined types).
    pub rewrites: usize,
}

impl PassStats {
    /// Whether the pass changed the graph.
    pub fn changed(&self) -> bool {
        self.rewrites > 0
    }
}

/// Why a pass or a pipeline run failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PassError {
    /// The graph failed verification after the named pass (or before the
    /// first pass, with `after = "input"`). A bug in the pass unless it is
    /// the input.
    #[error("verification failed after {after}:\n  {}", .messages.join("\n  "))]
    Verify {
        /// The pass that ran last, or `input`.
        after: String,
        /// The verifier's findings.
        messages: Vec<String>,
    },
    /// The pass does not handle something in the graph.
    #[error("{pass}: unsupported: {what}")]
    Unsupported {
        /// The pass.
        pass: &'static str,
        /// What it does not handle.
        what: String,
    },
}

/// Implements [`Pass::name`] and [`Pass::summary`] inside an `impl Pass`
/// from the pass module's registry entry `INFO`, so they cannot disagree.
macro_rules! pass_info {
    () => {
        fn name(&self) -> &'static str {
            INFO.name
        }
        fn summary(&self) -> &'static str {
            INFO.summary
        }
    };
}
pub(crate) use pass_info;

/// A graph-to-graph transformation.
///
/// Preconditions: the graph verifies. Postconditions: the graph verifies and
/// its interface is unchanged (see the crate invariants).
pub trait Pass {
    /// Kebab-case name, as written in pipelines.
    fn name(&self) -> &'static str;
    /// One-line summary.
    fn summary(&self) -> &'static str;
    /// Runs the pass.
    fn run(&self, g: &mut Graph, opts: &PassOptions) -> Result<PassStats, PassError>;
}
