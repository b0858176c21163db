//! `nn.resize`, following the ONNX reference implementation
//! (`onnx/reference/ops/op_resize.py`) step by step.
//!
//! Resampling is separable: each resized axis is interpolated in turn, in
//! f64, over the whole tensor. For output coordinate `y` the source
//! coordinate `x` comes from `coordinate_transformation_mode`; with
//! `ratio = x - floor(x)` (or 1 when `x` is integral) the mode gives an
//! even number `n` of coefficients for the source indices
//! `x - ratio + 1 - n/2 + j`, which are clamped into the input (edge
//! padding) after `exclude_outside` has zeroed and renormalized the
//! coefficients of outside indices. The result is rounded once: floats are
//! clamped to the dtype's finite range, integers rounded half to even and
//! saturated, as the reference's `saturate_cast`.

use crate::eval::Op;
use crate::tensor::{int_range, round_float};
use crate::util::strides;
use crate::{InterpError, Tensor};
use kiln_ir::ops::infer::norm_axes;
use kiln_ir::ops::resample::{self, isclose, Kernel};

type R = Result<Tensor, InterpError>;

fn invalid<T>(msg: String) -> Result<T, InterpError> {
    Err(InterpError::Invalid(msg))
}

/// Per-axis resampling parameters: the shared geometry plus the value of
/// extrapolated positions.
struct Axis<'s> {
    geometry: resample::Axis<'s>,
    extrapolation: f64,
}

/// Resamples axis `a` of `v` (shape `shape`), returning the new data.
fn resample(v: &[f64], shape: &[u64], a: usize, p: &Axis<'_>) -> Vec<f64> {
    let n_in = shape[a];
    let outer: usize = shape[..a].iter().product::<u64>() as usize;
    let inner: usize = shape[a + 1..].iter().product::<u64>() as usize;
    let taps = p.geometry.taps();
    let n_out = p.geometry.out as usize;
    let mut out = vec![0.0; outer * n_out * inner];
    for o in 0..outer {
        for (y, t) in taps.iter().enumerate() {
            for i in 0..inner {
                out[(o * n_out + y) * inner + i] = match t {
                    None => p.extrapolation,
                    Some(t) => t
                        .iter()
                        .map(|&(s, c)| c * v[(o * n_in as usize + s as usize) * inner + i])
                        .sum(),
                };
            }
        }
    }
    out
}

/// Operand `i` if present and non-empty (exporters pass empty tensors for
/// unused operands).
fn nonempty<'a>(op: &Op<'a>, i: usize) -> Option<&'a Tensor> {
    op.opt(i).filter(|t| t.numel() > 0)
}

/// `nn.resize`.
pub fn resize(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let r = x.rank();
    let axes = match op.a.ints("axes")? {
        Some(a) => norm_axes(&a, r)?,
        None => (0..r).collect(),
    };
    let ctm = op.a.str("coordinate_transformation_mode")?;
    let antialias = op.a.bool("antialias")?;
    let kernel = match op.a.str("mode")? {
        "nearest" => Kernel::Nearest(op.a.str("nearest_mode")?),
        "linear" => Kernel::Linear { antialias },
        "cubic" => Kernel::Cubic {
            a: op.a.float("cubic_coeff_a")?,
            antialias,
        },
        m => return invalid(format!("unknown resize mode \"{m}\"")),
    };
    let mut scale = vec![1.0f64; r];
    let mut out: Vec<u64> = x.shape.clone();
    let mut roi: Vec<(f64, f64)> = vec![(0.0, 1.0); r];
    let crop = ctm == "tf_crop_and_resize";
    if let (true, Some(t)) = (crop, nonempty(op, 1)) {
        let v = t.to_f64_vec();
        if v.len() != 2 * axes.len() {
            return invalid(format!(
                "roi has {} entries for {} axes",
                v.len(),
                axes.len()
            ));
        }
        for (i, &a) in axes.iter().enumerate() {
            roi[a] = (v[i], v[i + axes.len()]);
        }
    }
    match (nonempty(op, 2), nonempty(op, 3)) {
        (Some(s), None) => {
            let s = s.to_f64_vec();
            if s.len() != axes.len() {
                return invalid(format!(
                    "scales has {} entries for {} axes",
                    s.len(),
                    axes.len()
                ));
            }
            for (i, &a) in axes.iter().enumerate() {
                if !(s[i] > 0.0 && s[i].is_finite()) {
                    return invalid(format!("scales must be positive, got {}", s[i]));
                }
                scale[a] = s[i];
                let mut e = x.shape[a] as f64 * s[i];
                if crop {
                    e *= roi[a].1 - roi[a].0;
                }
                out[a] = e.max(0.0).floor() as u64;
            }
        }
        (None, Some(sz)) => {
            let sz = sz
                .ints()
                .ok_or_else(|| InterpError::Invalid("sizes must be i64".into()))?;
            if sz.len() != axes.len() || sz.iter().any(|&v| v < 0) {
                return invalid(format!("sizes {sz:?} do not fit {} axes", axes.len()));
            }
            for (i, &a) in axes.iter().enumerate() {
                scale[a] = sz[i] as f64 / x.shape[a] as f64;
            }
            let policy = op.a.str("keep_aspect_ratio_policy")?;
            if policy == "stretch" {
                for (i, &a) in axes.iter().enumerate() {
                    out[a] = sz[i] as u64;
                }
            } else {
                let it = axes.iter().map(|&a| scale[a]);
                let s = if policy == "not_larger" {
                    it.fold(f64::INFINITY, f64::min)
                } else {
                    it.fold(f64::NEG_INFINITY, f64::max)
                };
                for &a in &axes {
                    scale[a] = s;
                    // round half up, as the reference
                    out[a] = (s * x.shape[a] as f64 + 0.5) as u64;
                }
            }
        }
        _ => return invalid("give exactly one of scales and sizes".into()),
    }
    op.check(&out)?;
    let mut shape = x.shape.clone();
    let mut v = x.to_f64_vec();
    let exclude_outside = op.a.bool("exclude_outside")?;
    let extrapolation = op.a.float("extrapolation_value")?;
    for &a in &axes {
        let trivial_roi = !crop || (isclose(roi[a].0, 0.0) && isclose(roi[a].1, 1.0));
        if isclose(scale[a], 1.0) && out[a] == shape[a] && trivial_roi {
            continue;
        }
        if shape[a] == 0 {
            return invalid(format!("cannot resample the empty axis {a}"));
        }
        let p = Axis {
            geometry: resample::Axis {
                n_in: shape[a],
                scale: scale[a],
                out: out[a],
                roi: roi[a],
                ctm,
                kernel,
                exclude_outside,
            },
            extrapolation,
        };
        v = resample(&v, &shape, a, &p);
        shape[a] = out[a];
    }
    debug_assert_eq!(strides(&shape).len(), r);
    if x.dtype.is_float() {
        let m = x.dtype.max_finite();
        let v = v
            .into_iter()
            .map(|e| round_float(x.dtype, e.clamp(-m, m)))
            .collect();
        Ok(Tensor::from_f64(x.dtype, shape, v))
    } else {
        let (lo, hi) = int_range(x.dtype);
        let v = v
            .into_iter()
            .map(|e| (e.round_ties_even() as i128).clamp(lo, hi))
            .collect();
        Ok(Tensor::from_ints(x.dtype, shape, v))
    }
}
