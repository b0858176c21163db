//! Pipelines as data: an ordered list of registry entries that parses from
//! and prints to a comma-separated list of pass names.
//!
//! A list item may also name a pipeline from [`NAMED`] (`default`), which
//! expands in place, so `--passes=default,shape-inference` works.

use crate::registry::{self, PassInfo, PASSES};
use std::fmt;
use thiserror::Error;

/// A named pipeline.
#[derive(Clone, Copy, Debug)]
pub struct NamedPipeline {
    /// The name used in place of a pass list.
    pub name: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Pass names in order.
    pub passes: &'static [&'static str],
}

/// The default graph-level pipeline, one line per pass.
const DEFAULT: &[&str] = &[
    // First, so that fold-constants sees static extents to fold nn.shape
    // and nn.size with, and canonicalize sees refined types when it checks
    // that a neutral constant cannot broadcast its operand to a larger shape.
    "shape-inference",
    // Turns shape computations (nn.shape -> gather -> concat -> reshape
    // chains, as exported from PyTorch) and constant-only subgraphs into
    // constants, so that shape operands become readable.
    "fold-constants",
    // Again: reshape, slice and expand results whose shape operands were
    // just folded become static.
    "shape-inference",
    // Removes identities, neutral elements, inference dropout, and merges
    // transpose and reshape chains (static reshapes need the refined types
    // above); canonical forms make equal computations look equal for cse.
    "canonicalize",
    // After canonicalize: merges the duplicates canonicalize exposed, and
    // equal weights so that later stages store them once.
    "cse",
    // Last: drops what the rewrites above left unused, then the weights no
    // constant refers to any more.
    "dce",
];

/// `-O1`: the cleanup of `default`, then what a model's ops mean rather
/// than how an exporter spelled them (target-independent, no fusion), and
/// a memory plan, so that the lowering emits each node on its own into
/// planned buffers (one arena, no allocation per run).
const O1: &[&str] = &[
    // The default pipeline first: static types, folded shape computations
    // and canonical forms are what the recognizers match on.
    "shape-inference",
    // Before fold-constants: a QDQ model's dequantized weights stay
    // quantized (quant.matmul) instead of folding into f32 constants.
    "recognize-qdq-weights",
    "fold-constants",
    "shape-inference",
    "canonicalize",
    "cse",
    "dce",
    // On the cleaned graph (constant scales and zero points): activations
    // between quantized convolutions become 256-entry tables.
    "fold-quantized-unary",
    // Before recognize-attention: a spelled-out softmax inside an attention
    // block becomes nn.softmax, which the attention pattern expects.
    "recognize-norms",
    // After the norms; takes the head-split transposes with it.
    "recognize-attention",
    // Batch norms and per-channel scales into the convolution weights
    // (derived, nothing copied), so that conv-bn-relu is conv-relu for the
    // epilogue fusion.
    "fold-batch-norm",
    // Transposed convolutions as convolutions (derived weights), after the
    // batch-norm folding took the norms that follow them.
    "conv-transpose-to-conv",
    // Brings the transposes that remain together and cancels them.
    "sink-transposes",
    // Rewrites leave duplicates (equal constants) and dead nodes.
    "cse",
    "dce",
    // Last: any later rewrite would make the plan stale.
    "plan-memory",
];

/// `-O2`: `-O1` plus fusion into kernels.
const O2: &[&str] = &[
    "shape-inference",
    "recognize-qdq-weights",
    "fold-constants",
    "shape-inference",
    "canonicalize",
    "cse",
    "dce",
    "fold-quantized-unary",
    "recognize-norms",
    "recognize-attention",
    "fold-batch-norm",
    "conv-transpose-to-conv",
    "sink-transposes",
    "cse",
    "dce",
    // A contraction takes the bias, activation, scale and residual after
    // it, applied while its output tile is in registers.
    "fuse-epilogue",
    // After the epilogues took theirs: the remaining elementwise ops run
    // as one loop per group.
    "fuse-elementwise",
    "plan-memory",
];

/// `-O3`: `-O2` plus the layouts and packed weights the target's kernels
/// want (from `PassOptions::target`; without target facts both passes
/// leave the graph alone).
const O3: &[&str] = &[
    "shape-inference",
    "recognize-qdq-weights",
    "fold-constants",
    "shape-inference",
    "canonicalize",
    "cse",
    "dce",
    "fold-quantized-unary",
    "recognize-norms",
    "recognize-attention",
    "fold-batch-norm",
    "conv-transpose-to-conv",
    "sink-transposes",
    "cse",
    "dce",
    // Before the fusions: conv chains in the kernels' layout, transposes
    // cancelled, so that the epilogues see NHWC convolutions.
    "assign-layout",
    "fuse-epilogue",
    "fuse-elementwise",
    // After fusion: the weights of the contractions that ended up inside
    // epilogues are packed too.
    "pack-weights",
    // assign-layout leaves duplicate transposes of shared inputs.
    "cse",
    "dce",
    "plan-memory",
];

/// Every named pipeline.
pub const NAMED: &[NamedPipeline] = &[
    NamedPipeline {
        name: "default",
        summary: "Graph cleanup before lowering: refine types, fold constants, simplify, merge duplicates, remove dead code",
        passes: DEFAULT,
    },
    NamedPipeline {
        name: "o0",
        summary: "-O0: exactly the default pipeline; the lowering emits the graph as one tensor program",
        passes: DEFAULT,
    },
    NamedPipeline {
        name: "o1",
        summary: "-O1: cleanup, recognized norms/activations/attention, folded batch norms, sunk transposes, a memory plan",
        passes: O1,
    },
    NamedPipeline {
        name: "o2",
        summary: "-O2: -O1 plus fusion into kernels",
        passes: O2,
    },
    NamedPipeline {
        name: "o3",
        summary: "-O3: -O2 plus kernel layouts and packed weights (the default)",
        passes: O3,
    },
];

/// Why a pipeline string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PipelineError {
    /// No pass or named pipeline has this name.
    #[error(
        "unknown pass '{name}'; available passes: {}; pipelines: {}",
        available_passes(),
        available_pipelines()
    )]
    UnknownPass {
        /// The unknown name.
        name: String,
    },
    /// An empty item, as in `cse,,dce`.
    #[error("empty pass name at position {position} in '{text}'")]
    EmptyItem {
        /// 1-based item position.
        position: usize,
        /// The whole pipeline text.
        text: String,
    },
}

fn available_passes() -> String {
    PASSES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

fn available_pipelines() -> String {
    NAMED.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

/// An ordered list of passes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pipeline {
    /// The passes, in run order.
    pub passes: Vec<&'static PassInfo>,
}

impl Pipeline {
    /// Parses `"canonicalize,cse,dce"`. Whitespace around names is ignored;
    /// the empty string is the empty pipeline.
    pub fn parse(text: &str) -> Result<Pipeline, PipelineError> {
        let mut passes = Vec::new();
        if text.trim().is_empty() {
            return Ok(Pipeline { passes });
        }
        for (i, item) in text.split(',').enumerate() {
            let name = item.trim();
            if name.is_empty() {
                return Err(PipelineError::EmptyItem {
                    position: i + 1,
                    text: text.to_string(),
                });
            }
            if let Some(p) = registry::lookup(name) {
                passes.push(p);
            } else if let Some(named) = named(name) {
                for &n in named.passes {
                    passes.push(
                        registry::lookup(n).ok_or_else(|| PipelineError::UnknownPass {
                            name: n.to_string(),
                        })?,
                    );
                }
            } else {
                return Err(PipelineError::UnknownPass {
                    name: name.to_string(),
                });
            }
        }
        Ok(Pipeline { passes })
    }

    /// This pipeline with `quantize-weights` (and a `dce` that drops the
    /// f32 weights it replaced) after the canonical passes: right after the
    /// first `dce` (the end of `default`, with which every `o<N>` starts),
    /// or at the end. Unchanged when it already quantizes.
    pub fn with_quantization(&self) -> Pipeline {
        let mut p = self.clone();
        if p.passes.iter().any(|x| x.name == "quantize-weights") {
            return p;
        }
        let q = registry::lookup("quantize-weights").expect("quantize-weights is registered");
        let dce = registry::lookup("dce").expect("dce is registered");
        let at = p
            .passes
            .iter()
            .position(|x| x.name == "dce")
            .map_or(p.passes.len(), |i| i + 1);
        p.passes.splice(at..at, [q, dce]);
        p
    }

    /// The `default` pipeline.
    pub fn default_pipeline() -> Pipeline {
        Pipeline::parse("default").expect("the default pipeline names registered passes")
    }

    /// The pipeline `-O<level>` selects (`o0` .. `o3`; above 3 is `o3`).
    pub fn for_level(level: u8) -> Pipeline {
        Pipeline::parse(&format!("o{}", level.min(3)))
            .expect("the o0..o3 pipelines name registered passes")
    }

    /// Whether the pipeline has no passes.
    pub fn is_empty(&self) -> bool {
        self.passes.is_empty()
    }
}

/// Looks a named pipeline up.
pub fn named(name: &str) -> Option<&'static NamedPipeline> {
    NAMED.iter().find(|p| p.name == name)
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.passes.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(p.name)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Pipeline {
    type Err = PipelineError;
    fn from_str(s: &str) -> Result<Pipeline, PipelineError> {
        Pipeline::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        let p = Pipeline::parse(" cse , dce").unwrap();
        assert_eq!(p.to_string(), "cse,dce");
        assert_eq!(Pipeline::parse(&p.to_string()).unwrap(), p);
        assert!(Pipeline::parse("").unwrap().is_empty());
    }

    #[test]
    fn named_pipelines_expand_and_only_name_registered_passes() {
        for n in NAMED {
            let p = Pipeline::parse(n.name).unwrap();
            assert_eq!(p.passes.len(), n.passes.len());
        }
        assert_eq!(
            Pipeline::default_pipeline().to_string(),
            "shape-inference,fold-constants,shape-inference,canonicalize,cse,dce"
        );
        assert_eq!(
            Pipeline::parse("default,dce").unwrap().to_string(),
            "shape-inference,fold-constants,shape-inference,canonicalize,cse,dce,dce"
        );
    }

    #[test]
    fn levels_name_pipelines_and_o0_is_default() {
        assert_eq!(Pipeline::parse("o0").unwrap(), Pipeline::default_pipeline());
        let named_level = |l: u8| named(&format!("o{l}")).unwrap();
        for level in 0..=3u8 {
            let p = named_level(level);
            assert_eq!(Pipeline::for_level(level), Pipeline::parse(p.name).unwrap());
            // Each level runs at least what the one below runs, in order,
            // and o1..o3 end with plan-memory.
            if level > 0 {
                assert_eq!(p.passes.last(), Some(&"plan-memory"));
                let below = named_level(level - 1).passes;
                let mut it = p.passes.iter();
                for pass in below {
                    assert!(
                        it.any(|q| q == pass),
                        "o{level} lacks {pass} of o{}",
                        level - 1
                    );
                }
            }
        }
        assert_eq!(Pipeline::for_level(9), Pipeline::parse("o3").unwrap());
    }

    #[test]
    fn unknown_names_list_what_exists() {
        let e = Pipeline::parse("cse,bogus").unwrap_err();
        assert_eq!(
            e,
            PipelineError::UnknownPass {
                name: "bogus".into()
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("unknown pass 'bogus'"), "{msg}");
        for p in PASSES {
            assert!(msg.contains(p.name), "{msg}");
        }
        assert!(msg.contains("default"), "{msg}");
        assert!(matches!(
            Pipeline::parse("cse,,dce"),
            Err(PipelineError::EmptyItem { position: 2, .. })
        ));
    }
}
