//! Contractions: `nn.matmul`, `nn.gemm`, `nn.conv`, each one
//! `linalg.generic` with reduction iterators over a zero- (or bias-)
//! initialized accumulator. Generic contractions keep batch broadcasting,
//! transposes, groups, strides and dilations in the indexing maps, so no
//! data is moved to fit a named op.

use super::ctx::{affine_map, elem, identity_map, Body, Builder, Iter, Operand, Res, Val};
use super::{attr_err, NodeIn};
use kiln_ir::DType;

/// `acc + a * b` in the accumulator's dtype.
fn mac(b: &mut Body<'_>, x: &[String], dt: DType) -> Res<Vec<String>> {
    let e = elem(dt)?;
    let (mul, add) = if dt.is_float() {
        ("mulf", "addf")
    } else {
        ("muli", "addi")
    };
    let p = b.op(format!("arith.{mul} {}, {} : {e}", x[0], x[1]));
    Ok(vec![b.op(format!("arith.{add} {}, {p} : {e}", x[2]))])
}

fn d(i: usize) -> String {
    format!("d{i}")
}

/// `nn.matmul` with NumPy matmul semantics (rank-1 promotion, broadcast
/// batch dims).
pub(crate) fn matmul(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    let (dt, out_shape) = n.out(0)?;
    if x.dtype == DType::Bool {
        return Err("nn.matmul on bool is not supported".into());
    }
    let x2 = if x.rank() == 1 {
        b.reshape(x, &[1, x.shape[0]])?
    } else {
        x.clone()
    };
    let y2 = if y.rank() == 1 {
        b.reshape(y, &[y.shape[0], 1])?
    } else {
        y.clone()
    };
    let (xb, yb) = (&x2.shape[..x2.rank() - 2], &y2.shape[..y2.rank() - 2]);
    let nb = xb.len().max(yb.len());
    let mut batch = vec![1u64; nb];
    for s in [xb, yb] {
        for (i, &e) in s.iter().enumerate() {
            let j = nb - s.len() + i;
            batch[j] = if batch[j] == 1 { e } else { batch[j] };
        }
    }
    let m = x2.shape[x2.rank() - 2];
    let k = x2.shape[x2.rank() - 1];
    let nn = y2.shape[y2.rank() - 1];
    // Loop dims: batch..., m, n, k.
    let (dm, dn, dk) = (nb, nb + 1, nb + 2);
    let bmap = |s: &[u64]| -> Vec<String> {
        s.iter()
            .enumerate()
            .map(|(i, &e)| {
                let j = nb - s.len() + i;
                if e == 1 && batch[j] != 1 {
                    "0".into()
                } else {
                    d(j)
                }
            })
            .collect()
    };
    let mut xm = bmap(xb);
    xm.extend([d(dm), d(dk)]);
    let mut ym = bmap(yb);
    ym.extend([d(dk), d(dn)]);
    let mut om: Vec<String> = (0..nb).map(d).collect();
    om.extend([d(dm), d(dn)]);
    let mut acc_shape = batch.clone();
    acc_shape.extend([m, nn]);
    let _ = k;
    let init = b.filled(0.0, dt, &acc_shape)?;
    let mut iters = vec![Iter::Par; nb + 2];
    iters.push(Iter::Red);
    let r = b.generic(
        &iters,
        &[
            Operand::of(&x2, affine_map(nb + 3, &xm)),
            Operand::of(&y2, affine_map(nb + 3, &ym)),
        ],
        &[(init, affine_map(nb + 3, &om))],
        |body, a| mac(body, a, dt),
    )?;
    b.reshape(&r[0], out_shape)
}

/// `nn.gemm`: `alpha * op(A) * op(B) + beta * C`.
pub(crate) fn gemm(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    let (dt, out_shape) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!("nn.gemm of dtype {dt} is not supported"));
    }
    let ta = n.a.bool("trans_a").map_err(attr_err)?;
    let tb = n.a.bool("trans_b").map_err(attr_err)?;
    let alpha = n.a.float("alpha").map_err(attr_err)?;
    let beta = n.a.float("beta").map_err(attr_err)?;
    // Loop dims: m, n, k.
    let xm = if ta { [d(2), d(0)] } else { [d(0), d(2)] };
    let ym = if tb { [d(1), d(2)] } else { [d(2), d(1)] };
    let init = b.filled(0.0, dt, out_shape)?;
    let acc = b.generic(
        &[Iter::Par, Iter::Par, Iter::Red],
        &[
            Operand::of(x, affine_map(3, &xm)),
            Operand::of(y, affine_map(3, &ym)),
        ],
        &[(init, affine_map(3, &[d(0), d(1)]))],
        |body, a| mac(body, a, dt),
    )?;
    let acc = acc.into_iter().next().expect("one result");
    let c = n.opt(2).filter(|_| beta != 0.0);
    if alpha == 1.0 && c.is_none() {
        return Ok(acc);
    }
    let e = elem(dt)?;
    let mut ins = vec![&acc];
    if let Some(c) = c {
        ins.push(c);
    }
    b.map(&ins, dt, out_shape, |body, a| {
        let mut r = a[0].clone();
        if alpha != 1.0 {
            let al = body.float(alpha, dt)?;
            r = body.op(format!("arith.mulf {al}, {r} : {e}"));
        }
        if c.is_some() {
            let mut cv = a[1].clone();
            if beta != 1.0 {
                let be = body.float(beta, dt)?;
                cv = body.op(format!("arith.mulf {be}, {cv} : {e}"));
            }
            r = body.op(format!("arith.addf {r}, {cv} : {e}"));
        }
        Ok(r)
    })
}

/// Padding (begins, ends) per spatial dim from `pads` / `auto_pad`, given the
/// input extents, kernel, strides, dilations and output extents.
pub(crate) struct Spatial {
    pub kernel: Vec<u64>,
    pub strides: Vec<u64>,
    pub dilations: Vec<u64>,
    pub lo: Vec<u64>,
    pub hi: Vec<u64>,
}

impl Spatial {
    /// Reads window attributes; `kernel` comes from the weight (conv) or the
    /// `kernel_shape` attribute (pools). `hi` is extended so that every
    /// output window lies inside the padded input (ceil mode), and trimmed
    /// so the padded input is not longer than the windows read (VALID).
    pub fn read(n: &NodeIn<'_>, input: &[u64], kernel: Vec<u64>, out: &[u64]) -> Res<Spatial> {
        let s = input.len();
        let list = |name: &str, dflt: u64| -> Res<Vec<u64>> {
            match n.a.ints(name).map_err(attr_err)? {
                Some(v) if v.len() == s && v.iter().all(|&x| x > 0) => {
                    Ok(v.into_iter().map(|x| x as u64).collect())
                }
                Some(v) => Err(format!("'{name}' = {v:?} does not fit {s} spatial dims")),
                None => Ok(vec![dflt; s]),
            }
        };
        let strides = list("strides", 1)?;
        let dilations = list("dilations", 1)?;
        if kernel.len() != s || out.len() != s {
            return Err("kernel or output rank does not match the input".into());
        }
        let auto = n.a.str("auto_pad").map_err(attr_err)?.to_string();
        let (mut lo, mut hi) = (vec![0u64; s], vec![0u64; s]);
        match auto.as_str() {
            "NOTSET" => {
                if let Some(p) = n.a.ints("pads").map_err(attr_err)? {
                    if p.len() != 2 * s || p.iter().any(|&x| x < 0) {
                        return Err(format!("pads {p:?} do not fit {s} spatial dims"));
                    }
                    lo = p[..s].iter().map(|&x| x as u64).collect();
                    hi = p[s..].iter().map(|&x| x as u64).collect();
                }
            }
            "VALID" => {}
            "SAME_UPPER" | "SAME_LOWER" => {
                for i in 0..s {
                    let eff = (kernel[i] - 1) * dilations[i] + 1;
                    let need = ((out[i].max(1) - 1) * strides[i] + eff).saturating_sub(input[i]);
                    let small = need / 2;
                    if auto == "SAME_UPPER" {
                        lo[i] = small;
                        hi[i] = need - small;
                    } else {
                        lo[i] = need - small;
                        hi[i] = small;
                    }
                }
            }
            other => return Err(format!("unknown auto_pad \"{other}\"")),
        }
        for i in 0..s {
            let eff = (kernel[i] - 1) * dilations[i] + 1;
            let need = (out[i].max(1) - 1) * strides[i] + eff;
            let have = input[i] + lo[i] + hi[i];
            if need > have {
                hi[i] += need - have;
            }
        }
        Ok(Spatial {
            kernel,
            strides,
            dilations,
            lo,
            hi,
        })
    }

    /// Input index expression for output dim `o` and kernel dim `k`.
    pub fn index(&self, i: usize, o: usize, k: usize) -> String {
        format!("d{o} * {} + d{k} * {}", self.strides[i], self.dilations[i])
    }
}

/// `nn.conv`: grouped N-d convolution (cross-correlation) with optional bias.
pub(crate) fn conv(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let (x, w) = (n.input(0)?, n.input(1)?);
    let (dt, out_shape) = n.out(0)?;
    if !dt.is_float() {
        return Err(format!("nn.conv of dtype {dt} is not supported"));
    }
    let s = x.rank() - 2;
    let g = n.a.int("group").map_err(attr_err)?;
    let g = u64::try_from(g).map_err(|_| "group must be positive".to_string())?;
    let (bn, c) = (x.shape[0], x.shape[1]);
    let m = w.shape[0];
    if g == 0 || c % g != 0 || m % g != 0 || w.shape[1] * g != c {
        return Err(format!("group {g} does not divide channels {c} / {m}"));
    }
    let (cg, mg) = (c / g, m / g);
    let sp = Spatial::read(n, &x.shape[2..], w.shape[2..].to_vec(), &out_shape[2..])?;
    let mut lo = vec![0, 0];
    lo.extend(&sp.lo);
    let mut hi = vec![0, 0];
    hi.extend(&sp.hi);
    let xp = b.pad(x, &lo, &hi, 0.0)?;
    let mut xs = vec![bn, g, cg];
    xs.extend(&xp.shape[2..]);
    let xg = b.reshape(&xp, &xs)?;
    let mut ws = vec![g, mg, cg];
    ws.extend(&w.shape[2..]);
    let wg = b.reshape(w, &ws)?;
    let mut os = vec![bn, g, mg];
    os.extend(&out_shape[2..]);
    // Loop dims: n, g, m, o_0..o_s, c, k_0..k_s.
    let nd = 4 + 2 * s;
    let dc = 3 + s;
    let out_map: Vec<String> = (0..3 + s).map(d).collect();
    let init = match n.opt(2) {
        None => b.filled(0.0, dt, &os)?,
        Some(bias) => {
            let bg = b.reshape(bias, &[g, mg])?;
            let e = b.empty(dt, &os)?;
            let r = b.generic(
                &vec![Iter::Par; 3 + s],
                &[Operand::of(&bg, affine_map(3 + s, &[d(1), d(2)]))],
                &[(e, identity_map(3 + s))],
                |_, a| Ok(vec![a[0].clone()]),
            )?;
            r.into_iter().next().expect("one result")
        }
    };
    let mut xm = vec![d(0), d(1), d(dc)];
    xm.extend((0..s).map(|i| sp.index(i, 3 + i, dc + 1 + i)));
    let mut wm = vec![d(1), d(2), d(dc)];
    wm.extend((0..s).map(|i| d(dc + 1 + i)));
    let mut iters = vec![Iter::Par; 3 + s];
    iters.extend(vec![Iter::Red; 1 + s]);
    let r = b.generic(
        &iters,
        &[
            Operand::of(&xg, affine_map(nd, &xm)),
            Operand::of(&wg, affine_map(nd, &wm)),
        ],
        &[(init, affine_map(nd, &out_map))],
        |body, a| mac(body, a, dt),
    )?;
    b.reshape(&r[0], out_shape)
}
