//! The sampling geometry of `nn.resize`, shared by the reference
//! interpreter and the lowering so that both compute the same taps.
//!
//! For output index `y` the source coordinate `x` comes from the
//! `coordinate_transformation_mode`; with `ratio = x - floor(x)` (or 1 when
//! `x` is integral) the kernel gives an even number `n` of coefficients for
//! the source indices `x - ratio + 1 - n/2 + j`, which are clamped into the
//! input (edge padding) after `exclude_outside` has zeroed and renormalized
//! the coefficients of outside indices. This follows the ONNX reference
//! (`onnx/reference/ops/op_resize.py`) step by step, in f64.

/// Interpolation kernel and its parameters.
#[derive(Clone, Copy, Debug)]
pub enum Kernel<'s> {
    /// `nearest` with its `nearest_mode`.
    Nearest(&'s str),
    /// `linear`.
    Linear {
        /// Antialiasing when downsampling.
        antialias: bool,
    },
    /// `cubic` with `cubic_coeff_a`.
    Cubic {
        /// The `a` coefficient.
        a: f64,
        /// Antialiasing when downsampling.
        antialias: bool,
    },
}

impl Kernel<'_> {
    /// The coefficients for fractional position `ratio` at `scale` (the
    /// reference's `get_*_coeffs`).
    pub fn coeffs(self, ratio: f64, scale: f64) -> Vec<f64> {
        match self {
            Kernel::Nearest(mode) => {
                let up = ratio == 1.0
                    || match mode {
                        "round_prefer_floor" => ratio > 0.5,
                        "round_prefer_ceil" => ratio >= 0.5,
                        "floor" => false,
                        _ => true,
                    };
                vec![f64::from(!up), f64::from(up)]
            }
            Kernel::Linear { antialias: false } => vec![1.0 - ratio, ratio],
            Kernel::Linear { antialias: true } => {
                let s = scale.min(1.0);
                let start = (-1.0 / s).floor() as i64 + 1;
                normalized(
                    (start..2 - start)
                        .map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0))
                        .collect(),
                )
            }
            Kernel::Cubic {
                a,
                antialias: false,
            } => {
                let r = ratio;
                let q = 1.0 - r;
                vec![
                    ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
                    ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                    ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
                    ((a * (q + 1.0) - 5.0 * a) * (q + 1.0) + 8.0 * a) * (q + 1.0) - 4.0 * a,
                ]
            }
            Kernel::Cubic { a, antialias: true } => {
                let s = scale.min(1.0);
                let start = (-2.0 / s).floor() as i64 + 1;
                let k = |x: f64| {
                    let x = x.abs();
                    let (x2, x3) = (x * x, x * x * x);
                    if x <= 1.0 {
                        (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
                    } else if x < 2.0 {
                        a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
                    } else {
                        0.0
                    }
                };
                normalized(
                    (start..2 - start)
                        .map(|i| k(s * (i as f64 - ratio)))
                        .collect(),
                )
            }
        }
    }
}

fn normalized(c: Vec<f64>) -> Vec<f64> {
    let s: f64 = c.iter().sum();
    c.into_iter().map(|v| v / s).collect()
}

/// `math.isclose` with its default tolerances (the reference uses it to
/// skip axes that are not resized).
pub fn isclose(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Resampling parameters of one axis.
#[derive(Clone, Copy, Debug)]
pub struct Axis<'s> {
    /// Input extent.
    pub n_in: u64,
    /// Scale factor.
    pub scale: f64,
    /// Output extent.
    pub out: u64,
    /// Region of interest `(start, end)` for `tf_crop_and_resize`.
    pub roi: (f64, f64),
    /// `coordinate_transformation_mode`.
    pub ctm: &'s str,
    /// The kernel.
    pub kernel: Kernel<'s>,
    /// `exclude_outside`.
    pub exclude_outside: bool,
}

/// Per output index: `(clamped source index, coefficient)` taps, or `None`
/// for an index outside the crop of `tf_crop_and_resize` (it takes the
/// extrapolation value).
pub type Taps = Vec<Option<Vec<(u64, f64)>>>;

impl Axis<'_> {
    /// The taps of every output index.
    pub fn taps(&self) -> Taps {
        let inw = self.n_in as f64;
        let outw = self.scale * inw;
        (0..self.out)
            .map(|y| {
                let y = y as f64;
                let x = match self.ctm {
                    "align_corners" if outw == 1.0 => 0.0,
                    "align_corners" => y * (inw - 1.0) / (outw - 1.0),
                    "asymmetric" => y / self.scale,
                    "tf_crop_and_resize" => {
                        let (r0, r1) = self.roi;
                        let x = if outw == 1.0 {
                            (r1 - r0) * (inw - 1.0) / 2.0
                        } else {
                            y * (r1 - r0) * (inw - 1.0) / (outw - 1.0)
                        };
                        let x = x + r0 * (inw - 1.0);
                        if x < 0.0 || x > inw - 1.0 {
                            return None;
                        }
                        x
                    }
                    "pytorch_half_pixel" if outw == 1.0 => -0.5,
                    "pytorch_half_pixel" | "half_pixel" => (y + 0.5) / self.scale - 0.5,
                    _ => {
                        // half_pixel_symmetric
                        let adjustment = self.out as f64 / outw;
                        let offset = inw / 2.0 * (1.0 - adjustment);
                        offset + (y + 0.5) / self.scale - 0.5
                    }
                };
                let fl = x.floor();
                let ratio = if x == fl { 1.0 } else { x - fl };
                let mut c = self.kernel.coeffs(ratio, self.scale);
                let n = c.len() as i64;
                let start = (x - ratio) as i64 + 1 - n / 2;
                let last = self.n_in as i64 - 1;
                if self.exclude_outside {
                    for (j, cj) in c.iter_mut().enumerate() {
                        let i = start + j as i64;
                        if i < 0 || i > last {
                            *cj = 0.0;
                        }
                    }
                    let s: f64 = c.iter().sum();
                    let s = if s == 0.0 { 1.0 } else { s };
                    c.iter_mut().for_each(|cj| *cj /= s);
                }
                Some(
                    c.into_iter()
                        .enumerate()
                        .map(|(j, cj)| ((start + j as i64).clamp(0, last.max(0)) as u64, cj))
                        .collect(),
                )
            })
            .collect()
    }
}
