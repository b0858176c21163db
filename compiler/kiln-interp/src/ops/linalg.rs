//! Contractions: matmul, gemm, conv, conv_transpose, einsum.
//!
//! Products accumulate in f64 for floats (each f32/f16/bf16 product is
//! exact in f64) and in wrapping i128 for integers; the result is rounded
//! or wrapped once.

use crate::eval::Op;
use crate::util::{broadcast_map, broadcast_shapes, for_each_index, strides};
use crate::{InterpError, Tensor};
use kiln_ir::ops::{parse_einsum, AutoPad, Window};
use std::collections::BTreeMap;

type R = Result<Tensor, InterpError>;

/// Scalar arithmetic shared by the float (f64) and integer (i128) paths.
pub(crate) trait Num: Copy {
    const ZERO: Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// Converts an attribute value (integral for integer dtypes).
    fn from_f64(x: f64) -> Self;
}

impl Num for f64 {
    const ZERO: f64 = 0.0;
    fn add(self, o: f64) -> f64 {
        self + o
    }
    fn mul(self, o: f64) -> f64 {
        self * o
    }
    fn from_f64(x: f64) -> f64 {
        x
    }
}

impl Num for i128 {
    const ZERO: i128 = 0;
    fn add(self, o: i128) -> i128 {
        self.wrapping_add(o)
    }
    fn mul(self, o: i128) -> i128 {
        self.wrapping_mul(o)
    }
    fn from_f64(x: f64) -> i128 {
        x as i128
    }
}

/// Runs `f` on the operands' data as f64 slices (float dtypes) or i128
/// slices (integer dtypes) and builds a result of `dtype` (`ts[0]`'s).
macro_rules! with_data {
    ($ts:expr, $shape:expr, |$v:ident| $body:expr) => {{
        let ts: &[&Tensor] = $ts;
        let dt = ts[0].dtype;
        if ts.iter().all(|t| t.floats().is_some()) {
            let $v: Vec<&[f64]> = ts.iter().map(|t| t.floats().expect("checked")).collect();
            let out: Vec<f64> = $body;
            Ok(Tensor::from_f64(dt, $shape, out))
        } else if ts.iter().all(|t| t.ints().is_some()) {
            let $v: Vec<&[i128]> = ts.iter().map(|t| t.ints().expect("checked")).collect();
            let out: Vec<i128> = $body;
            Ok(Tensor::from_ints(dt, $shape, out))
        } else {
            Err(InterpError::Invalid(
                "operands mix float and integer dtypes".into(),
            ))
        }
    }};
}

fn invalid<T>(msg: String) -> Result<T, InterpError> {
    Err(InterpError::Invalid(msg))
}

/// `nn.matmul` with NumPy matmul semantics (rank-1 promotion, broadcast
/// batch dimensions).
pub fn matmul(op: &Op<'_>) -> R {
    let (a, b) = (op.input(0)?, op.input(1)?);
    if a.rank() == 0 || b.rank() == 0 {
        return invalid("matmul operands must have rank >= 1".into());
    }
    let ash: Vec<u64> = if a.rank() == 1 {
        vec![1, a.shape[0]]
    } else {
        a.shape.clone()
    };
    let bsh: Vec<u64> = if b.rank() == 1 {
        vec![b.shape[0], 1]
    } else {
        b.shape.clone()
    };
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (k2, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    if k != k2 {
        return invalid(format!("contracted dimensions differ ({k} vs {k2})"));
    }
    let (abat, bbat) = (&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]);
    let batch = broadcast_shapes(&[abat, bbat])?;
    let mut shape = batch.clone();
    if a.rank() != 1 {
        shape.push(m);
    }
    if b.rank() != 1 {
        shape.push(n);
    }
    op.check(&shape)?;
    let (amap, bmap) = (broadcast_map(&batch, abat), broadcast_map(&batch, bbat));
    let (m, k, n) = (m as usize, k as usize, n as usize);
    fn mm<T: Num>(
        x: &[T],
        y: &[T],
        amap: &[usize],
        bmap: &[usize],
        m: usize,
        k: usize,
        n: usize,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(amap.len() * m * n);
        for (&ab, &bb) in amap.iter().zip(bmap) {
            let (xo, yo) = (ab * m * k, bb * k * n);
            for i in 0..m {
                for j in 0..n {
                    let mut acc = T::ZERO;
                    for p in 0..k {
                        acc = acc.add(x[xo + i * k + p].mul(y[yo + p * n + j]));
                    }
                    out.push(acc);
                }
            }
        }
        out
    }
    with_data!(&[a, b], shape, |v| mm(v[0], v[1], &amap, &bmap, m, k, n))
}

/// `nn.gemm`: `alpha * op(A) * op(B) + beta * C`. Integer gemm requires
/// integral alpha and beta.
pub fn gemm(op: &Op<'_>) -> R {
    let (a, b) = (op.input(0)?, op.input(1)?);
    let c = op.opt(2);
    let (ta, tb) = (op.a.bool("trans_a")?, op.a.bool("trans_b")?);
    let (alpha, beta) = (op.a.float("alpha")?, op.a.float("beta")?);
    if a.rank() != 2 || b.rank() != 2 {
        return invalid("gemm operands must be matrices".into());
    }
    let (m, k) = if ta {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (k2, n) = if tb {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    if k != k2 {
        return invalid(format!("contracted dimensions differ ({k} vs {k2})"));
    }
    let shape = vec![m, n];
    op.check(&shape)?;
    let cmap = match c {
        Some(c) => {
            if broadcast_shapes(&[&shape, &c.shape])? != shape {
                return invalid(format!(
                    "bias of shape {:?} does not broadcast to {shape:?}",
                    c.shape
                ));
            }
            Some(broadcast_map(&shape, &c.shape))
        }
        None => None,
    };
    let (m, k, n) = (m as usize, k as usize, n as usize);
    let ai = |i: usize, p: usize| if ta { p * m + i } else { i * k + p };
    let bi = |p: usize, j: usize| if tb { j * k + p } else { p * n + j };
    let mut ops: Vec<&Tensor> = vec![a, b];
    ops.extend(c);
    if !a.dtype.is_float() && (alpha.fract() != 0.0 || beta.fract() != 0.0) {
        return Err(InterpError::Unsupported(
            "integer gemm with fractional alpha or beta".into(),
        ));
    }
    fn run<T: Num>(
        v: &[&[T]],
        alpha: T,
        beta: T,
        cmap: Option<&[usize]>,
        (m, k, n): (usize, usize, usize),
        ai: impl Fn(usize, usize) -> usize,
        bi: impl Fn(usize, usize) -> usize,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(m * n);
        for i in 0..m {
            for j in 0..n {
                let mut s = T::ZERO;
                for p in 0..k {
                    s = s.add(v[0][ai(i, p)].mul(v[1][bi(p, j)]));
                }
                let bias = cmap.map_or(T::ZERO, |cm| beta.mul(v[2][cm[i * n + j]]));
                out.push(alpha.mul(s).add(bias));
            }
        }
        out
    }
    with_data!(&ops, shape, |v| run(
        &v,
        Num::from_f64(alpha),
        Num::from_f64(beta),
        cmap.as_deref(),
        (m, k, n),
        ai,
        bi
    ))
}

/// Window geometry of a convolution, with padding resolved.
struct Geometry {
    kernel: Vec<u64>,
    strides: Vec<u64>,
    dilations: Vec<u64>,
    pad_begin: Vec<u64>,
    pad_end: Vec<u64>,
    auto_pad: AutoPad,
}

fn read_list(op: &Op<'_>, name: &str, n: usize, default: i64) -> Result<Vec<i64>, InterpError> {
    let v = op.a.ints(name)?.unwrap_or_else(|| vec![default; n]);
    if v.len() != n {
        return invalid(format!("'{name}' has {} entries, expected {n}", v.len()));
    }
    Ok(v)
}

fn positive(v: Vec<i64>, what: &str) -> Result<Vec<u64>, InterpError> {
    v.into_iter()
        .map(|x| {
            if x > 0 {
                Ok(x as u64)
            } else {
                invalid(format!("{what} must be positive, got {x}"))
            }
        })
        .collect()
}

impl Geometry {
    /// Reads the window attributes through the schema's [`Window`] reader;
    /// the kernel comes from the weight's spatial dims.
    fn read(op: &Op<'_>, w: &Tensor) -> Result<Geometry, InterpError> {
        let kernel = w.shape[2..].to_vec();
        let sp = kernel.len();
        let win = Window::read(op.a, sp, Some(kernel))?;
        Ok(Geometry {
            pad_begin: win.pads[..sp].to_vec(),
            pad_end: win.pads[sp..].to_vec(),
            kernel: win.kernel,
            strides: win.strides,
            dilations: win.dilations,
            auto_pad: win.auto_pad,
        })
    }

    fn eff(&self, i: usize) -> u64 {
        (self.kernel[i] - 1) * self.dilations[i] + 1
    }

    /// Splits a total padding between begin and end the ONNX way: the odd
    /// element goes to the end for SAME_UPPER, to the beginning otherwise.
    fn split(&mut self, i: usize, total: u64) {
        let half = total / 2;
        if self.auto_pad == AutoPad::SameUpper {
            (self.pad_begin[i], self.pad_end[i]) = (half, total - half);
        } else {
            (self.pad_begin[i], self.pad_end[i]) = (total - half, half);
        }
    }
}

fn groups(op: &Op<'_>) -> Result<usize, InterpError> {
    let g = op.a.int("group")?;
    if g <= 0 {
        return invalid(format!("group must be positive, got {g}"));
    }
    Ok(g as usize)
}

/// `nn.conv`: grouped N-d cross-correlation with pads, strides, dilations
/// and auto_pad.
pub fn conv(op: &Op<'_>) -> R {
    let (x, w) = (op.input(0)?, op.input(1)?);
    let bias = op.opt(2);
    if x.rank() < 3 || w.rank() != x.rank() {
        return invalid("conv expects [N, C, spatial...] input and weight of equal rank".into());
    }
    let sp = x.rank() - 2;
    let g = groups(op)?;
    let (nb, c, mo, cg) = (
        x.shape[0] as usize,
        x.shape[1] as usize,
        w.shape[0] as usize,
        w.shape[1] as usize,
    );
    if c != cg * g || mo % g != 0 {
        return invalid(format!(
            "channels {c}, weight {:?} and group {g} disagree",
            w.shape
        ));
    }
    let mut geo = Geometry::read(op, w)?;
    let win = Window::read(op.a, sp, Some(w.shape[2..].to_vec()))?;
    let mut out_sp = Vec::with_capacity(sp);
    for i in 0..sp {
        let n = x.shape[2 + i];
        let (s, eff) = (geo.strides[i], geo.eff(i));
        (geo.pad_begin[i], geo.pad_end[i]) = win.resolved_pads(i, n);
        let padded = n + geo.pad_begin[i] + geo.pad_end[i];
        if padded < eff {
            return invalid(format!(
                "padded extent {padded} is smaller than the kernel window {eff}"
            ));
        }
        out_sp.push((padded - eff) / s + 1);
    }
    let mut shape = vec![nb as u64, mo as u64];
    shape.extend(&out_sp);
    op.check(&shape)?;
    let mut ts = vec![x, w];
    ts.extend(bias);
    let xs = strides(&x.shape);
    let ws = strides(&w.shape);
    let mg = mo / g;
    fn run<T: Num>(
        v: &[&[T]],
        x: &Tensor,
        geo: &Geometry,
        out_sp: &[u64],
        (nb, mo, cg, mg): (usize, usize, usize, usize),
        xs: &[usize],
        ws: &[usize],
    ) -> Vec<T> {
        let sp = out_sp.len();
        let mut out = Vec::new();
        for n in 0..nb {
            for m in 0..mo {
                let grp = m / mg;
                for_each_index(out_sp, |o| {
                    let mut acc = v.get(2).map_or(T::ZERO, |b| b[m]);
                    for ci in 0..cg {
                        let ch = grp * cg + ci;
                        for_each_index(&geo.kernel, |k| {
                            let mut xi = n * xs[0] + ch * xs[1];
                            for d in 0..sp {
                                // Position in the padded input, then unpadded.
                                let p = o[d] * geo.strides[d] + k[d] * geo.dilations[d];
                                if p < geo.pad_begin[d] || p - geo.pad_begin[d] >= x.shape[2 + d] {
                                    return;
                                }
                                xi += (p - geo.pad_begin[d]) as usize * xs[2 + d];
                            }
                            let mut wi = m * ws[0] + ci * ws[1];
                            for d in 0..sp {
                                wi += k[d] as usize * ws[2 + d];
                            }
                            acc = acc.add(v[0][xi].mul(v[1][wi]));
                        });
                    }
                    out.push(acc);
                });
            }
        }
        out
    }
    with_data!(&ts, shape, |v| run(
        &v,
        x,
        &geo,
        &out_sp,
        (nb, mo, cg, mg),
        &xs,
        &ws
    ))
}

/// `nn.conv_transpose`: each input element scatters `x * w` into the
/// output at `i * stride + k * dilation - pad_begin`. With `output_shape`
/// (or SAME auto_pad), the total padding is derived as in the ONNX spec
/// and ONNX Runtime (clamped at zero).
pub fn conv_transpose(op: &Op<'_>) -> R {
    let (x, w) = (op.input(0)?, op.input(1)?);
    let bias = op.opt(2);
    if x.rank() < 3 || w.rank() != x.rank() {
        return invalid(
            "conv_transpose expects [N, C, spatial...] input and weight of equal rank".into(),
        );
    }
    let sp = x.rank() - 2;
    let g = groups(op)?;
    let (nb, c) = (x.shape[0] as usize, x.shape[1] as usize);
    if w.shape[0] as usize != c || c % g != 0 {
        return invalid(format!(
            "input channels {c}, weight {:?} and group {g} disagree",
            w.shape
        ));
    }
    let (cg, mg) = (c / g, w.shape[1] as usize);
    let mo = mg * g;
    let mut geo = Geometry::read(op, w)?;
    let out_pad = read_list(op, "output_padding", sp, 0)?;
    if out_pad.iter().any(|&p| p < 0) {
        return invalid("output_padding must be non-negative".into());
    }
    let requested = match op.a.ints("output_shape")? {
        Some(os) => {
            let os = if os.len() == x.rank() {
                os[2..].to_vec()
            } else {
                os
            };
            if os.len() != sp {
                return invalid(format!(
                    "output_shape has {} entries, expected {sp}",
                    os.len()
                ));
            }
            Some(positive(os, "output_shape")?)
        }
        None => None,
    };
    let same = matches!(geo.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
    let mut out_sp = Vec::with_capacity(sp);
    for i in 0..sp {
        let n = x.shape[2 + i];
        let full = geo.strides[i] * (n - 1).min(n) + out_pad[i] as u64 + geo.eff(i);
        let full = if n == 0 { 0 } else { full };
        let o = match (&requested, same) {
            (Some(os), _) => {
                geo.split(i, full.saturating_sub(os[i]));
                os[i]
            }
            (None, true) => {
                let o = n * geo.strides[i];
                geo.split(i, full.saturating_sub(o));
                o
            }
            (None, false) => {
                if geo.auto_pad == AutoPad::Valid {
                    geo.pad_begin[i] = 0;
                    geo.pad_end[i] = 0;
                }
                let p = geo.pad_begin[i] + geo.pad_end[i];
                if full <= p {
                    return invalid(format!(
                        "padding {p} removes the whole output extent {full}"
                    ));
                }
                full - p
            }
        };
        out_sp.push(o);
    }
    let mut shape = vec![nb as u64, mo as u64];
    shape.extend(&out_sp);
    op.check(&shape)?;
    let mut ts = vec![x, w];
    ts.extend(bias);
    let (xs, ws, os) = (strides(&x.shape), strides(&w.shape), strides(&shape));
    let in_sp = x.shape[2..].to_vec();
    let total: usize = shape.iter().product::<u64>() as usize;
    fn run<T: Num>(
        v: &[&[T]],
        geo: &Geometry,
        in_sp: &[u64],
        out_sp: &[u64],
        (nb, cg, mg, g, total): (usize, usize, usize, usize, usize),
        (xs, ws, os): (&[usize], &[usize], &[usize]),
    ) -> Vec<T> {
        let sp = in_sp.len();
        let mut out = vec![T::ZERO; total];
        for n in 0..nb {
            for grp in 0..g {
                for ci in 0..cg {
                    let ch = grp * cg + ci;
                    for_each_index(in_sp, |i| {
                        let mut xi = n * xs[0] + ch * xs[1];
                        for d in 0..sp {
                            xi += i[d] as usize * xs[2 + d];
                        }
                        let xv = v[0][xi];
                        for mm in 0..mg {
                            let m = grp * mg + mm;
                            for_each_index(&geo.kernel, |k| {
                                let mut oi = n * os[0] + m * os[1];
                                let mut wi = ch * ws[0] + mm * ws[1];
                                for d in 0..sp {
                                    let p = i[d] * geo.strides[d] + k[d] * geo.dilations[d];
                                    if p < geo.pad_begin[d] || p - geo.pad_begin[d] >= out_sp[d] {
                                        return;
                                    }
                                    oi += (p - geo.pad_begin[d]) as usize * os[2 + d];
                                    wi += k[d] as usize * ws[2 + d];
                                }
                                out[oi] = out[oi].add(xv.mul(v[1][wi]));
                            });
                        }
                    });
                }
            }
        }
        if let Some(b) = v.get(2) {
            for (idx, e) in out.iter_mut().enumerate() {
                *e = e.add(b[(idx / os[1]) % (g * mg)]);
            }
        }
        out
    }
    with_data!(&ts, shape, |v| run(
        &v,
        &geo,
        &in_sp,
        &out_sp,
        (nb, cg, mg, g, total),
        (&xs, &ws, &os)
    ))
}

/// `nn.einsum`: sums the product of all operands over every label not in
/// the output. Extent-1 dimensions broadcast; an ellipsis is expanded by
/// [`parse_einsum`] into labels of its own.
pub fn einsum(op: &Op<'_>) -> R {
    let ts = op.present();
    let ranks: Vec<usize> = ts.iter().map(|t| t.rank()).collect();
    let spec = parse_einsum(op.a.str("equation")?, &ranks)?;
    let labels = spec.inputs;
    if labels.len() != ts.len() {
        return invalid(format!(
            "equation has {} operands, node has {}",
            labels.len(),
            ts.len()
        ));
    }
    let mut extent: BTreeMap<char, u64> = BTreeMap::new();
    for (l, t) in labels.iter().zip(&ts) {
        if l.len() != t.rank() {
            return invalid(format!("labels {l:?} do not match rank {}", t.rank()));
        }
        for (&ch, &d) in l.iter().zip(&t.shape) {
            let e = extent.entry(ch).or_insert(d);
            if *e == 1 {
                *e = d;
            } else if d != 1 && d != *e {
                return invalid(format!("label '{ch}' has extents {e} and {d}"));
            }
        }
    }
    let output = spec.output;
    if let Some(c) = output.iter().find(|c| !extent.contains_key(c)) {
        return invalid(format!("output label '{c}' is not in any operand"));
    }
    let summed: Vec<char> = extent
        .keys()
        .copied()
        .filter(|c| !output.contains(c))
        .collect();
    let shape: Vec<u64> = output.iter().map(|c| extent[c]).collect();
    let sum_shape: Vec<u64> = summed.iter().map(|c| extent[c]).collect();
    op.check(&shape)?;
    // Per operand and label position: which slot of (output ++ summed)
    // indexes it, the stride, and whether the dim broadcasts.
    let all: Vec<char> = output.iter().chain(&summed).copied().collect();
    let access: Vec<Vec<(usize, usize)>> = labels
        .iter()
        .zip(&ts)
        .map(|(l, t)| {
            let st = strides(&t.shape);
            l.iter()
                .enumerate()
                .map(|(p, ch)| {
                    let slot = all.iter().position(|c| c == ch).expect("label is known");
                    (slot, if t.shape[p] == 1 { 0 } else { st[p] })
                })
                .collect()
        })
        .collect();
    fn run<T: Num>(
        v: &[&[T]],
        access: &[Vec<(usize, usize)>],
        shape: &[u64],
        sum_shape: &[u64],
    ) -> Vec<T> {
        let mut out = Vec::new();
        let mut full = vec![0u64; shape.len() + sum_shape.len()];
        for_each_index(shape, |o| {
            full[..o.len()].copy_from_slice(o);
            let mut acc = T::ZERO;
            for_each_index(sum_shape, |s| {
                full[o.len()..].copy_from_slice(s);
                let mut prod: Option<T> = None;
                for (data, acc_list) in v.iter().zip(access) {
                    let idx: usize = acc_list
                        .iter()
                        .map(|&(slot, st)| full[slot] as usize * st)
                        .sum();
                    prod = Some(prod.map_or(data[idx], |p: T| p.mul(data[idx])));
                }
                acc = acc.add(prod.unwrap_or(T::ZERO));
            });
            out.push(acc);
        });
        out
    }
    with_data!(&ts, shape.clone(), |v| run(&v, &access, &shape, &sum_shape))
}
