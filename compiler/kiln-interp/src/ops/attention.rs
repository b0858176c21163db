//! `nn.attention` (ONNX Attention, opsets 23-25) and `nn.rotary_embedding`
//! (ONNX RotaryEmbedding), following the ONNX reference implementations.
//!
//! Attention works in the 4-D layout `[B, heads, S, head_size]` (3-D
//! operands are split into heads first and merged back at the end). The
//! additive bias combines, in the reference's order: the attention mask
//! (its key dim padded with `-inf` / false up to the total sequence
//! length, then broadcast right-aligned to `[B, q_heads, q_seq, total]`),
//! the bottom-right aligned causal mask, the sliding window and the
//! `nonpad_kv_seqlen` padding mask. A query row whose bias is entirely
//! `-inf` gets all-zero probabilities. Dot products and softmax run in
//! f64; values are rounded to the operand dtype where the reference
//! materializes them (scaled Q and K, scores, probabilities, results), and
//! each softmax step (`x - max`, `exp`, the row sum, the quotient) to the
//! softmax dtype (`softmax_precision`, else the operand dtype).
//! `qk_matmul_output_mode` follows the opset-25 schema text: 0 raw scores,
//! 1 after softcap, 2 after softcap and bias, 3 probabilities.

use crate::eval::Op;
use crate::ops::reduce::int_list;
use crate::tensor::round_float;
use crate::{InterpError, Tensor};
use kiln_ir::ops::attention::HeadView;
use kiln_ir::DType;

fn invalid<T>(msg: String) -> Result<T, InterpError> {
    Err(InterpError::Invalid(msg))
}

/// A tensor viewed as `[B, H, S, D]` row-major data.
struct Heads {
    v: Vec<f64>,
    b: usize,
    h: usize,
    s: usize,
    d: usize,
}

impl Heads {
    fn at(&self, b: usize, h: usize, s: usize, d: usize) -> f64 {
        self.v[((b * self.h + h) * self.s + s) * self.d + d]
    }
}

/// Views `t` as `[B, H, S, D]` (kiln-ir's [`HeadView`] rule); a 3-D
/// `[B, S, H * D]` tensor needs its head-count attribute `attr_name`.
fn split(
    t: &Tensor,
    heads: Option<i64>,
    what: &str,
    attr_name: &str,
) -> Result<Heads, InterpError> {
    let view = HeadView::resolve(&t.shape, heads, what, attr_name).map_err(InterpError::Invalid)?;
    let v = t.to_f64_vec();
    let (b, h, s, d) = (
        view.batch as usize,
        view.heads as usize,
        view.seq as usize,
        view.head_size as usize,
    );
    if !view.packed {
        return Ok(Heads { v, b, h, s, d });
    }
    let mut out = vec![0.0; v.len()];
    for bi in 0..b {
        for si in 0..s {
            for hi in 0..h {
                for di in 0..d {
                    out[((bi * h + hi) * s + si) * d + di] = v[(bi * s + si) * h * d + hi * d + di];
                }
            }
        }
    }
    Ok(Heads { v: out, b, h, s, d })
}

/// Concatenates a past cache `[B, H, P, D]` with `cur` along the sequence.
fn concat_past(past: Option<&Tensor>, cur: Heads, what: &str) -> Result<Heads, InterpError> {
    let Some(p) = past else { return Ok(cur) };
    let pv = p.to_f64_vec();
    if p.rank() != 4
        || p.shape[0] as usize != cur.b
        || p.shape[1] as usize != cur.h
        || p.shape[3] as usize != cur.d
    {
        return invalid(format!(
            "{what} shape {:?} does not fit the new keys/values",
            p.shape
        ));
    }
    let ps = p.shape[2] as usize;
    let s = ps + cur.s;
    let mut v = Vec::with_capacity(cur.b * cur.h * s * cur.d);
    for b in 0..cur.b {
        for h in 0..cur.h {
            let base = (b * cur.h + h) * ps * cur.d;
            v.extend_from_slice(&pv[base..base + ps * cur.d]);
            let base = (b * cur.h + h) * cur.s * cur.d;
            v.extend_from_slice(&cur.v[base..base + cur.s * cur.d]);
        }
    }
    Ok(Heads { v, s, ..cur })
}

/// The dtype the softmax runs in: `softmax_precision` (an ONNX tensor type
/// code) when given, else the operands' dtype.
fn softmax_dtype(code: Option<i64>, dt: DType) -> Result<DType, InterpError> {
    Ok(match code {
        None => dt,
        Some(1) => DType::F32,
        Some(10) => DType::F16,
        Some(11) => DType::F64,
        Some(16) => DType::BF16,
        Some(c) => return invalid(format!("softmax_precision {c} is not a float type")),
    })
}

/// `nn.attention`.
pub fn attention(op: &Op<'_>) -> Result<Vec<Tensor>, InterpError> {
    let (qt, kt, vt) = (op.input(0)?, op.input(1)?, op.input(2)?);
    let dt = qt.dtype;
    let rank3 = qt.rank() == 3;
    let q = split(qt, op.a.opt_int("q_num_heads")?, "Q", "q_num_heads")?;
    let kvh = op.a.opt_int("kv_num_heads")?;
    let (past_k, past_v) = (op.opt(4), op.opt(5));
    if past_k.is_some() != past_v.is_some() {
        return invalid("past_key and past_value must be given together".into());
    }
    let past_len = past_k.map_or(0, |p| p.shape.get(2).copied().unwrap_or(0) as i64);
    let k = concat_past(past_k, split(kt, kvh, "K", "kv_num_heads")?, "past_key")?;
    let v = concat_past(past_v, split(vt, kvh, "V", "kv_num_heads")?, "past_value")?;
    if k.b != q.b || v.b != q.b || k.d != q.d || k.h != v.h || k.s != v.s {
        return invalid("Q, K and V shapes disagree".into());
    }
    if k.h == 0 || q.h % k.h != 0 {
        return invalid(format!(
            "q heads {} are not a multiple of kv heads {}",
            q.h, k.h
        ));
    }
    let group = q.h / k.h;
    let (b_n, hq, sq, total, dv) = (q.b, q.h, q.s, k.s, v.d);
    let nonpad = match op.opt(6) {
        Some(t) => {
            let n = int_list(t, "nonpad_kv_seqlen")?;
            if n.len() != b_n {
                return invalid("nonpad_kv_seqlen length differs from the batch".into());
            }
            Some(n)
        }
        None => None,
    };
    // Causal / window frontier offset per batch.
    let offset = |b: usize| -> i64 {
        match (&nonpad, past_k) {
            (Some(n), None) => n[b] - sq as i64,
            _ => past_len,
        }
    };
    // `scale` has no schema default: absent means 1/sqrt(head_size).
    let scale = if op.a.attrs.get("scale").is_some() {
        op.a.float("scale")?
    } else {
        1.0 / (q.d as f64).sqrt()
    };
    let s_sqrt = round_float(dt, scale.sqrt());
    let sd = softmax_dtype(op.a.opt_int("softmax_precision")?, dt)?;
    let softcap = op.a.float("softcap")?;
    let mode = op.a.int("qk_matmul_output_mode")?;
    let causal = op.a.bool("is_causal")?;
    let (left, right) = (
        op.a.int("left_window_size")?,
        op.a.int("right_window_size")?,
    );
    // The attention mask, padded and broadcast.
    let mask = op.opt(3);
    let mask_data = mask.map(Tensor::to_f64_vec);
    let mask_at = |b: usize, h: usize, i: usize, j: usize| -> f64 {
        let (Some(m), Some(mv)) = (mask, &mask_data) else {
            return 0.0;
        };
        let r = m.rank();
        let last = m.shape.last().copied().unwrap_or(1) as usize;
        if j >= last {
            return f64::NEG_INFINITY;
        }
        let full = [b, h, i, j];
        let mut flat = 0usize;
        for d in 0..r {
            let ext = m.shape[d] as usize;
            let c = full[4 - r + d];
            flat = flat * ext + if ext == 1 { 0 } else { c };
        }
        let e = mv[flat];
        if m.dtype == DType::Bool {
            if e != 0.0 {
                0.0
            } else {
                f64::NEG_INFINITY
            }
        } else {
            e
        }
    };
    let bias_at = |b: usize, h: usize, i: usize, j: usize| -> f64 {
        let mut x = mask_at(b, h, i, j);
        let diff = i as i64 + offset(b) - j as i64;
        if causal && diff < 0 {
            x = f64::NEG_INFINITY;
        }
        if (left >= 0 && diff > left) || (right >= 0 && -diff > right) {
            x = f64::NEG_INFINITY;
        }
        if let Some(n) = &nonpad {
            if j as i64 >= n[b] {
                x = f64::NEG_INFINITY;
            }
        }
        round_float(dt, x)
    };
    let mut y = vec![0.0; b_n * hq * sq * dv];
    let mut qk_out = vec![0.0; b_n * hq * sq * total];
    for b in 0..b_n {
        for h in 0..hq {
            let kh = h / group;
            for i in 0..sq {
                let mut raw = vec![0.0; total];
                let mut capped = vec![0.0; total];
                let mut biased = vec![0.0; total];
                let mut all_masked = true;
                for j in 0..total {
                    let mut acc = 0.0;
                    for d in 0..q.d {
                        let qs = round_float(dt, q.at(b, h, i, d) * s_sqrt);
                        let ks = round_float(dt, k.at(b, kh, j, d) * s_sqrt);
                        acc += qs * ks;
                    }
                    raw[j] = round_float(dt, acc);
                    capped[j] = if softcap > 0.0 {
                        round_float(dt, softcap * (raw[j] / softcap).tanh())
                    } else {
                        raw[j]
                    };
                    let bias = bias_at(b, h, i, j);
                    all_masked &= bias == f64::NEG_INFINITY;
                    biased[j] = round_float(dt, capped[j] + bias);
                }
                let max = biased.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let probs: Vec<f64> = if all_masked || total == 0 {
                    vec![0.0; total]
                } else {
                    // Each step rounded to the softmax dtype, as the
                    // reference's NumPy arrays are (see `half_sum`).
                    let safe = if max == f64::NEG_INFINITY { 0.0 } else { max };
                    let e: Vec<f64> = biased
                        .iter()
                        .map(|&x| round_float(sd, round_float(sd, x - safe).exp()))
                        .collect();
                    let s = crate::ops::norm::half_sum(sd, &e);
                    let s = if s == 0.0 { 1.0 } else { s };
                    e.iter()
                        .map(|&x| round_float(dt, round_float(sd, x / s)))
                        .collect()
                };
                let row = ((b * hq + h) * sq + i) * total;
                let keep = match mode {
                    0 => &raw,
                    1 => &capped,
                    2 => &biased,
                    _ => &probs,
                };
                qk_out[row..row + total].copy_from_slice(keep);
                for d in 0..dv {
                    let acc: f64 = (0..total).map(|j| probs[j] * v.at(b, kh, j, d)).sum();
                    y[((b * hq + h) * sq + i) * dv + d] = acc;
                }
            }
        }
    }
    let y = if rank3 {
        // [B, H, S, Dv] -> [B, S, H * Dv]
        let mut t = vec![0.0; y.len()];
        for b in 0..b_n {
            for h in 0..hq {
                for i in 0..sq {
                    for d in 0..dv {
                        t[(b * sq + i) * hq * dv + h * dv + d] =
                            y[((b * hq + h) * sq + i) * dv + d];
                    }
                }
            }
        }
        Tensor::from_f64(dt, vec![b_n as u64, sq as u64, (hq * dv) as u64], t)
    } else {
        Tensor::from_f64(dt, vec![b_n as u64, hq as u64, sq as u64, dv as u64], y)
    };
    let cache = |x: Heads, dt: DType| {
        Tensor::from_f64(
            dt,
            vec![x.b as u64, x.h as u64, x.s as u64, x.d as u64],
            x.v,
        )
    };
    // All four results are always computed; the runner drops undeclared ones.
    Ok(vec![
        y,
        cache(k, kt.dtype),
        cache(v, vt.dtype),
        Tensor::from_f64(
            dt,
            vec![b_n as u64, hq as u64, sq as u64, total as u64],
            qk_out,
        ),
    ])
}

/// `nn.rotary_embedding`: per head, rotates the pairs `(x1, x2)` of the
/// first `rotary_embedding_dim` features (halves, or even/odd features
/// when `interleaved`) by the cached angle of the token's position:
/// `(cos x1 - sin x2, sin x1 + cos x2)`.
pub fn rotary_embedding(op: &Op<'_>) -> Result<Tensor, InterpError> {
    let x = op.input(0)?;
    let (cos_t, sin_t) = (op.input(1)?, op.input(2)?);
    let pos = match op.opt(3) {
        Some(p) => Some(int_list(p, "position_ids")?),
        None => None,
    };
    let xh = split(x, op.a.opt_int("num_heads")?, "X", "num_heads")?;
    let (b_n, h_n, s_n, d_n) = (xh.b, xh.h, xh.s, xh.d);
    let rot = match op.a.int("rotary_embedding_dim")? {
        0 => d_n,
        r if r > 0 && (r as usize) <= d_n && r % 2 == 0 => r as usize,
        r => {
            return invalid(format!(
                "rotary_embedding_dim {r} does not fit head size {d_n}"
            ))
        }
    };
    let half = rot / 2;
    let (cv, sv) = (cos_t.to_f64_vec(), sin_t.to_f64_vec());
    if cos_t.shape.last().copied() != Some(half as u64) || cos_t.shape != sin_t.shape {
        return invalid(format!(
            "cos/sin caches must end in rotary_embedding_dim / 2 = {half}"
        ));
    }
    // Row of the caches for token (b, s).
    let row = |b: usize, s: usize| -> Result<usize, InterpError> {
        match &pos {
            Some(p) => {
                let id = p[b * s_n + s];
                if id < 0 || id as u64 >= cos_t.shape[0] {
                    return invalid(format!("position id {id} is outside the caches"));
                }
                Ok(id as usize)
            }
            None => Ok(b * s_n + s),
        }
    };
    let mut out = xh.v.clone();
    for b in 0..b_n {
        for s in 0..s_n {
            let r = row(b, s)? * half;
            for h in 0..h_n {
                let base = ((b * h_n + h) * s_n + s) * d_n;
                for k in 0..half {
                    let (i1, i2) = if op.a.bool("interleaved")? {
                        (2 * k, 2 * k + 1)
                    } else {
                        (k, k + half)
                    };
                    let (x1, x2) = (xh.v[base + i1], xh.v[base + i2]);
                    let (c, sn) = (cv[r + k], sv[r + k]);
                    out[base + i1] = c * x1 - sn * x2;
                    out[base + i2] = sn * x1 + c * x2;
                }
            }
        }
    }
    if x.rank() == 3 {
        let mut t = vec![0.0; out.len()];
        for b in 0..b_n {
            for h in 0..h_n {
                for s in 0..s_n {
                    for d in 0..d_n {
                        t[(b * s_n + s) * h_n * d_n + h * d_n + d] =
                            out[((b * h_n + h) * s_n + s) * d_n + d];
                    }
                }
            }
        }
        out = t;
    }
    Ok(Tensor::from_f64(x.dtype, x.shape.clone(), out))
}
