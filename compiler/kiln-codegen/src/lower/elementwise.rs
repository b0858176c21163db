//! Elementwise ops: one broadcasting `linalg.generic` emitter ([`emit`]) and
//! one table ([`scalar`]) mapping each op to its scalar body in `arith` and
//! `math`. `nn.cast` has its own conversion table ([`convert`]).
//!
//! Math functions: `exp`, `log`, `sqrt`, `sin`, `cos`, `floor`, `ceil`,
//! `roundeven`, `powf`, `absf` become LLVM intrinsics; `erf`, `tanh`, `tan`,
//! `asin`, `acos`, `atan`, `sinh`, `cosh` become libm calls.

use super::ctx::{elem, Body, Builder, Res, Val};
use super::storage;
use super::{attr_err, NodeIn};
use kiln_ir::codec::{CastMode, FloatFormat};
use kiln_ir::ops::{GeluApprox, ShiftDirection};
use kiln_ir::{DType, OpKind};

/// Lowers any elementwise op of the table with NumPy broadcasting.
pub(crate) fn emit(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (out_dt, out_shape) = n.out(0)?;
    let ins: Vec<&Val> = n.ins.iter().flatten().collect();
    if ins.is_empty() {
        return Err("no operands".into());
    }
    let in_dts: Vec<DType> = ins.iter().map(|v| v.dtype).collect();
    let present: Vec<bool> = n.ins.iter().map(Option::is_some).collect();
    b.map(&ins, out_dt, out_shape, |body, args| {
        scalar(n, body, &args[..ins.len()], &in_dts, &present, out_dt)
    })
}

/// Float functions whose lowering takes several rounding steps.
fn composite_math(op: OpKind) -> bool {
    use OpKind as K;
    matches!(
        op,
        K::Sigmoid
            | K::Celu
            | K::Elu
            | K::Selu
            | K::HardSigmoid
            | K::HardSwish
            | K::Softplus
            | K::Softsign
            | K::Mish
            | K::Swish
            | K::Gelu
            | K::Tan
            | K::Sinh
            | K::Cosh
            | K::Asinh
            | K::Acosh
            | K::Atanh
    )
}

/// The scalar body of an elementwise op: arguments `x` (one per present
/// operand, with dtypes `dts`) to one value of `out`.
fn scalar(
    n: &NodeIn<'_>,
    b: &mut Body<'_>,
    x: &[String],
    dts: &[DType],
    present: &[bool],
    out: DType,
) -> Res<String> {
    use OpKind as K;
    let dt = dts[0];
    // Half precision: functions built from several steps compute in f32
    // and round once, as the interpreter rounds each op's result once;
    // rounding every step in f16/bf16 drifts by ulps from the ONNX data.
    // (Single IEEE operations round the same either way.)
    if matches!(dt, DType::F16 | DType::BF16)
        && out == dt
        && dts.iter().all(|&d| d == dt)
        && composite_math(n.node.op)
    {
        let wide = x
            .iter()
            .map(|v| convert(b, v, dt, DType::F32))
            .collect::<Res<Vec<_>>>()?;
        let r = scalar(
            n,
            b,
            &wide,
            &vec![DType::F32; dts.len()],
            present,
            DType::F32,
        )?;
        return convert(b, &r, DType::F32, dt);
    }
    let e = elem(dt)?;
    let fl = dt.is_float();
    let signed = dt.is_signed();
    let float_only = |what: &str| -> Res<()> {
        if fl {
            Ok(())
        } else {
            Err(format!("{what} of dtype {dt} is not supported"))
        }
    };
    let f = |name: &str| -> Res<f64> { n.a.float(name).map_err(attr_err) };
    // Unary float math through one `math.*` op.
    let math1 = |b: &mut Body<'_>, op: &str| -> Res<String> {
        float_only(op)?;
        Ok(b.op(format!("math.{op} {} : {e}", x[0])))
    };
    Ok(match n.node.op {
        K::Abs if fl => b.op(format!("math.absf {} : {e}", x[0])),
        K::Abs => {
            if signed {
                b.op(format!("math.absi {} : {e}", x[0]))
            } else {
                x[0].clone()
            }
        }
        K::Acos => math1(b, "acos")?,
        K::Asin => math1(b, "asin")?,
        K::Atan => math1(b, "atan")?,
        K::Ceil => math1(b, "ceil")?,
        K::Cos => math1(b, "cos")?,
        K::Cosh => math1(b, "cosh")?,
        K::Erf => math1(b, "erf")?,
        K::Exp => math1(b, "exp")?,
        K::Floor => math1(b, "floor")?,
        K::Log => math1(b, "log")?,
        K::Round => math1(b, "roundeven")?,
        K::Sin => math1(b, "sin")?,
        K::Sinh => math1(b, "sinh")?,
        K::Sqrt => math1(b, "sqrt")?,
        K::Tan => math1(b, "tan")?,
        K::Tanh => math1(b, "tanh")?,
        K::Neg if fl => b.op(format!("arith.negf {} : {e}", x[0])),
        K::Neg => {
            let z = b.int(0, dt)?;
            b.op(format!("arith.subi {z}, {} : {e}", x[0]))
        }
        K::Not => {
            let t = b.int(1, DType::Bool)?;
            b.op(format!("arith.xori {}, {t} : i1", x[0]))
        }
        K::Reciprocal => {
            float_only("nn.reciprocal")?;
            let one = b.float(1.0, dt)?;
            b.op(format!("arith.divf {one}, {} : {e}", x[0]))
        }
        K::Relu => {
            let z = b.num(0.0, dt)?;
            max(b, &x[0], &z, dt)?
        }
        K::LeakyRelu => {
            float_only("nn.leaky_relu")?;
            let alpha = b.float(f("alpha")?, dt)?;
            let ax = b.op(format!("arith.mulf {alpha}, {} : {e}", x[0]));
            let z = b.float(0.0, dt)?;
            let c = b.op(format!("arith.cmpf oge, {}, {z} : {e}", x[0]));
            b.op(format!("arith.select {c}, {}, {ax} : {e}", x[0]))
        }
        K::ThresholdedRelu => {
            float_only("nn.thresholded_relu")?;
            let alpha = b.float(f("alpha")?, dt)?;
            let z = b.float(0.0, dt)?;
            let c = b.op(format!("arith.cmpf ogt, {}, {alpha} : {e}", x[0]));
            b.op(format!("arith.select {c}, {}, {z} : {e}", x[0]))
        }
        K::Elu | K::Selu => {
            float_only(n.node.op.name())?;
            let alpha = b.float(f("alpha")?, dt)?;
            let one = b.float(1.0, dt)?;
            let z = b.float(0.0, dt)?;
            let ex = b.op(format!("math.exp {} : {e}", x[0]));
            let em1 = b.op(format!("arith.subf {ex}, {one} : {e}"));
            let neg = b.op(format!("arith.mulf {alpha}, {em1} : {e}"));
            let (pred, pos) = if n.node.op == K::Elu {
                ("oge", x[0].clone())
            } else {
                ("ogt", x[0].clone())
            };
            let c = b.op(format!("arith.cmpf {pred}, {}, {z} : {e}", x[0]));
            let r = b.op(format!("arith.select {c}, {pos}, {neg} : {e}"));
            if n.node.op == K::Selu {
                let gamma = b.float(f("gamma")?, dt)?;
                b.op(format!("arith.mulf {gamma}, {r} : {e}"))
            } else {
                r
            }
        }
        K::Sigmoid | K::Swish => {
            float_only(n.node.op.name())?;
            let one = b.float(1.0, dt)?;
            // Swish: x * sigmoid(alpha * x).
            let arg = if n.node.op == K::Swish {
                let a = b.float(f("alpha")?, dt)?;
                b.op(format!("arith.mulf {a}, {} : {e}", x[0]))
            } else {
                x[0].clone()
            };
            let nx = b.op(format!("arith.negf {arg} : {e}"));
            let ex = b.op(format!("math.exp {nx} : {e}"));
            let d = b.op(format!("arith.addf {one}, {ex} : {e}"));
            let s = b.op(format!("arith.divf {one}, {d} : {e}"));
            if n.node.op == K::Swish {
                b.op(format!("arith.mulf {}, {s} : {e}", x[0]))
            } else {
                s
            }
        }
        K::HardSigmoid | K::HardSwish => {
            float_only(n.node.op.name())?;
            let (alpha, beta) = if n.node.op == K::HardSigmoid {
                (f("alpha")?, f("beta")?)
            } else {
                (1.0 / 6.0, 0.5)
            };
            let a = b.float(alpha, dt)?;
            let bb = b.float(beta, dt)?;
            let z = b.float(0.0, dt)?;
            let one = b.float(1.0, dt)?;
            let ax = b.op(format!("arith.mulf {a}, {} : {e}", x[0]));
            let l = b.op(format!("arith.addf {ax}, {bb} : {e}"));
            let lo = b.op(format!("arith.maximumf {l}, {z} : {e}"));
            let hs = b.op(format!("arith.minimumf {lo}, {one} : {e}"));
            if n.node.op == K::HardSwish {
                b.op(format!("arith.mulf {}, {hs} : {e}", x[0]))
            } else {
                hs
            }
        }
        K::Softplus | K::Mish => {
            float_only(n.node.op.name())?;
            let sp = softplus(b, &x[0], dt)?;
            if n.node.op == K::Mish {
                let t = b.op(format!("math.tanh {sp} : {e}"));
                b.op(format!("arith.mulf {}, {t} : {e}", x[0]))
            } else {
                sp
            }
        }
        K::Softsign => {
            float_only("nn.softsign")?;
            let one = b.float(1.0, dt)?;
            let a = b.op(format!("math.absf {} : {e}", x[0]));
            let d = b.op(format!("arith.addf {one}, {a} : {e}"));
            b.op(format!("arith.divf {}, {d} : {e}", x[0]))
        }
        K::Sign => {
            let z = b.num(0.0, dt)?;
            let one = b.num(1.0, dt)?;
            let m1 = b.num(-1.0, dt)?;
            let (gt, lt) = if fl {
                (
                    b.op(format!("arith.cmpf ogt, {}, {z} : {e}", x[0])),
                    b.op(format!("arith.cmpf olt, {}, {z} : {e}", x[0])),
                )
            } else {
                let (g, l) = if signed {
                    ("sgt", "slt")
                } else {
                    ("ugt", "ult")
                };
                (
                    b.op(format!("arith.cmpi {g}, {}, {z} : {e}", x[0])),
                    b.op(format!("arith.cmpi {l}, {}, {z} : {e}", x[0])),
                )
            };
            let neg = b.op(format!("arith.select {lt}, {m1}, {z} : {e}"));
            let r = b.op(format!("arith.select {gt}, {one}, {neg} : {e}"));
            if fl {
                // NaN stays NaN.
                let nan = b.op(format!("arith.cmpf uno, {}, {} : {e}", x[0], x[0]));
                b.op(format!("arith.select {nan}, {}, {r} : {e}", x[0]))
            } else {
                r
            }
        }
        K::Gelu => {
            float_only("nn.gelu")?;
            let approx: GeluApprox = n.a.enum_attr("approximate").map_err(attr_err)?;
            let half = b.float(0.5, dt)?;
            let one = b.float(1.0, dt)?;
            let inner = if approx == GeluApprox::Tanh {
                let k = b.float((2.0 / std::f64::consts::PI).sqrt(), dt)?;
                let c = b.float(0.044_715, dt)?;
                let x2 = b.op(format!("arith.mulf {}, {} : {e}", x[0], x[0]));
                let x3 = b.op(format!("arith.mulf {x2}, {} : {e}", x[0]));
                let cx3 = b.op(format!("arith.mulf {c}, {x3} : {e}"));
                let s = b.op(format!("arith.addf {}, {cx3} : {e}", x[0]));
                let ks = b.op(format!("arith.mulf {k}, {s} : {e}"));
                b.op(format!("math.tanh {ks} : {e}"))
            } else {
                let r = b.float(std::f64::consts::FRAC_1_SQRT_2, dt)?;
                let s = b.op(format!("arith.mulf {}, {r} : {e}", x[0]));
                b.op(format!("math.erf {s} : {e}"))
            };
            let p = b.op(format!("arith.addf {one}, {inner} : {e}"));
            let hx = b.op(format!("arith.mulf {half}, {} : {e}", x[0]));
            b.op(format!("arith.mulf {hx}, {p} : {e}"))
        }
        K::IsNan => b.op(format!("arith.cmpf uno, {}, {} : {e}", x[0], x[0])),
        K::IsInf => {
            let neg = n.a.bool("detect_negative").map_err(attr_err)?;
            let pos = n.a.bool("detect_positive").map_err(attr_err)?;
            let pinf = b.float(f64::INFINITY, dt)?;
            let ninf = b.float(f64::NEG_INFINITY, dt)?;
            let p = b.op(format!("arith.cmpf oeq, {}, {pinf} : {e}", x[0]));
            let m = b.op(format!("arith.cmpf oeq, {}, {ninf} : {e}", x[0]));
            match (pos, neg) {
                (true, true) => b.op(format!("arith.ori {p}, {m} : i1")),
                (true, false) => p,
                (false, true) => m,
                (false, false) => b.int(0, DType::Bool)?,
            }
        }
        K::Clip => {
            // Bounds are optional operands: `x` holds only present ones.
            let mut it = x.iter().skip(1);
            let lo = if present.get(1).copied().unwrap_or(false) {
                it.next()
            } else {
                None
            };
            let hi = if present.get(2).copied().unwrap_or(false) {
                it.next()
            } else {
                None
            };
            let mut r = x[0].clone();
            if let Some(lo) = lo {
                r = max(b, &r, lo, dt)?;
            }
            if let Some(hi) = hi {
                r = min(b, &r, hi, dt)?;
            }
            r
        }
        K::Add => arith2(b, "addf", "addi", "addi", x, dt)?,
        K::Sub => arith2(b, "subf", "subi", "subi", x, dt)?,
        K::Mul => arith2(b, "mulf", "muli", "muli", x, dt)?,
        K::Div => arith2(b, "divf", "divsi", "divui", x, dt)?,
        K::Sum | K::Mean => {
            let mut acc = x[0].clone();
            for v in &x[1..] {
                acc = arith2(b, "addf", "addi", "addi", &[acc, v.clone()], dt)?;
            }
            if n.node.op == K::Mean && x.len() > 1 {
                let c = b.num(x.len() as f64, dt)?;
                acc = arith2(b, "divf", "divsi", "divui", &[acc, c], dt)?;
            }
            acc
        }
        K::Max | K::Min => {
            let mut acc = x[0].clone();
            for v in &x[1..] {
                acc = if n.node.op == K::Max {
                    max(b, &acc, v, dt)?
                } else {
                    min(b, &acc, v, dt)?
                };
            }
            acc
        }
        K::Pow if fl => {
            let ed = dts[1];
            let ex = if ed == dt {
                x[1].clone()
            } else {
                convert(b, &x[1], ed, dt)?
            };
            b.op(format!("math.powf {}, {ex} : {e}", x[0]))
        }
        K::Pow if dts[1].is_float() => int_pow_float(b, &x[0], &x[1], dt, dts[1])?,
        K::Pow => int_pow(b, &x[0], &x[1], dt, dts[1])?,
        K::Mod => {
            let fmod = n.a.bool("fmod").map_err(attr_err)?;
            if fl {
                let r = b.op(format!("arith.remf {}, {} : {e}", x[0], x[1]));
                if fmod {
                    r
                } else {
                    float_mod(b, &r, &x[1], dt)?
                }
            } else if !signed {
                b.op(format!("arith.remui {}, {} : {e}", x[0], x[1]))
            } else {
                let r = b.op(format!("arith.remsi {}, {} : {e}", x[0], x[1]));
                if fmod {
                    r
                } else {
                    // Python-style: the result takes the divisor's sign.
                    let z = b.int(0, dt)?;
                    let nz = b.op(format!("arith.cmpi ne, {r}, {z} : {e}"));
                    let rn = b.op(format!("arith.cmpi slt, {r}, {z} : {e}"));
                    let dn = b.op(format!("arith.cmpi slt, {}, {z} : {e}", x[1]));
                    let diff = b.op(format!("arith.xori {rn}, {dn} : i1"));
                    let fix = b.op(format!("arith.andi {nz}, {diff} : i1"));
                    let adj = b.op(format!("arith.addi {r}, {} : {e}", x[1]));
                    b.op(format!("arith.select {fix}, {adj}, {r} : {e}"))
                }
            }
        }
        K::BitShift => {
            let left =
                n.a.enum_attr::<ShiftDirection>("direction")
                    .map_err(attr_err)?
                    == ShiftDirection::Left;
            bit_shift(b, &x[0], &x[1], dt, left)?
        }
        K::And => b.op(format!("arith.andi {}, {} : i1", x[0], x[1])),
        K::Or => b.op(format!("arith.ori {}, {} : i1", x[0], x[1])),
        K::Xor => b.op(format!("arith.xori {}, {} : i1", x[0], x[1])),
        K::Equal => cmp(b, "oeq", "eq", "eq", x, dt)?,
        K::Greater => cmp(b, "ogt", "sgt", "ugt", x, dt)?,
        K::GreaterOrEqual => cmp(b, "oge", "sge", "uge", x, dt)?,
        K::Less => cmp(b, "olt", "slt", "ult", x, dt)?,
        K::LessOrEqual => cmp(b, "ole", "sle", "ule", x, dt)?,
        K::Where => {
            let oe = elem(out)?;
            b.op(format!("arith.select {}, {}, {} : {oe}", x[0], x[1], x[2]))
        }
        K::PRelu => {
            let z = b.num(0.0, dt)?;
            let sx = arith2(b, "mulf", "muli", "muli", &[x[1].clone(), x[0].clone()], dt)?;
            let c = cmp(b, "olt", "slt", "ult", &[x[0].clone(), z], dt)?;
            b.op(format!("arith.select {c}, {sx}, {} : {e}", x[0]))
        }
        K::Acosh => math1(b, "acosh")?,
        K::Asinh => math1(b, "asinh")?,
        K::Atanh => math1(b, "atanh")?,
        K::Celu => {
            float_only("nn.celu")?;
            celu(b, &x[0], f("alpha")?, dt)?
        }
        K::Shrink => shrink(b, &x[0], f("bias")?, f("lambd")?, dt)?,
        K::BitwiseNot => {
            let ones = b.int(-1, dt)?;
            b.op(format!("arith.xori {}, {ones} : {e}", x[0]))
        }
        K::BitwiseAnd => b.op(format!("arith.andi {}, {} : {e}", x[0], x[1])),
        K::BitwiseOr => b.op(format!("arith.ori {}, {} : {e}", x[0], x[1])),
        K::BitwiseXor => b.op(format!("arith.xori {}, {} : {e}", x[0], x[1])),
        other => return Err(format!("{} has no elementwise body", other.name())),
    })
}

/// `nn.bit_shift` (ONNX BitShift, as the interpreter): a shift amount
/// outside `0..bits` gives 0, or -1 when a negative signed value is shifted
/// right; right shifts of signed values are arithmetic, left shifts shift
/// the two's-complement bits. The amount is clamped into range before the
/// shift, since `arith` shifts by `bits` or more are poison.
fn bit_shift(b: &mut Body<'_>, x: &str, s: &str, dt: DType, left: bool) -> Res<String> {
    let e = elem(dt)?;
    let bits = b.int(i64::from(dt.bits()), dt)?;
    let z = b.int(0, dt)?;
    // Unsigned compare: a negative signed amount reads as a huge one.
    let ok = b.op(format!("arith.cmpi ult, {s}, {bits} : {e}"));
    let amt = b.select(&ok, s, &z, e);
    let op = if left {
        "shli"
    } else if dt.is_signed() {
        "shrsi"
    } else {
        "shrui"
    };
    let shifted = b.op(format!("arith.{op} {x}, {amt} : {e}"));
    let out_of_range = if !left && dt.is_signed() {
        let m1 = b.int(-1, dt)?;
        let neg = b.op(format!("arith.cmpi slt, {x}, {z} : {e}"));
        b.select(&neg, &m1, &z, e)
    } else {
        z
    };
    Ok(b.select(&ok, &shifted, &out_of_range, e))
}

/// NumPy's float `mod` from `r = fmod(x, y)` (ONNX Mod with fmod = 0, as
/// the interpreter): a NaN `r` (from `y = 0`, infinite `x` or a NaN operand)
/// stays; a zero `r` takes the divisor's sign; a nonzero `r` whose sign
/// differs from the divisor's becomes `r + y`.
fn float_mod(b: &mut Body<'_>, r: &str, y: &str, dt: DType) -> Res<String> {
    let e = elem(dt)?;
    let z = b.float(0.0, dt)?;
    let signed_zero = b.op(format!("math.copysign {z}, {y} : {e}"));
    let is_zero = b.op(format!("arith.cmpf oeq, {r}, {z} : {e}"));
    let rn = b.op(format!("arith.cmpf olt, {r}, {z} : {e}"));
    let yn = b.op(format!("arith.cmpf olt, {y}, {z} : {e}"));
    let differ = b.op(format!("arith.xori {rn}, {yn} : i1"));
    let adj = b.op(format!("arith.addf {r}, {y} : {e}"));
    let fixed = b.select(&differ, &adj, r, e);
    // `r` is NaN exactly when no branch applies: `fixed` is then `r` too
    // (both compares are false).
    Ok(b.select(&is_zero, &signed_zero, &fixed, e))
}

/// `nn.pow` of an integer base and an integer exponent (dtype `ed`), as the
/// interpreter: a non-negative exponent multiplies exactly, wrapping in
/// the base's dtype (square-and-multiply over the exponent's bits); a
/// negative one gives `1` for base 1, `+-1` for base -1, all-ones bits
/// (the interpreter's saturated `1/0`) for base 0, and 0 otherwise.
fn int_pow(b: &mut Body<'_>, x: &str, y: &str, dt: DType, ed: DType) -> Res<String> {
    let e = elem(dt)?;
    let y64 = if ed == DType::I64 || ed == DType::U64 {
        y.to_string()
    } else {
        convert(b, y, ed, DType::I64)?
    };
    let one = b.int(1, dt)?;
    let lo = b.index(0);
    let hi = b.index(64);
    let r = b.for_loop(
        &lo,
        &hi,
        &[(one.clone(), e), (x.to_string(), e), (y64.clone(), "i64")],
        |b, _, acc| {
            let one64 = b.int(1, DType::I64)?;
            let z64 = b.int(0, DType::I64)?;
            let bit = b.op(format!("arith.andi {}, {one64} : i64", acc[2]));
            let odd = b.op(format!("arith.cmpi ne, {bit}, {z64} : i64"));
            let m = b.op(format!("arith.muli {}, {} : {e}", acc[0], acc[1]));
            let r = b.select(&odd, &m, &acc[0], e);
            let sq = b.op(format!("arith.muli {}, {} : {e}", acc[1], acc[1]));
            let next = b.op(format!("arith.shrui {}, {one64} : i64", acc[2]));
            Ok(vec![r, sq, next])
        },
    )?;
    if ed.is_signed() {
        let z64 = b.int(0, DType::I64)?;
        let neg = b.op(format!("arith.cmpi slt, {y64}, {z64} : i64"));
        let z = b.int(0, dt)?;
        let m1 = b.int(-1, dt)?;
        let is1 = b.op(format!("arith.cmpi eq, {x}, {one} : {e}"));
        let is0 = b.op(format!("arith.cmpi eq, {x}, {z} : {e}"));
        let one64 = b.int(1, DType::I64)?;
        let bit = b.op(format!("arith.andi {y64}, {one64} : i64"));
        let odd = b.op(format!("arith.cmpi ne, {bit}, {z64} : i64"));
        let sign = b.select(&odd, &m1, &one, e);
        // Base -1 (only for signed bases; for unsigned it never matches).
        let ism1 = if dt.is_signed() {
            b.op(format!("arith.cmpi eq, {x}, {m1} : {e}"))
        } else {
            b.int(0, DType::Bool)?
        };
        let v0 = b.select(&ism1, &sign, &z, e);
        let v1 = b.select(&is0, &m1, &v0, e);
        let v = b.select(&is1, &one, &v1, e);
        Ok(b.select(&neg, &v, &r[0], e))
    } else {
        Ok(r[0].clone())
    }
}

/// `nn.pow` of an integer base and a float exponent (dtype `ed`), as the
/// interpreter and the ONNX reference: `pow` in f64, truncated toward zero
/// and wrapped to the base's dtype (NaN gives 0; values beyond the i64
/// range saturate there first).
fn int_pow_float(b: &mut Body<'_>, x: &str, y: &str, dt: DType, ed: DType) -> Res<String> {
    let xf = convert(b, x, dt, DType::F64)?;
    let yf = convert(b, y, ed, DType::F64)?;
    let p = b.op(format!("math.powf {xf}, {yf} : f64"));
    let lo = b.float(-9_223_372_036_854_775_808.0, DType::F64)?;
    let hi = b.float(9_223_372_036_854_774_784.0, DType::F64)?;
    let c0 = b.op(format!("arith.maximumf {p}, {lo} : f64"));
    let c = b.op(format!("arith.minimumf {c0}, {hi} : f64"));
    let nan = b.op(format!("arith.cmpf uno, {p}, {p} : f64"));
    let zf = b.float(0.0, DType::F64)?;
    let safe = b.select(&nan, &zf, &c, "f64");
    let i = b.op(format!("arith.fptosi {safe} : f64 to i64"));
    convert(b, &i, DType::I64, dt)
}

/// A binary arith op picked by float / signed / unsigned.
fn arith2(b: &mut Body<'_>, f: &str, s: &str, u: &str, x: &[String], dt: DType) -> Res<String> {
    let e = elem(dt)?;
    let op = if dt.is_float() {
        f
    } else if dt.is_signed() {
        s
    } else {
        u
    };
    Ok(b.op(format!("arith.{op} {}, {} : {e}", x[0], x[1])))
}

/// A comparison picked by float / signed / unsigned (bool compares unsigned).
fn cmp(b: &mut Body<'_>, f: &str, s: &str, u: &str, x: &[String], dt: DType) -> Res<String> {
    let e = elem(dt)?;
    Ok(if dt.is_float() {
        b.op(format!("arith.cmpf {f}, {}, {} : {e}", x[0], x[1]))
    } else {
        let p = if dt.is_signed() { s } else { u };
        b.op(format!("arith.cmpi {p}, {}, {} : {e}", x[0], x[1]))
    })
}

/// NaN-propagating maximum (ONNX Max/Relu/Clip semantics).
pub(crate) fn max(b: &mut Body<'_>, x: &str, y: &str, dt: DType) -> Res<String> {
    arith2(b, "maximumf", "maxsi", "maxui", &[x.into(), y.into()], dt)
}

/// NaN-propagating minimum.
pub(crate) fn min(b: &mut Body<'_>, x: &str, y: &str, dt: DType) -> Res<String> {
    arith2(b, "minimumf", "minsi", "minui", &[x.into(), y.into()], dt)
}

/// `log(1 + exp(x))`, computed as `max(x, 0) + log1p(exp(-|x|))` so large
/// inputs do not overflow.
fn softplus(b: &mut Body<'_>, x: &str, dt: DType) -> Res<String> {
    let e = elem(dt)?;
    let z = b.float(0.0, dt)?;
    let a = b.op(format!("math.absf {x} : {e}"));
    let na = b.op(format!("arith.negf {a} : {e}"));
    let ex = b.op(format!("math.exp {na} : {e}"));
    let l = b.op(format!("math.log1p {ex} : {e}"));
    let m = b.op(format!("arith.maximumf {x}, {z} : {e}"));
    Ok(b.op(format!("arith.addf {m}, {l} : {e}")))
}

/// Converts a scalar between dtypes with ONNX Cast semantics (float to int
/// truncates toward zero; anything to bool is `!= 0`); small float targets
/// round without saturation, like every arithmetic result of such a dtype.
pub(crate) fn convert(b: &mut Body<'_>, x: &str, from: DType, to: DType) -> Res<String> {
    convert_mode(b, x, from, to, CastMode::ARITH)
}

/// [`convert`] with a cast `mode` for small float targets (see
/// [`storage::round_small_float`]). Storage-only dtypes are handled through
/// their compute types (see [`storage`]): a small float value is an exact
/// `f32`, an `i4`/`u4`/`i2`/`u2` value an exact `i8`, so a conversion from
/// them is the one from `f32`/`i8`/`u8`; a conversion to a sub-byte integer
/// converts to 64-bit (floats, truncating) or 8-bit (integers) and keeps the
/// low bits, as the interpreter's two's complement wrap does.
pub(crate) fn convert_mode(
    b: &mut Body<'_>,
    x: &str,
    from: DType,
    to: DType,
    mode: CastMode,
) -> Res<String> {
    if from == to {
        return Ok(x.to_string());
    }
    if from == DType::NF4 || to == DType::NF4 {
        return Err("nf4 codes are only converted by the quant ops".into());
    }
    let from_c = from.compute_dtype();
    if let Some(f) = FloatFormat::of(to) {
        let wide = if from_c == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let w = convert_plain(b, x, from_c, wide)?;
        return storage::round_small_float(b, &w, wide, f, mode);
    }
    if to.is_packed() {
        let w = if from_c.is_float() {
            let w = convert_plain(b, x, from_c, DType::I64)?;
            convert_plain(b, &w, DType::I64, DType::I8)?
        } else {
            convert_plain(b, x, from_c, DType::I8)?
        };
        return Ok(storage::wrap_bits(b, &w, to));
    }
    convert_plain(b, x, from_c, to)
}

/// [`convert`] between dtypes that are their own compute types.
fn convert_plain(b: &mut Body<'_>, x: &str, from: DType, to: DType) -> Res<String> {
    let fe = elem(from)?;
    let te = elem(to)?;
    if from == to
        || fe == te && from != DType::Bool && to != DType::Bool && from.is_float() == to.is_float()
    {
        return Ok(x.to_string());
    }
    let fbits = from.bits();
    let tbits = to.bits();
    Ok(if to == DType::Bool {
        let z = b.num(0.0, from)?;
        if from.is_float() {
            b.op(format!("arith.cmpf une, {x}, {z} : {fe}"))
        } else {
            b.op(format!("arith.cmpi ne, {x}, {z} : {fe}"))
        }
    } else if from.is_float() && to.is_float() {
        if from == DType::BF16 && to == DType::F16 || from == DType::F16 && to == DType::BF16 {
            let w = b.op(format!("arith.extf {x} : {fe} to f32"));
            b.op(format!("arith.truncf {w} : f32 to {te}"))
        } else if tbits > fbits {
            b.op(format!("arith.extf {x} : {fe} to {te}"))
        } else {
            b.op(format!("arith.truncf {x} : {fe} to {te}"))
        }
    } else if from.is_float() {
        let op = if to.is_signed() { "fptosi" } else { "fptoui" };
        b.op(format!("arith.{op} {x} : {fe} to {te}"))
    } else if to.is_float() {
        let op = if from.is_signed() && from != DType::Bool {
            "sitofp"
        } else {
            "uitofp"
        };
        b.op(format!("arith.{op} {x} : {fe} to {te}"))
    } else if tbits > fbits || from == DType::Bool {
        let op = if from.is_signed() && from != DType::Bool {
            "extsi"
        } else {
            "extui"
        };
        b.op(format!("arith.{op} {x} : {fe} to {te}"))
    } else if tbits < fbits {
        b.op(format!("arith.trunci {x} : {fe} to {te}"))
    } else {
        // Same width, different signedness: the bits are kept.
        x.to_string()
    })
}

/// `nn.cast`.
pub(crate) fn cast(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let (to, shape) = n.out(0)?;
    if x.dtype == to {
        return Ok(x.clone());
    }
    let from = x.dtype;
    let mode = kiln_ir::ops::cast_mode(n.a).map_err(attr_err)?;
    b.map(&[x], to, shape, |body, a| {
        convert_mode(body, &a[0], from, to, mode)
    })
}

/// `nn.celu`: `max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`, with
/// NaN-propagating max/min as the ONNX reference's `np.maximum`. (Half
/// precision reaches here as f32: see [`composite_math`].)
fn celu(b: &mut Body<'_>, x: &str, alpha: f64, dt: DType) -> Res<String> {
    let e = elem(dt)?;
    let a = b.float(alpha, dt)?;
    let z = b.float(0.0, dt)?;
    let one = b.float(1.0, dt)?;
    let q = b.op(format!("arith.divf {x}, {a} : {e}"));
    let ex = b.op(format!("math.exp {q} : {e}"));
    let em1 = b.op(format!("arith.subf {ex}, {one} : {e}"));
    let neg = b.op(format!("arith.mulf {a}, {em1} : {e}"));
    let lo = b.op(format!("arith.minimumf {neg}, {z} : {e}"));
    let hi = b.op(format!("arith.maximumf {x}, {z} : {e}"));
    Ok(b.op(format!("arith.addf {hi}, {lo} : {e}")))
}

/// `nn.shrink`: `x + bias` below `-lambd`, `x - bias` above `lambd`, else
/// 0 (NaN gives 0: both compares are false). Integers compute in f64,
/// truncate toward zero and wrap to the dtype, as the interpreter and the
/// ONNX reference (an infinite `bias` on integers is the one divergence: it
/// gives 0 here).
fn shrink(b: &mut Body<'_>, x: &str, bias: f64, lambd: f64, dt: DType) -> Res<String> {
    let cdt = if dt.is_float() { dt } else { DType::F64 };
    let ce = elem(cdt)?;
    let xv = if dt.is_float() {
        x.to_string()
    } else {
        convert(b, x, dt, DType::F64)?
    };
    let bv = b.float(bias, cdt)?;
    let lv = b.float(lambd, cdt)?;
    let nl = b.float(-lambd, cdt)?;
    let z = b.float(0.0, cdt)?;
    let below = b.op(format!("arith.cmpf olt, {xv}, {nl} : {ce}"));
    let above = b.op(format!("arith.cmpf ogt, {xv}, {lv} : {ce}"));
    let plus = b.op(format!("arith.addf {xv}, {bv} : {ce}"));
    let minus = b.op(format!("arith.subf {xv}, {bv} : {ce}"));
    let r0 = b.select(&above, &minus, &z, ce);
    let r = b.select(&below, &plus, &r0, ce);
    if dt.is_float() {
        return Ok(r);
    }
    let t = b.op(format!("math.trunc {r} : f64"));
    // Wrap modulo 2^64 exactly (fmod is exact), then convert from the
    // 64-bit two's complement range.
    let two64 = b.float(18_446_744_073_709_551_616.0, DType::F64)?;
    let two63 = b.float(9_223_372_036_854_775_808.0, DType::F64)?;
    let m2_63 = b.float(-9_223_372_036_854_775_808.0, DType::F64)?;
    let w = b.op(format!("arith.remf {t}, {two64} : f64"));
    // w in (-2^64, 2^64); below -2^63 it is a multiple of 2^11, so w + 2^64
    // is exact.
    let low = b.op(format!("arith.cmpf olt, {w}, {m2_63} : f64"));
    let up = b.op(format!("arith.addf {w}, {two64} : f64"));
    let w = b.select(&low, &up, &w, "f64");
    let big = b.op(format!("arith.cmpf oge, {w}, {two63} : f64"));
    // Keep each conversion's operand in its range (the other is discarded).
    let z = b.float(0.0, DType::F64)?;
    let nan = b.op(format!("arith.cmpf uno, {w}, {w} : f64"));
    let skip = b.op(format!("arith.ori {big}, {nan} : i1"));
    let ws = b.select(&skip, &z, &w, "f64");
    let wu = b.select(&big, &w, &z, "f64");
    let si = b.op(format!("arith.fptosi {ws} : f64 to i64"));
    let ui = b.op(format!("arith.fptoui {wu} : f64 to i64"));
    let i = b.select(&big, &ui, &si, "i64");
    // Narrower dtypes keep the low bits: the interpreter's wrap.
    convert(b, &i, DType::I64, dt)
}

/// `nn.bit_cast`: each element's bits read as `to`, which has the same
/// width. Through the compute types: a float8 value is encoded to its byte
/// (exact, it is on the float8 grid) or decoded from it, an `i4`/`u4` value
/// keeps its low nibble and is re-wrapped, a bool is the byte 0/1, and a
/// byte read as bool is `!= 0` (bool values are 0/1 in Kiln), as the
/// interpreter does.
pub(crate) fn bit_cast(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let (to, shape) = n.out(0)?;
    let from = x.dtype;
    if from.bits() != to.bits() || from == DType::NF4 || to == DType::NF4 {
        return Err(format!("nn.bit_cast from {from} to {to} is not supported"));
    }
    if from == to {
        return Ok(x);
    }
    let int = match from.bits() {
        64 => "i64",
        32 => "i32",
        16 => "i16",
        _ => "i8",
    };
    b.map(&[&x], to, shape, |body, a| {
        let v = &a[0];
        let raw = if let Some(f) = FloatFormat::of(from) {
            storage::small_float_code(body, v, f)
        } else if from.is_packed() {
            let m = body.op(format!("arith.constant {} : i8", (1 << from.bits()) - 1));
            body.op(format!("arith.andi {v}, {m} : i8"))
        } else if from == DType::Bool {
            body.op(format!("arith.extui {v} : i1 to i8"))
        } else if from.is_float() {
            body.op(format!("arith.bitcast {v} : {} to {int}", elem(from)?))
        } else {
            v.clone()
        };
        Ok(if let Some(f) = FloatFormat::of(to) {
            storage::decode_code(body, &raw, f)
        } else if to.is_packed() {
            storage::wrap_bits(body, &raw, to)
        } else if to == DType::Bool {
            let z = body.op("arith.constant 0 : i8");
            body.op(format!("arith.cmpi ne, {raw}, {z} : i8"))
        } else if to.is_float() {
            body.op(format!("arith.bitcast {raw} : {int} to {}", elem(to)?))
        } else {
            raw
        })
    })
}

/// Whether [`fused`] lowers `body` (operands of dtypes `in_dtypes`, results
/// `outs`) as one `linalg.generic`: every op elementwise (or a cast) with
/// one result of the result shape, no storage-only dtype. That loop reads
/// each operand element once per result element, through the operand's
/// broadcast map, before writing it: an operand of the result's shape may
/// share the result's buffer.
pub(crate) fn fused_is_one_loop(
    body: &kiln_ir::Graph,
    in_dtypes: &[DType],
    outs: &[(DType, Vec<u64>)],
) -> bool {
    let Some((_, shape)) = outs.first() else {
        return false;
    };
    outs.iter().all(|(d, s)| s == shape && !d.is_storage_only())
        && in_dtypes.iter().all(|d| !d.is_storage_only())
        && in_dtypes.len() == body.inputs.len()
        && body.nodes.iter().all(|n| {
            (n.op.def().traits.elementwise || n.op == OpKind::Cast)
                && n.body.is_none()
                && n.outputs.len() == 1
                && body.value(n.outputs[0]).ty.static_shape().as_ref() == Some(shape)
        })
}

/// A fused elementwise region as one `linalg.generic` over its result shape:
/// the body's ops in order, each through its scalar code, every operand read
/// once per element (broadcast through its indexing map). `None` when the
/// body is not that simple (an op that is not elementwise or a cast, an
/// intermediate or result of another shape, a storage-only dtype); the
/// caller then lowers the body op by op.
pub(crate) fn fused(
    b: &mut Builder,
    body: &kiln_ir::Graph,
    ins: &[Val],
    outs: &[(DType, Vec<u64>)],
) -> Option<Res<Vec<Val>>> {
    use super::ctx::{identity_map, Iter, Operand};
    use kiln_ir::ops::infer::InferCtx;
    let in_dtypes: Vec<DType> = ins.iter().map(|v| v.dtype).collect();
    if !fused_is_one_loop(body, &in_dtypes, outs) {
        return None;
    }
    let shape = &outs.first()?.1;
    let r = shape.len();
    let operands: Vec<Operand> = ins
        .iter()
        .map(|v| Operand::of(v, super::ctx::broadcast_map(&v.shape, shape)))
        .collect();
    let mut inits = Vec::new();
    for (d, s) in outs {
        match b.empty(*d, s) {
            Ok(e) => inits.push((e, identity_map(r))),
            Err(e) => return Some(Err(e)),
        }
    }
    let res = b.generic(&vec![Iter::Par; r], &operands, &inits, |sb, args| {
        let mut scalars: std::collections::HashMap<kiln_ir::ValueId, String> = body
            .inputs
            .iter()
            .copied()
            .zip(args.iter().cloned())
            .collect();
        for node in &body.nodes {
            let present: Vec<bool> = node.inputs.iter().map(Option::is_some).collect();
            let mut x = Vec::new();
            let mut dts = Vec::new();
            for v in node.operands() {
                x.push(
                    scalars
                        .get(&v)
                        .cloned()
                        .ok_or("a body value is not computed")?,
                );
                dts.push(body.value(v).ty.dtype);
            }
            let out = body.value(node.outputs[0]).ty.dtype;
            let tys: Vec<Option<&kiln_ir::TensorType>> = node
                .inputs
                .iter()
                .map(|i| i.map(|v| &body.value(v).ty))
                .collect();
            let a = InferCtx::of_node(node, &tys);
            let y = if node.op == OpKind::Cast {
                let mode = kiln_ir::ops::cast_mode(&a).map_err(attr_err)?;
                convert_mode(sb, &x[0], dts[0], out, mode)?
            } else {
                let n = NodeIn {
                    node,
                    a: &a,
                    ins: Vec::new(),
                    outs: Vec::new(),
                };
                scalar(&n, sb, &x, &dts, &present, out)?
            };
            scalars.insert(node.outputs[0], y);
        }
        body.outputs
            .iter()
            .map(|v| {
                scalars
                    .get(v)
                    .cloned()
                    .ok_or_else(|| "a body output is not computed".to_string())
            })
            .collect()
    });
    Some(res)
}
