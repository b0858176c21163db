//! `sink-transposes`: pushes layout changes — transposes, and reshapes,
//! squeezes and unsqueezes that only insert or remove unit dims — down
//! through elementwise ops, so that they meet and cancel in pairs.
//!
//! `f(L(x), c) -> L(f(x, c'))` for an elementwise `f` (any arity), a layout
//! change `L` shared by the operands it applies to, and the other operands
//! `c` adapted so they broadcast against `x` as they did against `L(x)`:
//! - a one-element operand stays as it is;
//! - an operand whose data order `L⁻¹` keeps (a per-channel vector, a
//!   constant whose non-unit dims keep their order) is reshaped: a constant
//!   gets a new weight viewing the same bytes, any other value an
//!   `nn.reshape`;
//! - any other constant of at most [`Options::permute_constants_up_to`]
//!   elements is permuted into a new weight;
//! - a runtime operand whose inverse transpose the graph already computes
//!   is replaced by it;
//! - anything else stops the sinking.
//!
//! At least one of the layout changes must have no other use, so the
//! number of layout nodes never grows.
//!
//! Channel concatenations of operands transposed alike become one
//! concatenation along the permuted axis, transposed once; a split of a
//! transposed value splits the operand along the permuted axis and
//! transposes each part. A reshape that splits one dim of a transposed value
//! splits the operand's dim instead; one that merges dims which are
//! consecutive in the operand merges them there, behind a transpose of the
//! operand that puts them in order when they are not (the channel shuffle
//! of ShuffleNet in NHWC: one real transpose of the two innermost dims, the
//! layout change sinks on).
//!
//! Between sinking sweeps, canonicalize's layout patterns cancel inverse
//! transposes and merge transpose and reshape chains, and a transpose that
//! only moves unit dims becomes a reshape (free: a view of its operand).
//!
//! Deciding is [`plan`] (pure); rewriting is [`crate::rewrite::apply_recipe`].
//! Preconditions: a verified graph. Graph outputs keep their names and
//! types.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::passes::{canonicalize, dce};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep, Direction, NewNode, Recipe, Val};
use kiln_interp::Tensor;
use kiln_ir::{Attrs, Blob, Dim, Graph, Node, OpKind, TensorType, ValueId, Weight, WeightData};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "sink-transposes",
    summary: "Pushes transposes and unit-dim reshapes down through elementwise ops and cancels them in pairs",
    create: || Box::new(SinkTransposes::default()),
};

/// Options of `sink-transposes`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Largest constant (in elements) that is permuted into a new weight
    /// when a transpose sinks past it; larger ones stop the transpose.
    pub permute_constants_up_to: u64,
    /// Also sink reshapes, squeezes and unsqueezes that only insert or
    /// remove unit dims.
    pub unit_reshapes: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            permute_constants_up_to: 1 << 16,
            unit_reshapes: true,
        }
    }
}

/// The transpose sinking pass.
#[derive(Clone, Debug, Default)]
pub struct SinkTransposes {
    /// Options.
    pub options: Options,
}

impl Pass for SinkTransposes {
    pass_info!();
    fn run(&self, g: &mut Graph, opts: &PassOptions) -> Result<PassStats, PassError> {
        Ok(PassStats {
            rewrites: run(g, &self.options, opts),
        })
    }
}

/// Sinks and cancels until nothing changes; returns the number of
/// rewrites.
pub fn run(g: &mut Graph, options: &Options, opts: &PassOptions) -> usize {
    let mut rewrites = 0;
    for _ in 0..opts.max_iterations.max(1) {
        let mut changed = sweep(g, Direction::Forward, |m, n| {
            plan(m, n, options)
                .or_else(|| concat(m, n))
                .or_else(|| split(m, n))
                .or_else(|| pad_or_slice(m, n))
                .or_else(|| split_reshape(m, n))
                .or_else(|| merge_reshape(m, n))
                .or_else(|| transpose_as_reshape(m, n))
                .or_else(|| collapse_reshapes(m, n))
        });
        changed += canonicalize::cancel_layout_chains(g, opts);
        if changed == 0 {
            break;
        }
        dce::remove_dead_nodes(g);
        rewrites += changed;
    }
    if rewrites > 0 {
        dce::eliminate(g);
    }
    rewrites
}

/// A layout change: node `node` maps `x` to its result.
#[derive(Clone, Debug)]
struct View {
    node: usize,
    x: ValueId,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// A transpose by this permutation.
    Transpose(Vec<usize>),
    /// A reshape that only inserts or removes unit dims, from this type.
    Unit(TensorType),
}

/// Non-unit dims of `dims` with their positions.
fn non_unit(dims: &[Dim]) -> Vec<(usize, &Dim)> {
    dims.iter()
        .enumerate()
        .filter(|(_, d)| **d != Dim::Static(1))
        .collect()
}

/// The layout change producing `v`, if any.
fn view_of(m: &Matcher<'_>, v: ValueId, options: &Options) -> Option<View> {
    let i = m.node_of(v)?;
    let node = &m.g.nodes[i];
    let x = node.inputs.first().copied().flatten()?;
    if node.outputs.len() != 1 {
        return None;
    }
    let (xt, vt) = (m.ty(x), m.ty(v));
    match node.op {
        OpKind::Transpose => {
            let perm = pattern::perm_of(node, xt.rank())?;
            Some(View {
                node: i,
                x,
                kind: Kind::Transpose(perm),
            })
        }
        OpKind::Reshape | OpKind::Squeeze | OpKind::Unsqueeze if options.unit_reshapes => {
            let (a, b) = (non_unit(&xt.dims), non_unit(&vt.dims));
            let same = a.len() == b.len()
                && a.iter()
                    .zip(&b)
                    .all(|((_, p), (_, q))| pattern::same_dim(p, q));
            same.then(|| View {
                node: i,
                x,
                kind: Kind::Unit(xt.clone()),
            })
        }
        _ => None,
    }
}

/// `dims` right-aligned to `rank` with leading unit dims.
fn full(dims: &[Dim], rank: usize) -> Option<Vec<Dim>> {
    let pad = rank.checked_sub(dims.len())?;
    Some(
        std::iter::repeat_n(Dim::Static(1), pad)
            .chain(dims.iter().cloned())
            .collect(),
    )
}

/// Where an operand of the sunk op comes from.
enum Adapted {
    /// As it was.
    Same,
    /// Reshaped to these extents (its data order is unchanged).
    Reshape(Vec<u64>),
    /// A constant permuted into this tensor.
    Permuted(Tensor),
    /// This existing value (the operand, already transposed as needed).
    Existing(ValueId),
}

/// How operand `c` (broadcast against the result `y` of rank `ry`) must
/// change to broadcast the same way against `x` when `transpose(x, p)`
/// sinks, for an op at node `before`.
fn adapt_transpose(
    m: &Matcher<'_>,
    before: usize,
    c: ValueId,
    p: &[usize],
    ry: usize,
    options: &Options,
) -> Option<Adapted> {
    let ct = m.ty(c);
    if ct.numel() == Some(1) {
        return Some(Adapted::Same);
    }
    let cf = full(&ct.dims, ry)?;
    let inv = pattern::invert(p);
    let target: Vec<Dim> = pattern::permute(&cf, &inv);
    if full(&ct.dims, target.len()).is_some_and(|f| f == target) {
        return Some(Adapted::Same);
    }
    let shape: Vec<u64> = target.iter().map(Dim::as_static).collect::<Option<_>>()?;
    // The data keeps its order when the non-unit dims keep theirs.
    let moved: Vec<usize> = inv
        .iter()
        .copied()
        .filter(|&src| cf[src] != Dim::Static(1))
        .collect();
    if moved.windows(2).all(|w| w[0] < w[1]) {
        return Some(Adapted::Reshape(shape));
    }
    // A runtime operand whose inverse transpose the graph already computes
    // (the residual of a block whose convolution reads it in NHWC): use it.
    if ct.rank() == ry {
        let existing = m.users(c).iter().filter(|&&u| u < before).find_map(|&u| {
            let t = &m.g.nodes[u];
            (t.op == OpKind::Transpose && pattern::perm_of(t, ry)? == inv)
                .then(|| t.outputs.first().copied())
                .flatten()
        });
        if let Some(e) = existing {
            return Some(Adapted::Existing(e));
        }
    }
    // Permute a constant's data: target dim j is source dim inv[j].
    if ct.numel()? > options.permute_constants_up_to {
        return None;
    }
    let t = m.const_tensor(c)?;
    let src: Vec<u64> = cf.iter().map(Dim::as_static).collect::<Option<_>>()?;
    let mut strides = vec![1usize; src.len()];
    for i in (0..src.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * src[i + 1] as usize;
    }
    let n: usize = shape.iter().product::<u64>() as usize;
    let idx = (0..n).map(|flat| {
        let (mut rem, mut at) = (flat, 0);
        for j in (0..shape.len()).rev() {
            let e = shape[j] as usize;
            at += (rem % e) * strides[inv[j]];
            rem /= e;
        }
        at
    });
    Some(Adapted::Permuted(t.pick(shape.clone(), idx)))
}

/// Decides whether elementwise node `n` can take the layout change of its
/// operands onto its result.
pub fn plan(m: &Matcher<'_>, n: usize, options: &Options) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    let [y] = node.outputs.as_slice() else {
        return None;
    };
    if !node.op.def().traits.elementwise || node.op == OpKind::Constant || node.body.is_some() {
        return None;
    }
    let yt = m.ty(*y);
    let ry = yt.rank();
    // The first operand that is a layout change of the result's rank (not
    // broadcast) decides the layout change to sink.
    // A unit reshape sinks only from a full-size operand (a broadcast one
    // does not say how the result's dims map).
    let lead = node
        .operands()
        .filter(|&o| m.ty(o).rank() == ry)
        .filter_map(|o| view_of(m, o, options))
        .find(|v| match &v.kind {
            Kind::Transpose(_) => true,
            Kind::Unit(_) => m.ty(m.g.nodes[v.node].outputs[0]) == yt,
        })?;
    let is_lead = |o: ValueId| {
        view_of(m, o, options).is_some_and(|v| v.kind == lead.kind && m.ty(o).rank() == ry)
    };
    let mut single = false;
    let mut inputs: Vec<Option<Val>> = Vec::new();
    let mut recipe = Recipe::at(n);
    for (i, o) in node.inputs.iter().enumerate() {
        let Some(o) = *o else {
            inputs.push(None);
            continue;
        };
        if is_lead(o) {
            let v = view_of(m, o, options)?;
            if matches!(v.kind, Kind::Unit(_)) && m.ty(o) != yt {
                return None;
            }
            single |= m.single_use(o);
            inputs.push(Some(Val::Old(v.x)));
            continue;
        }
        let adapted = match &lead.kind {
            Kind::Transpose(p) => adapt_transpose(m, n, o, p, ry, options)?,
            Kind::Unit(xt) => {
                let cf = full(&m.ty(o).dims, ry)?;
                let a = unit_target(m, o, &cf, xt, yt)?;
                // A new runtime reshape would be a unit reshape that sinks
                // back through this op: only constants are reshaped.
                if matches!(a, Adapted::Reshape(_)) && m.weight(o).is_none() {
                    return None;
                }
                a
            }
        };
        let name = format!("{}_{i}", m.g.value(o).name);
        inputs.push(Some(match adapted {
            Adapted::Same => Val::Old(o),
            Adapted::Existing(e) => Val::Old(e),
            Adapted::Reshape(shape) => reshaped(m, &mut recipe, o, &shape, &name),
            Adapted::Permuted(t) => {
                let w = Weight {
                    name: name.clone(),
                    ty: TensorType::fixed(t.dtype, &t.shape),
                    data: WeightData::Bytes(Blob::from_vec(t.to_bytes())),
                    source: None,
                };
                recipe.constant(&name, w)
            }
        }));
    }
    if !single {
        return None;
    }
    // The sunk op works on x's layout.
    let zt = match &lead.kind {
        Kind::Transpose(p) => {
            TensorType::new(yt.dtype, pattern::permute(&yt.dims, &pattern::invert(p)))
        }
        Kind::Unit(xt) => TensorType::new(yt.dtype, xt.dims.clone()),
    };
    let in_tys: Vec<Option<&TensorType>> = inputs
        .iter()
        .map(|v| v.map(|v| recipe.ty(m.g, v)))
        .collect();
    let inferred = pattern::infer(node.op, &node.attrs, &in_tys, 1)?;
    if !inferred
        .first()
        .is_some_and(|t| pattern::same_type(t, &zt) || *t == zt)
    {
        return None;
    }
    let z = recipe.push(NewNode {
        op: node.op,
        inputs,
        attrs: node.attrs.clone(),
        results: vec![(m.g.value(*y).name.clone(), zt)],
        weight: None,
        body: None,
    });
    // The layout change, cloned onto the new result.
    let vn: &Node = &m.g.nodes[lead.node];
    let mut l_inputs: Vec<Option<Val>> = vn.inputs.iter().map(|v| v.map(Val::Old)).collect();
    l_inputs[0] = Some(z);
    let l = recipe.push(NewNode {
        op: vn.op,
        inputs: l_inputs,
        attrs: vn.attrs.clone(),
        results: vec![(m.g.value(*y).name.clone(), yt.clone())],
        weight: None,
        body: None,
    });
    recipe.replace.push((*y, l));
    Some(recipe)
}

/// The extents operand `o` (full rank `cf` against the result `yt`) takes
/// against `x` of type `xt` when a unit-dim reshape `x -> yt` sinks:
/// unchanged, or reshaped (the data order never changes).
fn unit_target(
    m: &Matcher<'_>,
    o: ValueId,
    cf: &[Dim],
    xt: &TensorType,
    yt: &TensorType,
) -> Option<Adapted> {
    let ot = m.ty(o);
    if ot.numel() == Some(1) && ot.rank() <= xt.rank() {
        return Some(Adapted::Same);
    }
    let y_nu: Vec<usize> = non_unit(&yt.dims).into_iter().map(|(i, _)| i).collect();
    let x_nu: Vec<usize> = non_unit(&xt.dims).into_iter().map(|(i, _)| i).collect();
    // At the result's unit dims the operand must be 1 too.
    if (0..cf.len()).any(|i| !y_nu.contains(&i) && cf[i] != Dim::Static(1)) {
        return None;
    }
    let mut target = vec![Dim::Static(1); xt.rank()];
    for (yi, xi) in y_nu.iter().zip(&x_nu) {
        target[*xi] = cf[*yi].clone();
    }
    if full(&ot.dims, target.len()).is_some_and(|f| f == target) {
        return Some(Adapted::Same);
    }
    let shape: Vec<u64> = target.iter().map(Dim::as_static).collect::<Option<_>>()?;
    Some(Adapted::Reshape(shape))
}

/// `o` reshaped to `shape` (leading unit dims dropped: broadcasting
/// supplies them): a constant's weight viewed with the new shape (same
/// bytes), or a new `nn.reshape`.
fn reshaped(m: &Matcher<'_>, r: &mut Recipe, o: ValueId, shape: &[u64], name: &str) -> Val {
    let lead = shape.iter().take_while(|&&d| d == 1).count();
    let shape = &shape[lead.min(shape.len().saturating_sub(1))..];
    let ty = TensorType::fixed(m.ty(o).dtype, shape);
    if let Some(w) = m.weight(o) {
        if let WeightData::Bytes(b) = &w.data {
            let w = Weight {
                name: name.to_string(),
                ty: ty.clone(),
                data: WeightData::Bytes(b.clone()),
                source: w.source.clone(),
            };
            return r.constant(name, w);
        }
    }
    let s = shape_const(r, shape, name);
    r.push(NewNode::op(
        OpKind::Reshape,
        vec![Val::Old(o), s],
        Attrs::new(),
        name,
        ty,
    ))
}

/// A new i64 constant `<name>_shape` holding `shape`.
fn shape_const(r: &mut Recipe, shape: &[u64], name: &str) -> Val {
    let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    r.i64_const(&shape, &format!("{name}_shape"))
}

/// `concat(transpose(a, p), transpose(b, p), ..., axis)` ->
/// `transpose(concat(a, b, ..., p[axis]), p)` when every operand is
/// transposed alike and one of the transposes has no other use (the channel
/// concatenations of Inception and DenseNet blocks in NHWC).
fn concat(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    let [y] = node.outputs.as_slice() else {
        return None;
    };
    if node.op != OpKind::Concat || node.inputs.is_empty() {
        return None;
    }
    let yt = m.ty(*y);
    let rank = yt.rank();
    let axis = pattern::int_attr(node, "axis")?;
    let axis = usize::try_from(if axis < 0 { axis + rank as i64 } else { axis }).ok()?;
    let mut perm: Option<Vec<usize>> = None;
    let mut bases = Vec::new();
    let mut single = false;
    for o in node.inputs.iter() {
        let o = (*o)?;
        let t = m.def(o, OpKind::Transpose)?.1;
        let x = t.inputs.first().copied().flatten()?;
        let p = pattern::perm_of(t, m.ty(x).rank())?;
        if perm.as_ref().is_some_and(|q| *q != p) {
            return None;
        }
        perm = Some(p);
        single |= m.single_use(o);
        bases.push(Val::Old(x));
    }
    let p = perm?;
    if !single || axis >= rank {
        return None;
    }
    let mut attrs = node.attrs.clone();
    attrs.insert("axis".into(), kiln_ir::Attr::Int(p[axis] as i64));
    Some(in_operand_layout(
        m,
        Recipe::at(n),
        *y,
        (OpKind::Concat, bases, attrs),
        &p,
    ))
}

/// `r` completed with `transpose(op(inputs), p)` in place of `y`: the op
/// run in its operands' layout, its result transposed once to `y`'s.
fn in_operand_layout(
    m: &Matcher<'_>,
    mut r: Recipe,
    y: ValueId,
    (op, inputs, attrs): (OpKind, Vec<Val>, Attrs),
    p: &[usize],
) -> Recipe {
    let yt = m.ty(y);
    let name = m.g.value(y).name.clone();
    let zt = TensorType::new(yt.dtype, pattern::permute(&yt.dims, &pattern::invert(p)));
    let z = r.push(NewNode::op(op, inputs, attrs, &name, zt));
    let t = r.push(NewNode::op(
        OpKind::Transpose,
        vec![z],
        pattern::perm_attrs(p),
        &name,
        yt.clone(),
    ));
    r.replace.push((y, t));
    r
}

/// `split(transpose(x, p), axis)` -> `transpose(split(x, p[axis])_i, p)`
/// for each part, when the transpose has no other use (ShuffleNet's
/// channel splits in NHWC).
fn split(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    if node.op != OpKind::Split || node.outputs.is_empty() {
        return None;
    }
    let v = node.inputs.first().copied().flatten()?;
    let t = m.def(v, OpKind::Transpose)?.1;
    let x = t.inputs.first().copied().flatten()?;
    let p = pattern::perm_of(t, m.ty(x).rank())?;
    if !m.single_use(v) || pattern::is_identity(&p) {
        return None;
    }
    let rank = p.len();
    let axis = pattern::int_attr(node, "axis").unwrap_or(0);
    let axis = usize::try_from(if axis < 0 { axis + rank as i64 } else { axis }).ok()?;
    if axis >= rank {
        return None;
    }
    let inv = pattern::invert(&p);
    let mut attrs = node.attrs.clone();
    attrs.insert("axis".into(), kiln_ir::Attr::Int(p[axis] as i64));
    let mut inputs: Vec<Option<Val>> = vec![Some(Val::Old(x))];
    inputs.extend(node.inputs.iter().skip(1).map(|o| o.map(Val::Old)));
    let results = node
        .outputs
        .iter()
        .map(|&y| {
            let yt = m.ty(y);
            let zt = TensorType::new(yt.dtype, pattern::permute(&yt.dims, &inv));
            (m.g.value(y).name.clone(), zt)
        })
        .collect();
    let mut r = Recipe::at(n);
    r.nodes.push(NewNode {
        op: OpKind::Split,
        inputs,
        attrs,
        results,
        weight: None,
        body: None,
    });
    for (i, &y) in node.outputs.iter().enumerate() {
        let part = Val::New { node: 0, result: i };
        let tv = r.push(NewNode::op(
            OpKind::Transpose,
            vec![part],
            pattern::perm_attrs(&p),
            &m.g.value(y).name,
            m.ty(y).clone(),
        ));
        r.replace.push((y, tv));
    }
    Some(r)
}

/// `pad(transpose(x, p), pads)` -> `transpose(pad(x, pads'), p)`, each
/// dim's pads moved to the operand dim it comes from, when the transpose
/// has no other use; `slice(transpose(x, p), starts, ends, axes, steps)`
/// -> `transpose(slice(x, starts, ends, p[axes], steps), p)` when every use
/// of the transpose is such a slice (one transpose per slice, as for a
/// split: the shifted slices that conv-transpose-to-conv's col2im form
/// sums, whose transposes sink on through the sums and cancel). Pads and
/// axes must be constants.
fn pad_or_slice(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    let [y] = node.outputs.as_slice() else {
        return None;
    };
    if !matches!(node.op, OpKind::Pad | OpKind::Slice) {
        return None;
    }
    let v = node.inputs.first().copied().flatten()?;
    let t = m.def(v, OpKind::Transpose)?.1;
    let x = t.inputs.first().copied().flatten()?;
    let p = pattern::perm_of(t, m.ty(x).rank())?;
    if pattern::is_identity(&p) || m.is_output(v) {
        return None;
    }
    let rank = p.len();
    let name = m.g.value(*y).name.clone();
    let operand = |i: usize| node.inputs.get(i).copied().flatten();
    let mut r = Recipe::at(n);
    let mut inputs = vec![Val::Old(x)];
    if node.op == OpKind::Pad {
        if !m.single_use(v) || operand(3).is_some() {
            return None;
        }
        let pads = m.const_ints(operand(1)?)?;
        if pads.len() != 2 * rank {
            return None;
        }
        let mut moved = vec![0i64; 2 * rank];
        for (j, &pj) in p.iter().enumerate() {
            moved[pj] = pads[j];
            moved[rank + pj] = pads[rank + j];
        }
        inputs.push(r.i64_const(&moved, &format!("{name}_pads")));
        inputs.extend(operand(2).map(Val::Old));
    } else {
        let all_slices = m.users(v).iter().all(|&u| {
            let un = &m.g.nodes[u];
            un.op == OpKind::Slice && un.inputs.iter().skip(1).all(|&o| o != Some(v))
        });
        if !all_slices {
            return None;
        }
        let starts = operand(1)?;
        let axes = match operand(3) {
            Some(a) => m.const_ints(a)?,
            None => (0..m.const_ints(starts)?.len() as i64).collect(),
        };
        // In the order given (the starts, ends and steps follow it).
        let moved: Vec<i64> = axes
            .iter()
            .map(|&a| {
                let a = if a < 0 { a + rank as i64 } else { a };
                usize::try_from(a)
                    .ok()
                    .and_then(|a| p.get(a))
                    .map(|&d| d as i64)
            })
            .collect::<Option<_>>()?;
        inputs.push(Val::Old(starts));
        inputs.push(Val::Old(operand(2)?));
        inputs.push(r.i64_const(&moved, &format!("{name}_axes")));
        inputs.extend(operand(4).map(Val::Old));
    }
    Some(in_operand_layout(
        m,
        r,
        *y,
        (node.op, inputs, node.attrs.clone()),
        &p,
    ))
}

/// Static extents of `dims`.
fn static_dims(dims: &[Dim]) -> Option<Vec<u64>> {
    dims.iter().map(Dim::as_static).collect()
}

/// The reshape `from -> to` as one range of `from` (start, length) replaced
/// by one range of `to` (same start, length), everything else equal; the
/// shortest such ranges.
fn reshape_range(from: &[u64], to: &[u64]) -> Option<(usize, usize, usize)> {
    let pre = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    let suf = from[pre..]
        .iter()
        .rev()
        .zip(to[pre..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (lf, lt) = (from.len() - pre - suf, to.len() - pre - suf);
    let prod = |s: &[u64]| s.iter().product::<u64>();
    (prod(&from[pre..pre + lf]) == prod(&to[pre..pre + lt])).then_some((pre, lf, lt))
}

/// `y = reshape(transpose(x, p))` with static shapes, the transpose used
/// only here and not the identity; the reshape as a range of the transposed
/// dims (from `a`, `from_len` long) replaced by `to_len` dims of `y`.
struct ReshapeOfTranspose {
    y: ValueId,
    x: ValueId,
    p: Vec<usize>,
    ys: Vec<u64>,
    a: usize,
    from_len: usize,
    to_len: usize,
}

fn reshape_of_transpose(m: &Matcher<'_>, n: usize) -> Option<ReshapeOfTranspose> {
    let node = &m.g.nodes[n];
    let [y] = node.outputs.as_slice() else {
        return None;
    };
    if node.op != OpKind::Reshape {
        return None;
    }
    let v = node.inputs.first().copied().flatten()?;
    let t = m.def(v, OpKind::Transpose)?.1;
    let x = t.inputs.first().copied().flatten()?;
    let p = pattern::perm_of(t, m.ty(x).rank())?;
    if !m.single_use(v) || pattern::is_identity(&p) {
        return None;
    }
    let (vs, ys) = (static_dims(&m.ty(v).dims)?, static_dims(&m.ty(*y).dims)?);
    let (a, from_len, to_len) = reshape_range(&vs, &ys)?;
    Some(ReshapeOfTranspose {
        y: *y,
        x,
        p,
        ys,
        a,
        from_len,
        to_len,
    })
}

/// `reshape(transpose(x, p))` where the reshape splits one dim `a` of the
/// transposed value into several ->
/// `transpose(reshape(x, dim p[a] split alike), q)`.
fn split_reshape(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let ReshapeOfTranspose {
        y,
        x,
        p,
        ys,
        a,
        from_len: lf,
        to_len: lt,
    } = reshape_of_transpose(m, n)?;
    let y = &y;
    let xt = m.ty(x);
    if lf != 1 || lt < 2 {
        return None;
    }
    let factors = &ys[a..a + lt];
    let s = p[a];
    let xs = static_dims(&xt.dims)?;
    // x with dim s split into the factors; source dim d moves to e(d).
    let e = |d: usize| if d > s { d + lt - 1 } else { d };
    let mut split_shape = xs[..s].to_vec();
    split_shape.extend_from_slice(factors);
    split_shape.extend_from_slice(&xs[s + 1..]);
    let mut q = Vec::with_capacity(ys.len());
    for (i, &d) in p.iter().enumerate() {
        if i == a {
            q.extend(s..s + lt);
        } else {
            q.push(e(d));
        }
    }
    let mut r = Recipe::at(n);
    reshape_then_transpose(m, &mut r, Val::Old(x), &split_shape, &q, *y);
    Some(r)
}

/// Adds `transpose(reshape(src, shape), perm)` to `r` in place of `y`.
fn reshape_then_transpose(
    m: &Matcher<'_>,
    r: &mut Recipe,
    src: Val,
    shape: &[u64],
    perm: &[usize],
    y: ValueId,
) {
    let (name, yt) = (m.g.value(y).name.clone(), m.ty(y).clone());
    let s = shape_const(r, shape, &name);
    let z = r.push(NewNode::op(
        OpKind::Reshape,
        vec![src, s],
        Attrs::new(),
        &name,
        TensorType::fixed(yt.dtype, shape),
    ));
    let out = r.push(NewNode::op(
        OpKind::Transpose,
        vec![z],
        pattern::perm_attrs(perm),
        &name,
        yt,
    ));
    r.replace.push((y, out));
}

/// `reshape(transpose(x, p))` where the reshape merges groups of
/// consecutive dims of the transposed value, each group consecutive dims of
/// `x` (in any order) -> `transpose(reshape(transpose(x, q1)), q2)`: `q1`
/// puts each group's dims in the order the merge reads them (no transpose
/// when they already are), the merges happen in `x`'s order, and `q2` is
/// the layout change left to sink.
fn merge_reshape(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let ReshapeOfTranspose {
        y,
        x,
        p,
        ys,
        a,
        from_len: k,
        to_len: lt,
    } = reshape_of_transpose(m, n)?;
    let y = &y;
    let xt = m.ty(x);
    if k < 2 || lt == 0 || lt >= k {
        return None;
    }
    let xs = static_dims(&xt.dims)?;
    // The range as `lt` groups of consecutive transposed dims, one per
    // result dim (`[.., q_h, s_h, q_w, s_w, ..] -> [.., q_h * s_h, q_w *
    // s_w, ..]`: the interleave of conv-transpose-to-conv's residue pairs
    // merges two at once), each group consecutive dims of x in any order.
    let mut groups: Vec<&[usize]> = Vec::with_capacity(lt);
    let mut at = a;
    for j in 0..lt {
        let (mut prod, start) = (1u64, at);
        while at < a + k && (prod < ys[a + j] || at == start) {
            prod = prod.checked_mul(xs[p[at]])?;
            at += 1;
        }
        // Unit dims trailing a group join it (they merge anywhere).
        while j + 1 == lt && at < a + k {
            prod = prod.checked_mul(xs[p[at]])?;
            at += 1;
        }
        if prod != ys[a + j] {
            return None;
        }
        groups.push(&p[start..at]);
    }
    if at != a + k {
        return None;
    }
    let consecutive = groups.iter().all(|group| {
        let lo = group.iter().min().copied().unwrap_or(0);
        let mut sorted = group.to_vec();
        sorted.sort_unstable();
        sorted == (lo..lo + group.len()).collect::<Vec<_>>()
    });
    let group_at = |d: usize| groups.iter().find(|g| g.contains(&d));
    // Units of x in x's order, each group standing at its lowest dim.
    let mut q1 = Vec::with_capacity(xs.len());
    let mut unit_of = vec![0usize; xs.len()]; // x dim -> unit index
    let mut units = 0;
    for d in 0..xs.len() {
        match group_at(d) {
            Some(group) if group.iter().min() == Some(&d) => {
                q1.extend_from_slice(group);
                for &g in group.iter() {
                    unit_of[g] = units;
                }
                units += 1;
            }
            Some(_) => {}
            None => {
                q1.push(d);
                unit_of[d] = units;
                units += 1;
            }
        }
    }
    // The result's units in order, as positions in the merged tensor.
    let mut q2 = Vec::with_capacity(units);
    for (i, &d) in p.iter().enumerate() {
        if i < a || i >= a + k {
            q2.push(unit_of[d]);
        }
        if i == a {
            q2.extend(groups.iter().map(|g| unit_of[g[0]]));
        }
    }
    // Groups of dims apart in x take a real transpose of x (q1); worth it
    // only where the layout change q2 then cancels below.
    if pattern::is_identity(&q2) || !(consecutive || cancels_below(m, *y, &q2)) {
        return None;
    }
    let name = m.g.value(*y).name.clone();
    let mut r = Recipe::at(n);
    let mut src = Val::Old(x);
    if !pattern::is_identity(&q1) {
        let st = TensorType::fixed(xt.dtype, &pattern::permute(&xs, &q1));
        src = r.push(NewNode::op(
            OpKind::Transpose,
            vec![src],
            pattern::perm_attrs(&q1),
            &name,
            st,
        ));
    }
    let merged: Vec<u64> = pattern::invert(&q2).iter().map(|&i| ys[i]).collect();
    reshape_then_transpose(m, &mut r, src, &merged, &q2, *y);
    Some(r)
}

/// Whether a layout change `q` of `v` would meet its inverse: `v` flows
/// through single-use elementwise ops of its shape into a transpose by
/// `q`'s inverse.
fn cancels_below(m: &Matcher<'_>, mut v: ValueId, q: &[usize]) -> bool {
    let inverse = pattern::invert(q);
    loop {
        let [u] = m.users(v) else {
            return false;
        };
        if m.is_output(v) {
            return false;
        }
        let node = &m.g.nodes[*u];
        let [out] = node.outputs.as_slice() else {
            return false;
        };
        if node.op == OpKind::Transpose {
            return pattern::perm_of(node, q.len()).is_some_and(|p| p == inverse);
        }
        if !node.op.def().traits.elementwise || node.body.is_some() || m.ty(*out) != m.ty(v) {
            return false;
        }
        v = *out;
    }
}

/// A transpose that only moves unit dims (its non-unit dims keep their
/// order) is a reshape, which is free.
fn transpose_as_reshape(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    if node.op != OpKind::Transpose {
        return None;
    }
    let (x, y) = (
        node.inputs.first().copied().flatten()?,
        *node.outputs.first()?,
    );
    let xt = m.ty(x);
    let perm = pattern::perm_of(node, xt.rank())?;
    if pattern::is_identity(&perm) {
        return None;
    }
    let moved: Vec<usize> = perm
        .iter()
        .copied()
        .filter(|&s| xt.dims[s] != Dim::Static(1))
        .collect();
    if !moved.windows(2).all(|w| w[0] < w[1]) {
        return None;
    }
    let mut r = Recipe::at(n);
    static_reshape(m, &mut r, x, y)?;
    Some(r)
}

/// Adds `reshape(x, static shape of y)` to `r` and replaces `y` with it.
fn static_reshape(m: &Matcher<'_>, r: &mut Recipe, x: ValueId, y: ValueId) -> Option<()> {
    let yt = m.ty(y);
    let shape: Vec<u64> = yt.dims.iter().map(Dim::as_static).collect::<Option<_>>()?;
    let name = m.g.value(y).name.clone();
    let s = shape_const(r, &shape, &name);
    let v = r.push(NewNode::op(
        OpKind::Reshape,
        vec![Val::Old(x), s],
        Attrs::new(),
        &name,
        yt.clone(),
    ));
    r.replace.push((y, v));
    Some(())
}

/// Whether `op` only changes the shape, not the data order.
fn is_reshape(op: OpKind) -> bool {
    matches!(
        op,
        OpKind::Reshape | OpKind::Squeeze | OpKind::Unsqueeze | OpKind::Flatten
    )
}

/// A chain of two shape-only ops (reshape, squeeze, unsqueeze, flatten) is
/// its input when the types agree, else one reshape to the static result
/// (canonicalize merges reshape pairs only).
fn collapse_reshapes(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    if !is_reshape(node.op) || node.op == OpKind::Reshape {
        return None;
    }
    let (a, y) = (
        node.inputs.first().copied().flatten()?,
        *node.outputs.first()?,
    );
    let inner = &m.g.nodes[m.node_of(a)?];
    if !is_reshape(inner.op) {
        return None;
    }
    let x = inner.inputs.first().copied().flatten()?;
    let (xt, yt) = (m.ty(x), m.ty(y));
    let mut r = Recipe::at(n);
    if pattern::same_type(xt, yt) {
        r.replace.push((y, Val::Old(x)));
        return Some(r);
    }
    static_reshape(m, &mut r, x, y)?;
    Some(r)
}

#[cfg(test)]
#[path = "sink_transposes_tests.rs"]
mod tests;
