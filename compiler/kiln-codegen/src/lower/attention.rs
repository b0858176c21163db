//! Transformer building blocks: `nn.attention` and `nn.rotary_embedding`,
//! following `kiln_interp::ops::attention` (the ONNX reference).
//!
//! Attention invariants:
//! - keys and values are first concatenated with the past caches into
//!   `[B, kv_heads, total, D]` tensors, which are also the `present_*`
//!   results; 3-D operands `[B, S, H * D]` are read in place;
//! - every stage is a `linalg.generic` over its result with `scf.for`
//!   loops in the body: scores (scaled Q and K rounded to the dtype, dot
//!   products in f64), softcap, the additive bias (mask padded with `-inf`
//!   to the total length and broadcast, bottom-right causal mask, sliding
//!   window, `nonpad_kv_seqlen`), row maximum and sum, probabilities, and
//!   the weighted sum of values; values are rounded to the dtype where the
//!   reference rounds them, softmax runs in f64 with each step (`x - max`,
//!   `exp`, the row sum, the quotient) rounded to the softmax dtype
//!   (`softmax_precision`, else the operand dtype), as the interpreter;
//! - query heads map to kv heads by `h / (q_heads / kv_heads)` (GQA);
//! - a row whose biased scores are all `-inf` gets all-zero probabilities
//!   (the reference tests the bias alone; the two differ only when a score
//!   itself is infinite).
//!
//! Rotary embedding invariants:
//! - one `linalg.generic` over the result reads, for each feature, itself
//!   and its rotation partner (the other half, or the neighbouring
//!   even/odd feature when `interleaved`) and the cached cosine and sine of
//!   the token's row; features past `rotary_embedding_dim` are copied;
//! - the rotation is computed in f64 and rounded once, as the reference;
//! - 3-D inputs `[B, S, H * D]` are handled in place: the head of a
//!   feature is its last-dim index divided by the head size, so no
//!   transposes are materialized.

use super::ctx::{elem, Body, Builder, Res, Val};
use super::elementwise::convert;
use super::{attr_err, NodeIn};
use kiln_ir::ops::attention::HeadView;
use kiln_ir::DType;

/// `nn.rotary_embedding %x, %cos_cache, %sin_cache, %position_ids?`.
pub(crate) fn rotary_embedding(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let (cos, sin) = (n.input(1)?, n.input(2)?);
    let pos = n.opt(3).cloned();
    let (dt, shape) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!(
            "nn.rotary_embedding of dtype {dt} is not supported"
        ));
    }
    let view = HeadView::resolve(
        &x.shape,
        n.a.opt_int("num_heads").map_err(attr_err)?,
        "X",
        "num_heads",
    )?;
    let (seq_dim, head) = (if view.packed { 1 } else { 2 }, view.head_size);
    let rot = match n.a.int("rotary_embedding_dim").map_err(attr_err)? {
        0 => head,
        r if r > 0 && r as u64 <= head && r % 2 == 0 => r as u64,
        r => {
            return Err(format!(
                "rotary_embedding_dim {r} does not fit head size {head}"
            ))
        }
    };
    let half = rot / 2;
    if cos.shape.last() != Some(&half) || cos.shape != sin.shape || half == 0 {
        return Err(format!(
            "cos/sin caches must end in rotary_embedding_dim / 2 = {half}"
        ));
    }
    let interleaved = n.a.bool("interleaved").map_err(attr_err)?;
    let rows = cos.numel() / half;
    let cos = b.reshape(cos, &[rows, half])?;
    let sin = b.reshape(sin, &[rows, half])?;
    if shape.contains(&0) {
        return b.empty(dt, shape);
    }
    let seq = x.shape[seq_dim];
    let last = x.rank() - 1;
    let xd = x.dtype;
    let e = "f64";
    b.tabulate(dt, shape, |body, o| {
        let j = &o[last];
        let hc = body.index(head as i64);
        let d = body.op(format!("arith.remui {j}, {hc} : index"));
        let base = body.op(format!("arith.subi {j}, {d} : index"));
        // k: the pair's cache column; first: whether this is x1 of the pair;
        // i1/i2: the pair's features within the head.
        let one = body.index(1);
        let (k, first, i1) = if interleaved {
            let two = body.index(2);
            let k = body.op(format!("arith.divui {d}, {two} : index"));
            let parity = body.op(format!("arith.remui {d}, {two} : index"));
            let z = body.index(0);
            let first = body.op(format!("arith.cmpi eq, {parity}, {z} : index"));
            let i1 = body.op(format!("arith.muli {k}, {two} : index"));
            (k, first, i1)
        } else {
            let hh = body.index(half as i64);
            let first = body.op(format!("arith.cmpi ult, {d}, {hh} : index"));
            let dm = body.op(format!("arith.subi {d}, {hh} : index"));
            let k = body.select(&first, &d, &dm, "index");
            (k.clone(), first, k)
        };
        let i2 = if interleaved {
            body.op(format!("arith.addi {i1}, {one} : index"))
        } else {
            let hh = body.index(half as i64);
            body.op(format!("arith.addi {i1}, {hh} : index"))
        };
        let rc = body.index(rot as i64);
        let rotated = body.op(format!("arith.cmpi ult, {d}, {rc} : index"));
        // Positions outside the rotated features are clamped: their reads
        // are discarded by the final select.
        let hmax = body.index(half as i64 - 1);
        let kc = body.op(format!("arith.minui {k}, {hmax} : index"));
        let dmax = body.index(head as i64 - 1);
        let mut at1 = o.to_vec();
        let mut at2 = o.to_vec();
        for (at, i) in [(&mut at1, &i1), (&mut at2, &i2)] {
            let ic = body.op(format!("arith.minui {i}, {dmax} : index"));
            at[last] = body.op(format!("arith.addi {base}, {ic} : index"));
        }
        let x1 = body.extract(&x, &at1);
        let x2 = body.extract(&x, &at2);
        let me = body.extract(&x, o);
        // The cache row of token (b, s): its position id, else b * S + s.
        let row = match &pos {
            Some(p) => {
                let id = body.extract(p, &[o[0].clone(), o[seq_dim].clone()]);
                let id = body.index_of(&id, p.dtype)?;
                body.wrap_clamp(&id, rows)
            }
            None => {
                let sc = body.index(seq as i64);
                let bs = body.op(format!("arith.muli {}, {sc} : index", o[0]));
                body.op(format!("arith.addi {bs}, {} : index", o[seq_dim]))
            }
        };
        let c = body.extract(&cos, &[row.clone(), kc.clone()]);
        let s = body.extract(&sin, &[row, kc]);
        let [x1, x2, c, s] = [x1, x2, c, s].map(|v| convert(body, &v, xd, DType::F64));
        let (x1, x2, c, s) = (x1?, x2?, c?, s?);
        let cx1 = body.op(format!("arith.mulf {c}, {x1} : {e}"));
        let sx2 = body.op(format!("arith.mulf {s}, {x2} : {e}"));
        let sx1 = body.op(format!("arith.mulf {s}, {x1} : {e}"));
        let cx2 = body.op(format!("arith.mulf {c}, {x2} : {e}"));
        let y1 = body.op(format!("arith.subf {cx1}, {sx2} : {e}"));
        let y2 = body.op(format!("arith.addf {sx1}, {cx2} : {e}"));
        let y = body.select(&first, &y1, &y2, e);
        let y = convert(body, &y, DType::F64, dt)?;
        Ok(body.select(&rotated, &y, &me, elem(dt)?))
    })
}

/// How a Q, K or V operand is laid out: 4-D `[B, H, S, D]` or 3-D
/// `[B, S, H * D]`.
#[derive(Clone)]
struct Heads {
    v: Val,
    h: u64,
    s: u64,
    d: u64,
}

impl Heads {
    /// `v` as `[B, H, S, D]` by kiln-ir's [`HeadView`] rule.
    fn new(v: &Val, heads: Option<i64>, what: &str, attr_name: &str) -> Res<Heads> {
        let view = HeadView::resolve(&v.shape, heads, what, attr_name)?;
        Ok(Heads {
            v: v.clone(),
            h: view.heads,
            s: view.seq,
            d: view.head_size,
        })
    }

    /// The element `(b, h, s, d)`.
    fn read(&self, body: &mut Body<'_>, b: &str, h: &str, s: &str, d: &str) -> String {
        let at = if self.v.rank() == 4 {
            vec![b.to_string(), h.to_string(), s.to_string(), d.to_string()]
        } else {
            let dc = body.index(self.d as i64);
            let hd = body.op(format!("arith.muli {h}, {dc} : index"));
            let c = body.op(format!("arith.addi {hd}, {d} : index"));
            vec![b.to_string(), s.to_string(), c]
        };
        body.extract(&self.v, &at)
    }
}

/// `[B, H, past + S, D]`: the past cache followed by the new keys (values).
fn with_past(b: &mut Builder, past: Option<&Val>, cur: &Heads, bn: u64) -> Res<Val> {
    let p = past.map_or(0, |p| p.shape[2]);
    if let Some(pv) = past {
        if pv.rank() != 4 || pv.shape[0] != bn || pv.shape[1] != cur.h || pv.shape[3] != cur.d {
            return Err(format!(
                "past cache {} does not fit the new keys/values",
                pv.ty()
            ));
        }
    }
    let shape = [bn, cur.h, p + cur.s, cur.d];
    let cur = cur.clone();
    let past = past.cloned();
    let e = elem(cur.v.dtype)?;
    b.tabulate(cur.v.dtype, &shape, |body, o| {
        let pc = body.index(p as i64);
        let js = body.op(format!("arith.subi {}, {pc} : index", o[2]));
        let z = body.index(0);
        let jc = body.op(format!("arith.maxsi {js}, {z} : index"));
        let new = cur.read(body, &o[0], &o[1], &jc, &o[3]);
        match &past {
            None => Ok(new),
            Some(pv) => {
                let last = body.index(p as i64 - 1);
                let jp = body.op(format!("arith.minsi {}, {last} : index", o[2]));
                let jp = body.op(format!("arith.maxsi {jp}, {z} : index"));
                let old = body.extract(pv, &[o[0].clone(), o[1].clone(), jp, o[3].clone()]);
                let in_past = body.op(format!("arith.cmpi slt, {}, {pc} : index", o[2]));
                Ok(body.select(&in_past, &old, &new, e))
            }
        }
    })
}

/// An f64 value rounded to `dt` (kept in f64).
fn round_in(body: &mut Body<'_>, x: &str, dt: DType) -> Res<String> {
    if dt == DType::F64 {
        return Ok(x.to_string());
    }
    let r = convert(body, x, DType::F64, dt)?;
    convert(body, &r, dt, DType::F64)
}

/// `exp(x - max)` with each step rounded to the softmax dtype `sd`, as the
/// reference's NumPy arrays are.
fn softmax_exp(body: &mut Body<'_>, x: &str, max: &str, sd: DType) -> Res<String> {
    let d = body.op(format!("arith.subf {x}, {max} : f64"));
    let d = round_in(body, &d, sd)?;
    let ex = body.op(format!("math.exp {d} : f64"));
    round_in(body, &ex, sd)
}

/// The additive bias at `(b, h, i, j)` in f64 (before rounding).
struct Bias {
    mask: Option<Val>,
    causal: bool,
    left: i64,
    right: i64,
    nonpad: Option<Val>,
    past: u64,
    sq: u64,
}

impl Bias {
    fn at(&self, body: &mut Body<'_>, o: &[String]) -> Res<String> {
        let ninf = body.float(f64::NEG_INFINITY, DType::F64)?;
        let z = body.index(0);
        let mut x = match &self.mask {
            None => body.float(0.0, DType::F64)?,
            Some(m) => {
                let r = m.rank();
                let last = *m.shape.last().unwrap_or(&1);
                let mut at = Vec::with_capacity(r);
                for d in 0..r {
                    let c = &o[4 - r + d];
                    at.push(if m.shape[d] == 1 {
                        z.clone()
                    } else if d + 1 == r {
                        let lc = body.index(last as i64 - 1);
                        body.op(format!("arith.minui {c}, {lc} : index"))
                    } else {
                        c.clone()
                    });
                }
                let v = body.extract(m, &at);
                let v = if m.dtype == DType::Bool {
                    let zero = body.float(0.0, DType::F64)?;
                    body.select(&v, &zero, &ninf, "f64")
                } else {
                    convert(body, &v, m.dtype, DType::F64)?
                };
                // Key positions past the mask's extent are masked.
                let lc = body.index(last as i64);
                let past_end = body.op(format!("arith.cmpi uge, {}, {lc} : index", o[3]));
                body.select(&past_end, &ninf, &v, "f64")
            }
        };
        // diff = i + offset(b) - j, offset = nonpad[b] - S_q without a past cache.
        let i = body.op(format!("arith.index_cast {} : index to i64", o[2]));
        let j = body.op(format!("arith.index_cast {} : index to i64", o[3]));
        let np = match &self.nonpad {
            Some(nv) => {
                let v = body.extract(nv, std::slice::from_ref(&o[0]));
                Some(convert(body, &v, nv.dtype, DType::I64)?)
            }
            None => None,
        };
        let offset = match (&np, self.past) {
            (Some(n), 0) => {
                let sq = body.op(format!("arith.constant {} : i64", self.sq));
                body.op(format!("arith.subi {n}, {sq} : i64"))
            }
            _ => body.op(format!("arith.constant {} : i64", self.past)),
        };
        let io = body.op(format!("arith.addi {i}, {offset} : i64"));
        let diff = body.op(format!("arith.subi {io}, {j} : i64"));
        let zero = body.op("arith.constant 0 : i64");
        let mut off: Vec<String> = Vec::new();
        if self.causal {
            off.push(body.op(format!("arith.cmpi slt, {diff}, {zero} : i64")));
        }
        if self.left >= 0 {
            let l = body.op(format!("arith.constant {} : i64", self.left));
            off.push(body.op(format!("arith.cmpi sgt, {diff}, {l} : i64")));
        }
        if self.right >= 0 {
            let r = body.op(format!("arith.constant {} : i64", -self.right));
            off.push(body.op(format!("arith.cmpi slt, {diff}, {r} : i64")));
        }
        if let Some(n) = &np {
            off.push(body.op(format!("arith.cmpi sge, {j}, {n} : i64")));
        }
        for c in off {
            x = body.select(&c, &ninf, &x, "f64");
        }
        Ok(x)
    }
}

/// `nn.attention %q, %k, %v, %attn_mask?, %past_key?, %past_value?,
/// %nonpad_kv_seqlen?` with results `y, present_key?, present_value?,
/// qk_matmul_output?`.
pub(crate) fn attention(b: &mut Builder, n: &NodeIn<'_>) -> Res<Vec<Val>> {
    let (qv, kv, vv) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let dt = qv.dtype;
    if !dt.is_float() {
        return Err(format!("nn.attention of dtype {dt} is not supported"));
    }
    let q = Heads::new(
        qv,
        n.a.opt_int("q_num_heads").map_err(attr_err)?,
        "Q",
        "q_num_heads",
    )?;
    let kvh = n.a.opt_int("kv_num_heads").map_err(attr_err)?;
    let sd = match n.a.opt_int("softmax_precision").map_err(attr_err)? {
        None => dt,
        Some(1) => DType::F32,
        Some(10) => DType::F16,
        Some(11) => DType::F64,
        Some(16) => DType::BF16,
        Some(c) => return Err(format!("softmax_precision {c} is not a float type")),
    };
    let k = Heads::new(kv, kvh, "K", "kv_num_heads")?;
    let v = Heads::new(vv, kvh, "V", "kv_num_heads")?;
    let (past_k, past_v) = (n.opt(4), n.opt(5));
    if past_k.is_some() != past_v.is_some() {
        return Err("past_key and past_value must be given together".into());
    }
    let bn = qv.shape[0];
    if kv.shape[0] != bn || vv.shape[0] != bn || k.d != q.d || k.h != v.h || k.s != v.s {
        return Err("Q, K and V shapes disagree".into());
    }
    if k.h == 0 || q.h % k.h != 0 {
        return Err(format!(
            "q heads {} are not a multiple of kv heads {}",
            q.h, k.h
        ));
    }
    let group = q.h / k.h;
    let past = past_k.map_or(0, |p| p.shape.get(2).copied().unwrap_or(0));
    let kall = with_past(b, past_k, &k, bn)?;
    let vall = with_past(b, past_v, &v, bn)?;
    let (hq, sq, total, dv) = (q.h, q.s, kall.shape[2], v.d);
    let scale = if n.node.attrs.contains_key("scale") {
        n.a.float("scale").map_err(attr_err)?
    } else {
        1.0 / (q.d as f64).sqrt()
    };
    let softcap = n.a.float("softcap").map_err(attr_err)?;
    let mode = n.a.int("qk_matmul_output_mode").map_err(attr_err)?;
    let bias = Bias {
        mask: n.opt(3).cloned(),
        causal: n.a.bool("is_causal").map_err(attr_err)?,
        left: n.a.int("left_window_size").map_err(attr_err)?,
        right: n.a.int("right_window_size").map_err(attr_err)?,
        nonpad: n.opt(6).cloned(),
        past,
        sq,
    };
    if let Some(np) = &bias.nonpad {
        if np.shape != [bn] || !np.dtype.is_int() {
            return Err(format!("nonpad_kv_seqlen {} must be [B] integers", np.ty()));
        }
    }
    let e = elem(dt)?;
    let sshape = [bn, hq, sq, total];
    let kh = |body: &mut Body<'_>, h: &str| -> String {
        let gc = body.index(group as i64);
        body.op(format!("arith.divui {h}, {gc} : index"))
    };
    // Raw scores: (q * sqrt(scale)) . (k * sqrt(scale)), factors rounded.
    let raw = b.tabulate(dt, &sshape, |body, o| {
        let ss = body.float(scale.sqrt(), dt)?;
        let h = kh(body, &o[1]);
        let z = body.index(0);
        let dc = body.index(q.d as i64);
        let zero = body.float(0.0, DType::F64)?;
        let acc = body.for_loop(&z, &dc, &[(zero, "f64")], |body, d, c| {
            let qe = q.read(body, &o[0], &o[1], &o[2], d);
            let ke = body.extract(
                &kall,
                &[o[0].clone(), h.clone(), o[3].clone(), d.to_string()],
            );
            let qs = body.op(format!("arith.mulf {qe}, {ss} : {e}"));
            let ks = body.op(format!("arith.mulf {ke}, {ss} : {e}"));
            let qs = convert(body, &qs, dt, DType::F64)?;
            let ks = convert(body, &ks, dt, DType::F64)?;
            let p = body.op(format!("arith.mulf {qs}, {ks} : f64"));
            Ok(vec![body.op(format!("arith.addf {}, {p} : f64", c[0]))])
        })?;
        convert(body, &acc[0], DType::F64, dt)
    })?;
    let capped = if softcap > 0.0 {
        b.map(&[&raw], dt, &sshape, |body, a| {
            let x = convert(body, &a[0], dt, DType::F64)?;
            let c = body.float(softcap, DType::F64)?;
            let d = body.op(format!("arith.divf {x}, {c} : f64"));
            let t = body.op(format!("math.tanh {d} : f64"));
            let y = body.op(format!("arith.mulf {c}, {t} : f64"));
            convert(body, &y, DType::F64, dt)
        })?
    } else {
        raw.clone()
    };
    let biased = b.tabulate(dt, &sshape, |body, o| {
        let x = body.extract(&capped, o);
        let x = convert(body, &x, dt, DType::F64)?;
        let bv = bias.at(body, o)?;
        // The reference rounds the bias to the dtype before adding it.
        let bv = convert(body, &bv, DType::F64, dt)?;
        let bv = convert(body, &bv, dt, DType::F64)?;
        let y = body.op(format!("arith.addf {x}, {bv} : f64"));
        convert(body, &y, DType::F64, dt)
    })?;
    // Row statistics in f64: the maximum, then the sum of exp(x - max).
    let rshape = [bn, hq, sq];
    let row_max = b.tabulate(DType::F64, &rshape, |body, o| {
        let z = body.index(0);
        let t = body.index(total as i64);
        let ninf = body.float(f64::NEG_INFINITY, DType::F64)?;
        let m = body.for_loop(&z, &t, &[(ninf, "f64")], |body, j, c| {
            let mut at = o.to_vec();
            at.push(j.to_string());
            let x = body.extract(&biased, &at);
            let x = convert(body, &x, dt, DType::F64)?;
            Ok(vec![body.op(format!("arith.maxnumf {}, {x} : f64", c[0]))])
        })?;
        Ok(m[0].clone())
    })?;
    let row_sum = b.tabulate(DType::F64, &rshape, |body, o| {
        let z = body.index(0);
        let t = body.index(total as i64);
        let m = body.extract(&row_max, o);
        let zero = body.float(0.0, DType::F64)?;
        let s = body.for_loop(&z, &t, &[(zero, "f64")], |body, j, c| {
            let mut at = o.to_vec();
            at.push(j.to_string());
            let x = body.extract(&biased, &at);
            let x = convert(body, &x, dt, DType::F64)?;
            let ex = softmax_exp(body, &x, &m, sd)?;
            let s = body.op(format!("arith.addf {}, {ex} : f64", c[0]));
            // NumPy adds bf16 (an ml_dtypes type) sequentially, rounding
            // every partial sum; native floats round once at the end.
            if sd == DType::BF16 {
                Ok(vec![round_in(body, &s, sd)?])
            } else {
                Ok(vec![s])
            }
        })?;
        round_in(body, &s[0], sd)
    })?;
    let probs = b.tabulate(dt, &sshape, |body, o| {
        let x = body.extract(&biased, o);
        let x = convert(body, &x, dt, DType::F64)?;
        let m = body.extract(&row_max, &o[..3]);
        let s = body.extract(&row_sum, &o[..3]);
        let ex = softmax_exp(body, &x, &m, sd)?;
        let p = body.op(format!("arith.divf {ex}, {s} : f64"));
        let p = round_in(body, &p, sd)?;
        let ninf = body.float(f64::NEG_INFINITY, DType::F64)?;
        let dead = body.op(format!("arith.cmpf oeq, {m}, {ninf} : f64"));
        let zero = body.float(0.0, DType::F64)?;
        let p = body.select(&dead, &zero, &p, "f64");
        convert(body, &p, DType::F64, dt)
    })?;
    // y = probs . V, in the layout of Q.
    let (_, yshape) = n.out(0)?;
    let rank3 = qv.rank() == 3;
    let y = b.tabulate(dt, yshape, |body, o| {
        let (bi, h, i, d) = if rank3 {
            let dc = body.index(dv as i64);
            let h = body.op(format!("arith.divui {}, {dc} : index", o[2]));
            let d = body.op(format!("arith.remui {}, {dc} : index", o[2]));
            (o[0].clone(), h, o[1].clone(), d)
        } else {
            (o[0].clone(), o[1].clone(), o[2].clone(), o[3].clone())
        };
        let hk = kh(body, &h);
        let z = body.index(0);
        let t = body.index(total as i64);
        let zero = body.float(0.0, DType::F64)?;
        let acc = body.for_loop(&z, &t, &[(zero, "f64")], |body, j, c| {
            let p = body.extract(&probs, &[bi.clone(), h.clone(), i.clone(), j.to_string()]);
            let p = convert(body, &p, dt, DType::F64)?;
            let x = body.extract(&vall, &[bi.clone(), hk.clone(), j.to_string(), d.clone()]);
            let x = convert(body, &x, vall.dtype, DType::F64)?;
            let m = body.op(format!("arith.mulf {p}, {x} : f64"));
            Ok(vec![body.op(format!("arith.addf {}, {m} : f64", c[0]))])
        })?;
        convert(body, &acc[0], DType::F64, dt)
    })?;
    let qk = match mode {
        0 => raw,
        1 => capped,
        2 => biased,
        _ => probs,
    };
    let all = [y, kall, vall, qk];
    Ok(all.into_iter().take(n.outs.len()).collect())
}
