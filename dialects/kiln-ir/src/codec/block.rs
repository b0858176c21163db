//! Block-wise weight quantization: the schemes `quant.quantize_weight`
//! (and so `kiln compile --quantize`) produces and `quant.matmul` reads.
//!
//! A weight is seen as `rows` rows (output channels) of `k` values; each row
//! is cut into blocks of `block` values along `k` (`block = 0`: one block per
//! row, i.e. per-channel), and every block gets a scale (and, for unsigned
//! integer schemes, a zero point). Rows are padded to `kp` codes
//! ([`padded_k`]) so that every row starts on a byte; the padding codes
//! decode to zero.
//!
//! | scheme | codes | scale | zero point | element value |
//! | --- | --- | --- | --- | --- |
//! | `nf4` | nf4 | absmax (f32) | — | `NF4[q] * absmax` |
//! | `int2`, `int4`, `int7`, `int8` | i2/i4/i8/i8 | `amax / qmax` (f32, `qmax = 2^(bits-1) - 1`) | — | `q * s` |
//! | `uint4`, `uint8`, `uint2` | u4/u8/u2 | `(max - min) / qmax` | u4/u8/u2 | `(q - z) * s` |
//! | `fp8-e4m3`, `fp8-e5m2` | f8 | `amax / max` (f32) | — | `f8(q) * s` |
//! | `mxfp4` | f4e2m1 | E8M0 `2^(floor(log2 amax) - 2)` | — | `e2m1(q) * s` |
//! | `nvfp4` | f4e2m1 | E4M3 `amax / 6 / g` | — | `e2m1(q) * s * g` |
//!
//! NF4 follows bitsandbytes (as ONNX Runtime's `MatMulBnb4` quantizer ports
//! it): values are multiplied by `1 / absmax` in `f32` and the code is the
//! number of bitsandbytes' decision thresholds below the value. bitsandbytes'
//! own FP4 ([`BNB_FP4_CODE_BOOK`]) is a code book too. MXFP4 follows the OCP
//! Microscaling spec (shared exponent `floor(log2(amax)) - emax` with
//! `emax = 2` for E2M1, elements saturated); NVFP4 has a per-tensor `f32`
//! scale `g = amax / (6 * 448)` on top of its E4M3 block scales.
//!
//! Double quantization ([`double_quantize`]) stores NF4 absmax values as
//! bitsandbytes does with `compress_statistics`: their mean is subtracted,
//! and the rest is quantized block-wise (256 values per block, over the flat
//! array) to 8-bit codes of bitsandbytes' signed dynamic map
//! ([`dynamic_map`]) with one `f32` absmax per block.

use super::float::{CastMode, FloatFormat};
use super::{nf4_value, packing};
use crate::DType;

/// The weight quantization schemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// NF4 codes with f32 absmax per block.
    Nf4,
    /// Symmetric signed integers of `bits` (2, 4 or 8) with an f32 scale.
    Int(u32),
    /// Asymmetric unsigned integers of `bits` with scale and zero point.
    Uint(u32),
    /// A float8 format with an f32 scale.
    Fp8(FloatFormat),
    /// E2M1 with E8M0 block scales (OCP MXFP4).
    Mxfp4,
    /// E2M1 with E4M3 block scales and a per-tensor f32 scale.
    Nvfp4,
}

// Schemes carry parameters, so the impl is written out rather than declared
// with `attr_enum!`; the spellings are the same as the quantize options'.
impl crate::attr::AttrEnum for Scheme {
    const NAMES: &'static [&'static str] = Scheme::NAMES;
    fn as_str(self) -> &'static str {
        self.name()
    }
    fn from_str(s: &str) -> Option<Scheme> {
        Scheme::parse(s)
    }
}

impl Scheme {
    /// Every scheme, by name.
    pub const NAMES: &'static [&'static str] = &[
        "nf4", "int2", "int4", "int7", "int8", "uint2", "uint4", "uint8", "fp8-e4m3", "fp8-e5m2",
        "mxfp4", "nvfp4",
    ];

    /// Parses a scheme name ([`Scheme::NAMES`]).
    pub fn parse(s: &str) -> Option<Scheme> {
        Some(match s {
            "nf4" => Scheme::Nf4,
            "int2" => Scheme::Int(2),
            "int4" => Scheme::Int(4),
            "int7" => Scheme::Int(7),
            "int8" => Scheme::Int(8),
            "uint2" => Scheme::Uint(2),
            "uint4" => Scheme::Uint(4),
            "uint8" => Scheme::Uint(8),
            "fp8-e4m3" => Scheme::Fp8(FloatFormat::E4M3FN),
            "fp8-e5m2" => Scheme::Fp8(FloatFormat::E5M2),
            "mxfp4" => Scheme::Mxfp4,
            "nvfp4" => Scheme::Nvfp4,
            _ => return None,
        })
    }

    /// The scheme's name.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Nf4 => "nf4",
            Scheme::Int(2) => "int2",
            Scheme::Int(4) => "int4",
            Scheme::Int(7) => "int7",
            Scheme::Int(_) => "int8",
            Scheme::Uint(2) => "uint2",
            Scheme::Uint(4) => "uint4",
            Scheme::Uint(_) => "uint8",
            Scheme::Fp8(FloatFormat::E5M2) => "fp8-e5m2",
            Scheme::Fp8(_) => "fp8-e4m3",
            Scheme::Mxfp4 => "mxfp4",
            Scheme::Nvfp4 => "nvfp4",
        }
    }

    /// The dtype of the codes.
    pub fn code_dtype(self) -> DType {
        match self {
            Scheme::Nf4 => DType::NF4,
            Scheme::Int(2) => DType::I2,
            Scheme::Int(4) => DType::I4,
            Scheme::Int(_) => DType::I8,
            Scheme::Uint(2) => DType::U2,
            Scheme::Uint(4) => DType::U4,
            Scheme::Uint(_) => DType::U8,
            Scheme::Fp8(f) => f.dtype(),
            Scheme::Mxfp4 | Scheme::Nvfp4 => DType::F4E2M1,
        }
    }

    /// The dtype the block scales are stored in.
    pub fn scale_dtype(self) -> DType {
        match self {
            Scheme::Mxfp4 => DType::F8E8M0,
            Scheme::Nvfp4 => DType::F8E4M3FN,
            _ => DType::F32,
        }
    }

    /// Whether blocks carry a zero point.
    pub fn has_zero_point(self) -> bool {
        matches!(self, Scheme::Uint(_))
    }

    /// The block size the scheme uses when none is asked for, and whether
    /// it is fixed by the format.
    pub fn default_block(self) -> (usize, bool) {
        match self {
            Scheme::Nf4 => (64, false),
            Scheme::Int(7 | 8) | Scheme::Uint(8) | Scheme::Fp8(_) => (0, false),
            Scheme::Int(_) | Scheme::Uint(_) => (32, false),
            Scheme::Mxfp4 => (32, true),
            Scheme::Nvfp4 => (16, true),
        }
    }
}

/// Codes per row, `k` padded so that rows start on a byte: whole blocks
/// when blocked, else whole bytes.
pub fn padded_k(k: usize, block: usize, dtype: DType) -> usize {
    if block > 0 {
        k.div_ceil(block) * block
    } else {
        let per = packing::per_byte(dtype.bits().min(8));
        k.div_ceil(per) * per
    }
}

/// Zero points stored per row: `blocks` padded so that rows start on a
/// byte (as ONNX Runtime's MatMulNBits pads them).
pub fn zero_point_cols(blocks: usize, dtype: DType) -> usize {
    let per = packing::per_byte(dtype.bits().min(8));
    blocks.div_ceil(per) * per
}

/// The rows (output channels) of a 2-D `[d0, d1]` weight whose
/// contraction axis is `axis` (0: a MatMul's `[K, N]`, transposed; 1:
/// already rows): `(rows, k, row-major values)`.
pub fn weight_rows(v: Vec<f32>, d0: usize, d1: usize, axis: usize) -> (usize, usize, Vec<f32>) {
    if axis == 1 {
        return (d0, d1, v);
    }
    let mut t = vec![0f32; d0 * d1];
    for r in 0..d0 {
        for c in 0..d1 {
            t[c * d0 + r] = v[r * d1 + c];
        }
    }
    (d1, d0, t)
}

/// Blocks per row.
pub fn blocks_per_row(k: usize, block: usize) -> usize {
    if block == 0 {
        1
    } else {
        k.div_ceil(block)
    }
}

/// A quantized weight: codes, scales and zero points, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// Rows (output channels).
    pub rows: usize,
    /// Values per row.
    pub k: usize,
    /// Codes per row ([`padded_k`]).
    pub kp: usize,
    /// Values per block (0: one block per row).
    pub block: usize,
    /// Codes (one per byte, unpacked), `rows * kp`.
    pub codes: Vec<u8>,
    /// Scale values, `rows * blocks` (for E8M0/E4M3 scales, the value of
    /// the code in `scale_codes`).
    pub scales: Vec<f32>,
    /// The E8M0/E4M3 scale codes (`rows * blocks`), for those schemes.
    pub scale_codes: Option<Vec<u8>>,
    /// Zero point codes, `rows * blocks`.
    pub zero_points: Option<Vec<u8>>,
    /// NVFP4's per-tensor scale.
    pub global_scale: Option<f32>,
}

/// bitsandbytes' NF4 decision thresholds (midpoints of the code book), in
/// increasing order: the code of `x` is how many of them are below it.
const NF4_THRESHOLDS: [f32; 15] = [
    -0.848_096_4,
    -0.610_632_9,
    -0.459_995_27,
    -0.339_679_43,
    -0.234_607_4,
    -0.137_911_73,
    -0.045_525_018,
    0.039_790_15,
    0.120_255_25,
    0.203_521_25,
    0.292_013_77,
    0.389_312_54,
    0.501_663_4,
    0.642_786_9,
    0.861_478_4,
];

/// The NF4 code of a value normalized to `[-1, 1]` (bitsandbytes' rule;
/// NaN gives 0).
pub fn nf4_encode(x: f32) -> u8 {
    NF4_THRESHOLDS.iter().filter(|&&t| x > t).count() as u8
}

/// bitsandbytes' FP4 code book (`MatMulBnb4` with `quant_type = 0`),
/// indexed by code.
pub const BNB_FP4_CODE_BOOK: [f32; 16] = [
    0.0,
    5.208_333_3e-3,
    0.666_666_7,
    1.0,
    0.333_333_34,
    0.5,
    0.166_666_67,
    0.25,
    -0.0,
    -5.208_333_3e-3,
    -0.666_666_7,
    -1.0,
    -0.333_333_34,
    -0.5,
    -0.166_666_67,
    -0.25,
];

/// bitsandbytes' FP4 code of a value normalized to `[-1, 1]`.
pub fn bnb_fp4_encode(x: f32) -> u8 {
    let sign = if x < 0.0 { 8 } else { 0 };
    let a = x.abs();
    let code = if a > 0.291_666_67 {
        if a > 0.583_333 {
            if a > 0.833_333_3 {
                0b011
            } else {
                0b010
            }
        } else if a > 0.416_666_7 {
            0b101
        } else {
            0b100
        }
    } else if a > 0.085_937_5 {
        if a > 0.208_333_33 {
            0b111
        } else {
            0b110
        }
    } else if a > 0.002_604_17 {
        0b001
    } else {
        0
    };
    sign | code
}

/// Quantizes `w`, `rows` rows of `k` values, with `scheme` in blocks of
/// `block` (0: per row).
pub fn quantize(w: &[f32], rows: usize, k: usize, scheme: Scheme, block: usize) -> Quantized {
    debug_assert_eq!(w.len(), rows * k);
    let dt = scheme.code_dtype();
    let kp = padded_k(k, block, dt);
    let bk = if block == 0 { k.max(1) } else { block };
    let nb = blocks_per_row(k, block);
    let mut codes = vec![zero_code(scheme); rows * kp];
    let mut scales = vec![0f32; rows * nb];
    let mut scale_codes =
        matches!(scheme, Scheme::Mxfp4 | Scheme::Nvfp4).then(|| vec![0u8; rows * nb]);
    let mut zps = scheme.has_zero_point().then(|| vec![0u8; rows * nb]);
    let global = (scheme == Scheme::Nvfp4).then(|| {
        let amax = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        if amax > 0.0 {
            amax / (6.0 * 448.0)
        } else {
            1.0
        }
    });
    for r in 0..rows {
        for b in 0..nb {
            let lo = b * bk;
            let hi = ((b + 1) * bk).min(k);
            let src = &w[r * k + lo..r * k + hi];
            let dst = &mut codes[r * kp + lo..r * kp + hi];
            let at = r * nb + b;
            let amax = src.iter().fold(0f32, |m, x| m.max(x.abs()));
            match scheme {
                Scheme::Nf4 => {
                    scales[at] = amax;
                    let inv = if amax != 0.0 { 1.0 / amax } else { 0.0 };
                    for (d, &x) in dst.iter_mut().zip(src) {
                        *d = nf4_encode(x * inv);
                    }
                }
                Scheme::Int(bits) => {
                    let qmax = ((1i32 << (bits - 1)) - 1) as f32;
                    let s = amax / qmax;
                    scales[at] = s;
                    for (d, &x) in dst.iter_mut().zip(src) {
                        let q = if s != 0.0 {
                            (x / s).round_ties_even()
                        } else {
                            0.0
                        };
                        let q = q.clamp(-qmax - 1.0, qmax) as i32;
                        *d = (q as u8) & mask(scheme.code_dtype().bits());
                    }
                }
                Scheme::Uint(bits) => {
                    let qmax = ((1u32 << bits) - 1) as f32;
                    let mn = src.iter().fold(0f32, |m, &x| m.min(x));
                    let mx = src.iter().fold(0f32, |m, &x| m.max(x));
                    let s = (mx - mn) / qmax;
                    scales[at] = s;
                    let z = if s != 0.0 {
                        (-mn / s).round_ties_even().clamp(0.0, qmax)
                    } else {
                        0.0
                    };
                    zps.as_mut().expect("uint has zero points")[at] = z as u8;
                    for (d, &x) in dst.iter_mut().zip(src) {
                        let q = if s != 0.0 {
                            (x / s).round_ties_even() + z
                        } else {
                            z
                        };
                        *d = q.clamp(0.0, qmax) as u8;
                    }
                }
                Scheme::Fp8(f) => {
                    let s = amax / f.max();
                    scales[at] = s;
                    for (d, &x) in dst.iter_mut().zip(src) {
                        *d = if s != 0.0 {
                            f.encode_value(x / s, CastMode::CAST_DEFAULT)
                        } else {
                            0
                        };
                    }
                }
                Scheme::Mxfp4 => {
                    // Shared exponent floor(log2(amax)) - 2, clamped to E8M0's range.
                    let e = if amax > 0.0 && amax.is_finite() {
                        (f32_exponent(amax) - 2).clamp(-127, 127)
                    } else {
                        -127
                    };
                    let code = (e + 127) as u8;
                    let s = FloatFormat::E8M0.decode_value(code);
                    scale_codes.as_mut().expect("mx scales")[at] = code;
                    scales[at] = s;
                    for (d, &x) in dst.iter_mut().zip(src) {
                        *d = FloatFormat::E2M1.encode_value(x / s, CastMode::CAST_DEFAULT);
                    }
                }
                Scheme::Nvfp4 => {
                    let g = global.expect("nvfp4 has a global scale");
                    let sc =
                        FloatFormat::E4M3FN.encode_value(amax / 6.0 / g, CastMode::CAST_DEFAULT);
                    let s = FloatFormat::E4M3FN.decode_value(sc);
                    scale_codes.as_mut().expect("nv scales")[at] = sc;
                    scales[at] = s;
                    let full = s * g;
                    for (d, &x) in dst.iter_mut().zip(src) {
                        *d = if full != 0.0 {
                            FloatFormat::E2M1.encode_value(x / full, CastMode::CAST_DEFAULT)
                        } else {
                            0
                        };
                    }
                }
            }
        }
    }
    Quantized {
        rows,
        k,
        kp,
        block,
        codes,
        scales,
        scale_codes,
        zero_points: zps,
        global_scale: global,
    }
}

fn mask(bits: u32) -> u8 {
    ((1u16 << bits) - 1) as u8
}

/// The code that decodes to zero (padding).
fn zero_code(scheme: Scheme) -> u8 {
    match scheme {
        Scheme::Nf4 => 7,
        _ => 0,
    }
}

/// `floor(log2(a))` of a finite positive `f32`, subnormals included.
fn f32_exponent(a: f32) -> i32 {
    let b = a.to_bits();
    let e = ((b >> 23) & 0xFF) as i32;
    if e == 0 {
        // Subnormal: 2^-149 * mantissa.
        let m = b & 0x7F_FFFF;
        -149 + (31 - m.leading_zeros() as i32)
    } else {
        e - 127
    }
}

impl Quantized {
    /// Blocks per row.
    pub fn blocks(&self) -> usize {
        blocks_per_row(self.k, self.block)
    }

    /// The block size in values (`k` for per-row).
    pub fn block_len(&self) -> usize {
        if self.block == 0 {
            self.k.max(1)
        } else {
            self.block
        }
    }

    /// The dequantized weight, `rows * k` (padding dropped).
    pub fn dequantize(&self, scheme: Scheme) -> Vec<f32> {
        let nb = self.blocks();
        let bk = self.block_len();
        let mut out = Vec::with_capacity(self.rows * self.k);
        for r in 0..self.rows {
            for c in 0..self.k {
                let at = r * nb + c / bk;
                let q = self.codes[r * self.kp + c];
                let s = self.scales[at];
                let v = match scheme {
                    Scheme::Nf4 => nf4_value(q) * s,
                    Scheme::Int(_) => {
                        f32::from(packing::sign_extend(q, scheme.code_dtype().bits())) * s
                    }
                    Scheme::Uint(_) => {
                        let z = self.zero_points.as_ref().expect("zero points")[at];
                        (f32::from(q) - f32::from(z)) * s
                    }
                    Scheme::Fp8(f) => f.decode_value(q) * s,
                    Scheme::Mxfp4 => FloatFormat::E2M1.decode_value(q) * s,
                    Scheme::Nvfp4 => {
                        FloatFormat::E2M1.decode_value(q) * s * self.global_scale.unwrap_or(1.0)
                    }
                };
                out.push(v);
            }
        }
        out
    }
}

/// `torch.linspace(start, end, steps)` in `f32`, as PyTorch computes it on
/// the CPU (from the start for the first half, from the end for the rest).
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// bitsandbytes' signed 8-bit dynamic map (`create_dynamic_map(signed=True,
/// max_exponent_bits=7, total_bits=8)`), sorted: 127 negative values, zero,
/// 127 positive values and 1.
pub fn dynamic_map() -> [f32; 256] {
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for i in 0..7i32 {
        let items = (1usize << i) + 1;
        let b = linspace_f32(0.1, 1.0, items);
        let means: Vec<f32> = b.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
        let p = 10f64.powi(i - 6) as f32;
        data.extend(means.iter().map(|&m| p * m));
        data.extend(means.iter().map(|&m| -p * m));
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f32::total_cmp);
    data.try_into().expect("the dynamic map has 256 values")
}

/// Block length of double quantization (values of the flat absmax array).
pub const DOUBLE_QUANT_BLOCK: usize = 256;

/// Double-quantized block scales (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct DoubleQuant {
    /// One dynamic-map code per scale.
    pub codes: Vec<u8>,
    /// One absmax per [`DOUBLE_QUANT_BLOCK`] scales.
    pub absmax: Vec<f32>,
    /// The mean subtracted before quantizing.
    pub offset: f32,
}

/// Quantizes `scales` (positive block absmax values) as bitsandbytes'
/// nested statistics: subtract the mean, 8-bit dynamic codes per block of
/// 256 with an f32 absmax; the nearest code is taken (ties to the lower).
pub fn double_quantize(scales: &[f32]) -> DoubleQuant {
    let map = dynamic_map();
    let n = scales.len().max(1);
    let offset = (scales.iter().map(|&s| f64::from(s)).sum::<f64>() / n as f64) as f32;
    let mut codes = Vec::with_capacity(scales.len());
    let mut absmax = Vec::with_capacity(scales.len().div_ceil(DOUBLE_QUANT_BLOCK));
    for blk in scales.chunks(DOUBLE_QUANT_BLOCK) {
        let am = blk.iter().fold(0f32, |m, &s| m.max((s - offset).abs()));
        absmax.push(am);
        let inv = if am != 0.0 { 1.0 / am } else { 0.0 };
        for &s in blk {
            let x = (s - offset) * inv;
            codes.push(nearest_code(&map, x));
        }
    }
    DoubleQuant {
        codes,
        absmax,
        offset,
    }
}

/// Index of the value of sorted `map` nearest to `x`, ties to the lower.
fn nearest_code(map: &[f32; 256], x: f32) -> u8 {
    let hi = map.partition_point(|&v| v < x).min(255);
    if hi == 0 {
        return 0;
    }
    let lo = hi - 1;
    if (x - map[lo]).abs() <= (map[hi] - x).abs() {
        lo as u8
    } else {
        hi as u8
    }
}

impl DoubleQuant {
    /// The scale at flat index `i`: `map[code] * absmax[i / 256] + offset`
    /// in f32.
    pub fn value(&self, map: &[f32; 256], i: usize) -> f32 {
        map[usize::from(self.codes[i])] * self.absmax[i / DOUBLE_QUANT_BLOCK] + self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
            })
            .collect()
    }

    #[test]
    fn nf4_thresholds_are_midpoints() {
        for c in 0..15 {
            let mid = (f64::from(nf4_value(c)) + f64::from(nf4_value(c + 1))) / 2.0;
            assert!(
                (f64::from(NF4_THRESHOLDS[c as usize]) - mid).abs() < 1e-7,
                "{c}"
            );
            assert_eq!(nf4_encode(nf4_value(c)), c);
        }
        assert_eq!(nf4_encode(1.0), 15);
        assert_eq!(nf4_encode(f32::NAN), 0);
    }

    #[test]
    fn bnb_fp4_codes_decode_to_their_values() {
        for c in 0..16u8 {
            let v = BNB_FP4_CODE_BOOK[usize::from(c)];
            if c == 8 {
                continue; // -0 encodes as +0
            }
            assert_eq!(bnb_fp4_encode(v), c, "{v}");
        }
    }

    #[test]
    fn every_scheme_round_trips_within_its_step() {
        let (rows, k) = (5, 77);
        let w = lcg(rows * k, 7);
        for name in Scheme::NAMES {
            let s = Scheme::parse(name).unwrap();
            assert_eq!(s.name(), *name);
            let (def, _) = s.default_block();
            for block in [def, 16] {
                let q = quantize(&w, rows, k, s, block);
                assert_eq!(q.codes.len(), rows * q.kp);
                let d = q.dequantize(s);
                // Worst-case relative step of each scheme against the block absmax.
                let step = match s {
                    Scheme::Nf4 => 0.17,
                    Scheme::Int(2) | Scheme::Uint(2) => 1.0,
                    Scheme::Int(4) | Scheme::Uint(4) => 0.15,
                    Scheme::Int(_) | Scheme::Uint(_) => 0.01,
                    Scheme::Fp8(_) => 0.13,
                    Scheme::Mxfp4 | Scheme::Nvfp4 => 0.35,
                };
                let err = w
                    .iter()
                    .zip(&d)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(err <= step, "{name} block {block}: max error {err}");
            }
        }
    }

    #[test]
    fn mxfp4_scales_are_powers_of_two() {
        let w = [3.0f32, -0.5, 1.0, 0.0];
        let q = quantize(&w, 1, 4, Scheme::Mxfp4, 32);
        // amax 3 -> floor(log2 3) - 2 = -1.
        assert_eq!(q.scale_codes.as_ref().unwrap()[0], 126);
        assert_eq!(q.dequantize(Scheme::Mxfp4), w);
    }

    #[test]
    fn dynamic_map_is_sorted_and_signed() {
        let m = dynamic_map();
        assert!(m.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(m[255], 1.0);
        assert_eq!(m.iter().filter(|&&v| v == 0.0).count(), 1);
        assert!((m[0] + 0.9928).abs() < 1e-3, "{}", m[0]);
    }

    #[test]
    fn double_quant_is_close() {
        let s: Vec<f32> = lcg(1000, 3).iter().map(|x| x.abs() + 0.1).collect();
        let dq = double_quantize(&s);
        let m = dynamic_map();
        assert_eq!(dq.absmax.len(), 4);
        for (i, &v) in s.iter().enumerate() {
            let back = dq.value(&m, i);
            assert!((back - v).abs() < 0.02 * v.max(0.2), "{i}: {v} vs {back}");
        }
    }
}
