//! `recognize-attention`: replaces the scaled dot-product attention that
//! exporters spell out — `MatMul(Q, Kᵀ)`, a scale, masks, `Softmax`,
//! `MatMul(·, V)` — with one `nn.attention` node (ONNX Attention-23
//! semantics, see `kiln-ir`'s `ops/attention.rs` and the interpreter).
//!
//! What is matched, from the second MatMul `MatMul(P, V)` (4-D) upwards:
//! - `P = Softmax(S)` over the last axis, or `Cast(Softmax(Cast(S, f32)),
//!   dt)` (Llama's softmax in f32: `softmax_precision`);
//! - masks on `S`, in any order and number: `Add(S, M)` / `Add(M, S)` with
//!   `M` broadcasting to the scores without enlarging them (an additive
//!   mask), `Where(C, S, fill)` / `Where(C, fill, S)` with a scalar `fill`
//!   at or below the masked threshold (`masked_fill`). A constant (or
//!   constant-computed: `Trilu` of a filled tensor, a slice of a constant
//!   table, as GPT-2 and Llama export them) mask that is exactly the causal
//!   pattern (key `j` allowed for query `i` iff `j <= i`) becomes
//!   `is_causal`; other masks are summed into the additive `attn_mask`
//!   (a `Where` mask as `Where(C, 0, fill)`);
//! - scales below the masks: `Mul`/`Div` by a scalar constant of the scores,
//!   of Q or of K (before or after K's transpose), multiplied into `scale`;
//! - `S = MatMul(Q', K')` where `Kᵀ` is `K'` through any transpose chain
//!   (BERT: `Transpose(Reshape(k), [0,2,3,1])`, GPT-2 and Llama:
//!   `Transpose(k, [0,1,3,2])`);
//! - GQA: K and V repeated over query heads by `Reshape(Expand(Unsqueeze(kv,
//!   2)))` (Llama's `repeat_kv`) are used unrepeated, since `nn.attention`
//!   maps query head `h` to KV head `h / (Hq / Hkv)` exactly as the repeat
//!   does; a single KV head broadcast by the MatMuls works the same way.
//!
//! When Q, K and V all come from `[B, S, H*D]` tensors through
//! `Transpose(Reshape(x, [B,S,H,D]), [0,2,1,3])` and the result goes back
//! through `Reshape(Transpose(y, [0,2,1,3]), [B,S,H*D])` (BERT, GPT-2), the
//! 3-D packed form of `nn.attention` is used with the head counts as
//! attributes, and every transpose disappears with it.
//!
//! Deciding is [`plan`] (pure); rewriting is [`crate::rewrite::apply_recipe`].
//! The matched nodes from the first MatMul to the last (or to the final
//! Reshape in the packed form) must have no uses outside the pattern; the
//! projections feeding Q, K and V stay for any other users.
//!
//! Semantics: equal up to rounding (the scale is applied as `sqrt(scale)`
//! to Q and to K, as ONNX does), except a query row whose every key is
//! masked: the original computes NaN (a `-inf` mask) or an average over
//! the masked keys (a finite fill), `nn.attention` gives zeros.
//!
//! Preconditions: a verified graph; shape-inference has run (dims must be
//! known to match). Graph outputs keep their names and types.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep_pass, Direction, NewNode, Recipe, Val};
use kiln_interp::Tensor;
use kiln_ir::WeightData;
use kiln_ir::{Attr, Attrs, Blob, DType, Dim, Graph, OpKind, TensorType, ValueId, Weight};
use std::collections::HashSet;

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "recognize-attention",
    summary: "Replaces MatMul-scale-mask-Softmax-MatMul chains (BERT, GPT-2, Llama exports) with nn.attention",
    create: || Box::new(RecognizeAttention::default()),
};

/// Options of `recognize-attention`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// A mask entry (an additive mask's value, a `Where` fill) at or below
    /// this value, or below half the dtype's most negative finite value,
    /// excludes its key: `exp` of it underflows to zero next to any real
    /// score. Such masks may become `is_causal` or `-inf`-like masks.
    pub masked_at_or_below: f64,
    /// Use the 3-D packed form when Q, K, V and the result are all packed
    /// `[B, S, H*D]` tensors, dropping the head transposes.
    pub packed_layout: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            masked_at_or_below: -1e9,
            packed_layout: true,
        }
    }
}

/// The attention recognition pass.
#[derive(Clone, Debug, Default)]
pub struct RecognizeAttention {
    /// Options.
    pub options: Options,
}

impl Pass for RecognizeAttention {
    pass_info!();
    fn run(&self, g: &mut Graph, _opts: &PassOptions) -> Result<PassStats, PassError> {
        Ok(sweep_pass(g, Direction::Forward, |m, n| {
            plan(m, n, &self.options)
        }))
    }
}

/// A logical `[B, H, S, D]` operand: `transpose(base, perm)`, already
/// computed as `existing` when the graph has it.
#[derive(Clone, Debug)]
struct View {
    base: ValueId,
    perm: Vec<usize>,
    existing: Option<ValueId>,
}

impl View {
    fn plain(v: ValueId) -> View {
        View {
            base: v,
            perm: vec![0, 1, 2, 3],
            existing: Some(v),
        }
    }

    /// The value, or a new transpose computing it.
    fn materialize(&self, m: &Matcher<'_>, r: &mut Recipe, name: &str) -> Val {
        if pattern::is_identity(&self.perm) {
            return Val::Old(self.base);
        }
        if let Some(e) = self.existing {
            return Val::Old(e);
        }
        let ty = self.ty(m);
        r.push(NewNode::op(
            OpKind::Transpose,
            vec![Val::Old(self.base)],
            pattern::perm_attrs(&self.perm),
            name,
            ty,
        ))
    }

    fn ty(&self, m: &Matcher<'_>) -> TensorType {
        let t = m.ty(self.base);
        TensorType::new(t.dtype, pattern::permute(&t.dims, &self.perm))
    }
}

/// One mask on the scores.
#[derive(Clone, Debug)]
enum Mask {
    /// `S + m`.
    Additive(ValueId),
    /// `Where(cond, S, fill)` (`keep_when_true`) or `Where(cond, fill, S)`.
    Select {
        cond: ValueId,
        fill: f64,
        keep_when_true: bool,
    },
}

/// The scores chain below the softmax.
#[derive(Clone, Debug)]
struct Scores {
    q: ValueId,
    k: ValueId,
    scale: f64,
    masks: Vec<Mask>,
    interior: Vec<usize>,
}

/// Peels masks and scales off `v` down to the `Q·Kᵀ` MatMul.
fn peel(m: &Matcher<'_>, v: ValueId, budget: usize) -> Option<Scores> {
    if budget == 0 {
        return None;
    }
    let ty = m.ty(v);
    if let Some((i, q, k)) = m.binary(v, OpKind::MatMul) {
        if ty.rank() != 4 || m.ty(q).rank() != 4 || m.ty(k).rank() != 4 {
            return None;
        }
        return Some(Scores {
            q,
            k,
            scale: 1.0,
            masks: Vec::new(),
            interior: vec![i],
        });
    }
    if let Some((i, a, b)) = m.binary(v, OpKind::Mul) {
        for (x, c) in [(a, b), (b, a)] {
            if let Some(f) = m.scalar_operand(c, x, v) {
                let mut s = peel(m, x, budget - 1)?;
                // A scale above a mask would scale the mask too.
                if !s.masks.is_empty() {
                    return None;
                }
                s.scale *= f;
                s.interior.push(i);
                return Some(s);
            }
        }
        return None;
    }
    if let Some((i, a, c)) = m.binary(v, OpKind::Div) {
        let f = m.scalar_operand(c, a, v)?;
        let mut s = peel(m, a, budget - 1)?;
        if !s.masks.is_empty() {
            return None;
        }
        s.scale /= f;
        s.interior.push(i);
        return Some(s);
    }
    if let Some((i, a, b)) = m.binary(v, OpKind::Add) {
        for (x, mask) in [(a, b), (b, a)] {
            if m.ty(x) == ty {
                if let Some(mut s) = peel(m, x, budget - 1) {
                    s.masks.push(Mask::Additive(mask));
                    s.interior.push(i);
                    return Some(s);
                }
            }
        }
        return None;
    }
    let i = m.node_of(v)?;
    let node = &m.g.nodes[i];
    if let (OpKind::Where, [Some(c), Some(a), Some(b)]) = (node.op, node.inputs.as_slice()) {
        for (x, fill, keep_when_true) in [(*a, *b, true), (*b, *a, false)] {
            if m.ty(x) != ty || m.ty(fill).rank() > ty.rank() {
                continue;
            }
            let Some(f) = m.splat(fill) else { continue };
            if let Some(mut s) = peel(m, x, budget - 1) {
                s.masks.push(Mask::Select {
                    cond: *c,
                    fill: f,
                    keep_when_true,
                });
                s.interior.push(i);
                return Some(s);
            }
        }
    }
    None
}

/// Peels `Mul`/`Div` by scalar constants off `v`: the value below, the
/// product of the factors.
fn strip_scale(m: &Matcher<'_>, mut v: ValueId) -> (ValueId, f64) {
    let mut f = 1.0;
    for _ in 0..2 {
        if let Some((_, a, b)) = m.binary(v, OpKind::Mul) {
            if let Some(c) = m.scalar_operand(b, a, v) {
                (v, f) = (a, f * c);
                continue;
            }
            if let Some(c) = m.scalar_operand(a, b, v) {
                (v, f) = (b, f * c);
                continue;
            }
        }
        if let Some((_, a, b)) = m.binary(v, OpKind::Div) {
            if let Some(c) = m.scalar_operand(b, a, v) {
                (v, f) = (a, f / c);
                continue;
            }
        }
        break;
    }
    (v, f)
}

/// `v` (4-D) as a view through scales and a chain of transposes, and the
/// product of the scales peeled.
fn view_of(m: &Matcher<'_>, v: ValueId) -> Option<(View, f64)> {
    let (v1, mut f) = strip_scale(m, v);
    let mut view = View::plain(v1);
    for _ in 0..4 {
        let Some((_, t)) = m.def(view.base, OpKind::Transpose) else {
            break;
        };
        let [Some(x)] = t.inputs.as_slice() else {
            return None;
        };
        if m.ty(*x).rank() != 4 {
            return None;
        }
        // view = transpose(t, perm) = transpose(x, p ∘ perm).
        let p = pattern::perm_of(t, 4)?;
        let (x1, f2) = strip_scale(m, *x);
        view.perm = pattern::permute(&p, &view.perm);
        view.base = x1;
        // `v1` still equals the view unless a scale below it was peeled.
        if x1 != *x {
            view.existing = None;
        }
        f *= f2;
    }
    Some((view, f))
}

/// Llama's `repeat_kv`: `v = Reshape(Expand(u, [B,H,n,S,D]), [B,H*n,S,D])`
/// with `u = Unsqueeze(kv, [2])` or `Reshape(kv, [B,H,1,S,D])`: `kv` and `n`.
fn repeated_kv(m: &Matcher<'_>, v: ValueId) -> Option<(ValueId, u64)> {
    let (_, r) = m.def(v, OpKind::Reshape)?;
    let e = r.inputs.first().copied().flatten()?;
    let (_, ex) = m.def(e, OpKind::Expand)?;
    let u = ex.inputs.first().copied().flatten()?;
    let un = m.g.nodes.get(m.node_of(u)?)?;
    if !matches!(un.op, OpKind::Unsqueeze | OpKind::Reshape) {
        return None;
    }
    let kv = un.inputs.first().copied().flatten()?;
    let (kt, ut, et, vt) = (m.ty(kv), m.ty(u), m.ty(e), m.ty(v));
    if kt.rank() != 4 || ut.rank() != 5 || et.rank() != 5 || vt.rank() != 4 {
        return None;
    }
    let n = et.dims[2].as_static()?;
    let h = kt.dims[1].as_static()?;
    let ok = ut.dims[2] == Dim::Static(1)
        && [(0, 0), (1, 1), (3, 2), (4, 3)]
            .iter()
            .all(|&(a, b)| pattern::same_dim(&ut.dims[a], &kt.dims[b]))
        && [0, 1, 3, 4]
            .iter()
            .all(|&a| pattern::same_dim(&et.dims[a], &ut.dims[a]))
        && vt.dims[1] == Dim::Static(h * n)
        && [(0, 0), (2, 2), (3, 3)]
            .iter()
            .all(|&(a, b)| pattern::same_dim(&vt.dims[a], &kt.dims[b]));
    ok.then_some((kv, n))
}

/// A view that is `Transpose(Reshape(x, [B,S,H,D]), [0,2,1,3])` of a 3-D
/// `x = [B, S, H*D]`: `x` and `H`.
fn packed_input(m: &Matcher<'_>, view: &View) -> Option<(ValueId, u64)> {
    if view.perm != [0, 2, 1, 3] {
        return None;
    }
    let (_, r) = m.def(view.base, OpKind::Reshape)?;
    let x = r.inputs.first().copied().flatten()?;
    let (xt, bt) = (m.ty(x), m.ty(view.base));
    if xt.rank() != 3 || bt.rank() != 4 {
        return None;
    }
    let (h, d) = (bt.dims[2].as_static()?, bt.dims[3].as_static()?);
    let ok = pattern::same_dim(&xt.dims[0], &bt.dims[0])
        && pattern::same_dim(&xt.dims[1], &bt.dims[1])
        && xt.dims[2] == Dim::Static(h.checked_mul(d)?);
    ok.then_some((x, h))
}

/// `y` (`[B,H,S,Dv]`) used only by `Reshape(Transpose(y, [0,2,1,3]),
/// [B,S,H*Dv])`: the two nodes and the final value.
fn packed_output(m: &Matcher<'_>, y: ValueId) -> Option<([usize; 2], ValueId)> {
    let [t] = m.users(y) else { return None };
    let tn = &m.g.nodes[*t];
    if tn.op != OpKind::Transpose || !m.single_use(y) || pattern::perm_of(tn, 4)? != [0, 2, 1, 3] {
        return None;
    }
    let tv = tn.outputs[0];
    let [r] = m.users(tv) else { return None };
    let rn = &m.g.nodes[*r];
    if rn.op != OpKind::Reshape || rn.inputs.first() != Some(&Some(tv)) || m.is_output(tv) {
        return None;
    }
    let out = rn.outputs[0];
    let (yt, ot) = (m.ty(y), m.ty(out));
    let hd = yt.dims[1]
        .as_static()?
        .checked_mul(yt.dims[3].as_static()?)?;
    let ok = ot.rank() == 3
        && pattern::same_dim(&ot.dims[0], &yt.dims[0])
        && pattern::same_dim(&ot.dims[1], &yt.dims[2])
        && ot.dims[2] == Dim::Static(hd);
    ok.then_some(([*t, *r], out))
}

/// The softmax below `p` (the first MatMul's left operand): its input, its
/// nodes, and the `softmax_precision` type code when it runs in another
/// dtype between two casts.
fn softmax_of(m: &Matcher<'_>, p: ValueId) -> Option<(ValueId, Vec<usize>, Option<i64>)> {
    let is_last_axis = |i: usize| {
        let n = &m.g.nodes[i];
        matches!(pattern::int_attr(n, "axis"), Some(-1 | 3))
    };
    if let Some((i, s)) = m.unary(p, OpKind::Softmax) {
        return is_last_axis(i).then_some((s, vec![i], None));
    }
    let (c2, sm) = m.unary(p, OpKind::Cast)?;
    let (i, xs) = m.unary(sm, OpKind::Softmax)?;
    let (c1, s) = m.unary(xs, OpKind::Cast)?;
    let (dt, sd) = (m.ty(s).dtype, m.ty(xs).dtype);
    let code = match sd {
        DType::F32 => 1,
        DType::F16 => 10,
        DType::F64 => 11,
        DType::BF16 => 16,
        _ => return None,
    };
    (is_last_axis(i) && m.ty(p).dtype == dt && pattern::is_compute_float(dt)).then_some((
        s,
        vec![c2, i, c1],
        Some(code),
    ))
}

/// Whether `t` (`[..., Sq, Sk]`, every leading slice the same) allows key
/// `j` for query `i` exactly when `j <= i`; `allowed` classifies entries
/// (`None`: neither clearly allowed nor masked).
fn is_causal(t: &Tensor, sq: u64, sk: u64, allowed: impl Fn(f64) -> Option<bool>) -> bool {
    let r = t.shape.len();
    if r < 2 || t.shape[r - 2] != sq || t.shape[r - 1] != sk {
        return false;
    }
    let vals = t.to_f64_vec();
    let plane = (sq * sk) as usize;
    vals.chunks_exact(plane.max(1)).all(|p| {
        p.iter().enumerate().all(|(e, &x)| {
            let (i, j) = (e / sk as usize, e % sk as usize);
            allowed(x) == Some(j <= i)
        })
    })
}

fn scalar_weight(name: &str, dt: DType, x: f64) -> Weight {
    let t = Tensor::from_f64(dt, vec![], vec![x]);
    Weight {
        name: name.to_string(),
        ty: TensorType::scalar(dt),
        data: WeightData::Bytes(Blob::from_vec(t.to_bytes())),
        source: None,
    }
}

/// Decides whether node `n`, a `MatMul(P, V)`, ends an attention chain, and
/// plans its replacement.
pub fn plan(m: &Matcher<'_>, n: usize, opts: &Options) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    let (OpKind::MatMul, [Some(p), Some(v)], [y]) =
        (node.op, node.inputs.as_slice(), node.outputs.as_slice())
    else {
        return None;
    };
    let (p, v, y) = (*p, *v, *y);
    let yt = m.ty(y);
    if yt.rank() != 4 || m.ty(v).rank() != 4 || !pattern::is_compute_float(yt.dtype) {
        return None;
    }
    let (s, soft_nodes, precision) = softmax_of(m, p)?;
    let scores = peel(m, s, 8)?;
    let st = m.ty(s).clone();
    let dt = st.dtype;
    let (q_view, fq) = view_of(m, scores.q)?;
    let (k_prime, fk) = view_of(m, scores.k)?;
    // K' = transpose(base, perm) is Kᵀ: K = transpose(K', [0,1,3,2]).
    let k_view = View {
        base: k_prime.base,
        perm: pattern::permute(&k_prime.perm, &[0, 1, 3, 2]),
        existing: None,
    };
    // V is used as it is; its view through a head transpose only serves
    // the packed form (a scale of V is not part of attention).
    let v_view = View::plain(v);
    let v_heads = view_of(m, v).filter(|(_, f)| *f == 1.0).map(|(w, _)| w);
    let scale = scores.scale * fq * fk;
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    // The interior: everything from the first MatMul to the last.
    let mut interior: Vec<usize> = scores.interior.clone();
    interior.extend(&soft_nodes);
    let mut root = n;
    let mut root_value = y;

    // Operands: packed 3-D, or 4-D views (unrepeated for GQA).
    let (qt, kt, vt) = (q_view.ty(m), k_view.ty(m), v_view.ty(m));
    let packed = if opts.packed_layout {
        match (
            packed_input(m, &q_view),
            packed_input(m, &k_view),
            v_heads.as_ref().and_then(|w| packed_input(m, w)),
            packed_output(m, y),
        ) {
            (Some(q), Some(k), Some(vp), Some((nodes, out))) if k.1 == vp.1 => {
                Some((q, k, vp, nodes, out))
            }
            _ => None,
        }
    } else {
        None
    };
    let kv_repeat = match (
        pattern::is_identity(&k_view.perm),
        repeated_kv(m, k_view.base),
        repeated_kv(m, v),
    ) {
        (true, Some((k0, nk)), Some((v0, nv))) if nk == nv => Some((k0, v0)),
        _ => None,
    };

    // Dims: [B, Hq, Sq, D] x [B, Hk, Sk, D] x [B, Hk, Sk, Dv].
    let (b, hq, sq) = (&qt.dims[0], &qt.dims[1], &qt.dims[2]);
    let (hk, sk) = (&kt.dims[1], &kt.dims[2]);
    let dims_ok = pattern::same_dim(b, &kt.dims[0])
        && pattern::same_dim(b, &vt.dims[0])
        && pattern::same_dim(&qt.dims[3], &kt.dims[3])
        && pattern::same_dim(sk, &vt.dims[2])
        && pattern::same_dim(hk, &vt.dims[1])
        && (pattern::same_dim(hq, hk) || *hk == Dim::Static(1))
        && qt.dtype == dt
        && kt.dtype == dt
        && vt.dtype == dt;
    if !dims_ok {
        return None;
    }

    // Masks.
    let threshold = opts.masked_at_or_below.max(-0.5 * dt.max_finite());
    let masked = |x: f64| x <= threshold;
    let (sqn, skn) = (sq.as_static(), sk.as_static());
    let mut causal = false;
    let mut additive: Vec<Mask> = Vec::new();
    for mask in &scores.masks {
        match mask {
            Mask::Additive(mv) => {
                let mt = m.ty(*mv);
                if mt.dtype != dt || mt.rank() > 4 {
                    return None;
                }
                let is_c = match (sqn, skn, m.eval_const(*mv, 4)) {
                    (Some(a), Some(b), Some(t)) => is_causal(&t, a, b, |x| {
                        if x == 0.0 {
                            Some(true)
                        } else if masked(x) {
                            Some(false)
                        } else {
                            None
                        }
                    }),
                    _ => false,
                };
                if is_c {
                    causal = true;
                } else {
                    // nn.attention pads a shorter key dim with -inf
                    // instead of broadcasting it.
                    if !mt.dims.last().is_some_and(|d| pattern::same_dim(d, sk)) {
                        return None;
                    }
                    additive.push(mask.clone());
                }
            }
            Mask::Select {
                cond,
                fill,
                keep_when_true,
            } => {
                let ct = m.ty(*cond);
                if !masked(*fill) || ct.dtype != DType::Bool || ct.rank() > 4 {
                    return None;
                }
                let keep = *keep_when_true;
                let is_c = match (sqn, skn, m.eval_const(*cond, 4)) {
                    (Some(a), Some(b), Some(t)) => {
                        is_causal(&t, a, b, |x| Some((x != 0.0) == keep))
                    }
                    _ => false,
                };
                if is_c {
                    causal = true;
                } else {
                    if !ct.dims.last().is_some_and(|d| pattern::same_dim(d, sk)) {
                        return None;
                    }
                    additive.push(mask.clone());
                }
            }
        }
    }

    // The packed form replaces the final reshape; the interior grows.
    if let Some((_, _, _, nodes, out)) = &packed {
        interior.push(n);
        interior.push(nodes[0]);
        root = nodes[1];
        root_value = *out;
    }
    let set: HashSet<usize> = interior.iter().copied().chain([root]).collect();
    if !m.contained(&interior, &set) {
        return None;
    }

    let mut r = Recipe::at(root);
    let base = "attention";
    let mut attrs = Attrs::new();
    attrs.insert("scale".into(), Attr::Float(scale));
    if causal {
        attrs.insert("is_causal".into(), Attr::Bool(true));
    }
    if let Some(code) = precision {
        attrs.insert("softmax_precision".into(), Attr::Int(code));
    }
    let (q, k, vv) = if let Some(((q3, hq3), (k3, hk3), (v3, _), _, _)) = &packed {
        attrs.insert("q_num_heads".into(), Attr::Int(*hq3 as i64));
        attrs.insert("kv_num_heads".into(), Attr::Int(*hk3 as i64));
        (Val::Old(*q3), Val::Old(*k3), Val::Old(*v3))
    } else if let Some((k0, v0)) = kv_repeat {
        let q = q_view.materialize(m, &mut r, "q");
        (q, Val::Old(k0), Val::Old(v0))
    } else {
        let q = q_view.materialize(m, &mut r, "q");
        let k = k_view.materialize(m, &mut r, "k");
        (q, k, Val::Old(v_view.base))
    };
    // Additive masks, summed.
    let mut mask: Option<Val> = None;
    for a in additive {
        let mv = match a {
            Mask::Additive(mv) => Val::Old(mv),
            Mask::Select {
                cond,
                fill,
                keep_when_true,
            } => {
                let zero = r.constant("mask_zero", scalar_weight("mask_zero", dt, 0.0));
                let f = r.constant("mask_fill", scalar_weight("mask_fill", dt, fill));
                let (a, b) = if keep_when_true { (zero, f) } else { (f, zero) };
                let ty = TensorType::new(dt, m.ty(cond).dims.clone());
                r.push(NewNode::op(
                    OpKind::Where,
                    vec![Val::Old(cond), a, b],
                    Attrs::new(),
                    "mask",
                    ty,
                ))
            }
        };
        mask = Some(match mask {
            None => mv,
            Some(prev) => {
                let tys = [r.ty(m.g, prev), r.ty(m.g, mv)];
                let ty =
                    pattern::infer(OpKind::Add, &Attrs::new(), &[Some(tys[0]), Some(tys[1])], 1)?
                        .remove(0);
                if ty.rank() > 4 {
                    return None;
                }
                r.push(NewNode::op(
                    OpKind::Add,
                    vec![prev, mv],
                    Attrs::new(),
                    "mask",
                    ty,
                ))
            }
        });
    }
    let mut inputs = vec![Some(q), Some(k), Some(vv)];
    if let Some(mv) = mask {
        inputs.push(Some(mv));
    }
    let in_tys: Vec<Option<&TensorType>> = inputs.iter().map(|v| v.map(|v| r.ty(m.g, v))).collect();
    let out_ty = m.ty(root_value).clone();
    let inferred = pattern::infer(OpKind::Attention, &attrs, &in_tys, 1)?;
    if !inferred.first().is_some_and(|t| t.is_compatible(&out_ty)) {
        return None;
    }
    let a = r.push(NewNode {
        op: OpKind::Attention,
        inputs,
        attrs,
        results: vec![(base.to_string(), out_ty)],
        weight: None,
        body: None,
    });
    r.replace.push((root_value, a));
    Some(r)
}

#[cfg(test)]
#[path = "recognize_attention_tests.rs"]
mod tests;
