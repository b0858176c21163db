//! Shape and data-movement ops: reshapes, transposes, slicing, gathers and
//! scatters, padding, resizing and the ops that produce shapes or index
//! tensors. Semantics follow the ONNX operators of the same name at the
//! latest opset.
//!
//! Operands that ONNX passes as tensors (Reshape's shape, Slice's bounds,
//! Pad's pads, Expand's shape, ...) stay operands. Inference reads them with
//! [`InferCtx::const_ints`] when they are compile-time constants; otherwise
//! the affected extents become [`Dim::Unknown`]. Kiln types are ranked, so
//! where even the result rank would depend on run-time data, inference asks
//! for a constant (or a shape operand of static length) and rejects the node
//! otherwise. All arithmetic on extents is checked: a hostile constant gives
//! an error, never an overflow.

use super::infer::{bail, broadcast_shapes, check_dims_agree, dim_of, int_list_operand, norm_axes};
use super::infer::{
    norm_axis, norm_axis_incl, require_float, require_numeric, same_dtype, unify_dim,
};
use super::infer::{InferCtx, InferError};
use super::resample::{
    resize_extents, AspectPolicy, CoordinateTransform, GridMode, GridPadding, NearestMode,
    ResizeMode,
};
use super::{attr, Arity, AttrDefault, OpDef, Traits};
use crate::attr::{AttrEnum, AttrKind};
use crate::dtype::DType;
use crate::types::{Dim, TensorType};

type R = Result<Vec<TensorType>, InferError>;

/// `a * b` for dims: static products are checked, `x * 1 = x`.
fn mul_dim(a: &Dim, b: &Dim) -> Result<Dim, InferError> {
    Ok(match (a, b) {
        (Dim::Static(1), d) | (d, Dim::Static(1)) => d.clone(),
        (Dim::Static(0), _) | (_, Dim::Static(0)) => Dim::Static(0),
        (Dim::Static(x), Dim::Static(y)) => match x.checked_mul(*y) {
            Some(p) => Dim::Static(p),
            None => bail!("extent {x} x {y} overflows 64 bits"),
        },
        _ => Dim::Unknown,
    })
}

/// The product of `dims` as one dim (1 for none).
fn product_dim(dims: &[Dim]) -> Result<Dim, InferError> {
    dims.iter()
        .try_fold(Dim::Static(1), |acc, d| mul_dim(&acc, d))
}

/// Requires an i32 or i64 index tensor.
fn require_index(t: &TensorType, what: &str) -> Result<(), InferError> {
    if !matches!(t.dtype, DType::I32 | DType::I64) {
        bail!("{what} must be an i32 or i64 tensor, got {t}");
    }
    Ok(())
}

/// The length of a shape-like operand when no constant is known: its
/// static element count, or an error naming what would be unknown.
fn need_len(ctx: &InferCtx<'_>, i: usize, what: &str) -> Result<usize, InferError> {
    match ctx.input(i)?.numel() {
        Some(n) if n <= 1 << 20 => Ok(n as usize),
        Some(n) => bail!("{what} has {n} entries; too many dims"),
        None => bail!(
            "{} needs a constant {what} or one of static length (the result rank is otherwise unknown)",
            ctx.def.name
        ),
    }
}

// ---- nn.reshape ----

fn infer_reshape(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let allow_zero = ctx.bool("allowzero")?;
    let Some(shape) = int_list_operand(ctx, 1, "shape", false)? else {
        let n = need_len(ctx, 1, "shape")?;
        return Ok(vec![TensorType::new(x.dtype, vec![Dim::Unknown; n])]);
    };
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(shape.len());
    let mut infer_at = None;
    for (i, &v) in shape.iter().enumerate() {
        out.push(match v {
            -1 if infer_at.is_some() => bail!("shape {shape:?} has more than one -1"),
            -1 => {
                infer_at = Some(i);
                None
            }
            0 if allow_zero => Some(Dim::Static(0)),
            0 => match x.dims.get(i) {
                Some(d) => Some(d.clone()),
                None => bail!(
                    "shape {shape:?} copies dim {i} (0) but the input has rank {}",
                    x.rank()
                ),
            },
            v if v < 0 => bail!("shape entries must be >= -1, got {v}"),
            v => Some(Dim::Static(v as u64)),
        });
    }
    if allow_zero && infer_at.is_some() && shape.contains(&0) {
        bail!("shape {shape:?} mixes 0 and -1 with allowzero set");
    }
    let known: Vec<Dim> = out.iter().flatten().cloned().collect();
    let Some(at) = infer_at else {
        let out: Vec<Dim> = known;
        check_same_count(&x.dims, &out)?;
        return Ok(vec![TensorType::new(x.dtype, out)]);
    };
    // Cancel factors common to input and output; what remains of the input
    // divided by what remains of the output is the -1 extent.
    let mut rest_in: Vec<Dim> = x.dims.clone();
    let mut rest_out: Vec<Dim> = Vec::new();
    for d in known {
        match rest_in
            .iter()
            .position(|e| *e == d && !matches!(d, Dim::Unknown))
        {
            Some(p) => {
                rest_in.remove(p);
            }
            None => rest_out.push(d),
        }
    }
    let (in_static, in_dyn) = split_static(&rest_in)?;
    let (out_static, out_dyn) = split_static(&rest_out)?;
    let inferred = match (in_dyn.as_slice(), out_dyn.is_empty()) {
        (_, false) => Dim::Unknown,
        (_, true) if out_static == 0 => {
            if in_dyn.is_empty() && in_static != 0 {
                bail!("cannot infer -1: the other extents multiply to 0 but the input has {in_static} elements");
            }
            Dim::Unknown
        }
        ([], true) => {
            if in_static % out_static != 0 {
                bail!("cannot reshape {x} to {shape:?}: {in_static} elements are not divisible by {out_static}");
            }
            Dim::Static(in_static / out_static)
        }
        ([d @ Dim::Sym(_)], true) if in_static == out_static => d.clone(),
        _ => Dim::Unknown,
    };
    out[at] = Some(inferred);
    Ok(vec![TensorType::new(
        x.dtype,
        out.into_iter().flatten().collect(),
    )])
}

/// Splits dims into the (checked) product of the static ones and the rest.
fn split_static(dims: &[Dim]) -> Result<(u64, Vec<Dim>), InferError> {
    let mut p: u64 = 1;
    let mut rest = Vec::new();
    for d in dims {
        match d {
            Dim::Static(n) => {
                p = p
                    .checked_mul(*n)
                    .ok_or_else(|| InferError("element count overflows 64 bits".into()))?;
            }
            d => rest.push(d.clone()),
        }
    }
    Ok((p, rest))
}

/// Checks that two fully static shapes have the same element count.
fn check_same_count(a: &[Dim], b: &[Dim]) -> Result<(), InferError> {
    if let (Dim::Static(x), Dim::Static(y)) = (product_dim(a)?, product_dim(b)?) {
        if x != y {
            bail!("cannot reshape {x} elements into {y}");
        }
    }
    Ok(())
}

/// `nn.reshape %data, %shape`: ONNX semantics for 0 (copy the input dim,
/// unless `allowzero`) and -1 (infer).
pub const RESHAPE: OpDef = OpDef {
    name: "nn.reshape",
    summary: "Reinterprets the elements with a new shape (0 copies, -1 infers)",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[attr("allowzero", AttrKind::Bool, AttrDefault::Bool(false))],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_reshape,
};

// ---- nn.transpose ----

fn infer_transpose(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let perm = match ctx.ints("perm")? {
        Some(p) => p,
        None => (0..x.rank() as i64).rev().collect(),
    };
    if perm.len() != x.rank() {
        bail!(
            "perm {perm:?} has {} entries for rank {}",
            perm.len(),
            x.rank()
        );
    }
    if let Some(p) = perm.iter().find(|&&p| p < 0) {
        bail!("perm entries must be non-negative, got {p}");
    }
    let perm = norm_axes(&perm, x.rank())?;
    let dims = perm.iter().map(|&p| x.dims[p].clone()).collect();
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.transpose %x`: permutes dims; result dim i is input dim `perm[i]`.
pub const TRANSPOSE: OpDef = OpDef {
    name: "nn.transpose",
    summary: "Permutes dims (reverses them by default)",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[attr("perm", AttrKind::Ints, AttrDefault::Absent)],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_transpose,
};

// ---- nn.concat ----

fn infer_concat(ctx: &InferCtx<'_>) -> R {
    let dt = same_dtype(ctx)?;
    let first = ctx.input(0)?;
    let axis = norm_axis(ctx.int("axis")?, first.rank())?;
    let mut dims = first.dims.clone();
    for i in 1..ctx.num_inputs() {
        let t = ctx.input(i)?;
        if t.rank() != first.rank() {
            bail!(
                "operand #{i} has rank {} but operand #0 has rank {}",
                t.rank(),
                first.rank()
            );
        }
        for (j, d) in t.dims.iter().enumerate() {
            dims[j] = if j == axis {
                match (&dims[j], d) {
                    (Dim::Static(a), Dim::Static(b)) => match a.checked_add(*b) {
                        Some(s) => Dim::Static(s),
                        None => bail!("concatenated extent overflows 64 bits"),
                    },
                    _ => Dim::Unknown,
                }
            } else {
                unify_dim(&dims[j], d, &format!("operand #{i} dim {j}"))?
            };
        }
    }
    Ok(vec![TensorType::new(dt, dims)])
}

/// `nn.concat %a, %b, ...`: joins along `axis`; other dims must agree.
pub const CONCAT: OpDef = OpDef {
    name: "nn.concat",
    summary: "Concatenates operands along an axis",
    inputs: Arity::at_least(1),
    outputs: Arity::exactly(1),
    attrs: &[attr("axis", AttrKind::Int, AttrDefault::Required)],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_concat,
};

// ---- nn.slice ----

/// The extent of `[start, end)` stepped by `step` over a dim of `n`, with
/// ONNX's clamping. Wide arithmetic: starts and ends may be i64 extremes.
fn slice_len(n: u64, start: i64, end: i64, step: i64) -> u64 {
    if n == 0 {
        return 0;
    }
    let n = i128::from(n);
    let (mut s, mut e, st) = (i128::from(start), i128::from(end), i128::from(step));
    if s < 0 {
        s += n;
    }
    if e < 0 {
        e += n;
    }
    if st > 0 {
        s = s.clamp(0, n);
        e = e.clamp(0, n);
        if e <= s {
            0
        } else {
            ((e - s + st - 1) / st) as u64
        }
    } else {
        s = s.clamp(0, n - 1);
        e = e.clamp(-1, n - 1);
        if s <= e {
            0
        } else {
            ((s - e + (-st) - 1) / (-st)) as u64
        }
    }
}

fn infer_slice(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let starts = int_list_operand(ctx, 1, "starts", false)?;
    let ends = int_list_operand(ctx, 2, "ends", false)?;
    let axes = match ctx.opt_input(3) {
        Some(_) => int_list_operand(ctx, 3, "axes", false)?,
        None => None,
    };
    let steps = match ctx.opt_input(4) {
        Some(_) => int_list_operand(ctx, 4, "steps", false)?,
        None => None,
    };
    let lens: Vec<(usize, &str)> = [
        (&starts, "starts"),
        (&ends, "ends"),
        (&axes, "axes"),
        (&steps, "steps"),
    ]
    .iter()
    .filter_map(|(v, n)| v.as_ref().map(|v| (v.len(), *n)))
    .collect();
    if let Some(&(n0, w0)) = lens.first() {
        if let Some(&(n, w)) = lens.iter().find(|(n, _)| *n != n0) {
            bail!("{w0} has {n0} entries but {w} has {n}");
        }
    }
    if let Some(s) = &steps {
        if s.contains(&0) {
            bail!("slice steps must be non-zero");
        }
    }
    let axes: Option<Vec<usize>> = match (&axes, ctx.opt_input(3)) {
        (Some(a), _) => Some(norm_axes(a, x.rank())?),
        (None, Some(_)) => None,
        // Without axes, bounds apply to dims 0.. in order; their count is
        // known from a constant or from the starts operand's static length.
        (None, None) => match lens
            .first()
            .map(|&(n, _)| n as u64)
            .or(ctx.input(1)?.numel())
        {
            Some(n) if n > x.rank() as u64 => bail!("{n} slice bounds for rank {}", x.rank()),
            Some(n) => Some((0..n as usize).collect()),
            None => None,
        },
    };
    let Some(axes) = axes else {
        // Which dims are sliced is unknown: every extent may change.
        return Ok(vec![TensorType::new(x.dtype, vec![Dim::Unknown; x.rank()])]);
    };
    let mut dims = x.dims.clone();
    for (i, &a) in axes.iter().enumerate() {
        let step = steps.as_ref().map_or(Some(1), |s| Some(s[i]));
        let bounds = match (&starts, &ends, step) {
            (Some(s), Some(e), Some(st)) => Some((s[i], e[i], st)),
            _ => None,
        };
        dims[a] = match (bounds, &x.dims[a]) {
            (Some((s, e, st)), Dim::Static(n)) => Dim::Static(slice_len(*n, s, e, st)),
            // A whole-dim slice keeps even a symbolic extent.
            (Some((0, e, 1)), d) if e == i64::MAX => d.clone(),
            _ => Dim::Unknown,
        };
    }
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.slice %data, %starts, %ends, %axes?, %steps?`: strided slice with
/// ONNX clamping of out-of-range bounds.
pub const SLICE: OpDef = OpDef {
    name: "nn.slice",
    summary: "Strided slice along the given axes; bounds are clamped",
    inputs: Arity::range(3, 5),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::NONE,
    static_operands: &[1, 2, 3, 4],
    infer: infer_slice,
};

// ---- gathers and scatters ----

fn infer_gather(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let idx = ctx.input(1)?;
    if !matches!(idx.dtype, DType::I8 | DType::U8 | DType::I16 | DType::U16) {
        require_index(idx, "indices")?;
    }
    let axis = norm_axis(ctx.int("axis")?, x.rank())?;
    let mut dims = x.dims[..axis].to_vec();
    dims.extend(idx.dims.iter().cloned());
    dims.extend(x.dims[axis + 1..].iter().cloned());
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.gather %data, %indices`: takes slices of `data` along `axis`.
/// Indices are i32 or i64 as in ONNX, or 8- and 16-bit integers (a table
/// lookup of codes, as `fold-quantized-unary` makes); a negative index
/// counts from the end.
pub const GATHER: OpDef = OpDef {
    name: "nn.gather",
    summary: "Gathers slices along an axis; result dims data[:axis] + indices + data[axis+1:]",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[attr("axis", AttrKind::Int, AttrDefault::Int(0))],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_gather,
};

fn infer_gather_elements(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let idx = ctx.input(1)?;
    require_index(idx, "indices")?;
    if idx.rank() != x.rank() {
        bail!("indices {idx} must have the rank of data {x}");
    }
    norm_axis(ctx.int("axis")?, x.rank())?;
    Ok(vec![TensorType::new(x.dtype, idx.dims.clone())])
}

/// `nn.gather_elements %data, %indices`: per-element gather along `axis`.
pub const GATHER_ELEMENTS: OpDef = OpDef {
    name: "nn.gather_elements",
    summary: "Gathers single elements along an axis; result has the indices' shape",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[attr("axis", AttrKind::Int, AttrDefault::Int(0))],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_gather_elements,
};

fn infer_gather_nd(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let idx = ctx.input(1)?;
    if idx.dtype != DType::I64 {
        bail!("indices must be an i64 tensor, got {idx}");
    }
    let (r, q) = (x.rank(), idx.rank());
    let b = ctx.int("batch_dims")?;
    if b < 0 || b as usize >= r.min(q) {
        bail!("batch_dims {b} must be in [0, min(data rank {r}, indices rank {q}))");
    }
    let b = b as usize;
    let Some(m) = idx.dims[q - 1].as_static() else {
        bail!("the last dim of indices {idx} must be static (it sets the result rank)");
    };
    if m < 1 || m > (r - b) as u64 {
        bail!("the last dim of indices ({m}) must be in [1, {}]", r - b);
    }
    for i in 0..b {
        check_dims_agree(&x.dims[i], &idx.dims[i], "batch dims of data and indices")?;
    }
    let mut dims = idx.dims[..q - 1].to_vec();
    dims.extend(x.dims[b + m as usize..].iter().cloned());
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.gather_nd %data, %indices`: gathers slices addressed by index
/// tuples in the last dim of `indices`.
pub const GATHER_ND: OpDef = OpDef {
    name: "nn.gather_nd",
    summary: "Gathers slices addressed by index tuples",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[attr("batch_dims", AttrKind::Int, AttrDefault::Int(0))],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_gather_nd,
};

crate::attr_enum! {
    /// The `reduction` of `nn.scatter_elements`/`nn.scatter_nd`: how an
    /// update combines with the element it lands on.
    pub enum ScatterReduction {
        /// Replaces it.
        None = "none",
        /// Adds to it.
        Add = "add",
        /// Multiplies it.
        Mul = "mul",
        /// Keeps the larger.
        Max = "max",
        /// Keeps the smaller.
        Min = "min",
    }
}

fn check_reduction(ctx: &InferCtx<'_>) -> Result<(), InferError> {
    ctx.enum_attr::<ScatterReduction>("reduction")?;
    Ok(())
}

fn infer_scatter_elements(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let idx = ctx.input(1)?;
    let upd = ctx.input(2)?;
    require_index(idx, "indices")?;
    check_reduction(ctx)?;
    if upd.dtype != x.dtype {
        bail!("updates have dtype {} but data has {}", upd.dtype, x.dtype);
    }
    if idx.rank() != x.rank() || upd.rank() != x.rank() {
        bail!("data {x}, indices {idx} and updates {upd} must have one rank");
    }
    for (a, b) in idx.dims.iter().zip(&upd.dims) {
        check_dims_agree(a, b, "indices vs updates")?;
    }
    norm_axis(ctx.int("axis")?, x.rank())?;
    Ok(vec![x.clone()])
}

/// `nn.scatter_elements %data, %indices, %updates`: writes (or reduces)
/// `updates` into a copy of `data` at per-element indices along `axis`.
pub const SCATTER_ELEMENTS: OpDef = OpDef {
    name: "nn.scatter_elements",
    summary: "Scatters single elements along an axis, optionally reducing",
    inputs: Arity::exactly(3),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("axis", AttrKind::Int, AttrDefault::Int(0)),
        attr(
            "reduction",
            AttrKind::Enum(ScatterReduction::NAMES),
            AttrDefault::Str("none"),
        ),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_scatter_elements,
};

fn infer_scatter_nd(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let idx = ctx.input(1)?;
    let upd = ctx.input(2)?;
    if idx.dtype != DType::I64 {
        bail!("indices must be an i64 tensor, got {idx}");
    }
    check_reduction(ctx)?;
    if upd.dtype != x.dtype {
        bail!("updates have dtype {} but data has {}", upd.dtype, x.dtype);
    }
    if x.rank() == 0 || idx.rank() == 0 {
        bail!("data and indices must have rank >= 1, got {x} and {idx}");
    }
    if let Some(m) = idx.dims[idx.rank() - 1].as_static() {
        if m > x.rank() as u64 {
            bail!(
                "index tuples of length {m} exceed the data rank {}",
                x.rank()
            );
        }
        // updates.shape == indices.shape[:-1] + data.shape[m:]
        let mut want = idx.dims[..idx.rank() - 1].to_vec();
        want.extend(x.dims[m as usize..].iter().cloned());
        if want.len() != upd.rank() {
            bail!(
                "updates {upd} must have rank {} (indices[:-1] + data[{m}:])",
                want.len()
            );
        }
        for (a, b) in want.iter().zip(&upd.dims) {
            check_dims_agree(a, b, "updates shape")?;
        }
    }
    Ok(vec![x.clone()])
}

/// `nn.scatter_nd %data, %indices, %updates`: writes (or reduces) slices
/// addressed by index tuples into a copy of `data`.
pub const SCATTER_ND: OpDef = OpDef {
    name: "nn.scatter_nd",
    summary: "Scatters slices addressed by index tuples, optionally reducing",
    inputs: Arity::exactly(3),
    outputs: Arity::exactly(1),
    attrs: &[attr(
        "reduction",
        AttrKind::Enum(ScatterReduction::NAMES),
        AttrDefault::Str("none"),
    )],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_scatter_nd,
};

// ---- nn.split ----

fn infer_split(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let axis = norm_axis(ctx.int("axis")?, x.rank())?;
    let k = ctx.num_outputs;
    if k == 0 {
        bail!("nn.split needs at least one result");
    }
    let num_outputs = ctx.opt_int("num_outputs")?;
    let with = |d: Dim| {
        let mut dims = x.dims.clone();
        dims[axis] = d;
        TensorType::new(x.dtype, dims)
    };
    if ctx.opt_input(1).is_some() {
        if num_outputs.is_some() {
            bail!("give either the split operand or num_outputs, not both");
        }
        let Some(split) = int_list_operand(ctx, 1, "split", false)? else {
            return Ok(vec![with(Dim::Unknown); k]);
        };
        if split.len() != k {
            bail!(
                "split has {} entries but the node has {k} results",
                split.len()
            );
        }
        let mut total: u64 = 0;
        let mut out = Vec::with_capacity(k);
        for &s in &split {
            let d = dim_of(s, "split entries")?;
            total = total
                .checked_add(s as u64)
                .ok_or_else(|| InferError("split sizes overflow".into()))?;
            out.push(with(d));
        }
        if let Some(n) = x.dims[axis].as_static() {
            if n != total {
                bail!("split sizes sum to {total} but axis {axis} has extent {n}");
            }
        }
        return Ok(out);
    }
    if let Some(n) = num_outputs {
        if n != k as i64 {
            bail!("num_outputs is {n} but the node has {k} results");
        }
    }
    let Some(n) = x.dims[axis].as_static() else {
        return Ok(vec![with(Dim::Unknown); k]);
    };
    // ceil(n / k) per chunk; the last chunk takes the remainder.
    let chunk = n.div_ceil(k as u64);
    let before = chunk * (k as u64 - 1);
    // ONNX allows an empty last chunk (6 into 4 gives 2, 2, 2, 0) but not a
    // negative one (5 into 4).
    if before > n {
        bail!("axis extent {n} cannot be split into {k} chunks of {chunk}");
    }
    let mut out = vec![with(Dim::Static(chunk)); k - 1];
    out.push(with(Dim::Static(n - before)));
    Ok(out)
}

/// `nn.split %x, %split? -> %y0, %y1, ...`: splits along `axis`, by the
/// sizes in `split`, or into `num_outputs` (default: the number of results)
/// chunks of `ceil(n / k)` with a smaller last chunk.
pub const SPLIT: OpDef = OpDef {
    name: "nn.split",
    summary: "Splits along an axis into given or equal-sized parts",
    inputs: Arity::range(1, 2),
    outputs: Arity::at_least(1),
    attrs: &[
        attr("axis", AttrKind::Int, AttrDefault::Int(0)),
        attr("num_outputs", AttrKind::Int, AttrDefault::Absent),
    ],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_split,
};

// ---- squeeze, unsqueeze, flatten ----

fn infer_squeeze(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let axes = match ctx.opt_input(1) {
        None => {
            if !x.is_static() {
                bail!("nn.squeeze without axes needs a static input shape, got {x}");
            }
            let dims = x
                .dims
                .iter()
                .filter(|d| **d != Dim::Static(1))
                .cloned()
                .collect();
            return Ok(vec![TensorType::new(x.dtype, dims)]);
        }
        Some(_) => int_list_operand(ctx, 1, "axes", false)?,
    };
    let Some(axes) = axes else {
        let n = need_len(ctx, 1, "axes")?;
        if n > x.rank() {
            bail!("{n} axes to squeeze from rank {}", x.rank());
        }
        return Ok(vec![TensorType::new(
            x.dtype,
            vec![Dim::Unknown; x.rank() - n],
        )]);
    };
    let axes = norm_axes(&axes, x.rank())?;
    for &a in &axes {
        if let Some(n) = x.dims[a].as_static() {
            if n != 1 {
                bail!("cannot squeeze axis {a} of extent {n}");
            }
        }
    }
    let dims = x
        .dims
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, d)| d.clone())
        .collect();
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.squeeze %x, %axes?`: removes extent-1 dims (all of them without axes).
pub const SQUEEZE: OpDef = OpDef {
    name: "nn.squeeze",
    summary: "Removes dims of extent 1",
    inputs: Arity::range(1, 2),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_squeeze,
};

fn infer_unsqueeze(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let Some(axes) = int_list_operand(ctx, 1, "axes", true)? else {
        let n = need_len(ctx, 1, "axes")?;
        return Ok(vec![TensorType::new(
            x.dtype,
            vec![Dim::Unknown; x.rank() + n],
        )]);
    };
    let out_rank = x.rank() + axes.len();
    let axes = norm_axes(&axes, out_rank)?;
    let mut src = x.dims.iter();
    let dims = (0..out_rank)
        .map(|i| {
            if axes.contains(&i) {
                Dim::Static(1)
            } else {
                src.next().cloned().unwrap_or(Dim::Unknown)
            }
        })
        .collect();
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.unsqueeze %x, %axes`: inserts extent-1 dims at `axes` (positions in
/// the result).
pub const UNSQUEEZE: OpDef = OpDef {
    name: "nn.unsqueeze",
    summary: "Inserts dims of extent 1",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_unsqueeze,
};

fn infer_flatten(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    // Flatten's axis lies in [-r, r] and a negative one counts from r
    // (unlike insert positions, where -1 means r).
    let r = x.rank() as i64;
    let a = ctx.int("axis")?;
    if a < -r || a > r {
        bail!("axis {a} is out of range for rank {r}");
    }
    let axis = if a < 0 { a + r } else { a } as usize;
    let dims = vec![product_dim(&x.dims[..axis])?, product_dim(&x.dims[axis..])?];
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.flatten %x`: `[prod(dims[..axis]), prod(dims[axis..])]`.
pub const FLATTEN: OpDef = OpDef {
    name: "nn.flatten",
    summary: "Flattens into a matrix split at axis",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[attr("axis", AttrKind::Int, AttrDefault::Int(1))],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_flatten,
};

// ---- expand, tile, pad ----

fn infer_expand(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let Some(shape) = int_list_operand(ctx, 1, "shape", false)? else {
        let n = need_len(ctx, 1, "shape")?;
        let rank = n.max(x.rank());
        // Dims of x other than 1 survive broadcasting; the rest are unknown.
        let mut dims = vec![Dim::Unknown; rank];
        for (i, d) in x.dims.iter().enumerate() {
            if !matches!(d, Dim::Static(1) | Dim::Unknown) {
                dims[rank - x.rank() + i] = d.clone();
            }
        }
        return Ok(vec![TensorType::new(x.dtype, dims)]);
    };
    let target: Vec<Dim> = shape
        .iter()
        .map(|&v| dim_of(v, "expand shape entries"))
        .collect::<Result<_, _>>()?;
    let dims = broadcast_shapes([x.dims.as_slice(), target.as_slice()])?;
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.expand %x, %shape`: broadcasts `x` against `shape` (NumPy rules; the
/// result may be larger than `shape`).
pub const EXPAND: OpDef = OpDef {
    name: "nn.expand",
    summary: "Broadcasts to a shape given as an operand",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_expand,
};

fn infer_tile(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let repeats = int_list_operand(ctx, 1, "repeats", false)?;
    if let Some(n) = ctx.input(1)?.numel() {
        if n != x.rank() as u64 {
            bail!("repeats has {n} entries for rank {}", x.rank());
        }
    }
    let dims = match repeats {
        None => x.dims.iter().map(|_| Dim::Unknown).collect(),
        Some(r) => x
            .dims
            .iter()
            .zip(&r)
            .map(|(d, &n)| mul_dim(d, &dim_of(n, "repeats")?))
            .collect::<Result<_, _>>()?,
    };
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.tile %x, %repeats`: repeats the tensor `repeats[i]` times along dim i.
pub const TILE: OpDef = OpDef {
    name: "nn.tile",
    summary: "Repeats the tensor along each dim",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_tile,
};

crate::attr_enum! {
    /// `nn.pad`'s `mode`: what the padding holds.
    pub enum PadMode {
        /// `constant_value` (0 when absent).
        Constant = "constant",
        /// The input mirrored at its edges, edge not repeated.
        Reflect = "reflect",
        /// The edge element repeated.
        Edge = "edge",
        /// The input repeated periodically.
        Wrap = "wrap",
    }
}

fn infer_pad(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    ctx.enum_attr::<PadMode>("mode")?;
    if let Some(v) = ctx.opt_input(2) {
        if v.dtype != x.dtype {
            bail!(
                "constant_value has dtype {} but the input has {}",
                v.dtype,
                x.dtype
            );
        }
        if v.numel().is_some_and(|n| n != 1) {
            bail!("constant_value must be a scalar, got {v}");
        }
    }
    let pads = int_list_operand(ctx, 1, "pads", false)?;
    let axes: Option<Vec<usize>> = match ctx.opt_input(3) {
        None => Some((0..x.rank()).collect()),
        Some(_) => match int_list_operand(ctx, 3, "axes", false)? {
            Some(a) => Some(norm_axes(&a, x.rank())?),
            None => None,
        },
    };
    let (Some(pads), Some(axes)) = (pads, axes) else {
        return Ok(vec![TensorType::new(x.dtype, vec![Dim::Unknown; x.rank()])]);
    };
    if pads.len() != 2 * axes.len() {
        bail!(
            "pads has {} entries for {} axes; expected {}",
            pads.len(),
            axes.len(),
            2 * axes.len()
        );
    }
    let mut dims = x.dims.clone();
    for (i, &a) in axes.iter().enumerate() {
        let (b, e) = (pads[i], pads[i + axes.len()]);
        dims[a] = match &x.dims[a] {
            _ if b == 0 && e == 0 => x.dims[a].clone(),
            Dim::Static(n) => {
                let o = i128::from(*n) + i128::from(b) + i128::from(e);
                if o < 0 || o > i128::from(u64::MAX) {
                    bail!("padding ({b}, {e}) gives extent {o} on axis {a}");
                }
                Dim::Static(o as u64)
            }
            _ => Dim::Unknown,
        };
    }
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.pad %x, %pads, %constant_value?, %axes?`: pads (negative values
/// crop) by begins-then-ends per axis.
pub const PAD: OpDef = OpDef {
    name: "nn.pad",
    summary: "Pads with a constant, by reflection, edge replication or wrapping",
    inputs: Arity::range(2, 4),
    outputs: Arity::exactly(1),
    attrs: &[attr(
        "mode",
        AttrKind::Enum(PadMode::NAMES),
        AttrDefault::Str("constant"),
    )],
    traits: Traits::NONE,
    static_operands: &[1, 3],
    infer: infer_pad,
};

// ---- shape, size, range, constant_of_shape ----

fn infer_shape(ctx: &InferCtx<'_>) -> R {
    let r = ctx.input(0)?.rank() as i64;
    let clamp = |v: i64| {
        if v < 0 {
            (v.saturating_add(r)).max(0)
        } else {
            v.min(r)
        }
    };
    let start = clamp(ctx.int("start")?);
    let end = clamp(ctx.opt_int("end")?.unwrap_or(r));
    Ok(vec![TensorType::fixed(
        DType::I64,
        &[(end - start).max(0) as u64],
    )])
}

/// `nn.shape %x`: the extents of dims `start..end` as a 1-D i64 tensor.
pub const SHAPE: OpDef = OpDef {
    name: "nn.shape",
    summary: "The input's shape (optionally a range of its dims) as a 1-D i64 tensor",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("end", AttrKind::Int, AttrDefault::Absent),
        attr("start", AttrKind::Int, AttrDefault::Int(0)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_shape,
};

fn infer_size(ctx: &InferCtx<'_>) -> R {
    ctx.input(0)?;
    Ok(vec![TensorType::scalar(DType::I64)])
}

/// `nn.size %x`: the element count as an i64 scalar.
pub const SIZE: OpDef = OpDef {
    name: "nn.size",
    summary: "The input's element count as an i64 scalar",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_size,
};

fn infer_range(ctx: &InferCtx<'_>) -> R {
    let dt = same_dtype(ctx)?;
    require_numeric(dt, "range operands")?;
    for i in 0..3 {
        let t = ctx.input(i)?;
        if t.numel() != Some(1) || t.rank() > 1 {
            bail!("operand #{i} of nn.range must be a scalar, got {t}");
        }
    }
    let len = if dt.is_float() {
        match (
            ctx.const_floats(0),
            ctx.const_floats(1),
            ctx.const_floats(2),
        ) {
            (Some(s), Some(l), Some(d)) => {
                let (s, l, d) = (s[0], l[0], d[0]);
                if d == 0.0 || !(s.is_finite() && l.is_finite() && d.is_finite()) {
                    bail!("nn.range needs finite bounds and a non-zero delta");
                }
                let n = ((l - s) / d).ceil().max(0.0);
                if n > 1e15 {
                    bail!("nn.range would produce {n} elements");
                }
                Dim::Static(n as u64)
            }
            _ => Dim::Unknown,
        }
    } else {
        match (ctx.const_ints(0), ctx.const_ints(1), ctx.const_ints(2)) {
            (Some(s), Some(l), Some(d)) => {
                let (s, l, d) = (i128::from(s[0]), i128::from(l[0]), i128::from(d[0]));
                if d == 0 {
                    bail!("nn.range needs a non-zero delta");
                }
                // ceil((l - s) / d) in integers.
                let (num, den) = if d < 0 { (s - l, -d) } else { (l - s, d) };
                Dim::Static(if num <= 0 {
                    0
                } else {
                    ((num + den - 1) / den) as u64
                })
            }
            _ => Dim::Unknown,
        }
    };
    Ok(vec![TensorType::new(dt, vec![len])])
}

/// `nn.range %start, %limit, %delta`: `start, start + delta, ...` up to
/// (excluding) `limit`; the length is static only for constant operands.
pub const RANGE: OpDef = OpDef {
    name: "nn.range",
    summary: "Arithmetic sequence from start towards limit by delta",
    inputs: Arity::exactly(3),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::NONE,
    static_operands: &[0, 1, 2],
    infer: infer_range,
};

fn infer_constant_of_shape(ctx: &InferCtx<'_>) -> R {
    let s = ctx.input(0)?;
    if s.dtype != DType::I64 {
        bail!("shape must be an i64 tensor, got {s}");
    }
    let dt = ctx.dtype("value_dtype")?.unwrap_or(DType::F32);
    let v = ctx.float("value")?;
    if dt == DType::NF4 {
        bail!("nn.constant_of_shape cannot produce nf4");
    }
    if (dt.is_int() || dt == DType::Bool) && (v.fract() != 0.0 || !v.is_finite()) {
        bail!("value {v} is not an integer but value_dtype is {dt}");
    }
    let dims = match int_list_operand(ctx, 0, "shape", false)? {
        Some(v) => v
            .iter()
            .map(|&n| dim_of(n, "shape entries"))
            .collect::<Result<_, _>>()?,
        None => vec![Dim::Unknown; need_len(ctx, 0, "shape")?],
    };
    Ok(vec![TensorType::new(dt, dims)])
}

/// `nn.constant_of_shape %shape`: a tensor of `value_dtype` (default f32)
/// filled with `value`. The fill value is stored as an f64 attribute, so
/// integer fills are exact only up to 2^53 in magnitude.
pub const CONSTANT_OF_SHAPE: OpDef = OpDef {
    name: "nn.constant_of_shape",
    summary: "A tensor of the given shape filled with one value",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("value", AttrKind::Float, AttrDefault::Float(0.0)),
        // Absent means f32, ONNX's default for a missing `value`.
        attr("value_dtype", AttrKind::DType, AttrDefault::Absent),
    ],
    traits: Traits::NONE,
    static_operands: &[0],
    infer: infer_constant_of_shape,
};

// ---- trilu, resize, dropout ----

fn infer_trilu(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    if x.rank() < 2 {
        bail!("nn.trilu expects rank >= 2, got {x}");
    }
    if ctx.opt_input(1).is_some() {
        let k = ctx.input(1)?;
        if k.dtype != DType::I64 || k.numel().is_some_and(|n| n != 1) {
            bail!("k must be an i64 scalar, got {k}");
        }
    }
    Ok(vec![x.clone()])
}

/// `nn.trilu %x, %k?`: keeps the upper (or lower) triangle of the last two
/// dims, offset by diagonal `k`.
pub const TRILU: OpDef = OpDef {
    name: "nn.trilu",
    summary: "Upper or lower triangular part of the trailing matrices",
    inputs: Arity::range(1, 2),
    outputs: Arity::exactly(1),
    attrs: &[attr("upper", AttrKind::Bool, AttrDefault::Bool(true))],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_trilu,
};

fn infer_resize(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let axes = match ctx.ints("axes")? {
        Some(a) => norm_axes(&a, x.rank())?,
        None => (0..x.rank()).collect(),
    };
    // Exporters pass an empty tensor for an unused scales operand.
    let present = |i: usize| ctx.opt_input(i).filter(|t| t.numel() != Some(0));
    let (scales, sizes) = (present(2), present(3));
    if let Some(s) = scales {
        require_float(s.dtype, "scales")?;
    }
    if let Some(s) = sizes {
        if s.dtype != DType::I64 {
            bail!("sizes must be an i64 tensor, got {s}");
        }
    }
    // A static input with constant parameters: the shared rule
    // (resample::resize_extents) the interpreter and the lowering use too.
    let ctm: CoordinateTransform = ctx.enum_attr("coordinate_transformation_mode")?;
    ctx.enum_attr::<ResizeMode>("mode")?;
    ctx.enum_attr::<NearestMode>("nearest_mode")?;
    let policy: AspectPolicy = ctx.enum_attr("keep_aspect_ratio_policy")?;
    let crop = ctm == CoordinateTransform::TfCropAndResize;
    let static_shape: Option<Vec<u64>> = x.dims.iter().map(Dim::as_static).collect();
    let scales_v = scales.and_then(|_| ctx.const_floats(2));
    let sizes_v = sizes.and_then(|_| ctx.const_ints(3));
    let roi_v = if crop {
        present(1).and_then(|_| ctx.const_floats(1))
    } else {
        None
    };
    let known = scales.is_some() == scales_v.is_some()
        && sizes.is_some() == sizes_v.is_some()
        && (!crop || present(1).is_none() || roi_v.is_some());
    if let (Some(shape), true) = (&static_shape, known) {
        let ex = resize_extents(
            shape,
            &axes,
            crop,
            roi_v.as_deref(),
            scales_v.as_deref(),
            sizes_v.as_deref(),
            policy,
        );
        return match ex {
            Ok(ex) => Ok(vec![TensorType::fixed(x.dtype, &ex.out)]),
            Err(e) => bail!("{e}"),
        };
    }
    let mut dims = x.dims.clone();
    match (scales, sizes) {
        (Some(_), Some(_)) => bail!("give either scales or sizes, not both"),
        (None, None) => bail!("nn.resize needs scales or sizes"),
        (Some(s), None) => {
            require_float(s.dtype, "scales")?;
            let Some(sc) = ctx.const_floats(2) else {
                for &a in &axes {
                    dims[a] = Dim::Unknown;
                }
                return Ok(vec![TensorType::new(x.dtype, dims)]);
            };
            if sc.len() != axes.len() {
                bail!("scales has {} entries for {} axes", sc.len(), axes.len());
            }
            let roi = if crop {
                ctx.opt_input(1).and_then(|_| ctx.const_floats(1))
            } else {
                None
            };
            if let Some(r) = &roi {
                if r.len() != 2 * axes.len() {
                    bail!("roi has {} entries for {} axes", r.len(), axes.len());
                }
            }
            for (i, &a) in axes.iter().enumerate() {
                if !(sc[i] > 0.0 && sc[i].is_finite()) {
                    bail!("scales must be positive, got {}", sc[i]);
                }
                dims[a] = match (&x.dims[a], crop, &roi) {
                    (Dim::Static(n), false, _) => scaled(*n as f64 * sc[i])?,
                    (Dim::Static(n), true, Some(r)) => {
                        scaled(*n as f64 * (r[i + axes.len()] - r[i]) * sc[i])?
                    }
                    (d, false, _) if sc[i] == 1.0 => d.clone(),
                    _ => Dim::Unknown,
                };
            }
        }
        (None, Some(s)) => {
            if s.dtype != DType::I64 {
                bail!("sizes must be an i64 tensor, got {s}");
            }
            let Some(sz) = ctx.const_ints(3) else {
                for &a in &axes {
                    dims[a] = Dim::Unknown;
                }
                return Ok(vec![TensorType::new(x.dtype, dims)]);
            };
            if sz.len() != axes.len() {
                bail!("sizes has {} entries for {} axes", sz.len(), axes.len());
            }
            if policy == AspectPolicy::Stretch {
                for (i, &a) in axes.iter().enumerate() {
                    dims[a] = dim_of(sz[i], "sizes entries")?;
                }
            } else {
                // One scale for all axes: the smallest (not_larger) or
                // largest (not_smaller) of sizes[i] / input[i].
                let ins: Option<Vec<u64>> = axes.iter().map(|&a| x.dims[a].as_static()).collect();
                let Some(ins) = ins else {
                    for &a in &axes {
                        dims[a] = Dim::Unknown;
                    }
                    return Ok(vec![TensorType::new(x.dtype, dims)]);
                };
                let ratios = sz.iter().zip(&ins).map(|(&s, &n)| s as f64 / n as f64);
                let scale = if policy == AspectPolicy::NotLarger {
                    ratios.fold(f64::INFINITY, f64::min)
                } else {
                    ratios.fold(f64::NEG_INFINITY, f64::max)
                };
                for (i, &a) in axes.iter().enumerate() {
                    dims[a] = scaled((scale * ins[i] as f64).round())?;
                }
            }
        }
    }
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `floor(v)` as a static extent, rejecting values that are not extents.
fn scaled(v: f64) -> Result<Dim, InferError> {
    if !(0.0..1e18).contains(&v) {
        bail!("resized extent {v} is out of range");
    }
    Ok(Dim::Static(v.floor() as u64))
}

/// `nn.resize %x, %roi?, %scales?, %sizes?`: nearest, linear or cubic
/// resampling; the result extents are `floor(input * scale)` or `sizes`.
pub const RESIZE: OpDef = OpDef {
    name: "nn.resize",
    summary: "Resamples with nearest, (bi/tri)linear or cubic interpolation",
    inputs: Arity::range(1, 4),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("antialias", AttrKind::Bool, AttrDefault::Bool(false)),
        attr("axes", AttrKind::Ints, AttrDefault::Absent),
        attr(
            "coordinate_transformation_mode",
            AttrKind::Enum(CoordinateTransform::NAMES),
            AttrDefault::Str("half_pixel"),
        ),
        attr("cubic_coeff_a", AttrKind::Float, AttrDefault::Float(-0.75)),
        attr("exclude_outside", AttrKind::Bool, AttrDefault::Bool(false)),
        attr(
            "extrapolation_value",
            AttrKind::Float,
            AttrDefault::Float(0.0),
        ),
        attr(
            "keep_aspect_ratio_policy",
            AttrKind::Enum(AspectPolicy::NAMES),
            AttrDefault::Str("stretch"),
        ),
        attr(
            "mode",
            AttrKind::Enum(ResizeMode::NAMES),
            AttrDefault::Str("nearest"),
        ),
        attr(
            "nearest_mode",
            AttrKind::Enum(NearestMode::NAMES),
            AttrDefault::Str("round_prefer_floor"),
        ),
    ],
    traits: Traits::NONE,
    static_operands: &[1, 2, 3],
    infer: infer_resize,
};

fn infer_grid_sample(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let g = ctx.input(1)?;
    let mode: GridMode = ctx.enum_attr("mode")?;
    ctx.enum_attr::<GridPadding>("padding_mode")?;
    ctx.bool("align_corners")?;
    let r = x.rank();
    if r < 3 {
        bail!("nn.grid_sample expects [N, C, spatial..], got {x}");
    }
    if g.rank() != r {
        bail!("the grid {g} must have the rank of the input {x}");
    }
    require_float(g.dtype, "grid")?;
    if x.dtype == DType::NF4 {
        bail!("nn.grid_sample of nf4 values is not supported");
    }
    if mode != GridMode::Nearest && !x.dtype.is_float() {
        bail!(
            "nn.grid_sample interpolation of {} values is not supported (only mode nearest takes non-float inputs)",
            x.dtype
        );
    }
    let batch = unify_dim(&x.dims[0], &g.dims[0], "batch")?;
    check_dims_agree(
        &g.dims[r - 1],
        &Dim::Static(r as u64 - 2),
        "the grid's last dimension must equal the spatial rank",
    )?;
    let mut dims = vec![batch, x.dims[1].clone()];
    dims.extend(g.dims[1..r - 1].iter().cloned());
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.grid_sample %x, %grid`: samples `x` ([N, C, D.., H, W]) at the
/// normalized coordinates of `grid` ([N, D_out.., H_out, W_out, s], the
/// last axis holding (w, h, d..)); geometry in [`super::resample::GridAxis`].
pub const GRID_SAMPLE: OpDef = OpDef {
    name: "nn.grid_sample",
    summary: "Samples the input at normalized grid coordinates (nearest, linear or cubic)",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("align_corners", AttrKind::Bool, AttrDefault::Bool(false)),
        attr(
            "mode",
            AttrKind::Enum(GridMode::NAMES),
            AttrDefault::Str("linear"),
        ),
        attr(
            "padding_mode",
            AttrKind::Enum(GridPadding::NAMES),
            AttrDefault::Str("zeros"),
        ),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_grid_sample,
};

fn infer_dropout(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    require_float(x.dtype, "input")?;
    if let Some(r) = ctx.opt_input(1) {
        require_float(r.dtype, "ratio")?;
        if r.numel().is_some_and(|n| n != 1) {
            bail!("ratio must be a scalar, got {r}");
        }
    }
    if let Some(t) = ctx.opt_input(2) {
        if t.dtype != DType::Bool || t.numel().is_some_and(|n| n != 1) {
            bail!("training_mode must be a bool scalar, got {t}");
        }
    }
    Ok(vec![
        x.clone(),
        TensorType::new(DType::Bool, x.dims.clone()),
    ])
}

/// `nn.dropout %data, %ratio?, %training_mode? -> %output, %mask?`: the
/// identity (and an all-true mask) unless `training_mode` is true.
pub const DROPOUT: OpDef = OpDef {
    name: "nn.dropout",
    summary: "Randomly zeroes elements in training mode; the identity otherwise",
    inputs: Arity::range(1, 3),
    outputs: Arity::range(1, 2),
    attrs: &[attr("seed", AttrKind::Int, AttrDefault::Absent)],
    traits: Traits::NONE,
    static_operands: &[2],
    infer: infer_dropout,
};

// ---- depth_to_space, space_to_depth ----

fn block<'a>(ctx: &InferCtx<'a>) -> Result<(&'a TensorType, u64, u64), InferError> {
    let x = ctx.input(0)?;
    if x.rank() != 4 {
        bail!("{} expects [N, C, H, W], got {x}", ctx.def.name);
    }
    let b = ctx.int("blocksize")?;
    if b <= 0 || b > u32::MAX as i64 {
        bail!("blocksize must be positive, got {b}");
    }
    let b = b as u64;
    Ok((x, b, b * b))
}

fn infer_depth_to_space(ctx: &InferCtx<'_>) -> R {
    ctx.enum_attr::<DepthToSpaceMode>("mode")?;
    let (x, b, bb) = block(ctx)?;
    let c = match &x.dims[1] {
        Dim::Static(c) if c % bb != 0 => {
            bail!("channels {c} are not divisible by blocksize^2 = {bb}")
        }
        Dim::Static(c) => Dim::Static(c / bb),
        d if bb == 1 => d.clone(),
        _ => Dim::Unknown,
    };
    let h = mul_dim(&x.dims[2], &Dim::Static(b))?;
    let w = mul_dim(&x.dims[3], &Dim::Static(b))?;
    Ok(vec![TensorType::new(
        x.dtype,
        vec![x.dims[0].clone(), c, h, w],
    )])
}

crate::attr_enum! {
    /// `nn.depth_to_space`'s `mode`: the order of the channel blocks.
    pub enum DepthToSpaceMode {
        /// Depth, column, row: `C` splits as `[b, b, C / b²]`.
        Dcr = "DCR",
        /// Column, row, depth: `C` splits as `[C / b², b, b]`.
        Crd = "CRD",
    }
}

/// `nn.depth_to_space %x`: moves channel blocks into spatial blocks
/// (`DCR`: depth-column-row order, or `CRD`).
pub const DEPTH_TO_SPACE: OpDef = OpDef {
    name: "nn.depth_to_space",
    summary: "[N, C, H, W] -> [N, C / b^2, H * b, W * b]",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("blocksize", AttrKind::Int, AttrDefault::Required),
        attr(
            "mode",
            AttrKind::Enum(DepthToSpaceMode::NAMES),
            AttrDefault::Str("DCR"),
        ),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_depth_to_space,
};

fn infer_space_to_depth(ctx: &InferCtx<'_>) -> R {
    let (x, b, bb) = block(ctx)?;
    let mut dims = vec![x.dims[0].clone(), mul_dim(&x.dims[1], &Dim::Static(bb))?];
    for i in 2..4 {
        dims.push(match &x.dims[i] {
            Dim::Static(n) if n % b != 0 => {
                bail!("spatial extent {n} is not divisible by blocksize {b}")
            }
            Dim::Static(n) => Dim::Static(n / b),
            d if b == 1 => d.clone(),
            _ => Dim::Unknown,
        });
    }
    Ok(vec![TensorType::new(x.dtype, dims)])
}

/// `nn.space_to_depth %x`: the inverse of `nn.depth_to_space` in DCR order.
pub const SPACE_TO_DEPTH: OpDef = OpDef {
    name: "nn.space_to_depth",
    summary: "[N, C, H, W] -> [N, C * b^2, H / b, W / b]",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[attr("blocksize", AttrKind::Int, AttrDefault::Required)],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_space_to_depth,
};

// ---- one_hot, non_zero, eye_like ----

fn infer_one_hot(ctx: &InferCtx<'_>) -> R {
    let idx = ctx.input(0)?;
    let depth = ctx.input(1)?;
    let values = ctx.input(2)?;
    require_numeric(idx.dtype, "indices")?;
    require_numeric(depth.dtype, "depth")?;
    if depth.numel().is_some_and(|n| n != 1) || depth.rank() > 1 {
        bail!("depth must be a scalar, got {depth}");
    }
    if values.rank() != 1 || values.dims[0].as_static().is_some_and(|n| n != 2) {
        bail!("values must be a 1-D tensor of [off, on], got {values}");
    }
    let axis = norm_axis_incl(ctx.int("axis")?, idx.rank())?;
    let d = match (ctx.const_ints(1), ctx.const_floats(1)) {
        (Some(v), _) => dim_of(*v.first().unwrap_or(&-1), "depth")?,
        // ONNX casts a float depth to an integer by truncation.
        (None, Some(v)) => match v.first() {
            Some(&f) if (0.0..1e18).contains(&f) => Dim::Static(f as u64),
            _ => bail!("depth must be non-negative"),
        },
        (None, None) => Dim::Unknown,
    };
    let mut dims = idx.dims.clone();
    dims.insert(axis, d);
    Ok(vec![TensorType::new(values.dtype, dims)])
}

/// `nn.one_hot %indices, %depth, %values`: a new dim of extent `depth` at
/// `axis`, holding `values[1]` at the index and `values[0]` elsewhere.
pub const ONE_HOT: OpDef = OpDef {
    name: "nn.one_hot",
    summary: "One-hot encoding along a new axis",
    inputs: Arity::exactly(3),
    outputs: Arity::exactly(1),
    attrs: &[attr("axis", AttrKind::Int, AttrDefault::Int(-1))],
    traits: Traits::NONE,
    static_operands: &[1],
    infer: infer_one_hot,
};

fn infer_non_zero(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    if x.dtype == DType::NF4 {
        bail!("nn.non_zero does not take nf4");
    }
    Ok(vec![TensorType::new(
        DType::I64,
        vec![Dim::Static(x.rank() as u64), Dim::Unknown],
    )])
}

/// `nn.non_zero %x`: the indices of non-zero elements, `[rank, count]`,
/// with a data-dependent count.
pub const NON_ZERO: OpDef = OpDef {
    name: "nn.non_zero",
    summary: "Indices of the non-zero elements as an i64 [rank, count] tensor",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_non_zero,
};

fn infer_eye_like(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    if x.rank() != 2 {
        bail!("nn.eye_like expects a matrix, got {x}");
    }
    let dt = ctx.dtype("dtype")?.unwrap_or(x.dtype);
    if dt == DType::NF4 {
        bail!("nn.eye_like cannot produce nf4");
    }
    Ok(vec![TensorType::new(dt, x.dims.clone())])
}

/// `nn.eye_like %x`: ones on diagonal `k` of a matrix shaped like `x`,
/// of `dtype` (default: x's dtype).
pub const EYE_LIKE: OpDef = OpDef {
    name: "nn.eye_like",
    summary: "A matrix shaped like the input with ones on a diagonal",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("dtype", AttrKind::DType, AttrDefault::Absent),
        attr("k", AttrKind::Int, AttrDefault::Int(0)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_eye_like,
};
