//! Pooling over the spatial dims of `[N, C, spatial...]` tensors:
//! `nn.max_pool`, `nn.average_pool`, `nn.lp_pool`, their global forms and
//! `nn.lrn`. Semantics follow the ONNX operators of the same name (latest
//! opset); window attributes are read by [`Window`], which honours
//! `ceil_mode` because every windowed pool schema declares it.

use super::infer::{bail, require_float, require_one_of, InferCtx, InferError};
use super::linalg::{AutoPad, Window};
use super::{attr, Arity, AttrDefault, AttrSpec, OpDef, Traits};
use crate::attr::{AttrEnum, AttrKind};
use crate::dtype::DType;
use crate::types::{Dim, TensorType};

type R = Result<Vec<TensorType>, InferError>;

/// Requires `[N, C, spatial...]` with at least one spatial dim.
fn nc_spatial<'a>(ctx: &InferCtx<'a>) -> Result<&'a TensorType, InferError> {
    let x = ctx.input(0)?;
    if x.rank() < 3 {
        bail!(
            "{} expects [N, C, spatial...] with rank >= 3, got {x}",
            ctx.def.name
        );
    }
    Ok(x)
}

/// Output dims of a windowed pool. Checks first, with overflow-safe
/// arithmetic, that the window fits in 64 bits, so that [`Window::out_dim`]
/// never overflows on hostile attributes.
fn pooled_dims(ctx: &InferCtx<'_>, x: &TensorType) -> Result<Vec<Dim>, InferError> {
    let spatial = x.rank() - 2;
    let win = Window::read(ctx, spatial, None)?;
    let mut dims = vec![x.dims[0].clone(), x.dims[1].clone()];
    for i in 0..spatial {
        let n = x.dims[2 + i].as_static().unwrap_or(0);
        let fits = (win.kernel[i] - 1)
            .checked_mul(win.dilations[i])
            .and_then(|e| e.checked_add(1))
            .and_then(|_| n.checked_add(win.pads[i]))
            .and_then(|p| p.checked_add(win.pads[i + spatial]))
            .and_then(|p| p.checked_add(win.strides[i]))
            .is_some();
        if !fits {
            bail!("window of spatial dim {i} overflows 64-bit extents");
        }
        dims.push(win.out_dim(i, &x.dims[2 + i])?);
    }
    Ok(dims)
}

fn infer_max_pool(ctx: &InferCtx<'_>) -> R {
    let x = nc_spatial(ctx)?;
    if !x.dtype.is_float() {
        require_one_of(x.dtype, &[DType::I8, DType::U8], "nn.max_pool input")?;
    }
    let order = ctx.int("storage_order")?;
    if order != 0 && order != 1 {
        bail!("storage_order must be 0 (row major) or 1 (column major), got {order}");
    }
    let dims = pooled_dims(ctx, x)?;
    Ok(vec![
        TensorType::new(x.dtype, dims.clone()),
        TensorType::new(DType::I64, dims),
    ])
}

fn infer_float_pool(ctx: &InferCtx<'_>) -> R {
    let x = nc_spatial(ctx)?;
    require_float(x.dtype, "pool input")?;
    if ctx.def.attr_spec("p").is_some() {
        let p = ctx.int("p")?;
        if p <= 0 {
            bail!("p must be positive, got {p}");
        }
    }
    Ok(vec![TensorType::new(x.dtype, pooled_dims(ctx, x)?)])
}

fn infer_global_pool(ctx: &InferCtx<'_>) -> R {
    let x = nc_spatial(ctx)?;
    require_float(x.dtype, "pool input")?;
    let mut dims = x.dims[..2].to_vec();
    dims.resize(x.rank(), Dim::Static(1));
    Ok(vec![TensorType::new(x.dtype, dims)])
}

fn infer_lrn(ctx: &InferCtx<'_>) -> R {
    let x = nc_spatial(ctx)?;
    require_float(x.dtype, "nn.lrn input")?;
    let size = ctx.int("size")?;
    if size <= 0 {
        bail!("size must be positive, got {size}");
    }
    Ok(vec![x.clone()])
}

const MAX_POOL_ATTRS: &[AttrSpec] = &[
    attr(
        "auto_pad",
        AttrKind::Enum(AutoPad::NAMES),
        AttrDefault::Str("NOTSET"),
    ),
    attr("ceil_mode", AttrKind::Bool, AttrDefault::Bool(false)),
    attr("dilations", AttrKind::Ints, AttrDefault::Absent),
    attr("kernel_shape", AttrKind::Ints, AttrDefault::Required),
    super::layout::LAYOUT_ATTR,
    attr("pads", AttrKind::Ints, AttrDefault::Absent),
    attr("storage_order", AttrKind::Int, AttrDefault::Int(0)),
    attr("strides", AttrKind::Ints, AttrDefault::Absent),
];

/// `nn.max_pool %x -> %y, %indices?`: indices are flat i64 offsets into the
/// input, in the order `storage_order` selects.
pub const MAX_POOL: OpDef = OpDef {
    name: "nn.max_pool",
    summary: "Maximum over sliding windows, with optional flat argmax indices",
    inputs: Arity::exactly(1),
    outputs: Arity::range(1, 2),
    attrs: MAX_POOL_ATTRS,
    traits: Traits::NONE,
    static_operands: &[],
    infer: |ctx| super::layout::infer_in_layout(ctx, infer_max_pool),
};

/// `nn.average_pool %x`: padding counts toward the divisor only with
/// `count_include_pad`.
pub const AVERAGE_POOL: OpDef = OpDef {
    name: "nn.average_pool",
    summary: "Mean over sliding windows",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[
        attr(
            "auto_pad",
            AttrKind::Enum(AutoPad::NAMES),
            AttrDefault::Str("NOTSET"),
        ),
        attr("ceil_mode", AttrKind::Bool, AttrDefault::Bool(false)),
        attr(
            "count_include_pad",
            AttrKind::Bool,
            AttrDefault::Bool(false),
        ),
        attr("dilations", AttrKind::Ints, AttrDefault::Absent),
        attr("kernel_shape", AttrKind::Ints, AttrDefault::Required),
        super::layout::LAYOUT_ATTR,
        attr("pads", AttrKind::Ints, AttrDefault::Absent),
        attr("strides", AttrKind::Ints, AttrDefault::Absent),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: |ctx| super::layout::infer_in_layout(ctx, infer_float_pool),
};

/// `nn.lp_pool %x`: `(sum |x|^p)^(1/p)` over sliding windows.
pub const LP_POOL: OpDef = OpDef {
    name: "nn.lp_pool",
    summary: "Lp norm over sliding windows",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[
        attr(
            "auto_pad",
            AttrKind::Enum(AutoPad::NAMES),
            AttrDefault::Str("NOTSET"),
        ),
        attr("ceil_mode", AttrKind::Bool, AttrDefault::Bool(false)),
        attr("dilations", AttrKind::Ints, AttrDefault::Absent),
        attr("kernel_shape", AttrKind::Ints, AttrDefault::Required),
        attr("p", AttrKind::Int, AttrDefault::Int(2)),
        attr("pads", AttrKind::Ints, AttrDefault::Absent),
        attr("strides", AttrKind::Ints, AttrDefault::Absent),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_float_pool,
};

/// `nn.global_average_pool %x`: mean over all spatial dims, kept as 1s.
pub const GLOBAL_AVERAGE_POOL: OpDef = OpDef {
    name: "nn.global_average_pool",
    summary: "Mean over all spatial dims; result [N, C, 1, ...]",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[super::layout::LAYOUT_ATTR],
    traits: Traits::NONE,
    static_operands: &[],
    infer: |ctx| super::layout::infer_in_layout(ctx, infer_global_pool),
};

/// `nn.global_max_pool %x`: maximum over all spatial dims, kept as 1s.
pub const GLOBAL_MAX_POOL: OpDef = OpDef {
    name: "nn.global_max_pool",
    summary: "Maximum over all spatial dims; result [N, C, 1, ...]",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[super::layout::LAYOUT_ATTR],
    traits: Traits::NONE,
    static_operands: &[],
    infer: |ctx| super::layout::infer_in_layout(ctx, infer_global_pool),
};

/// `nn.lrn %x`: `x / (bias + alpha / size * sum of squares over a channel
/// window of `size`) ^ beta`.
pub const LRN: OpDef = OpDef {
    name: "nn.lrn",
    summary: "Local response normalization across channels",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("alpha", AttrKind::Float, AttrDefault::Float(1e-4)),
        attr("beta", AttrKind::Float, AttrDefault::Float(0.75)),
        attr("bias", AttrKind::Float, AttrDefault::Float(1.0)),
        attr("size", AttrKind::Int, AttrDefault::Required),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_lrn,
};

/// `nn.global_lp_pool %x`: `(sum |x|^p)^(1/p)` over all spatial dims, kept
/// as 1s.
pub const GLOBAL_LP_POOL: OpDef = OpDef {
    name: "nn.global_lp_pool",
    summary: "Lp norm over all spatial dims; result [N, C, 1, ...]",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[attr("p", AttrKind::Int, AttrDefault::Int(2))],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_global_lp_pool,
};

fn infer_global_lp_pool(ctx: &InferCtx<'_>) -> R {
    let p = ctx.int("p")?;
    if p <= 0 {
        bail!("p must be positive, got {p}");
    }
    infer_global_pool(ctx)
}
