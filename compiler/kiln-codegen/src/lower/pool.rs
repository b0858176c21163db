//! Windowed pools: `nn.max_pool` and `nn.average_pool` over
//! `[N, C, spatial...]`. The input is padded (with `-inf` for max, 0 for
//! average) and one `linalg.generic` reduces each window; a tensor of the
//! kernel's shape, only read for its extents, gives the window loops their
//! bounds. Average pools divide by a per-position count obtained by pooling a
//! tensor of ones the same way, so `count_include_pad` and ceil-mode windows
//! need no special cases. `nn.lp_pool` sums `|x|^p` the same way (padding
//! adds 0) and takes the `p`-th root. `nn.lrn` sums squares over a channel
//! window with an `scf.for` in the body of one `linalg.generic`.

use super::ctx::{affine_map, elem, Builder, Iter, Operand, Res, Val};
use super::linalg::Spatial;
use super::{attr_err, NodeIn};

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
    let init = b.filled(if is_max { f64::NEG_INFINITY } else { 0.0 }, dt, out_shape)?;
    let mut iters = vec![Iter::Par; lead + s];
    iters.extend(vec![Iter::Red; s]);
    let e = elem(dt)?;
    let r = b.generic(
        &iters,
        &[
            Operand::of(x, affine_map(nd, &xm)),
            Operand::of(&window, affine_map(nd, &km)),
        ],
        &[(init, affine_map(nd, &om))],
        |body, a| {
            let op = if is_max { "maximumf" } else { "addf" };
            Ok(vec![body.op(format!("arith.{op} {}, {} : {e}", a[2], a[0]))])
        },
    )?;
    Ok(r.into_iter().next().expect("one result"))
}

/// `nn.max_pool` (first result only) and `nn.average_pool`.
pub(crate) fn pool(b: &mut Builder, n: &NodeIn<'_>, is_max: bool) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, out_shape) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!(
            "{} of dtype {dt} is not supported",
            n.node.op.name()
        ));
    }
    if n.outs.len() > 1 {
        return Err("the indices result of nn.max_pool is not supported".into());
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
    let fill = if is_max { f64::NEG_INFINITY } else { 0.0 };
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
