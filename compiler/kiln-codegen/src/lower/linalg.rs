//! Contractions: `nn.matmul`, `nn.gemm`, `nn.conv`, `nn.conv_transpose`,
//! `nn.einsum`, each one
//! `linalg.generic` with reduction iterators over a zero- (or bias-)
//! initialized accumulator. Generic contractions keep batch broadcasting,
//! transposes, groups, strides and dilations in the indexing maps, so no
//! data is moved to fit a named op.

use super::ctx::{affine_map, elem, identity_map, Body, Builder, Iter, Operand, Res, Val};
use super::elementwise::convert;
use super::{attr_err, NodeIn};
use kiln_ir::ops::{parse_einsum, Window};
use kiln_ir::DType;

/// `acc + a * b` in the accumulator's dtype.
fn mac(b: &mut Body<'_>, x: &[String], dt: DType) -> Res<Vec<String>> {
    let e = elem(dt)?;
    let (mul, add) = if dt.is_float() {
        ("mulf", "addf")
    } else {
        ("muli", "addi")
    };
    let p = b.op(format!("arith.{mul} {}, {} : {e}", x[0], x[1]));
    Ok(vec![b.op(format!("arith.{add} {}, {p} : {e}", x[2]))])
}

/// The accumulator dtype of a contraction over `dt`: f32 for `f16` and
/// `bf16` (as NumPy's half matmul, and close to the interpreter's f64 sum
/// rounded once), else `dt` itself.
fn acc_dtype(dt: DType) -> DType {
    match dt {
        DType::F16 | DType::BF16 => DType::F32,
        other => other,
    }
}

/// [`mac`] of operands of dtype `dt` into an accumulator of dtype `acc`.
fn mac_wide(b: &mut Body<'_>, x: &[String], dt: DType, acc: DType) -> Res<Vec<String>> {
    if dt == acc {
        return mac(b, x, dt);
    }
    let x0 = convert(b, &x[0], dt, acc)?;
    let x1 = convert(b, &x[1], dt, acc)?;
    mac(b, &[x0, x1, x[2].clone()], acc)
}

/// `v` (of an accumulator dtype) rounded to `dt`.
fn narrow(b: &mut Builder, v: &Val, dt: DType) -> Res<Val> {
    if v.dtype == dt {
        return Ok(v.clone());
    }
    let (from, shape) = (v.dtype, v.shape.clone());
    b.map(&[v], dt, &shape, |body, a| convert(body, &a[0], from, dt))
}

fn d(i: usize) -> String {
    format!("d{i}")
}

/// `nn.matmul` with NumPy matmul semantics (rank-1 promotion, broadcast
/// batch dims).
pub(crate) fn matmul(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    let (dt, out_shape) = n.out(0)?;
    if x.dtype == DType::Bool {
        return Err("nn.matmul on bool is not supported".into());
    }
    let x2 = if x.rank() == 1 {
        b.reshape(x, &[1, x.shape[0]])?
    } else {
        x.clone()
    };
    let y2 = if y.rank() == 1 {
        b.reshape(y, &[y.shape[0], 1])?
    } else {
        y.clone()
    };
    let (xb, yb) = (&x2.shape[..x2.rank() - 2], &y2.shape[..y2.rank() - 2]);
    let nb = xb.len().max(yb.len());
    let mut batch = vec![1u64; nb];
    for s in [xb, yb] {
        for (i, &e) in s.iter().enumerate() {
            let j = nb - s.len() + i;
            batch[j] = if batch[j] == 1 { e } else { batch[j] };
        }
    }
    let m = x2.shape[x2.rank() - 2];
    let k = x2.shape[x2.rank() - 1];
    let nn = y2.shape[y2.rank() - 1];
    // Loop dims: batch..., m, k, n: the innermost loop walks `n`, parallel
    // and unit-stride in `y` and the result, so LLVM vectorizes it without
    // reassociating the float reduction.
    let (dm, dk, dn) = (nb, nb + 1, nb + 2);
    let bmap = |s: &[u64]| -> Vec<String> {
        s.iter()
            .enumerate()
            .map(|(i, &e)| {
                let j = nb - s.len() + i;
                if e == 1 && batch[j] != 1 {
                    "0".into()
                } else {
                    d(j)
                }
            })
            .collect()
    };
    let mut xm = bmap(xb);
    xm.extend([d(dm), d(dk)]);
    let mut ym = bmap(yb);
    ym.extend([d(dk), d(dn)]);
    let mut om: Vec<String> = (0..nb).map(d).collect();
    om.extend([d(dm), d(dn)]);
    let mut acc_shape = batch.clone();
    acc_shape.extend([m, nn]);
    let _ = k;
    let acc = acc_dtype(dt);
    let init = b.filled(0.0, acc, &acc_shape)?;
    let mut iters = vec![Iter::Par; nb + 1];
    iters.extend([Iter::Red, Iter::Par]);
    let r = b.generic(
        &iters,
        &[
            Operand::of(&x2, affine_map(nb + 3, &xm)),
            Operand::of(&y2, affine_map(nb + 3, &ym)),
        ],
        &[(init, affine_map(nb + 3, &om))],
        |body, a| mac_wide(body, a, dt, acc),
    )?;
    let r = narrow(b, &r[0], dt)?;
    b.reshape(&r, out_shape)
}

/// The transpose of a matrix, materialized.
fn transpose2(b: &mut Builder, y: &Val) -> Res<Val> {
    let init = b.empty(y.dtype, &[y.shape[1], y.shape[0]])?;
    let r = b.generic(
        &[Iter::Par, Iter::Par],
        &[Operand::of(y, affine_map(2, &[d(1), d(0)]))],
        &[(init, identity_map(2))],
        |_, a| Ok(vec![a[0].clone()]),
    )?;
    Ok(r.into_iter().next().expect("one result"))
}

/// `nn.gemm`: `alpha * op(A) * op(B) + beta * C`.
pub(crate) fn gemm(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    let (dt, out_shape) = n.out(0)?;
    if dt == DType::Bool {
        return Err("nn.gemm on bool is not supported".into());
    }
    let ta = n.a.bool("trans_a").map_err(attr_err)?;
    let tb = n.a.bool("trans_b").map_err(attr_err)?;
    let alpha = n.a.float("alpha").map_err(attr_err)?;
    let beta = n.a.float("beta").map_err(attr_err)?;
    if !dt.is_float() && (alpha.fract() != 0.0 || beta.fract() != 0.0) {
        return Err("integer nn.gemm with fractional alpha or beta is not supported".into());
    }
    // Loop dims: m, k, n, so the innermost loop is parallel and unit-stride
    // (see `matmul`). A transposed `B` is first copied to `[k, n]`: the copy
    // is O(k n) against O(m k n) for the product, and keeps `n` unit-stride.
    let y = if tb { transpose2(b, y)? } else { y.clone() };
    let xm = if ta { [d(1), d(0)] } else { [d(0), d(1)] };
    let wide = acc_dtype(dt);
    let init = b.filled(0.0, wide, out_shape)?;
    let acc = b.generic(
        &[Iter::Par, Iter::Red, Iter::Par],
        &[
            Operand::of(x, affine_map(3, &xm)),
            Operand::of(&y, affine_map(3, &[d(1), d(2)])),
        ],
        &[(init, affine_map(3, &[d(0), d(2)]))],
        |body, a| mac_wide(body, a, dt, wide),
    )?;
    let acc = acc.into_iter().next().expect("one result");
    let c = n.opt(2).filter(|_| beta != 0.0);
    if alpha == 1.0 && c.is_none() {
        return narrow(b, &acc, dt);
    }
    // The epilogue runs in the accumulator dtype and rounds once.
    let e = elem(wide)?;
    let (mul, add) = if dt.is_float() {
        ("mulf", "addf")
    } else {
        ("muli", "addi")
    };
    let mut ins = vec![&acc];
    if let Some(c) = c {
        ins.push(c);
    }
    let c_dt = c.map(|c| c.dtype);
    b.map(&ins, dt, out_shape, |body, a| {
        let mut r = a[0].clone();
        if alpha != 1.0 {
            let al = body.num(alpha, wide)?;
            r = body.op(format!("arith.{mul} {al}, {r} : {e}"));
        }
        if let Some(cd) = c_dt {
            let mut cv = convert(body, &a[1], cd, wide)?;
            if beta != 1.0 {
                let be = body.num(beta, wide)?;
                cv = body.op(format!("arith.{mul} {be}, {cv} : {e}"));
            }
            r = body.op(format!("arith.{add} {r}, {cv} : {e}"));
        }
        convert(body, &r, wide, dt)
    })
}

/// A window geometry with its padding resolved: the attributes come from
/// [`Window`] (the schema's reader, defaults and checks included); `lo`/`hi`
/// are the begin/end paddings after `auto_pad`, with `hi` extended so every
/// output window lies inside the padded input (ceil mode). Positions past
/// the last window (floor division) are simply never read.
pub(crate) struct Spatial {
    pub kernel: Vec<u64>,
    pub strides: Vec<u64>,
    pub dilations: Vec<u64>,
    pub lo: Vec<u64>,
    pub hi: Vec<u64>,
    /// `hi` before the ceil-mode extension (what `count_include_pad` counts).
    pub explicit_hi: Vec<u64>,
}

impl Spatial {
    /// Reads the window of a node over `input` spatial extents producing
    /// `out`; `kernel` is given when it comes from a weight (convolutions).
    pub fn read(
        n: &NodeIn<'_>,
        input: &[u64],
        kernel: Option<Vec<u64>>,
        out: &[u64],
    ) -> Res<Spatial> {
        let s = input.len();
        let w = Window::read(n.a, s, kernel).map_err(attr_err)?;
        if out.len() != s {
            return Err("output rank does not match the input".into());
        }
        let eff = |i: usize| (w.kernel[i] - 1) * w.dilations[i] + 1;
        let (lo, mut hi): (Vec<u64>, Vec<u64>) =
            (0..s).map(|i| w.resolved_pads(i, input[i])).unzip();
        let explicit_hi = hi.clone();
        for i in 0..s {
            let need = (out[i].max(1) - 1) * w.strides[i] + eff(i);
            let have = input[i] + lo[i] + hi[i];
            if need > have {
                hi[i] += need - have;
            }
        }
        Ok(Spatial {
            kernel: w.kernel,
            strides: w.strides,
            dilations: w.dilations,
            lo,
            hi,
            explicit_hi,
        })
    }

    /// Input index expression for output dim `o` and kernel dim `k`.
    pub fn index(&self, i: usize, o: usize, k: usize) -> String {
        format!("d{o} * {} + d{k} * {}", self.strides[i], self.dilations[i])
    }
}

/// `nn.conv`: grouped N-d convolution (cross-correlation) with optional bias.
pub(crate) fn conv(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, w) = (n.input(0)?, n.input(1)?);
    let (dt, out_shape) = n.out(0)?;
    if dt == DType::Bool {
        return Err("nn.conv on bool is not supported".into());
    }
    let g = n.a.int("group").map_err(attr_err)?;
    let g = u64::try_from(g).map_err(|_| "group must be positive".to_string())?;
    let (bn, c) = (x.shape[0], x.shape[1]);
    let m = w.shape[0];
    if g == 0 || c % g != 0 || m % g != 0 || w.shape[1] * g != c {
        return Err(format!("group {g} does not divide channels {c} / {m}"));
    }
    let (cg, mg) = (c / g, m / g);
    let sp = Spatial::read(
        n,
        &x.shape[2..],
        Some(w.shape[2..].to_vec()),
        &out_shape[2..],
    )?;
    let mut lo = vec![0, 0];
    lo.extend(&sp.lo);
    let mut hi = vec![0, 0];
    hi.extend(&sp.hi);
    let xp = b.pad(x, &lo, &hi, 0.0)?;
    let mut xs = vec![bn, g, cg];
    xs.extend(&xp.shape[2..]);
    let xg = b.reshape(&xp, &xs)?;
    let mut ws = vec![g, mg, cg];
    ws.extend(&w.shape[2..]);
    let wg = b.reshape(w, &ws)?;
    let mut os = vec![bn, g, mg];
    os.extend(&out_shape[2..]);
    let bias = match n.opt(2) {
        Some(bias) => Some(b.reshape(bias, &[g, mg])?),
        None => None,
    };
    let r = conv_nd(b, &xg, &wg, bias.as_ref(), &sp, &os, dt)?;
    b.reshape(&r, out_shape)
}

/// The grouped convolution loop nest: `x` is `[N, G, C/G, padded...]`, `w`
/// `[G, M/G, C/G, kernel...]`, the result `os` = `[N, G, M/G, out...]`.
///
/// Loop dims: n, g, m, o_0..o_{s-2}, c, k_0..k_{s-1}, o_{s-1}: the last
/// output dim is innermost, parallel and unit-stride in the result (and in
/// `x` at stride 1), so LLVM vectorizes it without reassociating floats.
fn conv_nd(
    b: &mut Builder,
    x: &Val,
    w: &Val,
    bias: Option<&Val>,
    sp: &Spatial,
    os: &[u64],
    dt: DType,
) -> Res<Val> {
    let s = sp.kernel.len();
    let nd = 4 + 2 * s;
    // Position of output spatial dim i and kernel dim i among the loop dims.
    let od = |i: usize| if i + 1 == s { nd - 1 } else { 3 + i };
    let dc = 2 + s;
    let kd = |i: usize| dc + 1 + i;
    let mut out_map = vec![d(0), d(1), d(2)];
    out_map.extend((0..s).map(|i| d(od(i))));
    // Half precision accumulates in f32 and rounds once, like matmul.
    let acc = acc_dtype(dt);
    let init = bias_init(b, bias, os, dt, acc)?;
    let mut xm = vec![d(0), d(1), d(dc)];
    xm.extend((0..s).map(|i| sp.index(i, od(i), kd(i))));
    let mut wm = vec![d(1), d(2), d(dc)];
    wm.extend((0..s).map(|i| d(kd(i))));
    let mut iters = vec![Iter::Par; 2 + s];
    iters.extend(vec![Iter::Red; 1 + s]);
    iters.push(Iter::Par);
    let r = b.generic(
        &iters,
        &[
            Operand::of(x, affine_map(nd, &xm)),
            Operand::of(w, affine_map(nd, &wm)),
        ],
        &[(init, affine_map(nd, &out_map))],
        |body, a| mac_wide(body, a, dt, acc),
    )?;
    narrow(b, &r.into_iter().next().expect("one result"), dt)
}

/// The accumulator (of dtype `acc`) of a grouped convolution
/// `[N, G, M/G, out...]` over `dt`: zeros, or the bias `[G, M/G]`
/// broadcast.
fn bias_init(b: &mut Builder, bias: Option<&Val>, os: &[u64], dt: DType, acc: DType) -> Res<Val> {
    let r = os.len();
    match bias {
        None => b.filled(0.0, acc, os),
        Some(bg) => {
            let e = b.empty(acc, os)?;
            let y = b.generic(
                &vec![Iter::Par; r],
                &[Operand::of(bg, affine_map(r, &[d(1), d(2)]))],
                &[(e, identity_map(r))],
                |body, a| Ok(vec![convert(body, &a[0], dt, acc)?]),
            )?;
            Ok(y.into_iter().next().expect("one result"))
        }
    }
}

/// `nn.conv_transpose`: grouped N-d transposed convolution. Each output
/// position sums, over input channels of its group and kernel taps, the
/// input at `t / stride` where `t = o + pad_begin - k * dilation` is
/// divisible by the stride and inside the input (a gather, so nothing is
/// scattered and no zeros are inserted). Only the begin padding matters
/// once the output extent is fixed; it is resolved as the reference does
/// (`output_shape`, `auto_pad`, `pads`), `output_padding` only extends the
/// result, which the static result type already carries.
pub(crate) fn conv_transpose(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, w) = (n.input(0)?.clone(), n.input(1)?);
    let (dt, out_shape) = n.out(0)?;
    if dt == DType::Bool {
        return Err("nn.conv_transpose on bool is not supported".into());
    }
    if x.rank() < 3 || w.rank() != x.rank() {
        return Err(format!("nn.conv_transpose of {} with {}", x.ty(), w.ty()));
    }
    let s = x.rank() - 2;
    let g = u64::try_from(n.a.int("group").map_err(attr_err)?)
        .ok()
        .filter(|&g| g > 0)
        .ok_or("group must be positive")?;
    let (bn, c) = (x.shape[0], x.shape[1]);
    if w.shape[0] != c || c % g != 0 {
        return Err(format!("group {g} does not divide channels {c}"));
    }
    let (cg, mg) = (c / g, w.shape[1]);
    let win = Window::read(n.a, s, Some(w.shape[2..].to_vec())).map_err(attr_err)?;
    let out_pad =
        n.a.ints("output_padding")
            .map_err(attr_err)?
            .unwrap_or(vec![0; s]);
    let requested = n.a.ints("output_shape").map_err(attr_err)?.is_some();
    if out_pad.len() != s || out_shape.len() != s + 2 {
        return Err("output_padding or the result rank does not match the input".into());
    }
    let pb: Vec<u64> = (0..s)
        .map(|i| {
            win.transposed_begin_pad(
                i,
                x.shape[2 + i],
                u64::try_from(out_pad[i]).unwrap_or(0),
                out_shape[2 + i],
                requested,
            )
        })
        .collect();
    let mut ws = vec![g, cg, mg];
    ws.extend(&w.shape[2..]);
    let wg = b.reshape(w, &ws)?;
    let mut os = vec![bn, g, mg];
    os.extend(&out_shape[2..]);
    let bias = match n.opt(2) {
        Some(bias) => Some(b.reshape(bias, &[g, mg])?),
        None => None,
    };
    if os.contains(&0) {
        return b.empty(dt, out_shape);
    }
    // Half precision accumulates in f32 and rounds once, like conv.
    let acc = acc_dtype(dt);
    let init = bias_init(b, bias.as_ref(), &os, dt, acc)?;
    // Loop dims as in `conv_nd`: n, g, m, o_0..o_{s-2}, c, k.., o_{s-1}.
    let nd = 4 + 2 * s;
    let od = |i: usize| if i + 1 == s { nd - 1 } else { 3 + i };
    let dc = 2 + s;
    let kd = |i: usize| dc + 1 + i;
    let mut out_map = vec![d(0), d(1), d(2)];
    out_map.extend((0..s).map(|i| d(od(i))));
    let mut wm = vec![d(1), d(dc), d(2)];
    wm.extend((0..s).map(|i| d(kd(i))));
    let mut iters = vec![Iter::Par; 2 + s];
    iters.extend(vec![Iter::Red; 1 + s]);
    iters.push(Iter::Par);
    let e = elem(dt)?;
    let in_sp = x.shape[2..].to_vec();
    let r = b.generic(
        &iters,
        &[Operand::of(&wg, affine_map(nd, &wm))],
        &[(init, affine_map(nd, &out_map))],
        |body, a| {
            let z = body.index(0);
            let cgc = body.index(cg as i64);
            let gi = body.loop_index(1);
            let ci = body.loop_index(dc);
            let gb = body.op(format!("arith.muli {gi}, {cgc} : index"));
            let ch = body.op(format!("arith.addi {gb}, {ci} : index"));
            let mut subs = vec![body.loop_index(0), ch];
            let mut ok: Option<String> = None;
            for i in 0..s {
                let o = body.loop_index(od(i));
                let k = body.loop_index(kd(i));
                let pc = body.index(pb[i] as i64);
                let dl = body.index(win.dilations[i] as i64);
                let op = body.op(format!("arith.addi {o}, {pc} : index"));
                let kdl = body.op(format!("arith.muli {k}, {dl} : index"));
                let t = body.op(format!("arith.subi {op}, {kdl} : index"));
                let mut conds = vec![body.op(format!("arith.cmpi sge, {t}, {z} : index"))];
                let q = if win.strides[i] == 1 {
                    t
                } else {
                    let st = body.index(win.strides[i] as i64);
                    let rem = body.op(format!("arith.remsi {t}, {st} : index"));
                    conds.push(body.op(format!("arith.cmpi eq, {rem}, {z} : index")));
                    body.op(format!("arith.divsi {t}, {st} : index"))
                };
                let nc = body.index(in_sp[i] as i64);
                conds.push(body.op(format!("arith.cmpi slt, {q}, {nc} : index")));
                for c in conds {
                    ok = Some(match ok.take() {
                        None => c,
                        Some(p) => body.op(format!("arith.andi {p}, {c} : i1")),
                    });
                }
                let last = body.index(in_sp[i] as i64 - 1);
                let c0 = body.op(format!("arith.maxsi {q}, {z} : index"));
                subs.push(body.op(format!("arith.minsi {c0}, {last} : index")));
            }
            let xv = body.extract(&x, &subs);
            let zero = body.num(0.0, dt)?;
            let ok = ok.expect("at least one spatial dim");
            let xs = body.select(&ok, &xv, &zero, e);
            mac_wide(body, &[xs, a[0].clone(), a[1].clone()], dt, acc)
        },
    )?;
    let y = narrow(b, &r[0], dt)?;
    b.reshape(&y, out_shape)
}

/// `nn.einsum` (an ellipsis is expanded into labels by [`parse_einsum`]):
/// one `linalg.generic` whose loop dims are the
/// output labels and the summed labels, each operand read through the map of
/// its labels (a repeated label reads a diagonal; an extent-1 dim that
/// broadcasts reads index 0). The last output label is the innermost loop,
/// so matmul-like equations vectorize as `matmul` does.
pub(crate) fn einsum(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (dt, out_shape) = n.out(0)?;
    if dt == DType::Bool {
        return Err("nn.einsum on bool is not supported".into());
    }
    let ops: Vec<&Val> = n.ins.iter().flatten().collect();
    let ranks: Vec<usize> = ops.iter().map(|v| v.rank()).collect();
    let spec = parse_einsum(n.a.str("equation").map_err(attr_err)?, &ranks).map_err(attr_err)?;
    if spec.inputs.len() != ops.len() {
        return Err("the equation does not match the operand count".into());
    }
    let mut extent: Vec<(char, u64)> = Vec::new();
    for (labels, v) in spec.inputs.iter().zip(&ops) {
        if labels.len() != v.rank() {
            return Err(format!("labels {labels:?} do not match {}", v.ty()));
        }
        for (&c, &e) in labels.iter().zip(&v.shape) {
            match extent.iter_mut().find(|(l, _)| *l == c) {
                Some((_, x)) if *x == 1 => *x = e,
                Some(_) => {}
                None => extent.push((c, e)),
            }
        }
    }
    let summed: Vec<char> = {
        let mut s: Vec<char> = extent
            .iter()
            .map(|&(c, _)| c)
            .filter(|c| !spec.output.contains(c))
            .collect();
        s.sort_unstable();
        s
    };
    // Loop order: output labels but the last, summed labels, last output label.
    let mut order: Vec<(char, Iter)> = Vec::new();
    let (last, front) = match spec.output.split_last() {
        Some((l, f)) => (Some(*l), f),
        None => (None, &spec.output[..]),
    };
    order.extend(front.iter().map(|&c| (c, Iter::Par)));
    order.extend(summed.iter().map(|&c| (c, Iter::Red)));
    order.extend(last.map(|c| (c, Iter::Par)));
    let nd = order.len();
    let pos = |c: char| {
        order
            .iter()
            .position(|&(l, _)| l == c)
            .expect("known label")
    };
    let ext = |c: char| extent.iter().find(|(l, _)| *l == c).map_or(1, |&(_, e)| e);
    let mut ins = Vec::new();
    for (labels, v) in spec.inputs.iter().zip(&ops) {
        let m: Vec<String> = labels
            .iter()
            .zip(&v.shape)
            .map(|(&c, &e)| {
                if e == 1 && ext(c) != 1 {
                    "0".to_string()
                } else {
                    d(pos(c))
                }
            })
            .collect();
        ins.push(Operand::of(v, affine_map(nd, &m)));
    }
    let om: Vec<String> = spec.output.iter().map(|&c| d(pos(c))).collect();
    let init = b.filled(0.0, dt, out_shape)?;
    let iters: Vec<Iter> = order.iter().map(|&(_, i)| i).collect();
    let e = elem(dt)?;
    let (mul, add) = if dt.is_float() {
        ("mulf", "addf")
    } else {
        ("muli", "addi")
    };
    let k = ops.len();
    let r = b.generic(&iters, &ins, &[(init, affine_map(nd, &om))], |body, a| {
        let mut p = a[0].clone();
        for x in &a[1..k] {
            p = body.op(format!("arith.{mul} {p}, {x} : {e}"));
        }
        Ok(vec![body.op(format!("arith.{add} {}, {p} : {e}", a[k]))])
    })?;
    Ok(r.into_iter().next().expect("one result"))
}
