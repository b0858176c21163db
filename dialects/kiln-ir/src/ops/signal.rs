//! Signal processing: `nn.dft` and `nn.stft`, with ONNX's real/complex
//! convention (a trailing axis of 1 for real, 2 for `(re, im)` values).
//! Semantics follow the ONNX reference (`onnx/reference/ops/op_dft.py`,
//! `op_stft.py`), which computes with numpy's FFT.
//!
//! [`twiddles`] is the one definition of the roots of unity that the
//! interpreter and the lowering both use, so they compute the same sums:
//! entry `j` is `(cos, sin)` of `2 pi j / n`, exact at multiples of a
//! quarter turn; a term `k * t` reads entry `k * t mod n` (index arithmetic
//! is exact, so large products lose no accuracy).

use super::infer::{bail, norm_axis, require_one_of};
use super::infer::{InferCtx, InferError};
use super::{attr, Arity, AttrDefault, OpDef, Traits};
use crate::attr::AttrKind;
use crate::dtype::DType;
use crate::types::{Dim, TensorType};

type R = Result<Vec<TensorType>, InferError>;

/// The dtypes the transforms compute on.
const FLOATS: &[DType] = &[DType::F16, DType::BF16, DType::F32, DType::F64];

/// `(cos, sin)` of `2 pi j / n` for `j` in `0..n`.
pub fn twiddles(n: u64) -> Vec<(f64, f64)> {
    (0..n)
        .map(|j| {
            // Exact values at the quarter turns, so that e.g. the Nyquist
            // term of an inverse real transform has no stray sine part.
            if (4 * j) % n == 0 {
                match 4 * j / n {
                    0 => (1.0, 0.0),
                    1 => (0.0, 1.0),
                    2 => (-1.0, 0.0),
                    _ => (0.0, -1.0),
                }
            } else {
                let (s, c) = (2.0 * std::f64::consts::PI * j as f64 / n as f64).sin_cos();
                (c, s)
            }
        })
        .collect()
}

/// A scalar (or one-element) integer operand; its value when constant.
fn int_scalar(ctx: &InferCtx<'_>, i: usize, what: &str) -> Result<Option<i64>, InferError> {
    let t = ctx.input(i)?;
    if !matches!(t.dtype, DType::I64 | DType::I32) || t.numel().is_some_and(|n| n != 1) {
        bail!("{what} must be an i64 or i32 scalar, got {t}");
    }
    Ok(ctx.const_ints(i).and_then(|v| v.first().copied()))
}

/// The resolved parameters of an `nn.dft` node: `axis` (normalized, never
/// the trailing complex axis) and the transform length `n`, where known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DftParams {
    /// The transformed axis, when it is a constant.
    pub axis: Option<usize>,
    /// The transform length, when known.
    pub n: Option<u64>,
    /// `inverse`.
    pub inverse: bool,
    /// `onesided`.
    pub onesided: bool,
}

/// Reads and checks `nn.dft`'s operands and attributes.
pub fn dft_params(ctx: &InferCtx<'_>) -> Result<DftParams, InferError> {
    let x = ctx.input(0)?;
    require_one_of(x.dtype, FLOATS, "the input")?;
    let r = x.rank();
    if r < 2 {
        bail!("nn.dft expects [.., signal.., 1 or 2], got {x}");
    }
    if let Dim::Static(c) = x.dims[r - 1] {
        if c != 1 && c != 2 {
            bail!("the last axis of {x} must be 1 (real) or 2 (complex)");
        }
    }
    let inverse = ctx.bool("inverse")?;
    let onesided = ctx.bool("onesided")?;
    let axis = match ctx.opt_input(2) {
        Some(_) => int_scalar(ctx, 2, "axis")?,
        None => Some(-2),
    };
    let axis = match axis {
        Some(a) => {
            let a = norm_axis(a, r)?;
            if a == r - 1 {
                bail!("axis {a} is the trailing (real, imaginary) axis");
            }
            Some(a)
        }
        None => None,
    };
    let given = match ctx.opt_input(1) {
        Some(_) => match int_scalar(ctx, 1, "dft_length")? {
            Some(v) if v <= 0 => bail!("dft_length must be positive, got {v}"),
            Some(v) => Some(Some(v as u64)),
            None => Some(None),
        },
        None => None,
    };
    let n = match (given, axis.map(|a| &x.dims[a])) {
        (Some(n), _) => n,
        (None, Some(Dim::Static(m))) if inverse && onesided => {
            if *m < 2 {
                bail!("an inverse one-sided transform of {m} bins needs dft_length");
            }
            match (m - 1).checked_mul(2) {
                Some(n) => Some(n),
                None => bail!("an inverse one-sided transform of {m} bins overflows"),
            }
        }
        (None, Some(Dim::Static(m))) => Some(*m),
        _ => None,
    };
    if n == Some(0) {
        bail!("the transform length is 0");
    }
    Ok(DftParams {
        axis,
        n,
        inverse,
        onesided,
    })
}

fn infer_dft(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let p = dft_params(ctx)?;
    let r = x.rank();
    let mut dims = x.dims.clone();
    dims[r - 1] = Dim::Static(if p.inverse && p.onesided { 1 } else { 2 });
    let resized = ctx.opt_input(1).is_some() || p.onesided;
    match p.axis {
        Some(a) => {
            dims[a] = match p.n {
                Some(n) if p.onesided && !p.inverse => Dim::Static(n / 2 + 1),
                Some(n) => Dim::Static(n),
                None if resized => Dim::Unknown,
                None => dims[a].clone(),
            }
        }
        None if resized => dims[..r - 1].iter_mut().for_each(|d| *d = Dim::Unknown),
        None => {}
    }
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.dft %input, %dft_length?, %axis?`: the discrete Fourier transform
/// along `axis` (default -2) of real (`[.., 1]`) or complex (`[.., 2]`)
/// input, zero-padded or truncated to `dft_length`; `inverse` scales by
/// `1 / n`; `onesided` keeps the `n / 2 + 1` non-redundant bins of a
/// forward transform, or takes them as the input of an inverse real
/// transform (result `[.., 1]`).
pub const DFT: OpDef = OpDef {
    name: "nn.dft",
    summary: "Discrete Fourier transform (forward, inverse, one-sided) along one axis",
    inputs: Arity::range(1, 3),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("inverse", AttrKind::Bool, AttrDefault::Bool(false)),
        attr("onesided", AttrKind::Bool, AttrDefault::Bool(false)),
    ],
    traits: Traits::NONE,
    static_operands: &[1, 2],
    infer: infer_dft,
};

/// The resolved parameters of an `nn.stft` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StftParams {
    /// Frame step (hop).
    pub step: u64,
    /// Frame (and transform) length.
    pub frame: u64,
    /// Number of frames.
    pub frames: u64,
    /// Frequency bins per frame.
    pub bins: u64,
}

/// Reads and checks `nn.stft`'s operands; `None` when a length depends on
/// a non-constant operand or a non-static extent.
pub fn stft_params(ctx: &InferCtx<'_>) -> Result<Option<StftParams>, InferError> {
    let x = ctx.input(0)?;
    require_one_of(x.dtype, FLOATS, "the signal")?;
    if x.rank() != 3 {
        bail!("nn.stft expects a signal [batch, length, 1 or 2], got {x}");
    }
    if let Dim::Static(c) = x.dims[2] {
        if c != 1 && c != 2 {
            bail!("the last axis of {x} must be 1 (real) or 2 (complex)");
        }
    }
    let step = int_scalar(ctx, 1, "frame_step")?;
    let window = match ctx.opt_input(2) {
        Some(w) => {
            if w.rank() != 1 || w.dtype != x.dtype {
                bail!("the window must be a 1-D {} tensor, got {w}", x.dtype);
            }
            Some(w.dims[0].as_static())
        }
        None => None,
    };
    let frame = match ctx.opt_input(3) {
        Some(_) => int_scalar(ctx, 3, "frame_length")?,
        None => None,
    };
    let len = x.dims[1].as_static();
    let frame: Option<u64> = match (frame, window) {
        (Some(f), _) if f <= 0 => bail!("frame_length must be positive, got {f}"),
        (Some(f), Some(Some(w))) if f as u64 != w => {
            bail!("frame_length {f} differs from the window length {w}")
        }
        (Some(f), _) => Some(f as u64),
        (None, Some(w)) if ctx.opt_input(3).is_none() => w,
        (None, None) if ctx.opt_input(3).is_none() => len,
        (None, _) => None,
    };
    let (Some(step), Some(frame), Some(len)) = (step, frame, len) else {
        return Ok(None);
    };
    if step <= 0 {
        bail!("frame_step must be positive, got {step}");
    }
    if frame == 0 || frame > len {
        bail!("frame length {frame} does not fit a signal of {len} samples");
    }
    let onesided = ctx.bool("onesided")?;
    Ok(Some(StftParams {
        step: step as u64,
        frame,
        frames: 1 + (len - frame) / step as u64,
        bins: if onesided { frame / 2 + 1 } else { frame },
    }))
}

fn infer_stft(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dims = match stft_params(ctx)? {
        Some(p) => vec![
            x.dims[0].clone(),
            Dim::Static(p.frames),
            Dim::Static(p.bins),
            Dim::Static(2),
        ],
        None => vec![
            x.dims[0].clone(),
            Dim::Unknown,
            Dim::Unknown,
            Dim::Static(2),
        ],
    };
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.stft %signal, %frame_step, %window?, %frame_length?`: the DFT of
/// each frame `signal[:, f * step .. f * step + frame_length]` weighted by
/// `window` (default all ones), one-sided by default; result
/// `[batch, frames, bins, 2]`.
pub const STFT: OpDef = OpDef {
    name: "nn.stft",
    summary: "Short-time Fourier transform of windowed frames",
    inputs: Arity::range(2, 4),
    outputs: Arity::exactly(1),
    attrs: &[attr("onesided", AttrKind::Bool, AttrDefault::Bool(true))],
    traits: Traits::NONE,
    static_operands: &[1, 3],
    infer: infer_stft,
};
