//! `nn.resize` with constant `scales` or `sizes` (and `roi`): every mode
//! (`nearest` with each `nearest_mode`, `linear`, `cubic`, antialiasing,
//! `exclude_outside`) and every `coordinate_transformation_mode`, following
//! `kiln_interp::ops::resize` (itself the ONNX reference) step by step.
//!
//! Invariants:
//! - the source coordinate of each output index depends only on that index
//!   and the constant parameters, so the taps (clamped source index and
//!   coefficient, per output index of each resized axis) are computed here
//!   in f64 and emitted as constant tables; one `linalg.generic` over the
//!   result sums `coef_0 * coef_1 * .. * x[src..]` over the tap
//!   combinations, unrolled, in f64, and rounds once: floats are clamped to
//!   the dtype's finite range, integers rounded half to even and saturated;
//! - a nearest tap whose coefficient is 0 is dropped, so nearest resizing
//!   copies elements exactly (the reference multiplies them by 0 and 1);
//! - an output index outside the crop of `tf_crop_and_resize` is marked by
//!   source index -1 and yields `extrapolation_value`.

use super::ctx::{Body, Builder, Res, Val};
use super::elementwise::convert;
use super::{attr_err, NodeIn};
use kiln_ir::ops::infer::norm_axes;
use kiln_ir::ops::resample::{
    self, isclose, resize_extents, AspectPolicy, CoordinateTransform, Kernel, ResizeExtents,
    ResizeMode,
};
use kiln_ir::DType;
use std::fmt::Write as _;

/// The most tap combinations one output element may sum (the body is
/// unrolled).
const MAX_TERMS: usize = 1024;

/// An f64 literal MLIR parses back to the same value (Rust prints the
/// shortest round-tripping digits; MLIR wants a `.` in the mantissa).
fn f64_lit(v: f64) -> String {
    let s = format!("{v:e}");
    match s.find('e') {
        Some(p) if !s[..p].contains('.') => format!("{}.0{}", &s[..p], &s[p..]),
        _ => s,
    }
}

/// The constant tables of one axis: `[out, taps]` source indices (i64, -1
/// marks an extrapolated index) and coefficients (f64).
fn tables(b: &mut Builder, taps: &resample::Taps) -> Res<(Val, Val, usize)> {
    let nt = taps
        .iter()
        .flatten()
        .map(Vec::len)
        .max()
        .unwrap_or(1)
        .max(1);
    let (mut idx, mut coef) = (String::from("["), String::from("["));
    for (y, t) in taps.iter().enumerate() {
        if y > 0 {
            idx.push_str(", ");
            coef.push_str(", ");
        }
        idx.push('[');
        coef.push('[');
        for j in 0..nt {
            let (i, c) = match t {
                None => (-1, 0.0),
                // Axes with fewer taps at some index pad with zero weight.
                Some(t) => t.get(j).map_or((0, 0.0), |&(i, c)| (i as i64, c)),
            };
            let sep = if j > 0 { ", " } else { "" };
            let _ = write!(idx, "{sep}{i}");
            let _ = write!(coef, "{sep}{}", f64_lit(c));
        }
        idx.push(']');
        coef.push(']');
    }
    idx.push(']');
    coef.push(']');
    let shape = [taps.len() as u64, nt as u64];
    let mut konst = |dt: DType, body: &str| -> Res<Val> {
        let v = Val {
            ssa: String::new(),
            dtype: dt,
            shape: shape.to_vec(),
        };
        let ssa = b.op(format!("arith.constant dense<{body}> : {}", v.ty()));
        Ok(Val { ssa, ..v })
    };
    let i = konst(DType::I64, &idx)?;
    let c = konst(DType::F64, &coef)?;
    Ok((i, c, nt))
}

/// Constant floats of operand `i` when present and non-empty.
fn const_floats(n: &NodeIn<'_>, i: usize, what: &str) -> Res<Option<Vec<f64>>> {
    match n.opt(i) {
        Some(v) if v.numel() > 0 => n.a.const_floats(i).map(Some).ok_or_else(|| {
            format!("{what} (operand #{i}) must be a compile-time f32/f64 constant")
        }),
        _ => Ok(None),
    }
}

/// `nn.resize`.
pub(crate) fn resize(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let (dt, shape) = n.out(0)?;
    let r = x.rank();
    if !dt.is_float() && dt.bits() > 32 || dt == DType::Bool {
        return Err(format!("nn.resize of dtype {dt} is not supported"));
    }
    let axes = match n.a.ints("axes").map_err(attr_err)? {
        Some(a) => norm_axes(&a, r).map_err(attr_err)?,
        None => (0..r).collect(),
    };
    let ctm: CoordinateTransform =
        n.a.enum_attr("coordinate_transformation_mode")
            .map_err(attr_err)?;
    let antialias = n.a.bool("antialias").map_err(attr_err)?;
    let kernel = match n.a.enum_attr("mode").map_err(attr_err)? {
        ResizeMode::Nearest => Kernel::Nearest(n.a.enum_attr("nearest_mode").map_err(attr_err)?),
        ResizeMode::Linear => Kernel::Linear { antialias },
        ResizeMode::Cubic => Kernel::Cubic {
            a: n.a.float("cubic_coeff_a").map_err(attr_err)?,
            antialias,
        },
    };
    let crop = ctm == CoordinateTransform::TfCropAndResize;
    let roi = if crop {
        const_floats(n, 1, "roi")?
    } else {
        None
    };
    let scales = const_floats(n, 2, "scales")?;
    let sizes = match n.opt(3).filter(|v| v.numel() > 0) {
        Some(_) => Some(
            n.a.const_ints(3)
                .ok_or("sizes (operand #3) must be a compile-time constant")?,
        ),
        None => None,
    };
    let policy: AspectPolicy =
        n.a.enum_attr("keep_aspect_ratio_policy")
            .map_err(attr_err)?;
    let ResizeExtents { scale, out, roi } = resize_extents(
        &x.shape,
        &axes,
        crop,
        roi.as_deref(),
        scales.as_deref(),
        sizes.as_deref(),
        policy,
    )?;
    if out != shape {
        return Err(format!(
            "resize extents {out:?} differ from the result type's {shape:?}"
        ));
    }
    if shape.len() != r {
        return Err("the result rank differs from the input".into());
    }
    if shape.contains(&0) {
        return b.empty(dt, shape);
    }
    let exclude_outside = n.a.bool("exclude_outside").map_err(attr_err)?;
    let extrapolation = n.a.float("extrapolation_value").map_err(attr_err)?;
    // Resized axes and their tables; the others are read at the output index.
    let mut resized: Vec<(usize, Val, Val, usize)> = Vec::new();
    for &a in &axes {
        let trivial_roi = !crop || (isclose(roi[a].0, 0.0) && isclose(roi[a].1, 1.0));
        if isclose(scale[a], 1.0) && shape[a] == x.shape[a] && trivial_roi {
            continue;
        }
        if x.shape[a] == 0 {
            return Err(format!("cannot resample the empty axis {a}"));
        }
        if !(scale[a] > 0.0 && scale[a].is_finite()) {
            return Err(format!("scale {} of axis {a} is not positive", scale[a]));
        }
        let p = resample::Axis {
            n_in: x.shape[a],
            scale: scale[a],
            out: shape[a],
            roi: roi[a],
            ctm,
            kernel,
            exclude_outside,
        };
        let mut taps = p.taps();
        if matches!(kernel, Kernel::Nearest(_)) {
            // A nearest tap of weight 0 is dropped, so nearest resizing
            // copies elements exactly (0 * inf would be NaN).
            for t in taps.iter_mut().flatten() {
                t.retain(|&(_, c)| c != 0.0);
            }
        }
        let (i, c, nt) = tables(b, &taps)?;
        resized.push((a, i, c, nt));
    }
    if resized.is_empty() {
        return Ok(x);
    }
    let terms: usize = resized.iter().map(|t| t.3).product();
    if terms > MAX_TERMS {
        return Err(format!(
            "resizing needs {terms} taps per element (at most {MAX_TERMS} are unrolled)"
        ));
    }
    let xd = x.dtype;
    b.tabulate(dt, shape, |body, o| {
        // Per resized axis: its taps' (index, coefficient) and whether the
        // output index is extrapolated.
        let mut axis_taps: Vec<Vec<(String, String)>> = Vec::new();
        let mut extra: Option<String> = None;
        let z = body.index(0);
        for (a, it, ct, nt) in &resized {
            let mut v = Vec::new();
            for j in 0..*nt {
                let jc = body.index(j as i64);
                let at = [o[*a].clone(), jc];
                let raw = body.extract(it, &at);
                let i = body.op(format!("arith.index_cast {raw} : i64 to index"));
                if j == 0 {
                    let out = body.op(format!("arith.cmpi slt, {i}, {z} : index"));
                    extra = Some(match extra.take() {
                        None => out,
                        Some(p) => body.op(format!("arith.ori {p}, {out} : i1")),
                    });
                }
                let i = body.op(format!("arith.maxsi {i}, {z} : index"));
                let c = body.extract(ct, &at);
                v.push((i, c));
            }
            axis_taps.push(v);
        }
        let mut acc: Option<String> = None;
        for t in 0..terms {
            // Tap combination `t` in mixed radix, the last axis fastest.
            let mut rem = t;
            let mut pick = vec![0usize; resized.len()];
            for k in (0..resized.len()).rev() {
                pick[k] = rem % resized[k].3;
                rem /= resized[k].3;
            }
            let mut src = o.to_vec();
            let mut w: Option<String> = None;
            for (k, (a, ..)) in resized.iter().enumerate() {
                let (i, c) = &axis_taps[k][pick[k]];
                src[*a] = i.clone();
                w = Some(match w.take() {
                    None => c.clone(),
                    Some(p) => body.op(format!("arith.mulf {p}, {c} : f64")),
                });
            }
            let v = body.extract(&x, &src);
            let v = convert(body, &v, xd, DType::F64)?;
            let t = body.op(format!("arith.mulf {}, {v} : f64", w.expect("an axis")));
            acc = Some(match acc.take() {
                None => t,
                Some(p) => body.op(format!("arith.addf {p}, {t} : f64")),
            });
        }
        let sum = acc.expect("at least one term");
        let ev = body.float(extrapolation, DType::F64)?;
        let ex = extra.expect("at least one resized axis");
        let v = body.select(&ex, &ev, &sum, "f64");
        round_to(body, &v, dt)
    })
}

/// Rounds an f64 result to `dt` as the reference does: floats clamped to
/// the finite range, integers rounded half to even and saturated.
fn round_to(b: &mut Body<'_>, v: &str, dt: DType) -> Res<String> {
    let (lo, hi) = if dt.is_float() {
        (-dt.max_finite(), dt.max_finite())
    } else if dt.is_signed() {
        let h = 2f64.powi(dt.bits() as i32 - 1);
        (-h, h - 1.0)
    } else {
        (0.0, 2f64.powi(dt.bits() as i32) - 1.0)
    };
    let v = if dt.is_float() {
        v.to_string()
    } else {
        b.op(format!("math.roundeven {v} : f64"))
    };
    let (l, h) = (b.float(lo, DType::F64)?, b.float(hi, DType::F64)?);
    let c0 = b.op(format!("arith.maxnumf {v}, {l} : f64"));
    let c = b.op(format!("arith.minnumf {c0}, {h} : f64"));
    // NaN stays NaN for floats (maxnumf would drop it).
    let c = if dt.is_float() {
        let nan = b.op(format!("arith.cmpf uno, {v}, {v} : f64"));
        b.select(&nan, &v, &c, "f64")
    } else {
        c
    };
    convert(b, &c, DType::F64, dt)
}
