//! `assign-layout`: runs convolution chains in the activation layout the
//! target's kernels want (`TargetFacts::conv_layout`; NHWC for the CPU
//! kernels), with `nn.transpose` only at the chain's boundaries.
//!
//! 1. Every 2-D NCHW `nn.conv`, `quant.conv`, `nn.max_pool` (one result),
//!    `nn.average_pool`, `nn.global_average_pool` and `nn.global_max_pool`
//!    becomes `transpose(op{layout = "nhwc"}(transpose(x, [0,2,3,1])),
//!    [0,3,1,2])`: the same value, computed in NHWC (the weights stay OIHW).
//! 2. A batch norm with constant parameters, which has no NHWC form,
//!    becomes `x * s + t` with `s`, `t` derived per-channel `[C, 1, 1]`
//!    weights: elementwise ops, which layout changes pass through.
//! 3. `sink-transposes` then pushes the `[0,3,1,2]` transposes down through
//!    elementwise ops (per-channel constants are reshaped along with them,
//!    others permuted) and channel concatenations until they meet the next
//!    op's `[0,2,3,1]` and cancel. What is left are transposes at the
//!    boundaries: graph inputs and outputs, and shape-sensitive ops
//!    (Reshape, Flatten, Gemm, ...) that stay NCHW behind them; one that
//!    only moves unit dims (after a global pool) is a free reshape.
//!
//! With `conv_layout = nchw` (the default target facts) the pass does
//! nothing. Preconditions: a verified graph. Graph outputs keep their names
//! and types; results are equal (the same arithmetic in another layout).

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::passes::{fold_batch_norm, sink_transposes};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep, Direction, NewNode, Recipe, Val, WRef};
use kiln_ir::ops::layout::DataLayout;
use kiln_ir::{Attr, Attrs, Dim, Graph, OpKind, TensorType};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "assign-layout",
    summary: "Runs conv/pool chains in the target's activation layout (NHWC on CPU) with transposes only at the boundaries",
    create: || Box::new(AssignLayout::default()),
};

/// Options of `assign-layout`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Rewrite constant batch norms as a per-channel scale and shift so the
    /// layout passes through them.
    pub batch_norm_as_affine: bool,
    /// Options of the transpose sinking that follows.
    pub sink: sink_transposes::Options,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            batch_norm_as_affine: true,
            sink: sink_transposes::Options::default(),
        }
    }
}

/// The layout assignment pass.
#[derive(Clone, Debug, Default)]
pub struct AssignLayout {
    /// Options.
    pub options: Options,
}

impl Pass for AssignLayout {
    pass_info!();
    fn run(&self, g: &mut Graph, opts: &PassOptions) -> Result<PassStats, PassError> {
        if opts.target.conv_layout != DataLayout::Nhwc {
            return Ok(PassStats::default());
        }
        let mut rewrites = sweep(g, Direction::Forward, |m, n| {
            to_nhwc(m, n).or_else(|| {
                self.options
                    .batch_norm_as_affine
                    .then(|| batch_norm_as_affine(m, n))
                    .flatten()
            })
        });
        if rewrites > 0 {
            rewrites += sink_transposes::run(g, &self.options.sink, opts);
        }
        Ok(PassStats { rewrites })
    }
}

/// NCHW -> NHWC and back.
const TO_NHWC: [usize; 4] = [0, 2, 3, 1];
const TO_NCHW: [usize; 4] = [0, 3, 1, 2];

/// Plans node `n`, a 2-D NCHW layout-aware op, in NHWC between transposes.
fn to_nhwc(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    let layout_aware = matches!(
        node.op,
        OpKind::Conv
            | OpKind::QConv
            | OpKind::MaxPool
            | OpKind::AveragePool
            | OpKind::GlobalAveragePool
            | OpKind::GlobalMaxPool
    );
    let [y] = node.outputs.as_slice() else {
        return None;
    };
    if !layout_aware || pattern::enum_attr::<DataLayout>(node, "layout")? != DataLayout::Nchw {
        return None;
    }
    let x = node.inputs.first().copied().flatten()?;
    let (xt, yt) = (m.ty(x), m.ty(*y));
    if xt.rank() != 4 || yt.rank() != 4 {
        return None;
    }
    let mut r = Recipe::at(n);
    let name = m.g.value(*y).name.clone();
    let xn = TensorType::new(xt.dtype, pattern::permute(&xt.dims, &TO_NHWC));
    // One NHWC copy of a value feeds every op that reads it.
    let existing = m.users(x).iter().filter(|&&u| u < n).find_map(|&u| {
        let t = &m.g.nodes[u];
        (t.op == OpKind::Transpose && pattern::perm_of(t, 4)? == TO_NHWC)
            .then(|| t.outputs.first().copied())
            .flatten()
    });
    let tin = match existing {
        Some(t) => Val::Old(t),
        None => r.push(NewNode::op(
            OpKind::Transpose,
            vec![Val::Old(x)],
            pattern::perm_attrs(&TO_NHWC),
            &format!("{}_nhwc", m.g.value(x).name),
            xn,
        )),
    };
    let mut attrs = node.attrs.clone();
    attrs.insert("layout".into(), Attr::of_enum(DataLayout::Nhwc));
    let mut inputs: Vec<Option<Val>> = node.inputs.iter().map(|v| v.map(Val::Old)).collect();
    inputs[0] = Some(tin);
    let yn = TensorType::new(yt.dtype, pattern::permute(&yt.dims, &TO_NHWC));
    let in_tys: Vec<Option<&TensorType>> = inputs.iter().map(|v| v.map(|v| r.ty(m.g, v))).collect();
    let inferred = pattern::infer(node.op, &attrs, &in_tys, 1)?;
    if !inferred.first().is_some_and(|t| t.is_compatible(&yn)) {
        return None;
    }
    let z = r.push(NewNode {
        op: node.op,
        inputs,
        attrs,
        results: vec![(format!("{name}_nhwc"), yn)],
        weight: None,
        body: None,
    });
    let back = r.push(NewNode::op(
        OpKind::Transpose,
        vec![z],
        pattern::perm_attrs(&TO_NCHW),
        &name,
        yt.clone(),
    ));
    r.replace.push((*y, back));
    Some(r)
}

/// Plans a 4-D batch norm with constant parameters as `x * s + t`, with
/// `s = scale / sqrt(var + eps)` and `t = bias - mean * s` derived `[C, 1,
/// 1]` weights.
fn batch_norm_as_affine(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    if node.op != OpKind::BatchNorm {
        return None;
    }
    let [Some(x), Some(gamma), Some(beta), Some(mean), Some(var)] = node.inputs.as_slice() else {
        return None;
    };
    let y = *node.outputs.first()?;
    let (xt, yt) = (m.ty(*x), m.ty(y));
    if xt.rank() != 4 || !pattern::is_compute_float(xt.dtype) {
        return None;
    }
    let c = xt.dims[1].as_static()?;
    let dt = xt.dtype;
    let w = |v: &kiln_ir::ValueId| -> Option<WRef> {
        (m.ty(*v).dims == [Dim::Static(c)] && m.ty(*v).dtype == dt)
            .then(|| m.g.constant_weight(m.defs(), *v).map(WRef::Old))
            .flatten()
    };
    let (gamma, beta, mean, var) = (w(gamma)?, w(beta)?, w(mean)?, w(var)?);
    let eps = pattern::float_attr(node, "epsilon")?;
    let name = m.g.value(y).name.clone();
    let mut r = Recipe::at(n);
    let vec_ty = TensorType::fixed(dt, &[c]);
    let (s, t) = fold_batch_norm::bn_scale_shift(
        &mut r,
        &vec_ty,
        [gamma, beta, mean, var],
        eps,
        &format!("{name}."),
    );
    let ch_ty = TensorType::fixed(dt, &[c, 1, 1]);
    let s3 =
        fold_batch_norm::reshaped_weight(&mut r, s, &[c, 1, 1], dt, &format!("{name}.scale_c11"));
    let t3 =
        fold_batch_norm::reshaped_weight(&mut r, t, &[c, 1, 1], dt, &format!("{name}.shift_c11"));
    let sv = r.push(NewNode::constant(
        &format!("{name}.scale"),
        s3,
        ch_ty.clone(),
    ));
    let tv = r.push(NewNode::constant(&format!("{name}.shift"), t3, ch_ty));
    let scaled = r.push(NewNode::op(
        OpKind::Mul,
        vec![Val::Old(*x), sv],
        Attrs::new(),
        &format!("{name}_scaled"),
        yt.clone(),
    ));
    let shifted = r.push(NewNode::op(
        OpKind::Add,
        vec![scaled, tv],
        Attrs::new(),
        &name,
        yt.clone(),
    ));
    r.replace.push((y, shifted));
    Some(r)
}

#[cfg(test)]
#[path = "assign_layout_tests.rs"]
mod tests;
