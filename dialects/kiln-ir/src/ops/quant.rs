//! The `quant` dialect: linear (de)quantization as in ONNX QuantizeLinear /
//! DequantizeLinear (latest opset), and NF4 code-book dequantization.
//!
//! Scales come in three granularities, chosen by the operand shapes and
//! `block_size`:
//! - per tensor: a scalar (or one-element 1-D) scale;
//! - per axis: a 1-D scale with one entry per index of `axis`;
//! - blocked (`block_size > 0`): a scale of the input's rank whose `axis`
//!   extent is `ceil(extent / block_size)`, all other extents equal.
//!
//! A zero point, when present, has the scale's shape.

use super::infer::{bail, check_dims_agree, norm_axis, require_float, require_one_of};
use super::infer::{InferCtx, InferError};
use super::{attr, Arity, AttrDefault, OpDef, Traits};
use crate::attr::AttrKind;
use crate::dtype::DType;
use crate::types::{Dim, TensorType};

type R = Result<Vec<TensorType>, InferError>;

/// Quantized element types that QuantizeLinear may produce.
const QUANT_TARGETS: &[DType] = &[
    DType::I8,
    DType::U8,
    DType::I16,
    DType::U16,
    DType::I4,
    DType::U4,
    DType::F8E4M3FN,
    DType::F8E5M2,
];

/// Checks the scale (operand 1) and optional zero point (operand 2) of a
/// linear (de)quantization of `x` against one of the three granularities.
fn check_scale(ctx: &InferCtx<'_>, x: &TensorType) -> Result<(), InferError> {
    let s = ctx.input(1)?;
    let block = ctx.int("block_size")?;
    if block < 0 {
        bail!("block_size must be non-negative, got {block}");
    }
    let per_tensor = s.rank() == 0 || (s.rank() == 1 && s.dims[0] == Dim::Static(1));
    if block > 0 {
        let axis = norm_axis(ctx.int("axis")?, x.rank())?;
        if s.rank() != x.rank() {
            bail!("blocked scale {s} must have the input's rank {}", x.rank());
        }
        for (i, (sd, xd)) in s.dims.iter().zip(&x.dims).enumerate() {
            if i == axis {
                if let (Dim::Static(sn), Dim::Static(xn)) = (sd, xd) {
                    let want = xn.div_ceil(block as u64);
                    if *sn != want {
                        bail!("blocked scale has {sn} blocks on axis {axis}; extent {xn} / block_size {block} needs {want}");
                    }
                }
            } else {
                check_dims_agree(sd, xd, &format!("blocked scale dim {i}"))?;
            }
        }
    } else if !per_tensor {
        if s.rank() != 1 {
            bail!("scale {s} must be a scalar, 1-D per-axis, or blocked with block_size > 0");
        }
        let axis = norm_axis(ctx.int("axis")?, x.rank())?;
        check_dims_agree(
            &s.dims[0],
            &x.dims[axis],
            &format!("per-axis scale length vs axis {axis}"),
        )?;
    }
    if let Some(z) = ctx.opt_input(2) {
        // A per-tensor zero point may be a scalar or a 1-element vector
        // whichever form the scale takes (exporters mix them).
        let z_single = z.rank() == 0 || (z.rank() == 1 && z.dims[0] == Dim::Static(1));
        if per_tensor && block == 0 && z_single {
            return Ok(());
        }
        if z.rank() != s.rank()
            || z.dims
                .iter()
                .zip(&s.dims)
                .any(|(a, b)| check_dims_agree(a, b, "").is_err())
        {
            bail!("zero point {z} must have the scale's shape {s}");
        }
    }
    Ok(())
}

fn infer_quantize_linear(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    if !(x.dtype.is_float() || x.dtype == DType::I32) {
        bail!("input must be float or i32, got {x}");
    }
    let s = ctx.input(1)?;
    require_float(s.dtype, "scale")?;
    if let Some(p) = ctx.dtype("precision")? {
        require_float(p, "precision")?;
    }
    let out = match (
        ctx.opt_input(2).map(|z| z.dtype),
        ctx.dtype("output_dtype")?,
    ) {
        (Some(z), Some(o)) if z != o => bail!("zero point dtype {z} differs from output_dtype {o}"),
        (Some(z), _) => z,
        (None, Some(o)) => o,
        (None, None) => DType::U8,
    };
    require_one_of(out, QUANT_TARGETS, "quantized result")?;
    check_scale(ctx, x)?;
    Ok(vec![TensorType::new(out, x.dims.clone())])
}

/// `quant.quantize_linear %x, %y_scale, %y_zero_point?`:
/// `saturate(round(x / scale) + zero_point)` into an integer or float8 type.
pub const QUANTIZE_LINEAR: OpDef = OpDef {
    name: "quant.quantize_linear",
    summary: "Linear quantization with per-tensor, per-axis or blocked scales",
    inputs: Arity::range(2, 3),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("axis", AttrKind::Int, AttrDefault::Int(1)),
        attr("block_size", AttrKind::Int, AttrDefault::Int(0)),
        attr("output_dtype", AttrKind::DType, AttrDefault::Absent),
        attr("precision", AttrKind::DType, AttrDefault::Absent),
        attr("saturate", AttrKind::Bool, AttrDefault::Bool(true)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_quantize_linear,
};

fn infer_dequantize_linear(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let mut allowed = QUANT_TARGETS.to_vec();
    allowed.push(DType::I32);
    require_one_of(x.dtype, &allowed, "quantized input")?;
    let s = ctx.input(1)?;
    require_float(s.dtype, "scale")?;
    if let Some(z) = ctx.opt_input(2) {
        if z.dtype != x.dtype {
            bail!(
                "zero point dtype {} differs from the input's {}",
                z.dtype,
                x.dtype
            );
        }
    }
    if let Some(o) = ctx.dtype("output_dtype")? {
        if o != s.dtype {
            bail!("output_dtype {o} must equal the scale's dtype {}", s.dtype);
        }
    }
    check_scale(ctx, x)?;
    Ok(vec![TensorType::new(s.dtype, x.dims.clone())])
}

/// `quant.dequantize_linear %x, %x_scale, %x_zero_point?`:
/// `(x - zero_point) * scale` in the scale's dtype.
pub const DEQUANTIZE_LINEAR: OpDef = OpDef {
    name: "quant.dequantize_linear",
    summary: "Linear dequantization with per-tensor, per-axis or blocked scales",
    inputs: Arity::range(2, 3),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("axis", AttrKind::Int, AttrDefault::Int(1)),
        attr("block_size", AttrKind::Int, AttrDefault::Int(0)),
        attr("output_dtype", AttrKind::DType, AttrDefault::Absent),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_dequantize_linear,
};

fn infer_nf4_dequantize(ctx: &InferCtx<'_>) -> R {
    let w = ctx.input(0)?;
    let a = ctx.input(1)?;
    if w.dtype != DType::NF4 {
        bail!("weight must be nf4, got {w}");
    }
    if w.rank() == 0 {
        bail!("weight must have rank >= 1, got {w}");
    }
    require_one_of(a.dtype, &[DType::F32, DType::F16], "absmax")?;
    let block = ctx.int("block_size")?;
    if block <= 0 || block % 2 != 0 {
        bail!("block_size must be positive and even, got {block}");
    }
    if a.rank() != w.rank() {
        bail!(
            "absmax {a} must have the weight's rank {} (blocks run along the last dim)",
            w.rank()
        );
    }
    let last = w.rank() - 1;
    for (i, (ad, wd)) in a.dims.iter().zip(&w.dims).enumerate() {
        if i < last {
            check_dims_agree(ad, wd, &format!("absmax dim {i}"))?;
        } else if let (Dim::Static(an), Dim::Static(k)) = (ad, wd) {
            let want = k.div_ceil(block as u64);
            if *an != want {
                bail!("absmax has {an} blocks per row; {k} / block_size {block} needs {want}");
            }
        }
    }
    Ok(vec![TensorType::new(DType::F32, w.dims.clone())])
}

/// `quant.nf4_dequantize %weight, %absmax`: looks each 4-bit code up in
/// the fixed NF4 code book and multiplies by its block's absmax. Blocks of
/// `block_size` elements run along the last dim, so `absmax` has shape
/// `weight[..-1] + [ceil(K / block_size)]` (a flat bitsandbytes absmax is
/// reshaped to this by the frontend).
pub const NF4_DEQUANTIZE: OpDef = OpDef {
    name: "quant.nf4_dequantize",
    summary: "NF4 code-book dequantization with per-block absmax scales",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[attr("block_size", AttrKind::Int, AttrDefault::Int(64))],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_nf4_dequantize,
};

/// The NF4 code book (the 16 NormalFloat quantiles of bitsandbytes' `NF4`
/// table), indexed by 4-bit code: `quant.nf4_dequantize` computes
/// `NF4_CODE_BOOK[code] * absmax[block]`. Defined here once for the
/// interpreter and the lowering.
pub const NF4_CODE_BOOK: [f64; 16] = [
    -1.0,
    -0.696_192_800_998_687_7,
    -0.525_073_051_452_636_7,
    -0.394_917_488_098_144_53,
    -0.284_441_381_692_886_35,
    -0.184_773_430_228_233_34,
    -0.091_050_036_251_544_95,
    0.0,
    0.079_580_299_556_255_34,
    0.160_930_201_411_247_25,
    0.246_112_301_945_686_34,
    0.337_915_241_718_292_24,
    0.440_709_829_330_444_34,
    0.562_617_003_917_694_1,
    0.722_956_836_223_602_3,
    1.0,
];
