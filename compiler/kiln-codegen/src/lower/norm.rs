//! Reductions (`nn.reduce_*`, global pools) and the normalizations built on
//! them: `nn.softmax` / `nn.log_softmax` (max-subtracted, so `exp` never
//! overflows), inference-mode `nn.batch_norm`, and the normalizations that
//! share one two-pass mean/variance helper ([`moments`]): `nn.layer_norm`,
//! `nn.rms_norm`, `nn.instance_norm`, `nn.mean_variance_normalization`;
//! also `nn.lp_normalization` and `nn.global_lp_pool`.
//! Their statistics and arithmetic run in f32 (f64 for f64 inputs); f16 and
//! bf16 inputs are widened first and the result is rounded once.

use super::ctx::{affine_map, broadcast_map, elem, identity_map, Body, Builder, Iter, Operand};
use super::ctx::{Res, Val};
use super::elementwise::{convert, max, min};
use super::{attr_err, NodeIn};
use kiln_ir::ops::infer::norm_axis;
use kiln_ir::{DType, OpKind};

/// How a reduction combines elements.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Combine {
    Add,
    Mul,
    Max,
    Min,
}

impl Combine {
    fn identity(self, dt: DType) -> f64 {
        let int_bound = |hi: bool| -> f64 {
            match (dt, hi) {
                (DType::Bool, h) => f64::from(u8::from(h)),
                (_, true) if dt.is_signed() => ((1u64 << (dt.bits() - 1)) - 1) as f64,
                (_, true) => 2f64.powi(dt.bits() as i32) - 1.0,
                (_, false) if dt.is_signed() => -(2f64.powi(dt.bits() as i32 - 1)),
                (_, false) => 0.0,
            }
        };
        match self {
            Combine::Add => 0.0,
            Combine::Mul => 1.0,
            Combine::Max if dt.is_float() => f64::NEG_INFINITY,
            Combine::Min if dt.is_float() => f64::INFINITY,
            Combine::Max => int_bound(false),
            Combine::Min => int_bound(true),
        }
    }

    pub(crate) fn apply(self, b: &mut Body<'_>, acc: &str, x: &str, dt: DType) -> Res<String> {
        let e = elem(dt)?;
        if dt == DType::Bool {
            let op = match self {
                Combine::Max | Combine::Add => "ori",
                Combine::Min | Combine::Mul => "andi",
            };
            return Ok(b.op(format!("arith.{op} {acc}, {x} : i1")));
        }
        let fl = dt.is_float();
        Ok(match self {
            Combine::Add => b.op(format!(
                "arith.{} {acc}, {x} : {e}",
                if fl { "addf" } else { "addi" }
            )),
            Combine::Mul => b.op(format!(
                "arith.{} {acc}, {x} : {e}",
                if fl { "mulf" } else { "muli" }
            )),
            Combine::Max => max(b, acc, x, dt)?,
            Combine::Min => min(b, acc, x, dt)?,
        })
    }
}

/// Reduces `x` over `axes` (sorted, unique), dropping them from the shape.
/// `pre` maps each element (with extra broadcast operands `extra`, read
/// through maps that ignore the reduced axes) before combining.
pub(crate) fn reduce(
    b: &mut Builder,
    x: &Val,
    axes: &[usize],
    combine: Combine,
    extra: &[&Val],
    pre: impl FnOnce(&mut Body<'_>, &[String]) -> Res<String>,
) -> Res<Val> {
    let r = x.rank();
    let kept: Vec<usize> = (0..r).filter(|i| !axes.contains(i)).collect();
    let count: u64 = axes.iter().map(|&i| x.shape[i]).product();
    if let Some(limit) = b.split_reductions_above().filter(|&l| count > l.max(1)) {
        // More than `limit` elements per result (the GPU targets):
        // partial results `[kept..., G]` over chunks of `C = max(limit, sqrt(n))`
        // of the `n` reduced elements (row-major over `axes`), each an `scf.for`
        // from its chunk's first element to its last, so every chunk is one
        // thread's short loop; then [`reduce`] over the `G` partials. The
        // combination is associative (sums in floating point reassociate, within
        // the reductions' tolerance).
        let chunk = limit.max((count as f64).sqrt().ceil() as u64);
        let groups = count.div_ceil(chunk);
        let mut part_shape: Vec<u64> = kept.iter().map(|&i| x.shape[i]).collect();
        part_shape.push(groups);
        let dt = x.dtype;
        let e = elem(dt)?;
        let parts = b.tabulate(dt, &part_shape, |body, idx| {
            let g = &idx[kept.len()];
            let lo = body.op(format!(
                "affine.apply affine_map<(d0) -> (d0 * {chunk})>({g})"
            ));
            let hi = body.op(format!(
                "affine.min affine_map<(d0) -> (d0 * {chunk} + {chunk}, {count})>({g})"
            ));
            let init = body.num(combine.identity(dt), dt)?;
            let acc = body.for_loop(&lo, &hi, &[(init, e)], |body, k, carried| {
                // Element k of the reduced ones: its coordinate along each
                // reduced axis (the last fastest), the result's along the others.
                let mut at = vec![String::new(); r];
                for (j, &a) in kept.iter().enumerate() {
                    at[a] = idx[j].clone();
                }
                let mut inner = 1u64;
                for &a in axes.iter().rev() {
                    let ext = x.shape[a];
                    at[a] = body.op(format!(
                        "affine.apply affine_map<(d0) -> ((d0 floordiv {inner}) mod {ext})>({k})"
                    ));
                    inner *= ext;
                }
                let mut vals = vec![body.extract(x, &at)];
                for v in extra {
                    vals.push(body.extract(v, &idx[..kept.len()]));
                }
                let v = pre(body, &vals)?;
                Ok(vec![combine.apply(body, &carried[0], &v, dt)?])
            })?;
            Ok(acc[0].clone())
        })?;
        return reduce(b, &parts, &[kept.len()], combine, &[], partial);
    }
    let out_shape: Vec<u64> = kept.iter().map(|&i| x.shape[i]).collect();
    let init = b.filled(combine.identity(x.dtype), x.dtype, &out_shape)?;
    let kept_map: Vec<String> = kept.iter().map(|i| format!("d{i}")).collect();
    let mut ins = vec![Operand::of(x, identity_map(r))];
    for v in extra {
        ins.push(Operand::of(v, affine_map(r, &kept_map)));
    }
    let iters: Vec<Iter> = (0..r)
        .map(|i| {
            if axes.contains(&i) {
                Iter::Red
            } else {
                Iter::Par
            }
        })
        .collect();
    let dt = x.dtype;
    let n_in = ins.len();
    let res = b.generic(
        &iters,
        &ins,
        &[(init, affine_map(r, &kept_map))],
        |body, a| {
            let v = pre(body, &a[..n_in])?;
            Ok(vec![combine.apply(body, &a[n_in], &v, dt)?])
        },
    )?;
    Ok(res.into_iter().next().expect("one result"))
}

/// A partial result as it is (the second stage of a split [`reduce`]; a
/// function, not a closure, so that the recursion instantiates `reduce` once).
fn partial(_: &mut Body<'_>, a: &[String]) -> Res<String> {
    Ok(a[0].clone())
}

/// The map reading a reduced tensor (axes dropped) from the full space.
fn kept_operand(v: &Val, rank: usize, axes: &[usize]) -> Operand {
    let kept: Vec<String> = (0..rank)
        .filter(|i| !axes.contains(i))
        .map(|i| format!("d{i}"))
        .collect();
    Operand::of(v, affine_map(rank, &kept))
}

/// `nn.reduce_*`: axes from the constant second operand (all axes when
/// absent, unless `noop_with_empty_axes`).
pub(crate) fn reduce_op(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    use OpKind as K;
    let x = n.input(0)?;
    let (dt, out_shape) = n.out(0)?;
    let axes: Vec<usize> = match n.ins.get(1).and_then(Option::as_ref) {
        Some(_) => {
            let v =
                n.a.const_ints(1)
                    .ok_or("reduction axes must be a compile-time constant")?;
            let mut a = v
                .iter()
                .map(|&i| norm_axis(i, x.rank()).map_err(attr_err))
                .collect::<Res<Vec<_>>>()?;
            a.sort_unstable();
            a.dedup();
            a
        }
        None => Vec::new(),
    };
    let axes = if axes.is_empty() {
        if n.a.bool("noop_with_empty_axes").map_err(attr_err)? {
            return b.reshape(x, out_shape);
        }
        (0..x.rank()).collect()
    } else {
        axes
    };
    let count: u64 = axes.iter().map(|&i| x.shape[i]).product();
    // Sums (and products) of f16/bf16 are accumulated (and a mean divided) in f32: an f16
    // sum of 10^5 values overflows, and an f16 count above 65504 is inf.
    // Long f32 sums are accumulated in f64 (as `moments` does): one f32
    // accumulator over 10^6 squares was off by 2.4e-4.
    let out_dt = dt;
    let widened;
    let sum = matches!(
        n.node.op,
        K::ReduceSum
            | K::ReduceMean
            | K::ReduceLogSum
            | K::ReduceL1
            | K::ReduceL2
            | K::ReduceSumSquare
            | K::ReduceLogSumExp
    );
    // Products of f16/bf16 too: 2,397 bf16 roundings in a row moved a
    // product of values in [0.9, 1.1] by 17% (testdata/differential/
    // reduce-bf16-product-in-f32.kir).
    let prod = n.node.op == K::ReduceProd;
    let wide = match dt {
        DType::F16 | DType::BF16 if sum || prod => Some(DType::F32),
        DType::F32 if sum && count >= WIDE_SUM_FROM => Some(DType::F64),
        _ => None,
    };
    let (x, dt) = match wide {
        Some(w) => {
            widened = convert_to(b, x, w)?;
            (&widened, w)
        }
        None => (x, dt),
    };
    let e = elem(dt)?;
    let fl = dt.is_float();
    let r = match n.node.op {
        K::ReduceSum | K::ReduceMean | K::ReduceLogSum => {
            reduce(b, x, &axes, Combine::Add, &[], |_, a| Ok(a[0].clone()))?
        }
        K::ReduceProd => reduce(b, x, &axes, Combine::Mul, &[], |_, a| Ok(a[0].clone()))?,
        K::ReduceMax => reduce(b, x, &axes, Combine::Max, &[], |_, a| Ok(a[0].clone()))?,
        K::ReduceMin => reduce(b, x, &axes, Combine::Min, &[], |_, a| Ok(a[0].clone()))?,
        K::ReduceL1 => reduce(b, x, &axes, Combine::Add, &[], |body, a| {
            Ok(if fl {
                body.op(format!("math.absf {} : {e}", a[0]))
            } else if dt.is_signed() {
                body.op(format!("math.absi {} : {e}", a[0]))
            } else {
                a[0].clone()
            })
        })?,
        K::ReduceL2 | K::ReduceSumSquare => reduce(b, x, &axes, Combine::Add, &[], |body, a| {
            let op = if fl { "mulf" } else { "muli" };
            Ok(body.op(format!("arith.{op} {}, {} : {e}", a[0], a[0])))
        })?,
        K::ReduceLogSumExp => {
            let m = reduce(b, x, &axes, Combine::Max, &[], |_, a| Ok(a[0].clone()))?;
            let s = reduce(b, x, &axes, Combine::Add, &[&m], |body, a| {
                let d = body.op(format!("arith.subf {}, {} : {e}", a[0], a[1]));
                Ok(body.op(format!("math.exp {d} : {e}")))
            })?;
            let shape = s.shape.clone();
            b.map(&[&s, &m], dt, &shape, |body, a| {
                let l = body.op(format!("math.log {} : {e}", a[0]));
                // An all -inf slice gives m = -inf; adding it back keeps -inf.
                Ok(body.op(format!("arith.addf {l}, {} : {e}", a[1])))
            })?
        }
        other => return Err(format!("{} is not a reduction", other.name())),
    };
    let shape = r.shape.clone();
    let r = match n.node.op {
        K::ReduceMean => b.map(&[&r], dt, &shape, |body, a| {
            let c = body.num(count as f64, dt)?;
            let op = if fl {
                "divf"
            } else if dt.is_signed() {
                "divsi"
            } else {
                "divui"
            };
            Ok(body.op(format!("arith.{op} {}, {c} : {e}", a[0])))
        })?,
        K::ReduceL2 => b.map(&[&r], dt, &shape, |body, a| {
            Ok(body.op(format!("math.sqrt {} : {e}", a[0])))
        })?,
        K::ReduceLogSum => b.map(&[&r], dt, &shape, |body, a| {
            Ok(body.op(format!("math.log {} : {e}", a[0])))
        })?,
        _ => r,
    };
    let r = convert_to(b, &r, out_dt)?;
    b.reshape(&r, out_shape)
}

/// `nn.global_average_pool` / `nn.global_max_pool`: reduce all spatial dims.
pub(crate) fn global_pool(b: &mut Builder, n: &NodeIn<'_>, is_max: bool) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, out_shape) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!(
            "{} of dtype {dt} is not supported",
            n.node.op.name()
        ));
    }
    let axes: Vec<usize> = (2..x.rank()).collect();
    let count: u64 = x.shape[2..].iter().product();
    let e = elem(dt)?;
    let r = if is_max {
        reduce(b, x, &axes, Combine::Max, &[], |_, a| Ok(a[0].clone()))?
    } else {
        let s = reduce(b, x, &axes, Combine::Add, &[], |_, a| Ok(a[0].clone()))?;
        let shape = s.shape.clone();
        b.map(&[&s], dt, &shape, |body, a| {
            let c = body.float(count as f64, dt)?;
            Ok(body.op(format!("arith.divf {}, {c} : {e}", a[0])))
        })?
    };
    b.reshape(&r, out_shape)
}

/// `nn.softmax` / `nn.log_softmax` along one axis.
///
/// `f16`/`bf16` inputs are computed in f32 (so the sum accumulates wide)
/// with each softmax step rounded to the dtype, as the interpreter.
pub(crate) fn softmax(b: &mut Builder, n: &NodeIn<'_>, log: bool) -> Res<Val> {
    let x0 = n.input(0)?;
    let (dt0, out_shape0) = n.out(0)?;
    if !dt0.is_float() {
        return Err(format!("softmax of dtype {dt0} is not supported"));
    }
    let wide = stat_dtype(dt0);
    let xw;
    let (x, dt) = if wide == dt0 {
        (x0, dt0)
    } else {
        let shape = x0.shape.clone();
        xw = b.map(&[x0], wide, &shape, |body, a| {
            convert(body, &a[0], dt0, wide)
        })?;
        (&xw, wide)
    };
    let out_shape = &out_shape0.to_vec();
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, x.rank()).map_err(attr_err)?;
    let e = elem(dt)?;
    let r = x.rank();
    // Softmax rounds `x - max`, `exp` and the sum to the dtype, as the
    // interpreter and the ONNX reference do; log-softmax rounds once.
    let step = |body: &mut Body<'_>, v: &str| -> Res<String> {
        if log || dt == dt0 {
            return Ok(v.to_string());
        }
        let nv = convert(body, v, dt, dt0)?;
        convert(body, &nv, dt0, dt)
    };
    let m = reduce(b, x, &[axis], Combine::Max, &[], |_, a| Ok(a[0].clone()))?;
    let ex_init = b.empty(dt, &x.shape)?;
    let ex = b.generic(
        &vec![Iter::Par; r],
        &[
            Operand::of(x, identity_map(r)),
            kept_operand(&m, r, &[axis]),
        ],
        &[(ex_init, identity_map(r))],
        |body, a| {
            let d = body.op(format!("arith.subf {}, {} : {e}", a[0], a[1]));
            let d = step(body, &d)?;
            let ex = body.op(format!("math.exp {d} : {e}"));
            Ok(vec![step(body, &ex)?])
        },
    )?;
    let ex = ex.into_iter().next().expect("one result");
    let s = if dt0 == DType::BF16 && !log {
        // NumPy adds bf16 (an ml_dtypes type) sequentially, rounding every
        // partial sum: reduce the (already rounded) exponentials in bf16.
        let xs = x.shape.clone();
        let exn = b.map(&[&ex], dt0, &xs, |body, a| convert(body, &a[0], dt, dt0))?;
        let sn = reduce(b, &exn, &[axis], Combine::Add, &[], |_, a| Ok(a[0].clone()))?;
        let ss = sn.shape.clone();
        b.map(&[&sn], dt, &ss, |body, a| convert(body, &a[0], dt0, dt))?
    } else {
        reduce(b, &ex, &[axis], Combine::Add, &[], |_, a| Ok(a[0].clone()))?
    };
    let init = b.empty(dt, out_shape)?;
    let ins = if log {
        vec![
            Operand::of(x, identity_map(r)),
            kept_operand(&m, r, &[axis]),
            kept_operand(&s, r, &[axis]),
        ]
    } else {
        vec![
            Operand::of(&ex, identity_map(r)),
            kept_operand(&s, r, &[axis]),
        ]
    };
    let y = b.generic(
        &vec![Iter::Par; r],
        &ins,
        &[(init, identity_map(r))],
        |body, a| {
            Ok(vec![if log {
                let d = body.op(format!("arith.subf {}, {} : {e}", a[0], a[1]));
                let l = body.op(format!("math.log {} : {e}", a[2]));
                body.op(format!("arith.subf {d}, {l} : {e}"))
            } else {
                let sum = step(body, &a[1])?;
                body.op(format!("arith.divf {}, {sum} : {e}", a[0]))
            }])
        },
    )?;
    let y = y.into_iter().next().expect("one result");
    if dt == dt0 {
        return Ok(y);
    }
    b.map(&[&y], dt0, out_shape, |body, a| {
        convert(body, &a[0], dt, dt0)
    })
}

/// The dtype statistics are computed in: f32 at least.
fn stat_dtype(dt: DType) -> DType {
    if dt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// `x` converted to `to` (no op when it already has that dtype).
fn convert_to(b: &mut Builder, x: &Val, to: DType) -> Res<Val> {
    if x.dtype == to {
        return Ok(x.clone());
    }
    let (from, shape) = (x.dtype, x.shape.clone());
    b.map(&[x], to, &shape, |body, a| convert(body, &a[0], from, to))
}

/// Reductions at least this long compute f32 statistics in f64.
const WIDE_SUM_FROM: u64 = 1 << 14;

/// Two-pass statistics of `x` over `axes` (sorted), with the axes dropped:
/// the population mean (when `center`) and the mean of squared deviations
/// from it (from 0 without `center`: the mean square of RMS norm). The one
/// mean/variance helper of every normalization here.
fn moments(b: &mut Builder, x: &Val, axes: &[usize], center: bool) -> Res<(Option<Val>, Val)> {
    let dt = x.dtype;
    let e = elem(dt)?;
    let count: u64 = axes.iter().map(|&i| x.shape[i]).product();
    // A long f32 sum in one accumulator loses digits (a mean over 10^6
    // values was off by 2e-4): long ones are summed in f64.
    if dt == DType::F32 && count >= WIDE_SUM_FROM {
        let xw = convert_to(b, x, DType::F64)?;
        let (mean, var) = moments(b, &xw, axes, center)?;
        let mean = mean.map(|m| convert_to(b, &m, dt)).transpose()?;
        return Ok((mean, convert_to(b, &var, dt)?));
    }
    let divide = |b: &mut Builder, v: &Val| -> Res<Val> {
        let shape = v.shape.clone();
        b.map(&[v], dt, &shape, |body, a| {
            let c = body.float(count as f64, dt)?;
            Ok(body.op(format!("arith.divf {}, {c} : {e}", a[0])))
        })
    };
    let mean = if center {
        let sum = reduce(b, x, axes, Combine::Add, &[], |_, a| Ok(a[0].clone()))?;
        Some(divide(b, &sum)?)
    } else {
        None
    };
    let extra: Vec<&Val> = mean.iter().collect();
    let sq = reduce(b, x, axes, Combine::Add, &extra, |body, a| {
        let d = match a.get(1) {
            Some(m) => body.op(format!("arith.subf {}, {m} : {e}", a[0])),
            None => a[0].clone(),
        };
        Ok(body.op(format!("arith.mulf {d}, {d} : {e}")))
    })?;
    let var = divide(b, &sq)?;
    Ok((mean, var))
}

/// A parameter read inside a normalization: its operand (in the statistics
/// dtype) and map over the input's dims.
fn param(b: &mut Builder, p: &Val, sd: DType, map: String) -> Res<Operand> {
    let v = convert_to(b, p, sd)?;
    Ok(Operand::of(&v, map))
}

/// The shared normalization: statistics of `x` over `axes`, then one
/// `linalg.generic` over `x` whose body gets `(x, mean or None, var,
/// params)` in the statistics dtype and returns the element; the result is
/// rounded back to `x`'s dtype.
fn normalize(
    b: &mut Builder,
    x: &Val,
    axes: &[usize],
    center: bool,
    params: &[(&Val, String)],
    body: impl FnOnce(&mut Body<'_>, &str, Option<&str>, &str, &[String]) -> Res<String>,
) -> Res<(Val, Option<Val>, Val)> {
    let dt = x.dtype;
    if !dt.is_float() {
        return Err(format!("normalizing dtype {dt} is not supported"));
    }
    let sd = stat_dtype(dt);
    let xs = convert_to(b, x, sd)?;
    let (mean, var) = moments(b, &xs, axes, center)?;
    let r = x.rank();
    let mut ins = vec![Operand::of(&xs, identity_map(r))];
    if let Some(m) = &mean {
        ins.push(kept_operand(m, r, axes));
    }
    ins.push(kept_operand(&var, r, axes));
    for (p, map) in params {
        ins.push(param(b, p, sd, map.clone())?);
    }
    let init = b.empty(sd, &x.shape)?;
    let k = if center { 3 } else { 2 };
    let np = params.len();
    let y = b.generic(
        &vec![Iter::Par; r],
        &ins,
        &[(init, identity_map(r))],
        |bd, a| {
            let m = if center { Some(a[1].as_str()) } else { None };
            Ok(vec![body(bd, &a[0], m, &a[k - 1], &a[k..k + np])?])
        },
    )?;
    let y = y.into_iter().next().expect("one result");
    Ok((convert_to(b, &y, dt)?, mean, var))
}

/// `1 / sqrt(var + eps)` in the body.
fn rstd(b: &mut Body<'_>, var: &str, eps: f64, sd: DType) -> Res<String> {
    let e = elem(sd)?;
    let ep = b.float(eps, sd)?;
    let ve = b.op(format!("arith.addf {var}, {ep} : {e}"));
    Ok(b.op(format!("math.rsqrt {ve} : {e}")))
}

/// `nn.layer_norm` (and, with `rms`, `nn.rms_norm`): normalizes over dims
/// `axis..`, then scale (and bias); layer norm's optional results are the
/// mean and the inverse standard deviation.
pub(crate) fn layer_norm(b: &mut Builder, n: &NodeIn<'_>, rms: bool) -> Res<Vec<Val>> {
    let x = n.input(0)?;
    let (dt, _) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!(
            "{} of dtype {dt} is not supported",
            n.node.op.name()
        ));
    }
    let r = x.rank();
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, r).map_err(attr_err)?;
    let eps = n.a.float("epsilon").map_err(attr_err)?;
    let axes: Vec<usize> = (axis..r).collect();
    let sd = stat_dtype(dt);
    let e = elem(sd)?;
    let mut params: Vec<(&Val, String)> = Vec::new();
    for i in 1..if rms { 2 } else { 3 } {
        if let Some(p) = n.opt(i) {
            params.push((p, broadcast_map(&p.shape, &x.shape)));
        }
    }
    let has_scale = n.opt(1).is_some();
    let has_bias = !rms && n.opt(2).is_some();
    let (y, mean, var) = normalize(b, x, &axes, !rms, &params, |body, xv, m, var, p| {
        let inv = rstd(body, var, eps, sd)?;
        let d = match m {
            Some(m) => body.op(format!("arith.subf {xv}, {m} : {e}")),
            None => xv.to_string(),
        };
        let mut y = body.op(format!("arith.mulf {d}, {inv} : {e}"));
        let mut k = 0;
        if has_scale {
            y = body.op(format!("arith.mulf {y}, {} : {e}", p[k]));
            k += 1;
        }
        if has_bias {
            y = body.op(format!("arith.addf {y}, {} : {e}", p[k]));
        }
        Ok(y)
    })?;
    let mut res = vec![y];
    if n.outs.len() > 1 {
        let mean = mean.ok_or("nn.rms_norm has one result")?;
        let sshape = var.shape.clone();
        let inv = b.map(&[&var], sd, &sshape, |body, a| rstd(body, &a[0], eps, sd))?;
        for (i, v) in [mean, inv].iter().enumerate().take(n.outs.len() - 1) {
            let (odt, oshape) = n.out(i + 1)?;
            let v = convert_to(b, v, odt)?;
            res.push(b.reshape(&v, oshape)?);
        }
    }
    Ok(res)
}

/// `nn.instance_norm`: per (sample, channel) over the spatial dims, then the
/// per-channel scale and bias.
pub(crate) fn instance_norm(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, _) = n.out(0)?;
    if x.rank() < 2 {
        return Err(format!("nn.instance_norm of {} needs [N, C, ...]", x.ty()));
    }
    let eps = n.a.float("epsilon").map_err(attr_err)?;
    let (s, bias) = (n.input(1)?, n.input(2)?);
    let c = x.shape[1];
    if s.shape != [c] || bias.shape != [c] {
        return Err(format!("scale and bias must have shape [{c}]"));
    }
    let r = x.rank();
    let axes: Vec<usize> = (2..r).collect();
    let sd = stat_dtype(dt);
    let e = elem(sd)?;
    let ch = affine_map(r, &["d1".to_string()]);
    let params = [(s, ch.clone()), (bias, ch)];
    let (y, _, _) = normalize(b, x, &axes, true, &params, |body, xv, m, var, p| {
        let inv = rstd(body, var, eps, sd)?;
        let d = body.op(format!("arith.subf {xv}, {} : {e}", m.unwrap_or(xv)));
        let nrm = body.op(format!("arith.mulf {d}, {inv} : {e}"));
        let sc = body.op(format!("arith.mulf {nrm}, {} : {e}", p[0]));
        Ok(body.op(format!("arith.addf {sc}, {} : {e}", p[1])))
    })?;
    Ok(y)
}

/// `nn.mean_variance_normalization`: `(x - mean) / (sqrt(var) + 1e-9)` over
/// `axes`, as the ONNX reference computes it.
pub(crate) fn mvn(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, _) = n.out(0)?;
    let r = x.rank();
    let raw = n.a.ints("axes").map_err(attr_err)?.unwrap_or_default();
    let mut axes: Vec<usize> = raw
        .iter()
        .map(|&a| norm_axis(a, r).map_err(attr_err))
        .collect::<Res<_>>()?;
    axes.sort_unstable();
    axes.dedup();
    let sd = stat_dtype(dt);
    let e = elem(sd)?;
    let (y, _, _) = normalize(b, x, &axes, true, &[], |body, xv, m, var, _| {
        let d = body.op(format!("arith.subf {xv}, {} : {e}", m.unwrap_or(xv)));
        let sdv = body.op(format!("math.sqrt {var} : {e}"));
        let tiny = body.float(1e-9, sd)?;
        let den = body.op(format!("arith.addf {sdv}, {tiny} : {e}"));
        Ok(body.op(format!("arith.divf {d}, {den} : {e}")))
    })?;
    Ok(y)
}

/// `nn.batch_norm` in inference mode: per-channel (dim 1) affine map with
/// the running statistics.
pub(crate) fn batch_norm(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, out_shape) = n.out(0)?;
    if !dt.is_float() || x.rank() < 2 {
        return Err(format!("nn.batch_norm of {} is not supported", x.ty()));
    }
    let eps = n.a.float("epsilon").map_err(attr_err)?;
    let r = x.rank();
    let mut ins = vec![Operand::of(x, identity_map(r))];
    for i in 1..5 {
        let p = n.input(i)?;
        if p.shape != [x.shape[1]] {
            return Err(format!("operand #{i} must have shape [{}]", x.shape[1]));
        }
        ins.push(Operand::of(p, affine_map(r, &["d1".to_string()])));
    }
    let e = elem(dt)?;
    let init = b.empty(dt, out_shape)?;
    let y = b.generic(
        &vec![Iter::Par; r],
        &ins,
        &[(init, identity_map(r))],
        |body, a| {
            let ep = body.float(eps, dt)?;
            let ve = body.op(format!("arith.addf {}, {ep} : {e}", a[4]));
            let rs = body.op(format!("math.rsqrt {ve} : {e}"));
            let d = body.op(format!("arith.subf {}, {} : {e}", a[0], a[3]));
            let nrm = body.op(format!("arith.mulf {d}, {rs} : {e}"));
            let sc = body.op(format!("arith.mulf {nrm}, {} : {e}", a[1]));
            Ok(vec![body.op(format!("arith.addf {sc}, {} : {e}", a[2]))])
        },
    )?;
    Ok(y.into_iter().next().expect("one result"))
}

/// `|x|^p`, exact for p = 1 and 2.
fn abs_pow(b: &mut Body<'_>, x: &str, p: i64, dt: DType) -> Res<String> {
    let e = elem(dt)?;
    Ok(match p {
        1 => b.op(format!("math.absf {x} : {e}")),
        2 => b.op(format!("arith.mulf {x}, {x} : {e}")),
        _ => {
            let a = b.op(format!("math.absf {x} : {e}"));
            let pc = b.float(p as f64, dt)?;
            b.op(format!("math.powf {a}, {pc} : {e}"))
        }
    })
}

/// `s^(1/p)`, exact for p = 1 and a square root for p = 2.
fn root(b: &mut Body<'_>, s: &str, p: i64, dt: DType) -> Res<String> {
    let e = elem(dt)?;
    Ok(match p {
        1 => s.to_string(),
        2 => b.op(format!("math.sqrt {s} : {e}")),
        _ => {
            let inv = b.float(1.0 / p as f64, dt)?;
            b.op(format!("math.powf {s}, {inv} : {e}"))
        }
    })
}

/// Runs `f` on `x` widened to f32 when it is f16 or bf16, and rounds the
/// result once back to `x`'s dtype.
fn widened(b: &mut Builder, x: &Val, f: impl FnOnce(&mut Builder, &Val) -> Res<Val>) -> Res<Val> {
    let dt = x.dtype;
    if !matches!(dt, DType::F16 | DType::BF16) {
        return f(b, x);
    }
    let shape = x.shape.clone();
    let w = b.map(&[x], DType::F32, &shape, |body, a| {
        convert(body, &a[0], dt, DType::F32)
    })?;
    let r = f(b, &w)?;
    let shape = r.shape.clone();
    b.map(&[&r], dt, &shape, |body, a| {
        convert(body, &a[0], DType::F32, dt)
    })
}

/// `nn.global_lp_pool`: `(sum |x|^p)^(1/p)` over all spatial dims.
pub(crate) fn global_lp_pool(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, out_shape) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!("nn.global_lp_pool of dtype {dt} is not supported"));
    }
    let p = n.a.int("p").map_err(attr_err)?;
    if p <= 0 {
        return Err(format!("p must be positive, got {p}"));
    }
    let axes: Vec<usize> = (2..x.rank()).collect();
    let r = widened(b, x, |b, x| {
        let cdt = x.dtype;
        let s = reduce(b, x, &axes, Combine::Add, &[], |body, a| {
            abs_pow(body, &a[0], p, cdt)
        })?;
        let shape = s.shape.clone();
        b.map(&[&s], cdt, &shape, |body, a| root(body, &a[0], p, cdt))
    })?;
    b.reshape(&r, out_shape)
}

/// `nn.lp_normalization`: `x / ||x||_p` along one axis, 0 where the norm
/// is 0 (as the interpreter and the ONNX reference).
pub(crate) fn lp_normalization(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, _) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!(
            "nn.lp_normalization of dtype {dt} is not supported"
        ));
    }
    let p = n.a.int("p").map_err(attr_err)?;
    if p != 1 && p != 2 {
        return Err(format!("p must be 1 or 2, got {p}"));
    }
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, x.rank()).map_err(attr_err)?;
    widened(b, x, |b, x| {
        let cdt = x.dtype;
        let e = elem(cdt)?;
        let r = x.rank();
        let s = reduce(b, x, &[axis], Combine::Add, &[], |body, a| {
            abs_pow(body, &a[0], p, cdt)
        })?;
        let init = b.empty(cdt, &x.shape)?;
        let y = b.generic(
            &vec![Iter::Par; r],
            &[
                Operand::of(x, identity_map(r)),
                kept_operand(&s, r, &[axis]),
            ],
            &[(init, identity_map(r))],
            |body, a| {
                let norm = root(body, &a[1], p, cdt)?;
                let q = body.op(format!("arith.divf {}, {norm} : {e}", a[0]));
                let z = body.float(0.0, cdt)?;
                let is0 = body.op(format!("arith.cmpf oeq, {norm}, {z} : {e}"));
                Ok(vec![body.select(&is0, &z, &q, e)])
            },
        )?;
        Ok(y.into_iter().next().expect("one result"))
    })
}
