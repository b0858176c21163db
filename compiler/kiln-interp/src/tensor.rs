//! Run-time tensors and their conversion to and from Kiln storage bytes.
//!
//! Storage choice: every float tensor (f64 … the float8/float4/E8M0
//! formats) holds its elements as `f64`, every integer, bool and nf4 tensor
//! as `i128` (bools are 0/1, nf4 elements are their 4-bit codes). The invariant is that each element
//! is exactly representable in the tensor's dtype: results are computed in
//! the wide type and then rounded ([`round_float`]) or wrapped
//! ([`wrap_int`]) to the dtype once per op.
//!
//! Exactness argument: for f32, f16 and bf16 (p ≤ 24 significand bits),
//! f64 has p' = 53 ≥ 2p + 2 bits, so computing `+ - * /` and `sqrt` in f64
//! and rounding once to the narrow type gives the correctly rounded result,
//! identical to native arithmetic in the narrow type (Figueroa's theorem on
//! innocuous double rounding). Composite ops (reductions, softmax, matmul)
//! accumulate in f64 and round once at the end, which is at least as
//! accurate as a native implementation; comparisons against other
//! implementations therefore need dtype-appropriate tolerances. Integer
//! ops compute in i128 with wrapping arithmetic, a ring homomorphism onto
//! the dtype's two's complement arithmetic, so wrapping once at the end
//! equals wrapping after every step.

use crate::InterpError;
use half::{bf16, f16};
use kiln_ir::codec::{packing, CastMode, FloatFormat};
use kiln_ir::{DType, Weight};

/// Element storage of a [`Tensor`]; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// Float dtypes.
    Float(Vec<f64>),
    /// Integer dtypes, bool (0/1) and nf4 (codes 0..=15).
    Int(Vec<i128>),
}

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Element type.
    pub dtype: DType,
    /// Extents, outermost first.
    pub shape: Vec<u64>,
    /// Elements, row-major; length is the product of `shape`.
    pub data: Data,
}

/// Rounds `x` to the nearest value of float dtype `dt` (ties to even;
/// overflow gives infinity, or NaN where the dtype has no infinity). The
/// small float formats round as an arithmetic result ([`CastMode::ARITH`]),
/// from `x` rounded to `f32` first as `ml_dtypes` does. Identity for f64.
pub fn round_float(dt: DType, x: f64) -> f64 {
    match dt {
        DType::F32 => f64::from(x as f32),
        DType::F16 => f16::from_f64(x).to_f64(),
        DType::BF16 => bf16::from_f64(x).to_f64(),
        _ => match FloatFormat::of(dt) {
            Some(f) => f64::from(f.round_value(x as f32, CastMode::ARITH)),
            None => x,
        },
    }
}

/// Rounds `x` to a small float format with an explicit mode (`nn.cast`,
/// quantization): through `f32`, as `ml_dtypes` and ONNX's reference do.
pub fn round_small_float(f: FloatFormat, x: f64, mode: CastMode) -> f64 {
    f64::from(f.round_value(x as f32, mode))
}

/// Wraps `v` into integer dtype `dt` (two's complement truncation); bools
/// become 0/1 and other dtypes are left alone.
pub fn wrap_int(dt: DType, v: i128) -> i128 {
    match dt {
        DType::Bool => i128::from(v != 0),
        _ if dt.is_int() => {
            let bits = dt.bits();
            let m = v & ((1i128 << bits) - 1);
            if dt.is_signed() && m >= 1i128 << (bits - 1) {
                m - (1i128 << bits)
            } else {
                m
            }
        }
        _ => v,
    }
}

/// Smallest and largest value of an integer dtype.
pub fn int_range(dt: DType) -> (i128, i128) {
    if dt == DType::Bool {
        return (0, 1);
    }
    let bits = dt.bits();
    if dt.is_signed() {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

/// Product of extents, or `None` on overflow.
pub fn numel(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
}

impl Tensor {
    /// A float tensor; values are rounded to `dtype`.
    pub fn from_f64(dtype: DType, shape: Vec<u64>, mut v: Vec<f64>) -> Tensor {
        debug_assert!(dtype.is_float());
        debug_assert_eq!(numel(&shape), Some(v.len() as u64));
        for x in &mut v {
            *x = round_float(dtype, *x);
        }
        Tensor {
            dtype,
            shape,
            data: Data::Float(v),
        }
    }

    /// An integer, bool or nf4 tensor; values are wrapped to `dtype`.
    pub fn from_ints(dtype: DType, shape: Vec<u64>, mut v: Vec<i128>) -> Tensor {
        debug_assert!(!dtype.is_float());
        debug_assert_eq!(numel(&shape), Some(v.len() as u64));
        if dtype != DType::NF4 {
            for x in &mut v {
                *x = wrap_int(dtype, *x);
            }
        } else {
            for x in &mut v {
                *x &= 0xF;
            }
        }
        Tensor {
            dtype,
            shape,
            data: Data::Int(v),
        }
    }

    /// A bool tensor.
    pub fn from_bools(shape: Vec<u64>, v: Vec<bool>) -> Tensor {
        Tensor::from_ints(DType::Bool, shape, v.into_iter().map(i128::from).collect())
    }

    /// A rank-0 tensor of any non-nf4 dtype from an f64 (ints truncate).
    pub fn scalar(dtype: DType, x: f64) -> Tensor {
        if dtype.is_float() {
            Tensor::from_f64(dtype, vec![], vec![x])
        } else {
            Tensor::from_ints(dtype, vec![], vec![x as i128])
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        match &self.data {
            Data::Float(v) => v.len(),
            Data::Int(v) => v.len(),
        }
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The float elements, if this is a float tensor.
    pub fn floats(&self) -> Option<&[f64]> {
        match &self.data {
            Data::Float(v) => Some(v),
            Data::Int(_) => None,
        }
    }

    /// The integer elements, if this is an integer, bool or nf4 tensor.
    pub fn ints(&self) -> Option<&[i128]> {
        match &self.data {
            Data::Int(v) => Some(v),
            Data::Float(_) => None,
        }
    }

    /// Element `i` as f64 (integers convert, possibly inexactly beyond 2^53).
    pub fn get_f64(&self, i: usize) -> f64 {
        match &self.data {
            Data::Float(v) => v[i],
            Data::Int(v) => v[i] as f64,
        }
    }

    /// All elements as f64.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            Data::Float(v) => v.clone(),
            Data::Int(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// A tensor with the same dtype and data but another shape of the same
    /// element count.
    pub fn reshaped(mut self, shape: Vec<u64>) -> Tensor {
        debug_assert_eq!(numel(&shape), Some(self.numel() as u64));
        self.shape = shape;
        self
    }

    /// A tensor of this dtype built by picking elements by index (gather,
    /// transpose, broadcast). Indices must be in range.
    pub fn pick(&self, shape: Vec<u64>, idx: impl IntoIterator<Item = usize>) -> Tensor {
        let data = match &self.data {
            Data::Float(v) => Data::Float(idx.into_iter().map(|i| v[i]).collect()),
            Data::Int(v) => Data::Int(idx.into_iter().map(|i| v[i]).collect()),
        };
        Tensor {
            dtype: self.dtype,
            shape,
            data,
        }
    }

    /// Decodes bytes in Kiln storage layout: little-endian, sub-byte types
    /// packed with the first element in the lowest bits (`codec::packing`).
    pub fn from_bytes(dtype: DType, shape: &[u64], bytes: &[u8]) -> Result<Tensor, InterpError> {
        let n = numel(shape).ok_or(InterpError::TooLarge {
            elements: u64::MAX,
            limit: u64::MAX,
        })?;
        let need = dtype.storage_bytes(n);
        if need != Some(bytes.len() as u64) {
            return Err(InterpError::BadData(format!(
                "{dtype} tensor of shape {shape:?} needs {} bytes, got {}",
                need.map_or("too many".to_string(), |b| b.to_string()),
                bytes.len()
            )));
        }
        let n = n as usize;
        macro_rules! le {
            ($t:ty, $w:literal) => {
                bytes
                    .chunks_exact($w)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("exact chunk")))
            };
        }
        let data = match dtype {
            DType::F64 => Data::Float(le!(f64, 8).collect()),
            DType::F32 => Data::Float(le!(f32, 4).map(f64::from).collect()),
            DType::F16 => Data::Float(le!(u16, 2).map(|b| f16::from_bits(b).to_f64()).collect()),
            DType::BF16 => Data::Float(le!(u16, 2).map(|b| bf16::from_bits(b).to_f64()).collect()),
            DType::I64 => Data::Int(le!(i64, 8).map(i128::from).collect()),
            DType::I32 => Data::Int(le!(i32, 4).map(i128::from).collect()),
            DType::I16 => Data::Int(le!(i16, 2).map(i128::from).collect()),
            DType::I8 => Data::Int(bytes.iter().map(|&b| i128::from(b as i8)).collect()),
            DType::U64 => Data::Int(le!(u64, 8).map(i128::from).collect()),
            DType::U32 => Data::Int(le!(u32, 4).map(i128::from).collect()),
            DType::U16 => Data::Int(le!(u16, 2).map(i128::from).collect()),
            DType::U8 => Data::Int(bytes.iter().map(|&b| i128::from(b)).collect()),
            DType::Bool => {
                if let Some(b) = bytes.iter().find(|&&b| b > 1) {
                    return Err(InterpError::BadData(format!(
                        "bool element has byte value {b}"
                    )));
                }
                Data::Int(bytes.iter().map(|&b| i128::from(b)).collect())
            }
            DType::I4 | DType::U4 | DType::NF4 | DType::I2 | DType::U2 => {
                let code = |i: usize| i128::from(packing::get(bytes, dtype.bits(), i));
                Data::Int((0..n).map(|i| wrap_int(dtype, code(i))).collect())
            }
            DType::F8E4M3FN
            | DType::F8E5M2
            | DType::F8E4M3FNUZ
            | DType::F8E5M2FNUZ
            | DType::F4E2M1
            | DType::F8E8M0 => {
                let f = FloatFormat::of(dtype).expect("a small float dtype");
                let bits = dtype.bits();
                let code = |i: usize| {
                    if bits == 8 {
                        bytes[i]
                    } else {
                        packing::get(bytes, bits, i)
                    }
                };
                Data::Float((0..n).map(|i| f64::from(f.decode_value(code(i)))).collect())
            }
        };
        Ok(Tensor {
            dtype,
            shape: shape.to_vec(),
            data,
        })
    }

    /// Encodes to Kiln storage layout (see [`Tensor::from_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let dt = self.dtype;
        match &self.data {
            Data::Float(v) => {
                if let Some(f) = FloatFormat::of(dt) {
                    // Values are already on the format's grid: encoding is exact.
                    let codes = v.iter().map(|&x| f.encode_value(x as f32, CastMode::ARITH));
                    return if dt.is_packed() {
                        packing::pack(codes, dt.bits())
                    } else {
                        codes.collect()
                    };
                }
                let mut out = Vec::with_capacity(v.len() * dt.byte_size().unwrap_or(1));
                for &x in v {
                    match dt {
                        DType::F64 => out.extend_from_slice(&x.to_le_bytes()),
                        DType::F32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
                        DType::F16 => out.extend_from_slice(&f16::from_f64(x).to_le_bytes()),
                        _ => out.extend_from_slice(&bf16::from_f64(x).to_le_bytes()),
                    }
                }
                out
            }
            Data::Int(v) if dt.is_packed() => packing::pack(v.iter().map(|&x| x as u8), dt.bits()),
            Data::Int(v) => {
                let w = dt.byte_size().unwrap_or(1);
                let mut out = Vec::with_capacity(v.len() * w);
                for &x in v {
                    // Two's complement little-endian truncation to w bytes.
                    out.extend_from_slice(&x.to_le_bytes()[..w]);
                }
                out
            }
        }
    }

    /// Decodes a graph weight; elided weights are an error.
    pub fn from_weight(w: &Weight) -> Result<Tensor, InterpError> {
        let shape = w.ty.static_shape().ok_or_else(|| {
            InterpError::BadData(format!("weight '{}' has a dynamic type {}", w.name, w.ty))
        })?;
        let blob = w
            .bytes()
            .ok_or_else(|| InterpError::Elided(w.name.clone()))?;
        Tensor::from_bytes(w.ty.dtype, &shape, blob.bytes())
            .map_err(|e| InterpError::BadData(format!("weight '{}': {e}", w.name)))
    }
}
