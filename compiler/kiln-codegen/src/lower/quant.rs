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
//! - small float targets ignore the zero point: the quotient is rounded to
//!   the format (saturating unless `saturate = 0`), except E2M1, which adds
//!   the zero point's value first as ONNX's reference does; small float
//!   inputs dequantize without a zero point; `i4`/`u4`/`i2`/`u2` go through
//!   the integer path with their range (values live in their compute types,
//!   see [`super::storage`]);
//! - `quant.nf4_dequantize` multiplies the f32 code-book entry by its
//!   block's absmax (blocks along the last dim) in f32, which is exact
//!   rounding of the interpreter's f64 product of two f32 values.

use super::ctx::{Body, Builder, Res, Val};
use super::elementwise::{convert, convert_mode};
use super::storage;
use super::{attr_err, NodeIn};
use kiln_ir::codec::{nf4_table, CastMode, FloatFormat};
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

/// `quant.quantize_linear` into an integer or float8 type.
pub(crate) fn quantize_linear(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, s) = (n.input(0)?.clone(), n.input(1)?.clone());
    let (out, shape) = n.out(0)?;
    let small = FloatFormat::of(out);
    // Float8 targets ignore the zero point (its dtype only names the
    // target); E2M1 adds its value.
    let z = n
        .opt(2)
        .cloned()
        .filter(|_| small.is_none() || out == DType::F4E2M1);
    if small.is_none() && (!out.is_int() || out == DType::Bool || out.bits() > 32) {
        return Err(format!("quantizing to {out} is not supported"));
    }
    let mode = CastMode {
        saturate: n.a.bool("saturate").map_err(attr_err)?,
        ..CastMode::CAST_DEFAULT
    };
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
        // A small-float division rounds the f32 quotient once more; both
        // roundings together are the correct one (f32 has more than twice
        // the precision), as the interpreter's f64 quotient is.
        let q = match FloatFormat::of(div) {
            Some(f) => storage::round_small_float(body, &q, DType::F32, f, CastMode::ARITH)?,
            None => q,
        };
        if small.is_some() {
            let q = match &z {
                Some(z) => {
                    let zv = gran.extract(body, z, o);
                    let zv = convert(body, &zv, z.dtype, div)?;
                    body.op(format!("arith.addf {q}, {zv} : {de}"))
                }
                None => q,
            };
            return convert_mode(body, &q, div, out, mode);
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
    let float_in = FloatFormat::of(x.dtype).is_some();
    if !float_in && (!x.dtype.is_int() || x.dtype == DType::Bool) {
        return Err(format!("dequantizing {} is not supported", x.dtype));
    }
    if !matches!(out, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
        return Err(format!("dequantizing to {out} is not supported"));
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
    let entries: Vec<String> = nf4_table()
        .iter()
        .map(|&v| format!("0x{:08X}", v.to_bits()))
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

/// A constant f32 table (`tensor<Nxf32>`) of `values`.
fn table(b: &mut Builder, values: &[f32]) -> Val {
    let entries: Vec<String> = values
        .iter()
        .map(|v| format!("0x{:08X}", v.to_bits()))
        .collect();
    Val {
        ssa: b.op(format!(
            "arith.constant dense<[{}]> : tensor<{}xf32>",
            entries.join(", "),
            values.len()
        )),
        dtype: DType::F32,
        shape: vec![values.len() as u64],
    }
}

/// `table[code]` for an `i8` code held in its compute type.
fn lookup(body: &mut Body<'_>, t: &Val, code: &str, bits: u32) -> Res<String> {
    let m = body.op(format!("arith.constant {} : i8", (1u32 << bits) - 1));
    let c = body.op(format!("arith.andi {code}, {m} : i8"));
    let i = body.index_of(&c, DType::U8)?;
    Ok(body.extract(t, &[i]))
}

/// The value `v(code) - v(zero point)` of the weight code at `(row, kk)`
/// of a `quant.matmul` / `quant.conv` (`w`: codes, their value table if
/// looked up, zero points if any) and the index of its block of `block`
/// along the row.
fn code_value(
    body: &mut Body<'_>,
    (w, wtab, z): (&Val, Option<&Val>, Option<&Val>),
    row: &str,
    kk: &str,
    block: u64,
) -> Res<(String, String)> {
    let code = body.extract(w, &[row.to_string(), kk.to_string()]);
    let mut v = match wtab {
        Some(t) => lookup(body, t, &code, w.dtype.bits())?,
        None => convert(body, &code, w.dtype, DType::F32)?,
    };
    let bi = body.op(format!(
        "affine.apply affine_map<(d0) -> (d0 floordiv {block})>({kk})"
    ));
    if let Some(z) = z {
        let zv = body.extract(z, &[row.to_string(), bi.clone()]);
        let zv = convert(body, &zv, z.dtype, DType::F32)?;
        v = body.op(format!("arith.subf {v}, {zv} : f32"));
    }
    Ok((v, bi))
}

/// `acc + a * (v * scale)` in f32: one step of a dot product over dequantized codes (`v` a
/// code's value less its zero point), rounded as the interpreter's dequantize-then-multiply.
fn add_product(body: &mut Body<'_>, acc: &str, a: &str, v: &str, scale: &str) -> String {
    let wv = body.op(format!("arith.mulf {v}, {scale} : f32"));
    let p = body.op(format!("arith.mulf {a}, {wv} : f32"));
    body.op(format!("arith.addf {acc}, {p} : f32"))
}

/// `quant.matmul` as tensor code (the path without a kernel): one element
/// of `[rows, N]` per iteration, with the dot product over K in an `scf.for`
/// that dequantizes each weight code where it is read (`kiln_ir`'s op docs),
/// accumulating in f32; no dequantized copy of the weight is made.
pub(crate) fn qmatmul(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let sh = kiln_ir::ops::qmatmul_shape(n.a).map_err(attr_err)?;
    let a = n.input(0)?.clone();
    let (w, s) = (n.input(1)?.clone(), n.input(2)?.clone());
    let z = n.opt(3).cloned();
    let (out, shape) = n.out(0)?;
    let (k, nn) = (sh.k, sh.n);
    let rows = a.numel() / k.max(1);
    let a2 = b.reshape(&a, &[rows, k])?;
    let book = n.a.floats("code_book").map_err(attr_err)?;
    let wtab = match (&book, w.dtype) {
        (Some(bk), _) => Some(table(b, &bk.iter().map(|&v| v as f32).collect::<Vec<_>>())),
        (None, DType::NF4) => Some(table(b, &nf4_table())),
        _ => None,
    };
    let double = if s.dtype == DType::U8 {
        let map = table(b, &kiln_ir::codec::block::dynamic_map());
        let am = n.input(4)?.clone();
        let off = n.input(5)?.clone();
        Some((map, am, off))
    } else {
        None
    };
    let block = sh.block;
    let blocks = sh.blocks;
    let y = b.tabulate(out, &[rows, nn], |body, idx| {
        let (r, j) = (&idx[0], &idx[1]);
        let lo = body.index(0);
        let hi = body.index(k as i64);
        let zero = body.float(0.0, DType::F32)?;
        let acc = body.for_loop(&lo, &hi, &[(zero, "f32")], |body, kk, carried| {
            let av = body.extract(&a2, &[r.clone(), kk.to_string()]);
            let av = convert(body, &av, a.dtype, DType::F32)?;
            let (v, bi) = code_value(body, (&w, wtab.as_ref(), z.as_ref()), j, kk, block)?;
            let sv = body.extract(&s, &[j.clone(), bi.clone()]);
            let sv = match &double {
                Some((map, am, off)) => {
                    let c = lookup(body, map, &sv, 8)?;
                    let flat = body.op(format!(
                        "affine.apply affine_map<(d0, d1) -> (d0 * {blocks} + d1)>({j}, {bi})"
                    ));
                    let g = body.op(format!(
                        "affine.apply affine_map<(d0) -> (d0 floordiv {})>({flat})",
                        kiln_ir::codec::block::DOUBLE_QUANT_BLOCK
                    ));
                    let gv = body.extract(am, &[g]);
                    let at: Vec<String> = off.shape.iter().map(|_| body.index(0)).collect();
                    let ov = body.extract(off, &at);
                    let p = body.op(format!("arith.mulf {c}, {gv} : f32"));
                    body.op(format!("arith.addf {p}, {ov} : f32"))
                }
                None => convert(body, &sv, s.dtype, DType::F32)?,
            };
            Ok(vec![add_product(body, &carried[0], &av, &v, &sv)])
        })?;
        convert(body, &acc[0], DType::F32, out)
    })?;
    b.reshape(&y, shape)
}

/// `quant.conv` as a tensor program (the path without the conv2d kernel:
/// the GPU targets, -O0): one output element per iteration of `[N, M, OH,
/// OW]`, summing over the window's codes in window order (`kiln_ir`'s op
/// docs) in an `scf.for` that dequantizes each code where it is read,
/// accumulating in f32 from the bias over the zero-padded input; no
/// dequantized copy of the weight is made.
pub(crate) fn qconv(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let sh = kiln_ir::ops::qconv_shape(n.a).map_err(attr_err)?;
    let x = n.input(0)?.clone();
    let (w, s) = (n.input(1)?.clone(), n.input(2)?.clone());
    let (z, bias) = (n.opt(3).cloned(), n.opt(4).cloned());
    let (out, out_shape) = n.out(0)?;
    if x.rank() != 4 || out_shape.len() != 4 {
        return Err(format!("quant.conv of {} is not 2-D", x.ty()));
    }
    let (m, cg, block) = (sh.w.n, sh.cin_g, sh.w.block);
    let mg = m / sh.group.max(1);
    let [kh, kw] = sh.kernel;
    let sp = super::linalg::Spatial::read(n, &x.shape[2..], Some(vec![kh, kw]), &out_shape[2..])?;
    let xp = b.pad(
        &x,
        &[0, 0, sp.lo[0], sp.lo[1]],
        &[0, 0, sp.hi[0], sp.hi[1]],
        0.0,
    )?;
    let ([sy, sx], [dy, dx]) = (
        [sp.strides[0], sp.strides[1]],
        [sp.dilations[0], sp.dilations[1]],
    );
    let wtab = (w.dtype == DType::NF4).then(|| table(b, &nf4_table()));
    let k = kh * kw * cg;
    b.tabulate(out, out_shape, |body, idx| {
        let (img, o, oy, ox) = (&idx[0], &idx[1], &idx[2], &idx[3]);
        let init = match &bias {
            Some(bv) => {
                let v = body.extract(bv, std::slice::from_ref(o));
                convert(body, &v, bv.dtype, DType::F32)?
            }
            None => body.float(0.0, DType::F32)?,
        };
        let lo = body.index(0);
        let hi = body.index(k as i64);
        let acc = body.for_loop(&lo, &hi, &[(init, "f32")], |body, kk, carried| {
            // Code kk of the window: tap kk / cg (ky, kx), channel kk % cg of o's group.
            let ci = body.op(format!(
                "affine.apply affine_map<(d0, d1) -> ((d1 floordiv {mg}) * {cg} + d0 mod {cg})>({kk}, {o})"
            ));
            let iy = body.op(format!(
                "affine.apply affine_map<(d0, d1) -> (d1 * {sy} + (d0 floordiv {}) * {dy})>({kk}, {oy})",
                kw * cg
            ));
            let ix = body.op(format!(
                "affine.apply affine_map<(d0, d1) -> (d1 * {sx} + ((d0 floordiv {cg}) mod {kw}) * {dx})>({kk}, {ox})"
            ));
            let xv = body.extract(&xp, &[img.clone(), ci, iy, ix]);
            let xv = convert(body, &xv, x.dtype, DType::F32)?;
            let (v, bi) = code_value(body, (&w, wtab.as_ref(), z.as_ref()), o, kk, block)?;
            let sv = body.extract(&s, &[o.clone(), bi]);
            let sv = convert(body, &sv, s.dtype, DType::F32)?;
            Ok(vec![add_product(body, &carried[0], &xv, &v, &sv)])
        })?;
        convert(body, &acc[0], DType::F32, out)
    })
}

/// `quant.quantize_weight` only exists in derived weights (computed at
/// compile time); a graph node of it has no lowering.
pub(crate) fn quantize_weight_node() -> Res<Vec<Val>> {
    Err(
        "quant.quantize_weight runs at compile time (derived weights); fold it into a weight"
            .into(),
    )
}

/// `quant.conv_integer` as a tensor program: `x - x_zero_point` and `w -
/// w_zero_point` widened to i32 (one `linalg.generic` each), then
/// `nn.conv`'s loop nest over them with the bias (padding adds zeros after
/// the shift, as the interpreter). The CPU's planned lowering calls the
/// int8 kernel instead (`kernels::Kernels::iconv`).
pub(crate) fn qconv_integer(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    use super::ctx::{affine_map, identity_map, Iter, Operand};
    let shift = |b: &mut Builder, t: &Val, z: Option<&Val>| -> Res<Val> {
        let r = t.rank();
        let mut ins = vec![Operand::of(t, identity_map(r))];
        if let Some(z) = z {
            let idx = match (z.rank(), z.shape.first()) {
                (0, _) => vec![],
                (1, Some(1)) => vec!["0".to_string()],
                (1, _) => vec!["d0".to_string()],
                _ => return Err("a zero point must be a scalar or 1-D".into()),
            };
            ins.push(Operand::of(z, affine_map(r, &idx)));
        }
        let init = b.empty(DType::I32, &t.shape)?;
        let dt = t.dtype;
        let has_z = z.is_some();
        let y = b.generic(
            &vec![Iter::Par; r],
            &ins,
            &[(init, identity_map(r))],
            |body, v| {
                let x = convert(body, &v[0], dt, DType::I32)?;
                if !has_z {
                    return Ok(vec![x]);
                }
                let z = convert(body, &v[1], dt, DType::I32)?;
                Ok(vec![body.op(format!("arith.subi {x}, {z} : i32"))])
            },
        )?;
        Ok(y[0].clone())
    };
    let xs = shift(b, n.input(0)?, n.opt(2))?;
    let ws = shift(b, n.input(1)?, n.opt(3))?;
    let (_, out_shape) = n.out(0)?;
    let inner = NodeIn {
        node: n.node,
        a: n.a,
        ins: vec![Some(xs), Some(ws), n.opt(4).cloned()],
        outs: vec![(DType::I32, out_shape.to_vec())],
    };
    let acc = super::linalg::conv(b, &inner)?;
    let (Some(scale), Some(zp)) = (n.opt(5), n.opt(6)) else {
        return Ok(acc);
    };
    // clamp(rint(f32(acc) * scale[m]) + zp), in f32 as the interpreter.
    let r = acc.rank();
    let smap = match (scale.rank(), scale.shape.first()) {
        (0, _) => vec![],
        (1, Some(1)) => vec!["0".to_string()],
        _ => vec!["d1".to_string()],
    };
    let zmap = if zp.rank() == 0 {
        vec![]
    } else {
        vec!["0".to_string()]
    };
    let ins = [
        Operand::of(&acc, identity_map(r)),
        Operand::of(scale, affine_map(r, &smap)),
        Operand::of(zp, affine_map(r, &zmap)),
    ];
    let odt = zp.dtype;
    let (lo, hi) = if odt == DType::I8 {
        (-128, 127)
    } else {
        (0, 255)
    };
    let init = b.empty(odt, out_shape)?;
    let y = b.generic(
        &vec![Iter::Par; r],
        &ins,
        &[(init, identity_map(r))],
        |body, v| {
            let f = body.op(format!("arith.sitofp {} : i32 to f32", v[0]));
            let f = body.op(format!("arith.mulf {f}, {} : f32", v[1]));
            let q = body.op(format!("math.roundeven {f} : f32"));
            let z = convert(body, &v[2], odt, DType::I32)?;
            let zf = body.op(format!("arith.sitofp {z} : i32 to f32"));
            let q = body.op(format!("arith.addf {q}, {zf} : f32"));
            let lo = body.op(format!("arith.constant {lo}.0 : f32"));
            let hi = body.op(format!("arith.constant {hi}.0 : f32"));
            let q = body.op(format!("arith.maximumf {q}, {lo} : f32"));
            let q = body.op(format!("arith.minimumf {q}, {hi} : f32"));
            let q = body.op(format!("arith.fptosi {q} : f32 to i32"));
            Ok(vec![body.op(format!("arith.trunci {q} : i32 to i8"))])
        },
    )?;
    Ok(y[0].clone())
}

/// `quant.matmul_integer`: one `linalg.generic` over (the leading dims of
/// `a`, K, N) accumulating `(a - za) * (b - zb)` in i32, the 8-bit values
/// and zero points widened (sign- or zero-extended by dtype) first, as the
/// interpreter's exact sum. A zero point of one value is read at index 0
/// for every row or column.
pub(crate) fn qmatmul_integer(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    use super::ctx::{affine_map, Iter, Operand};
    let (a, w) = (n.input(0)?.clone(), n.input(1)?.clone());
    let (_, out_shape) = n.out(0)?;
    let r = a.rank();
    if r < 2 || w.rank() != 2 {
        return Err("quant.matmul_integer takes a of rank >= 2 and a 2-D b".into());
    }
    let d = |i: usize| format!("d{i}");
    // Loop dims: a's dims (its last is K), then N.
    let nd = r + 1;
    let (dm, dk, dn) = (r - 2, r - 1, r);
    let zmap = |z: &Val, per: usize| -> Res<String> {
        Ok(affine_map(
            nd,
            &match (z.rank(), z.shape.first()) {
                (0, _) => vec![],
                (1, Some(1)) => vec!["0".to_string()],
                (1, _) => vec![d(per)],
                _ => return Err("a zero point must be a scalar or 1-D".to_string()),
            },
        ))
    };
    let mut ins = vec![
        Operand::of(&a, affine_map(nd, &(0..r).map(d).collect::<Vec<_>>())),
        Operand::of(&w, affine_map(nd, &[d(dk), d(dn)])),
    ];
    let za = n.opt(2).cloned();
    let zb = n.opt(3).cloned();
    if let Some(z) = &za {
        ins.push(Operand::of(z, zmap(z, dm)?));
    }
    if let Some(z) = &zb {
        ins.push(Operand::of(z, zmap(z, dn)?));
    }
    let mut om: Vec<String> = (0..r - 1).map(d).collect();
    om.push(d(dn));
    let init = b.filled(0.0, DType::I32, out_shape)?;
    let mut iters = vec![Iter::Par; r - 1];
    iters.extend([Iter::Red, Iter::Par]);
    let (adt, wdt) = (a.dtype, w.dtype);
    let (has_za, has_zb) = (za.is_some(), zb.is_some());
    let y = b.generic(&iters, &ins, &[(init, affine_map(nd, &om))], |body, v| {
        let mut i = 2;
        let mut x = convert(body, &v[0], adt, DType::I32)?;
        if has_za {
            let z = convert(body, &v[i], adt, DType::I32)?;
            x = body.op(format!("arith.subi {x}, {z} : i32"));
            i += 1;
        }
        let mut y = convert(body, &v[1], wdt, DType::I32)?;
        if has_zb {
            let z = convert(body, &v[i], wdt, DType::I32)?;
            y = body.op(format!("arith.subi {y}, {z} : i32"));
            i += 1;
        }
        let p = body.op(format!("arith.muli {x}, {y} : i32"));
        Ok(vec![body.op(format!("arith.addi {}, {p} : i32", v[i]))])
    })?;
    Ok(y[0].clone())
}
