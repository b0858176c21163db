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
//!   (f64 for f64 scales) and rounds to the scale's dtype.
//!
//! The 4-bit, float8 and NF4 storage types have no MLIR element type in this
//! lowering yet (`ctx::elem` rejects them), so those forms stay unsupported.

use super::ctx::{Body, Builder, Res, Val};
use super::elementwise::convert;
use super::{attr_err, NodeIn};
use kiln_ir::ops::infer::norm_axis;
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

/// `quant.quantize_linear` into an integer type.
pub(crate) fn quantize_linear(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, s) = (n.input(0)?.clone(), n.input(1)?.clone());
    let z = n.opt(2).cloned();
    let (out, shape) = n.out(0)?;
    if !out.is_int() || out == DType::Bool || out.bits() > 32 {
        return Err(format!("quantizing to {out} is not supported"));
    }
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
    if !matches!(div, DType::F16 | DType::BF16 | DType::F32 | DType::F64) {
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

/// `quant.dequantize_linear` of an integer input.
pub(crate) fn dequantize_linear(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, s) = (n.input(0)?.clone(), n.input(1)?.clone());
    let (out, shape) = n.out(0)?;
    if !x.dtype.is_int() || x.dtype == DType::Bool {
        return Err(format!("dequantizing {} is not supported", x.dtype));
    }
    if out != s.dtype || !out.is_float() {
        return Err(format!("the result dtype {out} must be the scale's"));
    }
    let gran = Granularity::read(n, &x, &s)?;
    let z = n.opt(2).cloned();
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
