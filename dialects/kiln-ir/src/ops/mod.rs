//! Op definitions: one closed enum of ops, each with exactly one [`OpDef`].
//!
//! An op's name, summary, operand/result arity, attribute schema (kinds and
//! defaults), traits and shape/dtype inference are all found from its
//! definition, which lives in the family module named in the table below.
//! Reference semantics live in `kiln-interp` and lowering in `kiln-codegen`;
//! both match exhaustively on [`OpKind`], so adding an op here fails to
//! compile until it has semantics and a lowering decision.
//!
//! Op names are strings only in the text format and the frontends' import
//! tables. Everything else matches on [`OpKind`].

pub mod attention;
mod constant;
mod elementwise;
pub mod fused;
pub mod infer;
pub mod layout;
mod linalg;
mod norm;
mod pool;
mod quant;
mod reduce;
pub mod resample;
mod shape;
pub mod signal;

pub use elementwise::{cast_mode, GeluApprox, ShiftDirection};
pub use fused::FusedKind;
pub use infer::{InferCtx, InferError};
pub use layout::{DataLayout, PackLayout};
pub use linalg::{parse_einsum, AutoPad, EinsumSpec, Window};
pub use quant::{
    dequantized_dtype, dynamic_quantize_linear_body, qconv_shape, qmatmul_shape,
    quantize_weight_params, DqlOperand, DqlShape, DqlStep, QConvShape, QMatmulShape, QuantPart,
    DQL_SCALE, DQL_Y, DQL_ZERO_POINT, QMATMUL_SCALES, QMATMUL_WEIGHTS,
};
pub use shape::{DepthToSpaceMode, PadMode, ScatterReduction};

use crate::attr::AttrKind;
use crate::types::TensorType;
use std::collections::HashMap;
use std::sync::OnceLock;

/// How many operands or results an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arity {
    /// Fewest allowed.
    pub min: usize,
    /// Most allowed (`usize::MAX` for variadic).
    pub max: usize,
}

impl Arity {
    /// Exactly `n`.
    pub const fn exactly(n: usize) -> Arity {
        Arity { min: n, max: n }
    }
    /// Between `min` and `max` inclusive; trailing operands are optional.
    pub const fn range(min: usize, max: usize) -> Arity {
        Arity { min, max }
    }
    /// At least `min`, no upper bound.
    pub const fn at_least(min: usize) -> Arity {
        Arity {
            min,
            max: usize::MAX,
        }
    }
    /// Whether `n` is allowed.
    pub fn allows(self, n: usize) -> bool {
        n >= self.min && n <= self.max
    }
}

/// The default of an attribute that a node may omit.
#[derive(Clone, Copy, Debug)]
pub enum AttrDefault {
    /// The attribute must be present.
    Required,
    /// The attribute may be absent and then has no value (the op's
    /// semantics say what absence means).
    Absent,
    /// Integer default.
    Int(i64),
    /// Float default.
    Float(f64),
    /// Bool default.
    Bool(bool),
    /// String default.
    Str(&'static str),
    /// Integer-list default.
    Ints(&'static [i64]),
}

/// One entry of an op's attribute schema.
#[derive(Clone, Copy, Debug)]
pub struct AttrSpec {
    /// Attribute name (snake_case).
    pub name: &'static str,
    /// Expected kind.
    pub kind: AttrKind,
    /// Default when omitted.
    pub default: AttrDefault,
}

/// Shorthand for building [`AttrSpec`] tables.
pub const fn attr(name: &'static str, kind: AttrKind, default: AttrDefault) -> AttrSpec {
    AttrSpec {
        name,
        kind,
        default,
    }
}

/// Op traits that passes may rely on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traits {
    /// Result element i depends only on operand elements at the broadcast
    /// position i.
    pub elementwise: bool,
    /// Swapping the first two operands does not change the result.
    pub commutative: bool,
    /// Result equals the sole operand (`f(f(x)) = f(x)`); canonicalize may
    /// drop a repeated application.
    pub idempotent: bool,
}

impl Traits {
    /// No traits.
    pub const NONE: Traits = Traits {
        elementwise: false,
        commutative: false,
        idempotent: false,
    };
    /// Elementwise.
    pub const ELEMENTWISE: Traits = Traits {
        elementwise: true,
        commutative: false,
        idempotent: false,
    };
    /// Elementwise and commutative.
    pub const COMMUTATIVE: Traits = Traits {
        elementwise: true,
        commutative: true,
        idempotent: false,
    };
    /// Elementwise and idempotent.
    pub const IDEMPOTENT: Traits = Traits {
        elementwise: true,
        commutative: false,
        idempotent: true,
    };
}

/// Shape/dtype inference: result types from operand types, attributes and
/// the data of constant operands.
pub type InferFn = fn(&InferCtx<'_>) -> Result<Vec<TensorType>, InferError>;

/// The single definition of an op.
#[derive(Clone, Copy, Debug)]
pub struct OpDef {
    /// Dialect-qualified name, as printed (`nn.matmul`).
    pub name: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Operand arity.
    pub inputs: Arity,
    /// Result arity.
    pub outputs: Arity,
    /// Attribute schema; attributes not listed are rejected.
    pub attrs: &'static [AttrSpec],
    /// Traits.
    pub traits: Traits,
    /// Operands whose *values* (not only types) decide result shapes or
    /// are needed by the code generator at compile time (Reshape's shape,
    /// a reduction's axes, TopK's k). Static-shape compilation needs them
    /// to be constants; a driver may specialize graph inputs feeding them.
    pub static_operands: &'static [usize],
    /// Shape and dtype inference.
    pub infer: InferFn,
}

impl OpDef {
    /// The schema entry for an attribute.
    pub fn attr_spec(&self, name: &str) -> Option<&'static AttrSpec> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// The dialect prefix (`nn`, `quant`).
    pub fn dialect(&self) -> &'static str {
        self.name.split_once('.').map_or("", |(d, _)| d)
    }
}

macro_rules! ops {
    ($($variant:ident = $def:path,)*) => {
        /// Every Kiln op. Closed: passes match on it exhaustively.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum OpKind {
            $(#[doc = concat!("See [`", stringify!($def), "`].")] $variant,)*
        }

        impl OpKind {
            /// Every op, in table order.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$variant,)*];

            /// This op's definition.
            pub fn def(self) -> &'static OpDef {
                match self { $(OpKind::$variant => &$def,)* }
            }
        }
    };
}

// The op table. Grouped by family module; within a family, alphabetical.
ops! {
    // constant.rs
    Constant = constant::CONSTANT,
    // elementwise.rs: unary
    Abs = elementwise::ABS,
    Acos = elementwise::ACOS,
    Acosh = elementwise::ACOSH,
    Asin = elementwise::ASIN,
    Asinh = elementwise::ASINH,
    Atan = elementwise::ATAN,
    Atanh = elementwise::ATANH,
    BitCast = elementwise::BIT_CAST,
    BitwiseNot = elementwise::BITWISE_NOT,
    Cast = elementwise::CAST,
    Ceil = elementwise::CEIL,
    Celu = elementwise::CELU,
    Clip = elementwise::CLIP,
    Cos = elementwise::COS,
    Cosh = elementwise::COSH,
    Elu = elementwise::ELU,
    Erf = elementwise::ERF,
    Exp = elementwise::EXP,
    Floor = elementwise::FLOOR,
    Gelu = elementwise::GELU,
    HardSigmoid = elementwise::HARD_SIGMOID,
    HardSwish = elementwise::HARD_SWISH,
    Identity = elementwise::IDENTITY,
    IsInf = elementwise::IS_INF,
    IsNan = elementwise::IS_NAN,
    LeakyRelu = elementwise::LEAKY_RELU,
    Log = elementwise::LOG,
    Mish = elementwise::MISH,
    Neg = elementwise::NEG,
    Not = elementwise::NOT,
    Reciprocal = elementwise::RECIPROCAL,
    Relu = elementwise::RELU,
    Round = elementwise::ROUND,
    Selu = elementwise::SELU,
    Shrink = elementwise::SHRINK,
    Sigmoid = elementwise::SIGMOID,
    Sign = elementwise::SIGN,
    Sin = elementwise::SIN,
    Sinh = elementwise::SINH,
    Softplus = elementwise::SOFTPLUS,
    Softsign = elementwise::SOFTSIGN,
    Sqrt = elementwise::SQRT,
    Swish = elementwise::SWISH,
    Tan = elementwise::TAN,
    Tanh = elementwise::TANH,
    ThresholdedRelu = elementwise::THRESHOLDED_RELU,
    // elementwise.rs: binary and variadic, NumPy broadcasting
    Add = elementwise::ADD,
    And = elementwise::AND,
    BitShift = elementwise::BIT_SHIFT,
    BitwiseAnd = elementwise::BITWISE_AND,
    BitwiseOr = elementwise::BITWISE_OR,
    BitwiseXor = elementwise::BITWISE_XOR,
    Div = elementwise::DIV,
    Equal = elementwise::EQUAL,
    Greater = elementwise::GREATER,
    GreaterOrEqual = elementwise::GREATER_OR_EQUAL,
    Less = elementwise::LESS,
    LessOrEqual = elementwise::LESS_OR_EQUAL,
    Max = elementwise::MAX,
    Mean = elementwise::MEAN,
    Min = elementwise::MIN,
    Mod = elementwise::MOD,
    Mul = elementwise::MUL,
    Or = elementwise::OR,
    Pow = elementwise::POW,
    PRelu = elementwise::PRELU,
    Sub = elementwise::SUB,
    Sum = elementwise::SUM,
    Where = elementwise::WHERE,
    Xor = elementwise::XOR,
    // linalg.rs
    Conv = linalg::CONV,
    ConvTranspose = linalg::CONV_TRANSPOSE,
    Einsum = linalg::EINSUM,
    Gemm = linalg::GEMM,
    MatMul = linalg::MATMUL,
    // pool.rs
    AveragePool = pool::AVERAGE_POOL,
    GlobalAveragePool = pool::GLOBAL_AVERAGE_POOL,
    GlobalLpPool = pool::GLOBAL_LP_POOL,
    GlobalMaxPool = pool::GLOBAL_MAX_POOL,
    LpPool = pool::LP_POOL,
    Lrn = pool::LRN,
    MaxPool = pool::MAX_POOL,
    // reduce.rs
    ArgMax = reduce::ARG_MAX,
    ArgMin = reduce::ARG_MIN,
    CumProd = reduce::CUMPROD,
    CumSum = reduce::CUMSUM,
    ReduceL1 = reduce::REDUCE_L1,
    ReduceL2 = reduce::REDUCE_L2,
    ReduceLogSum = reduce::REDUCE_LOG_SUM,
    ReduceLogSumExp = reduce::REDUCE_LOG_SUM_EXP,
    ReduceMax = reduce::REDUCE_MAX,
    ReduceMean = reduce::REDUCE_MEAN,
    ReduceMin = reduce::REDUCE_MIN,
    ReduceProd = reduce::REDUCE_PROD,
    ReduceSum = reduce::REDUCE_SUM,
    ReduceSumSquare = reduce::REDUCE_SUM_SQUARE,
    TopK = reduce::TOP_K,
    // norm.rs
    BatchNorm = norm::BATCH_NORM,
    Hardmax = norm::HARDMAX,
    InstanceNorm = norm::INSTANCE_NORM,
    LayerNorm = norm::LAYER_NORM,
    LogSoftmax = norm::LOG_SOFTMAX,
    LpNormalization = norm::LP_NORMALIZATION,
    MeanVarianceNormalization = norm::MEAN_VARIANCE_NORMALIZATION,
    RmsNorm = norm::RMS_NORM,
    Softmax = norm::SOFTMAX,
    // shape.rs
    Concat = shape::CONCAT,
    ConstantOfShape = shape::CONSTANT_OF_SHAPE,
    DepthToSpace = shape::DEPTH_TO_SPACE,
    Dropout = shape::DROPOUT,
    Expand = shape::EXPAND,
    EyeLike = shape::EYE_LIKE,
    Flatten = shape::FLATTEN,
    Gather = shape::GATHER,
    GatherElements = shape::GATHER_ELEMENTS,
    GatherNd = shape::GATHER_ND,
    GridSample = shape::GRID_SAMPLE,
    NonZero = shape::NON_ZERO,
    OneHot = shape::ONE_HOT,
    Pad = shape::PAD,
    Range = shape::RANGE,
    Reshape = shape::RESHAPE,
    Resize = shape::RESIZE,
    ScatterElements = shape::SCATTER_ELEMENTS,
    ScatterNd = shape::SCATTER_ND,
    Shape = shape::SHAPE,
    Size = shape::SIZE,
    Slice = shape::SLICE,
    SpaceToDepth = shape::SPACE_TO_DEPTH,
    Split = shape::SPLIT,
    Squeeze = shape::SQUEEZE,
    Tile = shape::TILE,
    Transpose = shape::TRANSPOSE,
    Trilu = shape::TRILU,
    Unsqueeze = shape::UNSQUEEZE,
    // layout.rs
    Pack = layout::PACK,
    Unpack = layout::UNPACK,
    // fused.rs
    Fused = fused::FUSED,
    // signal.rs
    Dft = signal::DFT,
    Stft = signal::STFT,
    // attention.rs
    Attention = attention::ATTENTION,
    RotaryEmbedding = attention::ROTARY_EMBEDDING,
    // quant.rs
    DequantizeLinear = quant::DEQUANTIZE_LINEAR,
    Nf4Dequantize = quant::NF4_DEQUANTIZE,
    QConv = quant::QCONV,
    QConvInteger = quant::QCONV_INTEGER,
    QMatMul = quant::QMATMUL,
    QMatMulInteger = quant::QMATMUL_INTEGER,
    QuantizeLinear = quant::QUANTIZE_LINEAR,
    QuantizeWeight = quant::QUANTIZE_WEIGHT,
}

fn by_name() -> &'static HashMap<&'static str, OpKind> {
    static MAP: OnceLock<HashMap<&'static str, OpKind>> = OnceLock::new();
    MAP.get_or_init(|| OpKind::ALL.iter().map(|&k| (k.def().name, k)).collect())
}

impl OpKind {
    /// The printed name (`nn.add`).
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// Looks an op up by its printed name.
    pub fn from_name(name: &str) -> Option<OpKind> {
        by_name().get(name).copied()
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests_families;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_qualified() {
        let mut seen = std::collections::HashSet::new();
        for &k in OpKind::ALL {
            let d = k.def();
            assert!(seen.insert(d.name), "duplicate op name {}", d.name);
            assert!(
                matches!(d.dialect(), "nn" | "quant"),
                "{} has no known dialect",
                d.name
            );
            assert_eq!(OpKind::from_name(d.name), Some(k));
            assert!(!d.summary.is_empty(), "{} has no summary", d.name);
            assert!(d.inputs.min <= d.inputs.max && d.outputs.min <= d.outputs.max);
            for &i in d.static_operands {
                assert!(
                    i < d.inputs.max,
                    "{}: static operand #{i} out of range",
                    d.name
                );
            }
            let mut attrs = std::collections::HashSet::new();
            for a in d.attrs {
                assert!(
                    attrs.insert(a.name),
                    "{}: duplicate attr {}",
                    d.name,
                    a.name
                );
            }
        }
    }
}
