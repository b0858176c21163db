//! Recurrent-state sequence operators of recent opsets, imported as
//! compositions of Kiln ops: `LinearAttention` (unrolled over the sequence,
//! like its ONNX function body's `Scan`) and `CausalConvWithState` (a
//! concatenation with the carried state, a depthwise convolution and a
//! slice for the new state).
//!
//! Both follow the ONNX function bodies' numerics: LinearAttention
//! computes in f32 whatever the input type and casts the results back;
//! CausalConvWithState computes in the input type. Sequence length, batch
//! and head sizes must be static (the recurrence is unrolled); anything
//! else is refused as unsupported with the reason, never guessed.

use super::NodeCtx;
use crate::error::OnnxError;
use kiln_ir::{Attr, DType, OpKind, ValueId};

type R = Result<Vec<Option<ValueId>>, OnnxError>;

/// Static extents of `v`, or an unsupported-error naming `what`.
fn static_shape(c: &NodeCtx<'_, '_>, v: ValueId, what: &str) -> Result<Vec<u64>, OnnxError> {
    c.ty(v).static_shape().ok_or_else(|| {
        c.unsupported(format!(
            "{what} must have a static shape (Kiln unrolls the recurrence), got {}",
            c.ty(v)
        ))
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    Linear,
    Gated,
    Delta,
    GatedDelta,
}

impl Rule {
    fn gated(self) -> bool {
        matches!(self, Rule::Gated | Rule::GatedDelta)
    }
    fn delta(self) -> bool {
        matches!(self, Rule::Delta | Rule::GatedDelta)
    }
}

/// LinearAttention-27 (q, k, v, past_state?, decay?, beta?) → (output,
/// present_state). Per step t and KV head, with `S` the (d_k × d_v) state:
/// `S' = exp(g_t)·S` when gated (else `S`); `S = S' + k_t ⊗ v_t` (linear
/// rules) or `S = S' + k_t ⊗ β_t(v_t − S'ᵀk_t)` (delta rules); the output
/// reads `scale · q_tᵀ S` with each KV head's state shared by
/// `q_num_heads / kv_num_heads` query heads.
pub(super) fn linear_attention(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&[
        "chunk_size",
        "kv_num_heads",
        "q_num_heads",
        "scale",
        "update_rule",
    ])?;
    let rule = match c.attr_str("update_rule", "gated_delta")?.as_str() {
        "linear" => Rule::Linear,
        "gated" => Rule::Gated,
        "delta" => Rule::Delta,
        "gated_delta" => Rule::GatedDelta,
        other => {
            return Err(c.invalid(format!(
                "update_rule '{other}' is not one of linear, gated, delta, gated_delta"
            )))
        }
    };
    let hq = c.attr_int("q_num_heads", 0)?;
    let hkv = c.attr_int("kv_num_heads", 0)?;
    if hq <= 0 || hkv <= 0 || hq % hkv != 0 {
        return Err(c.invalid(format!(
            "q_num_heads ({hq}) must be a positive multiple of kv_num_heads ({hkv})"
        )));
    }
    let (hq, hkv) = (hq as u64, hkv as u64);
    let q = c.input(0)?;
    let k = c.input(1)?;
    let v = c.input(2)?;
    let past = c.opt_input(3);
    let decay = c.opt_input(4);
    let beta = c.opt_input(5);
    let out_dt = c.ty(q).dtype;
    if !out_dt.is_float() {
        return Err(c.invalid(format!(
            "query must be a float tensor, got {}",
            out_dt.name()
        )));
    }
    let qs = static_shape(c, q, "query")?;
    let ks = static_shape(c, k, "key")?;
    let vs = static_shape(c, v, "value")?;
    if qs.len() != 3 || ks.len() != 3 || vs.len() != 3 {
        return Err(c.invalid("query, key and value must be 3-D (B, T, heads × head size)"));
    }
    let (b, t) = (qs[0], qs[1]);
    if qs[2] % hq != 0 || vs[2] % hkv != 0 {
        return Err(c.invalid(format!(
            "query's last extent {} and value's {} must divide by q_num_heads {hq} and kv_num_heads {hkv}",
            qs[2], vs[2]
        )));
    }
    let (dk, dv) = (qs[2] / hq, vs[2] / hkv);
    let out_dim = hq
        .checked_mul(dv)
        .filter(|_| dk > 0 && dv > 0)
        .ok_or_else(|| {
            c.invalid(format!(
                "head sizes {dk} (keys) and {dv} (values) must be positive"
            ))
        })?;
    if ks[..2] != qs[..2] || vs[..2] != qs[..2] || ks[2] != hkv * dk {
        return Err(c.invalid(format!(
            "key {ks:?} and value {vs:?} do not match query {qs:?} with {hq} query and {hkv} KV heads"
        )));
    }
    if t == 0 {
        return Err(c.unsupported("an empty sequence (T = 0) is not supported"));
    }
    if t > super::control::MAX_UNROLL {
        return Err(c.unsupported(format!(
            "sequence length {t} is over Kiln's unroll limit of {}",
            super::control::MAX_UNROLL
        )));
    }
    let (bi, ti) = (b as i64, t as i64);
    let f = DType::F32;
    // Heads unpacked: (B, T, H, d), computed in f32.
    let q4 = c.cast(q, f)?;
    let q4 = c.reshape(q4, &[bi, ti, hq as i64, dk as i64])?;
    let k4 = c.cast(k, f)?;
    let k4 = c.reshape(k4, &[bi, ti, hkv as i64, dk as i64])?;
    let v4 = c.cast(v, f)?;
    let v4 = c.reshape(v4, &[bi, ti, hkv as i64, dv as i64])?;
    let g4 = if rule.gated() {
        let g = decay.ok_or_else(|| c.invalid("decay is required by the gated update rules"))?;
        let gs = static_shape(c, g, "decay")?;
        if gs.len() != 3 || gs[..2] != qs[..2] || (gs[2] != hkv * dk && gs[2] != hkv) {
            return Err(c.invalid(format!(
                "decay {gs:?} must be (B, T, kv_num_heads × d_k) or (B, T, kv_num_heads)"
            )));
        }
        let g = c.cast(g, f)?;
        let g = c.op(OpKind::Exp, &[g])?;
        Some(c.reshape(g, &[bi, ti, hkv as i64, -1])?)
    } else {
        None
    };
    let b4 = if rule.delta() {
        let be = beta.ok_or_else(|| c.invalid("beta is required by the delta update rules"))?;
        let bs = static_shape(c, be, "beta")?;
        if bs.len() != 3 || bs[..2] != qs[..2] || (bs[2] != hkv && bs[2] != 1) {
            return Err(c.invalid(format!(
                "beta {bs:?} must be (B, T, kv_num_heads) or (B, T, 1)"
            )));
        }
        let be = c.cast(be, f)?;
        Some(c.reshape(be, &[bi, ti, -1, 1])?)
    } else {
        None
    };
    let state_shape = [b, hkv, dk, dv];
    let mut s = match past {
        Some(p) => {
            if static_shape(c, p, "past_state")? != state_shape {
                return Err(c.invalid(format!(
                    "past_state must be (B, kv_num_heads, d_k, d_v) = {state_shape:?}, got {}",
                    c.ty(p)
                )));
            }
            c.cast(p, f)?
        }
        None => c.zeros(f, &state_shape)?,
    };
    let scale = match c.attr_float("scale", 0.0)? {
        0.0 => 1.0 / (dk as f64).sqrt(),
        x => f64::from(x),
    };
    let scale = c.const_scalar(f, scale)?;
    let group = hq / hkv;
    let mut outs = Vec::with_capacity(t as usize);
    for step in 0..t {
        let q_t = c.take(q4, 1, step)?; // (B, Hq, dk)
        let k_t = c.take(k4, 1, step)?; // (B, Hkv, dk)
        let v_t = c.take(v4, 1, step)?; // (B, Hkv, dv)
        let decayed = match g4 {
            Some(g) => {
                let g_t = c.take(g, 1, step)?; // (B, Hkv, dk | 1)
                let g_t = c.unsqueeze(g_t, &[-1])?;
                c.op(OpKind::Mul, &[s, g_t])?
            }
            None => s,
        };
        let k_col = c.unsqueeze(k_t, &[-1])?; // (B, Hkv, dk, 1)
        let write = match b4 {
            Some(be) => {
                let st = c.transpose(decayed, &[0, 1, 3, 2])?;
                let got = c.op(OpKind::MatMul, &[st, k_col])?;
                let got = c.squeeze(got, &[-1])?;
                let diff = c.op(OpKind::Sub, &[v_t, got])?;
                let b_t = c.take(be, 1, step)?; // (B, Hkv | 1, 1)
                c.op(OpKind::Mul, &[b_t, diff])?
            }
            None => v_t,
        };
        let row = c.unsqueeze(write, &[-2])?; // (B, Hkv, 1, dv)
        let outer = c.op(OpKind::MatMul, &[k_col, row])?;
        s = c.op(OpKind::Add, &[decayed, outer])?;
        let read = if group > 1 {
            let e = c.unsqueeze(s, &[2])?;
            let e = c.expand(e, &[bi, hkv as i64, group as i64, dk as i64, dv as i64])?;
            c.reshape(e, &[bi, hq as i64, dk as i64, dv as i64])?
        } else {
            s
        };
        let q_row = c.unsqueeze(q_t, &[-2])?; // (B, Hq, 1, dk)
        let o = c.op(OpKind::MatMul, &[q_row, read])?;
        let o = c.squeeze(o, &[-2])?; // (B, Hq, dv)
        outs.push(c.op(OpKind::Mul, &[scale, o])?);
    }
    let y = c.stack(&outs, 1)?; // (B, T, Hq, dv)
    let y = c.reshape(y, &[bi, ti, out_dim as i64])?;
    let y = c.cast(y, out_dt)?;
    let present = c.cast(s, out_dt)?;
    Ok(vec![Some(y), Some(present)])
}

/// CausalConvWithState-27 (input (B, C, L), weight (C, 1, k), bias?,
/// past_state? (B, C, k−1)) → (output (B, C, L), present_state (B, C, k−1)):
/// the input is prefixed with the carried state (zeros when absent),
/// convolved depthwise without padding, optionally passed through SiLU,
/// and the last k−1 positions of the prefixed input are the new state.
pub(super) fn causal_conv_with_state(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["activation"])?;
    let silu = match c.attr_str("activation", "none")?.as_str() {
        "none" => false,
        "silu" | "swish" => true,
        other => {
            return Err(c.unsupported(format!(
                "activation '{other}' is not supported (none, silu, swish)"
            )))
        }
    };
    let x = c.input(0)?;
    let w = c.input(1)?;
    let bias = c.opt_input(2);
    let past = c.opt_input(3);
    let xs = static_shape(c, x, "input")?;
    let ws = static_shape(c, w, "weight")?;
    if xs.len() != 3 || ws.len() != 3 || ws[0] != xs[1] || ws[1] != 1 || ws[2] == 0 {
        return Err(c.invalid(format!(
            "input must be (B, C, L) and weight (C, 1, k); got {xs:?} and {ws:?}"
        )));
    }
    let (b, ch, len, kk) = (xs[0], xs[1], xs[2], ws[2]);
    let dt = c.ty(x).dtype;
    let carry = kk - 1;
    let state = match past {
        Some(p) => {
            if static_shape(c, p, "past_state")? != [b, ch, carry] {
                return Err(c.invalid(format!(
                    "past_state must be (B, C, k - 1) = {:?}, got {}",
                    [b, ch, carry],
                    c.ty(p)
                )));
            }
            Some(p)
        }
        None if carry > 0 => Some(c.zeros(dt, &[b, ch, carry])?),
        None => None,
    };
    let padded = match state {
        Some(s) if carry > 0 => c.concat(&[s, x], 2)?,
        _ => x,
    };
    let mut operands = vec![padded, w];
    operands.extend(bias);
    let conv = c.op_with(
        OpKind::Conv,
        &operands,
        &[
            ("group", Attr::Int(ch as i64)),
            ("kernel_shape", Attr::Ints(vec![kk as i64])),
        ],
    )?;
    let y = if silu {
        let sig = c.op(OpKind::Sigmoid, &[conv])?;
        c.op(OpKind::Mul, &[conv, sig])?
    } else {
        conv
    };
    // With k = 1 there is no state to carry: the present state is empty.
    let present = if c.node.outputs.get(1).is_some_and(Option::is_some) {
        let total = (len + carry) as i64;
        Some(c.slice(padded, 2, total - carry as i64, total)?)
    } else {
        None
    };
    Ok(vec![Some(y), present])
}
