//! Pooling over `[N, C, spatial...]`: max (with argmax indices), average,
//! Lp, their global forms, and LRN.
//!
//! Window attributes are read by [`kiln_ir::ops::Window`] (the schema's
//! reader, so defaults and checks are shared with shape inference). Each
//! output position enumerates its kernel taps `o * stride + k * dilation -
//! pad_begin`; taps outside the input are padding. Padding never wins a
//! max, adds 0 to an Lp sum, and counts toward an average's divisor only
//! with `count_include_pad` and only inside the explicit padding (taps that
//! `ceil_mode` pushes past the end padding never count), as in ONNX Runtime.
//! Sums accumulate in f64 and are rounded once.

use crate::eval::Op;
use crate::util::{for_each_index, strides};
use crate::{InterpError, Tensor};
use kiln_ir::ops::Window;
use kiln_ir::Dim;

type R = Result<Tensor, InterpError>;

/// Window geometry with padding resolved for concrete input extents.
struct Geo {
    win: Window,
    /// Input spatial extents.
    ins: Vec<u64>,
    /// Output spatial extents.
    outs: Vec<u64>,
    pad_begin: Vec<u64>,
    pad_end: Vec<u64>,
}

/// The taps of one output position.
struct Taps {
    /// Flat offsets (within one `[n, c]` plane) of the taps inside the input.
    inside: Vec<usize>,
    /// The same taps' spatial coordinates.
    coords: Vec<Vec<u64>>,
    /// Taps inside the input or the explicit padding.
    padded: usize,
}

fn geometry(op: &Op<'_>, x: &Tensor) -> Result<Geo, InterpError> {
    if x.rank() < 3 {
        return Err(InterpError::Invalid(format!(
            "pooling expects [N, C, spatial...], got shape {:?}",
            x.shape
        )));
    }
    let sp = x.rank() - 2;
    let win = Window::read(op.a, sp, None)?;
    let ins = x.shape[2..].to_vec();
    let (mut outs, mut pad_begin, mut pad_end) = (vec![], vec![], vec![]);
    for (i, &n) in ins.iter().enumerate() {
        let Dim::Static(o) = win.out_dim(i, &Dim::Static(n))? else {
            return Err(InterpError::Internal(
                "static extent gave a symbolic one".into(),
            ));
        };
        let (b, e) = win.resolved_pads(i, n);
        outs.push(o);
        pad_begin.push(b);
        pad_end.push(e);
    }
    Ok(Geo {
        win,
        ins,
        outs,
        pad_begin,
        pad_end,
    })
}

impl Geo {
    fn taps(&self, o: &[u64]) -> Taps {
        let st = strides(&self.ins);
        let mut t = Taps {
            inside: vec![],
            coords: vec![],
            padded: 0,
        };
        for_each_index(&self.win.kernel, |k| {
            let mut flat = 0usize;
            let mut coord = Vec::with_capacity(k.len());
            let mut inside = true;
            let mut in_pad = true;
            for d in 0..k.len() {
                // Position in the padded input.
                let p = o[d] * self.win.strides[d] + k[d] * self.win.dilations[d];
                if p >= self.pad_begin[d] + self.ins[d] + self.pad_end[d] {
                    in_pad = false;
                }
                if p < self.pad_begin[d] || p - self.pad_begin[d] >= self.ins[d] {
                    inside = false;
                } else {
                    let q = p - self.pad_begin[d];
                    flat += q as usize * st[d];
                    coord.push(q);
                }
            }
            if in_pad {
                t.padded += 1;
            }
            if inside {
                t.inside.push(flat);
                t.coords.push(coord);
            }
        });
        t
    }

    fn out_shape(&self, x: &Tensor) -> Vec<u64> {
        let mut s = x.shape[..2].to_vec();
        s.extend(&self.outs);
        s
    }
}

/// Runs `f` over every `[n, c]` plane and output position, collecting one
/// value per output element.
fn pool_planes<T>(x: &Tensor, geo: &Geo, mut f: impl FnMut(usize, &Taps) -> T) -> Vec<T> {
    let planes = (x.shape[0] * x.shape[1]) as usize;
    let plane: usize = geo.ins.iter().product::<u64>() as usize;
    let mut all_taps = Vec::new();
    for_each_index(&geo.outs, |o| all_taps.push(geo.taps(o)));
    let mut out = Vec::with_capacity(planes * all_taps.len());
    for p in 0..planes {
        for t in &all_taps {
            out.push(f(p * plane, t));
        }
    }
    out
}

/// `nn.max_pool`: window maximum (NaN-ignoring `>` scan, first maximum
/// wins) and, as a second result, its flat index into the input with the
/// spatial offset in row-major (`storage_order = 0`) or column-major order.
pub fn max_pool(op: &Op<'_>) -> Result<Vec<Tensor>, InterpError> {
    let x = op.input(0)?;
    let geo = geometry(op, x)?;
    let shape = geo.out_shape(x);
    op.check(&shape)?;
    let col_major = op.a.int("storage_order")? == 1;
    let plane: u64 = geo.ins.iter().product();
    // Column-major strides of the spatial dims.
    let mut cst = vec![1u64; geo.ins.len()];
    for d in 1..geo.ins.len() {
        cst[d] = cst[d - 1] * geo.ins[d - 1];
    }
    let v = x.to_f64_vec();
    let res = pool_planes(x, &geo, |base, t| {
        let mut best: Option<(f64, usize)> = None;
        for (j, &off) in t.inside.iter().enumerate() {
            let e = v[base + off];
            if best.is_none_or(|(b, _)| e > b) && !e.is_nan() {
                best = Some((e, j));
            }
        }
        match best {
            None => (f64::NEG_INFINITY, 0i128),
            Some((b, j)) => {
                let sp = if col_major {
                    t.coords[j]
                        .iter()
                        .zip(&cst)
                        .map(|(c, s)| c * s)
                        .sum::<u64>()
                } else {
                    t.inside[j] as u64
                };
                let plane_idx = base as u64 / plane.max(1);
                (b, i128::from(plane_idx * plane + sp))
            }
        }
    });
    let (vals, idx): (Vec<f64>, Vec<i128>) = res.into_iter().unzip();
    let y = if x.dtype.is_float() {
        Tensor::from_f64(x.dtype, shape.clone(), vals)
    } else {
        Tensor::from_ints(
            x.dtype,
            shape.clone(),
            vals.iter().map(|&e| e as i128).collect(),
        )
    };
    // Both results are always computed; the runner drops undeclared ones.
    Ok(vec![y, Tensor::from_ints(kiln_ir::DType::I64, shape, idx)])
}

/// `nn.average_pool`.
pub fn average_pool(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let geo = geometry(op, x)?;
    let shape = geo.out_shape(x);
    op.check(&shape)?;
    let include = op.a.bool("count_include_pad")?;
    let v = x.to_f64_vec();
    let out = pool_planes(x, &geo, |base, t| {
        let s: f64 = t.inside.iter().map(|&o| v[base + o]).sum();
        let n = if include { t.padded } else { t.inside.len() };
        if n == 0 {
            f64::NAN
        } else {
            s / n as f64
        }
    });
    Ok(Tensor::from_f64(x.dtype, shape, out))
}

/// `nn.lp_pool`: `(sum |x|^p)^(1/p)` over the taps inside the input.
pub fn lp_pool(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let geo = geometry(op, x)?;
    let shape = geo.out_shape(x);
    op.check(&shape)?;
    let p = op.a.int("p")? as f64;
    let v = x.to_f64_vec();
    let out = pool_planes(x, &geo, |base, t| {
        let s: f64 = t.inside.iter().map(|&o| v[base + o].abs().powf(p)).sum();
        s.powf(1.0 / p)
    });
    Ok(Tensor::from_f64(x.dtype, shape, out))
}

/// `nn.global_average_pool` (`max = false`) and `nn.global_max_pool`.
pub fn global_pool(op: &Op<'_>, max: bool) -> R {
    let x = op.input(0)?;
    if x.rank() < 3 {
        return Err(InterpError::Invalid(format!(
            "pooling expects [N, C, spatial...], got shape {:?}",
            x.shape
        )));
    }
    let mut shape = x.shape[..2].to_vec();
    shape.resize(x.rank(), 1);
    let plane = x.shape[2..].iter().product::<u64>() as usize;
    let v = x.to_f64_vec();
    let out = if plane == 0 {
        vec![if max { f64::NEG_INFINITY } else { f64::NAN }; (x.shape[0] * x.shape[1]) as usize]
    } else {
        v.chunks(plane)
            .map(|c| {
                if max {
                    // NaN propagates, as numpy's max in the ONNX reference.
                    c.iter().fold(f64::NEG_INFINITY, |a, &b| {
                        if a.is_nan() || b.is_nan() {
                            f64::NAN
                        } else {
                            a.max(b)
                        }
                    })
                } else {
                    c.iter().sum::<f64>() / plane as f64
                }
            })
            .collect()
    };
    Ok(Tensor::from_f64(x.dtype, shape, out))
}

/// `nn.lrn`: `x / (bias + alpha / size * sum_sq) ^ beta`, the sum running
/// over channels `c - floor((size - 1) / 2) ..= c + ceil((size - 1) / 2)`.
pub fn lrn(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let (alpha, beta, bias) = (
        op.a.float("alpha")?,
        op.a.float("beta")?,
        op.a.float("bias")?,
    );
    let size = op.a.int("size")?;
    if size <= 0 || x.rank() < 3 {
        return Err(InterpError::Invalid(
            "nn.lrn needs size > 0 and rank >= 3".into(),
        ));
    }
    let (lo, hi) = ((size - 1) / 2, (size - 1) - (size - 1) / 2);
    let (nb, c) = (x.shape[0] as usize, x.shape[1] as i64);
    let plane = x.shape[2..].iter().product::<u64>() as usize;
    let v = x.to_f64_vec();
    let mut out = vec![0.0; v.len()];
    for n in 0..nb {
        for ch in 0..c {
            for s in 0..plane {
                let at = |k: i64| (n * c as usize + k as usize) * plane + s;
                let sq: f64 = ((ch - lo).max(0)..=(ch + hi).min(c - 1))
                    .map(|k| v[at(k)] * v[at(k)])
                    .sum();
                out[at(ch)] = v[at(ch)] / (bias + alpha / size as f64 * sq).powf(beta);
            }
        }
    }
    Ok(Tensor::from_f64(x.dtype, x.shape.clone(), out))
}

/// `nn.global_lp_pool`: `(sum |x|^p)^(1/p)` over each `[n, c]` plane
/// (an empty plane gives 0).
pub fn global_lp_pool(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    if x.rank() < 3 {
        return Err(InterpError::Invalid(format!(
            "pooling expects [N, C, spatial...], got shape {:?}",
            x.shape
        )));
    }
    let p = op.a.int("p")?;
    let mut shape = x.shape[..2].to_vec();
    shape.resize(x.rank(), 1);
    let plane = x.shape[2..].iter().product::<u64>() as usize;
    let v = x.to_f64_vec();
    let out = if plane == 0 {
        vec![0.0; (x.shape[0] * x.shape[1]) as usize]
    } else {
        v.chunks(plane)
            .map(|c| lp_norm(c.iter().copied(), p))
            .collect()
    };
    Ok(Tensor::from_f64(x.dtype, shape, out))
}

/// `(sum |x|^p)^(1/p)`, exact powers for p = 1 and 2.
fn lp_norm(xs: impl Iterator<Item = f64>, p: i64) -> f64 {
    match p {
        1 => xs.map(f64::abs).sum(),
        2 => xs.map(|x| x * x).sum::<f64>().sqrt(),
        _ => {
            let p = p as f64;
            xs.map(|x| x.abs().powf(p)).sum::<f64>().powf(1.0 / p)
        }
    }
}
