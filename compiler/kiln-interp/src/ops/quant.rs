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
//! `saturate = 0`; float4 (E2M1) targets add the zero point's value and
//! always saturate (the format has no infinity). Dequantization computes
//! `(x - zero_point)` in f32 (float targets ignore the zero point), the
//! product in f32 (f64 for f64 scales), and rounds to the result dtype.

use crate::eval::Op;
use crate::tensor::{int_range, round_float, round_small_float, Data};
use crate::util::{axis, strides};
use crate::{InterpError, Tensor};
use kiln_ir::codec::{nf4_value, CastMode, FloatFormat};
use kiln_ir::ops::QuantPart;
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
    if let Some(f) = FloatFormat::of(out_dt) {
        let mode = CastMode {
            saturate: op.a.bool("saturate")?,
            ..CastMode::CAST_DEFAULT
        };
        // E2M1: ONNX adds the zero point (a float4 value) before casting.
        let zp: Option<Vec<f64>> = match z {
            Some(z) if out_dt == DType::F4E2M1 => {
                let zm = zero_map(op, &x.shape, z)?;
                let zv = z.to_f64_vec();
                Some(zm.iter().map(|&m| zv[m]).collect())
            }
            _ => None,
        };
        let v = q
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                let e = match &zp {
                    Some(zp) => round_float(div_dt, e + zp[i]),
                    None => e,
                };
                round_small_float(f, e, mode)
            })
            .collect();
        return Ok(Tensor {
            dtype: out_dt,
            shape: x.shape.clone(),
            data: Data::Float(v),
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
    let out_dt = kiln_ir::ops::dequantized_dtype(s.dtype, op.a.dtype("output_dtype")?);
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
            let code = f64::from(nf4_value(c as u8));
            code * av[row * nb + col / block as usize]
        })
        .collect();
    Ok(Tensor::from_f64(DType::F32, w.shape.clone(), v))
}

/// The dequantized weight of a `quant.matmul` (`kiln_ir`'s op docs), `n`
/// rows of `k` f32 values.
pub fn qmatmul_weight(op: &Op<'_>) -> Result<Vec<f32>, InterpError> {
    let sh = kiln_ir::ops::qmatmul_shape(op.a)?;
    qweight_values(op, &sh)
}

/// The dequantized weight held by operands 1 (codes), 2 (scales), 3 (zero
/// points) and 4, 5 (double-quantized scales' absmax and offset) of a
/// `quant.matmul` or `quant.conv` of shapes `sh`: `n` rows of `k` values.
fn qweight_values(op: &Op<'_>, sh: &kiln_ir::ops::QMatmulShape) -> Result<Vec<f32>, InterpError> {
    let (w, s) = (op.input(1)?, op.input(2)?);
    let (n, k, kw) = (sh.n as usize, sh.k as usize, sh.kw as usize);
    let (block, nb) = (sh.block as usize, sh.blocks as usize);
    let book = if op.a.def.attr_spec("code_book").is_some() {
        op.a.floats("code_book")?
    } else {
        None
    };
    let value = |i: usize| -> f32 {
        match (&w.data, &book) {
            (Data::Float(v), _) => v[i] as f32,
            (Data::Int(v), Some(b)) => b[v[i] as usize] as f32,
            (Data::Int(v), None) if w.dtype == DType::NF4 => nf4_value(v[i] as u8),
            (Data::Int(v), None) => v[i] as f32,
        }
    };
    let scales: Vec<f32> = match &s.data {
        Data::Float(v) => v.iter().map(|&x| x as f32).collect(),
        Data::Int(codes) => {
            let map = kiln_ir::codec::block::dynamic_map();
            let am = op.input(4)?.to_f64_vec();
            let off = op.input(5)?.get_f64(0) as f32;
            codes
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let g = am[i / kiln_ir::codec::block::DOUBLE_QUANT_BLOCK] as f32;
                    map[c as usize] * g + off
                })
                .collect()
        }
    };
    let zp = op.opt(3);
    let zcols = zp.map_or(0, |z| z.shape[1] as usize);
    let mut out = Vec::with_capacity(n * k);
    for r in 0..n {
        for c in 0..k {
            let b = c / block;
            let mut v = value(r * kw + c);
            if let Some(z) = zp {
                v -= z.get_f64(r * zcols + b) as f32;
            }
            out.push(v * scales[r * nb + b]);
        }
    }
    Ok(out)
}

/// `quant.matmul`: `a . dequant(w)^T`, accumulated in f64 and rounded once.
pub fn qmatmul(op: &Op<'_>) -> R {
    let a = op.input(0)?;
    let sh = kiln_ir::ops::qmatmul_shape(op.a)?;
    let (n, k) = (sh.n as usize, sh.k as usize);
    let wv = qmatmul_weight(op)?;
    let mut shape = a.shape.clone();
    *shape.last_mut().expect("rank >= 1") = sh.n;
    op.check(&shape)?;
    let av = a.to_f64_vec();
    let rows = av.len() / k.max(1);
    let mut out = Vec::with_capacity(rows * n);
    for i in 0..rows {
        let ar = &av[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &wv[j * k..(j + 1) * k];
            out.push(ar.iter().zip(wr).map(|(&x, &y)| x * f64::from(y)).sum());
        }
    }
    Ok(Tensor::from_f64(a.dtype, shape, out))
}

/// `quant.conv`: `nn.conv` of `x` (NCHW here) by the dequantized weight,
/// its window-ordered rows laid back out as `[M, C/group, kh, kw]`, plus
/// the bias (operand 4).
pub fn qconv(op: &Op<'_>) -> R {
    let sh = kiln_ir::ops::qconv_shape(op.a)?;
    let rows = qweight_values(op, &sh.w)?;
    let (m, k, cg) = (sh.w.n as usize, sh.w.k as usize, sh.cin_g as usize);
    let [kh, kw] = sh.kernel.map(|v| v as usize);
    let mut oihw = vec![0f64; m * k];
    for o in 0..m {
        for t in 0..kh * kw {
            for c in 0..cg {
                oihw[(o * cg + c) * kh * kw + t] = f64::from(rows[o * k + t * cg + c]);
            }
        }
    }
    let w = Tensor::from_f64(
        DType::F32,
        vec![m as u64, cg as u64, kh as u64, kw as u64],
        oihw,
    );
    let ins = [op.opt(0), Some(&w), op.opt(4)];
    crate::ops::linalg::conv(&Op { ins: &ins, ..*op })
}

/// `quant.conv_integer`: `nn.conv` of the shifted operands in int32 (the
/// i128 values of `x - x_zero_point` and `w - w_zero_point[m]`, exact),
/// plus the int32 bias.
pub fn qconv_integer(op: &Op<'_>) -> R {
    let (x, w) = (op.input(0)?, op.input(1)?);
    let ints = |t: &Tensor, what: &str| {
        t.ints()
            .map(<[i128]>::to_vec)
            .ok_or_else(|| InterpError::Invalid(format!("{what} must be an integer tensor")))
    };
    // `t - z`, z one value or (per_lead) one per index of t's first dim.
    let shift = |t: &Tensor, z: Option<&Tensor>, per_lead: bool| -> R {
        let mut v = ints(t, "a convolution operand")?;
        if let Some(z) = z {
            let zv = ints(z, "a zero point")?;
            let lead = t.shape.first().copied().unwrap_or(1) as usize;
            let inner = v.len() / lead.max(1);
            match zv.len() {
                1 => v.iter_mut().for_each(|e| *e -= zv[0]),
                l if per_lead && l == lead => {
                    for (i, e) in v.iter_mut().enumerate() {
                        *e -= zv[i / inner.max(1)];
                    }
                }
                l => {
                    return Err(InterpError::Invalid(format!(
                        "a zero point of {l} values for {:?}",
                        t.shape
                    )))
                }
            }
        }
        Ok(Tensor::from_ints(DType::I32, t.shape.clone(), v))
    };
    let xs = shift(x, op.opt(2), false)?;
    let ws = shift(w, op.opt(3), true)?;
    let ins = [Some(&xs), Some(&ws), op.opt(4)];
    let acc = crate::ops::linalg::conv(&Op { ins: &ins, ..*op })?;
    let (Some(scale), Some(zp)) = (op.opt(5), op.opt(6)) else {
        return Ok(acc);
    };
    // Requantized in f32: clamp(rint(f32(acc) * scale[m]) + zp).
    let sv = scale
        .floats()
        .ok_or_else(|| InterpError::Invalid("scale must be a float tensor".into()))?;
    let z = ints(zp, "y_zero_point")?.first().copied().unwrap_or(0);
    let (lo, hi) = int_range(zp.dtype);
    let m = acc.shape.get(1).copied().unwrap_or(1) as usize;
    let inner: usize = acc.shape.iter().skip(2).product::<u64>() as usize;
    if sv.len() != 1 && sv.len() != m {
        return Err(InterpError::Invalid(format!(
            "a scale of {} values for {m} channels",
            sv.len()
        )));
    }
    let av = ints(&acc, "the accumulator")?;
    let out = av
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let s = sv[if sv.len() == 1 {
                0
            } else {
                i / inner.max(1) % m
            }] as f32;
            let q = ((a as i32 as f32) * s).round_ties_even();
            (q as i128 + z).clamp(lo, hi)
        })
        .collect();
    Ok(Tensor::from_ints(zp.dtype, acc.shape.clone(), out))
}

/// `quant.matmul_integer`: `Σ_k (a - za[m]) * (b - zb[n])`, exactly (in
/// i128, wrapped to int32 as ONNX's int32 result; 8-bit operands never
/// reach the wrap for K < 2^16).
pub fn qmatmul_integer(op: &Op<'_>) -> R {
    let (a, b) = (op.input(0)?, op.input(1)?);
    let ints = |t: &Tensor, what: &str| {
        t.ints()
            .map(<[i128]>::to_vec)
            .ok_or_else(|| InterpError::Invalid(format!("{what} must be an integer tensor")))
    };
    let (av, bv) = (ints(a, "a")?, ints(b, "b")?);
    let r = a.rank();
    if r < 2 || b.rank() != 2 {
        return Err(InterpError::Invalid(format!(
            "quant.matmul_integer takes a of rank >= 2 and a 2-D b, got {:?} and {:?}",
            a.shape, b.shape
        )));
    }
    let (m, k, n) = (
        a.shape[r - 2] as usize,
        a.shape[r - 1] as usize,
        b.shape[1] as usize,
    );
    if b.shape[0] as usize != k {
        return Err(InterpError::Invalid(format!(
            "contracted dimensions differ ({k} vs {})",
            b.shape[0]
        )));
    }
    // A zero point per row/column, or one for all (absent: 0).
    let zp = |i: usize, len: usize| -> Result<Vec<i128>, InterpError> {
        Ok(match op.opt(i) {
            None => vec![0; len],
            Some(z) => {
                let v = ints(z, "a zero point")?;
                match v.len() {
                    1 => vec![v[0]; len],
                    l if l == len => v,
                    l => {
                        return Err(InterpError::Invalid(format!(
                            "a zero point of {l} values for {len}"
                        )))
                    }
                }
            }
        })
    };
    let (za, zb) = (zp(2, m)?, zp(3, n)?);
    let rows = a.shape[..r - 1].iter().product::<u64>() as usize;
    let mut out = vec![0i128; rows * n];
    for row in 0..rows {
        let x = &av[row * k..row * k + k];
        let z = za[row % m.max(1)];
        for (kk, &xv) in x.iter().enumerate() {
            let xv = xv - z;
            let brow = &bv[kk * n..kk * n + n];
            for (o, (&w, &zw)) in out[row * n..row * n + n]
                .iter_mut()
                .zip(brow.iter().zip(&zb))
            {
                *o += xv * (w - zw);
            }
        }
    }
    let mut shape = a.shape.clone();
    shape[r - 1] = n as u64;
    op.check(&shape)?;
    Ok(Tensor::from_ints(DType::I32, shape, out))
}

/// `quant.quantize_weight`: one part of `codec::block::quantize`.
pub fn quantize_weight(op: &Op<'_>) -> R {
    let w = op.input(0)?;
    let (scheme, axis, block, double) = kiln_ir::ops::quantize_weight_params(op.a)?;
    let part = op.a.enum_attr("part")?;
    let vals = w.to_f64_vec().iter().map(|&x| x as f32).collect();
    let (rows, k, vals) =
        kiln_ir::codec::block::weight_rows(vals, w.shape[0] as usize, w.shape[1] as usize, axis);
    let q = kiln_ir::codec::block::quantize(&vals, rows, k, scheme, block);
    let bytes = quantized_part(&q, scheme, part, double)?;
    let ty = &(op.a.def.infer)(op.a)?[0];
    let shape = ty
        .static_shape()
        .expect("quantize_weight results are static");
    Tensor::from_bytes(ty.dtype, &shape, &bytes)
}

/// The storage bytes of one part of a quantized weight (see
/// `quant.quantize_weight`).
pub fn quantized_part(
    q: &kiln_ir::codec::block::Quantized,
    scheme: kiln_ir::codec::block::Scheme,
    part: QuantPart,
    double: bool,
) -> Result<Vec<u8>, InterpError> {
    use kiln_ir::codec::packing::pack;
    let code_bits = scheme.code_dtype().bits();
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let dq = || kiln_ir::codec::block::double_quantize(&q.scales);
    Ok(match part {
        QuantPart::Codes if code_bits < 8 => pack(q.codes.iter().copied(), code_bits),
        QuantPart::Codes => q.codes.clone(),
        QuantPart::Scales if double => dq().codes,
        QuantPart::Scales => match &q.scale_codes {
            Some(c) => c.clone(),
            None => f32_bytes(&q.scales),
        },
        QuantPart::ZeroPoints => {
            let z = q
                .zero_points
                .as_ref()
                .ok_or_else(|| InterpError::Invalid("this scheme has no zero points".into()))?;
            // Rows padded to whole bytes with zero codes.
            let nb = q.blocks();
            let cols = kiln_ir::codec::block::zero_point_cols(nb, scheme.code_dtype());
            let rows = z.chunks(nb.max(1)).flat_map(|r| {
                r.iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, cols - r.len()))
            });
            if code_bits < 8 {
                pack(rows, code_bits)
            } else {
                rows.collect()
            }
        }
        QuantPart::ScaleAbsmax => f32_bytes(&dq().absmax),
        QuantPart::ScaleOffset => f32_bytes(&[dq().offset]),
        QuantPart::GlobalScale => f32_bytes(&[q.global_scale.unwrap_or(1.0)]),
    })
}
