//! Reductions, arg_max/arg_min, cumsum/cumprod and top_k.
//!
//! Float reductions accumulate in f64 and round once; integer ones wrap.
//! Max/min propagate NaN (as `np.maximum.reduce` does); arg_max/arg_min
//! treat NaN as the extreme value, returning its first (or last) index,
//! as NumPy does.

use crate::eval::Op;
use crate::tensor::Data;
use crate::util::{axis, for_each_index, strides, to_usize};
use crate::{InterpError, Tensor};
use kiln_ir::DType;

type R = Result<Tensor, InterpError>;

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug)]
pub enum Reduce {
    L1,
    L2,
    LogSum,
    LogSumExp,
    Max,
    Mean,
    Min,
    Prod,
    Sum,
    SumSquare,
}

/// The integer values of a shape-like operand (i64/i32 list or scalar).
pub(crate) fn int_list(t: &Tensor, what: &str) -> Result<Vec<i64>, InterpError> {
    let v = t
        .ints()
        .ok_or_else(|| InterpError::Invalid(format!("{what} must be an integer tensor")))?;
    v.iter()
        .map(|&x| {
            i64::try_from(x)
                .map_err(|_| InterpError::Invalid(format!("{what} value {x} overflows")))
        })
        .collect()
}

/// Groups the flat indices of `shape` by their position after reducing the
/// axes in `mask`: returns the kept-dims shape and, per output element, the
/// input indices in row-major order.
pub(crate) fn groups(shape: &[u64], mask: &[bool]) -> (Vec<u64>, Vec<Vec<usize>>) {
    let out: Vec<u64> = shape
        .iter()
        .zip(mask)
        .map(|(&d, &m)| if m { 1 } else { d })
        .collect();
    let os = strides(&out);
    let n: u64 = out.iter().product();
    let mut g = vec![Vec::new(); n as usize];
    let mut flat = 0usize;
    for_each_index(shape, |idx| {
        let o: usize = idx
            .iter()
            .zip(mask)
            .zip(&os)
            .map(|((&i, &m), &s)| if m { 0 } else { i as usize * s })
            .sum();
        g[o].push(flat);
        flat += 1;
    });
    (out, g)
}

/// `nn.reduce_*`.
pub fn reduce(op: &Op<'_>, r: Reduce) -> R {
    let x = op.input(0)?;
    let keep = op.a.bool("keepdims")?;
    let axes = match op.opt(1) {
        Some(t) => int_list(t, "axes")?,
        None => Vec::new(),
    };
    if axes.is_empty() && op.a.bool("noop_with_empty_axes")? {
        return Ok(x.clone());
    }
    let mut mask = vec![axes.is_empty(); x.rank()];
    for &a in &axes {
        let a = axis(a, x.rank())?;
        if mask[a] && !axes.is_empty() {
            return Err(InterpError::Invalid(format!("axis {a} is given twice")));
        }
        mask[a] = true;
    }
    let (kept, groups) = groups(&x.shape, &mask);
    let shape: Vec<u64> = if keep {
        kept
    } else {
        x.shape
            .iter()
            .zip(&mask)
            .filter(|(_, &m)| !m)
            .map(|(&d, _)| d)
            .collect()
    };
    op.check(&shape)?;
    let dt = x.dtype;
    match &x.data {
        Data::Float(v) => {
            let out = groups
                .iter()
                .map(|g| {
                    let it = g.iter().map(|&i| v[i]);
                    let n = g.len() as f64;
                    match r {
                        Reduce::L1 => it.map(f64::abs).sum(),
                        Reduce::L2 => it.map(|x| x * x).sum::<f64>().sqrt(),
                        Reduce::LogSum => it.sum::<f64>().ln(),
                        Reduce::LogSumExp => {
                            let m = g.iter().map(|&i| v[i]).fold(f64::NEG_INFINITY, f64::max);
                            if m.is_infinite() {
                                // Empty, all -inf, or +inf: no shift needed.
                                it.map(f64::exp).sum::<f64>().ln()
                            } else {
                                m + it.map(|x| (x - m).exp()).sum::<f64>().ln()
                            }
                        }
                        Reduce::Max => it.fold(f64::NEG_INFINITY, |a, b| {
                            if a.is_nan() || b.is_nan() {
                                f64::NAN
                            } else {
                                a.max(b)
                            }
                        }),
                        Reduce::Min => it.fold(f64::INFINITY, |a, b| {
                            if a.is_nan() || b.is_nan() {
                                f64::NAN
                            } else {
                                a.min(b)
                            }
                        }),
                        Reduce::Mean => it.sum::<f64>() / n,
                        Reduce::Prod => it.product(),
                        Reduce::Sum => it.sum(),
                        Reduce::SumSquare => it.map(|x| x * x).sum(),
                    }
                })
                .collect();
            Ok(Tensor::from_f64(dt, shape, out))
        }
        Data::Int(v) => {
            let (lo, hi) = crate::tensor::int_range(dt);
            let out = groups
                .iter()
                .map(|g| {
                    let it = g.iter().map(|&i| v[i]);
                    Ok(match r {
                        Reduce::L1 => it.fold(0i128, |a, b| a.wrapping_add(b.abs())),
                        Reduce::Max => it.fold(lo, i128::max),
                        Reduce::Min => it.fold(hi, i128::min),
                        Reduce::Mean if g.is_empty() => {
                            return Err(InterpError::Invalid("mean over an empty set".into()))
                        }
                        Reduce::Mean => {
                            crate::tensor::wrap_int(dt, it.fold(0i128, i128::wrapping_add))
                                / g.len() as i128
                        }
                        Reduce::Prod => it.fold(1i128, i128::wrapping_mul),
                        Reduce::Sum => it.fold(0i128, i128::wrapping_add),
                        Reduce::SumSquare => {
                            it.fold(0i128, |a, b| a.wrapping_add(b.wrapping_mul(b)))
                        }
                        Reduce::L2 | Reduce::LogSum | Reduce::LogSumExp => {
                            return Err(InterpError::Invalid(format!("{r:?} needs a float input")))
                        }
                    })
                })
                .collect::<Result<_, InterpError>>()?;
            Ok(Tensor::from_ints(dt, shape, out))
        }
    }
}

/// Slices of `x` along axis `a`: for each (outer, inner) position, the
/// flat indices along the axis.
pub(crate) fn lanes(shape: &[u64], a: usize) -> Vec<Vec<usize>> {
    let outer: usize = shape[..a].iter().product::<u64>() as usize;
    let n = shape[a] as usize;
    let inner: usize = shape[a + 1..].iter().product::<u64>() as usize;
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            out.push((0..n).map(|k| (o * n + k) * inner + i).collect());
        }
    }
    out
}

/// `nn.arg_max` / `nn.arg_min`.
pub fn arg(op: &Op<'_>, max: bool) -> R {
    let x = op.input(0)?;
    let a = axis(op.a.int("axis")?, x.rank())?;
    let last = op.a.bool("select_last_index")?;
    let mut shape = x.shape.clone();
    if op.a.bool("keepdims")? {
        shape[a] = 1;
    } else {
        shape.remove(a);
    }
    if x.shape[a] == 0 {
        return Err(InterpError::Invalid(
            "arg_max/arg_min over an empty axis".into(),
        ));
    }
    // `better(a, b)`: a strictly beats b. NaN beats everything.
    let better = |p: f64, q: f64| -> bool {
        if q.is_nan() {
            false
        } else if p.is_nan() {
            true
        } else if max {
            p > q
        } else {
            p < q
        }
    };
    let out = lanes(&x.shape, a)
        .into_iter()
        .map(|lane| {
            let mut best = 0usize;
            for k in 1..lane.len() {
                let (p, q) = (x.get_f64(lane[k]), x.get_f64(lane[best]));
                let tie = !better(p, q) && !better(q, p);
                if better(p, q) || (last && tie) {
                    best = k;
                }
            }
            best as i128
        })
        .collect();
    if x.ints().is_some() {
        // Compare integers exactly (f64 could merge large distinct values).
        let v = x.ints().unwrap_or_default();
        let out = lanes(&x.shape, a)
            .into_iter()
            .map(|lane| {
                let mut best = 0usize;
                for k in 1..lane.len() {
                    let (p, q) = (v[lane[k]], v[lane[best]]);
                    if (max && p > q) || (!max && p < q) || (last && p == q) {
                        best = k;
                    }
                }
                best as i128
            })
            .collect();
        return Ok(Tensor::from_ints(DType::I64, shape, out));
    }
    Ok(Tensor::from_ints(DType::I64, shape, out))
}

/// `nn.cumsum`.
pub fn cumsum(op: &Op<'_>) -> R {
    cumulative(op, false)
}

/// `nn.cumprod`.
pub fn cumprod(op: &Op<'_>) -> R {
    cumulative(op, true)
}

/// A running sum (or product, with `prod`) along the axis operand. Integer
/// products wrap in i128, which is exact modulo the dtype's width.
fn cumulative(op: &Op<'_>, prod: bool) -> R {
    let x = op.input(0)?;
    let ax = int_list(op.input(1)?, "axis")?;
    let [ax] = ax[..] else {
        return Err(InterpError::Invalid("axis must hold one value".into()));
    };
    let a = axis(ax, x.rank())?;
    let (excl, rev) = (op.a.bool("exclusive")?, op.a.bool("reverse")?);
    let mut order = lanes(&x.shape, a);
    if rev {
        order.iter_mut().for_each(|l| l.reverse());
    }
    match &x.data {
        Data::Float(v) => {
            let mut out = vec![0.0; v.len()];
            let step = |s: f64, x: f64| if prod { s * x } else { s + x };
            for lane in &order {
                let mut s = if prod { 1.0 } else { 0.0 };
                for &i in lane {
                    if excl {
                        out[i] = s;
                        s = step(s, v[i]);
                    } else {
                        s = step(s, v[i]);
                        out[i] = s;
                    }
                }
            }
            Ok(Tensor::from_f64(x.dtype, x.shape.clone(), out))
        }
        Data::Int(v) => {
            let mut out = vec![0i128; v.len()];
            let step = |s: i128, x: i128| {
                if prod {
                    s.wrapping_mul(x)
                } else {
                    s.wrapping_add(x)
                }
            };
            for lane in &order {
                let mut s = i128::from(prod);
                for &i in lane {
                    if excl {
                        out[i] = s;
                        s = step(s, v[i]);
                    } else {
                        s = step(s, v[i]);
                        out[i] = s;
                    }
                }
            }
            Ok(Tensor::from_ints(x.dtype, x.shape.clone(), out))
        }
    }
}

/// `nn.top_k`: values and i64 indices; ties keep the lower index first.
/// NaN counts as larger than every number.
pub fn top_k(op: &Op<'_>) -> Result<Vec<Tensor>, InterpError> {
    let x = op.input(0)?;
    let kv = int_list(op.input(1)?, "k")?;
    let [k] = kv[..] else {
        return Err(InterpError::Invalid("k must hold one value".into()));
    };
    let a = axis(op.a.int("axis")?, x.rank())?;
    let k = to_usize(i128::from(k), "k")?;
    if k as u64 > x.shape[a] {
        return Err(InterpError::Invalid(format!(
            "k = {k} exceeds the axis extent {}",
            x.shape[a]
        )));
    }
    let largest = op.a.bool("largest")?;
    let mut shape = x.shape.clone();
    shape[a] = k as u64;
    op.check(&shape)?;
    let inner: usize = x.shape[a + 1..].iter().product::<u64>() as usize;
    let os = strides(&shape);
    let total = shape.iter().product::<u64>() as usize;
    let mut src = vec![0usize; total];
    let mut idx = vec![0i128; total];
    let key = |i: usize| -> (bool, f64, i128) {
        match &x.data {
            Data::Float(v) => (v[i].is_nan(), v[i], 0),
            Data::Int(v) => (false, 0.0, v[i]),
        }
    };
    for (li, lane) in lanes(&x.shape, a).into_iter().enumerate() {
        let mut order: Vec<usize> = (0..lane.len()).collect();
        order.sort_by(|&p, &q| {
            let (kp, kq) = (key(lane[p]), key(lane[q]));
            let c =
                kp.0.cmp(&kq.0)
                    .then(kp.1.total_cmp(&kq.1))
                    .then(kp.2.cmp(&kq.2));
            let c = if largest { c.reverse() } else { c };
            c.then(p.cmp(&q))
        });
        let (o, i) = (li / inner, li % inner);
        for (j, &p) in order.iter().take(k).enumerate() {
            let dst = o * (k * inner) + j * inner + i;
            debug_assert!(a >= os.len() || dst < total);
            src[dst] = lane[p];
            idx[dst] = p as i128;
        }
    }
    Ok(vec![
        x.pick(shape.clone(), src),
        Tensor::from_ints(DType::I64, shape, idx),
    ])
}
