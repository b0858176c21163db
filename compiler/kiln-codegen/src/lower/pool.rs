//! Windowed pools: `nn.max_pool` (floats and integers, with its optional
//! indices result) and `nn.average_pool` over `[N, C, spatial...]`. The
//! input is padded (with the dtype's lowest value for max, 0 for average)
//! and one `linalg.generic` reduces each window; a tensor of the
//! kernel's shape, only read for its extents, gives the window loops their
//! bounds. Average pools divide by a per-position count obtained by pooling a
//! tensor of ones the same way, so `count_include_pad` and ceil-mode windows
//! need no special cases. `nn.lp_pool` sums `|x|^p` the same way (padding
//! adds 0) and takes the `p`-th root. `nn.lrn` sums squares over a channel
//! window with an `scf.for` in the body of one `linalg.generic`.

use super::ctx::{affine_map, elem, Builder, Iter, Operand, Res, Val};
use super::linalg::Spatial;
use super::{attr_err, NodeIn};
use kiln_ir::DType;

/// Sums (or maxes) windows of `x` (`[lead..., spatial...]`, `lead` leading
/// dims untouched) into `out_shape`.
fn window_reduce(
    b: &mut Builder,
    x: &Val,
    lead: usize,
    sp: &Spatial,
    out_shape: &[u64],
    is_max: bool,
) -> Res<Val> {
    let s = sp.kernel.len();
    let dt = x.dtype;
    let nd = lead + 2 * s;
    let window = b.empty(dt, &sp.kernel)?;
    let mut xm: Vec<String> = (0..lead).map(|i| format!("d{i}")).collect();
    xm.extend((0..s).map(|i| sp.index(i, lead + i, lead + s + i)));
    let km: Vec<String> = (0..s).map(|i| format!("d{}", lead + s + i)).collect();
    let om: Vec<String> = (0..lead + s).map(|i| format!("d{i}")).collect();
    let init = b.filled(if is_max { lowest(dt) } else { 0.0 }, dt, out_shape)?;
    let mut iters = vec![Iter::Par; lead + s];
    iters.extend(vec![Iter::Red; s]);
    let e = elem(dt)?;
    let op = match (is_max, dt.is_float(), dt.is_signed()) {
        (true, true, _) => "maximumf",
        (true, false, true) => "maxsi",
        (true, false, false) => "maxui",
        (false, true, _) => "addf",
        (false, false, _) => "addi",
    };
    let r = b.generic(
        &iters,
        &[
            Operand::of(x, affine_map(nd, &xm)),
            Operand::of(&window, affine_map(nd, &km)),
        ],
        &[(init, affine_map(nd, &om))],
        |body, a| Ok(vec![body.op(format!("arith.{op} {}, {} : {e}", a[2], a[0]))]),
    )?;
    Ok(r.into_iter().next().expect("one result"))
}

/// The value padding a max window with: below (or equal to) every value
/// of `dt`, so it never wins.
fn lowest(dt: DType) -> f64 {
    if dt.is_float() {
        f64::NEG_INFINITY
    } else if dt.is_signed() {
        -(2f64.powi(dt.bits() as i32 - 1))
    } else {
        0.0
    }
}

/// `nn.max_pool`: the window maximum on floats and integers and, when the
/// node declares it, the second result: the flat `i64` index of the
/// maximum in the input (see [`max_pool_indices`]).
pub(crate) fn max_pool(b: &mut Builder, n: &NodeIn<'_>) -> Res<Vec<Val>> {
    if n.outs.len() < 2 {
        return pool(b, n, true).map(|v| vec![v]);
    }
    max_pool_indices(b, n)
}

/// `nn.max_pool` with indices, matching the interpreter and the ONNX
/// reference: windows are scanned in kernel order and a tap replaces the
/// running maximum when it is the first tap inside the input or strictly
/// greater (so the first maximum wins and NaN never wins); its index is
/// `(n * C + c) * plane + spatial offset`, the offset row-major
/// (`storage_order = 0`) or column-major (`1`). A window without such a tap
/// gives index 0. The taps' input coordinates come from `linalg.index`, so
/// padding is recognized by position rather than by value.
fn max_pool_indices(b: &mut Builder, n: &NodeIn<'_>) -> Res<Vec<Val>> {
    let x = n.input(0)?;
    let (dt, out_shape) = n.out(0)?;
    let (idt, idx_shape) = n.out(1)?;
    if dt == DType::Bool || idt != DType::I64 || idx_shape != out_shape || x.rank() < 3 {
        return Err(format!(
            "nn.max_pool of {} with indices {idt} is not supported",
            x.ty()
        ));
    }
    let col_major = n.a.int("storage_order").map_err(attr_err)? == 1;
    let spatial_in = x.shape[2..].to_vec();
    let s = spatial_in.len();
    let sp = Spatial::read(n, &spatial_in, None, &out_shape[2..])?;
    let mut lo = vec![0, 0];
    lo.extend(&sp.lo);
    let mut hi = vec![0, 0];
    hi.extend(&sp.hi);
    let xp = b.pad(x, &lo, &hi, lowest(dt))?;
    // Strides of the spatial offset.
    let mut st = vec![1u64; s];
    if col_major {
        for d in 1..s {
            st[d] = st[d - 1] * spatial_in[d - 1];
        }
    } else {
        for d in (0..s.saturating_sub(1)).rev() {
            st[d] = st[d + 1] * spatial_in[d + 1];
        }
    }
    let plane: u64 = spatial_in.iter().product();
    let channels = x.shape[1];
    let nd = 2 + 2 * s;
    let window = b.empty(dt, &sp.kernel)?;
    let mut xm: Vec<String> = vec!["d0".into(), "d1".into()];
    xm.extend((0..s).map(|i| sp.index(i, 2 + i, 2 + s + i)));
    let km: Vec<String> = (0..s).map(|i| format!("d{}", 2 + s + i)).collect();
    let om: Vec<String> = (0..2 + s).map(|i| format!("d{i}")).collect();
    let init_v = b.filled(lowest(dt), dt, out_shape)?;
    let init_i = b.filled(-1.0, DType::I64, out_shape)?;
    let mut iters = vec![Iter::Par; 2 + s];
    iters.extend(vec![Iter::Red; s]);
    let e = elem(dt)?;
    let r = b.generic(
        &iters,
        &[
            Operand::of(&xp, affine_map(nd, &xm)),
            Operand::of(&window, affine_map(nd, &km)),
        ],
        &[(init_v, affine_map(nd, &om)), (init_i, affine_map(nd, &om))],
        |body, a| {
            let (v, acc, acc_i) = (&a[0], &a[2], &a[3]);
            let z = body.index(0);
            let mut inside: Option<String> = None;
            let nn = body.loop_index(0);
            let c = body.loop_index(1);
            let cs = body.index(channels as i64);
            let nc = body.op(format!("arith.muli {nn}, {cs} : index"));
            let pl = body.op(format!("arith.addi {nc}, {c} : index"));
            let ps = body.index(plane as i64);
            let mut flat = body.op(format!("arith.muli {pl}, {ps} : index"));
            for d in 0..s {
                let o = body.loop_index(2 + d);
                let k = body.loop_index(2 + s + d);
                let stride = body.index(sp.strides[d] as i64);
                let dil = body.index(sp.dilations[d] as i64);
                let os = body.op(format!("arith.muli {o}, {stride} : index"));
                let kd = body.op(format!("arith.muli {k}, {dil} : index"));
                let p = body.op(format!("arith.addi {os}, {kd} : index"));
                let l = body.index(sp.lo[d] as i64);
                let q = body.op(format!("arith.subi {p}, {l} : index"));
                let ext = body.index(spatial_in[d] as i64);
                let ge = body.op(format!("arith.cmpi sge, {q}, {z} : index"));
                let lt = body.op(format!("arith.cmpi slt, {q}, {ext} : index"));
                let ok = body.op(format!("arith.andi {ge}, {lt} : i1"));
                inside = Some(match inside {
                    None => ok,
                    Some(prev) => body.op(format!("arith.andi {prev}, {ok} : i1")),
                });
                let sd = body.index(st[d] as i64);
                let qs = body.op(format!("arith.muli {q}, {sd} : index"));
                flat = body.op(format!("arith.addi {flat}, {qs} : index"));
            }
            let inside = inside.ok_or("nn.max_pool needs spatial dims")?;
            let m1 = body.int(-1, DType::I64)?;
            let first = body.op(format!("arith.cmpi eq, {acc_i}, {m1} : i64"));
            let better = if dt.is_float() {
                body.op(format!("arith.cmpf ogt, {v}, {acc} : {e}"))
            } else {
                let p = if dt.is_signed() { "sgt" } else { "ugt" };
                body.op(format!("arith.cmpi {p}, {v}, {acc} : {e}"))
            };
            let wins = body.op(format!("arith.ori {first}, {better} : i1"));
            let mut take = body.op(format!("arith.andi {inside}, {wins} : i1"));
            if dt.is_float() {
                let ord = body.op(format!("arith.cmpf ord, {v}, {v} : {e}"));
                take = body.op(format!("arith.andi {take}, {ord} : i1"));
            }
            let fi = body.op(format!("arith.index_cast {flat} : index to i64"));
            let nv = body.select(&take, v, acc, e);
            let ni = body.select(&take, &fi, acc_i, "i64");
            Ok(vec![nv, ni])
        },
    )?;
    let mut it = r.into_iter();
    let (vals, idx) = match (it.next(), it.next()) {
        (Some(v), Some(i)) => (v, i),
        _ => return Err("internal: max pool produced no results".into()),
    };
    let idx = b.map(&[&idx], DType::I64, out_shape, |body, a| {
        let m1 = body.int(-1, DType::I64)?;
        let z = body.int(0, DType::I64)?;
        let none = body.op(format!("arith.cmpi eq, {}, {m1} : i64", a[0]));
        Ok(body.select(&none, &z, &a[0], "i64"))
    })?;
    Ok(vec![vals, idx])
}

/// `nn.max_pool` (first result only) and `nn.average_pool`.
pub(crate) fn pool(b: &mut Builder, n: &NodeIn<'_>, is_max: bool) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, out_shape) = n.out(0)?;
    let int_max = is_max && dt != DType::Bool;
    if !(dt.is_float() || int_max) {
        return Err(format!(
            "{} of dtype {dt} is not supported",
            n.node.op.name()
        ));
    }
    if n.outs.len() > 1 {
        return Err("internal: nn.max_pool indices go through max_pool".into());
    }
    if x.rank() < 3 {
        return Err(format!("pool input {} needs spatial dims", x.ty()));
    }
    let spatial_in = &x.shape[2..];
    let spatial_out = &out_shape[2..];
    let sp = Spatial::read(n, spatial_in, None, spatial_out)?;
    let explicit_hi = sp.explicit_hi.clone();
    let mut lo = vec![0, 0];
    lo.extend(&sp.lo);
    let mut hi = vec![0, 0];
    hi.extend(&sp.hi);
    let fill = if is_max { lowest(dt) } else { 0.0 };
    let xp = b.pad(x, &lo, &hi, fill)?;
    let sum = window_reduce(b, &xp, 2, &sp, out_shape, is_max)?;
    if is_max {
        return Ok(sum);
    }
    // Counts per output position: pool a tensor of ones whose padding
    // counts (1) or not (0) by `count_include_pad`; positions added only to
    // complete ceil-mode windows never count.
    let include = n.a.bool("count_include_pad").map_err(attr_err)?;
    let s = spatial_in.len();
    let counts_src = if include {
        let base: Vec<u64> = (0..s)
            .map(|i| spatial_in[i] + sp.lo[i] + explicit_hi[i])
            .collect();
        let ones = b.filled(1.0, dt, &base)?;
        let extra: Vec<u64> = (0..s).map(|i| sp.hi[i] - explicit_hi[i]).collect();
        b.pad(&ones, &vec![0; s], &extra, 0.0)?
    } else {
        let ones = b.filled(1.0, dt, spatial_in)?;
        b.pad(&ones, &sp.lo, &sp.hi, 0.0)?
    };
    let counts = window_reduce(b, &counts_src, 0, &sp, spatial_out, false)?;
    let e = elem(dt)?;
    b.map(&[&sum, &counts], dt, out_shape, |body, a| {
        Ok(body.op(format!("arith.divf {}, {} : {e}", a[0], a[1])))
    })
}

/// `nn.lp_pool`: `(sum |x|^p over the window)^(1/p)`, pads contributing 0.
pub(crate) fn lp_pool(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, out_shape) = n.out(0)?;
    if !dt.is_float() || x.rank() < 3 {
        return Err(format!("nn.lp_pool of {} is not supported", x.ty()));
    }
    let p = n.a.int("p").map_err(attr_err)?;
    if p <= 0 {
        return Err(format!("p must be positive, got {p}"));
    }
    let sp = Spatial::read(n, &x.shape[2..], None, &out_shape[2..])?;
    let e = elem(dt)?;
    let shape = x.shape.clone();
    let pw = b.map(&[x], dt, &shape, |body, a| {
        let ab = body.op(format!("math.absf {} : {e}", a[0]));
        let pc = body.float(p as f64, dt)?;
        Ok(body.op(format!("math.powf {ab}, {pc} : {e}")))
    })?;
    let mut lo = vec![0, 0];
    lo.extend(&sp.lo);
    let mut hi = vec![0, 0];
    hi.extend(&sp.hi);
    let xp = b.pad(&pw, &lo, &hi, 0.0)?;
    let sum = window_reduce(b, &xp, 2, &sp, out_shape, false)?;
    b.map(&[&sum], dt, out_shape, |body, a| {
        let inv = body.float(1.0 / p as f64, dt)?;
        Ok(body.op(format!("math.powf {}, {inv} : {e}", a[0])))
    })
}

/// `nn.lrn`: `x / (bias + alpha / size * sum_sq)^beta`, the sum of squares
/// running over channels `c - floor((size-1)/2) ..= c + ceil((size-1)/2)`
/// clipped to the channel range.
pub(crate) fn lrn(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let (dt, shape) = n.out(0)?;
    let size = n.a.int("size").map_err(attr_err)?;
    if !dt.is_float() || size <= 0 || x.rank() < 3 {
        return Err(format!(
            "nn.lrn of {} with size {size} is not supported",
            x.ty()
        ));
    }
    let alpha = n.a.float("alpha").map_err(attr_err)?;
    let beta = n.a.float("beta").map_err(attr_err)?;
    let bias = n.a.float("bias").map_err(attr_err)?;
    let (before, after) = ((size - 1) / 2, (size - 1) - (size - 1) / 2);
    let c = x.shape[1] as i64;
    let e = elem(dt)?;
    b.tabulate(dt, shape, |body, idx| {
        let ch = &idx[1];
        let bc = body.index(before);
        let ac = body.index(after + 1);
        let z = body.index(0);
        let cc = body.index(c);
        let lo0 = body.op(format!("arith.subi {ch}, {bc} : index"));
        let lo = body.op(format!("arith.maxsi {lo0}, {z} : index"));
        let hi0 = body.op(format!("arith.addi {ch}, {ac} : index"));
        let hi = body.op(format!("arith.minsi {hi0}, {cc} : index"));
        let zero = body.float(0.0, dt)?;
        let sq = body.for_loop(&lo, &hi, &[(zero, e)], |body, k, acc| {
            let mut at = idx.to_vec();
            at[1] = k.to_string();
            let v = body.extract(&x, &at);
            let v2 = body.op(format!("arith.mulf {v}, {v} : {e}"));
            Ok(vec![body.op(format!("arith.addf {}, {v2} : {e}", acc[0]))])
        })?;
        let k = body.float(alpha / size as f64, dt)?;
        let bb = body.float(bias, dt)?;
        let be = body.float(beta, dt)?;
        let t = body.op(format!("arith.mulf {k}, {} : {e}", sq[0]));
        let base = body.op(format!("arith.addf {bb}, {t} : {e}"));
        let den = body.op(format!("math.powf {base}, {be} : {e}"));
        let v = body.extract(&x, idx);
        Ok(body.op(format!("arith.divf {v}, {den} : {e}")))
    })
}
