//! Reductions: the `nn.reduce_*` family, `nn.arg_max`/`nn.arg_min`,
//! `nn.cumsum` and `nn.top_k`. Semantics follow the ONNX operators of the
//! same name at the latest opset: reduction axes are an optional i64
//! operand (opset 18 style), not an attribute.
//!
//! When the axes operand is not a compile-time constant, inference still
//! knows the result rank if `keepdims` is set, or if the axes operand has a
//! static length; the reduced extents become unknown. A non-constant axes
//! operand of unknown length with `keepdims = 0` is rejected, because the
//! result rank would be unknown and Kiln types are ranked.

use super::infer::{bail, int_list_operand, norm_axes, norm_axis, require_numeric};
use super::infer::{InferCtx, InferError};
use super::{attr, Arity, AttrDefault, AttrSpec, OpDef, Traits};
use crate::attr::AttrKind;
use crate::dtype::DType;
use crate::types::{Dim, TensorType};

type R = Result<Vec<TensorType>, InferError>;

/// Result dims of a `nn.reduce_*` op on `x`.
fn reduced_dims(ctx: &InferCtx<'_>, x: &TensorType) -> Result<Vec<Dim>, InferError> {
    let keep = ctx.bool("keepdims")?;
    let noop = ctx.bool("noop_with_empty_axes")?;
    let axes = match ctx.opt_input(1) {
        None => Some(Vec::new()),
        Some(_) => int_list_operand(ctx, 1, "axes", false)?,
    };
    let reduce = |mask: &[bool]| -> Vec<Dim> {
        x.dims
            .iter()
            .zip(mask)
            .filter_map(|(d, &m)| match (m, keep) {
                (false, _) => Some(d.clone()),
                (true, true) => Some(Dim::Static(1)),
                (true, false) => None,
            })
            .collect()
    };
    match axes {
        Some(a) if a.is_empty() => {
            if noop {
                Ok(x.dims.clone())
            } else {
                Ok(reduce(&vec![true; x.rank()]))
            }
        }
        Some(a) => {
            let mut mask = vec![false; x.rank()];
            for i in norm_axes(&a, x.rank())? {
                mask[i] = true;
            }
            Ok(reduce(&mask))
        }
        None if keep => Ok(x
            .dims
            .iter()
            .map(|d| match d {
                Dim::Static(1) => Dim::Static(1),
                _ => Dim::Unknown,
            })
            .collect()),
        None => match ctx.input(1)?.numel() {
            Some(0) if noop => Ok(x.dims.clone()),
            Some(0) => Ok(Vec::new()),
            Some(k) if k > x.rank() as u64 => {
                bail!("{k} reduction axes given for rank {}", x.rank())
            }
            Some(k) => Ok(vec![Dim::Unknown; x.rank() - k as usize]),
            None => bail!(
                "{} with keepdims = 0 needs constant axes or an axes operand of static length \
                 (the result rank is otherwise unknown)",
                ctx.def.name
            ),
        },
    }
}

fn infer_reduce(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    require_numeric(x.dtype, "reduction input")?;
    Ok(vec![TensorType::new(x.dtype, reduced_dims(ctx, x)?)])
}

/// Max and min are also defined on bools (logical or / and).
fn infer_reduce_ordered(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    if x.dtype == DType::NF4 {
        bail!("reduction input has dtype nf4; dequantize it first");
    }
    Ok(vec![TensorType::new(x.dtype, reduced_dims(ctx, x)?)])
}

/// Float-only reductions (logarithms and square roots of sums).
fn infer_reduce_float(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    super::infer::require_float(x.dtype, "reduction input")?;
    Ok(vec![TensorType::new(x.dtype, reduced_dims(ctx, x)?)])
}

const REDUCE_ATTRS: &[AttrSpec] = &[
    attr("keepdims", AttrKind::Bool, AttrDefault::Bool(true)),
    attr(
        "noop_with_empty_axes",
        AttrKind::Bool,
        AttrDefault::Bool(false),
    ),
];

macro_rules! reductions {
    ($($c:ident $name:literal $infer:ident $summary:literal;)*) => {$(
        #[doc = concat!("`", $name, " %data, %axes?`: ", $summary, ".")]
        pub const $c: OpDef = OpDef {
            name: $name,
            summary: $summary,
            inputs: Arity::range(1, 2),
            outputs: Arity::exactly(1),
            attrs: REDUCE_ATTRS,
            traits: Traits::NONE,
            static_operands: &[1],
            infer: $infer,
        };
    )*};
}

reductions! {
    REDUCE_L1 "nn.reduce_l1" infer_reduce "Sum of absolute values over the given axes";
    REDUCE_L2 "nn.reduce_l2" infer_reduce_float "Square root of the sum of squares over the given axes";
    REDUCE_LOG_SUM "nn.reduce_log_sum" infer_reduce_float "Logarithm of the sum over the given axes";
    REDUCE_LOG_SUM_EXP "nn.reduce_log_sum_exp" infer_reduce_float "Logarithm of the sum of exponentials over the given axes";
    REDUCE_MAX "nn.reduce_max" infer_reduce_ordered "Maximum over the given axes (logical or for bools)";
    REDUCE_MEAN "nn.reduce_mean" infer_reduce "Mean over the given axes";
    REDUCE_MIN "nn.reduce_min" infer_reduce_ordered "Minimum over the given axes (logical and for bools)";
    REDUCE_PROD "nn.reduce_prod" infer_reduce "Product over the given axes";
    REDUCE_SUM "nn.reduce_sum" infer_reduce "Sum over the given axes";
    REDUCE_SUM_SQUARE "nn.reduce_sum_square" infer_reduce "Sum of squares over the given axes";
}

fn infer_arg(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    require_numeric(x.dtype, "operand")?;
    let axis = norm_axis(ctx.int("axis")?, x.rank())?;
    let mut dims = x.dims.clone();
    if ctx.bool("keepdims")? {
        dims[axis] = Dim::Static(1);
    } else {
        dims.remove(axis);
    }
    Ok(vec![TensorType::new(DType::I64, dims)])
}

const ARG_ATTRS: &[AttrSpec] = &[
    attr("axis", AttrKind::Int, AttrDefault::Int(0)),
    attr("keepdims", AttrKind::Bool, AttrDefault::Bool(true)),
    attr(
        "select_last_index",
        AttrKind::Bool,
        AttrDefault::Bool(false),
    ),
];

/// `nn.arg_max %x`: i64 index of the maximum along `axis`.
pub const ARG_MAX: OpDef = OpDef {
    name: "nn.arg_max",
    summary: "Index of the maximum along an axis (first or last occurrence)",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: ARG_ATTRS,
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_arg,
};

/// `nn.arg_min %x`: i64 index of the minimum along `axis`.
pub const ARG_MIN: OpDef = OpDef {
    name: "nn.arg_min",
    summary: "Index of the minimum along an axis (first or last occurrence)",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: ARG_ATTRS,
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_arg,
};

/// Reads a one-element integer operand (CumSum's axis, TopK's k).
fn single_int(ctx: &InferCtx<'_>, i: usize, what: &str) -> Result<Option<i64>, InferError> {
    let t = ctx.input(i)?;
    if let Some(n) = t.numel() {
        if n != 1 {
            bail!("{what} must hold exactly one value, got {t}");
        }
    }
    match int_list_operand(ctx, i, what, true)? {
        None => Ok(None),
        Some(v) if v.len() == 1 => Ok(Some(v[0])),
        Some(v) => bail!("{what} must hold exactly one value, got {}", v.len()),
    }
}

fn infer_cumsum(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    require_numeric(x.dtype, "operand")?;
    if let Some(axis) = single_int(ctx, 1, "axis")? {
        norm_axis(axis, x.rank())?;
    } else if x.rank() == 0 {
        bail!("{} needs an input of rank >= 1", ctx.def.name);
    }
    Ok(vec![x.clone()])
}

/// `nn.cumsum %x, %axis`: running sum along a (scalar operand) axis.
pub const CUMSUM: OpDef = OpDef {
    name: "nn.cumsum",
    summary: "Cumulative sum along an axis, optionally exclusive or reversed",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("exclusive", AttrKind::Bool, AttrDefault::Bool(false)),
        attr("reverse", AttrKind::Bool, AttrDefault::Bool(false)),
    ],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_cumsum,
};

/// `nn.cumprod %x, %axis`: running product along a (scalar operand) axis.
pub const CUMPROD: OpDef = OpDef {
    name: "nn.cumprod",
    summary: "Cumulative product along an axis, optionally exclusive or reversed",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("exclusive", AttrKind::Bool, AttrDefault::Bool(false)),
        attr("reverse", AttrKind::Bool, AttrDefault::Bool(false)),
    ],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_cumsum,
};

fn infer_top_k(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    require_numeric(x.dtype, "operand")?;
    let axis = norm_axis(ctx.int("axis")?, x.rank())?;
    let mut dims = x.dims.clone();
    dims[axis] = match single_int(ctx, 1, "k")? {
        None => Dim::Unknown,
        Some(k) if k < 0 => bail!("k must be non-negative, got {k}"),
        Some(k) => {
            if let Some(n) = x.dims[axis].as_static() {
                if k as u64 > n {
                    bail!("k = {k} exceeds the extent {n} of axis {axis}");
                }
            }
            Dim::Static(k as u64)
        }
    };
    Ok(vec![
        TensorType::new(x.dtype, dims.clone()),
        TensorType::new(DType::I64, dims),
    ])
}

/// `nn.top_k %x, %k -> %values, %indices`: the k largest (or smallest)
/// elements along `axis` and their i64 indices.
pub const TOP_K: OpDef = OpDef {
    name: "nn.top_k",
    summary: "The k largest or smallest elements along an axis, with their indices",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(2),
    attrs: &[
        attr("axis", AttrKind::Int, AttrDefault::Int(-1)),
        attr("largest", AttrKind::Bool, AttrDefault::Bool(true)),
        attr("sorted", AttrKind::Bool, AttrDefault::Bool(true)),
    ],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_top_k,
};
