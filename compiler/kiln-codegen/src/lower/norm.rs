//! Reductions (`nn.reduce_*`, global pools) and the normalizations built on
//! them: `nn.softmax` / `nn.log_softmax` (max-subtracted, so `exp` never
//! overflows), `nn.layer_norm` and inference-mode `nn.batch_norm`.

use super::ctx::{affine_map, broadcast_map, elem, identity_map, Body, Builder, Iter, Operand};
use super::ctx::{Res, Val};
use super::elementwise::{max, min};
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

    fn apply(self, b: &mut Body<'_>, acc: &str, x: &str, dt: DType) -> Res<String> {
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
pub(crate) fn softmax(b: &mut Builder, n: &NodeIn<'_>, log: bool) -> Res<Val> {
    let x = n.input(0)?;
    let (dt, out_shape) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!("softmax of dtype {dt} is not supported"));
    }
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, x.rank()).map_err(attr_err)?;
    let e = elem(dt)?;
    let r = x.rank();
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
            Ok(vec![body.op(format!("math.exp {d} : {e}"))])
        },
    )?;
    let ex = ex.into_iter().next().expect("one result");
    let s = reduce(b, &ex, &[axis], Combine::Add, &[], |_, a| Ok(a[0].clone()))?;
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
                body.op(format!("arith.divf {}, {} : {e}", a[0], a[1]))
            }])
        },
    )?;
    Ok(y.into_iter().next().expect("one result"))
}

/// `nn.layer_norm`: normalizes over dims `axis..`, then scale and bias; the
/// optional results are the mean and the inverse standard deviation.
pub(crate) fn layer_norm(b: &mut Builder, n: &NodeIn<'_>) -> Res<Vec<Val>> {
    let x = n.input(0)?;
    let scale = n.input(1)?;
    let (dt, out_shape) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!("nn.layer_norm of dtype {dt} is not supported"));
    }
    let r = x.rank();
    let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, r).map_err(attr_err)?;
    let eps = n.a.float("epsilon").map_err(attr_err)?;
    let axes: Vec<usize> = (axis..r).collect();
    let count: u64 = x.shape[axis..].iter().product();
    let e = elem(dt)?;
    let sum = reduce(b, x, &axes, Combine::Add, &[], |_, a| Ok(a[0].clone()))?;
    let sshape = sum.shape.clone();
    let mean = b.map(&[&sum], dt, &sshape, |body, a| {
        let c = body.float(count as f64, dt)?;
        Ok(body.op(format!("arith.divf {}, {c} : {e}", a[0])))
    })?;
    let sq = reduce(b, x, &axes, Combine::Add, &[&mean], |body, a| {
        let d = body.op(format!("arith.subf {}, {} : {e}", a[0], a[1]));
        Ok(body.op(format!("arith.mulf {d}, {d} : {e}")))
    })?;
    let rstd = b.map(&[&sq], dt, &sshape, |body, a| {
        let c = body.float(count as f64, dt)?;
        let ep = body.float(eps, dt)?;
        let var = body.op(format!("arith.divf {}, {c} : {e}", a[0]));
        let ve = body.op(format!("arith.addf {var}, {ep} : {e}"));
        Ok(body.op(format!("math.rsqrt {ve} : {e}")))
    })?;
    let mut ins = vec![
        Operand::of(x, identity_map(r)),
        kept_operand(&mean, r, &axes),
        kept_operand(&rstd, r, &axes),
        Operand::of(scale, broadcast_map(&scale.shape, &x.shape)),
    ];
    let bias = n.opt(2);
    if let Some(bias) = bias {
        ins.push(Operand::of(bias, broadcast_map(&bias.shape, &x.shape)));
    }
    let init = b.empty(dt, out_shape)?;
    let y = b.generic(
        &vec![Iter::Par; r],
        &ins,
        &[(init, identity_map(r))],
        |body, a| {
            let d = body.op(format!("arith.subf {}, {} : {e}", a[0], a[1]));
            let nrm = body.op(format!("arith.mulf {d}, {} : {e}", a[2]));
            let mut y = body.op(format!("arith.mulf {nrm}, {} : {e}", a[3]));
            if bias.is_some() {
                y = body.op(format!("arith.addf {y}, {} : {e}", a[4]));
            }
            Ok(vec![y])
        },
    )?;
    let mut res = vec![y.into_iter().next().expect("one result")];
    for (i, v) in [mean, rstd].iter().enumerate().take(n.outs.len() - 1) {
        let (odt, oshape) = n.out(i + 1)?;
        if odt != dt {
            return Err("layer_norm statistics in another dtype are not supported".into());
        }
        res.push(b.reshape(v, oshape)?);
    }
    Ok(res)
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
