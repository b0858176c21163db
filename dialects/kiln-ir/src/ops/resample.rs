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
//!
//! It also holds the geometry of `nn.grid_sample` ([`GridAxis`]): grid
//! coordinates are run-time data there, so that geometry is written once
//! against the scalar arithmetic [`Arith`], which the interpreter runs on
//! f64 values ([`Exact`]) and the lowering implements by emitting MLIR
//! `arith` ops. The Keys cubic coefficients ([`cubic_coeffs`]) serve both
//! ops.

crate::attr_enum! {
    /// `nn.resize`'s `mode`: which interpolation kernel.
    pub enum ResizeMode {
        /// The nearest sample, rounded by `nearest_mode`.
        Nearest = "nearest",
        /// (Bi/tri)linear.
        Linear = "linear",
        /// Keys cubic with `cubic_coeff_a`.
        Cubic = "cubic",
    }
}

crate::attr_enum! {
    /// `nn.resize`'s `nearest_mode`: how `nearest` rounds a fractional
    /// source coordinate.
    pub enum NearestMode {
        /// Half-way goes down.
        RoundPreferFloor = "round_prefer_floor",
        /// Half-way goes up.
        RoundPreferCeil = "round_prefer_ceil",
        /// Always down.
        Floor = "floor",
        /// Always up.
        Ceil = "ceil",
    }
}

crate::attr_enum! {
    /// `nn.resize`'s `coordinate_transformation_mode`: how an output index
    /// maps to a source coordinate.
    pub enum CoordinateTransform {
        /// `(y + 0.5) / scale - 0.5`.
        HalfPixel = "half_pixel",
        /// Half-pixel, centred on the resized extent.
        HalfPixelSymmetric = "half_pixel_symmetric",
        /// Half-pixel, but -0.5 for an output extent of 1 (as PyTorch).
        PytorchHalfPixel = "pytorch_half_pixel",
        /// Corner pixels aligned: `y * (in - 1) / (out - 1)`.
        AlignCorners = "align_corners",
        /// `y / scale`.
        Asymmetric = "asymmetric",
        /// Within the region of interest; outside it, the extrapolation value.
        TfCropAndResize = "tf_crop_and_resize",
    }
}

/// Interpolation kernel and its parameters.
#[derive(Clone, Copy, Debug)]
pub enum Kernel {
    /// `nearest` with its `nearest_mode`.
    Nearest(NearestMode),
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

impl Kernel {
    /// The coefficients for fractional position `ratio` at `scale` (the
    /// reference's `get_*_coeffs`).
    pub fn coeffs(self, ratio: f64, scale: f64) -> Vec<f64> {
        match self {
            Kernel::Nearest(mode) => {
                let up = ratio == 1.0
                    || match mode {
                        NearestMode::RoundPreferFloor => ratio > 0.5,
                        NearestMode::RoundPreferCeil => ratio >= 0.5,
                        NearestMode::Floor => false,
                        NearestMode::Ceil => true,
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
            } => cubic_coeffs(&mut Exact, a, &ratio).to_vec(),
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
pub struct Axis {
    /// Input extent.
    pub n_in: u64,
    /// Scale factor.
    pub scale: f64,
    /// Output extent.
    pub out: u64,
    /// Region of interest `(start, end)` for `tf_crop_and_resize`.
    pub roi: (f64, f64),
    /// `coordinate_transformation_mode`.
    pub ctm: CoordinateTransform,
    /// The kernel.
    pub kernel: Kernel,
    /// `exclude_outside`.
    pub exclude_outside: bool,
}

/// Per output index: `(clamped source index, coefficient)` taps, or `None`
/// for an index outside the crop of `tf_crop_and_resize` (it takes the
/// extrapolation value).
pub type Taps = Vec<Option<Vec<(u64, f64)>>>;

impl Axis {
    /// The taps of every output index.
    pub fn taps(&self) -> Taps {
        let inw = self.n_in as f64;
        let outw = self.scale * inw;
        (0..self.out)
            .map(|y| {
                let y = y as f64;
                let x = match self.ctm {
                    CoordinateTransform::AlignCorners if outw == 1.0 => 0.0,
                    CoordinateTransform::AlignCorners => y * (inw - 1.0) / (outw - 1.0),
                    CoordinateTransform::Asymmetric => y / self.scale,
                    CoordinateTransform::TfCropAndResize => {
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
                    CoordinateTransform::PytorchHalfPixel if outw == 1.0 => -0.5,
                    CoordinateTransform::PytorchHalfPixel | CoordinateTransform::HalfPixel => {
                        (y + 0.5) / self.scale - 0.5
                    }
                    CoordinateTransform::HalfPixelSymmetric => {
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

/// Scalar arithmetic that shared geometry is written against: [`Exact`]
/// computes on f64 values (the interpreter, and compile-time constants);
/// the lowering implements it by emitting MLIR ops on f64 SSA values, so
/// both execute the same sequence of operations.
pub trait Arith {
    /// A float (f64) value.
    type F: Clone;
    /// A predicate.
    type B: Clone;
    /// A constant.
    fn lit(&mut self, v: f64) -> Self::F;
    /// `a + b`.
    fn add(&mut self, a: &Self::F, b: &Self::F) -> Self::F;
    /// `a - b`.
    fn sub(&mut self, a: &Self::F, b: &Self::F) -> Self::F;
    /// `a * b`.
    fn mul(&mut self, a: &Self::F, b: &Self::F) -> Self::F;
    /// `a / b`.
    fn div(&mut self, a: &Self::F, b: &Self::F) -> Self::F;
    /// Rounds towards negative infinity.
    fn floor(&mut self, a: &Self::F) -> Self::F;
    /// Rounds towards zero.
    fn trunc(&mut self, a: &Self::F) -> Self::F;
    /// Rounds half to even.
    fn rint(&mut self, a: &Self::F) -> Self::F;
    /// Rounds to the nearest f32 value (kept as f64).
    fn to_f32(&mut self, a: &Self::F) -> Self::F;
    /// `a < b` (false when either is NaN).
    fn lt(&mut self, a: &Self::F, b: &Self::F) -> Self::B;
    /// `a || b`.
    fn or(&mut self, a: &Self::B, b: &Self::B) -> Self::B;
    /// `a && b`.
    fn and(&mut self, a: &Self::B, b: &Self::B) -> Self::B;
    /// `c ? t : f`.
    fn select(&mut self, c: &Self::B, t: &Self::F, f: &Self::F) -> Self::F;
}

/// [`Arith`] on f64 values.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exact;

impl Arith for Exact {
    type F = f64;
    type B = bool;
    fn lit(&mut self, v: f64) -> f64 {
        v
    }
    fn add(&mut self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn sub(&mut self, a: &f64, b: &f64) -> f64 {
        a - b
    }
    fn mul(&mut self, a: &f64, b: &f64) -> f64 {
        a * b
    }
    fn div(&mut self, a: &f64, b: &f64) -> f64 {
        a / b
    }
    fn floor(&mut self, a: &f64) -> f64 {
        a.floor()
    }
    fn trunc(&mut self, a: &f64) -> f64 {
        a.trunc()
    }
    fn rint(&mut self, a: &f64) -> f64 {
        a.round_ties_even()
    }
    fn to_f32(&mut self, a: &f64) -> f64 {
        f64::from(*a as f32)
    }
    fn lt(&mut self, a: &f64, b: &f64) -> bool {
        a < b
    }
    fn or(&mut self, a: &bool, b: &bool) -> bool {
        *a || *b
    }
    fn and(&mut self, a: &bool, b: &bool) -> bool {
        *a && *b
    }
    fn select(&mut self, c: &bool, t: &f64, f: &f64) -> f64 {
        if *c {
            *t
        } else {
            *f
        }
    }
}

/// The Keys cubic convolution coefficients with parameter `alpha` of the
/// taps at offsets -1, 0, 1, 2 from `floor(x)`, for `r = x - floor(x)`
/// (the ONNX reference's `get_cubic_coeffs`, in its order of operations).
pub fn cubic_coeffs<A: Arith>(m: &mut A, alpha: f64, r: &A::F) -> [A::F; 4] {
    let one = m.lit(1.0);
    let q = m.sub(&one, r);
    // ((alpha * (t + 1) - 5 alpha) * (t + 1) + 8 alpha) * (t + 1) - 4 alpha
    let outer = |m: &mut A, t: &A::F| {
        let t1 = m.add(t, &one);
        let (a, a5, a8, a4) = (
            m.lit(alpha),
            m.lit(5.0 * alpha),
            m.lit(8.0 * alpha),
            m.lit(4.0 * alpha),
        );
        let v = m.mul(&a, &t1);
        let v = m.sub(&v, &a5);
        let v = m.mul(&v, &t1);
        let v = m.add(&v, &a8);
        let v = m.mul(&v, &t1);
        m.sub(&v, &a4)
    };
    // ((alpha + 2) * t - (alpha + 3)) * t * t + 1
    let inner = |m: &mut A, t: &A::F| {
        let (a2, a3) = (m.lit(alpha + 2.0), m.lit(alpha + 3.0));
        let v = m.mul(&a2, t);
        let v = m.sub(&v, &a3);
        let v = m.mul(&v, t);
        let v = m.mul(&v, t);
        m.add(&v, &one)
    };
    [outer(m, r), inner(m, r), inner(m, &q), outer(m, &q)]
}

crate::attr_enum! {
    /// `nn.grid_sample`'s interpolation `mode` (the importer maps ONNX's
    /// opset-16 spellings `bilinear`/`bicubic` to these).
    pub enum GridMode {
        /// `nearest`: the sample at the coordinate rounded half to even.
        Nearest = "nearest",
        /// `linear`: two taps per axis.
        Linear = "linear",
        /// `cubic`: four taps per axis, Keys cubic with `alpha = -0.75`.
        Cubic = "cubic",
    }
}

crate::attr_enum! {
    /// `nn.grid_sample`'s `padding_mode`: what samples outside the input read.
    pub enum GridPadding {
        /// Zero.
        Zeros = "zeros",
        /// The nearest border sample.
        Border = "border",
        /// The sample mirrored at the borders.
        Reflection = "reflection",
    }
}

/// One tap of a grid sample along one axis.
#[derive(Clone, Debug)]
pub struct GridTap<F, B> {
    /// The source index, integral and within `[0, extent - 1]` (except for
    /// a NaN coordinate: consumers clamp again when they turn it into an
    /// address).
    pub index: F,
    /// Its weight (1 for `nearest`).
    pub weight: F,
    /// With `zeros` padding, whether the unclamped index lies inside the
    /// input; outside taps read 0 instead of the sample at `index`.
    pub inside: Option<B>,
}

/// The geometry of one spatial axis of `nn.grid_sample`, following the ONNX
/// reference (`onnx/reference/ops/op_grid_sample.py`) step by step: a
/// normalized grid coordinate in `[-1, 1]` is unnormalized (computed in f32
/// when the grid is f32, and always held as an f32 value, as the reference
/// does), rounded for `nearest`, moved inside the borders with `border` or
/// `reflection` padding, and split into taps whose indices are mapped into
/// the input by the padding again.
#[derive(Clone, Copy, Debug)]
pub struct GridAxis {
    /// The input extent of this axis.
    pub extent: u64,
    /// Interpolation mode.
    pub mode: GridMode,
    /// Padding mode.
    pub padding: GridPadding,
    /// `align_corners`: -1 and 1 name the centres of the corner samples
    /// rather than their outer edges.
    pub align_corners: bool,
    /// Whether the grid's arithmetic is f32 (it is f64 for f64 grids).
    pub f32_grid: bool,
}

impl GridAxis {
    /// One axis description per spatial extent of the input.
    pub fn per_extent(
        extents: &[u64],
        mode: GridMode,
        padding: GridPadding,
        align_corners: bool,
        f32_grid: bool,
    ) -> Vec<GridAxis> {
        extents
            .iter()
            .map(|&extent| GridAxis {
                extent,
                mode,
                padding,
                align_corners,
                f32_grid,
            })
            .collect()
    }

    /// The reflection borders: `[0, d - 1]` with `align_corners`, else
    /// `[-0.5, d - 0.5]`.
    pub fn bounds(&self) -> (f64, f64) {
        let d = self.extent as f64;
        if self.align_corners {
            (0.0, d - 1.0)
        } else {
            (-0.5, d - 0.5)
        }
    }

    fn step<A: Arith>(&self, m: &mut A, v: A::F) -> A::F {
        if self.f32_grid {
            m.to_f32(&v)
        } else {
            v
        }
    }

    /// The input coordinate of normalized coordinate `g`.
    pub fn unnormalize<A: Arith>(&self, m: &mut A, g: &A::F) -> A::F {
        let d = self.extent as f64;
        let one = m.lit(1.0);
        let two = m.lit(2.0);
        let t = m.add(g, &one);
        let t = self.step(m, t);
        let x = if self.align_corners {
            // (g + 1) / 2 * (d - 1)
            let t = m.div(&t, &two);
            let t = self.step(m, t);
            let dm1 = m.lit(d - 1.0);
            m.mul(&t, &dm1)
        } else {
            // ((g + 1) * d - 1) / 2
            let dd = m.lit(d);
            let t = m.mul(&t, &dd);
            let t = self.step(m, t);
            let t = m.sub(&t, &one);
            let t = self.step(m, t);
            m.div(&t, &two)
        };
        m.to_f32(&x)
    }

    /// `x` reflected at `lo` and `hi` until it lies between them (the
    /// reference's `_gs_reflect`, in f64).
    pub fn reflect<A: Arith>(m: &mut A, x: &A::F, lo: f64, hi: f64) -> A::F {
        let range = hi - lo;
        if range <= 0.0 {
            // A single sample: every coordinate reflects onto it.
            return m.lit(lo);
        }
        let (l, h, rng) = (m.lit(lo), m.lit(hi), m.lit(range));
        let below = m.lt(x, &l);
        let above = m.lt(&h, x);
        let (dlo, dhi) = (m.sub(&l, x), m.sub(x, &h));
        let dx = m.select(&below, &dlo, &dhi);
        let q = m.div(&dx, &rng);
        let k = m.trunc(&q);
        let kr = m.mul(&k, &rng);
        let r = m.sub(&dx, &kr);
        // parity of k: k - 2 floor(k / 2) is 0 or 1
        let (half, two, one) = (m.lit(0.5), m.lit(2.0), m.lit(1.0));
        let kh = m.mul(&k, &half);
        let kh = m.floor(&kh);
        let kh2 = m.mul(&kh, &two);
        let odd = m.sub(&k, &kh2);
        let even = m.sub(&one, &odd);
        // From the low border when (below, even k) or (above, odd k).
        let s = m.select(&below, &odd, &even);
        let from_lo = m.lt(&s, &half);
        let (vl, vh) = (m.add(&l, &r), m.sub(&h, &r));
        let v = m.select(&from_lo, &vl, &vh);
        let out = m.or(&below, &above);
        m.select(&out, &v, x)
    }

    /// The padded source index of integral coordinate `i` (the reference's
    /// `_pixel_at_array`).
    fn pixel<A: Arith>(&self, m: &mut A, i: &A::F, weight: A::F) -> GridTap<A::F, A::B> {
        let (lo, hi) = self.bounds();
        let last = self.extent.saturating_sub(1) as f64;
        let clamp = |m: &mut A, v: &A::F| {
            let (z, l) = (m.lit(0.0), m.lit(last));
            let below = m.lt(v, &z);
            let above = m.lt(&l, v);
            let v = m.select(&above, &l, v);
            m.select(&below, &z, &v)
        };
        match self.padding {
            GridPadding::Zeros => {
                let (a, b) = (m.lit(-0.5), m.lit(last + 0.5));
                let ge = m.lt(&a, i);
                let le = m.lt(i, &b);
                let inside = m.and(&ge, &le);
                GridTap {
                    index: clamp(m, i),
                    weight,
                    inside: Some(inside),
                }
            }
            GridPadding::Border => GridTap {
                index: clamp(m, i),
                weight,
                inside: None,
            },
            GridPadding::Reflection => {
                let r = Self::reflect(m, i, lo, hi);
                let r = m.trunc(&r);
                GridTap {
                    index: clamp(m, &r),
                    weight,
                    inside: None,
                }
            }
        }
    }

    /// The taps of normalized coordinate `g`: one for `nearest`, two for
    /// `linear`, four for `cubic`.
    pub fn taps<A: Arith>(&self, m: &mut A, g: &A::F) -> Vec<GridTap<A::F, A::B>> {
        let (lo, hi) = self.bounds();
        let mut x = self.unnormalize(m, g);
        if self.mode == GridMode::Nearest {
            x = m.rint(&x);
        }
        match self.padding {
            GridPadding::Zeros => {}
            GridPadding::Border => {
                let (l, h) = (m.lit(lo), m.lit(hi));
                let below = m.lt(&x, &l);
                let above = m.lt(&h, &x);
                let out = m.or(&below, &above);
                let (z, last) = (m.lit(0.0), m.lit(self.extent as f64 - 1.0));
                let lt0 = m.lt(&x, &z);
                let gtl = m.lt(&last, &x);
                let c = m.select(&gtl, &last, &x);
                let c = m.select(&lt0, &z, &c);
                x = m.select(&out, &c, &x);
            }
            GridPadding::Reflection => {
                let r = Self::reflect(m, &x, lo, hi);
                x = m.to_f32(&r);
            }
        }
        match self.mode {
            GridMode::Nearest => {
                // The reference truncates to int32.
                let i = m.trunc(&x);
                let one = m.lit(1.0);
                vec![self.pixel(m, &i, one)]
            }
            GridMode::Linear => {
                let x0 = m.floor(&x);
                let f = m.sub(&x, &x0);
                let one = m.lit(1.0);
                let w0 = m.sub(&one, &f);
                let x1 = m.add(&x0, &one);
                vec![self.pixel(m, &x0, w0), self.pixel(m, &x1, f)]
            }
            GridMode::Cubic => {
                let x0 = m.floor(&x);
                let f = m.sub(&x, &x0);
                let c = cubic_coeffs(m, -0.75, &f);
                c.into_iter()
                    .enumerate()
                    .map(|(j, w)| {
                        let off = m.lit(j as f64 - 1.0);
                        let i = m.add(&x0, &off);
                        self.pixel(m, &i, w)
                    })
                    .collect()
            }
        }
    }
}

crate::attr_enum! {
    /// `keep_aspect_ratio_policy` of `nn.resize` with `sizes`.
    pub enum AspectPolicy {
        /// Each axis gets its size.
        Stretch = "stretch",
        /// One scale, the smallest of `sizes[i] / input[i]`.
        NotLarger = "not_larger",
        /// One scale, the largest.
        NotSmaller = "not_smaller",
    }
}

/// The per-axis parameters of `nn.resize` on a static input: scale, output
/// extent and region of interest of every axis (`1.0`, the input extent and
/// `(0, 1)` on axes not resized).
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeExtents {
    /// Scale per axis.
    pub scale: Vec<f64>,
    /// Output extent per axis.
    pub out: Vec<u64>,
    /// Region of interest per axis (`tf_crop_and_resize`).
    pub roi: Vec<(f64, f64)>,
}

/// Resolves `nn.resize`'s `scales` or `sizes` (exactly one given) over
/// `axes` of an input of static `shape`: the one rule shape inference, the
/// interpreter and the lowering use. `roi` (starts then ends, one pair per
/// axis) counts only when `crop` (`tf_crop_and_resize`); absent, it is
/// `(0, 1)`. Scaled extents are `floor(n * scale * roi length)`; with
/// `sizes` and a keep-aspect policy the extents are `n * scale` rounded half
/// up, as ONNX's reference does.
pub fn resize_extents(
    shape: &[u64],
    axes: &[usize],
    crop: bool,
    roi: Option<&[f64]>,
    scales: Option<&[f64]>,
    sizes: Option<&[i64]>,
    policy: AspectPolicy,
) -> Result<ResizeExtents, String> {
    let r = shape.len();
    let mut ex = ResizeExtents {
        scale: vec![1.0; r],
        out: shape.to_vec(),
        roi: vec![(0.0, 1.0); r],
    };
    if let (true, Some(v)) = (crop, roi) {
        if v.len() != 2 * axes.len() {
            return Err(format!(
                "roi has {} entries for {} axes",
                v.len(),
                axes.len()
            ));
        }
        for (i, &a) in axes.iter().enumerate() {
            ex.roi[a] = (v[i], v[i + axes.len()]);
        }
    }
    let extent = |v: f64| -> Result<u64, String> {
        if !(0.0..1e18).contains(&v) {
            return Err(format!("resized extent {v} is out of range"));
        }
        Ok(v.floor() as u64)
    };
    match (scales, sizes) {
        (Some(s), None) => {
            if s.len() != axes.len() {
                return Err(format!(
                    "scales has {} entries for {} axes",
                    s.len(),
                    axes.len()
                ));
            }
            for (i, &a) in axes.iter().enumerate() {
                if !(s[i] > 0.0 && s[i].is_finite()) {
                    return Err(format!("scales must be positive, got {}", s[i]));
                }
                ex.scale[a] = s[i];
                let len = if crop { ex.roi[a].1 - ex.roi[a].0 } else { 1.0 };
                ex.out[a] = extent((shape[a] as f64 * s[i] * len).max(0.0))?;
            }
        }
        (None, Some(sz)) => {
            if sz.len() != axes.len() || sz.iter().any(|&v| v < 0) {
                return Err(format!("sizes {sz:?} do not fit {} axes", axes.len()));
            }
            for (i, &a) in axes.iter().enumerate() {
                ex.scale[a] = sz[i] as f64 / shape[a] as f64;
            }
            if policy == AspectPolicy::Stretch {
                for (i, &a) in axes.iter().enumerate() {
                    ex.out[a] = sz[i] as u64;
                }
            } else {
                let it = axes.iter().map(|&a| ex.scale[a]);
                let s = if policy == AspectPolicy::NotLarger {
                    it.fold(f64::INFINITY, f64::min)
                } else {
                    it.fold(f64::NEG_INFINITY, f64::max)
                };
                for &a in axes {
                    ex.scale[a] = s;
                    ex.out[a] = extent(s * shape[a] as f64 + 0.5)?;
                }
            }
        }
        (Some(_), Some(_)) => return Err("give either scales or sizes, not both".into()),
        (None, None) => return Err("nn.resize needs scales or sizes".into()),
    }
    Ok(ex)
}
