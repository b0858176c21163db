//! `recognize-norms`: replaces the decomposed normalizations and
//! activations that exporters write with the single Kiln op each one is.
//!
//! Patterns, each tried on every node from the last to the first (so the
//! largest match, ending at the outermost node, wins):
//!
//! - `layer-norm` (PyTorch): `d = x - ReduceMean(x)`, `var =
//!   ReduceMean(Pow(d, 2) | d * d)`, `d / Sqrt(var + eps)` (or `d *
//!   Reciprocal(Sqrt(..))`, `d * (1 / Sqrt(..))`), then optionally `* gamma`
//!   and `+ beta` -> `nn.layer_norm x, gamma (ones if absent), beta?`;
//! - `layer-norm` (TensorFlow, tf2onnx unfused): `r = Reciprocal(Sqrt(var +
//!   eps))`, `m = r * gamma`, `x * m + (beta - mean * m)`;
//! - `rms-norm`: `x / Sqrt(ReduceMean(Pow(x, 2) | x * x) + eps)` (or `x *
//!   Reciprocal(..)`), optionally `* gamma` -> `nn.rms_norm`;
//! - `softmax`: `e = Exp(x - ReduceMax(x))` (or `Exp(x)`), `e /
//!   ReduceSum(e)` over one axis -> `nn.softmax`;
//! - `log-softmax`: `d = x - ReduceMax(x)` (or `x`), `d -
//!   Log(ReduceSum(Exp(d)))`, or `x - ReduceLogSumExp(x)` -> `nn.log_softmax`;
//! - `gelu`: the product, in any association and operand order, of `x`,
//!   `0.5` and `1 + Erf(x / sqrt(2))` (or `x * (1 / sqrt(2))`) ->
//!   `nn.gelu`; with `1 + Tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))`
//!   (`x^3` as `Pow(x, 3)` or products of `x`) -> `nn.gelu {approximate =
//!   "tanh"}`;
//! - `swish`: `x * Sigmoid(x)` -> `nn.swish` (SiLU), `x * Sigmoid(beta *
//!   x)` -> `nn.swish {alpha = beta}`;
//! - `hard-swish`: `x * HardSigmoid(x) {alpha = 1/6, beta = 1/2}`, and the
//!   product of `x`, `Clip(x + 3, 0, 6)` and `1/6` (or a division by 6) ->
//!   `nn.hard_swish`.
//!
//! Constants must equal the exact value to [`Options::rel_tolerance`]
//! (or to the precision of their dtype, when that is coarser: an f16
//! sqrt(2) cannot be closer than 2^-11 relative). Scalars and the scale
//! and bias operands may not broadcast the result to a larger shape.
//! Reductions must use constant axes with `keepdims`, and normalizations
//! the trailing axes. Intermediate values of a match must have no uses
//! outside it; the input and the gamma/beta operands may be used anywhere.
//!
//! Deciding is [`plan`] (pure); rewriting is [`crate::rewrite::apply_recipe`].
//! Preconditions: a verified graph with types as inference gives them.
//! Graph outputs keep their names and types.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep_pass, Direction, NewNode, Recipe, Val};
use kiln_interp::Tensor;
use kiln_ir::{Attr, Attrs, Blob, DType, Graph, OpKind, TensorType, ValueId, Weight, WeightData};
use std::collections::HashSet;

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "recognize-norms",
    summary: "Replaces decomposed layer-norm, RMS-norm, softmax, log-softmax, GELU, SiLU/Swish and HardSwish with single ops",
    create: || Box::new(RecognizeNorms::default()),
};

/// Options of `recognize-norms`: the tolerance on constants, and which
/// patterns run.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Relative tolerance of a constant against its exact value (sqrt(2),
    /// sqrt(2/pi), 0.044715, 1/6, ...).
    pub rel_tolerance: f64,
    /// Layer normalization (PyTorch and TensorFlow forms).
    pub layer_norm: bool,
    /// RMS normalization.
    pub rms_norm: bool,
    /// Softmax and log-softmax.
    pub softmax: bool,
    /// GELU, exact and tanh-approximated.
    pub gelu: bool,
    /// SiLU / Swish.
    pub swish: bool,
    /// HardSwish.
    pub hard_swish: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            rel_tolerance: 1e-6,
            layer_norm: true,
            rms_norm: true,
            softmax: true,
            gelu: true,
            swish: true,
            hard_swish: true,
        }
    }
}

/// The recognition pass.
#[derive(Clone, Debug, Default)]
pub struct RecognizeNorms {
    /// Options.
    pub options: Options,
}

impl Pass for RecognizeNorms {
    pass_info!();
    fn run(&self, g: &mut Graph, _opts: &PassOptions) -> Result<PassStats, PassError> {
        // Last to first: a match ends at its outermost node.
        Ok(sweep_pass(g, Direction::Backward, |m, n| {
            let (name, r) = plan(m, n, &self.options)?;
            tracing::trace!(pattern = name, node = n, "recognized");
            Some(r)
        }))
    }
}

type Pattern = fn(&Cx<'_, '_>, usize) -> Option<Recipe>;

/// Whether the options enable a pattern.
type Enabled = fn(&Options) -> bool;

/// Every pattern: its name, whether the options enable it, the matcher.
const PATTERNS: &[(&str, Enabled, Pattern)] = &[
    ("layer-norm", |o| o.layer_norm, layer_norm),
    ("layer-norm-tf", |o| o.layer_norm, layer_norm_tf),
    ("rms-norm", |o| o.rms_norm, rms_norm),
    ("softmax", |o| o.softmax, softmax),
    ("log-softmax", |o| o.softmax, log_softmax),
    ("gelu", |o| o.gelu, gelu),
    ("swish", |o| o.swish, swish),
    ("hard-swish", |o| o.hard_swish, hard_swish),
];

/// Decides whether a pattern ends at node `n`; the first that matches.
pub fn plan(m: &Matcher<'_>, n: usize, opts: &Options) -> Option<(&'static str, Recipe)> {
    let cx = Cx { m, opts };
    PATTERNS
        .iter()
        .filter(|(_, on, _)| on(opts))
        .find_map(|(name, _, p)| p(&cx, n).map(|r| (*name, r)))
}

/// What a pattern sees.
struct Cx<'m, 'g> {
    m: &'m Matcher<'g>,
    opts: &'m Options,
}

impl Cx<'_, '_> {
    /// Whether scalar constant `c`, an operand of the elementwise op
    /// producing `result` beside `other`, is `exact` to the tolerance.
    fn is_const(&self, c: ValueId, other: ValueId, result: ValueId, exact: f64) -> bool {
        let Some(v) = self.m.scalar_operand(c, other, result) else {
            return false;
        };
        // Half an ulp of the constant's dtype, relative.
        let dtype_tol = match self.m.ty(c).dtype {
            DType::F16 => 2f64.powi(-11),
            DType::BF16 => 2f64.powi(-8),
            DType::F32 => 2f64.powi(-24),
            _ => 0.0,
        };
        pattern::close(v, exact, self.opts.rel_tolerance.max(dtype_tol * 1.01))
    }

    /// `v = a op b` for commutative `op`: both operand orders.
    fn both(&self, v: ValueId, op: OpKind) -> Option<(usize, [(ValueId, ValueId); 2])> {
        let (i, a, b) = self.m.binary(v, op)?;
        Some((i, [(a, b), (b, a)]))
    }

    /// `v = x op c` (or `c op x` for a commutative op) with `c` a scalar
    /// equal to `exact`: `x` and the node.
    fn with_const(&self, v: ValueId, op: OpKind, exact: f64) -> Option<(usize, ValueId)> {
        let (i, a, b) = self.m.binary(v, op)?;
        if self.is_const(b, a, v, exact) {
            return Some((i, a));
        }
        let commutes = op.def().traits.commutative;
        (commutes && self.is_const(a, b, v, exact)).then_some((i, b))
    }

    /// `v = x * x` or `Pow(x, 2)`: `x` and the node.
    fn square(&self, v: ValueId) -> Option<(usize, ValueId)> {
        if let Some((i, a, b)) = self.m.binary(v, OpKind::Mul) {
            return (a == b).then_some((i, a));
        }
        let (i, x, e) = self.m.binary(v, OpKind::Pow)?;
        (self.m.ty(x) == self.m.ty(v) && self.m.splat(e) == Some(2.0)).then_some((i, x))
    }

    /// `1 / s` as `Reciprocal(s)` or `Div(1, s)`: `s` and the node.
    fn reciprocal(&self, v: ValueId) -> Option<(usize, ValueId)> {
        if let Some(r) = self.m.unary(v, OpKind::Reciprocal) {
            return Some(r);
        }
        let (i, one, s) = self.m.binary(v, OpKind::Div)?;
        self.is_const(one, s, v, 1.0).then_some((i, s))
    }

    /// `ReduceMean`/`ReduceMax`/... of `v` with constant axes and
    /// `keepdims`: the input, the sorted axes and the node.
    fn reduce(&self, v: ValueId, op: OpKind) -> Option<(usize, ValueId, Vec<usize>)> {
        let (i, n) = self.m.def(v, op)?;
        let (Some(Some(x)), Some(Some(axes))) = (n.inputs.first(), n.inputs.get(1)) else {
            return None;
        };
        if !pattern::bool_attr(n, "keepdims")? {
            return None;
        }
        let axes = pattern::norm_axes(&self.m.const_ints(*axes)?, self.m.ty(*x).rank())?;
        (!axes.is_empty()).then_some((i, *x, axes))
    }

    /// Whether the nodes of a match other than the root have no uses
    /// outside it.
    fn contained(&self, root: usize, interior: &[usize]) -> bool {
        let set: HashSet<usize> = interior.iter().copied().chain([root]).collect();
        self.m.contained(interior, &set)
    }

    /// A recipe replacing root node `root`'s result with one `op` node;
    /// `extra` constants become the recipe's first nodes (`Val::new(0)`, ...).
    fn replace(
        &self,
        root: usize,
        interior: &[usize],
        op: OpKind,
        inputs: Vec<Val>,
        attrs: Attrs,
        extra: Vec<Weight>,
    ) -> Option<Recipe> {
        if !self.contained(root, interior) {
            return None;
        }
        let y = *self.m.g.nodes[root].outputs.first()?;
        let mut r = Recipe::at(root);
        for w in extra {
            r.constant(&w.name.clone(), w);
        }
        let ty = self.m.ty(y).clone();
        let in_tys: Vec<Option<&TensorType>> =
            inputs.iter().map(|&v| Some(r.ty(self.m.g, v))).collect();
        let inferred = pattern::infer(op, &attrs, &in_tys, 1)?;
        if !inferred.first().is_some_and(|t| t.is_compatible(&ty)) {
            return None;
        }
        let name = op.name().trim_start_matches("nn.");
        let v = r.push(NewNode::op(op, inputs, attrs, name, ty));
        r.replace.push((y, v));
        Some(r)
    }
}

fn attrs(items: &[(&str, Attr)]) -> Attrs {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// `axes` are the trailing axes of a rank-`rank` tensor: the first one.
fn trailing(axes: &[usize], rank: usize) -> Option<i64> {
    let first = *axes.first()?;
    (axes.iter().enumerate().all(|(i, &a)| a == first + i) && axes.last() == Some(&(rank - 1)))
        .then_some(first as i64)
}

/// A ones constant for a normalization without a scale: the normalized
/// dims of `x` from `axis`, which must be static.
fn ones(m: &Matcher<'_>, x: ValueId, axis: usize) -> Option<Weight> {
    let t = m.ty(x);
    let shape: Vec<u64> = t.dims[axis..]
        .iter()
        .map(|d| d.as_static())
        .collect::<Option<_>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(usize::try_from(d).ok()?))?;
    let data = Tensor::from_f64(t.dtype, shape.clone(), vec![1.0; n]).to_bytes();
    let w = Weight {
        name: "ones".into(),
        ty: TensorType::fixed(t.dtype, &shape),
        data: WeightData::Bytes(Blob::from_vec(data)),
        source: None,
    };
    Some(w)
}

/// `stash_type` for a normalization of `dt`: f32 statistics, f64 for f64.
fn stash(dt: DType) -> i64 {
    if dt == DType::F64 {
        11
    } else {
        1
    }
}

/// The normalization core `(x - mean) / sqrt(var + eps)`.
struct NormCore {
    x: ValueId,
    axis: i64,
    eps: f64,
    interior: Vec<usize>,
}

/// `v = num / Sqrt(den + eps)` or `num * Reciprocal(Sqrt(den + eps))`:
/// `num`, `den`, `eps`, the nodes.
fn scaled_by_rsqrt(cx: &Cx<'_, '_>, v: ValueId) -> Option<(ValueId, ValueId, f64, Vec<usize>)> {
    let m = cx.m;
    let (num, std, mut nodes) = if let Some((i, num, std)) = m.binary(v, OpKind::Div) {
        (num, std, vec![i])
    } else {
        let (i, pairs) = cx.both(v, OpKind::Mul)?;
        pairs.iter().find_map(|&(num, r)| {
            let (j, std) = cx.reciprocal(r)?;
            Some((num, std, vec![i, j]))
        })?
    };
    if m.ty(num) != m.ty(v) {
        return None;
    }
    let (den, eps, more) = sqrt_plus_eps(cx, std)?;
    nodes.extend(more);
    Some((num, den, eps, nodes))
}

/// `std = Sqrt(den + eps)` with a non-negative scalar `eps`: `den`, `eps`,
/// the nodes.
fn sqrt_plus_eps(cx: &Cx<'_, '_>, std: ValueId) -> Option<(ValueId, f64, [usize; 2])> {
    let (j, ve) = cx.m.unary(std, OpKind::Sqrt)?;
    let (k, pairs) = cx.both(ve, OpKind::Add)?;
    pairs.iter().find_map(|&(den, e)| {
        let eps = cx.m.scalar_operand(e, den, ve)?;
        (eps >= 0.0).then_some((den, eps, [j, k]))
    })
}

/// `(x - ReduceMean(x)) / Sqrt(ReduceMean((x - mean)^2) + eps)`.
fn norm_core(cx: &Cx<'_, '_>, v: ValueId) -> Option<NormCore> {
    let m = cx.m;
    let (d, var, eps, mut interior) = scaled_by_rsqrt(cx, v)?;
    let (i, sq, axes) = cx.reduce(var, OpKind::ReduceMean)?;
    let (j, d2) = cx.square(sq)?;
    let (k, x, mean) = m.binary(d, OpKind::Sub)?;
    let (l, x2, axes2) = cx.reduce(mean, OpKind::ReduceMean)?;
    if d2 != d || x2 != x || axes2 != axes || m.ty(x) != m.ty(v) {
        return None;
    }
    let axis = trailing(&axes, m.ty(x).rank())?;
    interior.extend([i, j, k, l]);
    Some(NormCore {
        x,
        axis,
        eps,
        interior,
    })
}

/// Layer norm as PyTorch's decomposition writes it, from its last node:
/// `core`, `core * gamma`, `core + beta` or `core * gamma + beta`.
fn layer_norm(cx: &Cx<'_, '_>, n: usize) -> Option<Recipe> {
    let m = cx.m;
    let y = *m.g.nodes[n].outputs.first()?;
    // Peel `+ beta`, then `* gamma`, each tried in both operand orders;
    // the rest must be the core.
    // (core, gamma, beta, the affine nodes)
    type Candidate = (ValueId, Option<ValueId>, Option<ValueId>, Vec<usize>);
    let mut candidates: Vec<Candidate> = Vec::new();
    if let Some((i, pairs)) = cx.both(y, OpKind::Add) {
        for (inner, beta) in pairs {
            if let Some((j, gp)) = cx.both(inner, OpKind::Mul) {
                for (core, gamma) in gp {
                    candidates.push((core, Some(gamma), Some(beta), vec![i, j]));
                }
            }
            candidates.push((inner, None, Some(beta), vec![i]));
        }
    }
    if let Some((i, pairs)) = cx.both(y, OpKind::Mul) {
        for (core, gamma) in pairs {
            candidates.push((core, Some(gamma), None, vec![i]));
        }
    }
    candidates.push((y, None, None, vec![]));
    candidates
        .into_iter()
        .find_map(|(core, gamma, beta, outer)| {
            let c = norm_core(cx, core)?;
            let mut interior: Vec<usize> = outer.into_iter().filter(|&i| i != n).collect();
            interior.extend(&c.interior);
            interior.retain(|&i| i != n);
            finish_norm(cx, n, c, interior, gamma, beta, OpKind::LayerNorm)
        })
}

/// The normalization node of a matched core with its scale and bias.
fn finish_norm(
    cx: &Cx<'_, '_>,
    n: usize,
    c: NormCore,
    interior: Vec<usize>,
    gamma: Option<ValueId>,
    beta: Option<ValueId>,
    op: OpKind,
) -> Option<Recipe> {
    let m = cx.m;
    let dt = m.ty(c.x).dtype;
    if !pattern::is_compute_float(dt) {
        return None;
    }
    let rank = m.ty(c.x).rank();
    let axis = usize::try_from(c.axis).ok()?;
    let mut extra = Vec::new();
    let scale = match gamma {
        Some(g) => Val::Old(g),
        None => {
            extra.push(ones(m, c.x, axis)?);
            Val::new(0)
        }
    };
    let mut inputs = vec![Val::Old(c.x), scale];
    inputs.extend(beta.map(Val::Old));
    let a = attrs(&[
        ("axis", Attr::Int(c.axis - rank as i64)),
        ("epsilon", Attr::Float(c.eps)),
        ("stash_type", Attr::Int(stash(dt))),
    ]);
    cx.replace(n, &interior, op, inputs, a, extra)
}

/// Layer norm as tf2onnx writes Keras' unfused form: `r = 1 / sqrt(var +
/// eps)`, `m = r * gamma` (or `r`), `y = x * m + (beta - mean * m)`.
fn layer_norm_tf(cx: &Cx<'_, '_>, n: usize) -> Option<Recipe> {
    let m = cx.m;
    let y = *m.g.nodes[n].outputs.first()?;
    let (i, pairs) = cx.both(y, OpKind::Add)?;
    pairs.iter().find_map(|&(xm, c)| {
        let (j, xp) = cx.both(xm, OpKind::Mul)?;
        let (k, beta, mm) = m.binary(c, OpKind::Sub)?;
        let (l, mp) = cx.both(mm, OpKind::Mul)?;
        xp.iter().find_map(|&(x, mul)| {
            let mean = mp.iter().find(|&&(_, mul2)| mul2 == mul)?.0;
            // `mul` is `r * gamma` or `r`.
            let (r, gamma, mut interior) = match cx.both(mul, OpKind::Mul) {
                Some((o, gp)) => gp
                    .iter()
                    .find_map(|&(r, gamma)| cx.reciprocal(r).map(|_| (r, Some(gamma), vec![o])))?,
                None => (mul, None, vec![]),
            };
            let (p, std) = cx.reciprocal(r)?;
            let (var, eps, [q, s]) = sqrt_plus_eps(cx, std)?;
            let (t, sq, axes) = cx.reduce(var, OpKind::ReduceMean)?;
            let (u, d) = cx.square(sq)?;
            let (w, x2, mean2) = m.binary(d, OpKind::Sub)?;
            let (z, x3, axes2) = cx.reduce(mean, OpKind::ReduceMean)?;
            if x2 != x || x3 != x || mean2 != mean || axes2 != axes || m.ty(x) != m.ty(y) {
                return None;
            }
            let axis = trailing(&axes, m.ty(x).rank())?;
            interior.extend([i, j, k, l, p, q, s, t, u, w, z]);
            interior.retain(|&v| v != n);
            let core = NormCore {
                x,
                axis,
                eps,
                interior: Vec::new(),
            };
            finish_norm(cx, n, core, interior, gamma, Some(beta), OpKind::LayerNorm)
        })
    })
}

/// `x / Sqrt(ReduceMean(x^2) + eps)`, optionally times gamma.
fn rms_norm(cx: &Cx<'_, '_>, n: usize) -> Option<Recipe> {
    let m = cx.m;
    let y = *m.g.nodes[n].outputs.first()?;
    let mut candidates: Vec<(ValueId, Option<ValueId>, Vec<usize>)> = Vec::new();
    if let Some((i, pairs)) = cx.both(y, OpKind::Mul) {
        for (core, gamma) in pairs {
            candidates.push((core, Some(gamma), vec![i]));
        }
    }
    candidates.push((y, None, vec![]));
    candidates.into_iter().find_map(|(core, gamma, outer)| {
        let (x, ms, eps, mut interior) = scaled_by_rsqrt(cx, core)?;
        let (i, sq, axes) = cx.reduce(ms, OpKind::ReduceMean)?;
        let (j, x2) = cx.square(sq)?;
        if x2 != x || m.ty(x) != m.ty(y) {
            return None;
        }
        let axis = trailing(&axes, m.ty(x).rank())?;
        interior.extend(outer);
        interior.extend([i, j]);
        interior.retain(|&v| v != n);
        let core = NormCore {
            x,
            axis,
            eps,
            interior: Vec::new(),
        };
        finish_norm(cx, n, core, interior, gamma, None, OpKind::RmsNorm)
    })
}

/// `x - ReduceMax(x)` over `axes` (the shift exporters add for
/// stability), or `x` itself: `x`, the nodes.
fn shifted(cx: &Cx<'_, '_>, d: ValueId, axes: &[usize]) -> (ValueId, Vec<usize>) {
    let m = cx.m;
    if let Some((i, x, mx)) = m.binary(d, OpKind::Sub) {
        if let Some((j, x2, ax)) = cx.reduce(mx, OpKind::ReduceMax) {
            if x2 == x && ax == axes && m.ty(x) == m.ty(d) {
                return (x, vec![i, j]);
            }
        }
    }
    (d, vec![])
}

/// A single-axis softmax-family result: the node.
fn axis_op(
    cx: &Cx<'_, '_>,
    n: usize,
    x: ValueId,
    axes: &[usize],
    interior: Vec<usize>,
    op: OpKind,
) -> Option<Recipe> {
    let [axis] = axes else { return None };
    if !pattern::is_compute_float(cx.m.ty(x).dtype) {
        return None;
    }
    let rank = cx.m.ty(x).rank() as i64;
    let a = attrs(&[("axis", Attr::Int(*axis as i64 - rank))]);
    let interior: Vec<usize> = interior.into_iter().filter(|&i| i != n).collect();
    cx.replace(n, &interior, op, vec![Val::Old(x)], a, vec![])
}

/// `e / ReduceSum(e)` with `e = Exp(x - ReduceMax(x))` or `Exp(x)`.
fn softmax(cx: &Cx<'_, '_>, n: usize) -> Option<Recipe> {
    let m = cx.m;
    let y = *m.g.nodes[n].outputs.first()?;
    let (i, e, s) = m.binary(y, OpKind::Div)?;
    let (j, e2, axes) = cx.reduce(s, OpKind::ReduceSum)?;
    let (k, d) = m.unary(e, OpKind::Exp)?;
    if e2 != e || m.ty(e) != m.ty(y) {
        return None;
    }
    let (x, mut interior) = shifted(cx, d, &axes);
    interior.extend([i, j, k]);
    axis_op(cx, n, x, &axes, interior, OpKind::Softmax)
}

/// `d - Log(ReduceSum(Exp(d)))` with `d = x - ReduceMax(x)` or `x`, or
/// `x - ReduceLogSumExp(x)`.
fn log_softmax(cx: &Cx<'_, '_>, n: usize) -> Option<Recipe> {
    let m = cx.m;
    let y = *m.g.nodes[n].outputs.first()?;
    let (i, d, l) = m.binary(y, OpKind::Sub)?;
    if m.ty(d) != m.ty(y) {
        return None;
    }
    if let Some((j, d2, axes)) = cx.reduce(l, OpKind::ReduceLogSumExp) {
        return (d2 == d)
            .then(|| axis_op(cx, n, d, &axes, vec![i, j], OpKind::LogSoftmax))
            .flatten();
    }
    let (j, s) = m.unary(l, OpKind::Log)?;
    let (k, e, axes) = cx.reduce(s, OpKind::ReduceSum)?;
    let (o, d2) = m.unary(e, OpKind::Exp)?;
    if d2 != d {
        return None;
    }
    let (x, mut interior) = shifted(cx, d, &axes);
    interior.extend([i, j, k, o]);
    axis_op(cx, n, x, &axes, interior, OpKind::LogSoftmax)
}

/// `y` as a product of two or three factors (`a * b`, `(a * b) * c`,
/// `a * (b * c)`, any operand order): each factor list with its nodes.
fn products(cx: &Cx<'_, '_>, y: ValueId) -> Vec<(Vec<ValueId>, Vec<usize>)> {
    let mut out = Vec::new();
    let Some((i, pairs)) = cx.both(y, OpKind::Mul) else {
        return out;
    };
    out.push((vec![pairs[0].0, pairs[0].1], vec![i]));
    for (inner, other) in pairs {
        if let Some((j, [(a, b), _])) = cx.both(inner, OpKind::Mul) {
            out.push((vec![a, b, other], vec![i, j]));
        }
    }
    out
}

/// Picks from `factors` one that `pick` accepts (given the others).
fn pick<T>(
    factors: &[ValueId],
    mut pick: impl FnMut(ValueId, &[ValueId]) -> Option<T>,
) -> Option<T> {
    (0..factors.len()).find_map(|k| {
        let rest: Vec<ValueId> = factors
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != k)
            .map(|(_, &f)| f)
            .collect();
        pick(factors[k], &rest)
    })
}

/// `x^3` as `Pow(x, 3)`, `x * (x * x)` or `(x * x) * x`: the nodes.
fn cube(cx: &Cx<'_, '_>, v: ValueId, x: ValueId) -> Option<Vec<usize>> {
    let m = cx.m;
    if let Some((i, b, e)) = m.binary(v, OpKind::Pow) {
        return (b == x && m.ty(v) == m.ty(x) && m.splat(e) == Some(3.0)).then(|| vec![i]);
    }
    let (i, pairs) = cx.both(v, OpKind::Mul)?;
    pairs.iter().find_map(|&(a, sq)| {
        let (j, b) = cx.square(sq)?;
        (a == x && b == x).then(|| vec![i, j])
    })
}

/// `1 + Erf(x / sqrt(2))` or `1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3))`
/// for the given `x`: the `approximate` attribute and the nodes.
fn gelu_inner(cx: &Cx<'_, '_>, b: ValueId, x: ValueId) -> Option<(&'static str, Vec<usize>)> {
    let m = cx.m;
    let (i, t) = cx.with_const(b, OpKind::Add, 1.0)?;
    if let Some((j, u)) = m.unary(t, OpKind::Erf) {
        let (k, x2) = cx
            .with_const(u, OpKind::Div, std::f64::consts::SQRT_2)
            .or_else(|| cx.with_const(u, OpKind::Mul, std::f64::consts::FRAC_1_SQRT_2))?;
        return (x2 == x).then(|| ("none", vec![i, j, k]));
    }
    let (j, s) = m.unary(t, OpKind::Tanh)?;
    let (k, r) = cx.with_const(s, OpKind::Mul, (2.0 / std::f64::consts::PI).sqrt())?;
    let (l, pairs) = cx.both(r, OpKind::Add)?;
    pairs.iter().find_map(|&(x2, q)| {
        let (o, p) = cx.with_const(q, OpKind::Mul, 0.044715)?;
        let mut nodes = cube(cx, p, x)?;
        nodes.extend([i, j, k, l, o]);
        (x2 == x).then_some(("tanh", nodes))
    })
}

/// `0.5 * x * (1 + Erf(..))` or `.. (1 + Tanh(..))`.
fn gelu(cx: &Cx<'_, '_>, n: usize) -> Option<Recipe> {
    let m = cx.m;
    let y = *m.g.nodes[n].outputs.first()?;
    let ty = m.ty(y);
    let half = |h: ValueId| {
        m.ty(h).rank() <= ty.rank()
            && m.splat(h)
                .is_some_and(|v| pattern::close(v, 0.5, cx.opts.rel_tolerance))
    };
    for (f, nodes) in products(cx, y) {
        if f.len() != 3 {
            continue;
        }
        // One factor is 1 + f(x), one is x, one is 0.5.
        for (b, x, h) in [
            (0, 1, 2),
            (0, 2, 1),
            (1, 0, 2),
            (1, 2, 0),
            (2, 0, 1),
            (2, 1, 0),
        ] {
            let (b, x, h) = (f[b], f[x], f[h]);
            if m.ty(x) != ty || !half(h) {
                continue;
            }
            let Some((approx, mut interior)) = gelu_inner(cx, b, x) else {
                continue;
            };
            interior.extend(&nodes);
            interior.retain(|&i| i != n);
            let a = attrs(&[("approximate", Attr::Str(approx.into()))]);
            return cx.replace(n, &interior, OpKind::Gelu, vec![Val::Old(x)], a, vec![]);
        }
    }
    None
}

/// `x * Sigmoid(x)` or `x * Sigmoid(beta * x)`.
fn swish(cx: &Cx<'_, '_>, n: usize) -> Option<Recipe> {
    let m = cx.m;
    let y = *m.g.nodes[n].outputs.first()?;
    let (i, pairs) = cx.both(y, OpKind::Mul)?;
    pairs.iter().find_map(|&(x, s)| {
        let (j, arg) = m.unary(s, OpKind::Sigmoid)?;
        if m.ty(x) != m.ty(y) || !pattern::is_compute_float(m.ty(x).dtype) {
            return None;
        }
        let (alpha, mut interior) = if arg == x {
            (1.0, vec![j])
        } else {
            let (k, pairs) = cx.both(arg, OpKind::Mul)?;
            let beta = pairs
                .iter()
                .find_map(|&(x2, c)| (x2 == x).then(|| m.scalar_operand(c, x, arg)).flatten())?;
            (beta, vec![j, k])
        };
        interior.push(i);
        interior.retain(|&v| v != n);
        let a = attrs(&[("alpha", Attr::Float(alpha))]);
        cx.replace(n, &interior, OpKind::Swish, vec![Val::Old(x)], a, vec![])
    })
}

/// `Clip(x + 3, 0, 6)` for the given `x`: the nodes.
fn relu6_shifted(cx: &Cx<'_, '_>, c: ValueId, x: ValueId) -> Option<Vec<usize>> {
    let m = cx.m;
    let (i, node) = m.def(c, OpKind::Clip)?;
    let [Some(a), Some(lo), Some(hi)] = node.inputs.as_slice() else {
        return None;
    };
    if m.splat(*lo) != Some(0.0) || m.splat(*hi) != Some(6.0) {
        return None;
    }
    let (j, x2) = cx.with_const(*a, OpKind::Add, 3.0)?;
    (x2 == x).then(|| vec![i, j])
}

/// `x * HardSigmoid(x) {1/6, 1/2}`, or `x`, `Clip(x + 3, 0, 6)` and `1/6`
/// multiplied (or the product divided by 6).
fn hard_swish(cx: &Cx<'_, '_>, n: usize) -> Option<Recipe> {
    let m = cx.m;
    let y = *m.g.nodes[n].outputs.first()?;
    let ty = m.ty(y);
    if !pattern::is_compute_float(ty.dtype) {
        return None;
    }
    let close = |v: Option<f64>, exact: f64| {
        v.is_some_and(|v| pattern::close(v, exact, 1e-6f64.max(cx.opts.rel_tolerance)))
    };
    let mut found: Option<(ValueId, Vec<usize>)> = None;
    // x * HardSigmoid(x)
    if let Some((i, pairs)) = cx.both(y, OpKind::Mul) {
        for (x, h) in pairs {
            if let Some((j, hn)) = m.def(h, OpKind::HardSigmoid) {
                if hn.inputs == [Some(x)]
                    && m.ty(x) == ty
                    && close(pattern::float_attr(hn, "alpha"), 1.0 / 6.0)
                    && close(pattern::float_attr(hn, "beta"), 0.5)
                {
                    found = Some((x, vec![i, j]));
                }
            }
        }
    }
    // (x * Clip(x + 3, 0, 6)) / 6
    if found.is_none() {
        if let Some((i, p)) = cx.with_const(y, OpKind::Div, 6.0) {
            if let Some((j, pairs)) = cx.both(p, OpKind::Mul) {
                found = pairs.iter().find_map(|&(x, c)| {
                    let mut nodes = relu6_shifted(cx, c, x)?;
                    nodes.extend([i, j]);
                    (m.ty(x) == ty).then_some((x, nodes))
                });
            }
        }
    }
    // x * Clip(x + 3, 0, 6) * (1/6), or x * (Clip(x + 3, 0, 6) / 6)
    if found.is_none() {
        found = products(cx, y).into_iter().find_map(|(factors, nodes)| {
            let (x, mut inner) = pick(&factors, |x, rest| {
                if m.ty(x) != ty {
                    return None;
                }
                match rest {
                    [c] => {
                        let (k, c2) = cx.with_const(*c, OpKind::Div, 6.0)?;
                        let mut v = relu6_shifted(cx, c2, x)?;
                        v.push(k);
                        Some((x, v))
                    }
                    [a, b] => [(a, b), (b, a)].iter().find_map(|(c, s)| {
                        let sixth = m
                            .scalar_operand(**s, x, y)
                            .is_some_and(|v| close(Some(v), 1.0 / 6.0));
                        sixth
                            .then(|| relu6_shifted(cx, **c, x))
                            .flatten()
                            .map(|v| (x, v))
                    }),
                    _ => None,
                }
            })?;
            inner.extend(nodes);
            Some((x, inner))
        });
    }
    let (x, mut interior) = found?;
    interior.retain(|&v| v != n);
    cx.replace(
        n,
        &interior,
        OpKind::HardSwish,
        vec![Val::Old(x)],
        Attrs::new(),
        vec![],
    )
}

#[cfg(test)]
#[path = "recognize_norms_tests.rs"]
mod tests;
