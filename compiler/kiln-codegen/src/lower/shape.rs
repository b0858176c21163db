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
use kiln_ir::ops::DepthToSpaceMode;
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
    let r = x.rank();
    let perm: Vec<usize> = match n.a.ints("perm").map_err(attr_err)? {
        Some(p) => p
            .iter()
            .map(|&i| norm_axis(i, r).map_err(attr_err))
            .collect::<Res<_>>()?,
        None => (0..r).rev().collect(),
    };
    let mut seen = vec![false; r];
    for &p in &perm {
        if p >= r || std::mem::replace(&mut seen[p], true) {
            return Err(format!("perm {perm:?} is not a permutation"));
        }
    }
    if perm.len() != r {
        return Err(format!("perm {perm:?} is not a permutation"));
    }
    permute(b, x, &perm)
}

/// `x` with its dims permuted: result dim `i` is `x`'s dim `perm[i]`.
pub(crate) fn permute(b: &mut Builder, x: &Val, perm: &[usize]) -> Res<Val> {
    let r = x.rank();
    let mut inv = vec![0usize; r];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    let shape: Vec<u64> = perm.iter().map(|&p| x.shape[p]).collect();
    let map: Vec<String> = inv.iter().map(|i| format!("d{i}")).collect();
    let init = b.empty(x.dtype, &shape)?;
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
    if !matches!(
        idx.dtype,
        DType::I64 | DType::I32 | DType::I16 | DType::U16 | DType::I8 | DType::U8
    ) {
        return Err(format!("indices of dtype {} are not supported", idx.dtype));
    }
    let ri = idx.rank();
    let r = shape.len();
    let idx_map: Vec<String> = (axis..axis + ri).map(|i| format!("d{i}")).collect();
    let init = b.empty(dt, shape)?;
    let idt = idx.dtype;
    let extent = data.shape[axis] as i64;
    // Unsigned codes that cannot reach past the table need no wrap or clamp
    // (a 256-entry lookup of u8 codes is one load).
    let in_range = !idt.is_signed() && idt.bits() < 32 && extent >= 1i64 << idt.bits();
    let data_ssa = data.ssa.clone();
    let data_ty = data.ty();
    let y = b.generic(
        &vec![Iter::Par; r],
        &[Operand::of(idx, affine_map(r, &idx_map))],
        &[(init, identity_map(r))],
        |body, a| {
            let i = body.index_of(&a[0], idt)?;
            let c = if in_range {
                i
            } else {
                body.wrap_clamp(&i, extent as u64)
            };
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

/// `nn.concat`: one `linalg.generic` that reads, at each position, the
/// operand covering it along `axis` (clamped reads plus a select chain;
/// `tensor.insert_slice` would bufferize to strided copies that need the
/// `memrefCopy` runtime helper).
pub(crate) fn concat(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (dt, shape) = n.out(0)?;
    let r = shape.len();
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, r).map_err(attr_err)?;
    let parts: Vec<&Val> = n
        .ins
        .iter()
        .flatten()
        .filter(|v| v.shape[axis] > 0)
        .collect();
    if parts.is_empty() {
        return b.empty(dt, shape);
    }
    if parts.len() == 1 {
        return Ok(parts[0].clone());
    }
    let e = elem(dt)?;
    let init = b.empty(dt, shape)?;
    let y = b.generic(
        &vec![Iter::Par; r],
        &[],
        &[(init, identity_map(r))],
        |body, _| {
            let idx: Vec<String> = (0..r).map(|j| body.loop_index(j)).collect();
            let mut off = 0u64;
            let mut acc: Option<String> = None;
            for v in &parts {
                let o = body.index(off as i64);
                let last = body.index(v.shape[axis] as i64 - 1);
                let z = body.index(0);
                let s = body.op(format!("arith.subi {}, {o} : index", idx[axis]));
                let c0 = body.op(format!("arith.maxsi {s}, {z} : index"));
                let c = body.op(format!("arith.minsi {c0}, {last} : index"));
                let mut subs = idx.clone();
                subs[axis] = c;
                let x = body.op(format!(
                    "tensor.extract {}[{}] : {}",
                    v.ssa,
                    subs.join(", "),
                    v.ty()
                ));
                acc = Some(match acc {
                    None => x,
                    Some(prev) => {
                        let before = body.op(format!("arith.cmpi ult, {}, {o} : index", idx[axis]));
                        body.op(format!("arith.select {before}, {prev}, {x} : {e}"))
                    }
                });
                off += v.shape[axis];
            }
            Ok(vec![acc.expect("at least two parts")])
        },
    )?;
    Ok(y.into_iter().next().expect("one result"))
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
    if shape.contains(&0) {
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

/// `d{i}` for affine map results.
fn d(i: usize) -> String {
    format!("d{i}")
}

/// An integer attribute that must be a positive extent.
fn positive(n: &NodeIn<'_>, name: &str) -> Res<u64> {
    let v = n.a.int(name).map_err(attr_err)?;
    u64::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("'{name}' must be positive, got {v}"))
}

/// `nn.constant_of_shape`: the declared (static) result filled with
/// `value`; the shape operand only fixed that type.
pub(crate) fn constant_of_shape(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (dt, shape) = n.out(0)?;
    let v = n.a.float("value").map_err(attr_err)?;
    b.filled(v, dt, shape)
}

/// `nn.depth_to_space` (DCR or CRD) on `[N, C, H, W]`, one gather whose
/// affine map splits each output row/column into (block, position).
pub(crate) fn depth_to_space(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (_, shape) = n.out(0)?;
    let bs = positive(n, "blocksize")?;
    if x.rank() != 4 || shape.len() != 4 {
        return Err("nn.depth_to_space needs a 4-D input".into());
    }
    let c2 = shape[1];
    let (i, j) = (format!("(d2 mod {bs})"), format!("(d3 mod {bs})"));
    let ch = match n.a.enum_attr("mode").map_err(attr_err)? {
        DepthToSpaceMode::Dcr => format!("({i} * {bs} + {j}) * {c2} + d1"),
        DepthToSpaceMode::Crd => format!("d1 * {} + {i} * {bs} + {j}", bs * bs),
    };
    let map = [
        d(0),
        ch,
        format!("d2 floordiv {bs}"),
        format!("d3 floordiv {bs}"),
    ];
    b.read_through(x, &map, shape)
}

/// `nn.space_to_depth` on `[N, C, H, W]`: output channel
/// `(i * bs + j) * C + c` holds block position `(i, j)` of channel `c`.
pub(crate) fn space_to_depth(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (_, shape) = n.out(0)?;
    let bs = positive(n, "blocksize")?;
    if x.rank() != 4 || shape.len() != 4 {
        return Err("nn.space_to_depth needs a 4-D input".into());
    }
    let c = x.shape[1];
    let map = [
        d(0),
        format!("d1 mod {c}"),
        format!("d2 * {bs} + (d1 floordiv {c}) floordiv {bs}"),
        format!("d3 * {bs} + (d1 floordiv {c}) mod {bs}"),
    ];
    b.read_through(x, &map, shape)
}

/// `nn.tile`: `out[i] = x[i mod extent]` (repeats are implied by the
/// static result type).
pub(crate) fn tile(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (_, shape) = n.out(0)?;
    let map: Vec<String> = x
        .shape
        .iter()
        .enumerate()
        .map(|(i, &e)| {
            if e == shape[i] {
                d(i)
            } else {
                format!("d{i} mod {}", e.max(1))
            }
        })
        .collect();
    if shape.contains(&0) {
        return b.empty(x.dtype, shape);
    }
    b.read_through(x, &map, shape)
}

/// `nn.split` into the declared results: result `k` reads `x` along
/// `axis` from the sum of the previous extents (the split sizes, constant
/// or implied, are the static result types).
pub(crate) fn split(b: &mut Builder, n: &NodeIn<'_>) -> Res<Vec<Val>> {
    let x = n.input(0)?;
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, x.rank()).map_err(attr_err)?;
    if n.opt(1).is_some() && n.a.const_ints(1).is_none() {
        return Err("split sizes (operand #1) must be a compile-time constant".into());
    }
    let mut off = 0u64;
    let mut res = Vec::new();
    for k in 0..n.outs.len() {
        let (_, shape) = n.out(k)?;
        let map: Vec<String> = (0..x.rank())
            .map(|i| {
                if i == axis && off > 0 {
                    format!("d{i} + {off}")
                } else {
                    d(i)
                }
            })
            .collect();
        res.push(if shape.contains(&0) {
            b.empty(x.dtype, shape)?
        } else {
            b.read_through(x, &map, shape)?
        });
        off += shape.get(axis).copied().unwrap_or(0);
    }
    if off != x.shape[axis] {
        return Err(format!("split results cover {off} of {}", x.shape[axis]));
    }
    Ok(res)
}

/// The constant integer in operand `i`'s single element.
fn const_scalar(n: &NodeIn<'_>, i: usize, what: &str) -> Res<i64> {
    match n.a.const_ints(i).as_deref() {
        Some([v]) => Ok(*v),
        _ => Err(format!(
            "{what} (operand #{i}) must be a compile-time constant scalar"
        )),
    }
}

/// `nn.trilu`: keeps `j - i >= k` (upper) or `j - i <= k` (lower) over the
/// last two dims, zero elsewhere.
pub(crate) fn trilu(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, shape) = n.out(0)?;
    let r = x.rank();
    if r < 2 {
        return Err("nn.trilu needs rank >= 2".into());
    }
    let k = if n.opt(1).is_some() {
        const_scalar(n, 1, "k")?
    } else {
        0
    };
    let upper = n.a.bool("upper").map_err(attr_err)?;
    let e = elem(dt)?;
    let init = b.empty(dt, shape)?;
    let y = b.generic(
        &vec![Iter::Par; r],
        &[Operand::of(x, identity_map(r))],
        &[(init, identity_map(r))],
        |body, a| {
            let i = body.loop_index(r - 2);
            let j = body.loop_index(r - 1);
            let diff = body.op(format!("arith.subi {j}, {i} : index"));
            let kc = body.index(k);
            let pred = if upper { "sge" } else { "sle" };
            let keep = body.op(format!("arith.cmpi {pred}, {diff}, {kc} : index"));
            let z = body.num(0.0, dt)?;
            Ok(vec![body.select(&keep, &a[0], &z, e)])
        },
    )?;
    Ok(y.into_iter().next().expect("one result"))
}

/// `nn.eye_like`: ones on diagonal `k` of a matrix shaped like the input.
pub(crate) fn eye_like(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (dt, shape) = n.out(0)?;
    if shape.len() != 2 {
        return Err("nn.eye_like needs a matrix".into());
    }
    let k = n.a.int("k").map_err(attr_err)?;
    let e = elem(dt)?;
    b.tabulate(dt, shape, |body, idx| {
        let diff = body.op(format!("arith.subi {}, {} : index", idx[1], idx[0]));
        let kc = body.index(k);
        let on = body.op(format!("arith.cmpi eq, {diff}, {kc} : index"));
        let one = body.num(1.0, dt)?;
        let z = body.num(0.0, dt)?;
        Ok(body.select(&on, &one, &z, e))
    })
}

/// `nn.range`: `start + i * delta`; the extent is the static result type,
/// `start` and `delta` are read at run time (0-d operands).
pub(crate) fn range(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (start, delta) = (n.input(0)?.clone(), n.input(2)?.clone());
    let (dt, shape) = n.out(0)?;
    if start.numel() != 1 || delta.numel() != 1 {
        return Err("range operands must be scalars".into());
    }
    let e = elem(dt)?;
    b.tabulate(dt, shape, |body, idx| {
        let zeros: Vec<String> = start.shape.iter().map(|_| body.index(0)).collect();
        let s = body.extract(&start, &zeros);
        let dl = body.extract(&delta, &zeros);
        let i64v = body.op(format!("arith.index_cast {} : index to i64", idx[0]));
        let i = if dt.is_float() {
            body.op(format!("arith.sitofp {i64v} : i64 to {e}"))
        } else if e == "i64" {
            i64v
        } else {
            body.op(format!("arith.trunci {i64v} : i64 to {e}"))
        };
        let (mul, add) = if dt.is_float() {
            ("mulf", "addf")
        } else {
            ("muli", "addi")
        };
        let m = body.op(format!("arith.{mul} {i}, {dl} : {e}"));
        Ok(body.op(format!("arith.{add} {s}, {m} : {e}")))
    })
}

/// `nn.one_hot`: `values[1]` where the (wrapped) index equals the position
/// along the new axis, `values[0]` elsewhere; depth is the static extent.
pub(crate) fn one_hot(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (ind, values) = (n.input(0)?.clone(), n.input(2)?.clone());
    let (dt, shape) = n.out(0)?;
    let r = shape.len();
    let a = n.a.int("axis").map_err(attr_err)?;
    let axis = if a < 0 { a + r as i64 } else { a };
    let axis = usize::try_from(axis)
        .ok()
        .filter(|&x| x < r)
        .ok_or_else(|| format!("axis {a} is out of range"))?;
    let depth = shape[axis] as i64;
    let e = elem(dt)?;
    let (idt, ie) = (ind.dtype, elem(ind.dtype)?);
    b.tabulate(dt, shape, |body, idx| {
        let mut src: Vec<String> = idx.to_vec();
        let pos = src.remove(axis);
        let raw = body.extract(&ind, &src);
        // Float indices truncate toward zero, as in the reference.
        let k = if idt.is_float() {
            let t = body.op(format!("arith.fptosi {raw} : {ie} to i64"));
            body.op(format!("arith.index_cast {t} : i64 to index"))
        } else {
            body.index_of(&raw, idt)?
        };
        let z = body.index(0);
        let dc = body.index(depth);
        let neg = body.op(format!("arith.cmpi slt, {k}, {z} : index"));
        let kw = body.op(format!("arith.addi {k}, {dc} : index"));
        let k = body.select(&neg, &kw, &k, "index");
        let on = body.op(format!("arith.cmpi eq, {k}, {pos} : index"));
        let zero = body.index(0);
        let one = body.index(1);
        let off = body.extract(&values, &[zero]);
        let onv = body.extract(&values, &[one]);
        Ok(body.select(&on, &onv, &off, e))
    })
}

/// `nn.gather_elements`: `out[i] = data[i with axis -> idx[i]]`; negative
/// indices wrap, out-of-range ones are clamped (never read outside).
pub(crate) fn gather_elements(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (data, idx) = (n.input(0)?.clone(), n.input(1)?);
    let (dt, shape) = n.out(0)?;
    let r = data.rank();
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, r).map_err(attr_err)?;
    let idt = idx.dtype;
    let extent = data.shape[axis];
    let init = b.empty(dt, shape)?;
    let y = b.generic(
        &vec![Iter::Par; r],
        &[Operand::of(idx, identity_map(r))],
        &[(init, identity_map(r))],
        |body, a| {
            let i = body.index_of(&a[0], idt)?;
            let c = body.wrap_clamp(&i, extent);
            let mut subs: Vec<String> = (0..r).map(|j| body.loop_index(j)).collect();
            subs[axis] = c;
            Ok(vec![body.extract(&data, &subs)])
        },
    )?;
    Ok(y.into_iter().next().expect("one result"))
}
