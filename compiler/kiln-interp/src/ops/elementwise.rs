//! Elementwise ops: unary maps, broadcasting binary/variadic ops,
//! comparisons, logic, `where`, `clip`, `cast`, and `nn.constant`.
//!
//! Floats are computed in f64 and rounded once to the result dtype;
//! integers in i128 and wrapped once (see [`crate::tensor`]).

use crate::eval::Op;
use crate::tensor::{round_small_float, wrap_int, Data};
use crate::util::{broadcast_map, broadcast_shapes};
use crate::{InterpError, Tensor};
use kiln_ir::codec::{CastMode, FloatFormat};
use kiln_ir::ops::{GeluApprox, ShiftDirection};
use kiln_ir::{Attr, DType};
use std::cmp::Ordering;

type R = Result<Tensor, InterpError>;

/// `nn.constant`: decodes the referenced weight.
pub fn constant(op: &Op<'_>) -> R {
    let Some(Attr::Weight(w)) = op.a.attrs.get("value") else {
        return Err(InterpError::Invalid(
            "attribute 'value' must name a weight".into(),
        ));
    };
    crate::eval::materialize(op.weights, *w, &op.limits)
}

/// Unary maps.
#[derive(Clone, Copy, Debug)]
pub enum Unary {
    Abs,
    Acos,
    Acosh,
    Asin,
    Asinh,
    Atan,
    Atanh,
    Ceil,
    Celu,
    Cos,
    Cosh,
    Elu,
    Erf,
    Exp,
    Floor,
    Gelu,
    HardSigmoid,
    HardSwish,
    LeakyRelu,
    Log,
    Mish,
    Neg,
    Reciprocal,
    Relu,
    Round,
    Selu,
    Sigmoid,
    Sign,
    Sin,
    Sinh,
    Softplus,
    Softsign,
    Sqrt,
    Swish,
    Tan,
    Tanh,
    ThresholdedRelu,
}

/// `log(1 + exp(x))` without overflow for large `x`.
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// `1 / (1 + exp(-x))` without overflow.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Applies a unary op. Integer operands are accepted by the ops whose
/// inference allows them (abs, neg, relu, sign).
pub fn unary(op: &Op<'_>, u: Unary) -> R {
    let x = op.input(0)?;
    let dt = x.dtype;
    if let Data::Int(v) = &x.data {
        let f: fn(i128) -> i128 = match u {
            Unary::Abs => i128::abs,
            Unary::Neg => |x| -x,
            Unary::Relu => |x| x.max(0),
            Unary::Sign => i128::signum,
            _ => {
                return Err(InterpError::Invalid(format!(
                    "{u:?} is not defined on {dt} operands"
                )))
            }
        };
        return Ok(Tensor::from_ints(
            dt,
            x.shape.clone(),
            v.iter().map(|&x| f(x)).collect(),
        ));
    }
    let alpha = |name: &str| op.a.float(name);
    let f: Box<dyn Fn(f64) -> f64> = match u {
        Unary::Abs => Box::new(f64::abs),
        Unary::Acos => Box::new(f64::acos),
        Unary::Asin => Box::new(f64::asin),
        Unary::Atan => Box::new(f64::atan),
        Unary::Acosh => Box::new(f64::acosh),
        Unary::Asinh => Box::new(f64::asinh),
        Unary::Atanh => Box::new(f64::atanh),
        Unary::Ceil => Box::new(f64::ceil),
        Unary::Celu => {
            let a = alpha("alpha")?;
            Box::new(move |x| x.max(0.0) + (a * ((x / a).exp() - 1.0)).min(0.0))
        }
        Unary::Cos => Box::new(f64::cos),
        Unary::Cosh => Box::new(f64::cosh),
        Unary::Elu => {
            let a = alpha("alpha")?;
            Box::new(move |x| if x < 0.0 { a * (x.exp() - 1.0) } else { x })
        }
        Unary::Erf => Box::new(libm::erf),
        Unary::Exp => Box::new(f64::exp),
        Unary::Floor => Box::new(f64::floor),
        Unary::Gelu => {
            if op.a.enum_attr::<GeluApprox>("approximate")? == GeluApprox::Tanh {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                Box::new(move |x| 0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh()))
            } else {
                Box::new(|x| 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)))
            }
        }
        Unary::HardSigmoid => {
            let (a, b) = (alpha("alpha")?, alpha("beta")?);
            Box::new(move |x| (a * x + b).clamp(0.0, 1.0))
        }
        Unary::HardSwish => Box::new(|x| x * (x / 6.0 + 0.5).clamp(0.0, 1.0)),
        Unary::LeakyRelu => {
            let a = alpha("alpha")?;
            Box::new(move |x| if x < 0.0 { a * x } else { x })
        }
        Unary::Log => Box::new(f64::ln),
        Unary::Mish => Box::new(|x| x * softplus(x).tanh()),
        Unary::Neg => Box::new(|x| -x),
        Unary::Reciprocal => Box::new(|x| 1.0 / x),
        Unary::Relu => Box::new(|x| if x < 0.0 { 0.0 } else { x }),
        Unary::Round => Box::new(f64::round_ties_even),
        Unary::Selu => {
            let (a, g) = (alpha("alpha")?, alpha("gamma")?);
            Box::new(move |x| {
                if x > 0.0 {
                    g * x
                } else {
                    g * (a * x.exp() - a)
                }
            })
        }
        Unary::Sigmoid => Box::new(sigmoid),
        Unary::Sign => Box::new(|x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                // 0 stays 0 and NaN stays NaN.
                x
            }
        }),
        Unary::Sin => Box::new(f64::sin),
        Unary::Sinh => Box::new(f64::sinh),
        Unary::Softplus => Box::new(softplus),
        Unary::Softsign => Box::new(|x| x / (1.0 + x.abs())),
        Unary::Sqrt => Box::new(f64::sqrt),
        Unary::Swish => {
            let a = alpha("alpha")?;
            Box::new(move |x| x * sigmoid(a * x))
        }
        Unary::Tan => Box::new(f64::tan),
        Unary::Tanh => Box::new(f64::tanh),
        Unary::ThresholdedRelu => {
            let a = alpha("alpha")?;
            Box::new(move |x| if x > a { x } else { 0.0 })
        }
    };
    let v = x.to_f64_vec().into_iter().map(f).collect();
    Ok(Tensor::from_f64(dt, x.shape.clone(), v))
}

/// `nn.is_inf`.
pub fn is_inf(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let (neg, pos) = (op.a.bool("detect_negative")?, op.a.bool("detect_positive")?);
    let v = x
        .to_f64_vec()
        .into_iter()
        .map(|x| x.is_infinite() && ((x > 0.0 && pos) || (x < 0.0 && neg)))
        .collect();
    Ok(Tensor::from_bools(x.shape.clone(), v))
}

/// `nn.is_nan`.
pub fn is_nan(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let v = x.to_f64_vec().into_iter().map(f64::is_nan).collect();
    Ok(Tensor::from_bools(x.shape.clone(), v))
}

/// `nn.not`.
pub fn not(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let v = ints(x)?.iter().map(|&b| b == 0).collect();
    Ok(Tensor::from_bools(x.shape.clone(), v))
}

fn ints(t: &Tensor) -> Result<&[i128], InterpError> {
    t.ints().ok_or_else(|| {
        InterpError::Invalid(format!(
            "expected an integer or bool operand, got {}",
            t.dtype
        ))
    })
}

/// Broadcasts operands: the result shape and, per operand, the source
/// index of each result element.
fn broadcast(op: &Op<'_>, ts: &[&Tensor]) -> Result<(Vec<u64>, Vec<Vec<usize>>), InterpError> {
    let shapes: Vec<&[u64]> = ts.iter().map(|t| t.shape.as_slice()).collect();
    let out = broadcast_shapes(&shapes)?;
    op.check(&out)?;
    let maps = ts.iter().map(|t| broadcast_map(&out, &t.shape)).collect();
    Ok((out, maps))
}

/// Binary ops with NumPy broadcasting.
#[derive(Clone, Copy, Debug)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    /// Remainder with the divisor's sign (Python `%`); integers only.
    Mod,
    /// Remainder with the dividend's sign (C `fmod`).
    Fmod,
    Max,
    Min,
    PRelu,
}

fn float_op(b: Binary, x: f64, y: f64) -> f64 {
    match b {
        Binary::Add => x + y,
        Binary::Sub => x - y,
        Binary::Mul => x * y,
        Binary::Div => x / y,
        // Rust's `%` on floats is C's fmod.
        Binary::Fmod => x % y,
        // NumPy's float `mod` (ONNX Mod with fmod = 0): the divisor's sign,
        // and a zero result carries the divisor's sign too.
        Binary::Mod => {
            let m = x % y;
            if y == 0.0 || m.is_nan() {
                m
            } else if m == 0.0 {
                0.0f64.copysign(y)
            } else if (y < 0.0) != (m < 0.0) {
                m + y
            } else {
                m
            }
        }
        Binary::Max => {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.max(y)
            }
        }
        Binary::Min => {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.min(y)
            }
        }
        Binary::PRelu => {
            if x < 0.0 {
                y * x
            } else {
                x
            }
        }
    }
}

fn int_op(b: Binary, x: i128, y: i128) -> Result<i128, InterpError> {
    let div_zero = || InterpError::Invalid("integer division by zero".into());
    Ok(match b {
        Binary::Add => x.wrapping_add(y),
        Binary::Sub => x.wrapping_sub(y),
        Binary::Mul => x.wrapping_mul(y),
        // i128 `/` and `%` truncate toward zero, like C.
        Binary::Div => x.checked_div(y).ok_or_else(div_zero)?,
        Binary::Fmod => x.checked_rem(y).ok_or_else(div_zero)?,
        Binary::Mod => {
            let r = x.checked_rem(y).ok_or_else(div_zero)?;
            if r != 0 && ((r < 0) != (y < 0)) {
                r + y
            } else {
                r
            }
        }
        Binary::Max => x.max(y),
        Binary::Min => x.min(y),
        Binary::PRelu => {
            if x < 0 {
                y.wrapping_mul(x)
            } else {
                x
            }
        }
    })
}

fn binary_tensors(op: &Op<'_>, b: Binary, x: &Tensor, y: &Tensor) -> R {
    let (shape, maps) = broadcast(op, &[x, y])?;
    let dt = x.dtype;
    match (&x.data, &y.data) {
        (Data::Float(a), Data::Float(c)) => {
            let v = maps[0]
                .iter()
                .zip(&maps[1])
                .map(|(&i, &j)| float_op(b, a[i], c[j]))
                .collect();
            Ok(Tensor::from_f64(dt, shape, v))
        }
        (Data::Int(a), Data::Int(c)) => {
            let v = maps[0]
                .iter()
                .zip(&maps[1])
                .map(|(&i, &j)| int_op(b, a[i], c[j]))
                .collect::<Result<_, _>>()?;
            Ok(Tensor::from_ints(dt, shape, v))
        }
        _ => Err(InterpError::Invalid(format!(
            "operands have dtypes {} and {}",
            x.dtype, y.dtype
        ))),
    }
}

/// A binary op with broadcasting.
pub fn binary(op: &Op<'_>, b: Binary) -> R {
    binary_tensors(op, b, op.input(0)?, op.input(1)?)
}

/// `nn.sum`, `nn.max`, `nn.min`: a left fold of the binary op over all
/// operands.
pub fn variadic(op: &Op<'_>, b: Binary) -> R {
    let ts = op.present();
    let mut acc = ts
        .first()
        .copied()
        .cloned()
        .ok_or_else(|| InterpError::Invalid("at least one operand is required".into()))?;
    for t in &ts[1..] {
        acc = binary_tensors(op, b, &acc, t)?;
    }
    Ok(acc)
}

/// `nn.mean`: the sum in f64 (or exact integers) divided by the count.
pub fn mean(op: &Op<'_>) -> R {
    let ts = op.present();
    let (shape, maps) = broadcast(op, &ts)?;
    let n = ts.len();
    let dt = ts[0].dtype;
    let len = maps.first().map_or(0, Vec::len);
    if dt.is_float() {
        let v = (0..len)
            .map(|e| {
                ts.iter()
                    .zip(&maps)
                    .map(|(t, m)| t.get_f64(m[e]))
                    .sum::<f64>()
                    / n as f64
            })
            .collect();
        Ok(Tensor::from_f64(dt, shape, v))
    } else {
        let mut v = Vec::with_capacity(len);
        for e in 0..len {
            let mut s = 0i128;
            for (t, m) in ts.iter().zip(&maps) {
                s = s.wrapping_add(ints(t)?[m[e]]);
            }
            v.push(wrap_int(dt, s) / n as i128);
        }
        Ok(Tensor::from_ints(dt, shape, v))
    }
}

/// Comparisons; the closure sees the ordering (`None` if either is NaN).
pub fn compare(op: &Op<'_>, f: impl Fn(Option<Ordering>) -> bool) -> R {
    let (x, y) = (op.input(0)?, op.input(1)?);
    let (shape, maps) = broadcast(op, &[x, y])?;
    let v = match (&x.data, &y.data) {
        (Data::Float(a), Data::Float(c)) => maps[0]
            .iter()
            .zip(&maps[1])
            .map(|(&i, &j)| f(a[i].partial_cmp(&c[j])))
            .collect(),
        (Data::Int(a), Data::Int(c)) => maps[0]
            .iter()
            .zip(&maps[1])
            .map(|(&i, &j)| f(Some(a[i].cmp(&c[j]))))
            .collect(),
        _ => return Err(InterpError::Invalid("operand dtypes differ".into())),
    };
    Ok(Tensor::from_bools(shape, v))
}

/// `nn.and`, `nn.or`, `nn.xor`.
pub fn logic(op: &Op<'_>, f: impl Fn(bool, bool) -> bool) -> R {
    let (x, y) = (op.input(0)?, op.input(1)?);
    let (shape, maps) = broadcast(op, &[x, y])?;
    let (a, c) = (ints(x)?, ints(y)?);
    let v = maps[0]
        .iter()
        .zip(&maps[1])
        .map(|(&i, &j)| f(a[i] != 0, c[j] != 0))
        .collect();
    Ok(Tensor::from_bools(shape, v))
}

/// `nn.bit_shift`: shifts outside `0..bits` give 0, or -1 when shifting a
/// negative signed value right (the ONNX reference); left shifts of signed
/// values shift their two's-complement bits.
pub fn bit_shift(op: &Op<'_>) -> R {
    let (x, y) = (op.input(0)?, op.input(1)?);
    let left = op.a.enum_attr::<ShiftDirection>("direction")? == ShiftDirection::Left;
    let (shape, maps) = broadcast(op, &[x, y])?;
    let (a, c) = (ints(x)?, ints(y)?);
    let bits = i128::from(x.dtype.bits());
    let v = maps[0]
        .iter()
        .zip(&maps[1])
        .map(|(&i, &j)| {
            let s = c[j];
            if s < 0 || s >= bits {
                if !left && a[i] < 0 {
                    -1
                } else {
                    0
                }
            } else if left {
                // Wrapped to the dtype by from_ints.
                a[i].wrapping_shl(s as u32)
            } else {
                a[i] >> s
            }
        })
        .collect();
    Ok(Tensor::from_ints(x.dtype, shape, v))
}

/// `nn.pow`: the result takes the base's dtype. Integer bases with
/// non-negative integer exponents are exact (wrapping); other integer
/// cases go through f64 and truncate, as ONNX Runtime does.
pub fn pow(op: &Op<'_>) -> R {
    let (x, y) = (op.input(0)?, op.input(1)?);
    let (shape, maps) = broadcast(op, &[x, y])?;
    let dt = x.dtype;
    match (&x.data, &y.data) {
        (Data::Int(a), Data::Int(c)) => {
            let v = maps[0]
                .iter()
                .zip(&maps[1])
                .map(|(&i, &j)| {
                    let (b, e) = (a[i], c[j]);
                    if e >= 0 {
                        let mut r = 1i128;
                        // Square-and-multiply mod 2^128 (a ring homomorphism
                        // onto the dtype's arithmetic).
                        let (mut base, mut e) = (b, e);
                        while e > 0 {
                            if e & 1 == 1 {
                                r = r.wrapping_mul(base);
                            }
                            base = base.wrapping_mul(base);
                            e >>= 1;
                        }
                        r
                    } else {
                        (b as f64).powf(e as f64) as i128
                    }
                })
                .collect();
            Ok(Tensor::from_ints(dt, shape, v))
        }
        _ => {
            let v: Vec<f64> = maps[0]
                .iter()
                .zip(&maps[1])
                .map(|(&i, &j)| x.get_f64(i).powf(y.get_f64(j)))
                .collect();
            if dt.is_float() {
                Ok(Tensor::from_f64(dt, shape, v))
            } else {
                Ok(Tensor::from_ints(
                    dt,
                    shape,
                    v.into_iter().map(|f| f as i128).collect(),
                ))
            }
        }
    }
}

/// `nn.where`.
pub fn where_(op: &Op<'_>) -> R {
    let (c, x, y) = (op.input(0)?, op.input(1)?, op.input(2)?);
    let (shape, maps) = broadcast(op, &[c, x, y])?;
    let cond = ints(c)?;
    let data = match (&x.data, &y.data) {
        (Data::Float(a), Data::Float(b)) => Data::Float(
            (0..maps[0].len())
                .map(|e| {
                    if cond[maps[0][e]] != 0 {
                        a[maps[1][e]]
                    } else {
                        b[maps[2][e]]
                    }
                })
                .collect(),
        ),
        (Data::Int(a), Data::Int(b)) => Data::Int(
            (0..maps[0].len())
                .map(|e| {
                    if cond[maps[0][e]] != 0 {
                        a[maps[1][e]]
                    } else {
                        b[maps[2][e]]
                    }
                })
                .collect(),
        ),
        _ => return Err(InterpError::Invalid("branch dtypes differ".into())),
    };
    Ok(Tensor {
        dtype: x.dtype,
        shape,
        data,
    })
}

/// `nn.clip`: `y = x < lo ? lo : x; y > hi ? hi : y` (so NaN passes
/// through and `lo > hi` gives `hi`, as in ONNX).
pub fn clip(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let bound = |i: usize| -> Result<Option<&Tensor>, InterpError> {
        match op.opt(i) {
            Some(t) if t.numel() != 1 => {
                Err(InterpError::Invalid(format!("bound #{i} must be a scalar")))
            }
            b => Ok(b),
        }
    };
    let (lo, hi) = (bound(1)?, bound(2)?);
    match &x.data {
        Data::Float(v) => {
            let lo = lo.map(|t| t.get_f64(0));
            let hi = hi.map(|t| t.get_f64(0));
            let out = v
                .iter()
                .map(|&e| {
                    let e = match lo {
                        Some(l) if e < l => l,
                        _ => e,
                    };
                    match hi {
                        Some(h) if e > h => h,
                        _ => e,
                    }
                })
                .collect();
            Ok(Tensor::from_f64(x.dtype, x.shape.clone(), out))
        }
        Data::Int(v) => {
            let lo = lo.map(ints).transpose()?.map(|s| s[0]);
            let hi = hi.map(ints).transpose()?.map(|s| s[0]);
            let out = v
                .iter()
                .map(|&e| {
                    let e = lo.map_or(e, |l| e.max(l));
                    hi.map_or(e, |h| e.min(h))
                })
                .collect();
            Ok(Tensor::from_ints(x.dtype, x.shape.clone(), out))
        }
    }
}

/// Converts one tensor to another dtype with ONNX `Cast` semantics:
/// - float → float: round to nearest even; small float targets (float8,
///   float4, E8M0) go through `f32` and follow `kiln_ir::codec::float` with
///   `mode` (saturation, E8M0 rounding);
/// - float → int: truncate toward zero, then wrap (NaN gives 0; out-of-range
///   values are undefined in ONNX, here they saturate to i128 and wrap);
/// - int → int: two's complement wrap; anything → bool: `x != 0`;
/// - int/bool → float: nearest value.
pub fn cast_tensor(x: &Tensor, to: DType, mode: CastMode) -> R {
    if x.dtype == DType::NF4 || to == DType::NF4 {
        return Err(InterpError::Invalid("nn.cast does not convert nf4".into()));
    }
    let shape = x.shape.clone();
    match (&x.data, to.is_float()) {
        (_, true) => {
            let v: Vec<f64> = x.to_f64_vec();
            match FloatFormat::of(to) {
                Some(f) => Ok(Tensor {
                    dtype: to,
                    shape,
                    data: Data::Float(
                        v.into_iter()
                            .map(|e| round_small_float(f, e, mode))
                            .collect(),
                    ),
                }),
                None => Ok(Tensor::from_f64(to, shape, v)),
            }
        }
        (Data::Float(v), false) => {
            let out = v
                .iter()
                .map(|&e| {
                    if to == DType::Bool {
                        i128::from(e != 0.0)
                    } else {
                        // `as` truncates toward zero, maps NaN to 0 and saturates.
                        e.trunc() as i128
                    }
                })
                .collect();
            Ok(Tensor::from_ints(to, shape, out))
        }
        (Data::Int(v), false) => Ok(Tensor::from_ints(to, shape, v.clone())),
    }
}

/// `nn.cast`.
pub fn cast(op: &Op<'_>) -> R {
    let to =
        op.a.dtype("to")?
            .ok_or_else(|| InterpError::Invalid("attribute 'to' is required".into()))?;
    cast_tensor(op.input(0)?, to, kiln_ir::ops::cast_mode(op.a)?)
}

/// `nn.bit_cast`: the operand's storage bytes (little endian) read as
/// `to`, a dtype of the same width. A byte read as bool is true when it is
/// not zero (bool tensors hold 0/1).
pub fn bit_cast(op: &Op<'_>) -> R {
    let to =
        op.a.dtype("to")?
            .ok_or_else(|| InterpError::Invalid("attribute 'to' is required".into()))?;
    let x = op.input(0)?;
    let mut bytes = x.to_bytes();
    if to == DType::Bool {
        bytes.iter_mut().for_each(|b| *b = u8::from(*b != 0));
    }
    Tensor::from_bytes(to, &x.shape, &bytes)
}

/// `nn.shrink`: `x + bias` below `-lambd`, `x - bias` above `lambd`, else
/// 0. Integer operands compare and add in f64 and truncate toward zero, as
/// the ONNX reference's `astype` does.
pub fn shrink(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let (bias, lambd) = (op.a.float("bias")?, op.a.float("lambd")?);
    let f = move |v: f64| {
        if v < -lambd {
            v + bias
        } else if v > lambd {
            v - bias
        } else {
            0.0
        }
    };
    match &x.data {
        Data::Float(v) => Ok(Tensor::from_f64(
            x.dtype,
            x.shape.clone(),
            v.iter().map(|&v| f(v)).collect(),
        )),
        Data::Int(v) => Ok(Tensor::from_ints(
            x.dtype,
            x.shape.clone(),
            // `as` saturates to i128; the result then wraps to the dtype.
            v.iter().map(|&v| f(v as f64).trunc() as i128).collect(),
        )),
    }
}

/// `nn.bitwise_not`: flips the two's-complement bits (wrapping to the
/// dtype makes this `!x` for unsigned dtypes too).
pub fn bitwise_not(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let v = ints(x)?.iter().map(|&v| !v).collect();
    Ok(Tensor::from_ints(x.dtype, x.shape.clone(), v))
}

/// `nn.bitwise_and`, `nn.bitwise_or`, `nn.bitwise_xor` with broadcasting.
/// Values are sign- or zero-extended to i128, so bitwise results wrap back
/// to the dtype exactly.
pub fn bitwise(op: &Op<'_>, f: impl Fn(i128, i128) -> i128) -> R {
    let (x, y) = (op.input(0)?, op.input(1)?);
    if x.dtype != y.dtype {
        return Err(InterpError::Invalid(format!(
            "operands have dtypes {} and {}",
            x.dtype, y.dtype
        )));
    }
    let (shape, maps) = broadcast(op, &[x, y])?;
    let (a, c) = (ints(x)?, ints(y)?);
    let v = maps[0]
        .iter()
        .zip(&maps[1])
        .map(|(&i, &j)| f(a[i], c[j]))
        .collect();
    Ok(Tensor::from_ints(x.dtype, shape, v))
}
