//! Element types. This is the single place where a dtype's name, bit width
//! and packing are defined; everything else (the text format, the ONNX
//! frontend, the runtime ABI codes, the interpreter) asks this table.
//!
//! Invariant: sub-byte types are packed: `nf4`, `i4`, `u4` and `f4e2m1` two
//! elements per byte, `i2` and `u2` four, the first element in the lowest bits
//! (the ONNX int4/int2 convention, `codec::packing`); every other type takes a
//! whole number of bytes per element, `bool` one byte. The value encodings of
//! the small float types live in `codec::float`.

use std::fmt;

macro_rules! dtypes {
    ($($variant:ident => $name:literal, $bits:literal, $code:literal, $class:ident;)*) => {
        /// An element type of a Kiln tensor.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DType {
            $($variant,)*
        }

        impl DType {
            /// Every dtype, in declaration order.
            pub const ALL: &'static [DType] = &[$(DType::$variant,)*];

            /// The name used in the text format (`f32`, `bf16`, `nf4`, ...).
            pub fn name(self) -> &'static str {
                match self { $(DType::$variant => $name,)* }
            }

            /// Parses a text-format dtype name.
            pub fn from_name(name: &str) -> Option<DType> {
                match name { $($name => Some(DType::$variant),)* _ => None }
            }

            /// Storage bits of one element (4 for the packed nibble types).
            pub fn bits(self) -> u32 {
                match self { $(DType::$variant => $bits,)* }
            }

            /// The stable numeric code used by the runtime ABI (`kiln.h`'s
            /// `kiln_dtype`). Codes are never reused or renumbered.
            pub fn abi_code(self) -> u32 {
                match self { $(DType::$variant => $code,)* }
            }

            /// Inverse of [`DType::abi_code`].
            pub fn from_abi_code(code: u32) -> Option<DType> {
                match code { $($code => Some(DType::$variant),)* _ => None }
            }

            /// The broad numeric class of this dtype.
            pub fn class(self) -> DTypeClass {
                match self { $(DType::$variant => DTypeClass::$class,)* }
            }
        }
    };
}

dtypes! {
    F64 => "f64", 64, 1, Float;
    F32 => "f32", 32, 2, Float;
    F16 => "f16", 16, 3, Float;
    BF16 => "bf16", 16, 4, Float;
    F8E4M3FN => "f8e4m3fn", 8, 5, Float;
    F8E5M2 => "f8e5m2", 8, 6, Float;
    NF4 => "nf4", 4, 7, Quant;
    I64 => "i64", 64, 8, SignedInt;
    I32 => "i32", 32, 9, SignedInt;
    I16 => "i16", 16, 10, SignedInt;
    I8 => "i8", 8, 11, SignedInt;
    I4 => "i4", 4, 12, SignedInt;
    U64 => "u64", 64, 13, UnsignedInt;
    U32 => "u32", 32, 14, UnsignedInt;
    U16 => "u16", 16, 15, UnsignedInt;
    U8 => "u8", 8, 16, UnsignedInt;
    U4 => "u4", 4, 17, UnsignedInt;
    Bool => "bool", 8, 18, Bool;
    F8E4M3FNUZ => "f8e4m3fnuz", 8, 19, Float;
    F8E5M2FNUZ => "f8e5m2fnuz", 8, 20, Float;
    F4E2M1 => "f4e2m1", 4, 21, Float;
    F8E8M0 => "f8e8m0", 8, 22, Float;
    I2 => "i2", 2, 23, SignedInt;
    U2 => "u2", 2, 24, UnsignedInt;
}

/// Broad numeric class of a dtype, for verifiers ("float-only op") and
/// promotion rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DTypeClass {
    /// IEEE-like floating point, including the 8-bit float formats.
    Float,
    /// Two's complement signed integers.
    SignedInt,
    /// Unsigned integers.
    UnsignedInt,
    /// One byte per element, 0 or 1.
    Bool,
    /// Code-book quantized storage (NF4): values only exist after
    /// dequantization through the `quant` dialect.
    Quant,
}

impl DType {
    /// Whether this is a floating-point type (f64 … f8e5m2, f8e4m3fnuz,
    /// f8e5m2fnuz, f4e2m1 and the exponent-only f8e8m0).
    pub fn is_float(self) -> bool {
        self.class() == DTypeClass::Float
    }

    /// Whether this is a signed or unsigned integer type.
    pub fn is_int(self) -> bool {
        matches!(
            self.class(),
            DTypeClass::SignedInt | DTypeClass::UnsignedInt
        )
    }

    /// Whether values of this type carry a sign.
    pub fn is_signed(self) -> bool {
        matches!(self.class(), DTypeClass::SignedInt | DTypeClass::Float)
    }

    /// Whether several elements share one byte.
    pub fn is_packed(self) -> bool {
        self.bits() < 8
    }

    /// The dtype generated code holds values of this type in: float8, float4
    /// and E8M0 values as the exact `f32`, 2- and 4-bit values (and NF4
    /// codes) one per byte. Such
    /// storage-only dtypes are converted only at graph boundaries (inputs,
    /// outputs, weights); intermediates live in the compute dtype.
    pub fn compute_dtype(self) -> DType {
        match self {
            DType::F8E4M3FN
            | DType::F8E5M2
            | DType::F8E4M3FNUZ
            | DType::F8E5M2FNUZ
            | DType::F4E2M1
            | DType::F8E8M0 => DType::F32,
            DType::I4 | DType::I2 | DType::NF4 => DType::I8,
            DType::U4 | DType::U2 => DType::U8,
            d => d,
        }
    }

    /// Whether values of this dtype are held in another compute dtype
    /// ([`DType::compute_dtype`]).
    pub fn is_storage_only(self) -> bool {
        self.compute_dtype() != self
    }

    /// Bytes needed to store `numel` elements of this type, or `None` on
    /// overflow. Packed types round up to whole bytes.
    pub fn storage_bytes(self, numel: u64) -> Option<u64> {
        let bits = numel.checked_mul(u64::from(self.bits()))?;
        Some(bits.div_ceil(8))
    }

    /// Largest finite value of a float dtype (`f64::MAX` for other
    /// dtypes); float results saturate to it where ONNX clamps.
    pub fn max_finite(self) -> f64 {
        match self {
            DType::F32 => f64::from(f32::MAX),
            DType::F16 => 65504.0,
            DType::BF16 => 3.389_531_389_251_535_5e38,
            d => match crate::codec::FloatFormat::of(d) {
                Some(f) => f64::from(f.max()),
                None => f64::MAX,
            },
        }
    }

    /// Size in bytes of one element; `None` for packed sub-byte types.
    pub fn byte_size(self) -> Option<usize> {
        if self.is_packed() {
            None
        } else {
            Some(self.bits() as usize / 8)
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for &d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
            assert_eq!(DType::from_abi_code(d.abi_code()), Some(d));
        }
        assert_eq!(DType::from_name("float"), None);
    }

    #[test]
    fn packed_storage_rounds_up() {
        assert_eq!(DType::I4.storage_bytes(3), Some(2));
        assert_eq!(DType::NF4.storage_bytes(4), Some(2));
        assert_eq!(DType::F32.storage_bytes(3), Some(12));
        assert_eq!(DType::Bool.storage_bytes(5), Some(5));
        assert_eq!(DType::I2.storage_bytes(5), Some(2));
        assert_eq!(DType::F4E2M1.storage_bytes(3), Some(2));
        assert_eq!(DType::F64.storage_bytes(u64::MAX), None);
    }
}
