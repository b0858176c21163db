//! Normalizations: softmax-like maps along an axis (`nn.softmax`,
//! `nn.log_softmax`, `nn.hardmax`) and statistics-based normalizations
//! (`nn.layer_norm`, `nn.batch_norm`, `nn.instance_norm`, `nn.rms_norm`,
//! `nn.mean_variance_normalization`), and `nn.lp_normalization`. Semantics follow the ONNX operators
//! of the same name at the latest opset.
//!
//! `stash_type` keeps ONNX's encoding: a `TensorProto` data type code (1 =
//! f32, 10 = f16, 11 = f64, 16 = bf16), the precision of the statistics.

use super::infer::{bail, broadcast_shapes, check_dims_agree, norm_axes, norm_axis, require_float};
use super::infer::{InferCtx, InferError};
use super::{attr, Arity, AttrDefault, OpDef, Traits};
use crate::attr::AttrKind;
use crate::dtype::DType;
use crate::types::{Dim, TensorType};

type R = Result<Vec<TensorType>, InferError>;

fn infer_axis_map(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    require_float(x.dtype, "operand")?;
    norm_axis(ctx.int("axis")?, x.rank())?;
    Ok(vec![x.clone()])
}

macro_rules! axis_maps {
    ($($c:ident $name:literal $summary:literal;)*) => {$(
        #[doc = concat!("`", $name, " %x`: ", $summary, ".")]
        pub const $c: OpDef = OpDef {
            name: $name,
            summary: $summary,
            inputs: Arity::exactly(1),
            outputs: Arity::exactly(1),
            attrs: &[attr("axis", AttrKind::Int, AttrDefault::Int(-1))],
            traits: Traits::NONE,
            static_operands: &[],
            infer: infer_axis_map,
        };
    )*};
}

axis_maps! {
    HARDMAX "nn.hardmax" "One-hot of the first maximum along an axis";
    LOG_SOFTMAX "nn.log_softmax" "Logarithm of the softmax along an axis";
    SOFTMAX "nn.softmax" "exp(x) / sum(exp(x)) along an axis";
}

/// The dtype a `stash_type` code names.
fn stash_dtype(ctx: &InferCtx<'_>) -> Result<DType, InferError> {
    Ok(match ctx.int("stash_type")? {
        1 => DType::F32,
        10 => DType::F16,
        11 => DType::F64,
        16 => DType::BF16,
        c => bail!("stash_type {c} is not a float type code (1, 10, 11 or 16)"),
    })
}

/// Checks that `t` broadcasts unidirectionally to `target`.
fn broadcasts_to(t: &TensorType, target: &[Dim], what: &str) -> Result<(), InferError> {
    let b = broadcast_shapes([target, t.dims.as_slice()])?;
    if b.len() != target.len() {
        bail!(
            "{what} {t} has a higher rank than the normalized shape ({})",
            target.len()
        );
    }
    for (i, (o, n)) in b.iter().zip(target).enumerate() {
        if let (Dim::Static(o), Dim::Static(n)) = (o, n) {
            if o != n {
                bail!("{what} {t} does not broadcast to the normalized shape at dim {i}");
            }
        }
    }
    Ok(())
}

/// Shared checks of `nn.layer_norm` and `nn.rms_norm`; returns the
/// normalized axis.
fn check_last_axes_norm(ctx: &InferCtx<'_>) -> Result<usize, InferError> {
    let x = ctx.input(0)?;
    require_float(x.dtype, "input")?;
    let axis = norm_axis(ctx.int("axis")?, x.rank())?;
    stash_dtype(ctx)?;
    let normalized = &x.dims[axis..];
    for (i, what) in [(1, "scale"), (2, "bias")] {
        if let Some(t) = ctx.opt_input(i) {
            if t.dtype != x.dtype {
                bail!("{what} has dtype {} but the input has {}", t.dtype, x.dtype);
            }
            broadcasts_to(t, normalized, what)?;
        }
    }
    let eps = ctx.float("epsilon")?;
    if eps.is_nan() || eps < 0.0 {
        bail!("epsilon must be non-negative, got {eps}");
    }
    Ok(axis)
}

fn infer_layer_norm(ctx: &InferCtx<'_>) -> R {
    let axis = check_last_axes_norm(ctx)?;
    let x = ctx.input(0)?;
    let stash = stash_dtype(ctx)?;
    let mut stat = x.dims[..axis].to_vec();
    stat.resize(x.rank(), Dim::Static(1));
    Ok(vec![
        x.clone(),
        TensorType::new(stash, stat.clone()),
        TensorType::new(stash, stat),
    ])
}

/// `nn.layer_norm %x, %scale, %bias? -> %y, %mean?, %inv_std_dev?`:
/// normalizes over dims `axis..`; the statistics keep the input's rank with
/// 1s for the normalized dims.
pub const LAYER_NORM: OpDef = OpDef {
    name: "nn.layer_norm",
    summary: "Normalizes over the trailing dims from axis, then scales and shifts",
    inputs: Arity::range(2, 3),
    outputs: Arity::range(1, 3),
    attrs: &[
        attr("axis", AttrKind::Int, AttrDefault::Int(-1)),
        attr("epsilon", AttrKind::Float, AttrDefault::Float(1e-5)),
        attr("stash_type", AttrKind::Int, AttrDefault::Int(1)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_layer_norm,
};

fn infer_rms_norm(ctx: &InferCtx<'_>) -> R {
    check_last_axes_norm(ctx)?;
    Ok(vec![ctx.input(0)?.clone()])
}

/// `nn.rms_norm %x, %scale`: `x / sqrt(mean(x^2 over dims axis..) +
/// epsilon) * scale` (ONNX RMSNormalization, opset 23).
pub const RMS_NORM: OpDef = OpDef {
    name: "nn.rms_norm",
    summary: "Root-mean-square normalization over the trailing dims from axis, then scales",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("axis", AttrKind::Int, AttrDefault::Int(-1)),
        attr("epsilon", AttrKind::Float, AttrDefault::Float(1e-5)),
        attr("stash_type", AttrKind::Int, AttrDefault::Int(1)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_rms_norm,
};

/// Checks per-channel operands `first..` against the channel dim of `x`
/// (`[N, C, ...]`): each must be 1-D of length C.
fn check_channel_params(ctx: &InferCtx<'_>, names: &[&str]) -> Result<(), InferError> {
    let x = ctx.input(0)?;
    for (i, what) in names.iter().enumerate() {
        let t = ctx.input(i + 1)?;
        require_float(t.dtype, what)?;
        if t.rank() != 1 {
            bail!("{what} must be 1-D [C], got {t}");
        }
        check_dims_agree(
            &t.dims[0],
            &x.dims[1],
            &format!("{what} length vs channels"),
        )?;
    }
    Ok(())
}

fn infer_batch_norm(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    require_float(x.dtype, "input")?;
    if x.rank() < 2 {
        bail!("nn.batch_norm expects [N, C, ...], got {x}");
    }
    check_channel_params(ctx, &["scale", "bias", "mean", "var"])?;
    // ONNX lets scale/bias (T1) and mean/var (T2) differ from the input type.
    for (a, b, what) in [(1, 2, "scale and bias"), (3, 4, "mean and var")] {
        let (ta, tb) = (ctx.input(a)?, ctx.input(b)?);
        if ta.dtype != tb.dtype {
            bail!(
                "{what} must share a dtype, got {} and {}",
                ta.dtype,
                tb.dtype
            );
        }
    }
    Ok(vec![x.clone()])
}

/// `nn.batch_norm %x, %scale, %bias, %mean, %var`: inference-mode batch
/// normalization with running statistics (`momentum` is kept for round
/// trips and has no effect).
pub const BATCH_NORM: OpDef = OpDef {
    name: "nn.batch_norm",
    summary: "(x - mean) / sqrt(var + epsilon) * scale + bias per channel",
    inputs: Arity::exactly(5),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("epsilon", AttrKind::Float, AttrDefault::Float(1e-5)),
        attr("momentum", AttrKind::Float, AttrDefault::Float(0.9)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_batch_norm,
};

fn infer_instance_norm(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    require_float(x.dtype, "input")?;
    if x.rank() < 3 {
        bail!("nn.instance_norm expects [N, C, spatial...], got {x}");
    }
    check_channel_params(ctx, &["scale", "bias"])?;
    for i in 1..3 {
        if ctx.input(i)?.dtype != x.dtype {
            bail!(
                "operand #{i} has dtype {} but the input has {}",
                ctx.input(i)?.dtype,
                x.dtype
            );
        }
    }
    Ok(vec![x.clone()])
}

/// `nn.instance_norm %x, %scale, %bias`: normalizes each (n, c) slice over
/// its spatial dims.
pub const INSTANCE_NORM: OpDef = OpDef {
    name: "nn.instance_norm",
    summary: "Normalizes each sample and channel over the spatial dims, then scales and shifts",
    inputs: Arity::exactly(3),
    outputs: Arity::exactly(1),
    attrs: &[attr("epsilon", AttrKind::Float, AttrDefault::Float(1e-5))],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_instance_norm,
};

fn infer_mvn(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    require_float(x.dtype, "input")?;
    let axes = ctx.ints("axes")?.unwrap_or_default();
    norm_axes(&axes, x.rank())?;
    Ok(vec![x.clone()])
}

/// `nn.mean_variance_normalization %x`: `(x - mean) / sqrt(var)` with the
/// statistics taken over `axes`, as in the ONNX function body.
pub const MEAN_VARIANCE_NORMALIZATION: OpDef = OpDef {
    name: "nn.mean_variance_normalization",
    summary: "Zero-mean, unit-variance normalization over the given axes",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[attr("axes", AttrKind::Ints, AttrDefault::Ints(&[0, 2, 3]))],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_mvn,
};

fn infer_lp_normalization(ctx: &InferCtx<'_>) -> R {
    let p = ctx.int("p")?;
    if p != 1 && p != 2 {
        bail!("p must be 1 or 2, got {p}");
    }
    infer_axis_map(ctx)
}

/// `nn.lp_normalization %x`: `x / ||x||_p` along one axis; a zero norm
/// gives 0 (the ONNX reference's choice over 0/0 = NaN).
pub const LP_NORMALIZATION: OpDef = OpDef {
    name: "nn.lp_normalization",
    summary: "Divides by the L1 or L2 norm along an axis (0 where the norm is 0)",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("axis", AttrKind::Int, AttrDefault::Int(-1)),
        attr("p", AttrKind::Int, AttrDefault::Int(2)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_lp_normalization,
};
