//! Sub-byte elements packed into bytes: `8 / bits` elements per byte,
//! element `i` in bits `bits * (i % per_byte)` upwards (ONNX's layout for
//! INT4/UINT4/FLOAT4E2M1 and INT2/UINT2: the first element in the lowest
//! bits). The last byte of an incomplete group has zero high bits.

/// Elements per byte for a `bits`-bit element (1, 2, 4 or 8 bits).
pub fn per_byte(bits: u32) -> usize {
    debug_assert!(matches!(bits, 1 | 2 | 4 | 8));
    (8 / bits) as usize
}

/// The `bits`-bit code of element `i` of a packed buffer.
pub fn get(bytes: &[u8], bits: u32, i: usize) -> u8 {
    let per = per_byte(bits);
    let mask = ((1u16 << bits) - 1) as u8;
    (bytes[i / per] >> (bits as usize * (i % per))) & mask
}

/// Unpacks `n` codes.
pub fn unpack(bytes: &[u8], bits: u32, n: usize) -> Vec<u8> {
    (0..n).map(|i| get(bytes, bits, i)).collect()
}

/// Packs codes (only their low `bits` bits are kept).
pub fn pack(codes: impl IntoIterator<Item = u8>, bits: u32) -> Vec<u8> {
    let per = per_byte(bits);
    let mask = ((1u16 << bits) - 1) as u8;
    let mut out = Vec::new();
    for (i, c) in codes.into_iter().enumerate() {
        if i % per == 0 {
            out.push(0);
        }
        let last = out.len() - 1;
        out[last] |= (c & mask) << (bits as usize * (i % per));
    }
    out
}

/// Sign-extends a `bits`-bit code to a signed value.
pub fn sign_extend(code: u8, bits: u32) -> i8 {
    let s = 8 - bits;
    ((code << s) as i8) >> s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_onnx() {
        // ONNX: int2 [1, -2, 0, -1, 1] packs as 0b11_00_10_01, 0b01.
        let codes = [1u8, 2, 0, 3, 1];
        assert_eq!(pack(codes, 2), [0b1100_1001, 0b01]);
        assert_eq!(unpack(&[0b1100_1001, 0b01], 2, 5), codes);
        assert_eq!(pack([0xF1, 0x2], 4), [0x21]);
        assert_eq!(sign_extend(3, 2), -1);
        assert_eq!(sign_extend(2, 2), -2);
        assert_eq!(sign_extend(0x8, 4), -8);
        assert_eq!(sign_extend(0x7, 4), 7);
    }
}
