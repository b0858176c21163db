//! Element types: the stable `kiln_dtype` codes and their sizes.
//!
//! Invariant: codes never change meaning; a new type gets a new code.

/// An element type, with the stable code used in the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DType {
    F64 = 1,
    F32 = 2,
    F16 = 3,
    BF16 = 4,
    F8E4M3FN = 5,
    F8E5M2 = 6,
    NF4 = 7,
    I64 = 8,
    I32 = 9,
    I16 = 10,
    I8 = 11,
    I4 = 12,
    U64 = 13,
    U32 = 14,
    U16 = 15,
    U8 = 16,
    U4 = 17,
    Bool = 18,
    F8E4M3FNUZ = 19,
    F8E5M2FNUZ = 20,
    F4E2M1 = 21,
    F8E8M0 = 22,
    I2 = 23,
    U2 = 24,
}

impl DType {
    /// All types, in code order.
    pub const ALL: [DType; 24] = [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F8E4M3FN,
        DType::F8E5M2,
        DType::NF4,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::I4,
        DType::U64,
        DType::U32,
        DType::U16,
        DType::U8,
        DType::U4,
        DType::Bool,
        DType::F8E4M3FNUZ,
        DType::F8E5M2FNUZ,
        DType::F4E2M1,
        DType::F8E8M0,
        DType::I2,
        DType::U2,
    ];

    /// The type with ABI code `code`, if any.
    pub fn from_code(code: u32) -> Option<DType> {
        let index = usize::try_from(code).ok()?.checked_sub(1)?;
        Self::ALL.get(index).copied()
    }

    /// The stable ABI code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Bits per element; 4-bit types are packed two per byte.
    pub fn bits(self) -> u32 {
        use DType::*;
        match self {
            F64 | I64 | U64 => 64,
            F32 | I32 | U32 => 32,
            F16 | BF16 | I16 | U16 => 16,
            F8E4M3FN | F8E5M2 | F8E4M3FNUZ | F8E5M2FNUZ | F8E8M0 | I8 | U8 | Bool => 8,
            NF4 | I4 | U4 | F4E2M1 => 4,
            I2 | U2 => 2,
        }
    }

    /// Required alignment of a data pointer: the natural alignment of the
    /// element, at least 1 (packed 4-bit types need 1).
    pub fn align(self) -> usize {
        (self.bits() as usize / 8).max(1)
    }

    /// Lower-case name, as in `kiln_dtype_name`.
    pub fn name(self) -> &'static str {
        self.c_name().to_str().unwrap_or_default()
    }

    /// NUL-terminated name for the C API.
    pub fn c_name(self) -> &'static core::ffi::CStr {
        use DType::*;
        match self {
            F64 => c"f64",
            F32 => c"f32",
            F16 => c"f16",
            BF16 => c"bf16",
            F8E4M3FN => c"f8e4m3fn",
            F8E5M2 => c"f8e5m2",
            NF4 => c"nf4",
            I64 => c"i64",
            I32 => c"i32",
            I16 => c"i16",
            I8 => c"i8",
            I4 => c"i4",
            U64 => c"u64",
            U32 => c"u32",
            U16 => c"u16",
            U8 => c"u8",
            U4 => c"u4",
            Bool => c"bool",
            F8E4M3FNUZ => c"f8e4m3fnuz",
            F8E5M2FNUZ => c"f8e5m2fnuz",
            F4E2M1 => c"f4e2m1",
            F8E8M0 => c"f8e8m0",
            I2 => c"i2",
            U2 => c"u2",
        }
    }

    /// Bytes a tensor of `shape` occupies: `ceil(elements * bits / 8)`.
    /// `None` when a dimension is negative or the size exceeds `isize::MAX`
    /// (no buffer can be larger). A zero dimension makes the tensor empty
    /// whatever the other dimensions are.
    pub fn byte_size(self, shape: &[i64]) -> Option<u64> {
        // Every dim non-negative; a zero dim anywhere makes the tensor
        // empty whatever the others (even ones whose product overflows).
        let mut empty = false;
        for &dim in shape {
            if dim < 0 {
                return None;
            }
            empty |= dim == 0;
        }
        if empty {
            return Some(0);
        }
        let mut elements: u128 = 1;
        for &dim in shape {
            // Stays exact up to u128; beyond that the size is far too large
            // anyway.
            elements = elements.checked_mul(u128::from(dim.unsigned_abs()))?;
        }
        let bytes = elements.checked_mul(u128::from(self.bits()))?.div_ceil(8);
        u64::try_from(bytes)
            .ok()
            .filter(|&b| b <= isize::MAX as u64)
    }
}

impl core::fmt::Display for DType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_the_abi_table() {
        let bits = [
            64, 32, 16, 16, 8, 8, 4, 64, 32, 16, 8, 4, 64, 32, 16, 8, 4, 8, 8, 8, 4, 8, 2, 2,
        ];
        for (i, dtype) in DType::ALL.iter().enumerate() {
            let code = u32::try_from(i + 1).unwrap();
            assert_eq!(dtype.code(), code);
            assert_eq!(DType::from_code(code), Some(*dtype));
            assert_eq!(dtype.bits(), bits[i], "{dtype}");
        }
        assert_eq!(DType::from_code(0), None);
        assert_eq!(DType::from_code(25), None);
        assert_eq!(DType::from_code(u32::MAX), None);
    }

    #[test]
    fn byte_size_rounds_packed_types_up_and_rejects_bad_shapes() {
        assert_eq!(DType::F32.byte_size(&[2, 3]), Some(24));
        assert_eq!(DType::F32.byte_size(&[]), Some(4));
        assert_eq!(DType::U4.byte_size(&[3]), Some(2));
        assert_eq!(DType::NF4.byte_size(&[4]), Some(2));
        assert_eq!(DType::I2.byte_size(&[5]), Some(2));
        assert_eq!(DType::F4E2M1.byte_size(&[3]), Some(2));
        assert_eq!(DType::F64.byte_size(&[0, 5]), Some(0));
        // A zero after dims whose product overflows: still empty (a fuzz find).
        assert_eq!(
            DType::F32.byte_size(&[i64::MAX, i64::MAX, i64::MAX, 0]),
            Some(0)
        );
        assert_eq!(DType::F32.byte_size(&[i64::MAX, 0, -1]), None);
        assert_eq!(DType::F32.byte_size(&[-1]), None);
        assert_eq!(DType::F64.byte_size(&[i64::MAX, i64::MAX]), None);
        assert_eq!(DType::F64.byte_size(&[1 << 62]), None);
        // 2^60 f64 = 2^63 bytes: one more than isize::MAX.
        assert_eq!(DType::F64.byte_size(&[1 << 60]), None);
        assert_eq!(DType::U8.byte_size(&[i64::MAX]), Some(i64::MAX as u64));
        // Empty whatever the other extents, but still no negative ones.
        assert_eq!(DType::F32.byte_size(&[1 << 40, 1 << 40, 0]), Some(0));
        assert_eq!(DType::F32.byte_size(&[0, -1]), None);
    }

    #[test]
    fn alignment_is_natural_and_at_least_one() {
        assert_eq!(DType::F64.align(), 8);
        assert_eq!(DType::BF16.align(), 2);
        assert_eq!(DType::Bool.align(), 1);
        assert_eq!(DType::I4.align(), 1);
        assert_eq!(DType::F32.name(), "f32");
    }
}
