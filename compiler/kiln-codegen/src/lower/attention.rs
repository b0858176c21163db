//! Transformer building blocks: `nn.rotary_embedding`, following
//! `kiln_interp::ops::attention` (the ONNX reference).
//!
//! Invariants:
//! - one `linalg.generic` over the result reads, for each feature, itself
//!   and its rotation partner (the other half, or the neighbouring
//!   even/odd feature when `interleaved`) and the cached cosine and sine of
//!   the token's row; features past `rotary_embedding_dim` are copied;
//! - the rotation is computed in f64 and rounded once, as the reference;
//! - 3-D inputs `[B, S, H * D]` are handled in place: the head of a
//!   feature is its last-dim index divided by the head size, so no
//!   transposes are materialized.
//!
//! `nn.attention` is not lowered yet.

use super::ctx::{Builder, Res, Val};
use super::elementwise::convert;
use super::{attr_err, NodeIn};
use kiln_ir::DType;

/// `nn.rotary_embedding %x, %cos_cache, %sin_cache, %position_ids?`.
pub(crate) fn rotary_embedding(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let (cos, sin) = (n.input(1)?, n.input(2)?);
    let pos = n.opt(3).cloned();
    let (dt, shape) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!("nn.rotary_embedding of dtype {dt} is not supported"));
    }
    let (seq_dim, head) = match x.rank() {
        4 => (2, x.shape[3]),
        3 => {
            let h = n.a.opt_int("num_heads").map_err(attr_err)?;
            match h {
                Some(h) if h > 0 && x.shape[2] % h as u64 == 0 => (1, x.shape[2] / h as u64),
                _ => return Err("a 3-D input needs num_heads dividing its hidden size".into()),
            }
        }
        _ => return Err(format!("nn.rotary_embedding of {} needs rank 3 or 4", x.ty())),
    };
    let rot = match n.a.int("rotary_embedding_dim").map_err(attr_err)? {
        0 => head,
        r if r > 0 && r as u64 <= head && r % 2 == 0 => r as u64,
        r => return Err(format!("rotary_embedding_dim {r} does not fit head size {head}")),
    };
    let half = rot / 2;
    if cos.shape.last() != Some(&half) || cos.shape != sin.shape || half == 0 {
        return Err(format!("cos/sin caches must end in rotary_embedding_dim / 2 = {half}"));
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
        Ok(body.select(&rotated, &y, &me, super::ctx::elem(dt)?))
    })
}
