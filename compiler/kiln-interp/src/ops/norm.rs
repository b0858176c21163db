//! Softmax family and normalizations. Statistics are computed in f64
//! (two-pass mean/variance), results rounded once to the dtype; softmax
//! alone rounds each step (`x - max`, `exp`, the sum, the quotient) to the
//! dtype, as the ONNX reference does.

use crate::eval::Op;
use crate::ops::reduce::{groups, lanes};
use crate::tensor::round_float;
use crate::util::{axis, broadcast_map};
use crate::{InterpError, Tensor};
use kiln_ir::DType;

type R = Result<Tensor, InterpError>;

/// The three axis maps.
#[derive(Clone, Copy, Debug)]
pub enum AxisMap {
    Softmax,
    LogSoftmax,
    Hardmax,
}

/// The sum of `v` as NumPy computes it on an array of dtype `dt`: bf16
/// (an ml_dtypes type) adds sequentially, rounding every partial sum; the
/// native float types accumulate wider and round once.
pub(crate) fn half_sum(dt: DType, v: &[f64]) -> f64 {
    if dt == DType::BF16 {
        v.iter().fold(0.0, |acc, &x| round_float(dt, acc + x))
    } else {
        round_float(dt, v.iter().sum())
    }
}

/// `nn.softmax`, `nn.log_softmax`, `nn.hardmax` along one axis. Softmax
/// subtracts the lane maximum first, so large inputs do not overflow.
pub fn axis_map(op: &Op<'_>, m: AxisMap) -> R {
    let x = op.input(0)?;
    let a = axis(op.a.int("axis")?, x.rank())?;
    let v = x.to_f64_vec();
    let mut out = vec![0.0; v.len()];
    for lane in lanes(&x.shape, a) {
        let max = lane.iter().map(|&i| v[i]).fold(f64::NEG_INFINITY, f64::max);
        match m {
            AxisMap::Hardmax => {
                // First index of the maximum.
                if let Some(&i) = lane.iter().find(|&&i| v[i] == max) {
                    out[i] = 1.0;
                }
            }
            AxisMap::Softmax => {
                // Each step rounded to the dtype, as the reference's NumPy
                // arrays are (see `half_sum`).
                let dt = x.dtype;
                let e: Vec<f64> = lane
                    .iter()
                    .map(|&i| round_float(dt, round_float(dt, v[i] - max).exp()))
                    .collect();
                let s = half_sum(dt, &e);
                for (&i, e) in lane.iter().zip(e) {
                    out[i] = e / s;
                }
            }
            AxisMap::LogSoftmax => {
                let s: f64 = lane.iter().map(|&i| (v[i] - max).exp()).sum();
                for &i in &lane {
                    out[i] = v[i] - max - s.ln();
                }
            }
        }
    }
    Ok(Tensor::from_f64(x.dtype, x.shape.clone(), out))
}

fn stash(op: &Op<'_>) -> Result<DType, InterpError> {
    Ok(match op.a.int("stash_type")? {
        1 => DType::F32,
        10 => DType::F16,
        11 => DType::F64,
        16 => DType::BF16,
        c => {
            return Err(InterpError::Invalid(format!(
                "stash_type {c} is not a float type code"
            )))
        }
    })
}

/// Broadcast map of an optional per-normalized-element parameter.
fn param(t: Option<&Tensor>, norm_shape: &[u64]) -> Option<(Vec<f64>, Vec<usize>)> {
    t.map(|t| (t.to_f64_vec(), broadcast_map(norm_shape, &t.shape)))
}

/// `nn.layer_norm` (and, with `rms`, `nn.rms_norm`): normalizes each
/// trailing block `x[.., axis..]`. Layer norm returns `y`, the mean and
/// the inverse standard deviation (in the stash dtype).
pub fn layer_norm(op: &Op<'_>, rms: bool) -> Result<Vec<Tensor>, InterpError> {
    let x = op.input(0)?;
    let a = axis(op.a.int("axis")?, x.rank())?;
    let eps = op.a.float("epsilon")?;
    let sd = stash(op)?;
    let norm_shape = &x.shape[a..];
    let n: usize = norm_shape.iter().product::<u64>() as usize;
    let scale = param(op.opt(1), norm_shape);
    let bias = if rms {
        None
    } else {
        param(op.opt(2), norm_shape)
    };
    let v = x.to_f64_vec();
    let outer = v.len().checked_div(n).unwrap_or(0);
    let mut y = vec![0.0; v.len()];
    let (mut means, mut invs) = (Vec::with_capacity(outer), Vec::with_capacity(outer));
    for o in 0..outer {
        let blk = &v[o * n..(o + 1) * n];
        let mean = if rms {
            0.0
        } else {
            blk.iter().sum::<f64>() / n as f64
        };
        let var = blk.iter().map(|&e| (e - mean) * (e - mean)).sum::<f64>() / n as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for j in 0..n {
            let mut r = (blk[j] - mean) * inv;
            if let Some((s, m)) = &scale {
                r *= s[m[j]];
            }
            if let Some((b, m)) = &bias {
                r += b[m[j]];
            }
            y[o * n + j] = r;
        }
        means.push(mean);
        invs.push(inv);
    }
    let y = Tensor::from_f64(x.dtype, x.shape.clone(), y);
    if rms {
        return Ok(vec![y]);
    }
    let mut stat = x.shape[..a].to_vec();
    stat.resize(x.rank(), 1);
    Ok(vec![
        y,
        Tensor::from_f64(sd, stat.clone(), means),
        Tensor::from_f64(sd, stat, invs),
    ])
}

/// `nn.batch_norm` (inference form) over channel axis 1.
pub fn batch_norm(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let eps = op.a.float("epsilon")?;
    let p: Vec<Vec<f64>> = (1..5)
        .map(|i| op.input(i).map(Tensor::to_f64_vec))
        .collect::<Result<_, _>>()?;
    let c = x.shape[1] as usize;
    if p.iter().any(|v| v.len() != c) {
        return Err(InterpError::Invalid(
            "batch_norm parameters must have C elements".into(),
        ));
    }
    let inner: usize = x.shape[2..].iter().product::<u64>() as usize;
    let v = x.to_f64_vec();
    let out = v
        .iter()
        .enumerate()
        .map(|(i, &e)| {
            let ch = (i / inner.max(1)) % c;
            (e - p[2][ch]) / (p[3][ch] + eps).sqrt() * p[0][ch] + p[1][ch]
        })
        .collect();
    Ok(Tensor::from_f64(x.dtype, x.shape.clone(), out))
}

/// Mean and population variance of each group.
fn moments(v: &[f64], g: &[usize]) -> (f64, f64) {
    let n = g.len() as f64;
    let mean = g.iter().map(|&i| v[i]).sum::<f64>() / n;
    let var = g
        .iter()
        .map(|&i| (v[i] - mean) * (v[i] - mean))
        .sum::<f64>()
        / n;
    (mean, var)
}

/// `nn.instance_norm`: per (sample, channel) over the spatial dims.
pub fn instance_norm(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let eps = op.a.float("epsilon")?;
    let (s, b) = (op.input(1)?.to_f64_vec(), op.input(2)?.to_f64_vec());
    let c = x.shape[1] as usize;
    if s.len() != c || b.len() != c {
        return Err(InterpError::Invalid(
            "scale and bias must have C elements".into(),
        ));
    }
    let mut mask = vec![true; x.rank()];
    mask[0] = false;
    mask[1] = false;
    let v = x.to_f64_vec();
    let mut out = vec![0.0; v.len()];
    for (gi, g) in groups(&x.shape, &mask).1.iter().enumerate() {
        let ch = gi % c;
        let (mean, var) = moments(&v, g);
        for &i in g {
            out[i] = (v[i] - mean) / (var + eps).sqrt() * s[ch] + b[ch];
        }
    }
    Ok(Tensor::from_f64(x.dtype, x.shape.clone(), out))
}

/// `nn.mean_variance_normalization`: `(x - mean) / (std + 1e-9)` over the
/// axes, as in the ONNX reference.
pub fn mvn(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let axes = op.a.ints("axes")?.unwrap_or_default();
    let mut mask = vec![false; x.rank()];
    for a in axes {
        mask[axis(a, x.rank())?] = true;
    }
    let v = x.to_f64_vec();
    let mut out = vec![0.0; v.len()];
    for g in groups(&x.shape, &mask).1 {
        let (mean, var) = moments(&v, &g);
        for &i in &g {
            out[i] = (v[i] - mean) / (var.sqrt() + 1e-9);
        }
    }
    Ok(Tensor::from_f64(x.dtype, x.shape.clone(), out))
}

/// `nn.lp_normalization`: `x / ||x||_p` along one axis (p is 1 or 2, the
/// norm of `|x|`), 0 where the norm is 0, as the ONNX reference.
pub fn lp_normalization(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let a = axis(op.a.int("axis")?, x.rank())?;
    let p = op.a.int("p")?;
    let v = x.to_f64_vec();
    let mut out = vec![0.0; v.len()];
    for lane in lanes(&x.shape, a) {
        let norm = if p == 1 {
            lane.iter().map(|&i| v[i].abs()).sum::<f64>()
        } else {
            lane.iter().map(|&i| v[i] * v[i]).sum::<f64>().sqrt()
        };
        for &i in &lane {
            out[i] = if norm == 0.0 { 0.0 } else { v[i] / norm };
        }
    }
    Ok(Tensor::from_f64(x.dtype, x.shape.clone(), out))
}
