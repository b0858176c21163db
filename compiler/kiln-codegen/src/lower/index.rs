//! Index-addressed data movement: `nn.gather_nd`, `nn.scatter_elements`,
//! `nn.scatter_nd` and `nn.pad` (the family of `kiln_interp::ops::indexing`).
//!
//! Invariants:
//! - gathers and pads are one `linalg.generic` over the result that computes
//!   each source position in its body and reads it with `tensor.extract`;
//! - scatters copy the data into a fresh tensor, then apply the updates in
//!   row-major order of the indices in an `scf.for` nest carrying that tensor
//!   (`tensor.insert`, bufferized in place), so with `reduction = none` a
//!   duplicated index keeps the last update, as the reference does;
//! - run-time indices wrap once when negative and are then clamped into the
//!   extent, so a bad index never reads or writes outside a tensor (the
//!   reference rejects such indices; the compiled code cannot report them).

use super::ctx::{elem, Body, Builder, Res, Val};
use super::norm::Combine;
use super::{attr_err, NodeIn};
use kiln_ir::ops::infer::{norm_axes, norm_axis};
use kiln_ir::ops::{PadMode, ScatterReduction};

/// The scatter reduction named by the `reduction` attribute (`None`: plain
/// assignment).
fn reduction(n: &NodeIn<'_>) -> Res<Option<Combine>> {
    Ok(match n.a.enum_attr("reduction").map_err(attr_err)? {
        ScatterReduction::None => None,
        ScatterReduction::Add => Some(Combine::Add),
        ScatterReduction::Mul => Some(Combine::Mul),
        ScatterReduction::Max => Some(Combine::Max),
        ScatterReduction::Min => Some(Combine::Min),
    })
}

/// Checks that indices are an integer tensor.
fn int_indices(v: &Val) -> Res<()> {
    if v.dtype.is_int() {
        Ok(())
    } else {
        Err(format!("indices of dtype {} are not supported", v.dtype))
    }
}

/// Reads index `at` of `idx` as a wrapped, clamped position in `[0, extent)`.
fn read_index(b: &mut Body<'_>, idx: &Val, at: &[String], extent: u64) -> Res<String> {
    let raw = b.extract(idx, at);
    let i = b.index_of(&raw, idx.dtype)?;
    Ok(b.wrap_clamp(&i, extent))
}

/// Writes `upd` at `dst` of the carried tensor `acc` (type `ty`), combined
/// with the value there when a reduction is given.
fn store(
    b: &mut Body<'_>,
    acc: &str,
    x: &Val,
    dst: &[String],
    upd: &str,
    red: Option<Combine>,
) -> Res<String> {
    let ty = x.ty();
    let v = match red {
        None => upd.to_string(),
        Some(c) => {
            let old = b.op(format!("tensor.extract {acc}[{}] : {ty}", dst.join(", ")));
            c.apply(b, &old, upd, x.dtype)?
        }
    };
    Ok(b.insert(&v, acc, &ty, dst))
}

/// `nn.gather_nd` with `batch_dims`: the result is
/// `indices[..-1] + data[batch_dims + m..]`.
pub(crate) fn gather_nd(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, it) = (n.input(0)?.clone(), n.input(1)?.clone());
    let (dt, shape) = n.out(0)?;
    int_indices(&it)?;
    let (r, q) = (x.rank(), it.rank());
    let bd = usize::try_from(n.a.int("batch_dims").map_err(attr_err)?)
        .map_err(|_| "batch_dims must be non-negative".to_string())?;
    if q == 0 || bd >= r.min(q) {
        return Err(format!("batch_dims {bd} is out of range"));
    }
    let m = it.shape[q - 1] as usize;
    if m < 1 || m > r - bd {
        return Err(format!("index tuples of length {m} do not fit {}", x.ty()));
    }
    if shape.contains(&0) {
        return b.empty(dt, shape);
    }
    b.tabulate(dt, shape, |body, o| {
        // o = [batch.., tuple.., slice..]: the first q - 1 dims address the
        // index tuple, the rest the slice of data after the indexed dims.
        let mut at: Vec<String> = o[..q - 1].to_vec();
        let mut src: Vec<String> = o[..bd].to_vec();
        for j in 0..m {
            let jj = body.index(j as i64);
            at.push(jj);
            src.push(read_index(body, &it, &at, x.shape[bd + j])?);
            at.pop();
        }
        src.extend(o[q - 1..].iter().cloned());
        Ok(body.extract(&x, &src))
    })
}

/// `nn.scatter_elements`: for every position `p` of `indices`,
/// `out[p with axis := indices[p]] (op)= updates[p]`.
pub(crate) fn scatter_elements(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, it, upd) = (n.input(0)?, n.input(1)?.clone(), n.input(2)?.clone());
    int_indices(&it)?;
    let r = x.rank();
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, r).map_err(attr_err)?;
    if it.shape != upd.shape || it.rank() != r {
        return Err("indices and updates must have one shape of the data's rank".into());
    }
    if (0..r).any(|d| d != axis && it.shape[d] > x.shape[d]) {
        return Err(format!(
            "indices {:?} exceed {} off the axis",
            it.shape,
            x.ty()
        ));
    }
    let red = reduction(n)?;
    let init = b.copy(x)?;
    let extent = x.shape[axis];
    let xv = x.clone();
    b.loop_nest(&it.shape, &init, |body, p, acc| {
        let mut dst = p.to_vec();
        dst[axis] = read_index(body, &it, p, extent)?;
        let u = body.extract(&upd, p);
        store(body, acc, &xv, &dst, &u, red)
    })
}

/// `nn.scatter_nd`: `out[indices[t]] (op)= updates[t]` for each index tuple
/// `t`, whole slices included.
pub(crate) fn scatter_nd(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, it, upd) = (n.input(0)?, n.input(1)?.clone(), n.input(2)?.clone());
    int_indices(&it)?;
    let q = it.rank();
    if q == 0 || x.rank() == 0 {
        return Err("data and indices must have rank >= 1".into());
    }
    let m = it.shape[q - 1] as usize;
    if m > x.rank() {
        return Err(format!("index tuples of length {m} exceed the data rank"));
    }
    let mut want = it.shape[..q - 1].to_vec();
    want.extend(&x.shape[m..]);
    if upd.shape != want {
        return Err(format!("updates {} must have shape {want:?}", upd.ty()));
    }
    let red = reduction(n)?;
    let init = b.copy(x)?;
    let xv = x.clone();
    // Loops: the tuple dims of `indices`, then the slice dims of `data`.
    b.loop_nest(&want, &init, |body, p, acc| {
        let mut at: Vec<String> = p[..q - 1].to_vec();
        let mut dst = Vec::new();
        for j in 0..m {
            at.push(body.index(j as i64));
            dst.push(read_index(body, &it, &at, xv.shape[j])?);
            at.pop();
        }
        dst.extend(p[q - 1..].iter().cloned());
        let u = body.extract(&upd, p);
        store(body, acc, &xv, &dst, &u, red)
    })
}

/// `nn.pad` with constant `pads` (and `axes`): negative pads crop first,
/// then the positive pads are filled by `mode` (`constant` with the
/// optional run-time `constant_value`, `reflect` without repeating the
/// edge, periodically for wide pads, `edge`, `wrap`).
pub(crate) fn pad(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let (dt, shape) = n.out(0)?;
    let r = x.rank();
    let pads =
        n.a.const_ints(1)
            .ok_or("pads (operand #1) must be a compile-time constant")?;
    let axes = match n.opt(3) {
        Some(_) => {
            let a =
                n.a.const_ints(3)
                    .ok_or("axes (operand #3) must be a compile-time constant")?;
            norm_axes(&a, r).map_err(attr_err)?
        }
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!(
            "pads has {} entries for {} axes",
            pads.len(),
            axes.len()
        ));
    }
    let mut begin = vec![0i64; r];
    let mut end = vec![0i64; r];
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = pads[i];
        end[a] = pads[i + axes.len()];
    }
    let mode: PadMode = n.a.enum_attr("mode").map_err(attr_err)?;
    // The cropped input is [lo, lo + ext) per axis.
    let mut lo = vec![0i64; r];
    let mut ext = vec![0i64; r];
    for d in 0..r {
        lo[d] = (-begin[d]).max(0);
        ext[d] = x.shape[d] as i64 - lo[d] - (-end[d]).max(0);
        let o = ext[d] + begin[d].max(0) + end[d].max(0);
        if ext[d] < 0 || o != shape[d] as i64 {
            return Err(format!("pads {pads:?} do not fit {} -> {shape:?}", x.ty()));
        }
        if mode != PadMode::Constant && ext[d] == 0 && o > 0 {
            return Err(format!("{mode} padding of the empty axis {d}"));
        }
    }
    if shape.contains(&0) {
        return b.empty(dt, shape);
    }
    let cval = n.opt(2).cloned();
    if cval.as_ref().is_some_and(|c| c.numel() != 1) {
        return Err("constant_value must be a scalar".into());
    }
    let e = elem(dt)?;
    let empty_src = x.numel() == 0;
    b.tabulate(dt, shape, |body, o| {
        let z = body.index(0);
        let mut subs = Vec::with_capacity(r);
        let mut inside: Option<String> = None;
        for d in 0..r {
            if begin[d] == 0 && end[d] == 0 {
                subs.push(o[d].clone());
                continue;
            }
            let nn = ext[d];
            let bc = body.index(begin[d].max(0));
            let i = body.op(format!("arith.subi {}, {bc} : index", o[d]));
            let last = body.index((nn - 1).max(0));
            let i = match mode {
                PadMode::Constant => {
                    let ge = body.op(format!("arith.cmpi sge, {i}, {z} : index"));
                    let le = body.op(format!("arith.cmpi sle, {i}, {last} : index"));
                    let ok = body.op(format!("arith.andi {ge}, {le} : i1"));
                    inside = Some(match inside.take() {
                        None => ok,
                        Some(p) => body.op(format!("arith.andi {p}, {ok} : i1")),
                    });
                    let c = body.op(format!("arith.maxsi {i}, {z} : index"));
                    body.op(format!("arith.minsi {c}, {last} : index"))
                }
                PadMode::Edge => {
                    let c = body.op(format!("arith.maxsi {i}, {z} : index"));
                    body.op(format!("arith.minsi {c}, {last} : index"))
                }
                PadMode::Wrap => rem_euclid(body, &i, nn),
                PadMode::Reflect if nn == 1 => z.clone(),
                PadMode::Reflect => {
                    // Reflection is periodic with period 2 (n - 1).
                    let p = 2 * (nn - 1);
                    let m = rem_euclid(body, &i, p);
                    let pc = body.index(p);
                    let mirrored = body.op(format!("arith.subi {pc}, {m} : index"));
                    let nc = body.index(nn);
                    let past = body.op(format!("arith.cmpi sge, {m}, {nc} : index"));
                    body.select(&past, &mirrored, &m, "index")
                }
            };
            let off = body.index(lo[d]);
            subs.push(body.op(format!("arith.addi {i}, {off} : index")));
        }
        let fill = |body: &mut Body<'_>| -> Res<String> {
            match &cval {
                Some(c) => {
                    let zeros: Vec<String> = c.shape.iter().map(|_| body.index(0)).collect();
                    Ok(body.extract(c, &zeros))
                }
                None => body.num(0.0, dt),
            }
        };
        if empty_src {
            return fill(body);
        }
        let v = body.extract(&x, &subs);
        Ok(match inside {
            Some(ok) => {
                let f = fill(body)?;
                body.select(&ok, &v, &f, e)
            }
            None => v,
        })
    })
}

/// `i mod n` in `[0, n)` for any sign of `i` (`n > 0`).
fn rem_euclid(b: &mut Body<'_>, i: &str, n: i64) -> String {
    let nc = b.index(n);
    let z = b.index(0);
    let r = b.op(format!("arith.remsi {i}, {nc} : index"));
    let neg = b.op(format!("arith.cmpi slt, {r}, {z} : index"));
    let up = b.op(format!("arith.addi {r}, {nc} : index"));
    b.select(&neg, &up, &r, "index")
}
