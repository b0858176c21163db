//! Reference interpreter: plain, obviously-correct semantics for every Kiln
//! op, used for constant folding, `kiln run --interpret`, and as a test
//! oracle next to ONNX Runtime.
//!
//! Invariants:
//! - Semantics match the ONNX operator each op is named after (latest
//!   opset): NumPy broadcasting, truncating integer division, NaN
//!   propagation in min/max, round-half-even, Python/C `mod` sign rules,
//!   float8 cast saturation; element codecs come from `kiln_ir::codec`
//!   (the same code the lowering emits).
//! - Code is written for clarity, not speed: simple loops over row-major
//!   data, wide accumulation (f64 for floats, wrapping i128 for integers),
//!   one rounding per op. See [`tensor`] for the exactness argument.
//! - Attributes are read through [`kiln_ir::ops::InferCtx`], so defaults
//!   live only in the op's [`kiln_ir::OpDef`]. Every node is first checked
//!   by the op's shape inference with concrete operand types; the computed
//!   results must agree with the inferred types.
//! - Nothing panics on bad input: invalid operands, out-of-range indices
//!   and results above [`Limits::max_elements`] are [`InterpError`]s.
//! - The match over [`OpKind`] in `eval` is exhaustive (no fallback arm),
//!   so a new op does not compile until it has semantics here.

mod eval;
mod ops;
pub mod tensor;
mod util;

pub use eval::{eval_node, materialize, run_graph, run_graph_with, weight_bytes};
pub use tensor::{Data, Tensor};

use kiln_ir::ops::InferError;
use thiserror::Error;

/// Resource limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest number of elements any single result may have.
    pub max_elements: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_elements: 1 << 28,
        }
    }
}

/// Why interpretation failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InterpError {
    /// A node failed; `source` says why.
    #[error("{node}: {source}")]
    Node {
        /// [`kiln_ir::Node::describe`] of the failing node.
        node: String,
        /// The failure.
        #[source]
        source: Box<InterpError>,
    },
    /// Operands or attributes the op does not accept (including out-of-range
    /// indices and integer division by zero).
    #[error("invalid operands or attributes: {0}")]
    Invalid(String),
    /// A valid but unimplemented case.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A result would exceed [`Limits::max_elements`].
    #[error("a result of {elements} elements exceeds the limit of {limit}")]
    TooLarge {
        /// Requested element count (saturated at `u64::MAX`).
        elements: u64,
        /// The limit.
        limit: u64,
    },
    /// A weight's bytes were elided from the IR.
    #[error("weight '{0}' has no data (it was elided)")]
    Elided(String),
    /// Tensor bytes that do not match their type.
    #[error("bad tensor data: {0}")]
    BadData(String),
    /// A graph input does not match its declared type.
    #[error("graph input #{index} '{name}': {msg}")]
    Input {
        /// Position among the graph inputs.
        index: usize,
        /// The input's name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// The graph itself is malformed (a value used before definition, ...).
    #[error("malformed graph: {0}")]
    Graph(String),
    /// The computed result disagrees with the op's shape inference: a bug
    /// in the interpreter or in the op's inference function.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<InferError> for InterpError {
    fn from(e: InferError) -> InterpError {
        InterpError::Invalid(e.0)
    }
}
