//! ONNX operators imported as compositions of existing Kiln ops.
//!
//! Each builder here expands one ONNX node into several Kiln nodes
//! (usually following the operator's ONNX function body or its reference
//! implementation) instead of adding a Kiln IR op: the operators are rare
//! in inference graphs or thin fusions (losses, the integer/QLinear
//! quantized contractions, windows, crop/pad and sequence helpers, group
//! norm, Swish/SwiGLU, the KV-cache TensorScatter), each one is exactly
//! expressible with ops that already have reference semantics in the
//! interpreter and a lowering in codegen, and a composition keeps the IR
//! small and both execution paths consistent for free.
//!
//! Invariants:
//! - The last node a builder emits for an ONNX output takes that output's
//!   name (through [`NodeCtx::emit1`]); everything else is an internal
//!   value ([`NodeCtx::emit_internal`]).
//! - Every ONNX attribute of a node is either handled or refused with an
//!   "unsupported" error ([`NodeCtx::check_attrs`]); element types outside the ones
//!   a builder was written for are refused as well, and malformed nodes
//!   (wrong ranks, missing operands) are refused as invalid, never
//!   imported approximately.

use super::NodeCtx;
use crate::error::OnnxError;
use kiln_ir::{Attr, Attrs, DType, Dim, OpKind, ValueId};

type R = Result<Vec<Option<ValueId>>, OnnxError>;
type V = Result<ValueId, OnnxError>;

/// The values of a constant integer operand, if it is one.
fn const_i64s(c: &NodeCtx<'_, '_>, v: ValueId) -> Option<Vec<i64>> {
    let t = c.known(v)?;
    if !t.dtype.is_int() {
        return None;
    }
    Some((0..t.numel()).map(|i| t.get_f64(i) as i64).collect())
}

fn attrs(list: &[(&str, Attr)]) -> Attrs {
    list.iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// Emits `op` over `inputs`: as the ONNX node's (first) output when
/// `last`, otherwise as an internal value.
fn step(c: &mut NodeCtx<'_, '_>, last: bool, op: OpKind, inputs: &[ValueId], a: Attrs) -> V {
    let ins = inputs.iter().map(|&v| Some(v)).collect();
    if last {
        c.emit1(op, ins, a)
    } else {
        c.emit_internal(op, ins, a)
    }
}

fn reduce_all(c: &mut NodeCtx<'_, '_>, kind: OpKind, x: ValueId, last: bool) -> V {
    step(
        c,
        last,
        kind,
        &[x],
        attrs(&[("keepdims", Attr::Bool(false))]),
    )
}

fn is_float(dt: DType) -> bool {
    matches!(dt, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

fn require_float(c: &NodeCtx<'_, '_>, v: ValueId, what: &str) -> Result<DType, OnnxError> {
    let dt = c.ty(v).dtype;
    if is_float(dt) {
        Ok(dt)
    } else {
        Err(c.unsupported(format!("{what} of type {dt} is not supported")))
    }
}

// ---------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reduction {
    None,
    Sum,
    Mean,
}

fn reduction(c: &NodeCtx<'_, '_>) -> Result<Reduction, OnnxError> {
    match c.attr_str("reduction", "mean")?.as_str() {
        "none" => Ok(Reduction::None),
        "sum" => Ok(Reduction::Sum),
        "mean" => Ok(Reduction::Mean),
        other => Err(c.invalid(format!(
            "reduction '{other}' is not one of 'none', 'sum', 'mean'"
        ))),
    }
}

fn ignore_index(c: &NodeCtx<'_, '_>) -> Result<Option<i64>, OnnxError> {
    c.attr("ignore_index")
        .map(|_| c.attr_int("ignore_index", 0))
        .transpose()
}

/// NegativeLogLikelihoodLoss-12/13/22: `input` [N, C, d1..dk] holds
/// log-probabilities, `target` [N, d1..dk] class indices, `weight` [C]
/// optional class weights. Per element the loss is
/// `-input[n, target[n, d], d] * weight[target[n, d]]`, zero (with weight
/// zero) where `target == ignore_index`. `mean` divides the sum by the sum
/// of the applied weights (the count of non-ignored elements without
/// `weight`), exactly as the ONNX function body does.
pub(super) fn nll_loss(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["reduction", "ignore_index"])?;
    let x = c.input(0)?;
    let t = c.input(1)?;
    let w = c.opt_input(2);
    let red = reduction(c)?;
    let ii = ignore_index(c)?;
    Ok(vec![Some(nll_core(c, x, t, w, red, ii)?)])
}

fn nll_core(
    c: &mut NodeCtx<'_, '_>,
    x: ValueId,
    t: ValueId,
    w: Option<ValueId>,
    red: Reduction,
    ii: Option<i64>,
) -> V {
    let dt = require_float(c, x, "input")?;
    let (xr, tt) = (c.ty(x).rank(), c.ty(t).clone());
    if !matches!(tt.dtype, DType::I32 | DType::I64) {
        return Err(c.invalid(format!("target must be int32 or int64, got {}", tt.dtype)));
    }
    if xr < 2 || tt.rank() + 1 != xr {
        return Err(c.invalid(format!(
            "input of rank {xr} needs rank >= 2 and a target of rank {}, got {tt}",
            xr.saturating_sub(1)
        )));
    }
    if let Some(w) = w {
        let wt = c.ty(w);
        if wt.rank() != 1 || wt.dtype != dt {
            return Err(c.invalid(format!("weight must be a 1-D {dt} tensor, got {wt}")));
        }
    }
    let zero = c.const_scalar(dt, 0.0)?;
    // Ignored positions gather class 0 (always valid) and are zeroed after.
    let (safe_t, mask) = match ii {
        Some(ii) => {
            let iv = c.const_scalar(tt.dtype, ii as f64)?;
            let m = c.op(OpKind::Equal, &[t, iv])?;
            let z = c.const_scalar(tt.dtype, 0.0)?;
            (c.op(OpKind::Where, &[m, z, t])?, Some(m))
        }
        None => (t, None),
    };
    let axis1 = c.const_i64(&[1], false);
    let t1 = c.op(OpKind::Unsqueeze, &[safe_t, axis1])?;
    let g = c.op_with(OpKind::GatherElements, &[x, t1], &[("axis", Attr::Int(1))])?;
    let mut g = c.op(OpKind::Squeeze, &[g, axis1])?;
    if let Some(m) = mask {
        g = c.op(OpKind::Where, &[m, zero, g])?;
    }
    // Per-element weights, where the loss needs them.
    let wt = match (w, mask) {
        (Some(w), _) => {
            let wg = c.op_with(OpKind::Gather, &[w, safe_t], &[("axis", Attr::Int(0))])?;
            Some(match mask {
                Some(m) => c.op(OpKind::Where, &[m, zero, wg])?,
                None => wg,
            })
        }
        (None, Some(m)) if red == Reduction::Mean => {
            let one = c.const_scalar(dt, 1.0)?;
            Some(c.op(OpKind::Where, &[m, zero, one])?)
        }
        _ => None,
    };
    let none = red == Reduction::None;
    let neg = step(c, none && w.is_none(), OpKind::Neg, &[g], Attrs::new())?;
    let loss = match (w, wt) {
        (Some(_), Some(wt)) => step(c, none, OpKind::Mul, &[neg, wt], Attrs::new())?,
        _ => neg,
    };
    match (red, wt) {
        (Reduction::None, _) => Ok(loss),
        (Reduction::Sum, _) => reduce_all(c, OpKind::ReduceSum, loss, true),
        (Reduction::Mean, Some(wt)) => {
            let s = reduce_all(c, OpKind::ReduceSum, loss, false)?;
            let ws = reduce_all(c, OpKind::ReduceSum, wt, false)?;
            step(c, true, OpKind::Div, &[s, ws], Attrs::new())
        }
        (Reduction::Mean, None) => reduce_all(c, OpKind::ReduceMean, loss, true),
    }
}

/// SoftmaxCrossEntropyLoss-12/13: LogSoftmax of `scores` over axis 1, then
/// [`nll_loss`] with the same target, weights, reduction and ignore_index;
/// the optional second output is the log-probabilities.
pub(super) fn softmax_cross_entropy_loss(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["reduction", "ignore_index"])?;
    let x = c.input(0)?;
    let t = c.input(1)?;
    let w = c.opt_input(2);
    let red = reduction(c)?;
    let ii = ignore_index(c)?;
    require_float(c, x, "scores")?;
    if c.ty(x).rank() < 2 {
        return Err(c.invalid(format!("scores must have rank >= 2, got {}", c.ty(x))));
    }
    let lp = c.op_with(OpKind::LogSoftmax, &[x], &[("axis", Attr::Int(1))])?;
    let loss = nll_core(c, lp, t, w, red, ii)?;
    let mut outs = vec![Some(loss)];
    if c.node.outputs.len() > 1 {
        outs.push(Some(lp));
    }
    Ok(outs)
}

// ---------------------------------------------------------------------------
// Integer and QLinear contractions
// ---------------------------------------------------------------------------

fn require_8bit(c: &NodeCtx<'_, '_>, v: ValueId, what: &str) -> Result<DType, OnnxError> {
    let dt = c.ty(v).dtype;
    if matches!(dt, DType::U8 | DType::I8) {
        Ok(dt)
    } else {
        Err(c.unsupported(format!(
            "{what} of type {dt} is not supported (int8 or uint8)"
        )))
    }
}

/// `i32(x) - i32(zp)`. `zp_axis` places a 1-D (per-row or per-channel)
/// zero point: `Some((axis, rank))` reshapes it to extent 1 everywhere but
/// `axis` of a rank-`rank` operand; `None` broadcasts it as it is.
fn shifted(
    c: &mut NodeCtx<'_, '_>,
    x: ValueId,
    zp: Option<ValueId>,
    zp_axis: Option<(usize, usize)>,
) -> V {
    let x32 = c.cast(x, DType::I32)?;
    let Some(zp) = zp else {
        return Ok(x32);
    };
    if c.ty(zp).dtype != c.ty(x).dtype {
        return Err(c.invalid(format!(
            "zero point type {} differs from its operand's {}",
            c.ty(zp).dtype,
            c.ty(x).dtype
        )));
    }
    let z32 = c.cast(zp, DType::I32)?;
    let z32 = place_per_axis(c, z32, zp_axis)?;
    c.op(OpKind::Sub, &[x32, z32])
}

/// Reshapes a 1-D per-axis parameter so that it broadcasts along `axis`
/// of a rank-`rank` operand; scalars and one-element tensors stay as they
/// are.
fn place_per_axis(c: &mut NodeCtx<'_, '_>, v: ValueId, at: Option<(usize, usize)>) -> V {
    let ty = c.ty(v).clone();
    let Some((axis, rank)) = at else {
        return Ok(v);
    };
    if ty.rank() != 1 || ty.dims[0] == Dim::Static(1) {
        return Ok(v);
    }
    if axis >= rank {
        return Err(c.invalid(format!("a per-axis parameter {ty} needs rank > {axis}")));
    }
    let mut shape = vec![1i64; rank];
    shape[axis] = -1;
    let s = c.const_i64(&shape, false);
    c.op(OpKind::Reshape, &[v, s])
}

/// `quant.matmul_integer` for `a @ b` with zero points when the shapes fit
/// it (a of rank >= 2, a 2-D b, zero points scalar or 1-D): the 8-bit
/// operands stay 8-bit (a constant b is stored as it is). `named`: the
/// result is the ONNX node's output.
fn integer_product(
    c: &mut NodeCtx<'_, '_>,
    a: ValueId,
    b: ValueId,
    za: Option<ValueId>,
    zb: Option<ValueId>,
    named: bool,
) -> Result<Option<ValueId>, OnnxError> {
    let small = |c: &NodeCtx<'_, '_>, z: Option<ValueId>| z.is_none_or(|z| c.ty(z).rank() <= 1);
    if c.ty(a).rank() < 2 || c.ty(b).rank() != 2 || !small(c, za) || !small(c, zb) {
        return Ok(None);
    }
    let mut ins = vec![Some(a), Some(b), za, zb];
    while ins.last() == Some(&None) {
        ins.pop();
    }
    Ok(Some(if named {
        c.emit1(OpKind::QMatMulInteger, ins, Attrs::new())?
    } else {
        c.emit_internal(OpKind::QMatMulInteger, ins, Attrs::new())?
    }))
}

/// MatMulInteger-10: `(A - a_zero_point) @ (B - b_zero_point)` in int32,
/// as ONNX's reference computes it: `quant.matmul_integer` where the shapes
/// fit it, else the shifted i32 operands through Kiln's matmul, which
/// accumulates i32 exactly like the reference (wrapping only past what
/// 8-bit operands can reach for K < 2^16). A 1-D `a_zero_point` is per row
/// of A.
pub(super) fn matmul_integer(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&[])?;
    let a = c.input(0)?;
    let b = c.input(1)?;
    require_8bit(c, a, "A")?;
    require_8bit(c, b, "B")?;
    if let Some(y) = integer_product(c, a, b, c.opt_input(2), c.opt_input(3), true)? {
        return Ok(vec![Some(y)]);
    }
    let ra = c.ty(a).rank().max(2);
    let a32 = shifted(c, a, c.opt_input(2), Some((ra - 2, ra)))?;
    let b32 = shifted(c, b, c.opt_input(3), None)?;
    Ok(vec![Some(c.emit1(
        OpKind::MatMul,
        vec![Some(a32), Some(b32)],
        Attrs::new(),
    )?)])
}

/// The convolution attributes shared by ConvInteger and QLinearConv, in
/// Kiln's spelling.
fn conv_attrs(c: &NodeCtx<'_, '_>) -> Result<Attrs, OnnxError> {
    c.check_attrs(&[
        "auto_pad",
        "dilations",
        "group",
        "kernel_shape",
        "pads",
        "strides",
    ])?;
    c.convert_attrs(OpKind::Conv, &[], &[])
}

/// ConvInteger-10: Conv over `x - x_zero_point` and `w - w_zero_point` in
/// int32 (a 1-D `w_zero_point` is per output channel). Padding adds zeros
/// after the shift, as in the reference.
pub(super) fn conv_integer(c: &mut NodeCtx<'_, '_>) -> R {
    let a = conv_attrs(c)?;
    let x = c.input(0)?;
    let w = c.input(1)?;
    require_8bit(c, x, "x")?;
    require_8bit(c, w, "w")?;
    let rw = c.ty(w).rank();
    let x32 = shifted(c, x, c.opt_input(2), None)?;
    let w32 = shifted(c, w, c.opt_input(3), Some((0, rw)))?;
    Ok(vec![Some(c.emit1(
        OpKind::Conv,
        vec![Some(x32), Some(w32)],
        a,
    )?)])
}

/// Requantizes an int32 accumulator as ONNX's QLinearMatMul/QLinearConv
/// reference does: `clip(rint(acc * (s1 * s2 / y_scale) + y_zero_point))`.
/// The scale product is formed in the scales' type (as the reference
/// does), the rest in f64 (the reference's NumPy promotion of int32 with a
/// float scale), which holds every int32 accumulator exactly.
fn requantize(
    c: &mut NodeCtx<'_, '_>,
    acc: ValueId,
    s1: ValueId,
    s2: ValueId,
    ys: ValueId,
    yzp: ValueId,
) -> V {
    let out = require_8bit(c, yzp, "y_zero_point")?;
    let sdt = require_float(c, s1, "scale")?;
    for s in [s2, ys] {
        if c.ty(s).dtype != sdt {
            return Err(c.invalid("all scales must have one type"));
        }
    }
    let m = c.op(OpKind::Mul, &[s1, s2])?;
    let m = c.op(OpKind::Div, &[m, ys])?;
    let m = c.cast(m, DType::F64)?;
    let acc = c.cast(acc, DType::F64)?;
    let d = c.op(OpKind::Mul, &[acc, m])?;
    let z = c.cast(yzp, DType::F64)?;
    let d = c.op(OpKind::Add, &[d, z])?;
    let d = c.op(OpKind::Round, &[d])?;
    let (lo, hi) = if out == DType::U8 {
        (0.0, 255.0)
    } else {
        (-128.0, 127.0)
    };
    let lo = c.const_scalar(DType::F64, lo)?;
    let hi = c.const_scalar(DType::F64, hi)?;
    let d = c.op(OpKind::Clip, &[d, lo, hi])?;
    step(
        c,
        true,
        OpKind::Cast,
        &[d],
        attrs(&[("to", Attr::DType(out))]),
    )
}

/// QLinearMatMul-10/21: MatMulInteger, then [`requantize`]. Per-row
/// parameters of `a` and per-column ones of `b` broadcast as the spec
/// places them.
pub(super) fn qlinear_matmul(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&[])?;
    let a = c.input(0)?;
    let a_s = c.input(1)?;
    let a_zp = c.input(2)?;
    let b = c.input(3)?;
    let b_s = c.input(4)?;
    let b_zp = c.input(5)?;
    let y_s = c.input(6)?;
    let y_zp = c.input(7)?;
    require_8bit(c, a, "a")?;
    require_8bit(c, b, "b")?;
    let ra = c.ty(a).rank().max(2);
    let row = Some((ra - 2, ra));
    let acc = match integer_product(c, a, b, Some(a_zp), Some(b_zp), false)? {
        Some(acc) => acc,
        None => {
            let a32 = shifted(c, a, Some(a_zp), row)?;
            let b32 = shifted(c, b, Some(b_zp), None)?;
            c.op(OpKind::MatMul, &[a32, b32])?
        }
    };
    let a_s = place_per_axis(c, a_s, row)?;
    Ok(vec![Some(requantize(c, acc, a_s, b_s, y_s, y_zp)?)])
}

/// QLinearConv-10: ConvInteger with an optional int32 bias, then
/// [`requantize`]; `w_scale`/`w_zero_point` may be per output channel.
pub(super) fn qlinear_conv(c: &mut NodeCtx<'_, '_>) -> R {
    let a = conv_attrs(c)?;
    let x = c.input(0)?;
    let x_s = c.input(1)?;
    let x_zp = c.input(2)?;
    let w = c.input(3)?;
    let w_s = c.input(4)?;
    let w_zp = c.input(5)?;
    let y_s = c.input(6)?;
    let y_zp = c.input(7)?;
    let bias = c.opt_input(8);
    require_8bit(c, x, "x")?;
    require_8bit(c, w, "w")?;
    if let Some(b) = bias {
        if c.ty(b).dtype != DType::I32 {
            return Err(c.invalid(format!("bias must be int32, got {}", c.ty(b))));
        }
    }
    let rw = c.ty(w).rank();
    let x32 = shifted(c, x, Some(x_zp), None)?;
    let w32 = shifted(c, w, Some(w_zp), Some((0, rw)))?;
    let mut ins = vec![Some(x32), Some(w32)];
    if bias.is_some() {
        ins.push(bias);
    }
    let acc = c.emit_internal(OpKind::Conv, ins, a)?;
    let w_s = place_per_axis(c, w_s, Some((1, rw)))?;
    Ok(vec![Some(requantize(c, acc, x_s, w_s, y_s, y_zp)?)])
}

/// DynamicQuantizeLinear-11, as its ONNX function body
/// ([`kiln_ir::ops::dynamic_quantize_linear_body`], which the
/// `quantize-weights` pass builds too).
pub(super) fn dynamic_quantize_linear(c: &mut NodeCtx<'_, '_>) -> R {
    use kiln_ir::ops::{DqlOperand, DQL_SCALE, DQL_Y, DQL_ZERO_POINT};
    c.check_attrs(&[])?;
    let x = c.input(0)?;
    if c.ty(x).dtype != DType::F32 {
        return Err(c.unsupported(format!("x of type {} is not supported", c.ty(x).dtype)));
    }
    let mut done: Vec<ValueId> = Vec::new();
    let mut consts: Vec<(u32, ValueId)> = Vec::new();
    for (i, st) in kiln_ir::ops::dynamic_quantize_linear_body()
        .into_iter()
        .enumerate()
    {
        let mut ins = Vec::with_capacity(st.inputs.len());
        for o in &st.inputs {
            ins.push(match *o {
                DqlOperand::X => x,
                DqlOperand::Step(j) => done[j],
                DqlOperand::Const(_, v) => match consts.iter().find(|(b, _)| *b == v.to_bits()) {
                    Some(&(_, id)) => id,
                    None => {
                        let id = c.const_scalar(DType::F32, f64::from(v))?;
                        consts.push((v.to_bits(), id));
                        id
                    }
                },
            });
        }
        done.push(step(c, i == DQL_Y, st.kind, &ins, st.attrs)?);
    }
    Ok(vec![
        Some(done[DQL_Y]),
        Some(done[DQL_SCALE]),
        Some(done[DQL_ZERO_POINT]),
    ])
}

// ---------------------------------------------------------------------------
// Activations, windows and data movement
// ---------------------------------------------------------------------------

/// Scatter-9/11 (deprecated) is ScatterElements without a reduction.
pub(super) fn scatter(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["axis"])?;
    let axis = c.attr_int("axis", 0)?;
    let inputs = vec![Some(c.input(0)?), Some(c.input(1)?), Some(c.input(2)?)];
    Ok(vec![Some(c.emit1(
        OpKind::ScatterElements,
        inputs,
        attrs(&[("axis", Attr::Int(axis))]),
    )?)])
}

/// `x * sigmoid(alpha * x)`, the Swish function body.
fn swish_of(c: &mut NodeCtx<'_, '_>, x: ValueId, last: bool) -> V {
    let dt = require_float(c, x, "input")?;
    let alpha = c.attr_float("alpha", 1.0)?;
    let a = c.const_scalar(dt, f64::from(alpha))?;
    let ax = c.op(OpKind::Mul, &[a, x])?;
    let s = c.op(OpKind::Sigmoid, &[ax])?;
    step(c, last, OpKind::Mul, &[x, s], Attrs::new())
}

/// Swish-24.
pub(super) fn swish(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["alpha"])?;
    let x = c.input(0)?;
    Ok(vec![Some(swish_of(c, x, true)?)])
}

/// SwiGLU-28: `Swish(A) * B`.
pub(super) fn swiglu(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["alpha"])?;
    let a = c.input(0)?;
    let b = c.input(1)?;
    let g = swish_of(c, a, false)?;
    Ok(vec![Some(step(
        c,
        true,
        OpKind::Mul,
        &[g, b],
        Attrs::new(),
    )?)])
}

/// Hann/Hamming/BlackmanWindow-17 as their shared function body, in f32:
/// `a0 - a1 cos(2πn/N) + a2 cos(4πn/N)` for `n` in `0..size`, with
/// `N = size` (periodic) or `size - 1` (symmetric), cast to
/// `output_datatype`.
pub(super) fn window(c: &mut NodeCtx<'_, '_>, coeffs: [f32; 3]) -> R {
    c.check_attrs(&["periodic", "output_datatype"])?;
    let size = c.input(0)?;
    if !matches!(c.ty(size).dtype, DType::I32 | DType::I64) || c.ty(size).rank() != 0 {
        return Err(c.invalid(format!(
            "size must be an int32/int64 scalar, got {}",
            c.ty(size)
        )));
    }
    let periodic = c.attr_int("periodic", 1)? != 0;
    let code = c.attr_int("output_datatype", 1)?;
    let out = i32::try_from(code)
        .ok()
        .and_then(|code| crate::tensor::dtype_from_onnx(code).ok())
        .ok_or_else(|| c.unsupported(format!("output_datatype {code} is not supported")))?;
    let f = |c: &mut NodeCtx<'_, '_>, v: f32| c.const_scalar(DType::F32, f64::from(v));
    let (zero, one, two) = (f(c, 0.0)?, f(c, 1.0)?, f(c, 2.0)?);
    // The function body's tau: 2π rounded to f32.
    let tau = f(c, 6.283_185_5)?;
    let n = c.cast(size, DType::F32)?;
    let denom = if periodic {
        n
    } else {
        c.op(OpKind::Sub, &[n, one])?
    };
    let inc = c.op(OpKind::Div, &[tau, denom])?;
    let range = c.op(OpKind::Range, &[zero, n, one])?;
    let ang = c.op(OpKind::Mul, &[range, inc])?;
    let cos1 = c.op(OpKind::Cos, &[ang])?;
    let a1 = f(c, coeffs[1])?;
    let t1 = c.op(OpKind::Mul, &[a1, cos1])?;
    let a0 = f(c, coeffs[0])?;
    let mut y = c.op(OpKind::Sub, &[a0, t1])?;
    if coeffs[2] != 0.0 {
        let ang2 = c.op(OpKind::Mul, &[ang, two])?;
        let cos2 = c.op(OpKind::Cos, &[ang2])?;
        let a2 = f(c, coeffs[2])?;
        let t2 = c.op(OpKind::Mul, &[a2, cos2])?;
        y = c.op(OpKind::Add, &[y, t2])?;
    }
    Ok(vec![Some(step(
        c,
        true,
        OpKind::Cast,
        &[y],
        attrs(&[("to", Attr::DType(out))]),
    )?)])
}

/// SpaceToDepth: `DCR` (the only mode before version 28) is Kiln's op;
/// `CRD` is the reshape/transpose/reshape of the ONNX function body and
/// needs a static input shape.
pub(super) fn space_to_depth(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["blocksize", "mode"])?;
    let x = c.input(0)?;
    let b = c.attr_int("blocksize", 0)?;
    if b <= 0 {
        return Err(c.invalid(format!("blocksize must be positive, got {b}")));
    }
    let mode = c.attr_str("mode", "DCR")?;
    if mode == "DCR" {
        return Ok(vec![Some(c.emit1(
            OpKind::SpaceToDepth,
            vec![Some(x)],
            attrs(&[("blocksize", Attr::Int(b))]),
        )?)]);
    }
    if mode != "CRD" {
        return Err(c.invalid(format!("mode '{mode}' is not one of 'DCR', 'CRD'")));
    }
    let Some(shape) = c.ty(x).static_shape() else {
        return Err(c.unsupported("SpaceToDepth with mode CRD needs a static input shape"));
    };
    let [n, ch, h, w] = shape[..] else {
        return Err(c.invalid(format!("input must have rank 4, got {}", c.ty(x))));
    };
    let bu = b as u64;
    if h % bu != 0 || w % bu != 0 {
        return Err(c.invalid(format!(
            "spatial extents {h}x{w} are not multiples of blocksize {b}"
        )));
    }
    let (n, ch, hb, wb) = (n as i64, ch as i64, (h / bu) as i64, (w / bu) as i64);
    let s6 = c.const_i64(&[n, ch, hb, b, wb, b], false);
    let y = c.op(OpKind::Reshape, &[x, s6])?;
    let y = c.op_with(
        OpKind::Transpose,
        &[y],
        &[("perm", Attr::Ints(vec![0, 1, 3, 5, 2, 4]))],
    )?;
    let depth = ch
        .checked_mul(b)
        .and_then(|d| d.checked_mul(b))
        .ok_or_else(|| c.invalid("the output depth overflows"))?;
    let s4 = c.const_i64(&[n, depth, hb, wb], false);
    Ok(vec![Some(step(
        c,
        true,
        OpKind::Reshape,
        &[y, s4],
        Attrs::new(),
    )?)])
}

/// ReverseSequence-10/28: builds the time index of every element
/// (`len[b] - 1 - t` for `t < len[b]`, else `t`) and gathers along the
/// time axis, so `sequence_lens` may be a runtime value.
pub(super) fn reverse_sequence(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["batch_axis", "time_axis"])?;
    let x = c.input(0)?;
    let lens = c.input(1)?;
    let batch_axis = c.attr_int("batch_axis", 1)?;
    let time_axis = c.attr_int("time_axis", 0)?;
    let rank = c.ty(x).rank();
    if rank < 2
        || !matches!((batch_axis, time_axis), (0, 1) | (1, 0))
        || c.ty(lens).rank() != 1
        || !matches!(c.ty(lens).dtype, DType::I32 | DType::I64)
    {
        return Err(c.invalid(format!(
            "needs input rank >= 2, batch_axis/time_axis of 0 and 1 and 1-D integer sequence_lens; got {} with batch_axis {batch_axis}, time_axis {time_axis}, sequence_lens {}",
            c.ty(x),
            c.ty(lens)
        )));
    }
    let lens = c.cast(lens, DType::I64)?;
    let t_dim = c.op_with(
        OpKind::Shape,
        &[x],
        &[
            ("start", Attr::Int(time_axis)),
            ("end", Attr::Int(time_axis + 1)),
        ],
    )?;
    let t_len = c.op(OpKind::Squeeze, &[t_dim])?;
    let zero = c.const_i64(&[0], true);
    let one = c.const_i64(&[1], true);
    let t = c.op(OpKind::Range, &[zero, t_len, one])?;
    // Lay time and batch out as the input does: [T, B] or [B, T].
    let (t_ax, l_ax) = if time_axis == 0 { (1, 0) } else { (0, 1) };
    let t_ax = c.const_i64(&[t_ax], false);
    let l_ax = c.const_i64(&[l_ax], false);
    let t = c.op(OpKind::Unsqueeze, &[t, t_ax])?;
    let l = c.op(OpKind::Unsqueeze, &[lens, l_ax])?;
    let inside = c.op(OpKind::Less, &[t, l])?;
    let last = c.op(OpKind::Sub, &[l, one])?;
    let rev = c.op(OpKind::Sub, &[last, t])?;
    let mut idx = c.op(OpKind::Where, &[inside, rev, t])?;
    if rank > 2 {
        let trailing: Vec<i64> = (2..rank as i64).collect();
        let ax = c.const_i64(&trailing, false);
        idx = c.op(OpKind::Unsqueeze, &[idx, ax])?;
    }
    let shape = c.op(OpKind::Shape, &[x])?;
    let idx = c.op(OpKind::Expand, &[idx, shape])?;
    Ok(vec![Some(step(
        c,
        true,
        OpKind::GatherElements,
        &[x, idx],
        attrs(&[("axis", Attr::Int(time_axis))]),
    )?)])
}

/// CenterCropPad-18: per listed axis, a centered crop (start rounded
/// down) then a centered zero pad (the odd pixel on the right). With a
/// constant target shape (and a static input shape) the crop and pad
/// amounts are constants; otherwise they are computed at run time.
pub(super) fn center_crop_pad(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["axes"])?;
    let x = c.input(0)?;
    let target = c.input(1)?;
    let rank = c.ty(x).rank() as i64;
    let axes: Vec<i64> = match c.attr_ints("axes")? {
        Some(a) => a,
        None => (0..rank).collect(),
    };
    let mut seen = vec![false; rank as usize];
    let mut norm_axes = Vec::with_capacity(axes.len());
    for &a in &axes {
        let ax = if a < 0 { a + rank } else { a };
        if !(0..rank).contains(&ax) || std::mem::replace(&mut seen[ax as usize], true) {
            return Err(c.invalid(format!("axis {a} is out of range or repeated")));
        }
        norm_axes.push(ax);
    }
    let tt = c.ty(target).clone();
    if !matches!(tt.dtype, DType::I32 | DType::I64) || tt.rank() != 1 {
        return Err(c.invalid(format!("shape must be a 1-D integer tensor, got {tt}")));
    }
    if let Dim::Static(n) = tt.dims[0] {
        if n != axes.len() as u64 {
            return Err(c.invalid(format!("shape has {n} entries for {} axes", axes.len())));
        }
    }
    let (Some(target), Some(dims)) = (const_i64s(c, target), c.ty(x).static_shape()) else {
        return center_crop_pad_dynamic(c, x, target, &norm_axes);
    };
    if axes.len() != target.len() {
        return Err(c.invalid(format!(
            "shape has {} entries for {} axes",
            target.len(),
            axes.len()
        )));
    }
    let (mut starts, mut ends, mut crop_axes) = (vec![], vec![], vec![]);
    let mut pads = vec![0i64; 2 * rank as usize];
    for (&ax, &s) in norm_axes.iter().zip(&target) {
        if s < 0 {
            return Err(c.invalid(format!("target extent {s} is negative")));
        }
        let d = dims[ax as usize] as i64;
        if d > s {
            let start = (d - s) / 2;
            starts.push(start);
            ends.push(start + s);
            crop_axes.push(ax);
        } else if s > d {
            let p = s - d;
            pads[ax as usize] = p / 2;
            pads[(rank + ax) as usize] = p - p / 2;
        }
    }
    let need_pad = pads.iter().any(|&p| p != 0);
    let mut y = x;
    if !crop_axes.is_empty() {
        let s = c.const_i64(&starts, false);
        let e = c.const_i64(&ends, false);
        let a = c.const_i64(&crop_axes, false);
        y = step(c, !need_pad, OpKind::Slice, &[y, s, e, a], Attrs::new())?;
    }
    if need_pad {
        let p = c.const_i64(&pads, false);
        y = step(c, true, OpKind::Pad, &[y, p], Attrs::new())?;
    } else if crop_axes.is_empty() {
        y = step(c, true, OpKind::Identity, &[y], Attrs::new())?;
    }
    Ok(vec![Some(y)])
}

/// GroupNormalization-18/21 as the ONNX function body: statistics over
/// each group of `C / num_groups` channels (from version 21 in the
/// `stash_type` type, f32 by default; before in the input's type),
/// `var = E[x²] - E[x]²`, then the affine
/// transform, per group in version 18 and per channel from 21.
pub(super) fn group_norm(c: &mut NodeCtx<'_, '_>) -> R {
    // stash_type arrived with version 21; version 18 computes in X's type.
    if c.version >= 21 {
        c.check_attrs(&["num_groups", "epsilon", "stash_type"])?;
    } else {
        c.check_attrs(&["num_groups", "epsilon"])?;
    }
    let x = c.input(0)?;
    let scale = c.input(1)?;
    let bias = c.input(2)?;
    let dt = require_float(c, x, "X")?;
    let groups = match c.attr("num_groups") {
        Some(_) => c.attr_int("num_groups", 0)?,
        None => return Err(c.invalid("attribute 'num_groups' is required")),
    };
    let eps = c.attr_float("epsilon", 1e-5)?;
    let stash = if c.version >= 21 {
        // An ONNX element type code, float32 by default.
        let code = c.attr_int("stash_type", 1)?;
        i32::try_from(code)
            .ok()
            .and_then(|k| crate::tensor::dtype_from_onnx(k).ok())
            .filter(|&d| is_float(d))
            .ok_or_else(|| c.unsupported(format!("stash_type {code} is not supported")))?
    } else {
        dt
    };
    let xt = c.ty(x).clone();
    if xt.rank() < 2 || groups <= 0 {
        return Err(c.invalid(format!(
            "needs an input of rank >= 2 and num_groups > 0, got {xt} and {groups}"
        )));
    }
    if let Dim::Static(ch) = xt.dims[1] {
        if ch % groups as u64 != 0 {
            return Err(c.invalid(format!("{ch} channels do not split into {groups} groups")));
        }
    }
    let xs = c.cast(x, stash)?;
    let g3 = c.const_i64(&[0, groups, -1], false);
    let xg = c.op(OpKind::Reshape, &[xs, g3])?;
    let ax = c.const_i64(&[2], false);
    let mean_attrs = attrs(&[("keepdims", Attr::Bool(true))]);
    let mean = step(c, false, OpKind::ReduceMean, &[xg, ax], mean_attrs.clone())?;
    let sq = c.op(OpKind::Mul, &[xg, xg])?;
    let mean_sq = step(c, false, OpKind::ReduceMean, &[sq, ax], mean_attrs)?;
    let m2 = c.op(OpKind::Mul, &[mean, mean])?;
    let var = c.op(OpKind::Sub, &[mean_sq, m2])?;
    let e = c.const_scalar(stash, f64::from(eps))?;
    let ve = c.op(OpKind::Add, &[var, e])?;
    let sd = c.op(OpKind::Sqrt, &[ve])?;
    let centered = c.op(OpKind::Sub, &[xg, mean])?;
    let norm = c.op(OpKind::Div, &[centered, sd])?;
    let (norm, affine_shape) = if c.version >= 21 {
        // Per channel: back to [N, C, -1] with scale/bias as [1, C, 1].
        let nc = c.op_with(
            OpKind::Shape,
            &[x],
            &[("start", Attr::Int(0)), ("end", Attr::Int(2))],
        )?;
        let m1 = c.const_i64(&[-1], false);
        let s3 = c.op_with(OpKind::Concat, &[nc, m1], &[("axis", Attr::Int(0))])?;
        (c.op(OpKind::Reshape, &[norm, s3])?, [1, -1, 1])
    } else {
        (norm, [1, groups, 1])
    };
    let norm = c.cast(norm, dt)?;
    let ashape = c.const_i64(&affine_shape, false);
    let sc = c.cast(scale, dt)?;
    let sc = c.op(OpKind::Reshape, &[sc, ashape])?;
    let bi = c.cast(bias, dt)?;
    let bi = c.op(OpKind::Reshape, &[bi, ashape])?;
    let y = c.op(OpKind::Mul, &[norm, sc])?;
    let y = c.op(OpKind::Add, &[y, bi])?;
    let full = c.op(OpKind::Shape, &[x])?;
    Ok(vec![Some(step(
        c,
        true,
        OpKind::Reshape,
        &[y, full],
        Attrs::new(),
    )?)])
}

/// CenterCropPad with the crop and pad amounts computed at run time from
/// `Shape(x)` and the `target` operand (the result's extents along `axes`
/// are then known only at run time).
fn center_crop_pad_dynamic(
    c: &mut NodeCtx<'_, '_>,
    x: ValueId,
    target: ValueId,
    axes: &[i64],
) -> R {
    let axes_c = c.const_i64(axes, false);
    let full = c.op(OpKind::Shape, &[x])?;
    let d = c.op_with(OpKind::Gather, &[full, axes_c], &[("axis", Attr::Int(0))])?;
    let s = c.cast(target, DType::I64)?;
    let zero = c.const_i64(&[0], true);
    let two = c.const_i64(&[2], true);
    // Crop: start = max(d - s, 0) / 2, length min(d, s).
    let over = c.op(OpKind::Sub, &[d, s])?;
    let over = c.op(OpKind::Max, &[over, zero])?;
    let start = c.op(OpKind::Div, &[over, two])?;
    let len = c.op(OpKind::Min, &[d, s])?;
    let end = c.op(OpKind::Add, &[start, len])?;
    let y = c.op(OpKind::Slice, &[x, start, end, axes_c])?;
    // Pad: max(s - d, 0), the smaller half before.
    let under = c.op(OpKind::Sub, &[s, d])?;
    let under = c.op(OpKind::Max, &[under, zero])?;
    let before = c.op(OpKind::Div, &[under, two])?;
    let after = c.op(OpKind::Sub, &[under, before])?;
    let pads = c.op_with(OpKind::Concat, &[before, after], &[("axis", Attr::Int(0))])?;
    Ok(vec![Some(c.emit1(
        OpKind::Pad,
        vec![Some(y), Some(pads), None, Some(axes_c)],
        Attrs::new(),
    )?)])
}

/// TensorScatter-24: writes `update` into `past_cache` along the sequence
/// `axis`, at `write_indices[b] + s` for batch `b` and update position `s`
/// (modulo the cache length in `circular` mode), as ScatterElements with
/// that index broadcast over the update's shape.
pub(super) fn tensor_scatter(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["mode", "axis"])?;
    let past = c.input(0)?;
    let update = c.input(1)?;
    let write = c.opt_input(2);
    let circular = match c.attr_str("mode", "linear")?.as_str() {
        "linear" => false,
        "circular" => true,
        other => {
            return Err(c.invalid(format!("mode '{other}' is not one of 'linear', 'circular'")))
        }
    };
    let (pt, ut) = (c.ty(past).clone(), c.ty(update).clone());
    let rank = pt.rank() as i64;
    let mut axis = c.attr_int("axis", -2)?;
    if axis < 0 {
        axis += rank;
    }
    // The batch axis 0 precedes the sequence axis.
    if axis < 1 || axis >= rank || ut.rank() != pt.rank() || ut.dtype != pt.dtype {
        return Err(c.invalid(format!(
            "needs a sequence axis after the batch axis and an update of the cache's rank and type; got axis {axis}, cache {pt}, update {ut}"
        )));
    }
    let ax = axis as usize;
    let Dim::Static(seq) = ut.dims[ax] else {
        return Err(c.unsupported("TensorScatter needs a static update length"));
    };
    // Update positions, laid along the sequence axis.
    let mut shape = vec![1i64; rank as usize];
    shape[ax] = seq as i64;
    let pos: Vec<i64> = (0..seq as i64).collect();
    let pos = c.const_i64(&pos, false);
    let pos_shape = c.const_i64(&shape, false);
    let mut idx = c.op(OpKind::Reshape, &[pos, pos_shape])?;
    if let Some(w) = write {
        if c.ty(w).rank() != 1 || !matches!(c.ty(w).dtype, DType::I32 | DType::I64) {
            return Err(c.invalid(format!(
                "write_indices must be a 1-D integer tensor, got {}",
                c.ty(w)
            )));
        }
        let w = c.cast(w, DType::I64)?;
        let mut bshape = vec![1i64; rank as usize];
        bshape[0] = -1;
        let bshape = c.const_i64(&bshape, false);
        let w = c.op(OpKind::Reshape, &[w, bshape])?;
        idx = c.op(OpKind::Add, &[idx, w])?;
    }
    if circular {
        let len = c.op_with(
            OpKind::Shape,
            &[past],
            &[("start", Attr::Int(axis)), ("end", Attr::Int(axis + 1))],
        )?;
        idx = c.op(OpKind::Mod, &[idx, len])?;
    }
    let ushape = c.op(OpKind::Shape, &[update])?;
    let idx = c.op(OpKind::Expand, &[idx, ushape])?;
    Ok(vec![Some(step(
        c,
        true,
        OpKind::ScatterElements,
        &[past, idx, update],
        attrs(&[("axis", Attr::Int(axis))]),
    )?)])
}
