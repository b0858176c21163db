//! `nn.dft` and `nn.stft` as direct `O(n^2)` transforms: one
//! `linalg.generic` over the result whose body sums the terms of its bin
//! in an `scf.for`, in f64, and rounds once to the dtype (semantics and
//! conventions in `kiln_interp::ops::signal`, which computes the same sums).
//!
//! Invariants:
//! - the roots of unity are one constant table `[n, 2]` of `(cos, sin)`
//!   from `kiln_ir::ops::signal::twiddles`, shared with the interpreter;
//!   term `k * t` reads entry `k * t mod n`, computed exactly on `index`;
//! - the axis, `dft_length`, `frame_step` and `frame_length` operands must
//!   be compile-time constants (they are static operands);
//! - each result element (a real or an imaginary part) computes the whole
//!   complex sum of its bin and keeps one part: twice the arithmetic of a
//!   split real/imaginary loop, in exchange for a single generic. A fast
//!   transform is future work; this lowering is meant for the moderate
//!   lengths of feature extraction.

use super::ctx::{Body, Builder, Res, Val};
use super::elementwise::convert;
use super::{attr_err, NodeIn};
use kiln_ir::ops::signal::{dft_params, stft_params, twiddles};
use kiln_ir::DType;
use std::fmt::Write as _;

/// The largest transform length lowered (the twiddle table has one row per
/// point).
const MAX_LENGTH: u64 = 1 << 20;

/// The constant `[n, 2]` f64 table of `(cos, sin)` of `2 pi j / n`.
fn twiddle_table(b: &mut Builder, n: u64) -> Res<Val> {
    if n > MAX_LENGTH {
        return Err(format!(
            "a transform of length {n} is longer than the {MAX_LENGTH} points lowered"
        ));
    }
    let mut body = String::from("[");
    for (j, (c, s)) in twiddles(n).into_iter().enumerate() {
        let sep = if j > 0 { ", " } else { "" };
        let _ = write!(
            body,
            "{sep}[0x{:016X}, 0x{:016X}]",
            c.to_bits(),
            s.to_bits()
        );
    }
    body.push(']');
    let v = Val {
        ssa: String::new(),
        dtype: DType::F64,
        shape: vec![n, 2],
    };
    let ssa = b.op(format!("arith.constant dense<{body}> : {}", v.ty()));
    Ok(Val { ssa, ..v })
}

/// `(cos, sin)` of `2 pi (k t mod n) / n`.
fn root(b: &mut Body<'_>, tw: &Val, k: &str, t: &str, n: u64) -> (String, String) {
    let nn = b.index(n as i64);
    let kt = b.op(format!("arith.muli {k}, {t} : index"));
    let j = b.op(format!("arith.remui {kt}, {nn} : index"));
    let (c0, c1) = (b.index(0), b.index(1));
    let c = b.extract(tw, &[j.clone(), c0]);
    let s = b.extract(tw, &[j, c1]);
    (c, s)
}

/// Reads element `(re, im)` at `at` (the last index is the component) of
/// `x` as f64, the imaginary part 0 for a real `x`.
fn complex_at(b: &mut Body<'_>, x: &Val, mut at: Vec<String>) -> Res<(String, String)> {
    let r = x.rank();
    at[r - 1] = b.index(0);
    let re = b.extract(x, &at);
    let re = convert(b, &re, x.dtype, DType::F64)?;
    let im = if x.shape[r - 1] == 2 {
        at[r - 1] = b.index(1);
        let im = b.extract(x, &at);
        convert(b, &im, x.dtype, DType::F64)?
    } else {
        b.float(0.0, DType::F64)?
    };
    Ok((re, im))
}

/// `acc + x * e^(sign i theta)` for `theta` given by `(c, s)`.
fn mac(
    b: &mut Body<'_>,
    acc: &[String],
    (xr, xi): (&str, &str),
    (c, s): (&str, &str),
    sign: f64,
) -> Vec<String> {
    let s = if sign < 0.0 {
        b.op(format!("arith.negf {s} : f64"))
    } else {
        s.to_string()
    };
    let m = |b: &mut Body<'_>, x: &str, y: &str| b.op(format!("arith.mulf {x}, {y} : f64"));
    let (rc, is) = (m(b, xr, c), m(b, xi, &s));
    let re = b.op(format!("arith.subf {rc}, {is} : f64"));
    let (rs, ic) = (m(b, xr, &s), m(b, xi, c));
    let im = b.op(format!("arith.addf {rs}, {ic} : f64"));
    vec![
        b.op(format!("arith.addf {}, {re} : f64", acc[0])),
        b.op(format!("arith.addf {}, {im} : f64", acc[1])),
    ]
}

/// Keeps the real (`comp == 0`) or imaginary part, scaled, in `dt`.
fn part(b: &mut Body<'_>, comp: &str, re: &str, im: &str, scale: f64, dt: DType) -> Res<String> {
    let z = b.index(0);
    let is_re = b.op(format!("arith.cmpi eq, {comp}, {z} : index"));
    let v = b.select(&is_re, re, im, "f64");
    let v = if scale == 1.0 {
        v
    } else {
        let k = b.float(scale, DType::F64)?;
        b.op(format!("arith.mulf {v}, {k} : f64"))
    };
    convert(b, &v, DType::F64, dt)
}

/// `nn.dft`.
pub(crate) fn dft(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let (dt, shape) = n.out(0)?;
    let p = dft_params(n.a).map_err(attr_err)?;
    let Some(axis) = p.axis else {
        return Err("axis (operand #2) must be a compile-time constant".into());
    };
    let Some(len) = p.n else {
        return Err("dft_length (operand #1) must be a compile-time constant".into());
    };
    if shape.contains(&0) {
        return b.empty(dt, shape);
    }
    let r = x.rank();
    let m = x.shape[axis];
    let tw = twiddle_table(b, len)?;
    let scale = if p.inverse { 1.0 / len as f64 } else { 1.0 };
    let zero = b.scalar_const(0.0, DType::F64)?;
    if p.inverse && p.onesided {
        if m == 0 {
            // No bins: the transform of zeros (and nothing to read).
            return b.filled(0.0, dt, shape);
        }
        // numpy's irfft: bins 0..=len/2 (zero beyond the input), the rest
        // by Hermitian symmetry; the real part only.
        return b.tabulate(dt, shape, |body, o| {
            let (lo, hi) = (body.index(0), body.index(len as i64));
            let half = body.index((len / 2) as i64);
            let nn = body.index(len as i64);
            let mm = body.index(m as i64);
            let mlast = body.index(m as i64 - 1);
            let acc = body.for_loop(&lo, &hi, &[(zero.clone(), "f64")], |body, k, a| {
                let low = body.op(format!("arith.cmpi ule, {k}, {half} : index"));
                let mirror = body.op(format!("arith.subi {nn}, {k} : index"));
                let src = body.select(&low, k, &mirror, "index");
                let present = body.op(format!("arith.cmpi ult, {src}, {mm} : index"));
                let at_src = body.op(format!("arith.minui {src}, {mlast} : index"));
                let mut at = o.to_vec();
                at[axis] = at_src;
                let (xr, xi) = complex_at(body, &x, at)?;
                let (c, s) = root(body, &tw, k, &o[axis], len);
                // Re(X e^(i theta)) with X conjugated above the middle.
                let xc = body.op(format!("arith.mulf {xr}, {c} : f64"));
                let xs = body.op(format!("arith.mulf {xi}, {s} : f64"));
                let lo_t = body.op(format!("arith.subf {xc}, {xs} : f64"));
                let hi_t = body.op(format!("arith.addf {xc}, {xs} : f64"));
                let t = body.select(&low, &lo_t, &hi_t, "f64");
                let z = body.float(0.0, DType::F64)?;
                let t = body.select(&present, &t, &z, "f64");
                Ok(vec![body.op(format!("arith.addf {}, {t} : f64", a[0]))])
            })?;
            let k = body.float(scale, DType::F64)?;
            let v = body.op(format!("arith.mulf {}, {k} : f64", acc[0]));
            convert(body, &v, DType::F64, dt)
        });
    }
    let sign = if p.inverse { 1.0 } else { -1.0 };
    let count = m.min(len);
    b.tabulate(dt, shape, |body, o| {
        let (lo, hi) = (body.index(0), body.index(count as i64));
        let inits = [(zero.clone(), "f64"), (zero.clone(), "f64")];
        let acc = body.for_loop(&lo, &hi, &inits, |body, t, a| {
            let mut at = o.to_vec();
            at[axis] = t.to_string();
            let (xr, xi) = complex_at(body, &x, at)?;
            let (c, s) = root(body, &tw, &o[axis], t, len);
            Ok(mac(body, a, (&xr, &xi), (&c, &s), sign))
        })?;
        part(body, &o[r - 1], &acc[0], &acc[1], scale, dt)
    })
}

/// `nn.stft`.
pub(crate) fn stft(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let (dt, shape) = n.out(0)?;
    let p = stft_params(n.a)
        .map_err(attr_err)?
        .ok_or("frame_step and frame_length (operands #1 and #3) must be compile-time constants")?;
    if shape.contains(&0) {
        return b.empty(dt, shape);
    }
    let window = n.opt(2).cloned();
    let tw = twiddle_table(b, p.frame)?;
    let zero = b.scalar_const(0.0, DType::F64)?;
    b.tabulate(dt, shape, |body, o| {
        // o = [batch, frame, bin, component]
        let (lo, hi) = (body.index(0), body.index(p.frame as i64));
        let step = body.index(p.step as i64);
        let start = body.op(format!("arith.muli {}, {step} : index", o[1]));
        let inits = [(zero.clone(), "f64"), (zero.clone(), "f64")];
        let acc = body.for_loop(&lo, &hi, &inits, |body, t, a| {
            let pos = body.op(format!("arith.addi {start}, {t} : index"));
            let c0 = body.index(0);
            let (xr, xi) = complex_at(body, &x, vec![o[0].clone(), pos, c0])?;
            let (xr, xi) = match &window {
                Some(w) => {
                    let wv = body.extract(w, &[t.to_string()]);
                    let wv = convert(body, &wv, w.dtype, DType::F64)?;
                    (
                        body.op(format!("arith.mulf {xr}, {wv} : f64")),
                        body.op(format!("arith.mulf {xi}, {wv} : f64")),
                    )
                }
                None => (xr, xi),
            };
            let (c, s) = root(body, &tw, &o[2], t, p.frame);
            Ok(mac(body, a, (&xr, &xi), (&c, &s), -1.0))
        })?;
        part(body, &o[3], &acc[0], &acc[1], 1.0, dt)
    })
}
