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

/// `-O1`: the cleanup, then a memory plan, so that the lowering emits each
/// node on its own into planned buffers (one arena, no allocation per run).
const O1: &[&str] = &[
    "shape-inference",
    "fold-constants",
    "shape-inference",
    "canonicalize",
    "cse",
    "dce",
    // Last: any later rewrite would make the plan stale.
    "plan-memory",
];

/// `-O2` and `-O3`: `-O1` plus the optimizer's rewrites as they land.
const O3: &[&str] = O1;

/// Every named pipeline.
pub const NAMED: &[NamedPipeline] = &[
    NamedPipeline {
        name: "default",
        summary:
            "Graph cleanup before lowering: refine types, fold constants, simplify, merge duplicates, remove dead code",
        passes: DEFAULT,
    },
    NamedPipeline {
        name: "o0",
        summary: "-O0: the cleanup only; the lowering emits the graph as one tensor program",
        passes: DEFAULT,
    },
    NamedPipeline {
        name: "o1",
        summary: "-O1: cleanup and a memory plan; nodes lowered one by one into planned buffers",
        passes: O1,
    },
    NamedPipeline {
        name: "o2",
        summary: "-O2: -O1 with fusion, layouts and packed weights",
        passes: O3,
    },
    NamedPipeline {
        name: "o3",
        summary: "-O3: everything -O2 does (the default)",
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
