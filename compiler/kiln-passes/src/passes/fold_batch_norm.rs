//! `fold-batch-norm`: folds an inference batch normalization, or a
//! multiplication / addition by a per-channel or scalar constant, into the
//! contraction producing its operand.
//!
//! For a per-output-channel affine map `y = x * s + t` applied to the result
//! of a contraction with constant weights:
//! - `nn.conv` (any groups, either layout): `W' = W * s[:, 1, 1, ...]`,
//!   `b' = b * s + t` (created when absent and `t` is not zero);
//! - `nn.conv_transpose` (one group): `W' = W * s[1, :, 1, ...]`, `b'` as
//!   above;
//! - `quant.conv` with f32 block scales: the scales of output channel `m`
//!   times `s[m]` (the codes stay), `b'` as above;
//! - `nn.gemm` with a constant or absent `C`: the columns of `op(B)` times
//!   `s`, `C' = beta * C * s + t` with `beta' = 1`;
//! - `nn.matmul` with a constant 2-D right operand: `B' = B * s`; a
//!   non-zero `t` makes a 2-D MatMul a Gemm with `C = t`, and stays an
//!   `nn.add` of `t` otherwise (an addition alone is left for the epilogue).
//!
//! `(s, t)` are `(scale / sqrt(var + eps), bias - mean * s)` for
//! `nn.batch_norm` (channel dim 1, so the contraction's output channels
//! must be dim 1: NCHW convolutions, 2-D Gemm/MatMul), `(c, 0)` for `x * c`,
//! `(1 / c, 0)` for `x / c`, `(1, c)` for `x + c` and `(1, -c)` for `x - c`,
//! with `c` a constant that is a scalar or varies only along the output
//! channels (and never enlarges the result).
//!
//! Every new weight is a *derived* weight (`kiln_ir::Derivation`), computed
//! only when its bytes are needed: nothing is copied while compiling, and a
//! 1 GiB model is never held twice.
//!
//! Only when the contraction's result has no other use (it disappears).
//! Deciding is [`plan`] (pure); rewriting is
//! [`crate::rewrite::apply_recipe`]. Preconditions: a verified graph.
//! Graph outputs keep their names and types.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep_pass, Direction, NewData, NewNode, NewWeight, Recipe, Val, WRef};
use kiln_interp::Tensor;
use kiln_ir::ops::layout::DataLayout;
use kiln_ir::{Attr, Attrs, Blob, DType, Dim, Graph, Node, OpKind, TensorType, ValueId};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "fold-batch-norm",
    summary: "Folds batch norms and per-channel Mul/Add by constants into the preceding Conv (also quant.conv), ConvTranspose, Gemm or MatMul as derived weights",
    create: || Box::new(FoldBatchNorm::default()),
};

/// Options of `fold-batch-norm`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Fold `nn.batch_norm`.
    pub batch_norm: bool,
    /// Fold multiplications, divisions, additions and subtractions by
    /// constants.
    pub affine: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            batch_norm: true,
            affine: true,
        }
    }
}

/// The folding pass.
#[derive(Clone, Debug, Default)]
pub struct FoldBatchNorm {
    /// Options.
    pub options: Options,
}

impl Pass for FoldBatchNorm {
    pass_info!();
    fn run(&self, g: &mut Graph, _opts: &PassOptions) -> Result<PassStats, PassError> {
        // Forward: a folded contraction is the operand of the next affine
        // op in a chain (conv, bn, mul, add).
        Ok(sweep_pass(g, Direction::Forward, |m, n| {
            plan(m, n, &self.options)
        }))
    }
}

/// A per-channel factor or offset: a weight of shape `[C]` or `[]`.
#[derive(Clone, Copy, Debug)]
struct Vector {
    w: WRef,
    scalar: bool,
}

/// What the root applies: `x * s + t` (`None` = 1 or 0).
struct Affine {
    x: ValueId,
    s: Option<Vector>,
    t: Option<Vector>,
}

/// The contraction and where its output channels are.
struct Contraction<'g> {
    node: &'g Node,
    /// Output channel count.
    channels: u64,
    /// Output channel axis of the result.
    axis: usize,
}

fn contraction<'g>(m: &Matcher<'g>, x: ValueId) -> Option<(usize, Contraction<'g>)> {
    let i = m.node_of(x)?;
    let node = &m.g.nodes[i];
    if node.outputs.len() != 1 || !m.single_use(x) {
        return None;
    }
    let xt = m.ty(x);
    let r = xt.rank();
    let axis = match node.op {
        OpKind::Conv | OpKind::QConv => {
            let layout: DataLayout = pattern::enum_attr(node, "layout")?;
            if layout == DataLayout::Nhwc {
                r - 1
            } else {
                1
            }
        }
        OpKind::ConvTranspose => {
            if pattern::int_attr(node, "group")? != 1 {
                return None;
            }
            1
        }
        OpKind::Gemm => 1,
        OpKind::MatMul => {
            let b = node.inputs.get(1).copied().flatten()?;
            if m.ty(b).rank() != 2 || r < 2 {
                return None;
            }
            r - 1
        }
        _ => return None,
    };
    let channels = xt.dims.get(axis)?.as_static()?;
    // The weight operand must be a constant.
    m.weight(node.inputs.get(1).copied().flatten()?)?;
    Some((
        i,
        Contraction {
            node,
            channels,
            axis,
        },
    ))
}

/// The weight of constant `c` as a per-channel vector against a result of
/// type `xt` with channels on `axis`: `[C]` or a scalar, reshaping other
/// broadcast shapes into the recipe.
fn channel_vector(
    m: &Matcher<'_>,
    r: &mut Recipe,
    c: ValueId,
    xt: &TensorType,
    axis: usize,
    channels: u64,
) -> Option<Vector> {
    let id = m.g.constant_weight(m.defs(), c)?;
    let ct = m.ty(c);
    if ct.dtype != xt.dtype || ct.rank() > xt.rank() {
        return None;
    }
    let off = xt.rank() - ct.rank();
    let mut along = false;
    for (i, d) in ct.dims.iter().enumerate() {
        match d {
            Dim::Static(1) => {}
            Dim::Static(n) if i + off == axis && *n == channels => along = true,
            _ => return None,
        }
    }
    let old = WRef::Old(id);
    if !along {
        if ct.rank() == 0 {
            return Some(Vector {
                w: old,
                scalar: true,
            });
        }
        let w = reshape(r, old, &[], ct.dtype, "scalar");
        return Some(Vector { w, scalar: true });
    }
    if ct.rank() == 1 {
        return Some(Vector {
            w: old,
            scalar: false,
        });
    }
    let w = reshape(r, old, &[channels], ct.dtype, "channels");
    Some(Vector { w, scalar: false })
}

/// A new i64 weight `<name>_shape` holding `dims`.
fn shape_weight(r: &mut Recipe, dims: &[u64], name: &str) -> WRef {
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    r.i64_weight(&dims, &format!("{name}_shape"))
}

/// `derived<nn.reshape>(w, dims)`.
fn reshape(r: &mut Recipe, w: WRef, dims: &[u64], dt: DType, name: &str) -> WRef {
    r.derived_reshape(w, dims, dt, name)
}

/// `derived<op>(a, b)` of type `ty`.
fn bin(r: &mut Recipe, op: OpKind, a: WRef, b: WRef, ty: &TensorType, name: &str) -> WRef {
    r.derived(name, ty.clone(), op, Attrs::new(), vec![a, b])
}

/// A new scalar weight of dtype `dt`.
fn scalar(r: &mut Recipe, dt: DType, x: f64, name: &str) -> WRef {
    let t = Tensor::from_f64(dt, vec![], vec![x]);
    r.weight(NewWeight {
        name: name.to_string(),
        ty: TensorType::scalar(dt),
        data: NewData::Bytes(Blob::from_vec(t.to_bytes()), None),
    })
}

/// A batch norm's per-channel scale and shift as derived weights of type
/// `ty` (`[C]`): `s = gamma / sqrt(var + eps)`, `t = beta - mean * s`;
/// names start with `prefix`.
pub(crate) fn bn_scale_shift(
    r: &mut Recipe,
    ty: &TensorType,
    [gamma, beta, mean, var]: [WRef; 4],
    eps: f64,
    prefix: &str,
) -> (WRef, WRef) {
    let e = scalar(r, ty.dtype, eps, &format!("{prefix}eps"));
    let ve = bin(r, OpKind::Add, var, e, ty, &format!("{prefix}var_eps"));
    let sd = r.derived(
        &format!("{prefix}std"),
        ty.clone(),
        OpKind::Sqrt,
        Attrs::new(),
        vec![ve],
    );
    let s = bin(r, OpKind::Div, gamma, sd, ty, &format!("{prefix}scale"));
    let ms = bin(r, OpKind::Mul, mean, s, ty, &format!("{prefix}mean_scaled"));
    let t = bin(r, OpKind::Sub, beta, ms, ty, &format!("{prefix}shift"));
    (s, t)
}

/// `derived<nn.reshape>(w, dims)`, for other passes.
pub(crate) fn reshaped_weight(
    r: &mut Recipe,
    w: WRef,
    dims: &[u64],
    dt: DType,
    name: &str,
) -> WRef {
    reshape(r, w, dims, dt, name)
}

/// The affine map node `n` applies, with the new weights it needs.
fn affine(
    m: &Matcher<'_>,
    r: &mut Recipe,
    n: usize,
    opts: &Options,
) -> Option<(Affine, usize, u64)> {
    let node = &m.g.nodes[n];
    let y = *node.outputs.first()?;
    let yt = m.ty(y);
    if !pattern::is_compute_float(yt.dtype) {
        return None;
    }
    let dt = yt.dtype;
    let vec_ty = |c: u64| TensorType::fixed(dt, &[c]);
    match node.op {
        OpKind::BatchNorm if opts.batch_norm => {
            let [Some(x), Some(gamma), Some(beta), Some(mean), Some(var)] = node.inputs.as_slice()
            else {
                return None;
            };
            let (_, c) = contraction(m, *x)?;
            if c.axis != 1 {
                return None;
            }
            let ch = c.channels;
            let w = |v: ValueId| -> Option<WRef> {
                let t = m.ty(v);
                (t.dtype == dt && t.dims == [Dim::Static(ch)])
                    .then(|| m.g.constant_weight(m.defs(), v).map(WRef::Old))
                    .flatten()
            };
            let (gamma, beta, mean, var) = (w(*gamma)?, w(*beta)?, w(*mean)?, w(*var)?);
            let eps = pattern::float_attr(node, "epsilon")?;
            let (s, t) = bn_scale_shift(r, &vec_ty(ch), [gamma, beta, mean, var], eps, "bn_");
            let v = |w| Some(Vector { w, scalar: false });
            Some((
                Affine {
                    x: *x,
                    s: v(s),
                    t: v(t),
                },
                c.axis,
                ch,
            ))
        }
        OpKind::Mul | OpKind::Div | OpKind::Add | OpKind::Sub if opts.affine => {
            let [Some(a), Some(b)] = node.inputs.as_slice() else {
                return None;
            };
            let commutes = node.op.def().traits.commutative;
            let tries: &[(ValueId, ValueId)] = if commutes {
                &[(*a, *b), (*b, *a)]
            } else {
                &[(*a, *b)]
            };
            let (x, c) = tries.iter().copied().find(|&(x, c)| {
                m.ty(x) == yt && m.weight(c).is_some() && contraction(m, x).is_some()
            })?;
            let (_, con) = contraction(m, x)?;
            let ch = con.channels;
            let cv = channel_vector(m, r, c, yt, con.axis, ch)?;
            let vty = |v: Vector| {
                if v.scalar {
                    TensorType::scalar(dt)
                } else {
                    vec_ty(ch)
                }
            };
            let aff = match node.op {
                OpKind::Mul => Affine {
                    x,
                    s: Some(cv),
                    t: None,
                },
                OpKind::Div => {
                    let w = r.derived("inv", vty(cv), OpKind::Reciprocal, Attrs::new(), vec![cv.w]);
                    Affine {
                        x,
                        s: Some(Vector { w, ..cv }),
                        t: None,
                    }
                }
                OpKind::Add => Affine {
                    x,
                    s: None,
                    t: Some(cv),
                },
                _ => {
                    let w = r.derived("neg", vty(cv), OpKind::Neg, Attrs::new(), vec![cv.w]);
                    Affine {
                        x,
                        s: None,
                        t: Some(Vector { w, ..cv }),
                    }
                }
            };
            Some((aff, con.axis, ch))
        }
        _ => None,
    }
}

/// Decides whether node `n` (a batch norm, or a Mul/Div/Add/Sub by a
/// constant) folds into the contraction producing its operand.
pub fn plan(m: &Matcher<'_>, n: usize, opts: &Options) -> Option<Recipe> {
    let mut r = fold(m, n, opts)?;
    // New weights and their constants are named after the folded weight.
    let node = &m.g.nodes[n];
    let base = node
        .operands()
        .find_map(|x| contraction(m, x))
        .and_then(|(_, c)| m.weight(c.node.inputs.get(1).copied().flatten()?))
        .map(|w| w.name.clone())
        .unwrap_or_default();
    for w in &mut r.weights {
        w.name = format!("{base}.{}", w.name);
    }
    for nn in &mut r.nodes {
        if nn.op == OpKind::Constant {
            for (name, _) in &mut nn.results {
                *name = format!("{base}.{name}");
            }
        }
    }
    Some(r)
}

/// [`plan`] before naming.
fn fold(m: &Matcher<'_>, n: usize, opts: &Options) -> Option<Recipe> {
    let mut r = Recipe::at(n);
    let (aff, _, ch) = affine(m, &mut r, n, opts)?;
    let y = *m.g.nodes[n].outputs.first()?;
    let yt = m.ty(y).clone();
    let dt = yt.dtype;
    let (_, con) = contraction(m, aff.x)?;
    let node = con.node;
    let wv = node.inputs[1]?;
    let w_id = WRef::Old(m.g.constant_weight(m.defs(), wv)?);
    let wt = m.ty(wv).clone();
    let ch_ty = TensorType::fixed(dt, &[ch]);
    // The scale, shaped to broadcast over the weight's output channels.
    let scaled_weight = |r: &mut Recipe, s: Vector, dims: Option<Vec<u64>>| -> WRef {
        let sw = match dims {
            Some(d) if !s.scalar => reshape(r, s.w, &d, dt, "scale_w"),
            _ => s.w,
        };
        bin(r, OpKind::Mul, w_id, sw, &wt, "folded_w")
    };
    let mut attrs = node.attrs.clone();
    let mut inputs: Vec<Option<Val>> = node.inputs.iter().map(|v| v.map(Val::Old)).collect();
    let new_w = |r: &mut Recipe, w: WRef, name: &str, ty: &TensorType| -> Val {
        r.push(NewNode::constant(name, w, ty.clone()))
    };
    let mut extra_add: Option<WRef> = None;
    match node.op {
        OpKind::Conv | OpKind::ConvTranspose => {
            let rank = wt.rank();
            let out_dim = if node.op == OpKind::Conv { 0 } else { 1 };
            if wt.dims.get(out_dim)?.as_static()? != ch {
                return None;
            }
            if let Some(s) = aff.s {
                let mut d = vec![1u64; rank];
                d[out_dim] = ch;
                let w = scaled_weight(&mut r, s, Some(d));
                inputs[1] = Some(new_w(&mut r, w, "folded_w", &wt));
            }
            // The bias: b * s + t.
            let b = match node.inputs.get(2).copied().flatten() {
                Some(b) => Some(WRef::Old(m.g.constant_weight(m.defs(), b)?)),
                None => None,
            };
            let bias = new_bias(&mut r, b, aff.s, aff.t, &ch_ty, ch);
            if let Some(bw) = bias {
                let v = new_w(&mut r, bw, "folded_b", &ch_ty);
                inputs.resize(3, None);
                inputs[2] = Some(v);
            }
        }
        OpKind::Gemm => {
            let trans_b = pattern::bool_attr(node, "trans_b")?;
            if wt.dims.get(usize::from(!trans_b))?.as_static()? != ch {
                return None;
            }
            if let Some(s) = aff.s {
                let dims = if trans_b { Some(vec![ch, 1]) } else { None };
                let w = scaled_weight(&mut r, s, dims);
                inputs[1] = Some(new_w(&mut r, w, "folded_w", &wt));
            }
            // C' = beta * C * s + t, used with beta' = 1.
            let beta = pattern::float_attr(node, "beta")?;
            let mut c: Option<(WRef, TensorType)> = match node.inputs.get(2).copied().flatten() {
                Some(cv) if beta != 0.0 => {
                    let id = WRef::Old(m.g.constant_weight(m.defs(), cv)?);
                    let cty = m.ty(cv).clone();
                    if beta == 1.0 {
                        Some((id, cty))
                    } else {
                        let b = scalar(&mut r, dt, beta, "beta");
                        Some((bin(&mut r, OpKind::Mul, id, b, &cty, "beta_c"), cty))
                    }
                }
                _ => None,
            };
            for (op, v) in [(OpKind::Mul, aff.s), (OpKind::Add, aff.t)] {
                let Some(v) = v else { continue };
                let vt = vty(v, &ch_ty, dt);
                c = Some(match c {
                    Some((cw, cty)) => {
                        let ty = pattern::infer(op, &Attrs::new(), &[Some(&cty), Some(&vt)], 1)?
                            .remove(0);
                        (bin(&mut r, op, cw, v.w, &ty, "folded_c"), ty)
                    }
                    // No C: a scale has nothing to scale, a shift is C.
                    None if op == OpKind::Add => (v.w, vt),
                    None => continue,
                });
            }
            if let Some((cw, cty)) = c {
                let v = new_w(&mut r, cw, "folded_c", &cty);
                inputs.resize(3, None);
                inputs[2] = Some(v);
                attrs.insert("beta".into(), Attr::Float(1.0));
            }
        }
        OpKind::QConv => {
            // Rows of codes per output channel: their f32 block scales take
            // the channel's scale (other scale formats would round).
            let sv = node.inputs.get(2).copied().flatten()?;
            let st = m.ty(sv).clone();
            if st.dtype != DType::F32 || wt.dims.first()?.as_static()? != ch {
                return None;
            }
            if let Some(s) = aff.s {
                let s_id = WRef::Old(m.g.constant_weight(m.defs(), sv)?);
                let sw = if s.scalar {
                    s.w
                } else {
                    reshape(&mut r, s.w, &[ch, 1], dt, "scale_w")
                };
                let scaled = bin(&mut r, OpKind::Mul, s_id, sw, &st, "folded_scales");
                inputs[2] = Some(new_w(&mut r, scaled, "folded_scales", &st));
            }
            let b = match node.inputs.get(4).copied().flatten() {
                Some(b) => Some(WRef::Old(m.g.constant_weight(m.defs(), b)?)),
                None => None,
            };
            if let Some(bw) = new_bias(&mut r, b, aff.s, aff.t, &ch_ty, ch) {
                let v = new_w(&mut r, bw, "folded_b", &ch_ty);
                inputs.resize(5, None);
                inputs[4] = Some(v);
            }
        }
        OpKind::MatMul => {
            let s = aff.s?;
            if wt.dims.get(1)?.as_static()? != ch {
                return None;
            }
            let w = scaled_weight(&mut r, s, None);
            inputs[1] = Some(new_w(&mut r, w, "folded_w", &wt));
            if let Some(t) = aff.t {
                let a = node.inputs[0]?;
                if m.ty(a).rank() == 2 {
                    // A 2-D MatMul with a bias is a Gemm.
                    let v = new_w(&mut r, t.w, "folded_c", &vty(t, &ch_ty, dt));
                    inputs.push(Some(v));
                    let ty = yt.clone();
                    let gm = r.push(NewNode {
                        op: OpKind::Gemm,
                        inputs,
                        attrs: Attrs::new(),
                        results: vec![(m.g.value(y).name.clone(), ty)],
                        weight: None,
                        body: None,
                    });
                    r.replace.push((y, gm));
                    return Some(r);
                }
                extra_add = Some(t.w);
            }
        }
        _ => return None,
    }
    let in_tys: Vec<Option<&TensorType>> = inputs.iter().map(|v| v.map(|v| r.ty(m.g, v))).collect();
    let inferred = pattern::infer(node.op, &attrs, &in_tys, 1)?;
    let xt = m.ty(aff.x).clone();
    if !inferred.first().is_some_and(|t| t.is_compatible(&xt)) || xt != yt {
        return None;
    }
    let c = r.push(NewNode {
        op: node.op,
        inputs,
        attrs,
        results: vec![(m.g.value(y).name.clone(), yt.clone())],
        weight: None,
        body: None,
    });
    let out = match extra_add {
        Some(t) => {
            let tv = new_w(&mut r, t, "folded_shift", &ch_ty);
            r.push(NewNode::op(
                OpKind::Add,
                vec![c, tv],
                Attrs::new(),
                &m.g.value(y).name,
                yt.clone(),
            ))
        }
        None => c,
    };
    r.replace.push((y, out));
    Some(r)
}

/// The type of a per-channel vector or scalar.
fn vty(v: Vector, ch_ty: &TensorType, dt: DType) -> TensorType {
    if v.scalar {
        TensorType::scalar(dt)
    } else {
        ch_ty.clone()
    }
}

/// `b * s + t` as a `[C]` weight, or `None` when there is no bias and no
/// shift.
fn new_bias(
    r: &mut Recipe,
    b: Option<WRef>,
    s: Option<Vector>,
    t: Option<Vector>,
    ch_ty: &TensorType,
    ch: u64,
) -> Option<WRef> {
    let bs = match (b, s) {
        (Some(b), Some(s)) => Some(bin(r, OpKind::Mul, b, s.w, ch_ty, "folded_b")),
        (b, _) => b,
    };
    match (bs, t) {
        (Some(b), Some(t)) => Some(bin(r, OpKind::Add, b, t.w, ch_ty, "folded_b")),
        (Some(b), None) => Some(b),
        (None, Some(t)) if t.scalar => {
            let shape = shape_weight(r, &[ch], "bias");
            Some(r.derived(
                "folded_b",
                ch_ty.clone(),
                OpKind::Expand,
                Attrs::new(),
                vec![t.w, shape],
            ))
        }
        (None, Some(t)) => Some(t.w),
        (None, None) => None,
    }
}

#[cfg(test)]
#[path = "fold_batch_norm_tests.rs"]
mod tests;
