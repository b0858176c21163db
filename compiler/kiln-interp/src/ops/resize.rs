//! `nn.resize`, following the ONNX reference implementation
//! (`onnx/reference/ops/op_resize.py`) step by step, and `nn.grid_sample`
//! (see [`grid_sample`]).
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
use crate::tensor::{int_range, round_float, Data};
use crate::util::strides;
use crate::{InterpError, Tensor};
use kiln_ir::ops::infer::norm_axes;
use kiln_ir::ops::resample::{
    self, isclose, resize_extents, AspectPolicy, CoordinateTransform, Exact, GridAxis, GridMode,
    GridPadding, GridTap, Kernel, ResizeExtents, ResizeMode,
};
use kiln_ir::DType;

type R = Result<Tensor, InterpError>;

fn invalid<T>(msg: String) -> Result<T, InterpError> {
    Err(InterpError::Invalid(msg))
}

/// Per-axis resampling parameters: the shared geometry plus the value of
/// extrapolated positions.
struct Axis {
    geometry: resample::Axis,
    extrapolation: f64,
}

/// Resamples axis `a` of `v` (shape `shape`), returning the new data.
fn resample(v: &[f64], shape: &[u64], a: usize, p: &Axis) -> Vec<f64> {
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
    let ctm: CoordinateTransform = op.a.enum_attr("coordinate_transformation_mode")?;
    let antialias = op.a.bool("antialias")?;
    let kernel = match op.a.enum_attr("mode")? {
        ResizeMode::Nearest => Kernel::Nearest(op.a.enum_attr("nearest_mode")?),
        ResizeMode::Linear => Kernel::Linear { antialias },
        ResizeMode::Cubic => Kernel::Cubic {
            a: op.a.float("cubic_coeff_a")?,
            antialias,
        },
    };
    let crop = ctm == CoordinateTransform::TfCropAndResize;
    let roi = nonempty(op, 1).map(Tensor::to_f64_vec);
    let scales = nonempty(op, 2).map(Tensor::to_f64_vec);
    let sizes = match nonempty(op, 3) {
        Some(t) => Some(
            t.ints()
                .ok_or_else(|| InterpError::Invalid("sizes must be i64".into()))?
                .iter()
                .map(|&v| i64::try_from(v).unwrap_or(-1))
                .collect::<Vec<i64>>(),
        ),
        None => None,
    };
    let policy: AspectPolicy = op.a.enum_attr("keep_aspect_ratio_policy")?;
    let ResizeExtents { scale, out, roi } = resize_extents(
        &x.shape,
        &axes,
        crop,
        roi.as_deref(),
        scales.as_deref(),
        sizes.as_deref(),
        policy,
    )
    .map_err(InterpError::Invalid)?;
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

/// The most tap combinations one grid sample may sum.
const MAX_GRID_TERMS: usize = 1 << 12;

/// `nn.grid_sample`: for every output point, the taps of each spatial axis
/// come from the shared geometry ([`GridAxis`], written once for this
/// interpreter and the lowering); the result sums the products of the tap
/// weights times the samples they read (0 outside the input with `zeros`
/// padding), in f64, rounded once to the dtype. `nearest` copies the
/// sample, so it is exact for every dtype.
pub fn grid_sample(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let g = op.input(1)?;
    let mode: GridMode = op.a.enum_attr("mode")?;
    let padding: GridPadding = op.a.enum_attr("padding_mode")?;
    let align_corners = op.a.bool("align_corners")?;
    let r = x.rank();
    if r < 3 || g.rank() != r || g.shape[r - 1] != r as u64 - 2 {
        return invalid(format!(
            "grid of shape {:?} does not fit the input {:?}",
            g.shape, x.shape
        ));
    }
    let s = r - 2;
    let mut shape = vec![x.shape[0], x.shape[1]];
    shape.extend_from_slice(&g.shape[1..r - 1]);
    op.check(&shape)?;
    let (nb, nc) = (x.shape[0] as usize, x.shape[1] as usize);
    let points: usize = g.shape[1..r - 1].iter().product::<u64>() as usize;
    let plane: usize = x.shape[2..].iter().product::<u64>() as usize;
    if plane == 0 && nb * nc * points > 0 {
        return invalid("cannot sample an input with an empty spatial axis".into());
    }
    let per_axis: usize = match mode {
        GridMode::Nearest => 1,
        GridMode::Linear => 2,
        GridMode::Cubic => 4,
    };
    if u32::try_from(s)
        .ok()
        .and_then(|s| per_axis.checked_pow(s))
        .is_none_or(|t| t > MAX_GRID_TERMS)
    {
        return invalid(format!(
            "grid sampling in {s} dimensions needs more than {MAX_GRID_TERMS} taps per point"
        ));
    }
    let axes = GridAxis::per_extent(
        &x.shape[2..],
        mode,
        padding,
        align_corners,
        g.dtype != DType::F64,
    );
    let xs = strides(&x.shape[2..]);
    let gv = g.to_f64_vec();
    // Per (batch, point): every tap combination as (offset in a plane,
    // weight, inside).
    let combos_of = |b: usize, p: usize| -> Vec<(usize, f64, bool)> {
        let base = (b * points + p) * s;
        let mut combos = vec![(0usize, 1.0f64, true)];
        for (k, ax) in axes.iter().enumerate() {
            // The grid's last axis lists coordinates innermost axis first.
            let taps = ax.taps(&mut Exact, &gv[base + s - 1 - k]);
            let last = ax.extent.saturating_sub(1) as i64;
            let stride = xs[k];
            combos = combos
                .iter()
                .flat_map(|&(off, w, ins)| {
                    taps.iter().map(move |t: &GridTap<f64, bool>| {
                        // Saturating; a NaN coordinate reads index 0.
                        let i = (t.index as i64).clamp(0, last) as usize;
                        (
                            off + i * stride,
                            w * t.weight,
                            ins && t.inside.unwrap_or(true),
                        )
                    })
                })
                .collect();
        }
        combos
    };
    let n_out = nb * nc * points;
    match (&x.data, mode) {
        (Data::Int(v), GridMode::Nearest) => {
            let mut out = vec![0i128; n_out];
            for b in 0..nb {
                for p in 0..points {
                    let (off, _, ins) = combos_of(b, p)[0];
                    for c in 0..nc {
                        if ins {
                            out[(b * nc + c) * points + p] = v[(b * nc + c) * plane + off];
                        }
                    }
                }
            }
            Ok(Tensor::from_ints(x.dtype, shape, out))
        }
        (Data::Float(v), _) => {
            let mut out = vec![0.0f64; n_out];
            for b in 0..nb {
                for p in 0..points {
                    let combos = combos_of(b, p);
                    for c in 0..nc {
                        let src = &v[(b * nc + c) * plane..];
                        out[(b * nc + c) * points + p] = if mode == GridMode::Nearest {
                            let (off, _, ins) = combos[0];
                            if ins {
                                src[off]
                            } else {
                                0.0
                            }
                        } else {
                            combos
                                .iter()
                                .map(|&(off, w, ins)| if ins { w * src[off] } else { 0.0 })
                                .sum()
                        };
                    }
                }
            }
            Ok(Tensor::from_f64(x.dtype, shape, out))
        }
        (Data::Int(_), _) => invalid(format!(
            "grid_sample interpolation of {} values is not supported",
            x.dtype
        )),
    }
}
