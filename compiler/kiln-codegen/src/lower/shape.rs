//! Data movement: reshapes (`nn.reshape`, `nn.flatten`, `nn.squeeze`,
//! `nn.unsqueeze`), `nn.expand`, `nn.transpose`, `nn.gather`, `nn.concat`,
//! `nn.slice`, `nn.dropout` (inference), `nn.shape` / `nn.size`.
//!
//! Every result type is static, so reshape-like ops take their target shape
//! from the declared result type rather than re-deriving it from the shape
//! operand.

use super::ctx::{affine_map, elem, identity_map, tensor_ty, Builder, Iter, Operand, Res, Val};
use super::{attr_err, NodeIn};
use kiln_ir::ops::infer::norm_axis;
use kiln_ir::DType;

/// Reshape-like ops: the same elements with the declared result shape.
pub(crate) fn reshape(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (_, shape) = n.out(0)?;
    b.reshape(n.input(0)?, shape)
}

/// `nn.expand`: broadcast to the declared result shape.
pub(crate) fn expand(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, shape) = n.out(0)?;
    b.map(&[x], dt, shape, |_, a| Ok(a[0].clone()))
}

/// `nn.transpose`: result dim i is input dim `perm[i]` (reversed by default).
pub(crate) fn transpose(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, shape) = n.out(0)?;
    let r = x.rank();
    let perm: Vec<usize> = match n.a.ints("perm").map_err(attr_err)? {
        Some(p) => p
            .iter()
            .map(|&i| norm_axis(i, r).map_err(attr_err))
            .collect::<Res<_>>()?,
        None => (0..r).rev().collect(),
    };
    let mut inv = vec![usize::MAX; r];
    for (i, &p) in perm.iter().enumerate() {
        if p >= r || inv[p] != usize::MAX {
            return Err(format!("perm {perm:?} is not a permutation"));
        }
        inv[p] = i;
    }
    let map: Vec<String> = inv.iter().map(|i| format!("d{i}")).collect();
    let init = b.empty(dt, shape)?;
    let y = b.generic(
        &vec![Iter::Par; r],
        &[Operand::of(x, affine_map(r, &map))],
        &[(init, identity_map(r))],
        |_, a| Ok(vec![a[0].clone()]),
    )?;
    Ok(y.into_iter().next().expect("one result"))
}

/// `nn.gather` along `axis`: negative indices wrap; out-of-range indices are
/// clamped so a bad index can never read outside the tensor.
pub(crate) fn gather(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (data, idx) = (n.input(0)?, n.input(1)?);
    let (dt, shape) = n.out(0)?;
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, data.rank()).map_err(attr_err)?;
    if !matches!(idx.dtype, DType::I64 | DType::I32) {
        return Err(format!("indices of dtype {} are not supported", idx.dtype));
    }
    let ri = idx.rank();
    let r = shape.len();
    let idx_map: Vec<String> = (axis..axis + ri).map(|i| format!("d{i}")).collect();
    let init = b.empty(dt, shape)?;
    let ie = elem(idx.dtype)?;
    let extent = data.shape[axis] as i64;
    let data_ssa = data.ssa.clone();
    let data_ty = data.ty();
    let y = b.generic(
        &vec![Iter::Par; r],
        &[Operand::of(idx, affine_map(r, &idx_map))],
        &[(init, identity_map(r))],
        |body, a| {
            let i = body.op(format!("arith.index_cast {} : {ie} to index", a[0]));
            let z = body.index(0);
            let ext = body.index(extent);
            let last = body.index((extent - 1).max(0));
            let neg = body.op(format!("arith.cmpi slt, {i}, {z} : index"));
            let wrapped = body.op(format!("arith.addi {i}, {ext} : index"));
            let w = body.op(format!("arith.select {neg}, {wrapped}, {i} : index"));
            let lo = body.op(format!("arith.maxsi {w}, {z} : index"));
            let c = body.op(format!("arith.minsi {lo}, {last} : index"));
            let mut subs = Vec::new();
            for j in 0..axis {
                subs.push(body.loop_index(j));
            }
            subs.push(c);
            for j in axis + 1..data.rank() {
                subs.push(body.loop_index(j - 1 + ri));
            }
            Ok(vec![body.op(format!(
                "tensor.extract {data_ssa}[{}] : {data_ty}",
                subs.join(", ")
            ))])
        },
    )?;
    Ok(y.into_iter().next().expect("one result"))
}

/// `nn.concat`: each operand inserted at its offset along `axis`.
pub(crate) fn concat(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (dt, shape) = n.out(0)?;
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, shape.len()).map_err(attr_err)?;
    let mut acc = b.empty(dt, shape)?;
    let mut off = 0u64;
    for v in n.ins.iter().flatten() {
        if v.shape[axis] == 0 {
            continue;
        }
        let offs: Vec<String> = (0..shape.len())
            .map(|i| {
                if i == axis {
                    off.to_string()
                } else {
                    "0".into()
                }
            })
            .collect();
        let sizes: Vec<String> = v.shape.iter().map(u64::to_string).collect();
        let ones = vec!["1"; shape.len()];
        let ssa = b.op(format!(
            "tensor.insert_slice {} into {}[{}] [{}] [{}] : {} into {}",
            v.ssa,
            acc.ssa,
            offs.join(", "),
            sizes.join(", "),
            ones.join(", "),
            v.ty(),
            acc.ty()
        ));
        acc = Val { ssa, ..acc };
        off += v.shape[axis];
    }
    Ok(acc)
}

/// `nn.slice` with constant starts/ends/axes/steps (ONNX clamping); any
/// step sign. Lowered as a gather of `start + i * step` per dim.
pub(crate) fn slice(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, shape) = n.out(0)?;
    let r = x.rank();
    let get = |i: usize, what: &str| -> Res<Option<Vec<i64>>> {
        match n.opt(i) {
            None => Ok(None),
            Some(_) => {
                n.a.const_ints(i)
                    .map(Some)
                    .ok_or_else(|| format!("slice {what} must be compile-time constants"))
            }
        }
    };
    let starts = get(1, "starts")?.ok_or("starts are required")?;
    let ends = get(2, "ends")?.ok_or("ends are required")?;
    let axes = get(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = get(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("slice operands differ in length".into());
    }
    let mut start = vec![0i64; r];
    let mut step = vec![1i64; r];
    for k in 0..starts.len() {
        let a = norm_axis(axes[k], r).map_err(attr_err)?;
        let d = x.shape[a] as i64;
        let st = steps[k];
        if st == 0 {
            return Err("slice step 0".into());
        }
        let s = if starts[k] < 0 {
            starts[k].saturating_add(d)
        } else {
            starts[k]
        };
        start[a] = if st > 0 {
            s.clamp(0, d)
        } else {
            s.clamp(0, d - 1)
        };
        step[a] = st;
    }
    if shape.iter().any(|&e| e == 0) {
        return b.empty(dt, shape);
    }
    let init = b.empty(dt, shape)?;
    let (xs, xt) = (x.ssa.clone(), x.ty());
    let y = b.generic(
        &vec![Iter::Par; r],
        &[],
        &[(init, identity_map(r))],
        |body, _| {
            let mut subs = Vec::new();
            for j in 0..r {
                let i = body.loop_index(j);
                if start[j] == 0 && step[j] == 1 {
                    subs.push(i);
                    continue;
                }
                let st = body.index(step[j]);
                let s0 = body.index(start[j]);
                let m = body.op(format!("arith.muli {i}, {st} : index"));
                subs.push(body.op(format!("arith.addi {s0}, {m} : index")));
            }
            Ok(vec![body.op(format!(
                "tensor.extract {xs}[{}] : {xt}",
                subs.join(", ")
            ))])
        },
    )?;
    Ok(y.into_iter().next().expect("one result"))
}

/// `nn.dropout` in inference: the identity, and an all-true mask.
pub(crate) fn dropout(b: &mut Builder, n: &NodeIn<'_>) -> Res<Vec<Val>> {
    if n.opt(2).is_some() {
        match n.a.const_ints(2) {
            Some(v) if v.iter().all(|&t| t == 0) => {}
            _ => return Err("nn.dropout in training mode is not supported".into()),
        }
    }
    let mut r = vec![n.input(0)?.clone()];
    if n.outs.len() > 1 {
        let (dt, shape) = n.out(1)?;
        r.push(b.filled(1.0, dt, shape)?);
    }
    Ok(r)
}

/// `nn.shape` / `nn.size`: the declared result is a constant under static
/// shapes, computed from the operand's shape.
pub(crate) fn shape_of(b: &mut Builder, n: &NodeIn<'_>, size: bool) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, shape) = n.out(0)?;
    let vals: Vec<u64> = if size {
        vec![x.numel()]
    } else {
        let r = x.rank() as i64;
        let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let start = clampi(n.a.int("start").map_err(attr_err)?);
        let end = match n.a.opt_int("end").map_err(attr_err)? {
            Some(e) => clampi(e),
            None => x.rank(),
        };
        x.shape[start..end.max(start)].to_vec()
    };
    if vals.len() as u64 != shape.iter().product::<u64>() {
        return Err("the declared result does not match the operand's shape".into());
    }
    let lit: Vec<String> = vals.iter().map(u64::to_string).collect();
    let ty = tensor_ty(dt, shape);
    let body = if shape.is_empty() {
        lit.join("")
    } else {
        format!("[{}]", lit.join(", "))
    };
    let ssa = b.op(format!("arith.constant dense<{body}> : {ty}"));
    Ok(Val {
        ssa,
        dtype: dt,
        shape: shape.to_vec(),
    })
}
