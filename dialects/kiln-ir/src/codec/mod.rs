//! Element codecs: how values of the quantized and small float dtypes are
//! encoded, decoded and packed. This is the one definition the interpreter,
//! the lowering, the quantization pass and the frontends use.
//!
//! - [`float`]: float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ), float4 E2M1 and
//!   E8M0 — encode/decode written once against [`Scalar32`], so the
//!   interpreter runs it on values ([`Exact`]) and the lowering emits it as
//!   MLIR (`kiln-codegen`'s implementation of the trait).
//! - [`packing`]: sub-byte integers and codes (2 and 4 bits) packed into
//!   bytes, lowest element in the lowest bits (ONNX's INT4/INT2 layout).
//! - [`block`]: block-wise weight quantization (NF4 with absmax and double
//!   quantization as bitsandbytes stores it, MXFP4, NVFP4, integer and float8
//!   scales per block or per channel) and the matching dequantization.
//!
//! Invariant: every encoder here is tested bit for bit against `ml_dtypes`
//! and ONNX's reference implementation (`dialects/kiln-ir/tests/codec.rs`).

pub mod block;
pub mod float;
pub mod packing;
pub mod scalar;

pub use float::{CastMode, E8m0Rounding, FloatFormat};
pub use scalar::{Exact, FCmp, ICmp, Scalar32};

/// The NF4 code book (the 16 NormalFloat quantiles of QLoRA), indexed by
/// 4-bit code, as bitsandbytes writes them (decimal digits of its `f32`
/// table); the code book values are these rounded to `f32`
/// ([`nf4_value`]).
pub const NF4_CODE_BOOK_DIGITS: [f64; 16] = [
    -1.0,
    -0.696_192_800_998_687_7,
    -0.525_073_051_452_636_7,
    -0.394_917_488_098_144_53,
    -0.284_441_381_692_886_35,
    -0.184_773_430_228_233_34,
    -0.091_050_036_251_544_95,
    0.0,
    0.079_580_299_556_255_34,
    0.160_930_201_411_247_25,
    0.246_112_301_945_686_34,
    0.337_915_241_718_292_24,
    0.440_709_829_330_444_34,
    0.562_617_003_917_694_1,
    0.722_956_836_223_602_3,
    1.0,
];

/// The `f32` value of NF4 code `c` (low 4 bits).
pub fn nf4_value(c: u8) -> f32 {
    NF4_CODE_BOOK_DIGITS[usize::from(c & 0xF)] as f32
}

/// The NF4 code book as `f32`, indexed by code.
pub fn nf4_table() -> [f32; 16] {
    std::array::from_fn(|c| nf4_value(c as u8))
}
