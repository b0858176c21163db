//! The `quant` dialect: `quant.quantize_linear` and
//! `quant.dequantize_linear` with per-tensor, per-axis and blocked scales,
//! following `kiln_interp::ops::quant` (the ONNX reference).
//!
//! Invariants:
//! - each op is one `linalg.generic` over its result; the scale and zero
//!   point are read with `tensor.extract` at the position the granularity
//!   gives (all zeros per tensor, the `axis` coordinate per axis, the
//!   coordinate with `axis` divided by `block_size` when blocked);
//! - quantization divides in the reference's dtype (`precision`, else the
//!   wider of the input and scale dtypes, f64 for integer inputs), then
//!   rounds half to even, adds the zero point and saturates in f64, where
//!   every step is exact; NaN quantizes to the zero point;
//! - dequantization computes `x - zero_point` in f32, the product in f32
//!   (f64 for f64 scales) and rounds to the scale's dtype;
//! - float8 targets ignore the zero point: the quotient is rounded to the
//!   float8 grid (saturating unless `saturate = 0`), and float8 inputs
//!   dequantize without a zero point; `i4`/`u4` go through the integer
//!   path with their 4-bit range (values live in their compute types, see
//!   [`super::storage`]);
//! - `quant.nf4_dequantize` multiplies the f32 code-book entry by its
//!   block's absmax (blocks along the last dim) in f32, which is exact
//!   rounding of the interpreter's f64 product of two f32 values.

use super::ctx::{Body, Builder, Res, Val};
use super::elementwise::{convert, convert_sat};
use super::storage::{self, F8};
use super::{attr_err, NodeIn};
use kiln_ir::ops::infer::norm_axis;
use kiln_ir::ops::NF4_CODE_BOOK;
use kiln_ir::DType;

/// How a scale (or zero point) maps onto the input's coordinates.
#[derive(Clone, Copy)]
enum Granularity {
    PerTensor,
    PerAxis(usize),
    Blocked(usize, u64),
}

impl Granularity {
    fn read(n: &NodeIn<'_>, x: &Val, s: &Val) -> Res<Granularity> {
        let block = n.a.int("block_size").map_err(attr_err)?;
        if s.numel() == 1 && block <= 0 {
            return Ok(Granularity::PerTensor);
        }
        let axis = norm_axis(n.a.int("axis").map_err(attr_err)?, x.rank()).map_err(attr_err)?;
        if block > 0 {
            let bs = block as u64;
            let fits = s.rank() == x.rank()
                && (0..x.rank()).all(|d| {
                    if d == axis {
                        s.shape[d] == x.shape[d].div_ceil(bs)
                    } else {
                        s.shape[d] == x.shape[d]
                    }
                });
            if !fits {
                return Err(format!(
                    "blocked scale {} does not cover {}",
                    s.ty(),
                    x.ty()
                ));
            }
            Ok(Granularity::Blocked(axis, bs))
        } else if s.shape == [x.shape[axis]] {
            Ok(Granularity::PerAxis(axis))
        } else {
            Err(format!(
                "per-axis scale {} does not match axis {axis} of {}",
                s.ty(),
                x.ty()
            ))
        }
    }

    /// Reads `p` (a scale or zero point) for the element at `o`; a
    /// one-element `p` applies everywhere.
    fn extract(self, b: &mut Body<'_>, p: &Val, o: &[String]) -> String {
        let at: Vec<String> = if p.numel() == 1 {
            p.shape.iter().map(|_| b.index(0)).collect()
        } else {
            match self {
                Granularity::PerTensor => p.shape.iter().map(|_| b.index(0)).collect(),
                Granularity::PerAxis(a) => vec![o[a].clone()],
                Granularity::Blocked(a, bs) => {
                    let mut at = o.to_vec();
                    let bc = b.index(bs as i64);
                    at[a] = b.op(format!("arith.divui {}, {bc} : index", o[a]));
                    at
                }
            }
        };
        b.extract(p, &at)
    }
}

/// The representable range of an integer dtype, as f64.
fn int_range(dt: DType) -> (f64, f64) {
    let bits = dt.bits() as i32;
    if dt.is_signed() {
        (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0)
    } else {
        (0.0, 2f64.powi(bits) - 1.0)
    }
}

/// `quant.quantize_linear` into an integer or float8 type.
pub(crate) fn quantize_linear(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, s) = (n.input(0)?.clone(), n.input(1)?.clone());
    let (out, shape) = n.out(0)?;
    let f8 = F8::of(out);
    // Float8 targets ignore the zero point (its dtype only names the target).
    let z = n.opt(2).cloned().filter(|_| f8.is_none());
    if f8.is_none() && (!out.is_int() || out == DType::Bool || out.bits() > 32) {
        return Err(format!("quantizing to {out} is not supported"));
    }
    let saturate = n.a.bool("saturate").map_err(attr_err)?;
    let gran = Granularity::read(n, &x, &s)?;
    if let Some(z) = &z {
        if z.numel() != 1 && z.shape != s.shape {
            return Err(format!("zero point {} must have the scale's shape", z.ty()));
        }
    }
    let div = match n.a.dtype("precision").map_err(attr_err)? {
        Some(p) => p,
        None if !x.dtype.is_float() => DType::F64,
        None if x.dtype == s.dtype => x.dtype,
        None if x.dtype == DType::F64 || s.dtype == DType::F64 => DType::F64,
        None => DType::F32,
    };
    if !div.is_float() {
        return Err(format!("precision {div} is not supported"));
    }
    let de = super::ctx::elem(div)?;
    let (lo, hi) = int_range(out);
    b.tabulate(out, shape, |body, o| {
        let xv = body.extract(&x, o);
        let xv = convert(body, &xv, x.dtype, div)?;
        let sv = gran.extract(body, &s, o);
        let sv = convert(body, &sv, s.dtype, div)?;
        let q = body.op(format!("arith.divf {xv}, {sv} : {de}"));
        // A float8 division rounds the f32 quotient once more; both
        // roundings together are the correct one (f32 has more than twice
        // the float8 precision), as the interpreter's f64 quotient is.
        let q = match F8::of(div) {
            Some(f) => storage::f8_round(body, &q, DType::F32, f, false)?,
            None => q,
        };
        if f8.is_some() {
            return convert_sat(body, &q, div, out, saturate);
        }
        let q = convert(body, &q, div, DType::F64)?;
        let r = body.op(format!("math.roundeven {q} : f64"));
        let nan = body.op(format!("arith.cmpf uno, {r}, {r} : f64"));
        let zero = body.float(0.0, DType::F64)?;
        let r = body.select(&nan, &zero, &r, "f64");
        let r = match &z {
            Some(z) => {
                let zv = gran.extract(body, z, o);
                let zv = convert(body, &zv, z.dtype, DType::F64)?;
                body.op(format!("arith.addf {r}, {zv} : f64"))
            }
            None => r,
        };
        let (l, h) = (body.float(lo, DType::F64)?, body.float(hi, DType::F64)?);
        let c = body.op(format!("arith.maximumf {r}, {l} : f64"));
        let c = body.op(format!("arith.minimumf {c}, {h} : f64"));
        convert(body, &c, DType::F64, out)
    })
}

/// `quant.dequantize_linear` of an integer or float8 input.
pub(crate) fn dequantize_linear(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, s) = (n.input(0)?.clone(), n.input(1)?.clone());
    let (out, shape) = n.out(0)?;
    let float_in = F8::of(x.dtype).is_some();
    if !float_in && (!x.dtype.is_int() || x.dtype == DType::Bool) {
        return Err(format!("dequantizing {} is not supported", x.dtype));
    }
    if out != s.dtype || !out.is_float() {
        return Err(format!("the result dtype {out} must be the scale's"));
    }
    let gran = Granularity::read(n, &x, &s)?;
    // A float8 input has no zero point to subtract (the reference ignores it).
    let z = n.opt(2).cloned().filter(|_| !float_in);
    if let Some(z) = &z {
        if z.numel() != 1 && z.shape != s.shape {
            return Err(format!("zero point {} must have the scale's shape", z.ty()));
        }
    }
    let prod = if s.dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let pe = super::ctx::elem(prod)?;
    b.tabulate(out, shape, |body, o| {
        let xv = body.extract(&x, o);
        let mut d = convert(body, &xv, x.dtype, DType::F32)?;
        if let Some(z) = &z {
            let zv = gran.extract(body, z, o);
            let zv = convert(body, &zv, z.dtype, DType::F32)?;
            d = body.op(format!("arith.subf {d}, {zv} : f32"));
        }
        let d = convert(body, &d, DType::F32, prod)?;
        let sv = gran.extract(body, &s, o);
        let sv = convert(body, &sv, s.dtype, prod)?;
        let p = body.op(format!("arith.mulf {d}, {sv} : {pe}"));
        convert(body, &p, prod, out)
    })
}

/// `quant.nf4_dequantize`: `code_book[w] * absmax[.., k / block_size]`.
pub(crate) fn nf4_dequantize(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (w, a) = (n.input(0)?.clone(), n.input(1)?.clone());
    let (out, shape) = n.out(0)?;
    let block = n.a.int("block_size").map_err(attr_err)?;
    if w.dtype != DType::NF4 || out != DType::F32 {
        return Err(format!("nf4 dequantization of {} to {out}", w.ty()));
    }
    if !matches!(a.dtype, DType::F32 | DType::F16) {
        return Err(format!("absmax of dtype {} is not supported", a.dtype));
    }
    let r = w.rank();
    let fits = block > 0
        && r > 0
        && a.rank() == r
        && a.shape[..r - 1] == w.shape[..r - 1]
        && a.shape[r - 1] == w.shape[r - 1].div_ceil(block as u64);
    if !fits {
        return Err(format!(
            "absmax {} does not fit weight {} with block_size {block}",
            a.ty(),
            w.ty()
        ));
    }
    let entries: Vec<String> = NF4_CODE_BOOK
        .iter()
        .map(|&v| format!("0x{:08X}", (v as f32).to_bits()))
        .collect();
    let book = Val {
        ssa: b.op(format!(
            "arith.constant dense<[{}]> : tensor<16xf32>",
            entries.join(", ")
        )),
        dtype: DType::F32,
        shape: vec![16],
    };
    b.tabulate(out, shape, |body, o| {
        let code = body.extract(&w, o);
        // Codes are 0..=15 by construction; the mask keeps every read
        // inside the table regardless.
        let m = body.op("arith.constant 15 : i8");
        let code = body.op(format!("arith.andi {code}, {m} : i8"));
        let i = body.index_of(&code, DType::U8)?;
        let cv = body.extract(&book, &[i]);
        let mut at = o.to_vec();
        at[r - 1] = body.op(format!(
            "affine.apply affine_map<(d0) -> (d0 floordiv {block})>({})",
            o[r - 1]
        ));
        let av = body.extract(&a, &at);
        let av = convert(body, &av, a.dtype, DType::F32)?;
        Ok(body.op(format!("arith.mulf {cv}, {av} : f32")))
    })
}
