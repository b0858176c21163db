//! `conv-transpose-to-conv`: a 2-D transposed convolution with constant
//! weights becomes convolutions, so it runs in the convolution kernels
//! (packed weights, register-blocked tiles, fused epilogues, threads)
//! instead of the transposed convolution's gather loop nest.
//!
//! `y[o] = sum_{i, k : o + p = i * s + k * d} x[i] w[k]` per spatial dim
//! (begin padding `p` through [`kiln_ir::ops::Window::transposed_begin_pad`]:
//! `pads`, `output_padding`, `output_shape` and `auto_pad` included). The
//! weight `[C, M / g, kh, kw]` has its channel axes swapped within each
//! group (`[M, C / g, kh, kw]`, a derived weight, `kiln_ir::Derivation`),
//! then:
//!
//! - **Sub-pixel** (dilation 1, the default for strides above 1): output
//!   `o = s * q + a` of residue `a` takes only the taps `k = f + s * t`
//!   with `f = (a + p) mod s`, at input `q + c - t` (`c = (a + p) div s`).
//!   So each residue pair `(a_h, a_w)` is a stride-1 convolution of `x`
//!   itself with those taps, reversed (a derived slice with step `-s` of the
//!   weight zero-padded to a multiple of `s` taps), padded `T - 1 - c` at
//!   the beginning, giving `ceil(O / s)` outputs per dim; the `s_h * s_w`
//!   results are concatenated along the channels, interleaved by reshape,
//!   transpose and reshape, and cropped to `O`. The products are the
//!   transposed convolution's own (none with an inserted zero).
//!   - **Col2im** (outputs narrower than a panel of the target's packed
//!     weights, `TargetFacts::gemm_nr`; one group; every residue pair with
//!     a tap of the kernel): instead of `s_h * s_w` convolutions of mostly
//!     empty panels, one 1x1 convolution of `x` by every tap's `[M, C]`
//!     matrix (`kh * kw * M` output channels, tap-major: full panels) holds
//!     all the products; the result is padded once by the largest shift,
//!     and each residue pair is the sum (plus the bias) of its taps' slices
//!     of it, each shifted by its offset `t - (T - 1 - c)`. The same
//!     products as the transposed convolution (ONNX Runtime's GEMM + col2im,
//!     with the col2im as sums per residue pair). With `col2im` off, pairs
//!     whose channels all fit one panel share one convolution over a
//!     common window instead, each pair's taps placed in it with zeros.
//! - **Zero insertion** (dilation above 1, or `sub_pixel` off): the
//!   stride-1 convolution with dilation `d` of the input with `s - 1` zeros
//!   inserted after every element (`nn.reshape` to `[N, C, H, 1, W, 1]`,
//!   `nn.pad` by `s - 1` after the unit dims, `nn.reshape` back), padded by
//!   `d * (K - 1) - p` at the beginning, with the taps reversed; at stride
//!   `s` it also multiplies the `s^2 - 1` inserted zeros of every value.
//!
//! A negative padding crops the input (`nn.pad`). Each convolution's own
//! shape rule must give the expected type, else nothing is rewritten.
//! Strides above `max_stride` stay as they are. Only f32 `[N, C, H, W]`
//! operands of static shape with a constant weight; the bias is each
//! convolution's. Preconditions: a verified graph. Graph outputs keep
//! their names and types.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep_pass, Direction, NewNode, Recipe, Val, WRef};
use kiln_ir::ops::{InferCtx, Window};
use kiln_ir::{Attr, Attrs, DType, Graph, OpKind, TensorType, ValueId, WeightId};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "conv-transpose-to-conv",
    summary: "Rewrites 2-D ConvTranspose with constant weights as Convs over derived weights: one per output residue (sub-pixel), one 1x1 Conv and shifted sums for narrow outputs (col2im), or one of the zero-inserted input when dilated",
    create: || Box::new(ConvTransposeToConv::default()),
};

/// Options of `conv-transpose-to-conv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The largest stride rewritten (the convolution multiplies `stride^2`
    /// times as many values, zeros included, and its input is as large).
    pub max_stride: u64,
    /// Strided ones with dilation 1 as `stride^2` convolutions of the input
    /// itself, one per output residue (else zeros are inserted).
    pub sub_pixel: bool,
    /// Sub-pixel ones with fewer output channels than a panel of the
    /// target's packed weights as one 1x1 convolution giving every tap's
    /// products (`kh * kw * M` channels: full panels) and, per residue
    /// pair, the sum of its taps' shifted slices (col2im); else as one
    /// convolution over a common window when the pairs' channels fit a
    /// panel.
    pub col2im: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_stride: 8,
            sub_pixel: true,
            col2im: true,
        }
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
    fn run(&self, g: &mut Graph, opts: &PassOptions) -> Result<PassStats, PassError> {
        Ok(sweep_pass(g, Direction::Forward, |m, n| {
            plan(m, n, &self.options, opts.target.gemm_nr)
        }))
    }
}

/// `op(x, ints)` of an f32 value with result shape `dims`, `ints` an i64
/// constant named `<name>_<what>` (a reshape's shape, a pad's pads).
fn with_ints(
    r: &mut Recipe,
    op: OpKind,
    x: Val,
    (what, ints): (&str, &[i64]),
    dims: &[u64],
    name: &str,
) -> Val {
    let c = r.i64_const(ints, &format!("{name}_{what}"));
    r.push(NewNode::op(
        op,
        vec![x, c],
        Attrs::new(),
        name,
        TensorType::fixed(DType::F32, dims),
    ))
}

/// `nn.reshape(x, dims)` of an f32 value.
fn reshape(r: &mut Recipe, x: Val, dims: &[u64], name: &str) -> Val {
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    with_ints(r, OpKind::Reshape, x, ("shape", &shape), dims, name)
}

/// `nn.pad(x, pads)` with zeros, of result shape `dims`.
fn pad(r: &mut Recipe, x: Val, pads: &[i64], dims: &[u64], name: &str) -> Val {
    with_ints(r, OpKind::Pad, x, ("pads", pads), dims, name)
}

/// The recipe for the transposed convolution at node `n`, if it applies;
/// `nr` is the target's panel width of packed convolution weights (0:
/// unknown).
pub(crate) fn plan(m: &Matcher<'_>, n: usize, opts: &Options, nr: u64) -> Option<Recipe> {
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
    let win = Window::read(&InferCtx::of_node(node, &inputs), 2, Some(ws[2..].to_vec())).ok()?;
    // Extents and dilations past 2^31 (an untrusted model's) are left alone:
    // the arithmetic below stays far from overflowing.
    let big = |v: &u64| *v > i32::MAX as u64;
    if win.strides.iter().any(|&s| s > opts.max_stride)
        || xs
            .iter()
            .chain(&ws)
            .chain(&ys)
            .chain(&win.dilations)
            .any(big)
    {
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
    let small = |p: u64| i64::try_from(p).ok().filter(|&p| p < 1 << 40);
    let pb = [0, 1]
        .map(|i| win.transposed_begin_pad(i, xs[2 + i], out_pad[i] as u64, ys[2 + i], requested));
    let geo = Geo {
        x: [xs[0], xs[1], xs[2], xs[3]],
        y: [ys[0], ys[1], ys[2], ys[3]],
        k: [ws[2], ws[3]],
        s: [win.strides[0], win.strides[1]],
        d: [win.dilations[0], win.dilations[1]],
        pb: [small(pb[0])?, small(pb[1])?],
        g,
        bias,
        bias_w: bias.and_then(|b| m.g.constant_weight(m.defs(), b)),
        nr,
        col2im: opts.col2im,
        name: m.g.value(*y).name.clone(),
    };
    let mut r = Recipe::at(n);
    let w = channel_swapped(&mut r, wid, &geo, cin, mg);
    let out = if opts.sub_pixel && geo.d == [1, 1] && geo.s != [1, 1] {
        sub_pixel(&mut r, m.g, Val::Old(x), w, &geo)?
    } else {
        zero_inserted(&mut r, m.g, Val::Old(x), w, &geo)?
    };
    r.replace.push((*y, out));
    Some(r)
}

/// The geometry of one transposed convolution (2-D, NCHW).
struct Geo {
    x: [u64; 4],
    y: [u64; 4],
    k: [u64; 2],
    s: [u64; 2],
    d: [u64; 2],
    /// Begin padding per spatial dim.
    pb: [i64; 2],
    g: u64,
    bias: Option<ValueId>,
    /// The bias's weight when it is a constant.
    bias_w: Option<WeightId>,
    /// The target's panel width of packed convolution weights (0: unknown).
    nr: u64,
    /// `Options::col2im`.
    col2im: bool,
    /// The result's name (new values are named after it).
    name: String,
}

/// The weight `[C, M / g, kh, kw]` as a convolution's `[M, C / g, kh, kw]`
/// (channel axes swapped within each group; taps not flipped), derived.
fn channel_swapped(r: &mut Recipe, wid: WeightId, geo: &Geo, cin: u64, mg: u64) -> WRef {
    let (g, [kh, kw], name) = (geo.g, geo.k, &geo.name);
    let cg = cin / g;
    let grouped = [g, cg, mg, kh, kw];
    let w1 = r.derived_reshape(
        WRef::Old(wid),
        &grouped,
        DType::F32,
        &format!("{name}.w_groups"),
    );
    let mut perm = Attrs::new();
    perm.insert("perm".into(), Attr::Ints(vec![0, 2, 1, 3, 4]));
    let w2 = r.derived(
        &format!("{name}.w_swapped"),
        TensorType::fixed(DType::F32, &[g, mg, cg, kh, kw]),
        OpKind::Transpose,
        perm,
        vec![w1],
    );
    r.derived_reshape(
        w2,
        &[mg * g, cg, kh, kw],
        DType::F32,
        &format!("{name}.w_conv"),
    )
}

/// `derived<nn.slice>(w, starts, ends, axes [2, 3], steps)` of type `dims`.
fn derived_taps(
    r: &mut Recipe,
    w: WRef,
    starts: [i64; 2],
    ends: [i64; 2],
    steps: [i64; 2],
    dims: &[u64],
    name: &str,
) -> WRef {
    let s = r.i64_weight(&starts, &format!("{name}_starts"));
    let e = r.i64_weight(&ends, &format!("{name}_ends"));
    let a = r.i64_weight(&[2, 3], &format!("{name}_axes"));
    let st = r.i64_weight(&steps, &format!("{name}_steps"));
    r.derived(
        name,
        TensorType::fixed(DType::F32, dims),
        OpKind::Slice,
        Attrs::new(),
        vec![w, s, e, a, st],
    )
}

/// `nn.conv(x, w, bias)` with stride 1 and padding `pads` (begin h, begin w,
/// end h, end w); a negative padding crops `x` first (`nn.pad`). `None`
/// unless the convolution's shape rule gives `out`.
#[allow(clippy::too_many_arguments)]
fn conv(
    r: &mut Recipe,
    graph: &Graph,
    (x, w, bias): (Val, WRef, Option<Val>),
    wdims: [u64; 4],
    pads: [i64; 4],
    geo: &Geo,
    out: [u64; 4],
    name: &str,
) -> Option<Val> {
    let xd = r.ty(graph, x).static_shape()?;
    let mut xin = x;
    let crop = pads.map(|p| p.min(0));
    if crop.iter().any(|&c| c < 0) {
        let dims: Vec<u64> = (0..2)
            .map(|i| u64::try_from(xd[2 + i] as i64 + crop[i] + crop[i + 2]).ok())
            .collect::<Option<_>>()?;
        if dims.contains(&0) {
            return None;
        }
        let p = [0, 0, crop[0], crop[1], 0, 0, crop[2], crop[3]];
        xin = pad(
            r,
            x,
            &p,
            &[xd[0], xd[1], dims[0], dims[1]],
            &format!("{name}.cropped"),
        );
    }
    let wc = r.push(NewNode::constant(
        &format!("{name}.weight"),
        w,
        TensorType::fixed(DType::F32, &wdims),
    ));
    let mut attrs = Attrs::new();
    attrs.insert(
        "kernel_shape".into(),
        Attr::Ints(vec![wdims[2] as i64, wdims[3] as i64]),
    );
    attrs.insert("strides".into(), Attr::Ints(vec![1, 1]));
    attrs.insert(
        "dilations".into(),
        Attr::Ints(vec![geo.d[0] as i64, geo.d[1] as i64]),
    );
    attrs.insert("pads".into(), Attr::Ints(pads.map(|p| p.max(0)).to_vec()));
    attrs.insert("group".into(), Attr::Int(geo.g as i64));
    let mut ins = vec![xin, wc];
    ins.extend(bias);
    let in_tys: Vec<TensorType> = ins.iter().map(|&v| r.ty(graph, v).clone()).collect();
    let refs: Vec<Option<&TensorType>> = in_tys.iter().map(Some).collect();
    let ty = TensorType::fixed(DType::F32, &out);
    if pattern::infer(OpKind::Conv, &attrs, &refs, 1)?.first()? != &ty {
        return None;
    }
    Some(r.push(NewNode::op(OpKind::Conv, ins, attrs, name, ty)))
}

/// The stride-1 convolution with dilation `d` of the input with `s - 1`
/// zeros inserted after every element, padded `d * (K - 1) - pb` at the
/// beginning, with the taps of `w` (channel-swapped) reversed.
fn zero_inserted(r: &mut Recipe, graph: &Graph, x: Val, w: WRef, geo: &Geo) -> Option<Val> {
    let (xs, s, d, name) = (geo.x, geo.s, geo.d, &geo.name);
    let mut xin = x;
    let mut len = [xs[2], xs[3]];
    if s != [1, 1] {
        let (h, wd) = (xs[2], xs[3]);
        let a = reshape(
            r,
            xin,
            &[xs[0], xs[1], h, 1, wd, 1],
            &format!("{name}.cells"),
        );
        let spread = [xs[0], xs[1], h, s[0], wd, s[1]];
        let mut pads = [0i64; 12];
        pads[9] = s[0] as i64 - 1;
        pads[11] = s[1] as i64 - 1;
        let b = pad(r, a, &pads, &spread, &format!("{name}.spread"));
        len = [h * s[0], wd * s[1]];
        xin = reshape(
            r,
            b,
            &[xs[0], xs[1], len[0], len[1]],
            &format!("{name}.zero_inserted"),
        );
    }
    let mut pads = [0i64; 4];
    for i in 0..2 {
        let reach = (d[i] * (geo.k[i] - 1)) as i64;
        let begin = reach - geo.pb[i];
        pads[i] = begin;
        pads[i + 2] = geo.y[2 + i] as i64 + reach - len[i] as i64 - begin;
    }
    let [kh, kw] = geo.k;
    let wdims = [geo.y[1], geo.x[1] / geo.g, kh, kw];
    let k = [kh as i64, kw as i64];
    let flipped = derived_taps(
        r,
        w,
        [-1, -1],
        k.map(|k| -k - 1),
        [-1, -1],
        &wdims,
        &format!("{name}.w_flipped"),
    );
    let bias = geo.bias.map(Val::Old);
    conv(
        r,
        graph,
        (xin, flipped, bias),
        wdims,
        pads,
        geo,
        geo.y,
        name,
    )
}

/// One residue pair of the sub-pixel form.
struct Phase {
    /// Its values' names' stem.
    name: String,
    /// Its taps, reversed: a derived slice of the kernel padded to a
    /// multiple of the stride.
    w: WRef,
    /// Taps per spatial dim.
    taps: [u64; 2],
    /// Its convolution's begin padding `T - 1 - c`.
    begin: [i64; 2],
    /// The padded kernel's index of its first tap, `f + s * (T - 1)`; tap
    /// `t` is the kernel's `first - s * t`, a zero of the padding when past
    /// the kernel.
    first: [i64; 2],
}

/// The sub-pixel form (dilation 1): output `o = s * q + p` of each residue
/// `p` takes only the taps `k = f + s * t` (`f = (p + pb) mod s`), at input
/// `q + c - t` (`c = (p + pb) div s`): per residue pair a stride-1
/// convolution of `x` with `ceil((K - f) / s)` taps (at least one; taps past
/// the kernel read the zeros it is padded with), padded `T - 1 - c` at the
/// beginning, giving `ceil(O / s)` outputs. The `s_h * s_w` results are
/// concatenated along the channels, interleaved by reshape, transpose and
/// reshape, and cropped to the output extent. No product with an inserted
/// zero: the same multiplications as the transposed convolution.
fn sub_pixel(r: &mut Recipe, graph: &Graph, x: Val, w: WRef, geo: &Geo) -> Option<Val> {
    let (xs, ys, s, k, name) = (geo.x, geo.y, geo.s, geo.k, &geo.name);
    let (n, m, cg) = (ys[0], ys[1], xs[1] / geo.g);
    let q = [ys[2].div_ceil(s[0]), ys[3].div_ceil(s[1])];
    let tmax = [k[0].div_ceil(s[0]), k[1].div_ceil(s[1])];
    // The kernel padded with zeros to tmax * s taps.
    let kp = [tmax[0] * s[0], tmax[1] * s[1]];
    let wpad = if kp != k {
        let pads = r.i64_weight(
            &[
                0,
                0,
                0,
                0,
                0,
                0,
                (kp[0] - k[0]) as i64,
                (kp[1] - k[1]) as i64,
            ],
            &format!("{name}.w_padded_pads"),
        );
        r.derived(
            &format!("{name}.w_padded"),
            TensorType::fixed(DType::F32, &[m, cg, kp[0], kp[1]]),
            OpKind::Pad,
            Attrs::new(),
            vec![w, pads],
        )
    } else {
        w
    };
    // Per residue pair: its taps, their slice of the padded kernel, and its
    // own begin padding T - 1 - c.
    let mut phases = Vec::new();
    for ph in 0..s[0] {
        for pw in 0..s[1] {
            let mut taps = [0u64; 2];
            let mut starts = [0i64; 2];
            let mut begin = [0i64; 2];
            for (i, p) in [ph, pw].into_iter().enumerate() {
                let at = p as i64 + geo.pb[i];
                let (f, c) = (at.rem_euclid(s[i] as i64), at.div_euclid(s[i] as i64));
                let t = ((k[i] as i64 - f).max(1) as u64).div_ceil(s[i]) as i64;
                taps[i] = t as u64;
                starts[i] = f + s[i] as i64 * (t - 1);
                begin[i] = t - 1 - c;
            }
            let pname = format!("{name}.phase{ph}{pw}");
            let wdims = [m, cg, taps[0], taps[1]];
            let ends = kp.map(|k| -(k as i64) - 1);
            let steps = [-(s[0] as i64), -(s[1] as i64)];
            let wp = derived_taps(r, wpad, starts, ends, steps, &wdims, &format!("{pname}.w"));
            phases.push(Phase {
                name: pname,
                w: wp,
                taps,
                begin,
                first: starts,
            });
        }
    }
    let ss = s[0] * s[1];
    let end_pad =
        |i: usize, begin: i64, t: u64| q[i] as i64 - xs[2 + i] as i64 - begin + t as i64 - 1;
    let bias = geo.bias.map(Val::Old);
    // Every residue pair takes at least one of the kernel's own taps.
    let real =
        |p: &Phase| (0..2).all(|i| p.first[i] - ((s[i] * (p.taps[i] - 1)) as i64) < k[i] as i64);
    let all = if geo.col2im && geo.g == 1 && m < geo.nr && phases.iter().all(real) {
        col2im(r, graph, (x, w), geo, &phases, q)?
    } else if geo.g == 1 && ss * m <= geo.nr && (geo.bias.is_none() || geo.bias_w.is_some()) {
        // Narrow outputs (all residue pairs within one panel of the
        // target's packed weights, where separate convolutions would each
        // compute a mostly empty panel): one convolution over a common
        // window, each pair's taps placed in it with zeros around them.
        let pl = [0, 1].map(|i| phases.iter().map(|p| p.begin[i]).max().unwrap_or(0));
        let tu = [0, 1].map(|i| {
            phases
                .iter()
                .map(|p| (pl[i] - p.begin[i]) as u64 + p.taps[i])
                .max()
                .unwrap_or(1)
        });
        let mut ws = Vec::new();
        for Phase {
            name: pname,
            w: wp,
            taps,
            begin,
            ..
        } in &phases
        {
            let off = [0, 1].map(|i| pl[i] - begin[i]);
            let after = [0, 1].map(|i| tu[i] as i64 - off[i] - taps[i] as i64);
            let pads = r.i64_weight(
                &[0, 0, off[0], off[1], 0, 0, after[0], after[1]],
                &format!("{pname}.w_window_pads"),
            );
            ws.push(r.derived(
                &format!("{pname}.w_window"),
                TensorType::fixed(DType::F32, &[m, cg, tu[0], tu[1]]),
                OpKind::Pad,
                Attrs::new(),
                vec![*wp, pads],
            ));
        }
        let mut axis0 = Attrs::new();
        axis0.insert("axis".into(), Attr::Int(0));
        let wdims = [ss * m, cg, tu[0], tu[1]];
        let wall = r.derived(
            &format!("{name}.w_phases"),
            TensorType::fixed(DType::F32, &wdims),
            OpKind::Concat,
            axis0.clone(),
            ws,
        );
        let bias = match geo.bias_w {
            Some(b) => {
                let bw = r.derived(
                    &format!("{name}.bias_phases"),
                    TensorType::fixed(DType::F32, &[ss * m]),
                    OpKind::Concat,
                    axis0,
                    vec![WRef::Old(b); ss as usize],
                );
                Some(r.push(NewNode::constant(
                    &format!("{name}.bias_phases"),
                    bw,
                    TensorType::fixed(DType::F32, &[ss * m]),
                )))
            }
            None => None,
        };
        let pads = [
            pl[0],
            pl[1],
            end_pad(0, pl[0], tu[0]),
            end_pad(1, pl[1], tu[1]),
        ];
        let out = [n, ss * m, q[0], q[1]];
        conv(
            r,
            graph,
            (x, wall, bias),
            wdims,
            pads,
            geo,
            out,
            &format!("{name}.phases"),
        )?
    } else {
        let mut convs = Vec::new();
        for Phase {
            name: pname,
            w: wp,
            taps,
            begin,
            ..
        } in phases
        {
            let wdims = [m, cg, taps[0], taps[1]];
            let pads = [
                begin[0],
                begin[1],
                end_pad(0, begin[0], taps[0]),
                end_pad(1, begin[1], taps[1]),
            ];
            let out = [n, m, q[0], q[1]];
            convs.push(conv(
                r,
                graph,
                (x, wp, bias),
                wdims,
                pads,
                geo,
                out,
                &pname,
            )?);
        }
        let mut cat = Attrs::new();
        cat.insert("axis".into(), Attr::Int(1));
        r.push(NewNode::op(
            OpKind::Concat,
            convs,
            cat,
            &format!("{name}.phases"),
            TensorType::fixed(DType::F32, &[n, ss * m, q[0], q[1]]),
        ))
    };
    let split = reshape(
        r,
        all,
        &[n, s[0], s[1], m, q[0], q[1]],
        &format!("{name}.phase_grid"),
    );
    let mut perm = Attrs::new();
    perm.insert("perm".into(), Attr::Ints(vec![0, 3, 4, 1, 5, 2]));
    let inter = r.push(NewNode::op(
        OpKind::Transpose,
        vec![split],
        perm,
        &format!("{name}.interleaved"),
        TensorType::fixed(DType::F32, &[n, m, q[0], s[0], q[1], s[1]]),
    ));
    let full = [q[0] * s[0], q[1] * s[1]];
    if full == [ys[2], ys[3]] {
        return Some(reshape(r, inter, &ys, name));
    }
    let img = reshape(r, inter, &[n, m, full[0], full[1]], &format!("{name}.full"));
    let crop = [
        0,
        0,
        0,
        0,
        0,
        0,
        ys[2] as i64 - full[0] as i64,
        ys[3] as i64 - full[1] as i64,
    ];
    Some(pad(r, img, &crop, &ys, name))
}

/// The col2im form of the sub-pixel one, for outputs narrower than a
/// panel (one group): `G`, the 1x1 convolution of `x` by every tap's
/// `[M, C]` matrix (`kh * kw * M` channels, tap-major: full panels), holds
/// every product of the transposed convolution; each residue pair sums,
/// over its taps `t` within the kernel (index `first - s * t`), the slice
/// of `G` with that tap's channels shifted by `t - begin` (`G` is padded
/// once by the largest shifts, so what falls outside reads zeros), then
/// adds the bias. Returns the pairs' sums concatenated along the channels,
/// `[N, s_h * s_w * M, Q_h, Q_w]`.
fn col2im(
    r: &mut Recipe,
    graph: &Graph,
    (x, w): (Val, WRef),
    geo: &Geo,
    phases: &[Phase],
    q: [u64; 2],
) -> Option<Val> {
    let (xs, k, s, name) = (geo.x, geo.k, geo.s, &geo.name);
    let (n, m, c) = (xs[0], geo.y[1], xs[1]);
    let nk = k[0] * k[1];
    // [M, C, kh, kw] -> [kh, kw, M, C] -> [kh * kw * M, C, 1, 1].
    let mut perm = Attrs::new();
    perm.insert("perm".into(), Attr::Ints(vec![2, 3, 0, 1]));
    let wt = r.derived(
        &format!("{name}.w_taps_major"),
        TensorType::fixed(DType::F32, &[k[0], k[1], m, c]),
        OpKind::Transpose,
        perm,
        vec![w],
    );
    let wdims = [nk * m, c, 1, 1];
    let wall = r.derived_reshape(wt, &wdims, DType::F32, &format!("{name}.w_taps"));
    let products = conv(
        r,
        graph,
        (x, wall, None),
        wdims,
        [0; 4],
        geo,
        [n, nk * m, xs[2], xs[3]],
        &format!("{name}.taps"),
    )?;
    let end =
        |p: &Phase, i: usize| q[i] as i64 - xs[2 + i] as i64 - p.begin[i] + p.taps[i] as i64 - 1;
    let most = |f: &dyn Fn(&Phase) -> i64| phases.iter().map(f).max().unwrap_or(0).max(0);
    let pb = [0, 1].map(|i| most(&|p| p.begin[i]));
    let pe = [0, 1].map(|i| most(&|p| end(p, i)));
    let gp = if pb == [0, 0] && pe == [0, 0] {
        products
    } else {
        let dims = [
            n,
            nk * m,
            (xs[2] as i64 + pb[0] + pe[0]) as u64,
            (xs[3] as i64 + pb[1] + pe[1]) as u64,
        ];
        pad(
            r,
            products,
            &[0, 0, pb[0], pb[1], 0, 0, pe[0], pe[1]],
            &dims,
            &format!("{name}.taps_padded"),
        )
    };
    let bias = geo
        .bias
        .map(|b| reshape(r, Val::Old(b), &[m, 1, 1], &format!("{name}.bias_channels")));
    let dims = [n, m, q[0], q[1]];
    let axes = r.i64_const(&[1, 2, 3], &format!("{name}.tap_axes"));
    let mut sums = Vec::new();
    for p in phases {
        let mut terms = Vec::new();
        for th in 0..p.taps[0] {
            for tw in 0..p.taps[1] {
                let kh = p.first[0] - (s[0] * th) as i64;
                let kw = p.first[1] - (s[1] * tw) as i64;
                if kh >= k[0] as i64 || kw >= k[1] as i64 {
                    continue;
                }
                let ch = (kh * k[1] as i64 + kw) * m as i64;
                let h0 = pb[0] + th as i64 - p.begin[0];
                let w0 = pb[1] + tw as i64 - p.begin[1];
                let starts = r.i64_const(&[ch, h0, w0], &format!("{}.tap{kh}_{kw}_starts", p.name));
                let ends = r.i64_const(
                    &[ch + m as i64, h0 + q[0] as i64, w0 + q[1] as i64],
                    &format!("{}.tap{kh}_{kw}_ends", p.name),
                );
                terms.push(r.push(NewNode::op(
                    OpKind::Slice,
                    vec![gp, starts, ends, axes],
                    Attrs::new(),
                    &format!("{}.tap{kh}_{kw}", p.name),
                    TensorType::fixed(DType::F32, &dims),
                )));
            }
        }
        terms.extend(bias);
        let mut acc = *terms.first()?;
        for (j, &t) in terms.iter().enumerate().skip(1) {
            let last = j + 1 == terms.len();
            acc = r.push(NewNode::op(
                OpKind::Add,
                vec![acc, t],
                Attrs::new(),
                &if last {
                    p.name.clone()
                } else {
                    format!("{}.sum{j}", p.name)
                },
                TensorType::fixed(DType::F32, &dims),
            ));
        }
        sums.push(acc);
    }
    let mut cat = Attrs::new();
    cat.insert("axis".into(), Attr::Int(1));
    Some(r.push(NewNode::op(
        OpKind::Concat,
        sums,
        cat,
        &format!("{name}.phases"),
        TensorType::fixed(DType::F32, &[n, phases.len() as u64 * m, q[0], q[1]]),
    )))
}

#[cfg(test)]
#[path = "conv_transpose_to_conv_tests.rs"]
mod tests;
