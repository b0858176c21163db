//! Storage-only dtypes: the small floats (`f8e4m3fn`, `f8e4m3fnuz`,
//! `f8e5m2`, `f8e5m2fnuz`, `f8e8m0`: one byte each; `f4e2m1`: 4 bits) and the
//! sub-byte integers and codes (`i4`, `u4`, `nf4`: 4 bits; `i2`, `u2`: 2 bits),
//! packed with the first element in the lowest bits.
//!
//! Storage type vs compute type: inside `@kiln_main` a value of one of these
//! dtypes is a tensor of a wider compute type ([`super::ctx::elem`]):
//! - small floats: `f32` holding exactly the value (every such value, NaN and
//!   the infinities included, is an `f32` value; E8M0's `2^-127` is an `f32`
//!   subnormal);
//! - `i4`/`i2`, `u4`/`u2`: `i8` holding the value (sign-extended or not);
//! - `nf4`: `i8` holding the 4-bit code (`0..=15`).
//!
//! The encodings are `kiln_ir::codec`'s, emitted through its [`Scalar32`]
//! trait ([`Body`] implements it with one MLIR op per call), so generated
//! code and the interpreter run the same definition.
//!
//! Invariants:
//! - every compute-type tensor of a storage-only dtype holds only values of
//!   that dtype: producers round ([`round_small_float`]) or wrap
//!   ([`wrap_bits`]) once, so a later consumer (a cast, a dequantization, an
//!   encoder) can rely on it, and data movement (reshape, transpose, gather,
//!   ...) stays exact;
//! - only the boundaries see the storage layout ([`raw`]): graph inputs and
//!   weights are decoded from their bytes ([`decode`]) and graph outputs
//!   encoded back ([`encode`]);
//! - a packed tensor of `N` elements is `memref<ceil(N / per_byte)xi8>` at
//!   the boundary whatever its rank (its byte size is `storage_bytes(N)`, as
//!   in the runtime's descriptors); a one-byte small float tensor keeps its
//!   shape with `i8` elements.

use super::ctx::{Body, Builder, Res, Val};
use kiln_ir::codec::{CastMode, FCmp, FloatFormat, ICmp, Scalar32};
use kiln_ir::DType;

/// Whether `dt` is held in a wider compute type than its storage.
pub(crate) fn is_storage_only(dt: DType) -> bool {
    dt.is_storage_only()
}

/// The dtype and shape of the bytes that hold a tensor of `dtype` and
/// `shape` at the function boundary (`u8`, so the memref element is `i8`).
pub(crate) fn raw(dtype: DType, shape: &[u64]) -> (DType, Vec<u64>) {
    if dtype.is_packed() {
        let n: u64 = shape.iter().product();
        let bytes = dtype.storage_bytes(n).unwrap_or(u64::MAX);
        (DType::U8, vec![bytes])
    } else if is_storage_only(dtype) {
        (DType::U8, shape.to_vec())
    } else {
        (dtype, shape.to_vec())
    }
}

/// `kiln_ir::codec`'s scalar operations as MLIR on `f32`, `i32` and `i1`.
impl Scalar32 for Body<'_> {
    type F = String;
    type I = String;
    type B = String;

    fn fconst(&mut self, v: f32) -> String {
        self.op(format!("arith.constant 0x{:08X} : f32", v.to_bits()))
    }
    fn iconst(&mut self, v: i32) -> String {
        self.op(format!("arith.constant {v} : i32"))
    }
    fn to_bits(&mut self, x: &String) -> String {
        self.op(format!("arith.bitcast {x} : f32 to i32"))
    }
    fn bits_to_f(&mut self, x: &String) -> String {
        self.op(format!("arith.bitcast {x} : i32 to f32"))
    }
    fn and(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.andi {a}, {b} : i32"))
    }
    fn or(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.ori {a}, {b} : i32"))
    }
    fn xor(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.xori {a}, {b} : i32"))
    }
    fn shl(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.shli {a}, {b} : i32"))
    }
    fn shru(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.shrui {a}, {b} : i32"))
    }
    fn add(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.addi {a}, {b} : i32"))
    }
    fn sub(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.subi {a}, {b} : i32"))
    }
    fn smax(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.maxsi {a}, {b} : i32"))
    }
    fn icmp(&mut self, p: ICmp, a: &String, b: &String) -> String {
        self.op(format!("arith.cmpi {}, {a}, {b} : i32", p.mlir()))
    }
    fn fcmp(&mut self, p: FCmp, a: &String, b: &String) -> String {
        self.op(format!("arith.cmpf {}, {a}, {b} : f32", p.mlir()))
    }
    fn band(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.andi {a}, {b} : i1"))
    }
    fn bor(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.ori {a}, {b} : i1"))
    }
    fn isel(&mut self, c: &String, t: &String, f: &String) -> String {
        self.select(c, t, f, "i32")
    }
    fn fsel(&mut self, c: &String, t: &String, f: &String) -> String {
        self.select(c, t, f, "f32")
    }
    fn fabs(&mut self, a: &String) -> String {
        self.op(format!("math.absf {a} : f32"))
    }
    fn fmul(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.mulf {a}, {b} : f32"))
    }
    fn fdiv(&mut self, a: &String, b: &String) -> String {
        self.op(format!("arith.divf {a}, {b} : f32"))
    }
    fn round_even(&mut self, a: &String) -> String {
        self.op(format!("math.roundeven {a} : f32"))
    }
    fn ftoi(&mut self, a: &String) -> String {
        self.op(format!("arith.fptosi {a} : f32 to i32"))
    }
    fn itof(&mut self, a: &String) -> String {
        self.op(format!("arith.sitofp {a} : i32 to f32"))
    }
}

/// Rounds the float scalar `x` of dtype `from` (f32 or f64; narrower floats
/// must be extended first) to small float format `f` with `mode`, returning
/// the `f32` value: `decode(encode(x))` of `kiln_ir::codec`. An f64 is
/// rounded to f32 first, as `ml_dtypes` (and so ONNX's reference) does.
pub(crate) fn round_small_float(
    b: &mut Body<'_>,
    x: &str,
    from: DType,
    f: FloatFormat,
    mode: CastMode,
) -> Res<String> {
    let x = match from {
        DType::F32 => x.to_string(),
        DType::F64 => b.op(format!("arith.truncf {x} : f64 to f32")),
        other => return Err(format!("internal: small float rounding from {other}")),
    };
    let code = f.encode(b, &x, mode);
    Ok(f.decode(b, &code))
}

/// Wraps an `i8` scalar to the sub-byte dtype `dt`: `i4`/`i2` sign-extend
/// their low bits, `u4`/`u2` (and `nf4`) keep them.
pub(crate) fn wrap_bits(b: &mut Body<'_>, x: &str, dt: DType) -> String {
    let bits = dt.bits();
    if matches!(dt, DType::I4 | DType::I2) {
        let s = b.op(format!("arith.constant {} : i8", 8 - bits));
        let v = b.op(format!("arith.shli {x}, {s} : i8"));
        b.op(format!("arith.shrsi {v}, {s} : i8"))
    } else {
        let m = b.op(format!("arith.constant {} : i8", (1 << bits) - 1));
        b.op(format!("arith.andi {x}, {m} : i8"))
    }
}

/// Decodes a small float code (an `i8` holding the code in its low bits)
/// to its `f32` value.
pub(crate) fn decode_code(b: &mut Body<'_>, code: &str, f: FloatFormat) -> String {
    let c = b.op(format!("arith.extui {code} : i8 to i32"));
    f.decode(b, &c)
}

/// Decodes the boundary bytes `raw` (laid out as [`raw`] says) into the
/// compute-type tensor of `dtype` and `shape`.
pub(crate) fn decode(b: &mut Builder, bytes: &Val, dtype: DType, shape: &[u64]) -> Res<Val> {
    let f = FloatFormat::of(dtype);
    if !dtype.is_packed() {
        let Some(f) = f else {
            return Err(format!("internal: {dtype} is not a storage-only dtype"));
        };
        return b.map(&[bytes], dtype, shape, |body, a| {
            Ok(decode_code(body, &a[0], f))
        });
    }
    let n: u64 = shape.iter().product();
    let bits = dtype.bits();
    let per = 8 / bits;
    let bytes = bytes.clone();
    let flat = b.tabulate(dtype, &[n], |body, idx| {
        let byte_at = body.op(format!(
            "affine.apply affine_map<(d0) -> (d0 floordiv {per})>({})",
            idx[0]
        ));
        let slot = body.op(format!(
            "affine.apply affine_map<(d0) -> ((d0 mod {per}) * {bits})>({})",
            idx[0]
        ));
        let byte = body.extract(&bytes, &[byte_at]);
        let sh = body.op(format!("arith.index_cast {slot} : index to i8"));
        let code = body.op(format!("arith.shrui {byte}, {sh} : i8"));
        Ok(match f {
            Some(f) => {
                let m = body.op(format!("arith.constant {} : i8", (1 << bits) - 1));
                let code = body.op(format!("arith.andi {code}, {m} : i8"));
                decode_code(body, &code, f)
            }
            None => wrap_bits(body, &code, dtype),
        })
    })?;
    b.reshape(&flat, shape)
}

/// The code (an `i8`) of small float value `x` (an `f32` on the format's
/// grid, so encoding is exact).
pub(crate) fn small_float_code(b: &mut Body<'_>, x: &str, f: FloatFormat) -> String {
    let c = f.encode(b, &x.to_string(), CastMode::ARITH);
    b.op(format!("arith.trunci {c} : i32 to i8"))
}

/// The storage code (in an `i8`) of compute-type scalar `x` of `dtype`.
fn encode_code(b: &mut Body<'_>, x: &str, dtype: DType) -> String {
    match FloatFormat::of(dtype) {
        Some(f) => small_float_code(b, x, f),
        None => x.to_string(),
    }
}

/// Encodes the compute-type tensor `v` of a storage-only dtype into its
/// boundary bytes (laid out as [`raw`] says).
pub(crate) fn encode(b: &mut Builder, v: &Val) -> Res<Val> {
    let (rd, rs) = raw(v.dtype, &v.shape);
    let dtype = v.dtype;
    if !dtype.is_packed() {
        if FloatFormat::of(dtype).is_none() {
            return Err(format!("internal: {dtype} is not a storage-only dtype"));
        }
        return b.map(&[v], rd, &rs, |body, a| Ok(encode_code(body, &a[0], dtype)));
    }
    let n = v.numel();
    let bits = dtype.bits();
    let per = u64::from(8 / bits);
    let flat = b.reshape(v, &[n])?;
    b.tabulate(rd, &rs, |body, idx| {
        let mut acc = body.op("arith.constant 0 : i8");
        for g in 0..per {
            // Elements past the end (in the last byte) are zero.
            let at = body.op(format!(
                "affine.min affine_map<(d0) -> (d0 * {per} + {g}, {})>({})",
                n.saturating_sub(1),
                idx[0]
            ));
            let code = body.extract(&flat, std::slice::from_ref(&at));
            let code = encode_code(body, &code, dtype);
            let m = body.op(format!("arith.constant {} : i8", (1 << bits) - 1));
            let code = body.op(format!("arith.andi {code}, {m} : i8"));
            let sh = body.op(format!("arith.constant {} : i8", g * u64::from(bits)));
            let code = body.op(format!("arith.shli {code}, {sh} : i8"));
            let want = body.op(format!(
                "affine.apply affine_map<(d0) -> (d0 * {per} + {g})>({})",
                idx[0]
            ));
            let inside = body.op(format!("arith.cmpi eq, {at}, {want} : index"));
            let zero = body.op("arith.constant 0 : i8");
            let code = body.select(&inside, &code, &zero, "i8");
            acc = body.op(format!("arith.ori {acc}, {code} : i8"));
        }
        Ok(acc)
    })
}
