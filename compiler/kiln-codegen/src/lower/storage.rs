//! Storage-only dtypes: `f8e4m3fn`, `f8e5m2` (one byte each) and `i4`,
//! `u4`, `nf4` (4 bits, two per byte, low nibble first).
//!
//! Storage type vs compute type: inside `@kiln_main` a value of one of these
//! dtypes is a tensor of a wider compute type ([`super::ctx::elem`]):
//! - float8: `f32` holding exactly the float8 value (every float8 value,
//!   NaN and the infinities included, is an `f32` value);
//! - `i4` / `u4`: `i8` holding the value (`-8..=7` sign-extended, `0..=15`);
//! - `nf4`: `i8` holding the 4-bit code (`0..=15`).
//!
//! Invariants:
//! - every compute-type tensor of a storage-only dtype holds only values of
//!   that dtype: producers round ([`f8_round`]) or wrap ([`wrap4`]) once,
//!   so a later consumer (a cast, a dequantization, an encoder) can rely on
//!   it, and data movement (reshape, transpose, gather, ...) stays exact;
//! - only the boundaries see the storage layout ([`raw`]): graph inputs and
//!   weights are decoded from their bytes ([`decode`]) and graph outputs
//!   encoded back ([`encode`]) with `kiln_interp`'s conventions (float8
//!   encoding rounds to nearest even, overflow gives NaN for e4m3fn and
//!   infinity for e5m2, and a NaN keeps its sign in the code `S.1111.111` /
//!   `S.11111.10`);
//! - a packed tensor of `N` elements is `memref<ceil(N/2)xi8>` at the
//!   boundary whatever its rank (its byte size is `storage_bytes(N)`, as in
//!   the runtime's descriptors); a float8 tensor keeps its shape with `i8`
//!   elements.

use super::ctx::{Body, Builder, Res, Val};
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
        (DType::U8, vec![n.div_ceil(2)])
    } else if is_storage_only(dtype) {
        (DType::U8, shape.to_vec())
    } else {
        (dtype, shape.to_vec())
    }
}

/// One of the two float8 formats (`kiln_interp::float8` documents them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum F8 {
    E4M3FN,
    E5M2,
}

impl F8 {
    /// The format of a dtype, if it is a float8 dtype.
    pub fn of(dt: DType) -> Option<F8> {
        match dt {
            DType::F8E4M3FN => Some(F8::E4M3FN),
            DType::F8E5M2 => Some(F8::E5M2),
            _ => None,
        }
    }

    fn man_bits(self) -> i64 {
        match self {
            F8::E4M3FN => 3,
            F8::E5M2 => 2,
        }
    }

    fn bias(self) -> i64 {
        match self {
            F8::E4M3FN => 7,
            F8::E5M2 => 15,
        }
    }

    /// Largest finite value.
    fn max(self) -> f64 {
        match self {
            F8::E4M3FN => 448.0,
            F8::E5M2 => 57344.0,
        }
    }

    /// The code of a positive NaN.
    fn nan_code(self) -> i64 {
        match self {
            F8::E4M3FN => 0x7F,
            F8::E5M2 => 0x7E,
        }
    }
}

/// Facts about the IEEE float type a rounding runs in.
struct Ieee {
    ty: &'static str,
    int: &'static str,
    man: i64,
    bias: i64,
}

const F32: Ieee = Ieee {
    ty: "f32",
    int: "i32",
    man: 23,
    bias: 127,
};

const F64: Ieee = Ieee {
    ty: "f64",
    int: "i64",
    man: 52,
    bias: 1023,
};

/// Rounds the float scalar `x` of dtype `from` (f32 or f64; narrower floats
/// must be extended first) to the nearest value of format `f`, ties to even,
/// and returns it as `f32`. Values that round beyond the largest finite
/// value, infinities included, become ±max with `saturate`, else NaN
/// (e4m3fn) or ±infinity (e5m2); NaN stays NaN and every result keeps the
/// sign of `x`. This is `decode(encode(x, saturate))` of `kiln_interp`.
///
/// Method: with `e = floor(log2 |x|)` read from the exponent bits, the
/// float8 grid step around `|x|` is `q = 2^(max(e, emin) - mantissa bits)`;
/// `roundeven(|x| / q) * q` is then exact except for the one rounding wanted
/// (division and multiplication by a power of two do not round). Rounding in
/// `from` directly avoids a double rounding through f32 for f64 inputs.
pub(crate) fn f8_round(
    b: &mut Body<'_>,
    x: &str,
    from: DType,
    f: F8,
    saturate: bool,
) -> Res<String> {
    let t = match from {
        DType::F32 => F32,
        DType::F64 => F64,
        other => return Err(format!("internal: float8 rounding from {other}")),
    };
    let (ty, it) = (t.ty, t.int);
    let a = b.op(format!("math.absf {x} : {ty}"));
    let bits = b.op(format!("arith.bitcast {a} : {ty} to {it}"));
    let man = b.op(format!("arith.constant {} : {it}", t.man));
    let be = b.op(format!("arith.shrui {bits}, {man} : {it}"));
    let emin = 1 - f.bias();
    // Biased step exponent: max(e, emin) - mb + bias, with e = be - bias.
    let lo = b.op(format!("arith.constant {} : {it}", emin + t.bias));
    let ce = b.op(format!("arith.maxsi {be}, {lo} : {it}"));
    let mb = b.op(format!("arith.constant {} : {it}", f.man_bits()));
    let qe = b.op(format!("arith.subi {ce}, {mb} : {it}"));
    let qb = b.op(format!("arith.shli {qe}, {man} : {it}"));
    let q = b.op(format!("arith.bitcast {qb} : {it} to {ty}"));
    let d = b.op(format!("arith.divf {a}, {q} : {ty}"));
    let r = b.op(format!("math.roundeven {d} : {ty}"));
    let r = b.op(format!("arith.mulf {r}, {q} : {ty}"));
    let max = b.float(f.max(), from)?;
    // `ogt` is false for NaN, which therefore passes through.
    let over = b.op(format!("arith.cmpf ogt, {r}, {max} : {ty}"));
    let sub = if saturate {
        max
    } else {
        match f {
            F8::E4M3FN => b.float(f64::NAN, from)?,
            F8::E5M2 => b.float(f64::INFINITY, from)?,
        }
    };
    let r = b.select(&over, &sub, &r, ty);
    let r = b.op(format!("math.copysign {r}, {x} : {ty}"));
    Ok(if from == DType::F64 {
        // Exact: the value is on the float8 grid.
        b.op(format!("arith.truncf {r} : f64 to f32"))
    } else {
        r
    })
}

/// Wraps an `i8` scalar to the 4-bit dtype `dt`: `i4` sign-extends the low
/// nibble, `u4` (and `nf4`) keeps it.
pub(crate) fn wrap4(b: &mut Body<'_>, x: &str, dt: DType) -> String {
    if dt == DType::I4 {
        let four = b.op("arith.constant 4 : i8");
        let s = b.op(format!("arith.shli {x}, {four} : i8"));
        b.op(format!("arith.shrsi {s}, {four} : i8"))
    } else {
        let m = b.op("arith.constant 15 : i8");
        b.op(format!("arith.andi {x}, {m} : i8"))
    }
}

/// Decodes one float8 byte (`i8`) to its `f32` value.
pub(crate) fn f8_decode(b: &mut Body<'_>, byte: &str, f: F8) -> Res<String> {
    let c = |b: &mut Body<'_>, v: i64| b.op(format!("arith.constant {v} : i32"));
    let mb = f.man_bits();
    let w = b.op(format!("arith.extui {byte} : i8 to i32"));
    let k = c(b, 0x7F);
    let mag = b.op(format!("arith.andi {w}, {k} : i32"));
    let k = c(b, mb);
    let e = b.op(format!("arith.shrui {mag}, {k} : i32"));
    let k = c(b, (1 << mb) - 1);
    let m = b.op(format!("arith.andi {mag}, {k} : i32"));
    // Normal: the f32 with exponent e - bias and the mantissa bits on top.
    let k = c(b, 127 - f.bias());
    let eb = b.op(format!("arith.addi {e}, {k} : i32"));
    let k = c(b, 23);
    let eb = b.op(format!("arith.shli {eb}, {k} : i32"));
    let k = c(b, 23 - mb);
    let mbits = b.op(format!("arith.shli {m}, {k} : i32"));
    let nb = b.op(format!("arith.ori {eb}, {mbits} : i32"));
    let normal = b.op(format!("arith.bitcast {nb} : i32 to f32"));
    // Subnormal: m * 2^(1 - bias - mb), exact in f32.
    let mf = b.op(format!("arith.uitofp {m} : i32 to f32"));
    let step = b.float(2f64.powi((1 - f.bias() - mb) as i32), DType::F32)?;
    let subn = b.op(format!("arith.mulf {mf}, {step} : f32"));
    let z = c(b, 0);
    let is_sub = b.op(format!("arith.cmpi eq, {e}, {z} : i32"));
    let v = b.select(&is_sub, &subn, &normal, "f32");
    let nan = b.float(f64::NAN, DType::F32)?;
    let v = match f {
        F8::E4M3FN => {
            let k = c(b, 0x7F);
            let is_nan = b.op(format!("arith.cmpi eq, {mag}, {k} : i32"));
            b.select(&is_nan, &nan, &v, "f32")
        }
        F8::E5M2 => {
            let k = c(b, 31);
            let special = b.op(format!("arith.cmpi eq, {e}, {k} : i32"));
            let inf = b.float(f64::INFINITY, DType::F32)?;
            let m0 = b.op(format!("arith.cmpi eq, {m}, {z} : i32"));
            let s = b.select(&m0, &inf, &nan, "f32");
            b.select(&special, &s, &v, "f32")
        }
    };
    let k = c(b, 0x80);
    let sign = b.op(format!("arith.andi {w}, {k} : i32"));
    let neg = b.op(format!("arith.cmpi ne, {sign}, {z} : i32"));
    let nv = b.op(format!("arith.negf {v} : f32"));
    Ok(b.select(&neg, &nv, &v, "f32"))
}

/// Encodes an `f32` scalar as a float8 byte (`i8`): rounds without
/// saturation (a no-op for values already on the grid), then packs sign,
/// exponent and mantissa.
pub(crate) fn f8_encode(b: &mut Body<'_>, x: &str, f: F8) -> Res<String> {
    let c = |b: &mut Body<'_>, v: i64| b.op(format!("arith.constant {v} : i32"));
    let r = f8_round(b, x, DType::F32, f, false)?;
    let mb = f.man_bits();
    let emin = 1 - f.bias();
    let bits = b.op(format!("arith.bitcast {r} : f32 to i32"));
    let k = c(b, 24);
    let s = b.op(format!("arith.shrui {bits}, {k} : i32"));
    let k = c(b, 0x80);
    let sign = b.op(format!("arith.andi {s}, {k} : i32"));
    let a = b.op(format!("math.absf {r} : f32"));
    let ab = b.op(format!("arith.bitcast {a} : f32 to i32"));
    let k = c(b, 23);
    let be = b.op(format!("arith.shrui {ab}, {k} : i32"));
    // Normal code: (e + bias) << mb | top mantissa bits, e = be - 127.
    let k = c(b, f.bias() - 127);
    let e8 = b.op(format!("arith.addi {be}, {k} : i32"));
    let k = c(b, mb);
    let e8 = b.op(format!("arith.shli {e8}, {k} : i32"));
    let k = c(b, 23 - mb);
    let m = b.op(format!("arith.shrui {ab}, {k} : i32"));
    let k = c(b, (1 << mb) - 1);
    let m = b.op(format!("arith.andi {m}, {k} : i32"));
    let normal = b.op(format!("arith.ori {e8}, {m} : i32"));
    // Subnormal (and zero) code: |r| / 2^(emin - mb), an exact integer.
    let scale = b.float(2f64.powi((mb - emin) as i32), DType::F32)?;
    let sf = b.op(format!("arith.mulf {a}, {scale} : f32"));
    let subn = b.op(format!("arith.fptoui {sf} : f32 to i32"));
    let k = c(b, emin + 127);
    let is_sub = b.op(format!("arith.cmpi slt, {be}, {k} : i32"));
    let code = b.select(&is_sub, &subn, &normal, "i32");
    let inf = b.float(f64::INFINITY, DType::F32)?;
    let is_inf = b.op(format!("arith.cmpf oeq, {a}, {inf} : f32"));
    // Only e5m2 has infinities; rounding without saturation left none in e4m3fn.
    let k = c(b, 0x7C);
    let code = b.select(&is_inf, &k, &code, "i32");
    let is_nan = b.op(format!("arith.cmpf uno, {r}, {r} : f32"));
    let k = c(b, f.nan_code());
    let code = b.select(&is_nan, &k, &code, "i32");
    let code = b.op(format!("arith.ori {code}, {sign} : i32"));
    Ok(b.op(format!("arith.trunci {code} : i32 to i8")))
}

/// Decodes the boundary bytes `raw` (laid out as [`raw`] says) into the
/// compute-type tensor of `dtype` and `shape`.
pub(crate) fn decode(b: &mut Builder, bytes: &Val, dtype: DType, shape: &[u64]) -> Res<Val> {
    if let Some(f) = F8::of(dtype) {
        return b.map(&[bytes], dtype, shape, |body, a| f8_decode(body, &a[0], f));
    }
    if !dtype.is_packed() {
        return Err(format!("internal: {dtype} is not a storage-only dtype"));
    }
    let n: u64 = shape.iter().product();
    let bytes = bytes.clone();
    let flat = b.tabulate(dtype, &[n], |body, idx| {
        let byte_at = body.op(format!(
            "affine.apply affine_map<(d0) -> (d0 floordiv 2)>({})",
            idx[0]
        ));
        let odd = body.op(format!(
            "affine.apply affine_map<(d0) -> (d0 mod 2)>({})",
            idx[0]
        ));
        let byte = body.extract(&bytes, &[byte_at]);
        let four = body.op("arith.constant 4 : i8");
        let hi = body.op(format!("arith.shrui {byte}, {four} : i8"));
        let z = body.index(0);
        let is_hi = body.op(format!("arith.cmpi ne, {odd}, {z} : index"));
        let nib = body.select(&is_hi, &hi, &byte, "i8");
        Ok(wrap4(body, &nib, dtype))
    })?;
    b.reshape(&flat, shape)
}

/// Encodes the compute-type tensor `v` of a storage-only dtype into its
/// boundary bytes (laid out as [`raw`] says).
pub(crate) fn encode(b: &mut Builder, v: &Val) -> Res<Val> {
    let (rd, rs) = raw(v.dtype, &v.shape);
    if let Some(f) = F8::of(v.dtype) {
        return b.map(&[v], rd, &rs, |body, a| f8_encode(body, &a[0], f));
    }
    if !v.dtype.is_packed() {
        return Err(format!("internal: {} is not a storage-only dtype", v.dtype));
    }
    let n = v.numel();
    let flat = b.reshape(v, &[n])?;
    b.tabulate(rd, &rs, |body, idx| {
        let lo_at = body.op(format!(
            "affine.apply affine_map<(d0) -> (d0 * 2)>({})",
            idx[0]
        ));
        // The high nibble of the last byte of an odd count is zero.
        let hi_at = body.op(format!(
            "affine.min affine_map<(d0) -> (d0 * 2 + 1, {})>({})",
            n.saturating_sub(1),
            idx[0]
        ));
        let lo = body.extract(&flat, std::slice::from_ref(&lo_at));
        let hi = body.extract(&flat, std::slice::from_ref(&hi_at));
        let m = body.op("arith.constant 15 : i8");
        let lo = body.op(format!("arith.andi {lo}, {m} : i8"));
        let hi = body.op(format!("arith.andi {hi}, {m} : i8"));
        let four = body.op("arith.constant 4 : i8");
        let hi = body.op(format!("arith.shli {hi}, {four} : i8"));
        let zero = body.op("arith.constant 0 : i8");
        let same = body.op(format!("arith.cmpi eq, {hi_at}, {lo_at} : index"));
        let hi = body.select(&same, &zero, &hi, "i8");
        Ok(body.op(format!("arith.ori {lo}, {hi} : i8")))
    })
}
