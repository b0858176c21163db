//! `fold-quantized-unary`: `quant.quantize_linear` of per-element float
//! ops on `quant.dequantize_linear` of an 8-bit tensor becomes a 256-entry
//! table lookup. Between two quantized convolutions a QOperator model
//! (ONNX Runtime's `quantize_static`) dequantizes, applies the activation
//! in f32 (Relu, Clip, HardSwish, ...) and quantizes again: three passes
//! over the tensor through f32 and an f64 division, where the result of
//! each element depends on its 8-bit code alone.
//!
//! Matched: `Q(f_k(...f_1(DQ(x))))` with `x` an `i8`/`u8` tensor that is
//! not a constant, `DQ` and `Q` with one-element constant scales and zero
//! points (per tensor) and an `i8`/`u8` result, and `k >= 0` elementwise
//! ops between them, each with one result of its operand's shape whose
//! other operands are one-element constants (so no op depends on the
//! position). The table is computed by the reference interpreter
//! (`kiln-interp`) running the matched nodes themselves on the 256 codes;
//! the rewrite is `nn.gather(table, x)`, where a negative `i8` code
//! indexes from the end of the table, at its two's-complement byte. So
//! the result is, element for element, what the interpreter computes for
//! the original nodes (compiled float code may round an
//! activation differently in the last place; after quantization that
//! moves a code only on an exact tie).
//!
//! Values in the chain used elsewhere stay computed for those users.
//! Preconditions: a verified graph. Graph outputs keep their names and
//! types.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep_pass, Direction, NewData, NewNode, NewWeight, Recipe, Val};
use kiln_interp::{eval_node, Limits, Tensor};
use kiln_ir::{Attr, Attrs, Blob, DType, Graph, OpKind, TensorType, ValueId};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "fold-quantized-unary",
    summary: "QuantizeLinear of per-element ops on a DequantizeLinear of 8-bit codes becomes a 256-entry table lookup",
    create: || Box::new(FoldQuantizedUnary::default()),
};

/// Options of `fold-quantized-unary`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Longest chain of float ops between the dequantization and the
    /// quantization.
    pub max_chain: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { max_chain: 16 }
    }
}

/// The pass.
#[derive(Clone, Debug, Default)]
pub struct FoldQuantizedUnary {
    /// Options.
    pub options: Options,
}

impl Pass for FoldQuantizedUnary {
    pass_info!();
    fn run(&self, g: &mut Graph, _opts: &PassOptions) -> Result<PassStats, PassError> {
        let max = self.options.max_chain;
        Ok(sweep_pass(g, Direction::Forward, |m, n| plan(m, n, max)))
    }
}

/// Whether `dt` is a code type the table covers.
fn byte_code(dt: DType) -> bool {
    matches!(dt, DType::U8 | DType::I8)
}

/// Whether `v` is a one-element constant.
fn scalar_const(m: &Matcher<'_>, v: ValueId) -> bool {
    m.weight(v).is_some() && m.ty(v).numel() == Some(1)
}

/// Whether (de)quantization node `n` is per tensor: a one-element constant
/// scale and zero point (if any), no blocks.
fn per_tensor(m: &Matcher<'_>, n: usize) -> bool {
    let node = &m.g.nodes[n];
    pattern::int_attr(node, "block_size").is_some_and(|b| b <= 0)
        && node.inputs.get(1).is_some_and(Option::is_some)
        && node
            .inputs
            .iter()
            .skip(1)
            .flatten()
            .all(|&v| scalar_const(m, v))
}

/// Node `n` evaluated by the interpreter with `t` for its operand `data`
/// and the constants' values for the others.
fn eval_on(m: &Matcher<'_>, n: usize, data: ValueId, t: &Tensor) -> Option<Tensor> {
    let node = &m.g.nodes[n];
    let consts = node
        .inputs
        .iter()
        .map(|v| match v {
            Some(v) if *v != data => m.const_tensor(*v).map(Some),
            _ => Some(None),
        })
        .collect::<Option<Vec<Option<Tensor>>>>()?;
    let ops: Vec<Option<&Tensor>> = node
        .inputs
        .iter()
        .zip(&consts)
        .map(|(v, c)| {
            if *v == Some(data) {
                Some(t)
            } else {
                c.as_ref()
            }
        })
        .collect();
    let limits = Limits {
        max_elements: 1 << 16,
    };
    eval_node(m.g.weights(), node, &ops, &limits)
        .ok()?
        .into_iter()
        .next()
}

/// The codes 0..=255 of `dt` in table order: index `i` holds the code whose
/// byte is `i` (so `-1` is entry 255, as a negative gather index wraps).
fn all_codes(dt: DType) -> Tensor {
    let v = (0..256i128)
        .map(|i| {
            if dt == DType::I8 {
                i as u8 as i8 as i128
            } else {
                i
            }
        })
        .collect();
    Tensor::from_ints(dt, vec![256], v)
}

/// Decides whether node `n` is the quantization at the end of a foldable
/// chain, and builds the lookup.
fn plan(m: &Matcher<'_>, n: usize, max_chain: usize) -> Option<Recipe> {
    let q = &m.g.nodes[n];
    if q.op != OpKind::QuantizeLinear || q.body.is_some() {
        return None;
    }
    let out = *q.outputs.first()?;
    let out_ty = m.ty(out).clone();
    if !byte_code(out_ty.dtype) {
        return None;
    }
    if !per_tensor(m, n) {
        return None;
    }
    // Walk from the quantization's operand up to the dequantization: the
    // nodes from the quantization back, each with its data operand.
    let mut chain: Vec<(usize, ValueId)> = vec![(n, (*q.inputs.first()?)?)];
    let x = loop {
        let (_, cur) = *chain.last().expect("not empty");
        let i = m.node_of(cur)?;
        let node = &m.g.nodes[i];
        if node.op == OpKind::DequantizeLinear {
            let x = (*node.inputs.first()?)?;
            chain.push((i, x));
            break x;
        }
        if !node.op.def().traits.elementwise
            || node.op == OpKind::Constant
            || node.body.is_some()
            || node.outputs.len() != 1
            || chain.len() > max_chain
        {
            return None;
        }
        let mut data = None;
        for &v in node.inputs.iter().flatten() {
            if m.weight(v).is_some() {
                if !scalar_const(m, v) {
                    return None;
                }
            } else if data.is_some_and(|d| d != v) {
                return None;
            } else {
                data = Some(v);
            }
        }
        let data = data?;
        if m.ty(node.outputs[0]).dims != m.ty(data).dims {
            return None;
        }
        chain.push((i, data));
    };
    let xt = m.ty(x);
    let (dq, _) = *chain.last().expect("not empty");
    if !byte_code(xt.dtype) || m.weight(x).is_some() || xt.dims != out_ty.dims || !per_tensor(m, dq)
    {
        return None;
    }

    // The table: the matched nodes on every code, in the interpreter.
    let mut t = all_codes(xt.dtype);
    for &(i, data) in chain.iter().rev() {
        t = eval_on(m, i, data, &t)?;
    }
    if t.numel() != 256 {
        return None;
    }

    let name = m.g.value(out).name.clone();
    let mut r = Recipe::at(n);
    let table_ty = TensorType::fixed(out_ty.dtype, &[256]);
    let w = r.weight(NewWeight {
        name: format!("{name}.table"),
        ty: table_ty.clone(),
        data: NewData::Bytes(Blob::from_vec(t.to_bytes()), None),
    });
    let table = r.push(NewNode::constant(&format!("{name}.table"), w, table_ty));
    let mut axis = Attrs::new();
    axis.insert("axis".into(), Attr::Int(0));
    let y = r.push(NewNode::op(
        OpKind::Gather,
        vec![table, Val::Old(x)],
        axis,
        &name,
        out_ty,
    ));
    r.replace.push((out, y));
    Some(r)
}

#[cfg(test)]
#[path = "fold_quantized_unary_tests.rs"]
mod tests;
