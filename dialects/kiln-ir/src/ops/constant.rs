//! `nn.constant`: a value whose data is a graph weight.

use super::infer::{InferCtx, InferError};
use super::{attr, Arity, AttrDefault, OpDef, Traits};
use crate::attr::AttrKind;
use crate::types::TensorType;

/// `%c = nn.constant {value = @w} : tensor<...>` — the result type is the
/// referenced weight's type.
pub const CONSTANT: OpDef = OpDef {
    name: "nn.constant",
    summary: "A constant tensor whose bytes live in the graph's weight table",
    inputs: Arity::exactly(0),
    outputs: Arity::exactly(1),
    attrs: &[attr("value", AttrKind::Weight, AttrDefault::Required)],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_constant,
};

fn infer_constant(ctx: &InferCtx<'_>) -> Result<Vec<TensorType>, InferError> {
    match ctx.weight_ty {
        Some(t) => Ok(vec![t.clone()]),
        None => Err(InferError("attribute 'value' must name a weight".into())),
    }
}
