//! `nn.grid_sample`: one `linalg.generic` over the result
//! `[N, C, out_spatial..]` whose body reads the grid coordinates of its
//! point, runs the shared geometry of `kiln_ir::ops::resample::GridAxis`
//! (the same code the interpreter runs, here through [`Emit`], which
//! implements its scalar arithmetic by emitting `arith`/`math` ops on
//! `f64`), and reads the input with `tensor.extract`.
//!
//! Invariants:
//! - tap indices are clamped into the input once more (NaN-safe, with
//!   `maxnumf`/`minnumf`) before they become addresses, so no grid value
//!   reads outside the input;
//! - `nearest` copies the sample (or 0 outside with `zeros` padding) in
//!   the input's own type, so it is exact for every dtype;
//! - `linear`/`cubic` sum `weight_0 * .. * weight_{s-1} * sample` over the
//!   tap combinations, unrolled, in f64 (0 for outside taps with `zeros`
//!   padding) and round once to the dtype.

use super::ctx::{Body, Builder, Res, Val};
use super::elementwise::convert;
use super::{attr_err, NodeIn};
use kiln_ir::ops::resample::{Arith, GridAxis, GridMode, GridPadding};
use kiln_ir::DType;

/// The most tap combinations one output element may sum (the body is
/// unrolled): cubic sampling in five spatial dimensions.
const MAX_TERMS: usize = 1024;

/// [`Arith`] by emitting scalar ops on `f64` (predicates `i1`).
struct Emit<'a, 'b> {
    b: &'a mut Body<'b>,
}

impl Emit<'_, '_> {
    fn bin(&mut self, op: &str, a: &str, b: &str) -> String {
        self.b.op(format!("arith.{op} {a}, {b} : f64"))
    }
}

impl Arith for Emit<'_, '_> {
    type F = String;
    type B = String;
    fn lit(&mut self, v: f64) -> String {
        self.b
            .op(format!("arith.constant 0x{:016X} : f64", v.to_bits()))
    }
    fn add(&mut self, a: &String, b: &String) -> String {
        self.bin("addf", a, b)
    }
    fn sub(&mut self, a: &String, b: &String) -> String {
        self.bin("subf", a, b)
    }
    fn mul(&mut self, a: &String, b: &String) -> String {
        self.bin("mulf", a, b)
    }
    fn div(&mut self, a: &String, b: &String) -> String {
        self.bin("divf", a, b)
    }
    fn floor(&mut self, a: &String) -> String {
        self.b.op(format!("math.floor {a} : f64"))
    }
    fn trunc(&mut self, a: &String) -> String {
        self.b.op(format!("math.trunc {a} : f64"))
    }
    fn rint(&mut self, a: &String) -> String {
        self.b.op(format!("math.roundeven {a} : f64"))
    }
    fn to_f32(&mut self, a: &String) -> String {
        let t = self.b.op(format!("arith.truncf {a} : f64 to f32"));
        self.b.op(format!("arith.extf {t} : f32 to f64"))
    }
    fn lt(&mut self, a: &String, b: &String) -> String {
        self.b.op(format!("arith.cmpf olt, {a}, {b} : f64"))
    }
    fn or(&mut self, a: &String, b: &String) -> String {
        self.b.op(format!("arith.ori {a}, {b} : i1"))
    }
    fn and(&mut self, a: &String, b: &String) -> String {
        self.b.op(format!("arith.andi {a}, {b} : i1"))
    }
    fn select(&mut self, c: &String, t: &String, f: &String) -> String {
        self.b.select(c, t, f, "f64")
    }
}

/// One lowered tap: address, weight, inside (zeros padding).
struct Tap {
    index: String,
    weight: String,
    inside: Option<String>,
}

/// `nn.grid_sample`.
pub(crate) fn grid_sample(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let g = n.input(1)?.clone();
    let (dt, shape) = n.out(0)?;
    let mode: GridMode = n.a.enum_attr("mode").map_err(attr_err)?;
    let padding: GridPadding = n.a.enum_attr("padding_mode").map_err(attr_err)?;
    let align_corners = n.a.bool("align_corners").map_err(attr_err)?;
    let r = x.rank();
    if r < 3 || g.rank() != r || shape.len() != r {
        return Err(format!("grid {} does not fit the input {}", g.ty(), x.ty()));
    }
    if mode != GridMode::Nearest && !dt.is_float() {
        return Err(format!(
            "grid_sample interpolation of {dt} is not supported"
        ));
    }
    let s = r - 2;
    if shape.contains(&0) {
        return b.empty(dt, shape);
    }
    if x.shape[2..].contains(&0) {
        return Err("cannot sample an input with an empty spatial axis".into());
    }
    let per_axis = match mode {
        GridMode::Nearest => 1usize,
        GridMode::Linear => 2,
        GridMode::Cubic => 4,
    };
    let terms = u32::try_from(s)
        .ok()
        .and_then(|s| per_axis.checked_pow(s))
        .filter(|&t| t <= MAX_TERMS)
        .ok_or_else(|| {
            format!("grid sampling in {s} dimensions needs more than {MAX_TERMS} taps per element")
        })?;
    let axes = GridAxis::per_extent(
        &x.shape[2..],
        mode,
        padding,
        align_corners,
        g.dtype != DType::F64,
    );
    let xd = x.dtype;
    b.tabulate(dt, shape, |body, o| {
        let mut taps: Vec<Vec<Tap>> = Vec::with_capacity(s);
        for (k, ax) in axes.iter().enumerate() {
            // The grid's last axis lists coordinates innermost axis first.
            let mut at = vec![o[0].clone()];
            at.extend(o[2..].iter().cloned());
            at.push(body.index((s - 1 - k) as i64));
            let gv = body.extract(&g, &at);
            let gv = convert(body, &gv, g.dtype, DType::F64)?;
            let geo = ax.taps(&mut Emit { b: body }, &gv);
            let (z, last) = (
                body.float(0.0, DType::F64)?,
                body.float(ax.extent as f64 - 1.0, DType::F64)?,
            );
            let mut v = Vec::with_capacity(geo.len());
            for t in geo {
                let i = body.op(format!("arith.maxnumf {}, {z} : f64", t.index));
                let i = body.op(format!("arith.minnumf {i}, {last} : f64"));
                let i = body.op(format!("arith.fptosi {i} : f64 to i64"));
                let index = body.op(format!("arith.index_cast {i} : i64 to index"));
                v.push(Tap {
                    index,
                    weight: t.weight,
                    inside: t.inside,
                });
            }
            taps.push(v);
        }
        let mut acc: Option<String> = None;
        for t in 0..terms {
            // Tap combination `t` in mixed radix, the last axis fastest.
            let mut rem = t;
            let mut src = vec![o[0].clone(), o[1].clone()];
            let mut w: Option<String> = None;
            let mut inside: Option<String> = None;
            let mut picks = vec![0usize; s];
            for p in picks.iter_mut().rev() {
                *p = rem % per_axis;
                rem /= per_axis;
            }
            for (k, &p) in picks.iter().enumerate() {
                let tap = &taps[k][p];
                src.push(tap.index.clone());
                w = Some(match w.take() {
                    None => tap.weight.clone(),
                    Some(prev) => body.op(format!("arith.mulf {prev}, {} : f64", tap.weight)),
                });
                if let Some(i) = &tap.inside {
                    inside = Some(match inside.take() {
                        None => i.clone(),
                        Some(prev) => body.op(format!("arith.andi {prev}, {i} : i1")),
                    });
                }
            }
            let v = body.extract(&x, &src);
            if mode == GridMode::Nearest {
                return Ok(match inside {
                    None => v,
                    Some(i) => {
                        let z = body.num(0.0, xd)?;
                        body.select(&i, &v, &z, super::ctx::elem(xd)?)
                    }
                });
            }
            let v = convert(body, &v, xd, DType::F64)?;
            let w = w.ok_or("a grid sample without spatial axes")?;
            let term = body.op(format!("arith.mulf {w}, {v} : f64"));
            let term = match inside {
                None => term,
                Some(i) => {
                    let z = body.float(0.0, DType::F64)?;
                    body.select(&i, &term, &z, "f64")
                }
            };
            acc = Some(match acc.take() {
                None => term,
                Some(prev) => body.op(format!("arith.addf {prev}, {term} : f64")),
            });
        }
        let acc = acc.ok_or("a grid sample without taps")?;
        convert(body, &acc, DType::F64, dt)
    })
}
