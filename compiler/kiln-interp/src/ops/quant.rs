//! The `quant` dialect: ONNX QuantizeLinear / DequantizeLinear (latest
//! opset) and NF4 code-book dequantization.
//!
//! Scale granularity (see `kiln_ir::ops` quant docs): a one-element scale
//! applies to every element; a 1-D scale without `block_size` indexes the
//! `axis` coordinate; a blocked scale (same rank as the input) indexes the
//! input coordinate with `axis` divided by `block_size`. A zero point uses
//! the scale's mapping (or applies everywhere when it has one element).
//!
//! Rounding follows the ONNX reference: quantization divides in the wider
//! of the input and scale dtypes (or `precision`), rounds half to even and
//! saturates; float8 targets ignore the zero point and saturate unless
//! `saturate = 0`. Dequantization computes `(x - zero_point)` in f32, the
//! product in f32 (f64 for f64 scales), and rounds to the scale's dtype.

use crate::eval::Op;
use crate::float8::F8;
use crate::tensor::{int_range, round_float};
use crate::util::{axis, strides};
use crate::{InterpError, Tensor};
use kiln_ir::ops::NF4_CODE_BOOK;
use kiln_ir::DType;

type R = Result<Tensor, InterpError>;

fn invalid<T>(msg: String) -> Result<T, InterpError> {
    Err(InterpError::Invalid(msg))
}

/// For each element of a tensor of shape `x`, the flat index into `s`
/// (a scale or zero point) under the granularity rules above.
fn param_map(op: &Op<'_>, x: &[u64], s: &[u64]) -> Result<Vec<usize>, InterpError> {
    let n: usize = x.iter().product::<u64>() as usize;
    let sn: u64 = s.iter().product();
    let block = op.a.int("block_size")?;
    if sn == 1 && block <= 0 {
        return Ok(vec![0; n]);
    }
    let a = axis(op.a.int("axis")?, x.len())?;
    let xs = strides(x);
    let mut map = Vec::with_capacity(n);
    if block > 0 {
        if s.len() != x.len() {
            return invalid(format!("blocked scale {s:?} must have the input's rank"));
        }
        let ss = strides(s);
        for i in 0..n {
            let mut f = 0usize;
            for d in 0..x.len() {
                let mut c = (i / xs[d]) as u64 % x[d];
                if d == a {
                    c /= block as u64;
                }
                if c >= s[d] {
                    return invalid(format!("blocked scale {s:?} does not cover input {x:?}"));
                }
                f += c as usize * ss[d];
            }
            map.push(f);
        }
    } else {
        if s.len() != 1 || s[0] != x[a] {
            return invalid(format!(
                "per-axis scale {s:?} does not match axis {a} of {x:?}"
            ));
        }
        map.extend((0..n).map(|i| (i / xs[a]) % x[a] as usize));
    }
    Ok(map)
}

fn zero_map(op: &Op<'_>, x: &[u64], z: &Tensor) -> Result<Vec<usize>, InterpError> {
    if z.numel() == 1 {
        Ok(vec![0; x.iter().product::<u64>() as usize])
    } else {
        param_map(op, x, &z.shape)
    }
}

/// `quant.quantize_linear`.
pub fn quantize_linear(op: &Op<'_>) -> R {
    let (x, s) = (op.input(0)?, op.input(1)?);
    let z = op.opt(2);
    let out_dt = match (z.map(|z| z.dtype), op.a.dtype("output_dtype")?) {
        (Some(z), _) => z,
        (None, Some(o)) => o,
        (None, None) => DType::U8,
    };
    let smap = param_map(op, &x.shape, &s.shape)?;
    // numpy's promotion of x / scale, unless `precision` overrides it.
    let div_dt = match op.a.dtype("precision")? {
        Some(p) => p,
        None if !x.dtype.is_float() => DType::F64,
        None if x.dtype == s.dtype => x.dtype,
        None if x.dtype == DType::F64 || s.dtype == DType::F64 => DType::F64,
        None => DType::F32,
    };
    let (xv, sv) = (x.to_f64_vec(), s.to_f64_vec());
    let q: Vec<f64> = xv
        .iter()
        .zip(&smap)
        .map(|(&e, &m)| round_float(div_dt, round_float(div_dt, e) / round_float(div_dt, sv[m])))
        .collect();
    let f8 = match out_dt {
        DType::F8E4M3FN => Some(F8::E4M3FN),
        DType::F8E5M2 => Some(F8::E5M2),
        _ => None,
    };
    if let Some(f) = f8 {
        let sat = op.a.bool("saturate")?;
        let v = q.iter().map(|&e| f.decode(f.encode(e, sat))).collect();
        return Ok(Tensor {
            dtype: out_dt,
            shape: x.shape.clone(),
            data: crate::tensor::Data::Float(v),
        });
    }
    if !out_dt.is_int() {
        return invalid(format!("cannot quantize to {out_dt}"));
    }
    let zp: Vec<i128> = match z {
        Some(z) => {
            let zm = zero_map(op, &x.shape, z)?;
            let zv = z
                .ints()
                .ok_or_else(|| InterpError::Invalid("zero point must be integer".into()))?;
            zm.iter().map(|&m| zv[m]).collect()
        }
        None => vec![0; q.len()],
    };
    let (lo, hi) = int_range(out_dt);
    let v = q
        .iter()
        .zip(&zp)
        .map(|(&e, &z)| {
            // NaN quantizes to the zero point (numpy casts NaN to 0 here).
            let r = if e.is_nan() {
                0
            } else {
                e.round_ties_even().clamp(-1e30, 1e30) as i128
            };
            (r + z).clamp(lo, hi)
        })
        .collect();
    Ok(Tensor::from_ints(out_dt, x.shape.clone(), v))
}

/// `quant.dequantize_linear`.
pub fn dequantize_linear(op: &Op<'_>) -> R {
    let (x, s) = (op.input(0)?, op.input(1)?);
    let smap = param_map(op, &x.shape, &s.shape)?;
    let xv = x.to_f64_vec();
    let sv = s.to_f64_vec();
    let zp: Vec<f64> = match op.opt(2) {
        Some(z) if !x.dtype.is_float() => {
            let zm = zero_map(op, &x.shape, z)?;
            let zv = z.to_f64_vec();
            zm.iter().map(|&m| zv[m]).collect()
        }
        _ => vec![0.0; xv.len()],
    };
    let prod_dt = if s.dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let out_dt = s.dtype;
    let v = xv
        .iter()
        .zip(&zp)
        .zip(&smap)
        .map(|((&e, &z), &m)| {
            let dx = round_float(DType::F32, round_float(DType::F32, e) - z);
            round_float(out_dt, round_float(prod_dt, dx * sv[m]))
        })
        .collect();
    Ok(Tensor::from_f64(out_dt, x.shape.clone(), v))
}

/// `quant.nf4_dequantize`: `code_book[w] * absmax[block]` in f32, blocks of
/// `block_size` running along the last dim.
pub fn nf4_dequantize(op: &Op<'_>) -> R {
    let (w, a) = (op.input(0)?, op.input(1)?);
    let codes = w
        .ints()
        .ok_or_else(|| InterpError::Invalid("weight must be nf4".into()))?;
    let block = op.a.int("block_size")?;
    if block <= 0 || w.rank() == 0 || a.rank() != w.rank() {
        return invalid("nf4 weight, absmax and block_size disagree".into());
    }
    let k = *w.shape.last().expect("rank >= 1") as usize;
    let nb = *a.shape.last().expect("rank >= 1") as usize;
    if nb != k.div_ceil(block as usize) || a.shape[..a.rank() - 1] != w.shape[..w.rank() - 1] {
        return invalid(format!(
            "absmax {:?} does not fit weight {:?} with block_size {block}",
            a.shape, w.shape
        ));
    }
    let av = a.to_f64_vec();
    let v = codes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let (row, col) = (i / k.max(1), i % k.max(1));
            // The code book entries are f32 values.
            let code = f64::from(NF4_CODE_BOOK[(c & 0xF) as usize] as f32);
            code * av[row * nb + col / block as usize]
        })
        .collect();
    Ok(Tensor::from_f64(DType::F32, w.shape.clone(), v))
}
