//! Operators whose element positions are computed at compile time, imported
//! as compositions of existing Kiln ops: `Compress` (a gather of the
//! selected positions), `MaxUnpool` (a scatter into zeros), `Col2Im` (a
//! grouped transposed convolution with one-hot kernels, which sums the
//! overlapping patches), `AffineGrid` (a matmul with the constant base
//! grid), `MelWeightMatrix` (a constant computed from its parameters),
//! `RoiAlign` (bilinear samples gathered at positions computed from the
//! runtime ROIs), and `OptionalHasElement`/`OptionalGetElement` on plain
//! tensors.
//!
//! Each needs some operand values (Compress's condition, Col2Im's image
//! and block shapes, AffineGrid's size, MaxUnpool's output shape) at
//! compile time, like a Kiln op's static operands; when one depends on a
//! graph input the error names it so `kiln run` or `--freeze-input` can
//! give it ([`OnnxError::NeedsInputValues`]).

use super::NodeCtx;
use crate::error::OnnxError;
use kiln_ir::{Attr, DType, OpKind, ValueId};

type R = Result<Vec<Option<ValueId>>, OnnxError>;
type V = Result<ValueId, OnnxError>;

/// Largest constant (kernel, base grid, matrix) these importers build from
/// operand values, so that a small model cannot ask for gigabytes.
const MAX_CONST_ELEMENTS: u64 = 1 << 26;

/// The integer values of operand `i`, which must be known at compile time.
fn known_ints(c: &NodeCtx<'_, '_>, i: usize, what: &str) -> Result<Vec<i64>, OnnxError> {
    let v = c.input(i)?;
    let t = c.known(v).ok_or_else(|| c.needs_value(v, what))?;
    Ok(t.to_f64_vec().into_iter().map(|x| x as i64).collect())
}

fn ints_attr(
    c: &NodeCtx<'_, '_>,
    name: &str,
    len: usize,
    default: i64,
) -> Result<Vec<i64>, OnnxError> {
    match c.attr_ints(name)? {
        None => Ok(vec![default; len]),
        Some(v) if v.len() == len => Ok(v),
        Some(v) => Err(c.invalid(format!(
            "attribute '{name}' has {} entries, expected {len}",
            v.len()
        ))),
    }
}

fn static_shape(c: &NodeCtx<'_, '_>, v: ValueId, what: &str) -> Result<Vec<u64>, OnnxError> {
    c.ty(v)
        .static_shape()
        .ok_or_else(|| c.unsupported(format!("{what} must have a static shape, got {}", c.ty(v))))
}

/// Compress-9/11: the slices of `input` along `axis` (or of the flattened
/// input) where `condition` is true.
pub(super) fn compress(c: &mut NodeCtx<'_, '_>) -> R {
    let x = c.input(0)?;
    let cond = c.input(1)?;
    let t = c
        .known(cond)
        .ok_or_else(|| c.needs_value(cond, "the condition"))?;
    if t.rank() != 1 {
        return Err(c.invalid(format!("condition must be 1-D, got rank {}", t.rank())));
    }
    let (data, axis) = match c.attr("axis") {
        Some(_) => {
            let rank = c.ty(x).rank() as i64;
            let a = c.attr_int("axis", 0)?;
            let a = if a < 0 { a + rank } else { a };
            if !(0..rank).contains(&a) {
                return Err(c.invalid(format!("axis {a} is out of range for rank {rank}")));
            }
            (x, a)
        }
        None => (c.reshape(x, &[-1])?, 0),
    };
    let extent = match c.ty(data).dims[axis as usize] {
        kiln_ir::Dim::Static(n) => n,
        _ => {
            return Err(c.unsupported("Compress needs a static extent along its axis"));
        }
    };
    if t.numel() as u64 > extent {
        return Err(c.invalid(format!(
            "condition has {} entries, more than the {extent} along the axis",
            t.numel()
        )));
    }
    let picked: Vec<i64> = (0..t.numel())
        .filter(|&i| t.get_f64(i) != 0.0)
        .map(|i| i as i64)
        .collect();
    if picked.is_empty() {
        return Err(
            c.unsupported("a condition that selects nothing (an empty result) is not supported")
        );
    }
    let idx = c.const_i64(&picked, false);
    Ok(vec![Some(c.op_with(
        OpKind::Gather,
        &[data, idx],
        &[("axis", Attr::Int(axis))],
    )?)])
}

/// MaxUnpool-9/11/22: `X` scattered into zeros at `I`, MaxPool's indices
/// into the flattened output.
pub(super) fn max_unpool(c: &mut NodeCtx<'_, '_>) -> R {
    let x = c.input(0)?;
    let idx = c.input(1)?;
    let xs = static_shape(c, x, "X")?;
    if xs.len() < 3 {
        return Err(c.invalid("X must be (N, C, spatial...)"));
    }
    let r = xs.len() - 2;
    let kernel = c
        .attr_ints("kernel_shape")?
        .ok_or_else(|| c.invalid("attribute 'kernel_shape' is required"))?;
    if kernel.len() != r {
        return Err(c.invalid("kernel_shape does not match the spatial rank"));
    }
    let strides = ints_attr(c, "strides", r, 1)?;
    let pads = ints_attr(c, "pads", 2 * r, 0)?;
    let mut inferred = vec![xs[0] as i64, xs[1] as i64];
    for i in 0..r {
        // In i128: attribute values are untrusted and may overflow i64.
        let d = (i128::from(xs[i + 2]) - 1) * i128::from(strides[i])
            - i128::from(pads[i])
            - i128::from(pads[i + r])
            + i128::from(kernel[i]);
        inferred.push(i64::try_from(d).unwrap_or(-1));
    }
    let total = inferred.iter().try_fold(1u64, |acc, &d| {
        u64::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    });
    if inferred.iter().any(|&d| d <= 0) || total.is_none() {
        return Err(c.invalid(format!("the unpooled shape {inferred:?} is empty")));
    }
    let total = total.unwrap_or_default();
    let dt = c.ty(x).dtype;
    let zeros = c.zeros(dt, &[total])?;
    let flat_x = c.reshape(x, &[-1])?;
    let flat_i = c.reshape(idx, &[-1])?;
    let scattered = c.op_with(
        OpKind::ScatterElements,
        &[zeros, flat_i, flat_x],
        &[("axis", Attr::Int(0))],
    )?;
    let y = c.reshape(scattered, &inferred)?;
    if c.opt_input(2).is_none() {
        return Ok(vec![Some(y)]);
    }
    // A larger output shape places the unpooled tensor at the origin and
    // pads the rest with zeros (ONNX's reference implementation).
    let out = known_ints(c, 2, "the output shape")?;
    if out.len() != inferred.len() || out.iter().zip(&inferred).any(|(o, i)| o < i) {
        return Err(c.invalid(format!(
            "output_shape {out:?} must have the rank of X and be at least the unpooled shape {inferred:?}"
        )));
    }
    let mut p = vec![0i64; out.len()];
    p.extend(out.iter().zip(&inferred).map(|(o, i)| o - i));
    let p = c.const_i64(&p, false);
    Ok(vec![Some(c.op(OpKind::Pad, &[y, p])?)])
}

/// Col2Im-18: sums the sliding blocks of `input` (N, C·∏block, L) back
/// into an image (N, C, image_shape...). A transposed convolution with
/// group C and a one-hot kernel per block position does exactly that.
pub(super) fn col2im(c: &mut NodeCtx<'_, '_>) -> R {
    let x = c.input(0)?;
    let image = known_ints(c, 1, "image_shape")?;
    let block = known_ints(c, 2, "block_shape")?;
    let r = image.len();
    if r == 0 || block.len() != r || block.iter().any(|&b| b <= 0) || image.iter().any(|&d| d <= 0)
    {
        return Err(c.invalid(format!(
            "image_shape {image:?} and block_shape {block:?} must be positive and of one length"
        )));
    }
    let dil = ints_attr(c, "dilations", r, 1)?;
    let strides = ints_attr(c, "strides", r, 1)?;
    let pads = ints_attr(c, "pads", 2 * r, 0)?;
    let xs = static_shape(c, x, "input")?;
    let k = block
        .iter()
        .try_fold(1u64, |acc, &b| acc.checked_mul(b as u64))
        .filter(|&k| k <= MAX_CONST_ELEMENTS)
        .ok_or_else(|| c.unsupported(format!("block_shape {block:?} is too large")))?;
    if xs.len() != 3 || xs[1] % k != 0 {
        return Err(c.invalid(format!(
            "input {xs:?} must be (N, C × {k}, L) for block_shape {block:?}"
        )));
    }
    let ch = xs[1] / k;
    // The one-hot kernel holds C·K² values.
    if ch
        .checked_mul(k)
        .and_then(|n| n.checked_mul(k))
        .is_none_or(|n| n > MAX_CONST_ELEMENTS)
    {
        return Err(c.unsupported(format!(
            "block_shape {block:?} with {ch} channels needs a kernel over Kiln's limit of {MAX_CONST_ELEMENTS} elements"
        )));
    }
    let mut blocks = Vec::with_capacity(r);
    let mut out_pad = Vec::with_capacity(r);
    for i in 0..r {
        // In i128: attribute values are untrusted and may overflow i64.
        let eff = i128::from(dil[i]) * (i128::from(block[i]) - 1) + 1;
        let span = i128::from(image[i]) + i128::from(pads[i]) + i128::from(pads[i + r]) - eff;
        let stride = i128::from(strides[i]);
        if span < 0 || stride <= 0 || dil[i] <= 0 || span > i128::from(i32::MAX) {
            return Err(c.invalid(format!("block {i} does not fit the padded image")));
        }
        blocks.push((span / stride + 1) as i64);
        out_pad.push((span % stride) as i64);
    }
    if blocks.iter().product::<i64>() != xs[2] as i64 {
        return Err(c.invalid(format!(
            "input has {} blocks, the image, block and strides give {blocks:?}",
            xs[2]
        )));
    }
    let mut shape = vec![xs[0] as i64, xs[1] as i64];
    shape.extend(&blocks);
    let cols = c.reshape(x, &shape)?;
    // Kernel (C·K, 1, block...): channel c·K + j is one at block position j.
    let dt = c.ty(x).dtype;
    let mut wshape = vec![ch * k, 1];
    wshape.extend(block.iter().map(|&b| b as u64));
    let mut w = vec![0.0; (ch * k * k) as usize];
    for cc in 0..ch {
        for j in 0..k {
            w[((cc * k + j) * k + j) as usize] = 1.0;
        }
    }
    let weight = c.const_f64(dt, &wshape, w)?;
    let y = c.op_with(
        OpKind::ConvTranspose,
        &[cols, weight],
        &[
            ("group", Attr::Int(ch as i64)),
            ("kernel_shape", Attr::Ints(block.clone())),
            ("strides", Attr::Ints(strides)),
            ("dilations", Attr::Ints(dil)),
            ("pads", Attr::Ints(pads)),
            ("output_padding", Attr::Ints(out_pad)),
        ],
    )?;
    Ok(vec![Some(y)])
}

/// Evenly spaced sampling positions in [-1, 1] for `n` points, as
/// AffineGrid defines them (pixel corners or centers).
fn positions(n: i64, align_corners: bool) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let i = i as f64;
            let n = n as f64;
            if align_corners {
                if n == 1.0 {
                    -1.0
                } else {
                    -1.0 + 2.0 * i / (n - 1.0)
                }
            } else {
                (2.0 * i + 1.0) / n - 1.0
            }
        })
        .collect()
}

/// AffineGrid-20: `theta` (N, 2, 3) or (N, 3, 4) applied to the base grid
/// of (x, y[, z], 1) positions for `size` (N, C, [D,] H, W).
pub(super) fn affine_grid(c: &mut NodeCtx<'_, '_>) -> R {
    let theta = c.input(0)?;
    let size = known_ints(c, 1, "size")?;
    let align = c.attr_int("align_corners", 0)? != 0;
    let ts = static_shape(c, theta, "theta")?;
    let spatial: Vec<i64> = match size.len() {
        4 | 5 => size[2..].to_vec(),
        n => return Err(c.invalid(format!("size must have 4 or 5 entries, got {n}"))),
    };
    let d = spatial.len() as u64;
    if ts.len() != 3 || ts[1] != d || ts[2] != d + 1 || ts[0] as i64 != size[0] {
        return Err(c.invalid(format!(
            "theta {ts:?} must be (N, {d}, {}) with N = {}",
            d + 1,
            size[0]
        )));
    }
    if spatial.iter().any(|&n| n <= 0) {
        return Err(c.invalid(format!("size {size:?} must be positive")));
    }
    let count = spatial
        .iter()
        .try_fold(1i64, |acc, &n| acc.checked_mul(n))
        .filter(|&n| (n as u64).saturating_mul(d + 1) <= MAX_CONST_ELEMENTS)
        .ok_or_else(|| {
            c.unsupported(format!(
                "size {size:?} needs a base grid over Kiln's limit of {MAX_CONST_ELEMENTS} elements"
            ))
        })?;
    let axes: Vec<Vec<f64>> = spatial.iter().map(|&n| positions(n, align)).collect();
    // Rows in (z,) y, x order with x fastest; columns x, y, (z,) 1.
    let mut base = Vec::with_capacity((count as u64 * (d + 1)) as usize);
    for flat in 0..count {
        let mut rem = flat;
        let mut coord = vec![0.0; d as usize];
        for (k, axis) in axes.iter().enumerate().rev() {
            let n = axis.len() as i64;
            coord[k] = axis[(rem % n) as usize];
            rem /= n;
        }
        base.extend(coord.iter().rev());
        base.push(1.0);
    }
    let dt = c.ty(theta).dtype;
    let base = c.const_f64(dt, &[count as u64, d + 1], base)?;
    let tt = c.transpose(theta, &[0, 2, 1])?; // (N, d + 1, d)
    let grid = c.op(OpKind::MatMul, &[base, tt])?; // (N, count, d)
    let mut shape = vec![size[0]];
    shape.extend(&spatial);
    shape.push(d as i64);
    Ok(vec![Some(c.reshape(grid, &shape)?)])
}

/// OptionalHasElement-15/18 on a plain tensor or an absent input: whether
/// an input is present, a constant.
pub(super) fn optional_has_element(c: &mut NodeCtx<'_, '_>) -> R {
    let present = c.opt_input(0).is_some();
    Ok(vec![Some(c.const_f64(
        DType::Bool,
        &[],
        vec![f64::from(u8::from(present))],
    )?)])
}

/// OptionalGetElement-15/18 on a plain tensor: the tensor itself.
pub(super) fn optional_get_element(c: &mut NodeCtx<'_, '_>) -> R {
    let x = c.input(0)?;
    Ok(vec![Some(c.emit1(
        OpKind::Identity,
        vec![Some(x)],
        Default::default(),
    )?)])
}

/// MelWeightMatrix-17: the (dft_length / 2 + 1, num_mel_bins) matrix of
/// triangular mel filters, computed here from its five scalar parameters
/// exactly as ONNX's reference implementation does (including its mel step
/// over `num_mel_bins + 2` points), and emitted as a constant.
pub(super) fn mel_weight_matrix(c: &mut NodeCtx<'_, '_>) -> R {
    let scalar = |c: &NodeCtx<'_, '_>, i: usize, what: &str| -> Result<f64, OnnxError> {
        let v = c.input(i)?;
        let t = c.known(v).ok_or_else(|| c.needs_value(v, what))?;
        if t.numel() != 1 {
            return Err(c.invalid(format!("{what} must hold one value")));
        }
        Ok(t.get_f64(0))
    };
    let bins = scalar(c, 0, "num_mel_bins")?;
    let dft = scalar(c, 1, "dft_length")?;
    let rate = scalar(c, 2, "sample_rate")?;
    let lower = scalar(c, 3, "lower_edge_hertz")?;
    let upper = scalar(c, 4, "upper_edge_hertz")?;
    if !(1.0..=65536.0).contains(&bins)
        || !(1.0..=(1u64 << 24) as f64).contains(&dft)
        || rate <= 0.0
    {
        return Err(c.invalid(format!(
            "num_mel_bins {bins}, dft_length {dft} and sample_rate {rate} must be positive (and at most 65536 bins, 2^24 DFT points)"
        )));
    }
    if !(lower.is_finite() && upper.is_finite() && 0.0 <= lower && lower <= upper) {
        return Err(c.invalid(format!(
            "edge frequencies {lower} and {upper} must satisfy 0 <= lower <= upper"
        )));
    }
    let dt = match c.attr("output_datatype") {
        None => DType::F32,
        Some(_) => {
            let code = c.attr_int("output_datatype", 1)?;
            crate::tensor::dtype_from_onnx(code as i32)
                .map_err(|_| c.unsupported(format!("output_datatype {code} is not supported")))?
        }
    };
    let (bins, dft) = (bins as usize, dft as i64);
    let spec_bins = (dft / 2 + 1) as usize;
    if (spec_bins as u64).saturating_mul(bins as u64) > MAX_CONST_ELEMENTS {
        return Err(c.unsupported(format!(
            "a {spec_bins}x{bins} mel matrix is over Kiln's limit of {MAX_CONST_ELEMENTS} elements"
        )));
    }
    let mel = |hz: f64| 2595.0 * (hz / 700.0).ln_1p() / 10f64.ln();
    let (lo, hi) = (mel(lower), mel(upper));
    let step = (hi - lo) / (bins + 2) as f64;
    let edges: Vec<i64> = (0..bins + 2)
        .map(|i| {
            let m = i as f64 * step + lo;
            let hz = 700.0 * (m / 2595.0 * 10f64.ln()).exp_m1();
            (((dft + 1) as f64 * hz) / rate).floor() as i64
        })
        .collect();
    let mut w = vec![0.0; spec_bins * bins];
    let mut set = |c: &NodeCtx<'_, '_>, j: i64, i: usize, v: f64| -> Result<(), OnnxError> {
        if !(0..spec_bins as i64).contains(&j) {
            return Err(c.invalid(format!(
                "mel filter {i} reaches spectrogram bin {j}, outside 0..{spec_bins}"
            )));
        }
        w[j as usize * bins + i] = v;
        Ok(())
    };
    for i in 0..bins {
        let (left, center, right) = (edges[i], edges[i + 1], edges[i + 2]);
        let rise = center - left;
        if rise == 0 {
            set(c, center, i, 1.0)?;
        } else {
            for j in left..=center {
                set(c, j, i, (j - left) as f64 / rise as f64)?;
            }
        }
        let fall = right - center;
        if fall > 0 {
            for j in center..right {
                set(c, j, i, (right - j) as f64 / fall as f64)?;
            }
        }
    }
    Ok(vec![Some(c.const_f64(
        dt,
        &[spec_bins as u64, bins as u64],
        w,
    )?)])
}

/// Per-axis sampling of RoiAlign: for ROI coordinates `start` and bin size
/// `bin` (each `[R]`, f64) and `extent` input rows or columns, the low and
/// high indices (`[R, n·s]`, i64) and their bilinear weights (zero for
/// samples outside `[-1, extent]`), as ONNX's reference computes them.
struct AxisTaps {
    lo: ValueId,
    hi: ValueId,
    w_lo: ValueId,
    w_hi: ValueId,
}

fn roi_axis_taps(
    c: &mut NodeCtx<'_, '_>,
    start: ValueId,
    bin: ValueId,
    bins: u64,
    ratio: u64,
    extent: u64,
) -> Result<AxisTaps, OnnxError> {
    let f = DType::F64;
    // Sample a = p·ratio + i sits at start + bin·(p + (i + 0.5) / ratio).
    let u: Vec<f64> = (0..bins * ratio)
        .map(|a| (a / ratio) as f64 + ((a % ratio) as f64 + 0.5) / ratio as f64)
        .collect();
    let u = c.const_f64(f, &[1, bins * ratio], u)?;
    let start = c.unsqueeze(start, &[1])?;
    let bin = c.unsqueeze(bin, &[1])?;
    let step = c.op(OpKind::Mul, &[bin, u])?;
    let y = c.op(OpKind::Add, &[start, step])?; // [R, A]
    let lower = c.const_scalar(f, -1.0)?;
    let upper = c.const_scalar(f, extent as f64)?;
    let ge = c.op(OpKind::GreaterOrEqual, &[y, lower])?;
    let le = c.op(OpKind::LessOrEqual, &[y, upper])?;
    let inside = c.op(OpKind::And, &[ge, le])?;
    let inside = c.cast(inside, f)?;
    let zero = c.const_scalar(f, 0.0)?;
    let y = c.op(OpKind::Max, &[y, zero])?;
    let low = c.op(OpKind::Floor, &[y])?;
    let last = c.const_scalar(f, extent as f64 - 1.0)?;
    let at_end = c.op(OpKind::GreaterOrEqual, &[low, last])?;
    let one = c.const_scalar(f, 1.0)?;
    let next = c.op(OpKind::Add, &[low, one])?;
    let lo = c.op(OpKind::Where, &[at_end, last, low])?;
    let hi = c.op(OpKind::Where, &[at_end, last, next])?;
    let y = c.op(OpKind::Where, &[at_end, last, y])?;
    let frac = c.op(OpKind::Sub, &[y, lo])?;
    let rest = c.op(OpKind::Sub, &[one, frac])?;
    Ok(AxisTaps {
        lo: c.cast(lo, DType::I64)?,
        hi: c.cast(hi, DType::I64)?,
        w_lo: c.op(OpKind::Mul, &[rest, inside])?,
        w_hi: c.op(OpKind::Mul, &[frac, inside])?,
    })
}

/// RoiAlign-10/16/22 with a fixed `sampling_ratio`: every output bin
/// averages (or, in `max` mode, takes the largest weighted corner of)
/// `ratio²` bilinear samples. The ROIs and batch indices are runtime
/// values, so the sample positions are computed in the graph; rows and
/// columns are separable, so each corner is two element gathers. Computed
/// in f64 like ONNX's reference, rounded to X's type at the end.
pub(super) fn roi_align(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&[
        "coordinate_transformation_mode",
        "mode",
        "output_height",
        "output_width",
        "sampling_ratio",
        "spatial_scale",
    ])?;
    let x = c.input(0)?;
    let rois = c.input(1)?;
    let batch = c.input(2)?;
    let xs = static_shape(c, x, "X")?;
    let rs = static_shape(c, rois, "rois")?;
    if xs.len() != 4 || rs.len() != 2 || rs[1] != 4 || !c.ty(x).dtype.is_float() {
        return Err(c.invalid(format!(
            "needs a float X (N, C, H, W) and rois (R, 4); got {} and {}",
            c.ty(x),
            c.ty(rois)
        )));
    }
    let half_pixel = match c
        .attr_str(
            "coordinate_transformation_mode",
            if c.version >= 16 {
                "half_pixel"
            } else {
                "output_half_pixel"
            },
        )?
        .as_str()
    {
        "half_pixel" => true,
        "output_half_pixel" => false,
        other => return Err(c.invalid(format!("coordinate_transformation_mode '{other}'"))),
    };
    let max_mode = match c.attr_str("mode", "avg")?.as_str() {
        "avg" => false,
        "max" => true,
        other => return Err(c.invalid(format!("mode '{other}' is not avg or max"))),
    };
    let (oh, ow) = (
        c.attr_int("output_height", 1)?,
        c.attr_int("output_width", 1)?,
    );
    let ratio = c.attr_int("sampling_ratio", 0)?;
    if ratio <= 0 {
        return Err(c.unsupported(
            "sampling_ratio 0 (a sample count that depends on each ROI's size) is not supported",
        ));
    }
    let cells = oh
        .checked_mul(ow)
        .and_then(|n| n.checked_mul(ratio))
        .and_then(|n| n.checked_mul(ratio));
    if oh <= 0 || ow <= 0 || cells.is_none_or(|n| n as u64 > MAX_CONST_ELEMENTS) {
        return Err(c.invalid(format!(
            "output {oh}x{ow} with sampling_ratio {ratio} is out of range"
        )));
    }
    let (oh, ow, ratio) = (oh as u64, ow as u64, ratio as u64);
    let (n_ch, h, w) = (xs[1] as i64, xs[2], xs[3]);
    let r = rs[0] as i64;
    let f = DType::F64;
    let scale = c.const_scalar(f, f64::from(c.attr_float("spatial_scale", 1.0)?))?;
    let offset = c.const_scalar(f, if half_pixel { 0.5 } else { 0.0 })?;
    let rois = c.cast(rois, f)?;
    let mut coord = Vec::with_capacity(4);
    for k in 0..4 {
        let v = c.take(rois, 1, k)?;
        let v = c.op(OpKind::Mul, &[v, scale])?;
        coord.push(c.op(OpKind::Sub, &[v, offset])?);
    }
    let size = |c: &mut NodeCtx<'_, '_>, lo: ValueId, hi: ValueId, bins: u64| -> V {
        let mut s = c.op(OpKind::Sub, &[hi, lo])?;
        if !half_pixel {
            // Malformed ROIs are forced to 1x1.
            let one = c.const_scalar(f, 1.0)?;
            s = c.op(OpKind::Max, &[s, one])?;
        }
        let n = c.const_scalar(f, bins as f64)?;
        c.op(OpKind::Div, &[s, n])
    };
    let bin_w = size(c, coord[0], coord[2], ow)?;
    let bin_h = size(c, coord[1], coord[3], oh)?;
    let ty = roi_axis_taps(c, coord[1], bin_h, oh, ratio, h)?;
    let tx = roi_axis_taps(c, coord[0], bin_w, ow, ratio, w)?;
    // The ROI's image, all channels: (R, C, H, W).
    let xd = c.cast(x, f)?;
    let batch = c.cast(batch, DType::I64)?;
    let img = c.op_with(OpKind::Gather, &[xd, batch], &[("axis", Attr::Int(0))])?;
    let (a, b) = ((oh * ratio) as i64, (ow * ratio) as i64);
    let rows_of = |c: &mut NodeCtx<'_, '_>, idx: ValueId| -> V {
        let i = c.reshape(idx, &[r, 1, a, 1])?;
        let i = c.expand(i, &[r, n_ch, a, w as i64])?;
        c.op_with(OpKind::GatherElements, &[img, i], &[("axis", Attr::Int(2))])
    };
    let cols_of = |c: &mut NodeCtx<'_, '_>, rows: ValueId, idx: ValueId| -> V {
        let i = c.reshape(idx, &[r, 1, 1, b])?;
        let i = c.expand(i, &[r, n_ch, a, b])?;
        c.op_with(
            OpKind::GatherElements,
            &[rows, i],
            &[("axis", Attr::Int(3))],
        )
    };
    let row_lo = rows_of(c, ty.lo)?;
    let row_hi = rows_of(c, ty.hi)?;
    let wy = |c: &mut NodeCtx<'_, '_>, v: ValueId| c.reshape(v, &[r, 1, a, 1]);
    let wx = |c: &mut NodeCtx<'_, '_>, v: ValueId| c.reshape(v, &[r, 1, 1, b]);
    let mut terms = Vec::with_capacity(4);
    for (rows, wyv) in [(row_lo, ty.w_lo), (row_hi, ty.w_hi)] {
        for (ci, wxv) in [(tx.lo, tx.w_lo), (tx.hi, tx.w_hi)] {
            let v = cols_of(c, rows, ci)?;
            let wyv = wy(c, wyv)?;
            let wxv = wx(c, wxv)?;
            let weight = c.op(OpKind::Mul, &[wyv, wxv])?;
            terms.push(c.op(OpKind::Mul, &[weight, v])?);
        }
    }
    let combine = if max_mode { OpKind::Max } else { OpKind::Add };
    let mut samples = terms[0];
    for &t in &terms[1..] {
        samples = c.op(combine, &[samples, t])?;
    }
    // (R, C, OH·s, OW·s) → (R, C, OH, s, OW, s), pooled over the s axes.
    let samples = c.reshape(
        samples,
        &[r, n_ch, oh as i64, ratio as i64, ow as i64, ratio as i64],
    )?;
    let axes = c.const_i64(&[3, 5], false);
    let pool = if max_mode {
        OpKind::ReduceMax
    } else {
        OpKind::ReduceMean
    };
    let y = c.op_with(pool, &[samples, axes], &[("keepdims", Attr::Bool(false))])?;
    Ok(vec![Some(c.cast(y, c.ty(x).dtype)?)])
}
