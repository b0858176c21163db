//! `nn.fused`: a node holding a sub-graph (its body, [`crate::Node::body`])
//! that the lowering emits as one kernel.
//!
//! The body's inputs are bound, in order, to the node's operands and its
//! outputs are the node's results. The `kind` attribute names the intended
//! kernel ([`FusedKind`]); the body is the semantics, run as is by the
//! interpreter, so every fusion can be checked numerically against the
//! unfused graph.

use super::infer::{bail, InferCtx, InferError};
use super::{attr, Arity, AttrDefault, OpDef, Traits};
use crate::attr::{AttrEnum, AttrKind};
use crate::types::TensorType;

crate::attr_enum! {
    /// What kind of kernel a fused node is meant to become.
    pub enum FusedKind {
        /// One contraction (conv, matmul, gemm) followed by elementwise ops
        /// applied to its result tile.
        Epilogue = "epilogue",
        /// Elementwise ops only.
        Elementwise = "elementwise",
        /// Anything else a pass groups (the lowering emits it as one unit).
        Region = "region",
    }
}

impl FusedKind {
    /// Reads a node's `kind` attribute.
    pub fn read(ctx: &InferCtx<'_>) -> Result<FusedKind, InferError> {
        ctx.enum_attr("kind")
    }
}

fn infer_fused(ctx: &InferCtx<'_>) -> Result<Vec<TensorType>, InferError> {
    FusedKind::read(ctx)?;
    let Some(body) = ctx.body else {
        bail!("nn.fused needs a body");
    };
    if body.inputs.len() != ctx.num_inputs() {
        bail!(
            "the body takes {} values but the node has {} operands",
            body.inputs.len(),
            ctx.num_inputs()
        );
    }
    for (i, &v) in body.inputs.iter().enumerate() {
        let Some(t) = ctx.opt_input(i) else {
            bail!("operand #{i} of a fused node cannot be absent");
        };
        let bt = &body.value(v).ty;
        if !bt.is_compatible(t) {
            bail!("body input #{i} is {bt} but the operand is {t}");
        }
    }
    if !body.weights().is_empty() {
        bail!("a fused body has no weights of its own (constants are operands)");
    }
    Ok(body
        .outputs
        .iter()
        .map(|&v| body.value(v).ty.clone())
        .collect())
}

/// `%r... = nn.fused %x... {kind} : types { body }`.
pub const FUSED: OpDef = OpDef {
    name: "nn.fused",
    summary: "A sub-graph the lowering emits as one kernel",
    inputs: Arity::at_least(0),
    outputs: Arity::at_least(1),
    attrs: &[attr(
        "kind",
        AttrKind::Enum(FusedKind::NAMES),
        AttrDefault::Required,
    )],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_fused,
};

/// What one step of a fused epilogue is (`nn.fused {kind = "epilogue"}`):
/// the ops the kernel library applies to an output tile while it is in
/// registers (docs/middle-end.md §4). This is the one list the fusion
/// passes decide with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpilogueStep {
    /// A function of the running value alone (`relu`, `gelu`, `clip` with
    /// constant bounds, ...).
    Unary,
    /// The running value and one other operand, a scalar, a row or column
    /// vector or a full matrix of the output's shape (`add`, `sub`, `mul`,
    /// `div`, `max`, `min`; `sub` and `div` in either operand order).
    Binary,
}

/// The epilogue step `node` can be, if any. Attribute-dependent cases are
/// decided here too (`nn.swish` only as SiLU, `alpha = 1`). Clip's bounds
/// must also be constants, which only the caller can see.
pub fn epilogue_step(node: &crate::graph::Node) -> Option<EpilogueStep> {
    use super::OpKind as K;
    match node.op {
        K::Relu
        | K::Clip
        | K::LeakyRelu
        | K::Sigmoid
        | K::Tanh
        | K::Gelu
        | K::HardSigmoid
        | K::HardSwish
        | K::Elu
        | K::Exp
        | K::Erf
        | K::Neg
        | K::Abs
        | K::Sqrt
        | K::Log => Some(EpilogueStep::Unary),
        K::Swish => match node.attrs.get("alpha") {
            None => Some(EpilogueStep::Unary),
            Some(crate::attr::Attr::Float(a)) if *a == 1.0 => Some(EpilogueStep::Unary),
            _ => None,
        },
        K::Add | K::Sub | K::Mul | K::Div | K::Max | K::Min if node.inputs.len() == 2 => {
            Some(EpilogueStep::Binary)
        }
        _ => None,
    }
}
