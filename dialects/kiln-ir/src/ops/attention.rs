//! Fused transformer ops: `nn.attention` (ONNX Attention, opsets 23-25) and
//! `nn.rotary_embedding` (ONNX RotaryEmbedding, opset 23).
//!
//! Both accept the 4-D head-split layout `[B, heads, S, head_size]` and the
//! 3-D packed layout `[B, S, heads * head_size]`; the 3-D form needs the
//! head counts as attributes. Inference checks every extent relation the
//! ONNX spec states (head sizes, GQA divisibility, cache shapes) wherever
//! the extents are static.

use super::infer::{bail, check_dims_agree, require_float, unify_dim};
use super::infer::{InferCtx, InferError};
use super::{attr, Arity, AttrDefault, OpDef, Traits};
use crate::attr::AttrKind;
use crate::dtype::DType;
use crate::types::{Dim, TensorType};

type R = Result<Vec<TensorType>, InferError>;

/// One of Q, K, V viewed in the 4-D layout.
struct Heads {
    batch: Dim,
    heads: Dim,
    seq: Dim,
    head_size: Dim,
}

/// Reads a positive head-count attribute.
fn head_count(ctx: &InferCtx<'_>, name: &str) -> Result<Option<u64>, InferError> {
    match ctx.opt_int(name)? {
        None => Ok(None),
        Some(n) if n <= 0 => bail!("{name} must be positive, got {n}"),
        Some(n) => Ok(Some(n as u64)),
    }
}

/// Views `t` as `[B, heads, S, head_size]`; a 3-D `t` needs `heads`.
fn split_heads(
    t: &TensorType,
    heads: Option<u64>,
    what: &str,
    attr_name: &str,
) -> Result<Heads, InferError> {
    match t.rank() {
        4 => {
            if let (Some(h), Some(n)) = (heads, t.dims[1].as_static()) {
                if h != n {
                    bail!("{what} has {n} heads but {attr_name} is {h}");
                }
            }
            Ok(Heads {
                batch: t.dims[0].clone(),
                heads: t.dims[1].clone(),
                seq: t.dims[2].clone(),
                head_size: t.dims[3].clone(),
            })
        }
        3 => {
            let Some(h) = heads else {
                bail!("{what} is 3-D, so the {attr_name} attribute is required");
            };
            let head_size = match &t.dims[2] {
                Dim::Static(n) if n % h != 0 => {
                    bail!("{what} hidden size {n} is not divisible by {attr_name} = {h}")
                }
                Dim::Static(n) => Dim::Static(n / h),
                d if h == 1 => d.clone(),
                _ => Dim::Unknown,
            };
            Ok(Heads {
                batch: t.dims[0].clone(),
                heads: Dim::Static(h),
                seq: t.dims[1].clone(),
                head_size,
            })
        }
        _ => bail!("{what} must be 3-D [B, S, hidden] or 4-D [B, heads, S, head_size], got {t}"),
    }
}

/// A static Q, K, V (or rotary `X`) operand viewed as `[batch, heads, seq,
/// head_size]`: the head-split rule of [`split_heads`] (which inference
/// applies to symbolic extents), for the interpreter and the lowering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadView {
    /// Batch.
    pub batch: u64,
    /// Heads.
    pub heads: u64,
    /// Sequence length.
    pub seq: u64,
    /// Elements per head.
    pub head_size: u64,
    /// The operand is 3-D `[batch, seq, heads * head_size]`.
    pub packed: bool,
}

impl HeadView {
    /// Views `shape` (static) with head-count attribute `attr_name` =
    /// `heads`; `what` names the operand in errors.
    pub fn resolve(
        shape: &[u64],
        heads: Option<i64>,
        what: &str,
        attr_name: &str,
    ) -> Result<HeadView, String> {
        let heads = match heads {
            None => None,
            Some(n) if n <= 0 => return Err(format!("{attr_name} must be positive, got {n}")),
            Some(n) => Some(n as u64),
        };
        let t = TensorType::fixed(DType::F32, shape);
        let h = split_heads(&t, heads, what, attr_name).map_err(|e| e.to_string())?;
        let get = |d: &Dim| {
            d.as_static()
                .ok_or_else(|| format!("{what} has a dynamic extent"))
        };
        Ok(HeadView {
            batch: get(&h.batch)?,
            heads: get(&h.heads)?,
            seq: get(&h.seq)?,
            head_size: get(&h.head_size)?,
            packed: shape.len() == 3,
        })
    }

    /// Element strides of `(batch, head, seq, element)` in the operand.
    pub fn strides(&self) -> [u64; 4] {
        let (h, s, d) = (self.heads, self.seq, self.head_size);
        if self.packed {
            [s * h * d, d, h * d, 1]
        } else {
            [h * s * d, s * d, d, 1]
        }
    }
}

fn add_dims(a: &Dim, b: &Dim) -> Result<Dim, InferError> {
    Ok(match (a, b) {
        (Dim::Static(0), d) | (d, Dim::Static(0)) => d.clone(),
        (Dim::Static(x), Dim::Static(y)) => match x.checked_add(*y) {
            Some(s) => Dim::Static(s),
            None => bail!("sequence length overflows 64 bits"),
        },
        _ => Dim::Unknown,
    })
}

fn infer_attention(ctx: &InferCtx<'_>) -> R {
    let (q, k, v) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    require_float(q.dtype, "Q")?;
    require_float(v.dtype, "V")?;
    if k.dtype != q.dtype {
        bail!("K has dtype {} but Q has {}", k.dtype, q.dtype);
    }
    if q.rank() != k.rank() || q.rank() != v.rank() {
        bail!("Q, K and V must all be 3-D or all 4-D, got {q}, {k} and {v}");
    }
    let mode = ctx.int("qk_matmul_output_mode")?;
    if !(0..=3).contains(&mode) {
        bail!("qk_matmul_output_mode must be 0..3, got {mode}");
    }
    if let Some(p) = ctx.opt_int("softmax_precision")? {
        if !matches!(p, 1 | 10 | 11 | 16) {
            bail!("softmax_precision {p} is not a float type code (1, 10, 11 or 16)");
        }
    }
    for name in ["left_window_size", "right_window_size"] {
        let w = ctx.int(name)?;
        if w < -1 {
            bail!("{name} must be >= -1, got {w}");
        }
    }
    let qh = head_count(ctx, "q_num_heads")?;
    let kvh = head_count(ctx, "kv_num_heads")?;
    let qs = split_heads(q, qh, "Q", "q_num_heads")?;
    let ks = split_heads(k, kvh, "K", "kv_num_heads")?;
    let vs = split_heads(v, kvh, "V", "kv_num_heads")?;
    let batch = unify_dim(&qs.batch, &ks.batch, "batch of Q vs K")?;
    let batch = unify_dim(&batch, &vs.batch, "batch of Q vs V")?;
    let head_size = unify_dim(&qs.head_size, &ks.head_size, "head size of Q vs K")?;
    let kv_heads = unify_dim(&ks.heads, &vs.heads, "heads of K vs V")?;
    let kv_seq = unify_dim(&ks.seq, &vs.seq, "sequence length of K vs V")?;
    if let (Some(a), Some(b)) = (qs.heads.as_static(), kv_heads.as_static()) {
        if b == 0 || a % b != 0 {
            bail!("q_num_heads {a} must be a multiple of kv_num_heads {b}");
        }
    }
    // The KV cache: past_key/past_value come together.
    let past_seq = match (ctx.opt_input(4), ctx.opt_input(5)) {
        (None, None) => Dim::Static(0),
        (Some(pk), Some(pv)) => {
            if pk.rank() != 4 || pv.rank() != 4 {
                bail!("past_key and past_value must be 4-D, got {pk} and {pv}");
            }
            if pk.dtype != k.dtype || pv.dtype != v.dtype {
                bail!("past_key/past_value dtypes must match K and V");
            }
            for (t, hs, what) in [
                (pk, &head_size, "past_key"),
                (pv, &vs.head_size, "past_value"),
            ] {
                check_dims_agree(&t.dims[0], &batch, &format!("{what} batch"))?;
                check_dims_agree(&t.dims[1], &kv_heads, &format!("{what} heads"))?;
                check_dims_agree(&t.dims[3], hs, &format!("{what} head size"))?;
            }
            unify_dim(&pk.dims[2], &pv.dims[2], "past sequence lengths")?
        }
        _ => bail!("past_key and past_value must be given together"),
    };
    if let Some(n) = ctx.opt_input(6) {
        if n.dtype != DType::I64 || n.rank() != 1 {
            bail!("nonpad_kv_seqlen must be a 1-D i64 tensor, got {n}");
        }
        check_dims_agree(&n.dims[0], &batch, "nonpad_kv_seqlen length vs batch")?;
    }
    let total = add_dims(&past_seq, &kv_seq)?;
    if let Some(m) = ctx.opt_input(3) {
        if !(m.dtype == DType::Bool || m.dtype == q.dtype) {
            bail!(
                "attn_mask must be bool or {} (Q's dtype), got {}",
                q.dtype,
                m.dtype
            );
        }
        if m.rank() > 4 {
            bail!("attn_mask must have rank <= 4, got {m}");
        }
        // Broadcastable to [B, q_heads, q_seq, total]; the last dim may be shorter.
        let target = [&batch, &qs.heads, &qs.seq];
        let lead = &m.dims[..m.rank().saturating_sub(1)];
        for (d, t) in lead.iter().rev().zip(target.iter().rev()) {
            if d.as_static() != Some(1) {
                check_dims_agree(d, t, "attn_mask")?;
            }
        }
        if let (Some(l), Some(Dim::Static(t))) =
            (m.dims.last().and_then(Dim::as_static), Some(&total))
        {
            if l > *t {
                bail!("attn_mask covers {l} keys but the total sequence length is {t}");
            }
        }
    }
    let y = if q.rank() == 4 {
        vec![
            batch.clone(),
            qs.heads.clone(),
            qs.seq.clone(),
            vs.head_size.clone(),
        ]
    } else {
        let hidden = match (qs.heads.as_static(), vs.head_size.as_static()) {
            (Some(h), Some(s)) => match h.checked_mul(s) {
                Some(n) => Dim::Static(n),
                None => bail!("hidden size overflows 64 bits"),
            },
            _ => Dim::Unknown,
        };
        vec![batch.clone(), qs.seq.clone(), hidden]
    };
    Ok(vec![
        TensorType::new(q.dtype, y),
        TensorType::new(
            k.dtype,
            vec![batch.clone(), kv_heads.clone(), total.clone(), head_size],
        ),
        TensorType::new(
            v.dtype,
            vec![batch.clone(), kv_heads, total.clone(), vs.head_size],
        ),
        TensorType::new(q.dtype, vec![batch, qs.heads, qs.seq, total]),
    ])
}

/// `nn.attention %q, %k, %v, %attn_mask?, %past_key?, %past_value?,
/// %nonpad_kv_seqlen? -> %y, %present_key?, %present_value?, %qk?`:
/// scaled dot-product attention with optional causal mask, soft cap, grouped
/// KV heads, sliding windows and a KV cache.
pub const ATTENTION: OpDef = OpDef {
    name: "nn.attention",
    summary: "Scaled dot-product attention with masking, GQA and a KV cache",
    inputs: Arity::range(3, 7),
    outputs: Arity::range(1, 4),
    attrs: &[
        attr("is_causal", AttrKind::Bool, AttrDefault::Bool(false)),
        attr("kv_num_heads", AttrKind::Int, AttrDefault::Absent),
        attr("left_window_size", AttrKind::Int, AttrDefault::Int(-1)),
        attr("q_num_heads", AttrKind::Int, AttrDefault::Absent),
        attr("qk_matmul_output_mode", AttrKind::Int, AttrDefault::Int(0)),
        attr("right_window_size", AttrKind::Int, AttrDefault::Int(-1)),
        attr("scale", AttrKind::Float, AttrDefault::Absent),
        attr("softcap", AttrKind::Float, AttrDefault::Float(0.0)),
        attr("softmax_precision", AttrKind::Int, AttrDefault::Absent),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_attention,
};

fn infer_rotary_embedding(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    require_float(x.dtype, "X")?;
    let heads = head_count(ctx, "num_heads")?;
    let xs = split_heads(x, heads, "X", "num_heads")?;
    let rot = ctx.int("rotary_embedding_dim")?;
    if rot < 0 {
        bail!("rotary_embedding_dim must be non-negative, got {rot}");
    }
    if let Some(h) = xs.head_size.as_static() {
        if h % 2 != 0 {
            bail!("head size {h} must be even");
        }
        if rot as u64 > h {
            bail!("rotary_embedding_dim {rot} exceeds the head size {h}");
        }
    }
    if rot % 2 != 0 {
        bail!("rotary_embedding_dim {rot} must be even");
    }
    let half = if rot > 0 {
        Dim::Static(rot as u64 / 2)
    } else {
        match xs.head_size.as_static() {
            Some(h) => Dim::Static(h / 2),
            None => Dim::Unknown,
        }
    };
    let with_pos = ctx.opt_input(3);
    if let Some(p) = with_pos {
        if !p.dtype.is_int() || p.rank() != 2 {
            bail!("position_ids must be a 2-D integer tensor [B, S], got {p}");
        }
        check_dims_agree(&p.dims[0], &xs.batch, "position_ids batch")?;
        check_dims_agree(&p.dims[1], &xs.seq, "position_ids sequence length")?;
    }
    for (i, what) in [(1, "cos_cache"), (2, "sin_cache")] {
        let c = ctx.input(i)?;
        if c.dtype != x.dtype {
            bail!("{what} has dtype {} but X has {}", c.dtype, x.dtype);
        }
        let want = if with_pos.is_some() { 2 } else { 3 };
        if c.rank() != want {
            bail!(
                "{what} must be {want}-D {} position_ids, got {c}",
                if want == 2 { "with" } else { "without" }
            );
        }
        if want == 3 {
            check_dims_agree(&c.dims[0], &xs.batch, &format!("{what} batch"))?;
            check_dims_agree(&c.dims[1], &xs.seq, &format!("{what} sequence length"))?;
        }
        check_dims_agree(
            &c.dims[c.rank() - 1],
            &half,
            &format!("{what} last dim vs rotary dim / 2"),
        )?;
    }
    for (c, s) in ctx.input(1)?.dims.iter().zip(&ctx.input(2)?.dims) {
        check_dims_agree(c, s, "cos_cache vs sin_cache")?;
    }
    Ok(vec![x.clone()])
}

/// `nn.rotary_embedding %x, %cos_cache, %sin_cache, %position_ids?`:
/// rotates pairs of the first `rotary_embedding_dim` (default all) features
/// of each head by position-dependent angles.
pub const ROTARY_EMBEDDING: OpDef = OpDef {
    name: "nn.rotary_embedding",
    summary: "Rotary position embedding (RoPE) over the leading features of each head",
    inputs: Arity::range(3, 4),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("interleaved", AttrKind::Bool, AttrDefault::Bool(false)),
        attr("num_heads", AttrKind::Int, AttrDefault::Absent),
        attr("rotary_embedding_dim", AttrKind::Int, AttrDefault::Int(0)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_rotary_embedding,
};
