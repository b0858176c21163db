//! `conv-transpose-to-conv`: a 2-D transposed convolution with constant
//! weights becomes a convolution, so it runs in the convolution kernels
//! (packed weights, register-blocked tiles, fused epilogues, threads)
//! instead of the transposed convolution's gather loop nest.
//!
//! `y[o] = sum_{i, k : o = i * s - p + k * d} x[i] w[k]` is, per spatial
//! dim, the stride-1 convolution with dilation `d` of the input with
//! `s - 1` zeros inserted after every element (`u[i * s] = x[i]`), padded
//! by `d * (K - 1) - p` at the beginning, with the kernel flipped
//! (`w'[k] = w[K - 1 - k]`) and its channel axes swapped per group
//! (`[C, M / g, kh, kw]` to `[M, C / g, kh, kw]`). The end padding is what
//! makes the output extent the transposed convolution's (`output_padding`,
//! `output_shape` and `auto_pad` included, through
//! [`kiln_ir::ops::Window::transposed_begin_pad`]); a negative padding
//! crops the input instead.
//!
//! The zeros are inserted by `nn.reshape` to `[N, C, H, 1, W, 1]`,
//! `nn.pad` by `s - 1` after the unit dims and `nn.reshape` to
//! `[N, C, H * s, W * s]` (strides of 1 insert nothing). The convolution
//! then multiplies the inserted zeros too (`s^2` times the transposed
//! convolution's products at stride `s`, as the gather loop does, but at
//! kernel speed); strides above `max_stride` stay as they are. The new
//! weight is derived (`kiln_ir::Derivation`): reshape, transpose, reshape
//! and a reversing slice of the original, computed when its bytes are
//! needed.
//!
//! Only f32 `[N, C, H, W]` operands of static shape with a constant weight;
//! the bias is the convolution's. Preconditions: a verified graph.
//! Graph outputs keep their names and types.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep_pass, Direction, NewData, NewNode, NewWeight, Recipe, Val, WRef};
use kiln_ir::ops::{InferCtx, Window};
use kiln_ir::{Attr, Attrs, Blob, DType, Graph, OpKind, TensorType};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "conv-transpose-to-conv",
    summary: "Rewrites 2-D ConvTranspose with constant weights as a Conv of the zero-inserted input with flipped, channel-swapped derived weights",
    create: || Box::new(ConvTransposeToConv::default()),
};

/// Options of `conv-transpose-to-conv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The largest stride rewritten (the convolution multiplies `stride^2`
    /// times as many values, zeros included, and its input is as large).
    pub max_stride: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options { max_stride: 8 }
    }
}

/// The rewriting pass.
#[derive(Clone, Debug, Default)]
pub struct ConvTransposeToConv {
    /// Options.
    pub options: Options,
}

impl Pass for ConvTransposeToConv {
    pass_info!();
    fn run(&self, g: &mut Graph, _opts: &PassOptions) -> Result<PassStats, PassError> {
        Ok(sweep_pass(g, Direction::Forward, |m, n| {
            plan(m, n, &self.options)
        }))
    }
}

/// A new i64 weight holding `v`.
fn ints_weight(r: &mut Recipe, v: &[i64], name: &str) -> WRef {
    r.weight(NewWeight {
        name: name.to_string(),
        ty: TensorType::fixed(DType::I64, &[v.len() as u64]),
        data: NewData::Bytes(
            Blob::from_vec(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            None,
        ),
    })
}

/// A new i64 constant node holding `v`.
fn ints_const(r: &mut Recipe, v: &[i64], name: &str) -> Val {
    let w = ints_weight(r, v, name);
    r.push(NewNode::constant(
        name,
        w,
        TensorType::fixed(DType::I64, &[v.len() as u64]),
    ))
}

/// `nn.reshape(x, dims)` of an f32 value.
fn reshape(r: &mut Recipe, x: Val, dims: &[u64], name: &str) -> Val {
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let s = ints_const(r, &shape, &format!("{name}_shape"));
    r.push(NewNode::op(
        OpKind::Reshape,
        vec![x, s],
        Attrs::new(),
        name,
        TensorType::fixed(DType::F32, dims),
    ))
}

/// `derived<nn.reshape>(w, dims)` of an f32 weight.
fn derived_reshape(r: &mut Recipe, w: WRef, dims: &[u64], name: &str) -> WRef {
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let s = ints_weight(r, &shape, &format!("{name}_shape"));
    r.derived(
        name,
        TensorType::fixed(DType::F32, dims),
        OpKind::Reshape,
        Attrs::new(),
        vec![w, s],
    )
}

/// `nn.pad(x, pads)` with zeros, of result shape `dims`.
fn pad(r: &mut Recipe, x: Val, pads: &[i64], dims: &[u64], name: &str) -> Val {
    let p = ints_const(r, pads, &format!("{name}_pads"));
    r.push(NewNode::op(
        OpKind::Pad,
        vec![x, p],
        Attrs::new(),
        name,
        TensorType::fixed(DType::F32, dims),
    ))
}

/// The recipe for the transposed convolution at node `n`, if it applies.
pub(crate) fn plan(m: &Matcher<'_>, n: usize, opts: &Options) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    if node.op != OpKind::ConvTranspose {
        return None;
    }
    let [y] = node.outputs.as_slice() else {
        return None;
    };
    let x = node.inputs.first().copied().flatten()?;
    let wv = node.inputs.get(1).copied().flatten()?;
    let bias = node.inputs.get(2).copied().flatten();
    let (xt, wt, yt) = (m.ty(x), m.ty(wv), m.ty(*y));
    if xt.dtype != DType::F32 || xt.rank() != 4 || wt.rank() != 4 || yt.rank() != 4 {
        return None;
    }
    let (xs, ws, ys) = (xt.static_shape()?, wt.static_shape()?, yt.static_shape()?);
    let wid = m.g.constant_weight(m.defs(), wv)?;
    let g = u64::try_from(pattern::int_attr(node, "group")?).ok()?;
    let (cin, mg) = (ws[0], ws[1]);
    if g == 0 || xs[1] != cin || cin % g != 0 || ys[1] != mg * g || xs.contains(&0) {
        return None;
    }
    let inputs = [Some(xt), Some(wt)];
    let ctx = InferCtx {
        def: node.op.def(),
        inputs: &inputs,
        attrs: &node.attrs,
        consts: &[None, None],
        num_outputs: 1,
        weight_ty: None,
        body: None,
    };
    let win = Window::read(&ctx, 2, Some(ws[2..].to_vec())).ok()?;
    if win.strides.iter().any(|&s| s > opts.max_stride) {
        return None;
    }
    let out_pad = pattern::attr_or_default(node, "output_padding")
        .and_then(|a| match a {
            Attr::Ints(v) => Some(v),
            _ => None,
        })
        .unwrap_or(vec![0, 0]);
    if out_pad.len() != 2 || out_pad.iter().any(|&p| p < 0) {
        return None;
    }
    let requested = node.attrs.contains_key("output_shape");
    let name = m.g.value(*y).name.clone();
    let mut r = Recipe::at(n);

    // The input with s - 1 zeros after every element of each spatial dim
    // (extent n * s), then cropped where the begin or end padding is
    // negative; the rest of the padding is the convolution's.
    let mut xin = Val::Old(x);
    let (s, d) = (&win.strides, &win.dilations);
    let mut len = [xs[2], xs[3]];
    if s.iter().any(|&s| s > 1) {
        let (h, w) = (xs[2], xs[3]);
        let unit = [xs[0], xs[1], h, 1, w, 1];
        let a = reshape(&mut r, xin, &unit, &format!("{name}.cells"));
        let spread = [xs[0], xs[1], h, s[0], w, s[1]];
        let pads = [
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            s[0] as i64 - 1,
            0,
            s[1] as i64 - 1,
        ];
        let b = pad(&mut r, a, &pads, &spread, &format!("{name}.spread"));
        len = [h * s[0], w * s[1]];
        xin = reshape(
            &mut r,
            b,
            &[xs[0], xs[1], len[0], len[1]],
            &format!("{name}.zero_inserted"),
        );
    }
    let mut conv_pads = [0i64; 4];
    let mut crop = [0i64; 4];
    for i in 0..2 {
        let reach = (d[i] * (win.kernel[i] - 1)) as i64;
        let pb = win.transposed_begin_pad(i, xs[2 + i], out_pad[i] as u64, ys[2 + i], requested);
        let begin = reach - i64::try_from(pb).ok()?;
        let end = ys[2 + i] as i64 + reach - len[i] as i64 - begin;
        for (j, v) in [(i, begin), (i + 2, end)] {
            if v >= 0 {
                conv_pads[j] = v;
            } else {
                crop[j] = v;
            }
        }
    }
    if crop.iter().any(|&c| c < 0) {
        let cropped: Vec<u64> = (0..2)
            .map(|i| (len[i] as i64 + crop[i] + crop[i + 2]).max(0) as u64)
            .collect();
        if cropped.contains(&0) {
            return None;
        }
        let pads = [0, 0, crop[0], crop[1], 0, 0, crop[2], crop[3]];
        xin = pad(
            &mut r,
            xin,
            &pads,
            &[xs[0], xs[1], cropped[0], cropped[1]],
            &format!("{name}.cropped"),
        );
    }

    // w'[o, c, kh - 1 - a, kw - 1 - b] = w[c, o, a, b] within each group.
    let (kh, kw) = (ws[2], ws[3]);
    let (cg, cout) = (cin / g, mg * g);
    let grouped = [g, cg, mg, kh, kw];
    let w_old = WRef::Old(wid);
    let w1 = derived_reshape(&mut r, w_old, &grouped, &format!("{name}.w_groups"));
    let mut perm = Attrs::new();
    perm.insert("perm".into(), Attr::Ints(vec![0, 2, 1, 3, 4]));
    let swapped = [g, mg, cg, kh, kw];
    let w2 = r.derived(
        &format!("{name}.w_swapped"),
        TensorType::fixed(DType::F32, &swapped),
        OpKind::Transpose,
        perm,
        vec![w1],
    );
    let conv_w = [cout, cg, kh, kw];
    let w3 = derived_reshape(&mut r, w2, &conv_w, &format!("{name}.w_conv"));
    let starts = ints_weight(&mut r, &[-1, -1], &format!("{name}.w_flip_starts"));
    let ends = ints_weight(
        &mut r,
        &[-(kh as i64) - 1, -(kw as i64) - 1],
        &format!("{name}.w_flip_ends"),
    );
    let axes = ints_weight(&mut r, &[2, 3], &format!("{name}.w_flip_axes"));
    let steps = ints_weight(&mut r, &[-1, -1], &format!("{name}.w_flip_steps"));
    let w4 = r.derived(
        &format!("{name}.w_flipped"),
        TensorType::fixed(DType::F32, &conv_w),
        OpKind::Slice,
        Attrs::new(),
        vec![w3, starts, ends, axes, steps],
    );
    let wc = r.push(NewNode::constant(
        &format!("{name}.weight"),
        w4,
        TensorType::fixed(DType::F32, &conv_w),
    ));

    let mut attrs = Attrs::new();
    attrs.insert(
        "kernel_shape".into(),
        Attr::Ints(vec![kh as i64, kw as i64]),
    );
    attrs.insert("strides".into(), Attr::Ints(vec![1, 1]));
    attrs.insert(
        "dilations".into(),
        Attr::Ints(vec![d[0] as i64, d[1] as i64]),
    );
    attrs.insert("pads".into(), Attr::Ints(conv_pads.to_vec()));
    attrs.insert("group".into(), Attr::Int(g as i64));
    let mut ins = vec![xin, wc];
    ins.extend(bias.map(Val::Old));
    // The convolution's own shape rule must give the transposed one's
    // result type, else nothing is rewritten.
    let in_tys: Vec<TensorType> = ins.iter().map(|&v| r.ty(m.g, v).clone()).collect();
    let refs: Vec<Option<&TensorType>> = in_tys.iter().map(Some).collect();
    let out = pattern::infer(OpKind::Conv, &attrs, &refs, 1)?;
    if out.first()? != yt {
        return None;
    }
    let conv = r.push(NewNode::op(OpKind::Conv, ins, attrs, &name, yt.clone()));
    r.replace.push((*y, conv));
    Some(r)
}

#[cfg(test)]
#[path = "conv_transpose_to_conv_tests.rs"]
mod tests;
