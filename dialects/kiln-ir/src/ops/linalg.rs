//! Contractions: `nn.matmul`, `nn.gemm`, `nn.conv`, `nn.conv_transpose`,
//! `nn.einsum`. Semantics follow the ONNX operators of the same name.

use super::infer::{bail, broadcast_shapes, same_dtype, InferCtx, InferError};
use super::{attr, Arity, AttrDefault, OpDef, Traits};
use crate::attr::{AttrEnum, AttrKind};
use crate::types::{Dim, TensorType};
use std::collections::BTreeMap;

type R = Result<Vec<TensorType>, InferError>;

/// Checks that two contracted dims agree where both are static.
fn check_contract(a: &Dim, b: &Dim, what: &str) -> Result<(), InferError> {
    if let (Dim::Static(x), Dim::Static(y)) = (a, b) {
        if x != y {
            bail!("{what}: contracted dimensions differ ({x} vs {y})");
        }
    }
    Ok(())
}

fn infer_matmul(ctx: &InferCtx<'_>) -> R {
    let dt = same_dtype(ctx)?;
    let a = ctx.input(0)?;
    let b = ctx.input(1)?;
    if a.rank() == 0 || b.rank() == 0 {
        bail!("nn.matmul operands must have rank >= 1, got {a} and {b}");
    }
    // Rank-1 operands are promoted (a: prepend 1, b: append 1) and the
    // promoted dimension is dropped from the result, as in numpy.matmul.
    let ad: Vec<Dim> = if a.rank() == 1 {
        vec![Dim::Static(1), a.dims[0].clone()]
    } else {
        a.dims.clone()
    };
    let bd: Vec<Dim> = if b.rank() == 1 {
        vec![b.dims[0].clone(), Dim::Static(1)]
    } else {
        b.dims.clone()
    };
    let (am, ak) = (&ad[ad.len() - 2], &ad[ad.len() - 1]);
    let (bk, bn) = (&bd[bd.len() - 2], &bd[bd.len() - 1]);
    check_contract(ak, bk, "nn.matmul")?;
    let mut dims = broadcast_shapes([&ad[..ad.len() - 2], &bd[..bd.len() - 2]])?;
    if a.rank() != 1 {
        dims.push(am.clone());
    }
    if b.rank() != 1 {
        dims.push(bn.clone());
    }
    Ok(vec![TensorType::new(dt, dims)])
}

/// `nn.matmul %a, %b`: batched matrix product with broadcasting batch dims.
pub const MATMUL: OpDef = OpDef {
    name: "nn.matmul",
    summary: "Matrix product with NumPy matmul broadcasting",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_matmul,
};

fn infer_gemm(ctx: &InferCtx<'_>) -> R {
    let dt = same_dtype(ctx)?;
    let a = ctx.input(0)?;
    let b = ctx.input(1)?;
    if a.rank() != 2 || b.rank() != 2 {
        bail!("nn.gemm operands must be matrices, got {a} and {b}");
    }
    let (m, ka) = if ctx.bool("trans_a")? {
        (&a.dims[1], &a.dims[0])
    } else {
        (&a.dims[0], &a.dims[1])
    };
    let (kb, n) = if ctx.bool("trans_b")? {
        (&b.dims[1], &b.dims[0])
    } else {
        (&b.dims[0], &b.dims[1])
    };
    check_contract(ka, kb, "nn.gemm")?;
    let out = vec![m.clone(), n.clone()];
    if let Some(c) = ctx.opt_input(2) {
        // C must broadcast unidirectionally to [M, N].
        let bc = broadcast_shapes([out.as_slice(), c.dims.as_slice()])?;
        if bc.len() != 2 {
            bail!("bias {c} does not broadcast to a matrix");
        }
    }
    let _ = dt;
    Ok(vec![TensorType::new(a.dtype, out)])
}

/// `nn.gemm %a, %b, %c?`: alpha * op(A) * op(B) + beta * C.
pub const GEMM: OpDef = OpDef {
    name: "nn.gemm",
    summary: "alpha * A' * B' + beta * C with optional transposes and a broadcast bias",
    inputs: Arity::range(2, 3),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("alpha", AttrKind::Float, AttrDefault::Float(1.0)),
        attr("beta", AttrKind::Float, AttrDefault::Float(1.0)),
        attr("trans_a", AttrKind::Bool, AttrDefault::Bool(false)),
        attr("trans_b", AttrKind::Bool, AttrDefault::Bool(false)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_gemm,
};

crate::attr_enum! {
    /// `auto_pad` of convolutions and pools: how the padding is chosen.
    pub enum AutoPad {
        /// The explicit `pads` attribute.
        NotSet = "NOTSET",
        /// No padding.
        Valid = "VALID",
        /// Output extent `ceil(n / stride)`, the odd pad unit at the end.
        SameUpper = "SAME_UPPER",
        /// As `SAME_UPPER`, the odd pad unit at the beginning.
        SameLower = "SAME_LOWER",
    }
}

/// Spatial attributes shared by convolutions and pools, with defaults
/// applied and lengths checked against the number of spatial dims.
pub struct Window {
    /// Kernel extent per spatial dim.
    pub kernel: Vec<u64>,
    /// Stride per spatial dim.
    pub strides: Vec<u64>,
    /// Dilation per spatial dim.
    pub dilations: Vec<u64>,
    /// Padding: all begins, then all ends.
    pub pads: Vec<u64>,
    /// How the padding is chosen.
    pub auto_pad: AutoPad,
    /// Round the output size up instead of down (pools only).
    pub ceil_mode: bool,
}

fn positive(v: Vec<i64>, what: &str) -> Result<Vec<u64>, InferError> {
    v.into_iter()
        .map(|x| {
            if x <= 0 {
                Err(InferError(format!("{what} must be positive, got {x}")))
            } else {
                Ok(x as u64)
            }
        })
        .collect()
}

impl Window {
    /// Reads the window attributes for `spatial` spatial dims. `kernel` is
    /// the kernel extent when it comes from a weight rather than attributes.
    pub fn read(
        ctx: &InferCtx<'_>,
        spatial: usize,
        kernel: Option<Vec<u64>>,
    ) -> Result<Window, InferError> {
        let kernel = match (ctx.ints("kernel_shape")?, kernel) {
            (Some(k), from_w) => {
                let k = positive(k, "kernel_shape")?;
                if let Some(w) = from_w {
                    if w != k {
                        bail!("kernel_shape {k:?} disagrees with the weight's spatial dims {w:?}");
                    }
                }
                k
            }
            (None, Some(w)) => w,
            (None, None) => bail!("attribute 'kernel_shape' is required"),
        };
        let get = |name: &str, n: usize, dflt: i64| -> Result<Vec<i64>, InferError> {
            let v = ctx.ints(name)?.unwrap_or_else(|| vec![dflt; n]);
            if v.len() != n {
                bail!("'{name}' has {} entries, expected {n}", v.len());
            }
            Ok(v)
        };
        if kernel.len() != spatial {
            bail!("kernel has {} dims, expected {spatial}", kernel.len());
        }
        let strides = positive(get("strides", spatial, 1)?, "strides")?;
        let dilations = positive(get("dilations", spatial, 1)?, "dilations")?;
        let pads = get("pads", 2 * spatial, 0)?;
        if let Some(p) = pads.iter().find(|&&p| p < 0) {
            bail!("pads must be non-negative, got {p}");
        }
        let auto_pad = ctx.enum_attr("auto_pad")?;
        let ceil_mode = ctx.def.attr_spec("ceil_mode").is_some() && ctx.bool("ceil_mode")?;
        Ok(Window {
            kernel,
            strides,
            dilations,
            pads: pads.into_iter().map(|p| p as u64).collect(),
            auto_pad,
            ceil_mode,
        })
    }

    /// The begin and end padding of spatial dim `i` for input extent `n`,
    /// with `auto_pad` resolved — the one definition the interpreter, the
    /// lowering and the kernels use. `SAME_*` pads so that the output extent
    /// is `ceil(n / stride)`, the odd unit at the end for `SAME_UPPER` and at
    /// the beginning for `SAME_LOWER`; `VALID` pads nothing; `NOTSET` takes
    /// the `pads` attribute.
    pub fn resolved_pads(&self, i: usize, n: u64) -> (u64, u64) {
        let eff = (self.kernel[i] - 1).saturating_mul(self.dilations[i]) + 1;
        match self.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => {
                let out = n.div_ceil(self.strides[i]).max(1);
                let total = ((out - 1).saturating_mul(self.strides[i]) + eff).saturating_sub(n);
                let half = total / 2;
                if self.auto_pad == AutoPad::SameUpper {
                    (half, total - half)
                } else {
                    (total - half, half)
                }
            }
            AutoPad::Valid => (0, 0),
            AutoPad::NotSet => (self.pads[i], self.pads[i + self.kernel.len()]),
        }
    }

    /// The begin padding of spatial dim `i` of a transposed convolution with
    /// input extent `n`, `output_padding` `out_pad` and output extent `out`
    /// (`requested`: set by `output_shape`): with `output_shape` or `SAME_*`
    /// the total padding is what the full extent `stride * (n - 1) +
    /// out_pad + effective kernel` leaves over `out` (clamped at zero), its
    /// odd unit at the end for `SAME_UPPER` and at the beginning otherwise;
    /// `VALID` pads nothing; `NOTSET` takes the `pads` attribute. Only the
    /// begin padding matters once the output extent is fixed. The lowering
    /// and `conv-transpose-to-conv` use it.
    pub fn transposed_begin_pad(
        &self,
        i: usize,
        n: u64,
        out_pad: u64,
        out: u64,
        requested: bool,
    ) -> u64 {
        let eff = (self.kernel[i] - 1).saturating_mul(self.dilations[i]) + 1;
        let full = if n == 0 {
            0
        } else {
            self.strides[i]
                .saturating_mul(n - 1)
                .saturating_add(out_pad)
                .saturating_add(eff)
        };
        let same = matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
        if requested || same {
            let total = full.saturating_sub(out);
            if self.auto_pad == AutoPad::SameUpper {
                total / 2
            } else {
                total - total / 2
            }
        } else if self.auto_pad == AutoPad::Valid {
            0
        } else {
            self.pads[i]
        }
    }

    /// Output extent of spatial dim `i` for input extent `d`.
    pub fn out_dim(&self, i: usize, d: &Dim) -> Result<Dim, InferError> {
        let Dim::Static(n) = d else {
            return Ok(Dim::Unknown);
        };
        let overflow = || InferError("window arithmetic overflows".into());
        let s = self.strides[i];
        let eff = (self.kernel[i] - 1)
            .checked_mul(self.dilations[i])
            .and_then(|x| x.checked_add(1))
            .ok_or_else(overflow)?;
        Ok(Dim::Static(match self.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => n.div_ceil(s),
            AutoPad::Valid => {
                if *n < eff {
                    bail!("input extent {n} is smaller than the kernel window {eff}");
                }
                (n - eff) / s + 1
            }
            _ => {
                let begin = self.pads[i];
                let padded = n
                    .checked_add(begin)
                    .and_then(|x| x.checked_add(self.pads[i + self.kernel.len()]))
                    .ok_or_else(overflow)?;
                if padded < eff {
                    bail!("padded input extent {padded} is smaller than the kernel window {eff}");
                }
                let q = padded - eff;
                if self.ceil_mode {
                    let mut o = q.div_ceil(s) + 1;
                    // The last window must start inside the input or left padding.
                    if (o - 1).checked_mul(s).ok_or_else(overflow)? >= n + begin {
                        o -= 1;
                    }
                    o
                } else {
                    q / s + 1
                }
            }
        }))
    }
}

pub(super) const CONV_ATTRS: &[super::AttrSpec] = &[
    attr(
        "auto_pad",
        AttrKind::Enum(AutoPad::NAMES),
        AttrDefault::Str("NOTSET"),
    ),
    attr("dilations", AttrKind::Ints, AttrDefault::Absent),
    attr("group", AttrKind::Int, AttrDefault::Int(1)),
    attr("kernel_shape", AttrKind::Ints, AttrDefault::Absent),
    super::layout::LAYOUT_ATTR,
    attr("pads", AttrKind::Ints, AttrDefault::Absent),
    attr("strides", AttrKind::Ints, AttrDefault::Absent),
];

fn infer_conv_any_layout(ctx: &InferCtx<'_>) -> R {
    super::layout::infer_in_layout(ctx, infer_conv)
}

fn infer_conv(ctx: &InferCtx<'_>) -> R {
    let dt = same_dtype(ctx)?;
    Ok(vec![TensorType::new(dt, conv_dims(ctx, "nn.conv", 2)?)])
}

/// The result dims of a grouped NCHW convolution of operand 0 by operand 1
/// (`[M, C/group, kernel...]`) with an optional per-output-channel bias
/// operand `bias` (`nn.conv`, `quant.conv_integer`).
pub(super) fn conv_dims(ctx: &InferCtx<'_>, op: &str, bias: usize) -> Result<Vec<Dim>, InferError> {
    let x = ctx.input(0)?;
    let w = ctx.input(1)?;
    if x.rank() < 3 || w.rank() != x.rank() {
        bail!("{op} expects input [N, C, spatial...] and weight [M, C/group, kernel...] of equal rank, got {x} and {w}");
    }
    let spatial = x.rank() - 2;
    let group = ctx.int("group")?;
    if group <= 0 {
        bail!("group must be positive, got {group}");
    }
    let group = group as u64;
    if let (Some(c), Some(wc)) = (x.dims[1].as_static(), w.dims[1].as_static()) {
        if c != wc * group {
            bail!("input has {c} channels but weight expects {wc} x group {group}");
        }
    }
    if let Some(m) = w.dims[0].as_static() {
        if m % group != 0 {
            bail!("output channels {m} are not divisible by group {group}");
        }
    }
    if let Some(b) = ctx.opt_input(bias) {
        if b.rank() != 1 {
            bail!("bias must have rank 1, got {b}");
        }
        check_contract(&b.dims[0], &w.dims[0], "bias length vs output channels")?;
    }
    let ks: Option<Vec<u64>> = w.dims[2..].iter().map(Dim::as_static).collect();
    let win = Window::read(ctx, spatial, ks)?;
    let mut dims = vec![x.dims[0].clone(), w.dims[0].clone()];
    for i in 0..spatial {
        dims.push(win.out_dim(i, &x.dims[2 + i])?);
    }
    Ok(dims)
}

/// `nn.conv %x, %w, %b?`: N-d grouped convolution (cross-correlation).
pub const CONV: OpDef = OpDef {
    name: "nn.conv",
    summary:
        "Grouped N-d convolution over [N, C, spatial...] (or [N, spatial..., C]) with optional bias",
    inputs: Arity::range(2, 3),
    outputs: Arity::exactly(1),
    attrs: CONV_ATTRS,
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_conv_any_layout,
};

fn infer_conv_transpose(ctx: &InferCtx<'_>) -> R {
    let dt = same_dtype(ctx)?;
    let x = ctx.input(0)?;
    let w = ctx.input(1)?;
    if x.rank() < 3 || w.rank() != x.rank() {
        bail!("nn.conv_transpose expects input [N, C, spatial...] and weight [C, M/group, kernel...], got {x} and {w}");
    }
    let spatial = x.rank() - 2;
    let group = ctx.int("group")?;
    if group <= 0 {
        bail!("group must be positive, got {group}");
    }
    check_contract(&x.dims[1], &w.dims[0], "input channels vs weight")?;
    let ks: Option<Vec<u64>> = w.dims[2..].iter().map(Dim::as_static).collect();
    let win = Window::read(ctx, spatial, ks)?;
    let out_pad = ctx
        .ints("output_padding")?
        .unwrap_or_else(|| vec![0; spatial]);
    if out_pad.len() != spatial {
        bail!(
            "output_padding has {} entries, expected {spatial}",
            out_pad.len()
        );
    }
    let m = match w.dims[1].as_static() {
        Some(c) => Dim::Static(c * group as u64),
        None => Dim::Unknown,
    };
    let mut dims = vec![x.dims[0].clone(), m];
    if let Some(os) = ctx.ints("output_shape")? {
        let os = if os.len() == x.rank() {
            os[2..].to_vec()
        } else {
            os
        };
        if os.len() != spatial {
            bail!("output_shape has {} entries, expected {spatial}", os.len());
        }
        for v in os {
            if v <= 0 {
                bail!("output_shape entries must be positive, got {v}");
            }
            dims.push(Dim::Static(v as u64));
        }
        return Ok(vec![TensorType::new(dt, dims)]);
    }
    for (i, d) in x.dims[2..].iter().enumerate() {
        let Dim::Static(n) = *d else {
            dims.push(Dim::Unknown);
            continue;
        };
        let overflow = || InferError("window arithmetic overflows".into());
        let eff = (win.kernel[i] - 1)
            .checked_mul(win.dilations[i])
            .and_then(|x| x.checked_add(1))
            .ok_or_else(overflow)?;
        let full = win.strides[i]
            .checked_mul(n.saturating_sub(1))
            .and_then(|x| x.checked_add(out_pad[i].max(0) as u64))
            .and_then(|x| x.checked_add(eff))
            .ok_or_else(overflow)?;
        let o = match win.auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => n.checked_mul(win.strides[i]).ok_or_else(overflow)?,
            // VALID ignores explicit pads.
            "VALID" => full,
            _ => {
                let p = win.pads[i] + win.pads[i + spatial];
                if full <= p {
                    bail!("padding {p} removes the whole output extent {full}");
                }
                full - p
            }
        };
        dims.push(Dim::Static(o));
    }
    Ok(vec![TensorType::new(dt, dims)])
}

/// `nn.conv_transpose %x, %w, %b?`: the gradient of convolution.
pub const CONV_TRANSPOSE: OpDef = OpDef {
    name: "nn.conv_transpose",
    summary: "Transposed (fractionally strided) N-d convolution",
    inputs: Arity::range(2, 3),
    outputs: Arity::exactly(1),
    attrs: &[
        attr(
            "auto_pad",
            AttrKind::Enum(AutoPad::NAMES),
            AttrDefault::Str("NOTSET"),
        ),
        attr("dilations", AttrKind::Ints, AttrDefault::Absent),
        attr("group", AttrKind::Int, AttrDefault::Int(1)),
        attr("kernel_shape", AttrKind::Ints, AttrDefault::Absent),
        attr("output_padding", AttrKind::Ints, AttrDefault::Absent),
        attr("output_shape", AttrKind::Ints, AttrDefault::Absent),
        attr("pads", AttrKind::Ints, AttrDefault::Absent),
        attr("strides", AttrKind::Ints, AttrDefault::Absent),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_conv_transpose,
};

/// A parsed einsum equation: one label list per operand and the output.
///
/// An ellipsis is expanded into labels of its own, so consumers only ever
/// see one label per operand dimension: the broadcast ellipsis has rank `E`
/// (the largest number of dims any operand's `...` covers), its dims are
/// labelled [`ellipsis_label`]`(0..E)` from the left, and an operand whose
/// `...` covers `r` dims gets the last `r` of them (NumPy's right-aligned
/// broadcasting; extent-1 dims broadcast like any other label).
pub struct EinsumSpec {
    /// Labels of each operand, one per dimension.
    pub inputs: Vec<Vec<char>>,
    /// Output labels.
    pub output: Vec<char>,
}

/// The label of dim `k` of the broadcast ellipsis: a private-use character,
/// so it can never collide with a letter of the equation.
pub fn ellipsis_label(k: usize) -> char {
    char::from_u32(0xE000 + (k as u32 % 0x1000)).unwrap_or('\u{E000}')
}

/// The labels of one side of an equation: letters, with at most one `...`
/// (recorded as `None`).
fn einsum_term(t: &str) -> Result<Vec<Option<char>>, InferError> {
    let mut out = Vec::new();
    let mut seen_ellipsis = false;
    let mut rest = t;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("...") {
            if seen_ellipsis {
                bail!("einsum term \"{t}\" has more than one ellipsis");
            }
            seen_ellipsis = true;
            out.push(None);
            rest = r;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            bail!("einsum label '{c}' is not a letter");
        }
        out.push(Some(c));
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

/// Parses an einsum equation such as `bij,bjk->bik` or `...ij,...jk->...ik`
/// for operands of the given ranks (see [`EinsumSpec`] for how an ellipsis
/// expands). An implicit output takes the ellipsis dims, then the letters
/// seen once in alphabetical order (NumPy's rule); an explicit output
/// without `...` sums the ellipsis dims.
pub fn parse_einsum(eq: &str, ranks: &[usize]) -> Result<EinsumSpec, InferError> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<Vec<Option<char>>> =
        lhs.split(',').map(einsum_term).collect::<Result<_, _>>()?;
    if terms.len() != ranks.len() {
        bail!(
            "equation has {} operands but the node has {}",
            terms.len(),
            ranks.len()
        );
    }
    // Dims each operand's ellipsis covers.
    let mut covers = Vec::with_capacity(terms.len());
    for (i, (t, &r)) in terms.iter().zip(ranks).enumerate() {
        let letters = t.iter().flatten().count();
        let has = t.len() != letters;
        if r < letters || (!has && r != letters) {
            bail!("operand #{i} has rank {r} but the equation gives {letters} labels");
        }
        covers.push(r - letters);
    }
    let e_rank = covers.iter().copied().max().unwrap_or(0);
    let expand = |t: &[Option<char>], cover: usize| -> Vec<char> {
        let mut v = Vec::new();
        for l in t {
            match l {
                Some(c) => v.push(*c),
                None => v.extend((e_rank - cover..e_rank).map(ellipsis_label)),
            }
        }
        v
    };
    let inputs: Vec<Vec<char>> = terms
        .iter()
        .zip(&covers)
        .map(|(t, &c)| expand(t, c))
        .collect();
    let output: Vec<char> = match rhs {
        Some(r) => {
            let t = einsum_term(r)?;
            let out = expand(&t, e_rank);
            for (k, c) in out.iter().enumerate() {
                if out[..k].contains(c) {
                    bail!("einsum output label '{c}' appears twice");
                }
            }
            out
        }
        None => {
            let mut count: BTreeMap<char, usize> = BTreeMap::new();
            for &c in terms.iter().flatten().flatten() {
                *count.entry(c).or_default() += 1;
            }
            (0..e_rank)
                .map(ellipsis_label)
                .chain(count.into_iter().filter(|&(_, n)| n == 1).map(|(c, _)| c))
                .collect()
        }
    };
    for c in &output {
        if !inputs.iter().flatten().any(|x| x == c) {
            bail!("einsum output label '{c}' does not appear in any operand");
        }
    }
    Ok(EinsumSpec { inputs, output })
}

fn infer_einsum(ctx: &InferCtx<'_>) -> R {
    let dt = same_dtype(ctx)?;
    let ranks = (0..ctx.num_inputs())
        .map(|i| ctx.input(i).map(TensorType::rank))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = parse_einsum(ctx.str("equation")?, &ranks)?;
    let mut extent: BTreeMap<char, Dim> = BTreeMap::new();
    for (i, labels) in spec.inputs.iter().enumerate() {
        let t = ctx.input(i)?;
        if labels.len() != t.rank() {
            bail!(
                "operand #{i} has rank {} but the equation gives {} labels",
                t.rank(),
                labels.len()
            );
        }
        for (c, d) in labels.iter().zip(&t.dims) {
            let merged = match extent.get(c) {
                None => d.clone(),
                Some(prev) => super::infer::broadcast_dim(prev, d)
                    .map_err(|_| InferError(format!("label '{c}' has extents {prev} and {d}")))?,
            };
            extent.insert(*c, merged);
        }
    }
    let dims = spec.output.iter().map(|c| extent[c].clone()).collect();
    Ok(vec![TensorType::new(dt, dims)])
}

/// `nn.einsum %a, %b, ...`: Einstein summation over lettered axes.
pub const EINSUM: OpDef = OpDef {
    name: "nn.einsum",
    summary: "Einstein summation given by an equation such as \"bij,bjk->bik\"",
    inputs: Arity::at_least(1),
    outputs: Arity::exactly(1),
    attrs: &[attr("equation", AttrKind::Str, AttrDefault::Required)],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_einsum,
};

#[cfg(test)]
mod einsum_tests {
    use super::{ellipsis_label as e, parse_einsum};

    #[test]
    fn ellipsis_expands_right_aligned() {
        let s = parse_einsum("...ij, ...jk -> ...ik", &[4, 3]).unwrap();
        assert_eq!(s.inputs[0], vec![e(0), e(1), 'i', 'j']);
        assert_eq!(s.inputs[1], vec![e(1), 'j', 'k']);
        assert_eq!(s.output, vec![e(0), e(1), 'i', 'k']);
        let d = parse_einsum("...ii->...i", &[3]).unwrap();
        assert_eq!(d.inputs[0], vec![e(0), 'i', 'i']);
        assert_eq!(d.output, vec![e(0), 'i']);
    }

    #[test]
    fn implicit_output_puts_the_ellipsis_first() {
        let s = parse_einsum("b...j,jk", &[3, 2]).unwrap();
        assert_eq!(s.inputs[0], vec!['b', e(0), 'j']);
        assert_eq!(s.output, vec![e(0), 'b', 'k']);
        // An empty ellipsis and an explicit output without one (summed).
        let t = parse_einsum("...ij->i", &[2]).unwrap();
        assert_eq!(t.inputs[0], vec!['i', 'j']);
        let u = parse_einsum("i...->i", &[3]).unwrap();
        assert_eq!(u.inputs[0], vec!['i', e(0), e(1)]);
        assert_eq!(u.output, vec!['i']);
    }

    #[test]
    fn malformed_equations_are_rejected() {
        for (eq, ranks) in [
            ("......i->i", vec![3usize]),
            ("ij->i", vec![3]),
            ("...ij->i", vec![1]),
            ("ij,jk->ik", vec![2]),
            ("i1->i", vec![2]),
            ("ij->ii", vec![2]),
            ("ij->k", vec![2]),
        ] {
            assert!(parse_einsum(eq, &ranks).is_err(), "{eq} {ranks:?}");
        }
    }
}
