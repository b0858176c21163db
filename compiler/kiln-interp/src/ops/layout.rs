//! `nn.pack` / `nn.unpack` (the packings defined once in
//! `kiln_ir::ops::layout`), the `layout` attribute of convolutions and
//! pools, and `nn.fused` (its body run as a graph).

use super::shape::permute;
use crate::eval::Op;
use crate::tensor::{Data, Tensor};
use crate::InterpError;
use kiln_ir::ops::layout::{unpack_shape, DataLayout, Packing};

type R = Result<Tensor, InterpError>;

fn packing(op: &Op<'_>, logical: Vec<u64>) -> Result<Packing, InterpError> {
    Ok(Packing::read(op.a, logical)?)
}

/// `nn.pack`: every packed element is the logical element it holds, or 0.
pub fn pack(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let p = packing(op, x.shape.clone())?;
    let shape = p.packed_shape();
    op.check(&shape)?;
    if p.layout == kiln_ir::ops::layout::PackLayout::Int8GemmBNarrow {
        p.check_values(&x.to_bytes(), x.dtype)
            .map_err(InterpError::Invalid)?;
    }
    let n: u64 = shape.iter().product();
    let data = match &x.data {
        Data::Float(v) => Data::Float(
            (0..n)
                .map(|i| p.source(i).map_or(0.0, |s| v[s as usize]))
                .collect(),
        ),
        Data::Int(v) => Data::Int(
            (0..n)
                .map(|i| p.source(i).map_or(0, |s| v[s as usize]))
                .collect(),
        ),
    };
    Ok(Tensor {
        dtype: x.dtype,
        shape,
        data,
    })
}

/// `nn.unpack`: the inverse of `nn.pack` (padding is dropped).
pub fn unpack(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let p = packing(op, unpack_shape(op.a)?)?;
    if p.packed_shape() != x.shape {
        return Err(InterpError::Invalid(format!(
            "the packed operand is {:?}, not the packed shape {:?}",
            x.shape,
            p.packed_shape()
        )));
    }
    let shape = p.logical.clone();
    let n: u64 = shape.iter().product();
    let mut idx = vec![0usize; n as usize];
    for i in 0..x.numel() as u64 {
        if let Some(s) = p.source(i) {
            idx[s as usize] = i as usize;
        }
    }
    Ok(x.pick(shape, idx))
}

/// Runs an NCHW op on an operand in another layout: operand 0 is permuted to
/// NCHW, `nchw` computes, and results of the operand's rank are permuted
/// back.
pub fn in_layout(
    op: &Op<'_>,
    nchw: impl FnOnce(&Op<'_>) -> Result<Vec<Tensor>, InterpError>,
) -> Result<Vec<Tensor>, InterpError> {
    let layout = DataLayout::read(op.a)?;
    if layout == DataLayout::Nchw {
        return nchw(op);
    }
    let x = op.input(0)?;
    let r = x.rank();
    let viewed = permute(x, &layout.to_nchw_perm(r));
    let mut ins: Vec<Option<&Tensor>> = op.ins.to_vec();
    ins[0] = Some(&viewed);
    let inner = Op { ins: &ins, ..*op };
    let outs = nchw(&inner)?;
    Ok(outs
        .into_iter()
        .map(|t| {
            if t.rank() == r {
                permute(&t, &layout.from_nchw_perm(r))
            } else {
                t
            }
        })
        .collect())
}
