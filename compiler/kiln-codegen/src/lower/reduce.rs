//! Scans and selections along one axis: `nn.arg_max` / `nn.arg_min`,
//! `nn.cumsum`, `nn.cumprod`, `nn.top_k`, `nn.hardmax`.
//!
//! Each is a `linalg.generic` over its result whose body walks the lane of
//! the input with an `scf.for` and `tensor.extract`, so no op needs a
//! scatter or a sort. Comparisons follow the reference: for arg ops NaN
//! beats every number; `nn.top_k` orders by (is NaN, IEEE total order) with
//! ties broken by the lower index; `nn.hardmax` ignores NaN.

use super::ctx::{elem, identity_map, Body, Builder, Iter, Operand, Res, Val};
use super::{attr_err, NodeIn};
use kiln_ir::ops::infer::norm_axis;
use kiln_ir::DType;

/// The input index of lane position `k` for a result position `out`
/// (`keep`: the axis is kept in the result, else it was removed).
fn lane_index(out: &[String], axis: usize, keep: bool, k: &str) -> Vec<String> {
    let mut v = out.to_vec();
    if keep {
        v[axis] = k.to_string();
    } else {
        v.insert(axis, k.to_string());
    }
    v
}

/// `p` strictly beats `q` for arg_max (`max`) or arg_min; NaN beats numbers.
fn beats(b: &mut Body<'_>, p: &str, q: &str, dt: DType, max: bool) -> Res<String> {
    let e = elem(dt)?;
    if !dt.is_float() {
        let pred = match (max, dt.is_signed() && dt != DType::Bool) {
            (true, true) => "sgt",
            (true, false) => "ugt",
            (false, true) => "slt",
            (false, false) => "ult",
        };
        return Ok(b.op(format!("arith.cmpi {pred}, {p}, {q} : {e}")));
    }
    let pred = if max { "ogt" } else { "olt" };
    let c = b.op(format!("arith.cmpf {pred}, {p}, {q} : {e}"));
    let pn = b.op(format!("arith.cmpf uno, {p}, {p} : {e}"));
    let qn = b.op(format!("arith.cmpf ord, {q}, {q} : {e}"));
    let or = b.op(format!("arith.ori {pn}, {c} : i1"));
    Ok(b.op(format!("arith.andi {qn}, {or} : i1")))
}

/// `nn.arg_max` / `nn.arg_min` with `keepdims` and `select_last_index`.
pub(crate) fn arg(b: &mut Builder, n: &NodeIn<'_>, max: bool) -> Res<Val> {
    let x = n.input(0)?.clone();
    let (dt, shape) = n.out(0)?;
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, x.rank()).map_err(attr_err)?;
    let keep = n.a.bool("keepdims").map_err(attr_err)?;
    let last = n.a.bool("select_last_index").map_err(attr_err)?;
    let extent = x.shape[axis];
    if extent == 0 {
        return Err("arg_max/arg_min over an empty axis".into());
    }
    let xe = elem(x.dtype)?;
    let xd = x.dtype;
    b.tabulate(dt, shape, |body, idx| {
        let z = body.index(0);
        let first = body.extract(&x, &lane_index(idx, axis, keep, &z));
        let one = body.index(1);
        let hi = body.index(extent as i64);
        let r = body.for_loop(
            &one,
            &hi,
            &[(z.clone(), "index"), (first, xe)],
            |body, k, c| {
                let v = body.extract(&x, &lane_index(idx, axis, keep, k));
                let mut take = beats(body, &v, &c[1], xd, max)?;
                if last {
                    let worse = beats(body, &c[1], &v, xd, max)?;
                    let t = body.int(1, DType::Bool)?;
                    let not_worse = body.op(format!("arith.xori {worse}, {t} : i1"));
                    let not_better = body.op(format!("arith.xori {take}, {t} : i1"));
                    let tie = body.op(format!("arith.andi {not_worse}, {not_better} : i1"));
                    take = body.op(format!("arith.ori {take}, {tie} : i1"));
                }
                Ok(vec![
                    body.select(&take, k, &c[0], "index"),
                    body.select(&take, &v, &c[1], xe),
                ])
            },
        )?;
        Ok(body.op(format!("arith.index_cast {} : index to i64", r[0])))
    })
}

/// `nn.cumsum` along a constant axis, inclusive or `exclusive`, forward or
/// `reverse`: each element sums its lane prefix (or suffix).
pub(crate) fn cumsum(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    cumulative(b, n, false)
}

/// `nn.cumprod`: [`cumsum`] with products (integers wrap).
pub(crate) fn cumprod(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    cumulative(b, n, true)
}

fn cumulative(b: &mut Builder, n: &NodeIn<'_>, prod: bool) -> Res<Val> {
    let name = n.node.op.name();
    let x = n.input(0)?.clone();
    let (dt, shape) = n.out(0)?;
    let ax = match n.a.const_ints(1).as_deref() {
        Some([a]) => *a,
        _ => {
            return Err(format!(
                "the {name} axis (operand #1) must be a compile-time constant"
            ))
        }
    };
    let axis = norm_axis(ax, x.rank()).map_err(attr_err)?;
    let excl = n.a.bool("exclusive").map_err(attr_err)?;
    let rev = n.a.bool("reverse").map_err(attr_err)?;
    if dt == DType::Bool {
        return Err(format!("{name} on bool is not supported"));
    }
    let e = elem(dt)?;
    let add = match (prod, dt.is_float()) {
        (false, true) => "addf",
        (false, false) => "addi",
        (true, true) => "mulf",
        (true, false) => "muli",
    };
    let extent = x.shape[axis] as i64;
    b.tabulate(dt, shape, |body, idx| {
        let i = &idx[axis];
        let one = body.index(1);
        let (lo, hi) = match (rev, excl) {
            (false, false) => (
                body.index(0),
                body.op(format!("arith.addi {i}, {one} : index")),
            ),
            (false, true) => (body.index(0), i.clone()),
            (true, false) => (i.clone(), body.index(extent)),
            (true, true) => (
                body.op(format!("arith.addi {i}, {one} : index")),
                body.index(extent),
            ),
        };
        let z = body.num(if prod { 1.0 } else { 0.0 }, dt)?;
        let r = body.for_loop(&lo, &hi, &[(z, e)], |body, k, c| {
            let mut at = idx.to_vec();
            at[axis] = k.to_string();
            let v = body.extract(&x, &at);
            Ok(vec![body.op(format!("arith.{add} {}, {v} : {e}", c[0]))])
        })?;
        Ok(r[0].clone())
    })
}

/// Whether `p` sorts strictly before `q` ascending: (is NaN, IEEE total
/// order) for floats, numeric order for integers; plus whether they tie.
fn less_eq(b: &mut Body<'_>, p: &str, q: &str, dt: DType) -> Res<(String, String)> {
    let e = elem(dt)?;
    if !dt.is_float() {
        let pred = if dt.is_signed() && dt != DType::Bool {
            "slt"
        } else {
            "ult"
        };
        let lt = b.op(format!("arith.cmpi {pred}, {p}, {q} : {e}"));
        let eq = b.op(format!("arith.cmpi eq, {p}, {q} : {e}"));
        return Ok((lt, eq));
    }
    let bits = dt.bits();
    let ie = format!("i{bits}");
    // total_cmp: flip the magnitude bits of negative numbers, compare signed.
    let key = |b: &mut Body<'_>, v: &str| -> String {
        let i = b.op(format!("arith.bitcast {v} : {e} to {ie}"));
        let s = b.op(format!("arith.constant {} : {ie}", bits - 1));
        let one = b.op(format!("arith.constant 1 : {ie}"));
        let sign = b.op(format!("arith.shrsi {i}, {s} : {ie}"));
        let mask = b.op(format!("arith.shrui {sign}, {one} : {ie}"));
        b.op(format!("arith.xori {i}, {mask} : {ie}"))
    };
    let (kp, kq) = (key(b, p), key(b, q));
    let pn = b.op(format!("arith.cmpf uno, {p}, {p} : {e}"));
    let qn = b.op(format!("arith.cmpf uno, {q}, {q} : {e}"));
    let t = b.int(1, DType::Bool)?;
    let not_pn = b.op(format!("arith.xori {pn}, {t} : i1"));
    let nan_lt = b.op(format!("arith.andi {not_pn}, {qn} : i1"));
    let same_nan = b.op(format!("arith.cmpi eq, {pn}, {qn} : i1"));
    let klt = b.op(format!("arith.cmpi slt, {kp}, {kq} : {ie}"));
    let keq = b.op(format!("arith.cmpi eq, {kp}, {kq} : {ie}"));
    let lt2 = b.op(format!("arith.andi {same_nan}, {klt} : i1"));
    let lt = b.op(format!("arith.ori {nan_lt}, {lt2} : i1"));
    let eq = b.op(format!("arith.andi {same_nan}, {keq} : i1"));
    Ok((lt, eq))
}

/// `nn.top_k` with a constant `k` (the static result extent): the rank of
/// every element in its lane, then a selection of ranks `0..k`. Results are
/// always sorted (allowed for `sorted = false`).
pub(crate) fn top_k(b: &mut Builder, n: &NodeIn<'_>) -> Res<Vec<Val>> {
    let x = n.input(0)?.clone();
    let (dt, shape) = n.out(0)?;
    let (idt, _) = n.out(1)?;
    if n.a.const_ints(1).is_none() {
        return Err("k (operand #1) must be a compile-time constant".into());
    }
    let r = x.rank();
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, r).map_err(attr_err)?;
    let largest = n.a.bool("largest").map_err(attr_err)?;
    let extent = x.shape[axis] as i64;
    let xd = x.dtype;
    // rank[i] = #{l : l comes before i}.
    let rank = b.tabulate(DType::I64, &x.shape, |body, idx| {
        let me = body.extract(&x, idx);
        let z = body.index(0);
        let hi = body.index(extent);
        let zero = body.op("arith.constant 0 : i64");
        let c = body.for_loop(&z, &hi, &[(zero, "i64")], |body, l, c| {
            let mut at = idx.to_vec();
            at[axis] = l.to_string();
            let v = body.extract(&x, &at);
            let (lt, eq) = if largest {
                less_eq(body, &me, &v, xd)?
            } else {
                less_eq(body, &v, &me, xd)?
            };
            let lower = body.op(format!("arith.cmpi ult, {l}, {} : index", idx[axis]));
            let tie = body.op(format!("arith.andi {eq}, {lower} : i1"));
            let before = body.op(format!("arith.ori {lt}, {tie} : i1"));
            let inc = body.op(format!("arith.extui {before} : i1 to i64"));
            Ok(vec![body.op(format!("arith.addi {}, {inc} : i64", c[0]))])
        })?;
        Ok(c[0].clone())
    })?;
    let vinit = b.empty(dt, shape)?;
    let iinit = b.empty(idt, shape)?;
    let rs = shape.len();
    let res = b.generic(
        &vec![Iter::Par; rs],
        &[],
        &[(vinit, identity_map(rs)), (iinit, identity_map(rs))],
        |body, _| {
            let idx: Vec<String> = (0..rs).map(|j| body.loop_index(j)).collect();
            let want = body.op(format!("arith.index_cast {} : index to i64", idx[axis]));
            let z = body.index(0);
            let hi = body.index(extent);
            let f = body.for_loop(&z, &hi, &[(z.clone(), "index")], |body, l, c| {
                let mut at = idx.clone();
                at[axis] = l.to_string();
                let rk = body.extract(&rank, &at);
                let hit = body.op(format!("arith.cmpi eq, {rk}, {want} : i64"));
                Ok(vec![body.select(&hit, l, &c[0], "index")])
            })?;
            let mut at = idx.clone();
            at[axis] = f[0].clone();
            let v = body.extract(&x, &at);
            let i = body.op(format!("arith.index_cast {} : index to i64", f[0]));
            Ok(vec![v, i])
        },
    )?;
    Ok(res)
}

/// `nn.hardmax`: 1 at the first maximum of each lane (NaN ignored), 0
/// elsewhere.
pub(crate) fn hardmax(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let (dt, shape) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!("nn.hardmax of dtype {dt} is not supported"));
    }
    let r = x.rank();
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, r).map_err(attr_err)?;
    let extent = x.shape[axis] as i64;
    let e = elem(dt)?;
    let init = b.empty(dt, shape)?;
    let y = b.generic(
        &vec![Iter::Par; r],
        &[Operand::of(&x, identity_map(r))],
        &[(init, identity_map(r))],
        |body, _| {
            let idx: Vec<String> = (0..r).map(|j| body.loop_index(j)).collect();
            let z = body.index(0);
            let hi = body.index(extent);
            let ninf = body.float(f64::NEG_INFINITY, dt)?;
            let m = body.for_loop(&z, &hi, &[(ninf, e)], |body, l, c| {
                let mut at = idx.clone();
                at[axis] = l.to_string();
                let v = body.extract(&x, &at);
                Ok(vec![body.op(format!("arith.maxnumf {}, {v} : {e}", c[0]))])
            })?;
            let first = body.for_loop(&z, &hi, &[(hi.clone(), "index")], |body, l, c| {
                let mut at = idx.clone();
                at[axis] = l.to_string();
                let v = body.extract(&x, &at);
                let eq = body.op(format!("arith.cmpf oeq, {v}, {} : {e}", m[0]));
                let none = body.op(format!("arith.cmpi eq, {}, {hi} : index", c[0]));
                let take = body.op(format!("arith.andi {eq}, {none} : i1"));
                Ok(vec![body.select(&take, l, &c[0], "index")])
            })?;
            let on = body.op(format!(
                "arith.cmpi eq, {}, {} : index",
                first[0], idx[axis]
            ));
            let one = body.float(1.0, dt)?;
            let zero = body.float(0.0, dt)?;
            Ok(vec![body.select(&on, &one, &zero, e)])
        },
    )?;
    Ok(y.into_iter().next().expect("one result"))
}
