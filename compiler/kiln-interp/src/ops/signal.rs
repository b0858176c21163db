//! `nn.dft` and `nn.stft` (family `kiln_ir::ops::signal`): direct
//! `O(n^2)` transforms accumulated in f64 with the shared roots of unity
//! ([`twiddles`]; term `k * t` reads entry `k * t mod n`), rounded once to
//! the dtype. Following the ONNX reference (numpy's FFT): a forward
//! transform computes `sum_t x[t] e^(-2 pi i k t / n)` over the first
//! `min(m, n)` of the `m` input samples (zero padding beyond); an inverse
//! one uses `e^(+..)` and divides by `n`; an inverse one-sided transform is
//! numpy's `irfft`: the bins `0..=n/2` (zero beyond the input) extended by
//! Hermitian symmetry, the real part of the result kept, which discards the
//! imaginary parts of the DC and Nyquist bins.

use crate::eval::Op;
use crate::{InterpError, Tensor};
use kiln_ir::ops::signal::{dft_params, stft_params, twiddles};

type R = Result<Tensor, InterpError>;

fn invalid<T>(msg: &str) -> Result<T, InterpError> {
    Err(InterpError::Invalid(msg.into()))
}

/// `(re, im)` of bin `k` of the `n`-point transform of `(re, im)`, with
/// sign `+1` (inverse, unscaled) or `-1` (forward) in the exponent.
fn bin(re: &[f64], im: &[f64], k: u64, n: u64, sign: f64, tw: &[(f64, f64)]) -> (f64, f64) {
    let (mut sr, mut si) = (0.0, 0.0);
    for (t, (&xr, &xi)) in re.iter().zip(im).enumerate().take(n as usize) {
        let (c, s) = tw[(u128::from(k) * t as u128 % u128::from(n)) as usize];
        let s = sign * s;
        sr += xr * c - xi * s;
        si += xr * s + xi * c;
    }
    (sr, si)
}

/// Sample `t` of the `n`-point inverse real transform of the one-sided
/// bins `(re, im)` (unscaled).
fn irfft_sample(re: &[f64], im: &[f64], t: u64, n: u64, tw: &[(f64, f64)]) -> f64 {
    let mut acc = 0.0;
    for k in 0..n {
        let (src, sign) = if k <= n / 2 { (k, 1.0) } else { (n - k, -1.0) };
        let Some((&xr, &xi)) = re.get(src as usize).zip(im.get(src as usize)) else {
            continue;
        };
        let (c, s) = tw[(u128::from(k) * u128::from(t) % u128::from(n)) as usize];
        acc += xr * c - sign * xi * s;
    }
    acc
}

/// `nn.dft`.
pub fn dft(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let p = dft_params(op.a)?;
    let (Some(axis), Some(n)) = (p.axis, p.n) else {
        return invalid("nn.dft needs constant axis and dft_length operands");
    };
    let r = x.rank();
    let comps = x.shape[r - 1] as usize;
    let m = x.shape[axis] as usize;
    let outer: usize = x.shape[..axis].iter().product::<u64>() as usize;
    let inner: usize = x.shape[axis + 1..r - 1].iter().product::<u64>() as usize;
    let real_out = p.inverse && p.onesided;
    let bins = if p.onesided && !p.inverse {
        n / 2 + 1
    } else {
        n
    };
    let oc = if real_out { 1 } else { 2 };
    let mut shape = x.shape.clone();
    shape[axis] = bins;
    shape[r - 1] = oc as u64;
    op.check(&shape)?;
    let xv = x.to_f64_vec();
    let tw = twiddles(n);
    let scale = if p.inverse { 1.0 / n as f64 } else { 1.0 };
    let sign = if p.inverse { 1.0 } else { -1.0 };
    let bins = bins as usize;
    let mut out = vec![0.0; outer * bins * inner * oc];
    let (mut re, mut im) = (vec![0.0; m], vec![0.0; m]);
    for o in 0..outer {
        for i in 0..inner {
            for t in 0..m {
                let at = ((o * m + t) * inner + i) * comps;
                re[t] = xv[at];
                im[t] = if comps == 2 { xv[at + 1] } else { 0.0 };
            }
            for k in 0..bins {
                let at = ((o * bins + k) * inner + i) * oc;
                if real_out {
                    out[at] = irfft_sample(&re, &im, k as u64, n, &tw) * scale;
                } else {
                    let (sr, si) = bin(&re, &im, k as u64, n, sign, &tw);
                    out[at] = sr * scale;
                    out[at + 1] = si * scale;
                }
            }
        }
    }
    Ok(Tensor::from_f64(x.dtype, shape, out))
}

/// `nn.stft`: the forward transform of each frame, weighted by the window.
pub fn stft(op: &Op<'_>) -> R {
    let x = op.input(0)?;
    let Some(p) = stft_params(op.a)? else {
        return invalid("nn.stft needs constant frame_step and frame_length operands");
    };
    let (nb, len, comps) = (
        x.shape[0] as usize,
        x.shape[1] as usize,
        x.shape[2] as usize,
    );
    let shape = vec![x.shape[0], p.frames, p.bins, 2];
    op.check(&shape)?;
    let xv = x.to_f64_vec();
    let window = match op.opt(2) {
        Some(w) => w.to_f64_vec(),
        None => vec![1.0; p.frame as usize],
    };
    let tw = twiddles(p.frame);
    let (frames, bins, fl) = (p.frames as usize, p.bins as usize, p.frame as usize);
    let mut out = vec![0.0; nb * frames * bins * 2];
    let (mut re, mut im) = (vec![0.0; fl], vec![0.0; fl]);
    for b in 0..nb {
        for f in 0..frames {
            for t in 0..fl {
                let at = (b * len + f * p.step as usize + t) * comps;
                re[t] = xv[at] * window[t];
                im[t] = if comps == 2 {
                    xv[at + 1] * window[t]
                } else {
                    0.0
                };
            }
            for k in 0..bins {
                let (sr, si) = bin(&re, &im, k as u64, p.frame, -1.0, &tw);
                let at = ((b * frames + f) * bins + k) * 2;
                out[at] = sr;
                out[at + 1] = si;
            }
        }
    }
    Ok(Tensor::from_f64(x.dtype, shape, out))
}
