//! Elementwise ops: unary maps, binary and variadic ops with NumPy
//! broadcasting, comparisons, logic, `nn.where`, `nn.clip` and `nn.cast`.
//!
//! Semantics follow the ONNX operators of the same name (latest opset);
//! the ONNX frontend normalizes older versions' attributes into these.

use super::infer::{bail, broadcast_shapes, require_float, require_one_of, same_dtype};
use super::infer::{InferCtx, InferError};
use super::{attr, Arity, AttrDefault, OpDef, Traits};
use crate::attr::{AttrEnum, AttrKind};
use crate::dtype::DType;
use crate::types::TensorType;

type R = Result<Vec<TensorType>, InferError>;

/// Result has the operand's type; any numeric dtype.
fn same_numeric(ctx: &InferCtx<'_>) -> R {
    let t = ctx.input(0)?;
    if t.dtype == DType::Bool || t.dtype == DType::NF4 {
        bail!("operand has dtype {}; expected a numeric type", t.dtype);
    }
    Ok(vec![t.clone()])
}

/// Result has the operand's type; float dtypes only.
fn same_float(ctx: &InferCtx<'_>) -> R {
    let t = ctx.input(0)?;
    require_float(t.dtype, "operand")?;
    Ok(vec![t.clone()])
}

/// Result has the operand's type; any dtype.
fn same_any(ctx: &InferCtx<'_>) -> R {
    Ok(vec![ctx.input(0)?.clone()])
}

/// Result has the operand's type; integer dtypes only.
fn same_int(ctx: &InferCtx<'_>) -> R {
    let t = ctx.input(0)?;
    if !t.dtype.is_int() {
        bail!("operand has dtype {}; expected an integer type", t.dtype);
    }
    Ok(vec![t.clone()])
}

fn float_to_bool(ctx: &InferCtx<'_>) -> R {
    let t = ctx.input(0)?;
    require_float(t.dtype, "operand")?;
    Ok(vec![TensorType::new(DType::Bool, t.dims.clone())])
}

fn bool_unary(ctx: &InferCtx<'_>) -> R {
    let t = ctx.input(0)?;
    require_one_of(t.dtype, &[DType::Bool], "operand")?;
    Ok(vec![t.clone()])
}

fn broadcast_all(ctx: &InferCtx<'_>) -> Result<TensorType, InferError> {
    let dt = same_dtype(ctx)?;
    let shapes: Vec<&[crate::types::Dim]> = ctx
        .inputs
        .iter()
        .flatten()
        .map(|t| t.dims.as_slice())
        .collect();
    Ok(TensorType::new(dt, broadcast_shapes(shapes)?))
}

/// Broadcasting op over numeric operands of one dtype.
fn broadcast_numeric(ctx: &InferCtx<'_>) -> R {
    let t = broadcast_all(ctx)?;
    if t.dtype == DType::Bool || t.dtype == DType::NF4 {
        bail!("operands have dtype {}; expected a numeric type", t.dtype);
    }
    Ok(vec![t])
}

/// Broadcasting op over integer operands of one dtype.
fn broadcast_int(ctx: &InferCtx<'_>) -> R {
    let t = broadcast_all(ctx)?;
    if !t.dtype.is_int() {
        bail!("operands have dtype {}; expected an integer type", t.dtype);
    }
    Ok(vec![t])
}

/// Broadcasting comparison: result is bool.
fn compare(ctx: &InferCtx<'_>) -> R {
    let t = broadcast_all(ctx)?;
    Ok(vec![TensorType::new(DType::Bool, t.dims)])
}

/// Broadcasting logic op over bools.
fn logic(ctx: &InferCtx<'_>) -> R {
    let t = broadcast_all(ctx)?;
    require_one_of(t.dtype, &[DType::Bool], "operands")?;
    Ok(vec![t])
}

fn infer_pow(ctx: &InferCtx<'_>) -> R {
    // The exponent may have a different numeric dtype; the result takes the base's.
    let base = ctx.input(0)?;
    let exp = ctx.input(1)?;
    for t in [base, exp] {
        if !(t.dtype.is_float() || t.dtype.is_int()) {
            bail!("operands of nn.pow must be numeric, got {}", t.dtype);
        }
    }
    let dims = broadcast_shapes([base.dims.as_slice(), exp.dims.as_slice()])?;
    Ok(vec![TensorType::new(base.dtype, dims)])
}

fn infer_prelu(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let slope = ctx.input(1)?;
    if x.dtype != slope.dtype {
        bail!(
            "slope dtype {} differs from input dtype {}",
            slope.dtype,
            x.dtype
        );
    }
    // Slope must be unidirectionally broadcastable to x.
    let dims = broadcast_shapes([x.dims.as_slice(), slope.dims.as_slice()])?;
    if dims.len() != x.rank() {
        bail!(
            "slope of rank {} does not broadcast to input rank {}",
            slope.rank(),
            x.rank()
        );
    }
    Ok(vec![x.clone()])
}

fn infer_where(ctx: &InferCtx<'_>) -> R {
    let c = ctx.input(0)?;
    let a = ctx.input(1)?;
    let b = ctx.input(2)?;
    require_one_of(c.dtype, &[DType::Bool], "condition")?;
    if a.dtype != b.dtype {
        bail!("branches have dtypes {} and {}", a.dtype, b.dtype);
    }
    let dims = broadcast_shapes([c.dims.as_slice(), a.dims.as_slice(), b.dims.as_slice()])?;
    Ok(vec![TensorType::new(a.dtype, dims)])
}

fn infer_clip(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    for i in 1..3 {
        if let Some(t) = ctx.opt_input(i) {
            if t.dtype != x.dtype {
                bail!(
                    "bound #{i} has dtype {} but the input has {}",
                    t.dtype,
                    x.dtype
                );
            }
            if t.rank() != 0 && t.numel() != Some(1) {
                bail!("bound #{i} must be a scalar, got {t}");
            }
        }
    }
    same_numeric(ctx)
}

fn infer_cast(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let Some(to) = ctx.dtype("to")? else {
        bail!("attribute 'to' is required");
    };
    if to == DType::NF4 || x.dtype == DType::NF4 {
        bail!("nn.cast does not convert nf4; use the quant dialect");
    }
    cast_mode(ctx)?;
    Ok(vec![TensorType::new(to, x.dims.clone())])
}

/// The cast mode (saturation, E8M0 rounding) of an `nn.cast`.
pub fn cast_mode(ctx: &InferCtx<'_>) -> Result<crate::codec::CastMode, InferError> {
    let e8m0 = ctx.enum_attr("round_mode")?;
    Ok(crate::codec::CastMode {
        saturate: ctx.bool("saturate")?,
        e8m0,
    })
}

fn infer_bit_cast(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let Some(to) = ctx.dtype("to")? else {
        bail!("attribute 'to' is required");
    };
    if to == DType::NF4 || x.dtype == DType::NF4 {
        bail!("nn.bit_cast of nf4 codes is not supported");
    }
    if to.bits() != x.dtype.bits() {
        bail!(
            "nn.bit_cast needs dtypes of one bit width, got {} ({} bits) and {to} ({} bits)",
            x.dtype,
            x.dtype.bits(),
            to.bits()
        );
    }
    Ok(vec![TensorType::new(to, x.dims.clone())])
}

crate::attr_enum! {
    /// `nn.gelu`'s `approximate`: the exact (erf) form or the tanh form.
    pub enum GeluApprox {
        /// `x/2 * (1 + erf(x/√2))`.
        None = "none",
        /// `x/2 * (1 + tanh(√(2/π) * (x + 0.044715 x³)))`.
        Tanh = "tanh",
    }
}

fn infer_gelu(ctx: &InferCtx<'_>) -> R {
    ctx.enum_attr::<GeluApprox>("approximate")?;
    same_float(ctx)
}

fn infer_is_inf(ctx: &InferCtx<'_>) -> R {
    float_to_bool(ctx)
}

fn infer_mod(ctx: &InferCtx<'_>) -> R {
    // fmod = 0 on floats takes the divisor's sign, like Python's `%`.
    ctx.bool("fmod")?;
    broadcast_numeric(ctx)
}

crate::attr_enum! {
    /// `nn.bit_shift`'s `direction`.
    pub enum ShiftDirection {
        /// Towards the most significant bit.
        Left = "left",
        /// Towards the least significant bit.
        Right = "right",
    }
}

fn infer_bit_shift(ctx: &InferCtx<'_>) -> R {
    ctx.enum_attr::<ShiftDirection>("direction")?;
    // Signed operands shift their two's-complement bits (ONNX BitShift-26).
    broadcast_int(ctx)
}

macro_rules! unary {
    ($($c:ident $name:literal $infer:ident $summary:literal $traits:ident [$($a:expr),*];)*) => {$(
        #[doc = $summary]
        pub const $c: OpDef = OpDef {
            name: $name,
            summary: $summary,
            inputs: Arity::exactly(1),
            outputs: Arity::exactly(1),
            attrs: &[$($a),*],
            traits: Traits::$traits,
            static_operands: &[],
            infer: $infer,
        };
    )*};
}

unary! {
    ABS "nn.abs" same_numeric "Absolute value" ELEMENTWISE [];
    ACOS "nn.acos" same_float "Arc cosine" ELEMENTWISE [];
    ACOSH "nn.acosh" same_float "Inverse hyperbolic cosine" ELEMENTWISE [];
    ASIN "nn.asin" same_float "Arc sine" ELEMENTWISE [];
    ASINH "nn.asinh" same_float "Inverse hyperbolic sine" ELEMENTWISE [];
    ATAN "nn.atan" same_float "Arc tangent" ELEMENTWISE [];
    ATANH "nn.atanh" same_float "Inverse hyperbolic tangent" ELEMENTWISE [];
    BITWISE_NOT "nn.bitwise_not" same_int "Flips every bit of an integer" ELEMENTWISE [];
    CAST "nn.cast" infer_cast "Converts elements to another dtype (saturate applies to float8 and f8e8m0 targets, round_mode to f8e8m0)" ELEMENTWISE
        [attr("to", AttrKind::DType, AttrDefault::Required), attr("saturate", AttrKind::Bool, AttrDefault::Bool(true)), attr("round_mode", AttrKind::Enum(crate::codec::E8m0Rounding::NAMES), AttrDefault::Str("up"))];
    BIT_CAST "nn.bit_cast" infer_bit_cast "Reinterprets the bits (little endian) of each element as another dtype of the same width" ELEMENTWISE
        [attr("to", AttrKind::DType, AttrDefault::Required)];
    CEIL "nn.ceil" same_float "Rounds up to an integer" IDEMPOTENT [];
    CELU "nn.celu" same_float "max(0, x) + min(0, alpha * (exp(x / alpha) - 1))" ELEMENTWISE
        [attr("alpha", AttrKind::Float, AttrDefault::Float(1.0))];
    COS "nn.cos" same_float "Cosine" ELEMENTWISE [];
    COSH "nn.cosh" same_float "Hyperbolic cosine" ELEMENTWISE [];
    ELU "nn.elu" same_float "x if x >= 0 else alpha * (exp(x) - 1)" ELEMENTWISE
        [attr("alpha", AttrKind::Float, AttrDefault::Float(1.0))];
    ERF "nn.erf" same_float "Gauss error function" ELEMENTWISE [];
    EXP "nn.exp" same_float "Natural exponential" ELEMENTWISE [];
    FLOOR "nn.floor" same_float "Rounds down to an integer" IDEMPOTENT [];
    GELU "nn.gelu" infer_gelu "Gaussian error linear unit, exact or tanh-approximated" ELEMENTWISE
        [attr("approximate", AttrKind::Enum(GeluApprox::NAMES), AttrDefault::Str("none"))];
    HARD_SIGMOID "nn.hard_sigmoid" same_float "max(0, min(1, alpha * x + beta))" ELEMENTWISE
        [attr("alpha", AttrKind::Float, AttrDefault::Float(0.2)), attr("beta", AttrKind::Float, AttrDefault::Float(0.5))];
    HARD_SWISH "nn.hard_swish" same_float "x * max(0, min(1, x / 6 + 1/2))" ELEMENTWISE [];
    IDENTITY "nn.identity" same_any "Returns its operand" IDEMPOTENT [];
    IS_INF "nn.is_inf" infer_is_inf "Tests for infinities of the selected signs" ELEMENTWISE
        [attr("detect_negative", AttrKind::Bool, AttrDefault::Bool(true)), attr("detect_positive", AttrKind::Bool, AttrDefault::Bool(true))];
    IS_NAN "nn.is_nan" float_to_bool "Tests for NaN" ELEMENTWISE [];
    LEAKY_RELU "nn.leaky_relu" same_float "x if x >= 0 else alpha * x" ELEMENTWISE
        [attr("alpha", AttrKind::Float, AttrDefault::Float(0.01))];
    LOG "nn.log" same_float "Natural logarithm" ELEMENTWISE [];
    MISH "nn.mish" same_float "x * tanh(softplus(x))" ELEMENTWISE [];
    NEG "nn.neg" same_numeric "Negation" ELEMENTWISE [];
    NOT "nn.not" bool_unary "Logical negation" ELEMENTWISE [];
    RECIPROCAL "nn.reciprocal" same_float "1 / x" ELEMENTWISE [];
    RELU "nn.relu" same_numeric "max(x, 0)" IDEMPOTENT [];
    ROUND "nn.round" same_float "Rounds half to even" IDEMPOTENT [];
    SELU "nn.selu" same_float "Scaled exponential linear unit" ELEMENTWISE
        [attr("alpha", AttrKind::Float, AttrDefault::Float(1.673_263_192_176_818_8)),
         attr("gamma", AttrKind::Float, AttrDefault::Float(1.050_701_022_148_132_3))];
    SHRINK "nn.shrink" same_numeric "x + bias if x < -lambd, x - bias if x > lambd, else 0" ELEMENTWISE
        [attr("bias", AttrKind::Float, AttrDefault::Float(0.0)), attr("lambd", AttrKind::Float, AttrDefault::Float(0.5))];
    SIGMOID "nn.sigmoid" same_float "1 / (1 + exp(-x))" ELEMENTWISE [];
    SIGN "nn.sign" same_numeric "-1, 0 or 1 by the sign of x" IDEMPOTENT [];
    SIN "nn.sin" same_float "Sine" ELEMENTWISE [];
    SINH "nn.sinh" same_float "Hyperbolic sine" ELEMENTWISE [];
    SOFTPLUS "nn.softplus" same_float "log(1 + exp(x))" ELEMENTWISE [];
    SOFTSIGN "nn.softsign" same_float "x / (1 + |x|)" ELEMENTWISE [];
    SQRT "nn.sqrt" same_float "Square root" ELEMENTWISE [];
    SWISH "nn.swish" same_float "x * sigmoid(alpha * x) (SiLU when alpha = 1)" ELEMENTWISE
        [attr("alpha", AttrKind::Float, AttrDefault::Float(1.0))];
    TAN "nn.tan" same_float "Tangent" ELEMENTWISE [];
    TANH "nn.tanh" same_float "Hyperbolic tangent" ELEMENTWISE [];
    THRESHOLDED_RELU "nn.thresholded_relu" same_float "x if x > alpha else 0" ELEMENTWISE
        [attr("alpha", AttrKind::Float, AttrDefault::Float(1.0))];
}

/// `nn.clip %x, %min?, %max?`: bounds are optional scalar operands.
pub const CLIP: OpDef = OpDef {
    name: "nn.clip",
    summary: "Clamps to [min, max]; absent bounds do not clamp",
    inputs: Arity::range(1, 3),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::ELEMENTWISE,
    static_operands: &[],
    infer: infer_clip,
};

macro_rules! nary {
    ($($c:ident $name:literal $infer:ident $arity:expr, $traits:ident, $summary:literal [$($a:expr),*];)*) => {$(
        #[doc = $summary]
        pub const $c: OpDef = OpDef {
            name: $name,
            summary: $summary,
            inputs: $arity,
            outputs: Arity::exactly(1),
            attrs: &[$($a),*],
            traits: Traits::$traits,
            static_operands: &[],
            infer: $infer,
        };
    )*};
}

nary! {
    ADD "nn.add" broadcast_numeric Arity::exactly(2), COMMUTATIVE, "Sum with broadcasting" [];
    AND "nn.and" logic Arity::exactly(2), COMMUTATIVE, "Logical and with broadcasting" [];
    BIT_SHIFT "nn.bit_shift" infer_bit_shift Arity::exactly(2), ELEMENTWISE, "Shifts integers left or right"
        [attr("direction", AttrKind::Enum(ShiftDirection::NAMES), AttrDefault::Required)];
    BITWISE_AND "nn.bitwise_and" broadcast_int Arity::exactly(2), COMMUTATIVE, "Bitwise and of integers with broadcasting" [];
    BITWISE_OR "nn.bitwise_or" broadcast_int Arity::exactly(2), COMMUTATIVE, "Bitwise or of integers with broadcasting" [];
    BITWISE_XOR "nn.bitwise_xor" broadcast_int Arity::exactly(2), COMMUTATIVE, "Bitwise exclusive or of integers with broadcasting" [];
    DIV "nn.div" broadcast_numeric Arity::exactly(2), ELEMENTWISE, "Quotient with broadcasting (integers truncate)" [];
    EQUAL "nn.equal" compare Arity::exactly(2), COMMUTATIVE, "a == b" [];
    GREATER "nn.greater" compare Arity::exactly(2), ELEMENTWISE, "a > b" [];
    GREATER_OR_EQUAL "nn.greater_or_equal" compare Arity::exactly(2), ELEMENTWISE, "a >= b" [];
    LESS "nn.less" compare Arity::exactly(2), ELEMENTWISE, "a < b" [];
    LESS_OR_EQUAL "nn.less_or_equal" compare Arity::exactly(2), ELEMENTWISE, "a <= b" [];
    MAX "nn.max" broadcast_numeric Arity::at_least(1), COMMUTATIVE, "Elementwise maximum of all operands (NaN propagates)" [];
    MEAN "nn.mean" broadcast_numeric Arity::at_least(1), COMMUTATIVE, "Elementwise mean of all operands" [];
    MIN "nn.min" broadcast_numeric Arity::at_least(1), COMMUTATIVE, "Elementwise minimum of all operands (NaN propagates)" [];
    MOD "nn.mod" infer_mod Arity::exactly(2), ELEMENTWISE, "Remainder: sign of the divisor, or of the dividend when fmod = 1"
        [attr("fmod", AttrKind::Bool, AttrDefault::Bool(false))];
    MUL "nn.mul" broadcast_numeric Arity::exactly(2), COMMUTATIVE, "Product with broadcasting" [];
    OR "nn.or" logic Arity::exactly(2), COMMUTATIVE, "Logical or with broadcasting" [];
    POW "nn.pow" infer_pow Arity::exactly(2), ELEMENTWISE, "base ^ exponent with broadcasting" [];
    PRELU "nn.prelu" infer_prelu Arity::exactly(2), ELEMENTWISE, "x if x >= 0 else slope * x" [];
    SUB "nn.sub" broadcast_numeric Arity::exactly(2), ELEMENTWISE, "Difference with broadcasting" [];
    SUM "nn.sum" broadcast_numeric Arity::at_least(1), COMMUTATIVE, "Elementwise sum of all operands" [];
    WHERE "nn.where" infer_where Arity::exactly(3), ELEMENTWISE, "Selects from the second or third operand by a bool condition" [];
    XOR "nn.xor" logic Arity::exactly(2), COMMUTATIVE, "Logical exclusive or with broadcasting" [];
}
