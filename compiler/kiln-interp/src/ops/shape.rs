//! Data movement: reshape, transpose, concat, slice, gathers and scatters,
//! split, squeeze/unsqueeze, flatten, expand, tile, pad, shape, size,
//! range, constant_of_shape, trilu, dropout (inference), depth/space
//! rearrangements, one_hot, non_zero, eye_like.
//!
//! Every op builds its result by computing, for each result element, the
//! flat index of the source element ([`Tensor::pick`]); indices are
//! bounds-checked and negative indices count from the end, as in ONNX.

use crate::eval::Op;
use crate::ops::reduce::int_list;
use crate::tensor::{numel, Data};
use crate::util::{axis, broadcast_map, broadcast_shapes, for_each_index, strides, to_usize};
use crate::{InterpError, Tensor};
use kiln_ir::ops::infer::norm_axis_incl;
use kiln_ir::ops::DepthToSpaceMode;
use kiln_ir::DType;

type R = Result<Tensor, InterpError>;

fn invalid<T>(msg: String) -> Result<T, InterpError> {
    Err(InterpError::Invalid(msg))
}

fn flat(idx: &[u64], st: &[usize]) -> usize {
    idx.iter().zip(st).map(|(&i, &s)| i as usize * s).sum()
}

/// Resolves a possibly negative index against extent `n`.
fn index(i: i128, n: u64) -> Result<u64, InterpError> {
    let r = if i < 0 { i + i128::from(n) } else { i };
    if r < 0 || r >= i128::from(n) {
        return invalid(format!("index {i} is out of range for extent {n}"));
    }
    Ok(r as u64)
}

/// `nn.reshape`: `0` copies the input extent (unless `allowzero`), `-1`
/// is inferred.
pub fn reshape(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let spec = int_list(op.input(1)?, "shape")?;
    let allowzero = op.a.bool("allowzero")?;
    let mut shape = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                shape.push(1);
            }
            0 if !allowzero => shape.push(*x.shape.get(i).ok_or_else(|| {
                InterpError::Invalid(format!("shape entry {i} copies a missing input dim"))
            })?),
            s if s >= 0 => shape.push(s as u64),
            s => return invalid(format!("invalid shape entry {s}")),
        }
    }
    let n = x.numel() as u64;
    if let Some(i) = infer_at {
        let rest = numel(&shape).unwrap_or(u64::MAX);
        if rest == 0 || !n.is_multiple_of(rest) {
            return invalid(format!(
                "cannot infer a dim reshaping {:?} to {spec:?}",
                x.shape
            ));
        }
        shape[i] = n / rest;
    }
    if numel(&shape) != Some(n) {
        return invalid(format!("cannot reshape {:?} to {shape:?}", x.shape));
    }
    Ok(x.clone().reshaped(shape))
}

/// Transposes by a permutation.
pub fn permute(x: &Tensor, perm: &[usize]) -> Tensor {
    let shape: Vec<u64> = perm.iter().map(|&p| x.shape[p]).collect();
    let st = strides(&x.shape);
    let pst: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    let mut idx = Vec::with_capacity(x.numel());
    for_each_index(&shape, |i| idx.push(flat(i, &pst)));
    x.pick(shape, idx)
}

/// `nn.transpose`; the default permutation reverses the dims.
pub fn transpose(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let perm: Vec<usize> = match op.a.ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&a| axis(a, x.rank()))
            .collect::<Result<_, _>>()?,
        None => (0..x.rank()).rev().collect(),
    };
    let mut seen = perm.clone();
    seen.sort_unstable();
    if seen != (0..x.rank()).collect::<Vec<_>>() {
        return invalid(format!("perm {perm:?} is not a permutation"));
    }
    Ok(permute(x, &perm))
}

/// `nn.concat`.
pub fn concat(op: &Op<'_>) -> R {
    let ts = op.present();
    let first = ts[0];
    let a = axis(op.a.int("axis")?, first.rank())?;
    let mut shape = first.shape.clone();
    shape[a] = 0;
    for t in &ts {
        if t.rank() != first.rank()
            || t.dtype != first.dtype
            || (0..t.rank()).any(|d| d != a && t.shape[d] != first.shape[d])
        {
            return invalid(format!(
                "cannot concatenate {:?} with {:?}",
                t.shape, first.shape
            ));
        }
        shape[a] += t.shape[a];
    }
    op.check(&shape)?;
    let outer: usize = shape[..a].iter().product::<u64>() as usize;
    let mut data_f = Vec::new();
    let mut data_i = Vec::new();
    for o in 0..outer {
        for t in &ts {
            let blk = (t.shape[a..].iter().product::<u64>()) as usize;
            match &t.data {
                Data::Float(v) => data_f.extend_from_slice(&v[o * blk..(o + 1) * blk]),
                Data::Int(v) => data_i.extend_from_slice(&v[o * blk..(o + 1) * blk]),
            }
        }
    }
    Ok(Tensor {
        dtype: first.dtype,
        shape,
        data: if first.floats().is_some() {
            Data::Float(data_f)
        } else {
            Data::Int(data_i)
        },
    })
}

/// `nn.slice` with ONNX clamping rules (negative steps walk backwards).
pub fn slice(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let starts = int_list(op.input(1)?, "starts")?;
    let ends = int_list(op.input(2)?, "ends")?;
    let axes: Vec<usize> = match op.opt(3) {
        Some(t) => int_list(t, "axes")?
            .iter()
            .map(|&a| axis(a, x.rank()))
            .collect::<Result<_, _>>()?,
        None => (0..starts.len()).collect(),
    };
    let steps = match op.opt(4) {
        Some(t) => int_list(t, "steps")?,
        None => vec![1; starts.len()],
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return invalid("starts, ends, axes and steps must have equal lengths".into());
    }
    // Per dim: first index and step; extent.
    let mut first = vec![0i128; x.rank()];
    let mut step = vec![1i128; x.rank()];
    let mut shape = x.shape.clone();
    for (i, &a) in axes.iter().enumerate() {
        let n = i128::from(x.shape[a]);
        let st = i128::from(steps[i]);
        if st == 0 {
            return invalid("slice step must be non-zero".into());
        }
        let norm = |v: i64| {
            let v = i128::from(v);
            if v < 0 {
                v + n
            } else {
                v
            }
        };
        let (s, e) = (norm(starts[i]), norm(ends[i]));
        let (s, e) = if st > 0 {
            (s.clamp(0, n), e.clamp(0, n))
        } else {
            (s.clamp(-1, n - 1), e.clamp(-1, n - 1))
        };
        let len = if st > 0 {
            if e > s {
                (e - s + st - 1) / st
            } else {
                0
            }
        } else if s > e {
            (s - e + (-st) - 1) / (-st)
        } else {
            0
        };
        first[a] = s;
        step[a] = st;
        shape[a] = len as u64;
    }
    op.check(&shape)?;
    let st = strides(&x.shape);
    let mut idx = Vec::new();
    for_each_index(&shape, |i| {
        let f: i128 = (0..i.len())
            .map(|d| (first[d] + i128::from(i[d]) * step[d]) * st[d] as i128)
            .sum();
        idx.push(f as usize);
    });
    Ok(x.pick(shape, idx))
}

/// `nn.gather` along an axis; negative indices count from the end.
pub fn gather(op: &Op<'_>) -> R {
    let (x, ind) = (op.input(0)?, op.input(1)?);
    let a = axis(op.a.int("axis")?, x.rank())?;
    let iv = ind
        .ints()
        .ok_or_else(|| InterpError::Invalid("indices must be integers".into()))?;
    let iv: Vec<u64> = iv
        .iter()
        .map(|&i| index(i, x.shape[a]))
        .collect::<Result<_, _>>()?;
    let mut shape = x.shape[..a].to_vec();
    shape.extend(&ind.shape);
    shape.extend(&x.shape[a + 1..]);
    op.check(&shape)?;
    let outer: usize = x.shape[..a].iter().product::<u64>() as usize;
    let inner: usize = x.shape[a + 1..].iter().product::<u64>() as usize;
    let n = x.shape[a] as usize;
    let mut idx = Vec::with_capacity(outer * iv.len() * inner);
    for o in 0..outer {
        for &k in &iv {
            for i in 0..inner {
                idx.push((o * n + k as usize) * inner + i);
            }
        }
    }
    Ok(x.pick(shape, idx))
}

/// `nn.gather_elements`.
pub fn gather_elements(op: &Op<'_>) -> R {
    let (x, ind) = (op.input(0)?, op.input(1)?);
    let a = axis(op.a.int("axis")?, x.rank())?;
    if ind.rank() != x.rank() {
        return invalid("indices must have the data's rank".into());
    }
    let iv = ind
        .ints()
        .ok_or_else(|| InterpError::Invalid("indices must be integers".into()))?;
    let st = strides(&x.shape);
    let mut idx = Vec::with_capacity(iv.len());
    let mut err = None;
    let mut e = 0;
    for_each_index(&ind.shape, |i| {
        let mut p = i.to_vec();
        match index(iv[e], x.shape[a]) {
            Ok(k) => p[a] = k,
            Err(er) => err = Some(er),
        }
        if p.iter().zip(&x.shape).any(|(&q, &n)| q >= n) {
            err = Some(InterpError::Invalid(
                "indices shape exceeds the data shape".into(),
            ));
        }
        idx.push(flat(&p, &st));
        e += 1;
    });
    if let Some(er) = err {
        return Err(er);
    }
    Ok(x.pick(ind.shape.clone(), idx))
}

/// `nn.squeeze`: removes the given extent-1 axes, or all of them.
pub fn squeeze(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let axes: Vec<usize> = match op.opt(1) {
        Some(t) => int_list(t, "axes")?
            .iter()
            .map(|&a| axis(a, x.rank()))
            .collect::<Result<_, _>>()?,
        None => (0..x.rank()).filter(|&d| x.shape[d] == 1).collect(),
    };
    if let Some(&a) = axes.iter().find(|&&a| x.shape[a] != 1) {
        return invalid(format!("cannot squeeze axis {a} of extent {}", x.shape[a]));
    }
    let shape = (0..x.rank())
        .filter(|d| !axes.contains(d))
        .map(|d| x.shape[d])
        .collect();
    Ok(x.clone().reshaped(shape))
}

/// `nn.unsqueeze`: inserts extent-1 axes at positions of the result.
pub fn unsqueeze(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let axes = int_list(op.input(1)?, "axes")?;
    let r = x.rank() + axes.len();
    let mut ins = vec![false; r];
    for &a in &axes {
        let a = axis(a, r)?;
        if ins[a] {
            return invalid(format!("axis {a} is given twice"));
        }
        ins[a] = true;
    }
    let mut it = x.shape.iter();
    let shape = ins
        .iter()
        .map(|&b| if b { 1 } else { *it.next().unwrap_or(&1) })
        .collect();
    Ok(x.clone().reshaped(shape))
}

/// `nn.flatten` to a matrix at `axis`.
pub fn flatten(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    // Flatten's axis lies in [-r, r]; a negative one counts from r (unlike
    // insert positions, where -1 means r).
    let r = x.rank() as i64;
    let axis = op.a.int("axis")?;
    if axis < -r || axis > r {
        return Err(InterpError::Invalid(format!(
            "axis {axis} is out of range for rank {r}"
        )));
    }
    let a = if axis < 0 { axis + r } else { axis } as usize;
    let shape = vec![x.shape[..a].iter().product(), x.shape[a..].iter().product()];
    Ok(x.clone().reshaped(shape))
}

/// `nn.expand`: bidirectional broadcast to the given shape.
pub fn expand(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let s: Vec<u64> = int_list(op.input(1)?, "shape")?
        .iter()
        .map(|&d| {
            u64::try_from(d).map_err(|_| InterpError::Invalid(format!("negative extent {d}")))
        })
        .collect::<Result<_, _>>()?;
    let shape = broadcast_shapes(&[&x.shape, &s])?;
    op.check(&shape)?;
    let map = broadcast_map(&shape, &x.shape);
    Ok(x.pick(shape, map))
}

/// `nn.tile`.
pub fn tile(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let reps = int_list(op.input(1)?, "repeats")?;
    if reps.len() != x.rank() || reps.iter().any(|&r| r < 0) {
        return invalid(format!(
            "repeats {reps:?} must be {} non-negative values",
            x.rank()
        ));
    }
    let shape: Vec<u64> = x
        .shape
        .iter()
        .zip(&reps)
        .map(|(&d, &r)| d.saturating_mul(r as u64))
        .collect();
    op.check(&shape)?;
    let st = strides(&x.shape);
    let mut idx = Vec::new();
    for_each_index(&shape, |i| {
        idx.push(
            i.iter()
                .zip(&x.shape)
                .zip(&st)
                .map(|((&p, &n), &s)| (p % n) as usize * s)
                .sum(),
        );
    });
    Ok(x.pick(shape, idx))
}

/// `nn.shape` with optional start/end (clamped, negative from the end).
pub fn shape_of(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let r = x.rank() as i64;
    let clampi = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) } as usize;
    let s = clampi(op.a.int("start")?);
    let e = clampi(op.a.opt_int("end")?.unwrap_or(r));
    let dims: Vec<i128> = if s < e {
        x.shape[s..e].iter().map(|&d| i128::from(d)).collect()
    } else {
        Vec::new()
    };
    Ok(Tensor::from_ints(DType::I64, vec![dims.len() as u64], dims))
}

/// `nn.size`.
pub fn size(op: &Op<'_>) -> R {
    Ok(Tensor::from_ints(
        DType::I64,
        vec![],
        vec![op.input(0)?.numel() as i128],
    ))
}

/// `nn.split` by sizes or into equal chunks (the last may be smaller).
pub fn split(op: &Op<'_>) -> Result<Vec<Tensor>, InterpError> {
    let x = op.input(0)?;
    let a = axis(op.a.int("axis")?, x.rank())?;
    let n = x.shape[a];
    let k = op.num_outputs as u64;
    let sizes: Vec<u64> = match op.opt(1) {
        Some(t) => int_list(t, "split")?
            .iter()
            .map(|&s| {
                u64::try_from(s).map_err(|_| InterpError::Invalid(format!("negative split {s}")))
            })
            .collect::<Result<_, _>>()?,
        None => {
            let c = n.div_ceil(k.max(1));
            (0..k).map(|i| c.min(n.saturating_sub(i * c))).collect()
        }
    };
    if sizes.iter().sum::<u64>() != n {
        return invalid(format!("split sizes {sizes:?} do not sum to {n}"));
    }
    let mut out = Vec::with_capacity(sizes.len());
    let mut start = 0u64;
    let st = strides(&x.shape);
    for s in sizes {
        let mut shape = x.shape.clone();
        shape[a] = s;
        let mut idx = Vec::new();
        for_each_index(&shape, |i| {
            let mut p = i.to_vec();
            p[a] += start;
            idx.push(flat(&p, &st));
        });
        out.push(x.pick(shape, idx));
        start += s;
    }
    Ok(out)
}

/// `nn.dropout` in inference mode: the identity and an all-true mask.
/// Training mode (a true `training_mode` operand) is random and refused.
pub fn dropout(op: &Op<'_>) -> Result<Vec<Tensor>, InterpError> {
    let x = op.input(0)?;
    if let Some(t) = op.opt(2) {
        if t.ints().is_some_and(|v| v.iter().any(|&b| b != 0)) {
            return Err(InterpError::Unsupported(
                "dropout in training mode is random".into(),
            ));
        }
    }
    Ok(vec![
        x.clone(),
        Tensor::from_bools(x.shape.clone(), vec![true; x.numel()]),
    ])
}

/// `nn.constant_of_shape`.
pub fn constant_of_shape(op: &Op<'_>) -> R {
    let shape: Vec<u64> = int_list(op.input(0)?, "shape")?
        .iter()
        .map(|&d| {
            u64::try_from(d).map_err(|_| InterpError::Invalid(format!("negative extent {d}")))
        })
        .collect::<Result<_, _>>()?;
    op.check(&shape)?;
    let dt = op.a.dtype("value_dtype")?.unwrap_or(DType::F32);
    let v = op.a.float("value")?;
    let n = numel(&shape).unwrap_or(0) as usize;
    Ok(if dt.is_float() {
        Tensor::from_f64(dt, shape, vec![v; n])
    } else {
        Tensor::from_ints(dt, shape, vec![v as i128; n])
    })
}

/// `nn.range`: `start + i * delta` for `i < ceil((limit - start) / delta)`.
pub fn range(op: &Op<'_>) -> R {
    let (s, l, d) = (op.input(0)?, op.input(1)?, op.input(2)?);
    let dt = s.dtype;
    if dt.is_float() {
        let (s, l, d) = (s.get_f64(0), l.get_f64(0), d.get_f64(0));
        if d == 0.0 {
            return invalid("delta must be non-zero".into());
        }
        let n = ((l - s) / d).ceil().max(0.0);
        op.check(&[n as u64])?;
        let v = (0..n as u64).map(|i| s + i as f64 * d).collect();
        Ok(Tensor::from_f64(dt, vec![n as u64], v))
    } else {
        let g = |t: &Tensor| t.ints().and_then(|v| v.first().copied()).unwrap_or(0);
        let (s, l, d) = (g(s), g(l), g(d));
        if d == 0 {
            return invalid("delta must be non-zero".into());
        }
        let (num, den) = if d < 0 { (s - l, -d) } else { (l - s, d) };
        let n = if num <= 0 { 0 } else { (num + den - 1) / den } as u64;
        op.check(&[n])?;
        Ok(Tensor::from_ints(
            dt,
            vec![n],
            (0..n as i128).map(|i| s + i * d).collect(),
        ))
    }
}

/// `nn.trilu`: keeps the upper (`j - i >= k`) or lower (`j - i <= k`)
/// triangle of the last two dims.
pub fn trilu(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let k = match op.opt(1) {
        Some(t) => *int_list(t, "k")?.first().unwrap_or(&0),
        None => 0,
    };
    let upper = op.a.bool("upper")?;
    if x.rank() < 2 {
        return invalid("trilu needs rank >= 2".into());
    }
    let (r, c) = (x.shape[x.rank() - 2] as i128, x.shape[x.rank() - 1] as i128);
    let keep = |e: usize| {
        let e = e as i128;
        let (i, j) = ((e / c) % r.max(1), e % c.max(1));
        if upper {
            j - i >= i128::from(k)
        } else {
            j - i <= i128::from(k)
        }
    };
    let data = match &x.data {
        Data::Float(v) => Data::Float(
            v.iter()
                .enumerate()
                .map(|(e, &a)| if keep(e) { a } else { 0.0 })
                .collect(),
        ),
        Data::Int(v) => Data::Int(
            v.iter()
                .enumerate()
                .map(|(e, &a)| if keep(e) { a } else { 0 })
                .collect(),
        ),
    };
    Ok(Tensor {
        dtype: x.dtype,
        shape: x.shape.clone(),
        data,
    })
}

/// `nn.eye_like`: ones on diagonal `k`.
pub fn eye_like(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let dt = op.a.dtype("dtype")?.unwrap_or(x.dtype);
    let k = op.a.int("k")? as i128;
    let c = x.shape[1] as i128;
    let v: Vec<i128> = (0..x.numel() as i128)
        .map(|e| i128::from(e % c - e / c == k))
        .collect();
    Ok(if dt.is_float() {
        Tensor::from_f64(
            dt,
            x.shape.clone(),
            v.into_iter().map(|b| b as f64).collect(),
        )
    } else {
        Tensor::from_ints(dt, x.shape.clone(), v)
    })
}

/// `nn.non_zero`: i64 `[rank, count]` coordinates in row-major order.
pub fn non_zero(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let mut coords: Vec<Vec<u64>> = Vec::new();
    let mut e = 0;
    for_each_index(&x.shape, |i| {
        if x.get_f64(e) != 0.0 || x.ints().is_some_and(|v| v[e] != 0) {
            coords.push(i.to_vec());
        }
        e += 1;
    });
    let (r, n) = (x.rank(), coords.len());
    let mut v = vec![0i128; r * n];
    for (j, c) in coords.iter().enumerate() {
        for d in 0..r {
            v[d * n + j] = i128::from(c[d]);
        }
    }
    Ok(Tensor::from_ints(DType::I64, vec![r as u64, n as u64], v))
}

/// `nn.one_hot`: `values[1]` where the index (negative from the end)
/// equals the position along the new axis, `values[0]` elsewhere.
pub fn one_hot(op: &Op<'_>) -> R {
    let (ind, depth, values) = (op.input(0)?, op.input(1)?, op.input(2)?);
    let d = depth.get_f64(0).trunc();
    if d.is_nan() || d < 0.0 {
        return invalid(format!("depth must be non-negative, got {d}"));
    }
    let d = d as u64;
    let a = norm_axis_incl(op.a.int("axis")?, ind.rank())?;
    let mut shape = ind.shape.clone();
    shape.insert(a, d);
    op.check(&shape)?;
    let mut idx = Vec::new();
    for_each_index(&shape, |i| {
        let mut src = i.to_vec();
        let pos = src.remove(a);
        let e = flat(&src, &strides(&ind.shape));
        let mut k = ind.get_f64(e).trunc() as i128;
        if k < 0 {
            k += i128::from(d);
        }
        idx.push(usize::from(k == i128::from(pos)));
    });
    Ok(values.pick(shape, idx))
}

/// `nn.depth_to_space` (DCR or CRD) on [N, C, H, W].
pub fn depth_to_space(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let b = to_usize(i128::from(op.a.int("blocksize")?), "blocksize")? as u64;
    let [n, c, h, w] = x.shape[..] else {
        return invalid("depth_to_space needs a 4-D input".into());
    };
    if b == 0 || c % (b * b) != 0 {
        return invalid(format!("channels {c} are not divisible by blocksize^2"));
    }
    let c2 = c / (b * b);
    let crd = op.a.enum_attr::<DepthToSpaceMode>("mode")? == DepthToSpaceMode::Crd;
    let (tmp, perm): (Vec<u64>, [usize; 6]) = if crd {
        (vec![n, c2, b, b, h, w], [0, 1, 4, 2, 5, 3])
    } else {
        (vec![n, b, b, c2, h, w], [0, 3, 4, 1, 5, 2])
    };
    Ok(permute(&x.clone().reshaped(tmp), &perm).reshaped(vec![n, c2, h * b, w * b]))
}

/// `nn.space_to_depth` on [N, C, H, W].
pub fn space_to_depth(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let b = to_usize(i128::from(op.a.int("blocksize")?), "blocksize")? as u64;
    let [n, c, h, w] = x.shape[..] else {
        return invalid("space_to_depth needs a 4-D input".into());
    };
    if b == 0 || h % b != 0 || w % b != 0 {
        return invalid("spatial dims are not divisible by blocksize".into());
    }
    let t = x.clone().reshaped(vec![n, c, h / b, b, w / b, b]);
    Ok(permute(&t, &[0, 3, 5, 1, 2, 4]).reshaped(vec![n, c * b * b, h / b, w / b]))
}
