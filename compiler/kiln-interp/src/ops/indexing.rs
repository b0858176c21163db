//! Index-addressed data movement from the `kiln_ir::ops::shape` family:
//! `nn.gather_nd`, `nn.scatter_elements`, `nn.scatter_nd` and `nn.pad`.
//!
//! Indices are bounds-checked and negative indices count from the end, as
//! in ONNX. Scatters apply updates in row-major order of the indices, so
//! with `reduction = none` a duplicated index keeps the last update (ONNX
//! leaves this undefined; this is what the reference and ONNX Runtime do).
//! A reduction rounds (floats) or wraps (integers) after every step, as a
//! native implementation in the element type does.

use crate::eval::Op;
use crate::ops::reduce::int_list;
use crate::tensor::{round_float, wrap_int, Data};
use crate::util::{axis, strides, to_usize};
use crate::{InterpError, Tensor};
use kiln_ir::ops::infer::norm_axes;
use kiln_ir::ops::{PadMode, ScatterReduction};
use kiln_ir::DType;

type R = Result<Tensor, InterpError>;

fn invalid<T>(msg: String) -> Result<T, InterpError> {
    Err(InterpError::Invalid(msg))
}

/// Resolves a possibly negative index against extent `n`.
fn index(i: i128, n: u64) -> Result<usize, InterpError> {
    let r = if i < 0 { i + i128::from(n) } else { i };
    if r < 0 || r >= i128::from(n) {
        return invalid(format!("index {i} is out of range for extent {n}"));
    }
    Ok(r as usize)
}

fn indices(t: &Tensor) -> Result<&[i128], InterpError> {
    t.ints()
        .ok_or_else(|| InterpError::Invalid("indices must be an integer tensor".into()))
}

/// `nn.gather_nd` with `batch_dims`: result `indices[..-1] + data[b + m..]`.
pub fn gather_nd(op: &Op<'_>) -> R {
    let (x, it) = (op.input(0)?, op.input(1)?);
    let idx = indices(it)?;
    let (r, q) = (x.rank(), it.rank());
    let b = to_usize(i128::from(op.a.int("batch_dims")?), "batch_dims")?;
    if q == 0 || b >= r.min(q) {
        return invalid(format!("batch_dims {b} is out of range"));
    }
    let m = it.shape[q - 1] as usize;
    if m < 1 || m > r - b || x.shape[..b] != it.shape[..b] {
        return invalid(format!(
            "indices {:?} do not address data {:?} with batch_dims {b}",
            it.shape, x.shape
        ));
    }
    let mut shape = it.shape[..q - 1].to_vec();
    shape.extend(&x.shape[b + m..]);
    op.check(&shape)?;
    let xs = strides(&x.shape);
    let slice: usize = x.shape[b + m..].iter().product::<u64>() as usize;
    let tuples = idx.len() / m;
    // Index tuples per batch: the product of indices dims b..q-1.
    let per_batch: usize = it.shape[b..q - 1].iter().product::<u64>() as usize;
    let mut pick = Vec::with_capacity(tuples * slice);
    for t in 0..tuples {
        // The batch position of tuple t, decomposed over data's batch dims.
        let mut off = 0usize;
        let mut bi = t / per_batch.max(1);
        for d in (0..b).rev() {
            off += (bi % x.shape[d] as usize) * xs[d];
            bi /= x.shape[d] as usize;
        }
        for j in 0..m {
            off += index(idx[t * m + j], x.shape[b + j])? * xs[b + j];
        }
        pick.extend(off..off + slice);
    }
    Ok(x.pick(shape, pick))
}

type Red = ScatterReduction;

fn reduction(op: &Op<'_>) -> Result<Red, InterpError> {
    Ok(op.a.enum_attr("reduction")?)
}

/// Applies `updates[u]` to `out[dst]` for each pair, in order.
fn apply(x: &Tensor, upd: &Tensor, pairs: &[(usize, usize)], red: Red) -> R {
    if upd.dtype != x.dtype {
        return invalid("updates and data dtypes differ".into());
    }
    let dt = x.dtype;
    let mut out = x.clone();
    match (&mut out.data, &upd.data) {
        (Data::Float(o), Data::Float(u)) => {
            for &(d, s) in pairs {
                let (a, b) = (o[d], u[s]);
                o[d] = round_float(
                    dt,
                    match red {
                        Red::None => b,
                        Red::Add => a + b,
                        Red::Mul => a * b,
                        // numpy maximum/minimum propagate NaN.
                        Red::Max if a.is_nan() || b.is_nan() => f64::NAN,
                        Red::Min if a.is_nan() || b.is_nan() => f64::NAN,
                        Red::Max => a.max(b),
                        Red::Min => a.min(b),
                    },
                );
            }
        }
        (Data::Int(o), Data::Int(u)) => {
            for &(d, s) in pairs {
                let (a, b) = (o[d], u[s]);
                let v = match red {
                    Red::None => b,
                    Red::Add => a.wrapping_add(b),
                    Red::Mul => a.wrapping_mul(b),
                    Red::Max => a.max(b),
                    Red::Min => a.min(b),
                };
                o[d] = if dt == DType::Bool {
                    // Bool add/mul are or/and.
                    match red {
                        Red::Mul => a & b,
                        _ => i128::from(v != 0),
                    }
                } else {
                    wrap_int(dt, v)
                };
            }
        }
        _ => return invalid("updates and data dtypes differ".into()),
    }
    Ok(out)
}

/// `nn.scatter_elements`: `out[idx with axis := indices[idx]] (op)=
/// updates[idx]` for every position `idx` of `indices`.
pub fn scatter_elements(op: &Op<'_>) -> R {
    let (x, it, upd) = (op.input(0)?, op.input(1)?, op.input(2)?);
    let idx = indices(it)?;
    let a = axis(op.a.int("axis")?, x.rank())?;
    if it.shape != upd.shape || it.rank() != x.rank() {
        return invalid("indices and updates must have one shape of the data's rank".into());
    }
    if it
        .shape
        .iter()
        .zip(&x.shape)
        .enumerate()
        .any(|(d, (i, n))| d != a && i > n)
    {
        return invalid(format!(
            "indices {:?} exceed data {:?} off the axis",
            it.shape, x.shape
        ));
    }
    let xs = strides(&x.shape);
    let mut pairs = Vec::with_capacity(idx.len());
    let mut k = 0usize;
    let mut err = None;
    crate::util::for_each_index(&it.shape, |p| {
        let mut dst = 0usize;
        for (d, &c) in p.iter().enumerate() {
            let c = if d == a {
                match index(idx[k], x.shape[a]) {
                    Ok(c) => c,
                    Err(e) => {
                        err.get_or_insert(e);
                        0
                    }
                }
            } else {
                c as usize
            };
            dst += c * xs[d];
        }
        pairs.push((dst, k));
        k += 1;
    });
    if let Some(e) = err {
        return Err(e);
    }
    apply(x, upd, &pairs, reduction(op)?)
}

/// `nn.scatter_nd`: `out[indices[t]] (op)= updates[t]` for each index tuple
/// `t`, slices included.
pub fn scatter_nd(op: &Op<'_>) -> R {
    let (x, it, upd) = (op.input(0)?, op.input(1)?, op.input(2)?);
    let idx = indices(it)?;
    let q = it.rank();
    if q == 0 || x.rank() == 0 {
        return invalid("data and indices must have rank >= 1".into());
    }
    let m = it.shape[q - 1] as usize;
    if m > x.rank() {
        return invalid(format!("index tuples of length {m} exceed the data rank"));
    }
    let mut want = it.shape[..q - 1].to_vec();
    want.extend(&x.shape[m..]);
    if upd.shape != want {
        return invalid(format!("updates {:?} must have shape {want:?}", upd.shape));
    }
    let xs = strides(&x.shape);
    let slice: usize = x.shape[m..].iter().product::<u64>() as usize;
    let tuples: usize = it.shape[..q - 1].iter().product::<u64>() as usize;
    let mut pairs = Vec::with_capacity(tuples * slice);
    for t in 0..tuples {
        let mut off = 0usize;
        for j in 0..m {
            off += index(idx[t * m + j], x.shape[j])? * xs[j];
        }
        pairs.extend((0..slice).map(|s| (off + s, t * slice + s)));
    }
    apply(x, upd, &pairs, reduction(op)?)
}

/// `nn.pad`: negative pads crop first (as ONNX Runtime does; the ONNX
/// reference cannot express them), then the positive pads are filled by
/// `mode`: `constant` (with `constant_value`, default 0), `reflect`
/// (mirror without repeating the edge, periodically for wide pads, as
/// `numpy.pad`), `edge` or `wrap`.
pub fn pad(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let pads = int_list(op.input(1)?, "pads")?;
    let r = x.rank();
    let axes = match op.opt(3) {
        Some(a) => norm_axes(&int_list(a, "axes")?, r)?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return invalid(format!(
            "pads has {} entries for {} axes",
            pads.len(),
            axes.len()
        ));
    }
    let mut begin = vec![0i128; r];
    let mut end = vec![0i128; r];
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = i128::from(pads[i]);
        end[a] = i128::from(pads[i + axes.len()]);
    }
    let mode: PadMode = op.a.enum_attr("mode")?;
    // The cropped input: [lo, hi) per axis.
    let mut lo = vec![0i128; r];
    let mut ext = vec![0i128; r];
    let mut shape = Vec::with_capacity(r);
    for d in 0..r {
        let n = i128::from(x.shape[d]);
        lo[d] = (-begin[d]).max(0);
        ext[d] = n - lo[d] - (-end[d]).max(0);
        if ext[d] < 0 {
            return invalid(format!("pads crop axis {d} below zero"));
        }
        let o = ext[d] + begin[d].max(0) + end[d].max(0);
        shape.push(o as u64);
        if mode != PadMode::Constant && ext[d] == 0 && o > 0 {
            return invalid(format!("{mode} padding of an empty axis {d}"));
        }
    }
    op.check(&shape)?;
    // The fill value in both storages (integers exactly).
    let (cval, cint) = match op.opt(2) {
        Some(c) if c.numel() == 1 => (c.get_f64(0), c.ints().map_or(0, |v| v[0])),
        Some(_) => return invalid("constant_value must be a scalar".into()),
        None => (0.0, 0),
    };
    let xs = strides(&x.shape);
    // Maps a coordinate of the padded axis to the cropped input, or None.
    let src = |d: usize, o: u64| -> Option<usize> {
        let n = ext[d];
        let mut i = i128::from(o) - begin[d].max(0);
        if !(0..n).contains(&i) {
            match mode {
                PadMode::Constant => return None,
                PadMode::Edge => i = i.clamp(0, n - 1),
                PadMode::Wrap => i = i.rem_euclid(n),
                PadMode::Reflect => {
                    if n == 1 {
                        i = 0;
                    } else {
                        let p = 2 * (n - 1);
                        i = i.rem_euclid(p);
                        if i >= n {
                            i = p - i;
                        }
                    }
                }
            }
        }
        Some((i + lo[d]) as usize)
    };
    let mut pick = Vec::new();
    let mut fill = Vec::new();
    crate::util::for_each_index(&shape, |o| {
        let mut flat = Some(0usize);
        for (d, &c) in o.iter().enumerate() {
            flat = flat.and_then(|f| src(d, c).map(|s| f + s * xs[d]));
        }
        fill.push(flat.is_none());
        pick.push(flat.unwrap_or(0));
    });
    if x.numel() == 0 {
        return Ok(constant_fill(x.dtype, shape, cval, cint));
    }
    let mut out = x.pick(shape, pick);
    match &mut out.data {
        Data::Float(v) => {
            let c = round_float(x.dtype, cval);
            v.iter_mut()
                .zip(&fill)
                .filter(|p| *p.1)
                .for_each(|p| *p.0 = c);
        }
        Data::Int(v) => {
            let c = wrap_int(x.dtype, cint);
            v.iter_mut()
                .zip(&fill)
                .filter(|p| *p.1)
                .for_each(|p| *p.0 = c);
        }
    }
    Ok(out)
}

fn constant_fill(dt: DType, shape: Vec<u64>, c: f64, ci: i128) -> Tensor {
    let n = shape.iter().product::<u64>() as usize;
    if dt.is_float() {
        Tensor::from_f64(dt, shape, vec![c; n])
    } else {
        Tensor::from_ints(dt, shape, vec![ci; n])
    }
}
