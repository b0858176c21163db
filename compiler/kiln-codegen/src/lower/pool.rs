//! Windowed pools: `nn.max_pool` and `nn.average_pool` over
//! `[N, C, spatial...]`. The input is padded (with `-inf` for max, 0 for
//! average) and one `linalg.generic` reduces each window; a tensor of the
//! kernel's shape, only read for its extents, gives the window loops their
//! bounds. Average pools divide by a per-position count obtained by pooling a
//! tensor of ones the same way, so `count_include_pad` and ceil-mode windows
//! need no special cases.

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
    let kernel: Vec<u64> =
        n.a.ints("kernel_shape")
            .map_err(attr_err)?
            .ok_or("kernel_shape is required")?
            .into_iter()
            .map(|k| u64::try_from(k).map_err(|_| "negative kernel_shape".to_string()))
            .collect::<Res<_>>()?;
    if kernel.contains(&0) {
        return Err("kernel_shape must be positive".into());
    }
    let spatial_in = &x.shape[2..];
    let spatial_out = &out_shape[2..];
    let sp = Spatial::read(n, spatial_in, kernel, spatial_out)?;
    let explicit_hi: Vec<u64> = match n.a.ints("pads").map_err(attr_err)? {
        Some(p) if n.a.str("auto_pad").map_err(attr_err)? == "NOTSET" => {
            p[p.len() / 2..].iter().map(|&v| v.max(0) as u64).collect()
        }
        _ => sp.hi.clone(),
    };
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
