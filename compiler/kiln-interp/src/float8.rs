//! Hand-written conversions between `f64` and the two 8-bit float formats
//! ONNX uses, with round-to-nearest-even.
//!
//! - `f8e4m3fn`: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no
//!   infinities; NaN is `S.1111.111`; largest finite value 448.
//! - `f8e5m2`: 1 sign, 5 exponent (bias 15), 2 mantissa bits; IEEE-like
//!   with infinities (`S.11111.00`) and NaNs; largest finite value 57344.
//!
//! Encoding matches `ml_dtypes` (which the ONNX reference uses for
//! `saturate = 0`): a value that rounds above the largest finite value
//! becomes NaN (e4m3fn) or infinity (e5m2), and NaN keeps its sign. With
//! `saturate = 1` (ONNX's default) such values, infinities included, clamp
//! to the largest finite value of their sign, as ONNX's `saturate_cast`
//! clips before converting.

/// One of the two 8-bit float formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F8 {
    /// `f8e4m3fn`.
    E4M3FN,
    /// `f8e5m2`.
    E5M2,
}

impl F8 {
    fn man_bits(self) -> i32 {
        match self {
            F8::E4M3FN => 3,
            F8::E5M2 => 2,
        }
    }

    fn bias(self) -> i32 {
        match self {
            F8::E4M3FN => 7,
            F8::E5M2 => 15,
        }
    }

    /// Largest finite value.
    pub fn max(self) -> f64 {
        match self {
            F8::E4M3FN => 448.0,
            F8::E5M2 => 57344.0,
        }
    }

    /// The code of a NaN with the given sign bit.
    fn nan(self, sign: u8) -> u8 {
        match self {
            F8::E4M3FN => sign | 0x7F,
            F8::E5M2 => sign | 0x7E,
        }
    }

    /// Decodes one byte.
    pub fn decode(self, b: u8) -> f64 {
        let neg = b & 0x80 != 0;
        let mb = self.man_bits();
        let e = i32::from((b & 0x7F) >> mb);
        let m = f64::from(b & ((1 << mb) - 1));
        let emax_code = (1 << (7 - mb)) - 1;
        let v = match self {
            F8::E4M3FN if e == emax_code && m == 7.0 => f64::NAN,
            F8::E5M2 if e == emax_code => {
                if m == 0.0 {
                    f64::INFINITY
                } else {
                    f64::NAN
                }
            }
            _ if e == 0 => m * pow2(1 - self.bias() - mb),
            _ => (1.0 + m / f64::from(1 << mb)) * pow2(e - self.bias()),
        };
        if neg {
            -v
        } else {
            v
        }
    }

    /// Encodes `x` with round-to-nearest-even; see the module docs for what
    /// `saturate` does with values beyond the finite range.
    pub fn encode(self, x: f64, saturate: bool) -> u8 {
        let sign: u8 = if x.is_sign_negative() { 0x80 } else { 0 };
        if x.is_nan() {
            return self.nan(sign);
        }
        let a = x.abs();
        let overflow = || {
            if saturate {
                sign | self.encode_finite(self.max())
            } else {
                match self {
                    F8::E4M3FN => self.nan(sign),
                    F8::E5M2 => sign | 0x7C,
                }
            }
        };
        if a.is_infinite() {
            return overflow();
        }
        let r = self.round(a);
        if r > self.max() {
            return overflow();
        }
        sign | self.encode_finite(r)
    }

    /// Rounds a finite non-negative value to the format's grid, ignoring
    /// the upper range limit.
    fn round(self, a: f64) -> f64 {
        if a == 0.0 {
            return 0.0;
        }
        let emin = 1 - self.bias();
        let quantum = pow2(exponent(a).max(emin) - self.man_bits());
        // Division and multiplication by a power of two are exact here.
        (a / quantum).round_ties_even() * quantum
    }

    /// Encodes a non-negative value that is already on the grid and finite.
    fn encode_finite(self, r: f64) -> u8 {
        if r == 0.0 {
            return 0;
        }
        let mb = self.man_bits();
        let emin = 1 - self.bias();
        let e = exponent(r);
        if e < emin {
            (r / pow2(emin - mb)) as u8
        } else {
            let m = (r / pow2(e - mb)) as i32 - (1 << mb);
            (((e + self.bias()) << mb) | m) as u8
        }
    }
}

/// `2^e` for exponents well inside the f64 range.
fn pow2(e: i32) -> f64 {
    f64::powi(2.0, e)
}

/// `floor(log2(a))` for a finite positive `a`, exact (read from the bits).
fn exponent(a: f64) -> i32 {
    let biased = ((a.to_bits() >> 52) & 0x7FF) as i32;
    if biased == 0 {
        // f64 subnormals are far below any f8 value; any small exponent
        // below the f8 range gives the same rounding.
        -1023
    } else {
        biased - 1023
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_all_codes_consistently() {
        for f in [F8::E4M3FN, F8::E5M2] {
            for b in 0..=255u8 {
                let v = f.decode(b);
                if v.is_nan() {
                    continue;
                }
                // Every non-NaN code round-trips (infinities only in e5m2).
                assert_eq!(f.encode(v, false), b, "{f:?} code {b:#04x} value {v}");
            }
        }
    }
}
