//! The `quant` dialect: linear (de)quantization as in ONNX QuantizeLinear /
//! DequantizeLinear (latest opset), NF4 code-book dequantization, and the
//! weight-quantized contraction `quant.matmul` with the compile-time
//! `quant.quantize_weight` that produces its operands (`codec::block`).
//!
//! Scales come in three granularities, chosen by the operand shapes and
//! `block_size`:
//! - per tensor: a scalar (or one-element 1-D) scale;
//! - per axis: a 1-D scale with one entry per index of `axis`;
//! - blocked (`block_size > 0`): a scale of the input's rank whose `axis`
//!   extent is `ceil(extent / block_size)`, all other extents equal.
//!
//! A zero point, when present, has the scale's shape.

use super::infer::{bail, check_dims_agree, norm_axis, require_float, require_one_of};
use super::infer::{InferCtx, InferError};
use super::{attr, Arity, AttrDefault, OpDef, Traits};
use crate::attr::{AttrEnum, AttrKind};
use crate::dtype::DType;
use crate::types::{Dim, TensorType};

type R = Result<Vec<TensorType>, InferError>;

/// Quantized element types that QuantizeLinear may produce.
const QUANT_TARGETS: &[DType] = &[
    DType::I8,
    DType::U8,
    DType::I16,
    DType::U16,
    DType::I4,
    DType::U4,
    DType::I2,
    DType::U2,
    DType::F8E4M3FN,
    DType::F8E4M3FNUZ,
    DType::F8E5M2,
    DType::F8E5M2FNUZ,
    DType::F4E2M1,
];

/// Scale dtypes of QuantizeLinear / DequantizeLinear.
const SCALE_DTYPES: &[DType] = &[
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::F64,
    DType::F8E8M0,
];

/// Checks the scale (operand 1) and optional zero point (operand 2) of a
/// linear (de)quantization of `x` against one of the three granularities.
fn check_scale(ctx: &InferCtx<'_>, x: &TensorType) -> Result<(), InferError> {
    let s = ctx.input(1)?;
    let block = ctx.int("block_size")?;
    if block < 0 {
        bail!("block_size must be non-negative, got {block}");
    }
    let per_tensor = s.rank() == 0 || (s.rank() == 1 && s.dims[0] == Dim::Static(1));
    if block > 0 {
        let axis = norm_axis(ctx.int("axis")?, x.rank())?;
        if s.rank() != x.rank() {
            bail!("blocked scale {s} must have the input's rank {}", x.rank());
        }
        for (i, (sd, xd)) in s.dims.iter().zip(&x.dims).enumerate() {
            if i == axis {
                if let (Dim::Static(sn), Dim::Static(xn)) = (sd, xd) {
                    let want = xn.div_ceil(block as u64);
                    if *sn != want {
                        bail!("blocked scale has {sn} blocks on axis {axis}; extent {xn} / block_size {block} needs {want}");
                    }
                }
            } else {
                check_dims_agree(sd, xd, &format!("blocked scale dim {i}"))?;
            }
        }
    } else if !per_tensor {
        if s.rank() != 1 {
            bail!("scale {s} must be a scalar, 1-D per-axis, or blocked with block_size > 0");
        }
        let axis = norm_axis(ctx.int("axis")?, x.rank())?;
        check_dims_agree(
            &s.dims[0],
            &x.dims[axis],
            &format!("per-axis scale length vs axis {axis}"),
        )?;
    }
    if let Some(z) = ctx.opt_input(2) {
        // A per-tensor zero point may be a scalar or a 1-element vector
        // whichever form the scale takes (exporters mix them).
        let z_single = z.rank() == 0 || (z.rank() == 1 && z.dims[0] == Dim::Static(1));
        if per_tensor && block == 0 && z_single {
            return Ok(());
        }
        if z.rank() != s.rank()
            || z.dims
                .iter()
                .zip(&s.dims)
                .any(|(a, b)| check_dims_agree(a, b, "").is_err())
        {
            bail!("zero point {z} must have the scale's shape {s}");
        }
    }
    Ok(())
}

fn infer_quantize_linear(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    if !(x.dtype.is_float() || x.dtype == DType::I32) {
        bail!("input must be float or i32, got {x}");
    }
    let s = ctx.input(1)?;
    require_one_of(s.dtype, SCALE_DTYPES, "scale")?;
    if let Some(p) = ctx.dtype("precision")? {
        require_float(p, "precision")?;
    }
    let out = match (
        ctx.opt_input(2).map(|z| z.dtype),
        ctx.dtype("output_dtype")?,
    ) {
        (Some(z), Some(o)) if z != o => bail!("zero point dtype {z} differs from output_dtype {o}"),
        (Some(z), _) => z,
        (None, Some(o)) => o,
        (None, None) => DType::U8,
    };
    require_one_of(out, QUANT_TARGETS, "quantized result")?;
    check_scale(ctx, x)?;
    Ok(vec![TensorType::new(out, x.dims.clone())])
}

/// `quant.quantize_linear %x, %y_scale, %y_zero_point?`:
/// `saturate(round(x / scale) + zero_point)` into an integer or float8 type.
pub const QUANTIZE_LINEAR: OpDef = OpDef {
    name: "quant.quantize_linear",
    summary: "Linear quantization with per-tensor, per-axis or blocked scales",
    inputs: Arity::range(2, 3),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("axis", AttrKind::Int, AttrDefault::Int(1)),
        attr("block_size", AttrKind::Int, AttrDefault::Int(0)),
        attr("output_dtype", AttrKind::DType, AttrDefault::Absent),
        attr("precision", AttrKind::DType, AttrDefault::Absent),
        attr("saturate", AttrKind::Bool, AttrDefault::Bool(true)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_quantize_linear,
};

fn infer_dequantize_linear(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let mut allowed = QUANT_TARGETS.to_vec();
    allowed.push(DType::I32);
    require_one_of(x.dtype, &allowed, "quantized input")?;
    let s = ctx.input(1)?;
    require_one_of(s.dtype, SCALE_DTYPES, "scale")?;
    if let Some(z) = ctx.opt_input(2) {
        if z.dtype != x.dtype {
            bail!(
                "zero point dtype {} differs from the input's {}",
                z.dtype,
                x.dtype
            );
        }
    }
    let out = dequantized_dtype(s.dtype, ctx.dtype("output_dtype")?);
    require_one_of(
        out,
        &[DType::F32, DType::F16, DType::BF16, DType::F64],
        "dequantized result",
    )?;
    check_scale(ctx, x)?;
    Ok(vec![TensorType::new(out, x.dims.clone())])
}

/// The result dtype of a dequantization: `output_dtype`, else the scale's
/// dtype (`f32` for an E8M0 scale, which cannot hold results).
pub fn dequantized_dtype(scale: DType, output_dtype: Option<DType>) -> DType {
    match output_dtype {
        Some(o) => o,
        None if scale == DType::F8E8M0 => DType::F32,
        None => scale,
    }
}

/// `quant.dequantize_linear %x, %x_scale, %x_zero_point?`:
/// `(x - zero_point) * scale` in `output_dtype` (default: the scale's dtype).
pub const DEQUANTIZE_LINEAR: OpDef = OpDef {
    name: "quant.dequantize_linear",
    summary: "Linear dequantization with per-tensor, per-axis or blocked scales",
    inputs: Arity::range(2, 3),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("axis", AttrKind::Int, AttrDefault::Int(1)),
        attr("block_size", AttrKind::Int, AttrDefault::Int(0)),
        attr("output_dtype", AttrKind::DType, AttrDefault::Absent),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_dequantize_linear,
};

fn infer_nf4_dequantize(ctx: &InferCtx<'_>) -> R {
    let w = ctx.input(0)?;
    let a = ctx.input(1)?;
    if w.dtype != DType::NF4 {
        bail!("weight must be nf4, got {w}");
    }
    if w.rank() == 0 {
        bail!("weight must have rank >= 1, got {w}");
    }
    require_one_of(a.dtype, &[DType::F32, DType::F16], "absmax")?;
    let block = ctx.int("block_size")?;
    if block <= 0 || block % 2 != 0 {
        bail!("block_size must be positive and even, got {block}");
    }
    if a.rank() != w.rank() {
        bail!(
            "absmax {a} must have the weight's rank {} (blocks run along the last dim)",
            w.rank()
        );
    }
    let last = w.rank() - 1;
    for (i, (ad, wd)) in a.dims.iter().zip(&w.dims).enumerate() {
        if i < last {
            check_dims_agree(ad, wd, &format!("absmax dim {i}"))?;
        } else if let (Dim::Static(an), Dim::Static(k)) = (ad, wd) {
            let want = k.div_ceil(block as u64);
            if *an != want {
                bail!("absmax has {an} blocks per row; {k} / block_size {block} needs {want}");
            }
        }
    }
    Ok(vec![TensorType::new(DType::F32, w.dims.clone())])
}

/// `quant.nf4_dequantize %weight, %absmax`: looks each 4-bit code up in
/// the fixed NF4 code book (`codec::nf4_value`) and multiplies by its block's absmax. Blocks of
/// `block_size` elements run along the last dim, so `absmax` has shape
/// `weight[..-1] + [ceil(K / block_size)]` (a flat bitsandbytes absmax is
/// reshaped to this by the frontend).
pub const NF4_DEQUANTIZE: OpDef = OpDef {
    name: "quant.nf4_dequantize",
    summary: "NF4 code-book dequantization with per-block absmax scales",
    inputs: Arity::exactly(2),
    outputs: Arity::exactly(1),
    attrs: &[attr("block_size", AttrKind::Int, AttrDefault::Int(64))],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_nf4_dequantize,
};

/// Weight dtypes `quant.matmul` reads.
pub const QMATMUL_WEIGHTS: &[DType] = &[
    DType::I8,
    DType::U8,
    DType::I4,
    DType::U4,
    DType::I2,
    DType::U2,
    DType::NF4,
    DType::F8E4M3FN,
    DType::F8E4M3FNUZ,
    DType::F8E5M2,
    DType::F8E5M2FNUZ,
    DType::F4E2M1,
];

/// Scale dtypes `quant.matmul` reads (`u8`: double-quantized).
pub const QMATMUL_SCALES: &[DType] = &[
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::F8E8M0,
    DType::F8E4M3FN,
    DType::U8,
];

/// The shapes `quant.matmul` works on, read from its operand types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QMatmulShape {
    /// Output channels (rows of the weight).
    pub n: u64,
    /// Contraction length (the last dim of `a`).
    pub k: u64,
    /// Codes per weight row (`>= k`).
    pub kw: u64,
    /// Values per block (`k` for per-channel).
    pub block: u64,
    /// Blocks per row.
    pub blocks: u64,
}

fn static2(t: &TensorType, what: &str) -> Result<(u64, u64), InferError> {
    match t.dims.as_slice() {
        [Dim::Static(a), Dim::Static(b)] => Ok((*a, *b)),
        _ => bail!("{what} {t} must be a static 2-D tensor"),
    }
}

/// Checks the operands of a `quant.matmul` and returns its shapes.
pub fn qmatmul_shape(ctx: &InferCtx<'_>) -> Result<QMatmulShape, InferError> {
    let a = ctx.input(0)?;
    if a.rank() == 0 {
        bail!("activation {a} must have rank >= 1");
    }
    require_one_of(
        a.dtype,
        &[DType::F32, DType::F16, DType::BF16, DType::F64],
        "activation",
    )?;
    let Dim::Static(k) = a.dims[a.rank() - 1] else {
        bail!("the contraction dim of {a} must be static");
    };
    qweight_shape(ctx, k, true)
}

/// The quantized weight operands 1 (codes `[N, Kw]`), 2 (scales), 3 (zero
/// points) and, with `double` allowed, 4 and 5 (the absmax and offset of
/// double-quantized scales) of a product contracting `k` values, checked
/// against the `block_size` and `code_book` attributes (`quant.matmul`,
/// `quant.conv`).
fn qweight_shape(ctx: &InferCtx<'_>, k: u64, double_ok: bool) -> Result<QMatmulShape, InferError> {
    let w = ctx.input(1)?;
    let s = ctx.input(2)?;
    require_one_of(w.dtype, QMATMUL_WEIGHTS, "weight")?;
    require_one_of(s.dtype, QMATMUL_SCALES, "scale")?;
    let (n, kw) = static2(w, "weight")?;
    let (sn, blocks) = static2(s, "scale")?;
    if kw < k {
        bail!("weight rows hold {kw} codes, fewer than K = {k}");
    }
    if (kw * u64::from(w.dtype.bits())) % 8 != 0 {
        bail!("weight rows of {kw} {} codes do not end on a byte", w.dtype);
    }
    let block = ctx.int("block_size")?;
    if block < 0 {
        bail!("block_size must be non-negative, got {block}");
    }
    let block = if block == 0 { k.max(1) } else { block as u64 };
    let want = k.div_ceil(block).max(1);
    if sn != n || blocks != want {
        bail!("scale {s} must be [{n}, {want}] (N x blocks of {block} along K = {k})");
    }
    let book = if ctx.def.attr_spec("code_book").is_some() {
        ctx.floats("code_book")?
    } else {
        None
    };
    if let Some(book) = &book {
        if !matches!(w.dtype, DType::U2 | DType::U4 | DType::U8) {
            bail!("code_book needs u2, u4 or u8 codes, got {}", w.dtype);
        }
        let want = 1usize << w.dtype.bits();
        if book.len() != want {
            bail!(
                "code_book of {} codes needs {want} entries, got {}",
                w.dtype,
                book.len()
            );
        }
    }
    if let Some(z) = ctx.opt_input(3) {
        if !w.dtype.is_int() || book.is_some() {
            bail!(
                "a zero point needs integer weights without a code book, got {}",
                w.dtype
            );
        }
        if z.dtype != w.dtype {
            bail!(
                "zero point dtype {} differs from the weight's {}",
                z.dtype,
                w.dtype
            );
        }
        let (zn, zb) = static2(z, "zero point")?;
        if zn != n || zb < blocks || (zb * u64::from(z.dtype.bits())) % 8 != 0 {
            bail!("zero point {z} must be [{n}, >= {blocks}] with rows ending on a byte");
        }
    }
    let double = s.dtype == DType::U8;
    if double && !double_ok {
        bail!("u8 (double-quantized) scales are not taken here");
    }
    let (am, off) = if double_ok {
        (ctx.opt_input(4), ctx.opt_input(5))
    } else {
        (None, None)
    };
    match (double, am, off) {
        (false, None, None) => {}
        (true, Some(am), Some(off)) => {
            let groups = (n * blocks).div_ceil(crate::codec::block::DOUBLE_QUANT_BLOCK as u64);
            if am.dtype != DType::F32 || am.dims != [Dim::Static(groups)] {
                bail!("double-quantized scales need a [{groups}] f32 absmax, got {am}");
            }
            if off.dtype != DType::F32 || off.numel() != Some(1) {
                bail!("double-quantized scales need a one-element f32 offset, got {off}");
            }
        }
        _ => bail!(
            "u8 scales (double-quantized) come with a scale absmax and offset, and only they do"
        ),
    }
    Ok(QMatmulShape {
        n,
        k,
        kw,
        block,
        blocks: want,
    })
}

fn infer_qmatmul(ctx: &InferCtx<'_>) -> R {
    let sh = qmatmul_shape(ctx)?;
    let a = ctx.input(0)?;
    let mut dims = a.dims.clone();
    *dims.last_mut().expect("rank >= 1") = Dim::Static(sh.n);
    Ok(vec![TensorType::new(a.dtype, dims)])
}

/// `quant.matmul %a, %w, %scale, %zero_point?, %scale_absmax?, %scale_offset?`:
/// `a . dequant(w)^T` with `w` holding `N` rows of quantized codes along K
/// (`[N, Kw]`, `Kw >= K`, codes past K ignored), blocks of `block_size`
/// along K (0: one per row), `scale` `[N, blocks]` and an optional zero
/// point `[N, >= blocks]` of `w`'s dtype. `dequant(w)[n, k] = (v(w[n, k]) -
/// v(zp[n, b])) * s[n, b]` with `b = k / block_size`, computed in f32: `v`
/// is the integer, the NF4 / small-float value, or `code_book[code]`; `s` is
/// the scale's value (E8M0 / E4M3 decoded) or, for `u8` scales
/// (double-quantized), `dynamic_map[code] * scale_absmax[i / 256] +
/// scale_offset` with `i = n * blocks + b` (`codec::block`). The result has
/// `a`'s dtype and shape with the last dim `N`.
pub const QMATMUL: OpDef = OpDef {
    name: "quant.matmul",
    summary: "Matrix product with a block-quantized weight, dequantized on the fly",
    inputs: Arity::range(3, 6),
    outputs: Arity::exactly(1),
    attrs: &[
        attr("block_size", AttrKind::Int, AttrDefault::Int(0)),
        attr("code_book", AttrKind::Floats, AttrDefault::Absent),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_qmatmul,
};

fn infer_qmatmul_integer(ctx: &InferCtx<'_>) -> R {
    let a = ctx.input(0)?;
    let b = ctx.input(1)?;
    for (t, what) in [(a, "a"), (b, "b")] {
        require_one_of(t.dtype, &[DType::I8, DType::U8], what)?;
    }
    if a.rank() < 2 || b.rank() != 2 {
        bail!("quant.matmul_integer takes a of rank >= 2 and a 2-D b, got {a} and {b}");
    }
    let (m, k) = (&a.dims[a.rank() - 2], &a.dims[a.rank() - 1]);
    check_dims_agree(k, &b.dims[0], "the contracted dims of a and b")?;
    // Zero points: a scalar (or one value), or one per row of a / column of b.
    for (i, x, per, what) in [
        (2, a, m, "a_zero_point"),
        (3, b, &b.dims[1], "b_zero_point"),
    ] {
        let Some(z) = ctx.opt_input(i) else { continue };
        if z.dtype != x.dtype {
            bail!("{what} has dtype {}, its operand {}", z.dtype, x.dtype);
        }
        match z.rank() {
            0 => {}
            1 if z.dims[0] == Dim::Static(1) => {}
            1 => check_dims_agree(&z.dims[0], per, what)?,
            _ => bail!("{what} must be a scalar or 1-D, got {z}"),
        }
    }
    let mut dims = a.dims.clone();
    *dims.last_mut().expect("rank >= 2") = b.dims[1].clone();
    Ok(vec![TensorType::new(DType::I32, dims)])
}

/// `quant.matmul_integer %a, %b, %a_zero_point?, %b_zero_point?`: ONNX's
/// MatMulInteger with a 2-D `b`: `y[.., m, n] = Σ_k (a[.., m, k] -
/// za[m]) * (b[k, n] - zb[n])` in int32 (exact: 8-bit operands reach at
/// most 2^16 per product), `a`/`b` i8 or u8, zero points scalar (or one
/// value) or one per row of `a` / column of `b`, of their operand's dtype.
/// Weights stay 8-bit in the artifact (the composition this replaces
/// folded them into i32 constants four times their size).
pub const QMATMUL_INTEGER: OpDef = OpDef {
    name: "quant.matmul_integer",
    summary: "Matrix product of 8-bit integers with zero points, accumulated in int32",
    inputs: Arity::range(2, 4),
    outputs: Arity::exactly(1),
    attrs: &[],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_qmatmul_integer,
};

fn infer_qconv_integer(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let w = ctx.input(1)?;
    for (t, what) in [(x, "x"), (w, "w")] {
        require_one_of(t.dtype, &[DType::I8, DType::U8], what)?;
    }
    // Result dims first: they check the ranks the rest indexes.
    let dims = super::linalg::conv_dims(ctx, "quant.conv_integer", 4)?;
    // Zero points: one value for x; one value or one per output channel for w.
    for (i, of, per, what) in [
        (2, x, None, "x_zero_point"),
        (3, w, Some(&w.dims[0]), "w_zero_point"),
    ] {
        let Some(z) = ctx.opt_input(i) else { continue };
        if z.dtype != of.dtype {
            bail!("{what} has dtype {}, its operand {}", z.dtype, of.dtype);
        }
        match (z.rank(), per) {
            (0, _) => {}
            (1, _) if z.dims[0] == Dim::Static(1) => {}
            (1, Some(per)) => check_dims_agree(&z.dims[0], per, what)?,
            _ => bail!("{what} must be a scalar or one value, got {z}"),
        }
    }
    if let Some(b) = ctx.opt_input(4) {
        require_one_of(b.dtype, &[DType::I32], "bias")?;
    }
    let out = match (ctx.opt_input(5), ctx.opt_input(6)) {
        (None, None) => DType::I32,
        (Some(s), Some(z)) => {
            require_one_of(s.dtype, &[DType::F32], "scale")?;
            require_one_of(z.dtype, &[DType::I8, DType::U8], "y_zero_point")?;
            match s.rank() {
                0 => {}
                1 if s.dims[0] == Dim::Static(1) => {}
                1 => check_dims_agree(&s.dims[0], &w.dims[0], "scale")?,
                _ => bail!("scale must be a scalar or 1-D, got {s}"),
            }
            if z.rank() > 1 || (z.rank() == 1 && z.dims[0] != Dim::Static(1)) {
                bail!("y_zero_point must be one value, got {z}");
            }
            z.dtype
        }
        _ => bail!("scale and y_zero_point come together"),
    };
    Ok(vec![TensorType::new(out, dims)])
}

/// `quant.conv_integer %x, %w, %x_zero_point?, %w_zero_point?, %bias?,
/// %scale?, %y_zero_point?`: ONNX's ConvInteger and QLinearConv. The
/// accumulator is `nn.conv` of `x - x_zero_point` by `w - w_zero_point` in
/// int32 plus an optional int32 `bias` per output channel, exact (padding
/// adds zeros after the shift). `x`/`w` i8 or u8, `x_zero_point` one value,
/// `w_zero_point` one value or one per output channel, each of its
/// operand's dtype; `nn.conv`'s attributes. Without `scale` the result is
/// the int32 accumulator; with `scale` (f32, one value or one per output
/// channel: QLinearConv's `x_scale * w_scale / y_scale`) and
/// `y_zero_point` (u8 or i8, one value) it is requantized to
/// `y_zero_point`'s dtype as ONNX Runtime computes it, in f32:
/// `clamp(rint(f32(acc) * scale[m]) + y_zero_point)`. Weights stay 8-bit
/// in the artifact; the CPU lowering runs it on the int8 GEMM kernel
/// (`igemm.h`'s `iconv`, the requantization in its store).
pub const QCONV_INTEGER: OpDef = OpDef {
    name: "quant.conv_integer",
    summary: "Grouped convolution of 8-bit integers with zero points, int32 or requantized",
    inputs: Arity::range(2, 7),
    outputs: Arity::exactly(1),
    attrs: super::linalg::CONV_ATTRS,
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_qconv_integer_any_layout,
};

fn infer_qconv_integer_any_layout(ctx: &InferCtx<'_>) -> R {
    super::layout::infer_in_layout(ctx, infer_qconv_integer)
}

/// The shapes `quant.conv` works on (in its NCHW view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QConvShape {
    /// The weight: `n` = output channels, `k` = `kh * kw * C / group`.
    pub w: QMatmulShape,
    /// Kernel extent `[kh, kw]`.
    pub kernel: [u64; 2],
    /// Input channels per group.
    pub cin_g: u64,
    /// Groups.
    pub group: u64,
}

/// Checks a `quant.conv`'s operands (operand 0 viewed in NCHW) and
/// returns its shapes and result dims.
fn qconv_parts(ctx: &InferCtx<'_>) -> Result<(QConvShape, Vec<Dim>), InferError> {
    let x = ctx.input(0)?;
    require_one_of(x.dtype, &[DType::F32], "input")?;
    if x.rank() != 4 {
        bail!("quant.conv takes a 2-D image batch [N, C, H, W], got {x}");
    }
    let Some(kernel) = ctx.ints("kernel_shape")? else {
        bail!("quant.conv needs 'kernel_shape' (its weight is stored as rows of codes)");
    };
    let [kh, kw] = kernel[..] else {
        bail!("kernel_shape must have 2 entries, got {kernel:?}");
    };
    if kh <= 0 || kw <= 0 {
        bail!("kernel_shape must be positive, got {kernel:?}");
    }
    let group = ctx.int("group")?;
    if group <= 0 {
        bail!("group must be positive, got {group}");
    }
    let group = group as u64;
    let Dim::Static(c) = x.dims[1] else {
        bail!("the channels of {x} must be static");
    };
    if c % group != 0 {
        bail!("input channels {c} are not divisible by group {group}");
    }
    let cin_g = c / group;
    let k = kh as u64 * kw as u64 * cin_g;
    let w = qweight_shape(ctx, k, false)?;
    if w.n % group != 0 {
        bail!("output channels {} are not divisible by group {group}", w.n);
    }
    if let Some(b) = ctx.opt_input(4) {
        if b.dtype != x.dtype || b.dims != [Dim::Static(w.n)] {
            bail!(
                "bias {b} must be [{}] of the input's dtype {}",
                w.n,
                x.dtype
            );
        }
    }
    let win = super::linalg::Window::read(ctx, 2, None)?;
    let mut dims = vec![x.dims[0].clone(), Dim::Static(w.n)];
    for i in 0..2 {
        dims.push(win.out_dim(i, &x.dims[2 + i])?);
    }
    let sh = QConvShape {
        w,
        kernel: [kh as u64, kw as u64],
        cin_g,
        group,
    };
    Ok((sh, dims))
}

/// Checks the operands of a `quant.conv` (in any layout) and returns its shapes.
pub fn qconv_shape(ctx: &InferCtx<'_>) -> Result<QConvShape, InferError> {
    let layout = super::layout::DataLayout::read(ctx)?;
    let x = ctx.input(0)?;
    if layout == super::layout::DataLayout::Nchw || x.rank() != 4 {
        return Ok(qconv_parts(ctx)?.0);
    }
    let viewed = super::layout::permute(x, &layout.to_nchw_perm(4));
    let mut inputs: Vec<Option<&TensorType>> = ctx.inputs.to_vec();
    inputs[0] = Some(&viewed);
    let inner = InferCtx {
        inputs: &inputs,
        ..*ctx
    };
    Ok(qconv_parts(&inner)?.0)
}

fn infer_qconv(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    Ok(vec![TensorType::new(x.dtype, qconv_parts(ctx)?.1)])
}

fn infer_qconv_any_layout(ctx: &InferCtx<'_>) -> R {
    super::layout::infer_in_layout(ctx, infer_qconv)
}

/// `quant.conv %x, %w, %scale, %zero_point?, %bias?`: a 2-D grouped
/// convolution (`nn.conv`'s attributes, `kernel_shape` required) by a
/// block-quantized weight, dequantized where it is read. `w` holds one row
/// of codes per output channel `m` (`[M, Kw]`, `Kw >= K = kh * kw * C /
/// group`, codes past K ignored) in window order, channels fastest: code
/// `(ky * kw + kx) * C / group + c` is the weight at `(m, c, ky, kx)` — the
/// order an NHWC window is read in, so blocks (`block_size` along K, 0:
/// one per row) run along the input channels of one tap before the next.
/// `scale` `[M, blocks]` and the optional `zero_point` `[M, >= blocks]`
/// dequantize as `quant.matmul`'s (`(v(w) - v(zp)) * s` in f32; no code
/// book, no double-quantized scales). The result is `nn.conv(x, W, bias)`
/// with `W` that dequantized weight; `x`, `bias` and the result are f32.
pub const QCONV: OpDef = OpDef {
    name: "quant.conv",
    summary: "Grouped 2-D convolution by a block-quantized weight, dequantized on the fly",
    inputs: Arity::range(3, 5),
    outputs: Arity::exactly(1),
    attrs: QCONV_ATTRS,
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_qconv_any_layout,
};

const QCONV_ATTRS: &[super::AttrSpec] = &[
    attr(
        "auto_pad",
        AttrKind::Enum(super::linalg::AutoPad::NAMES),
        AttrDefault::Str("NOTSET"),
    ),
    attr("block_size", AttrKind::Int, AttrDefault::Int(0)),
    attr("dilations", AttrKind::Ints, AttrDefault::Absent),
    attr("group", AttrKind::Int, AttrDefault::Int(1)),
    attr("kernel_shape", AttrKind::Ints, AttrDefault::Absent),
    super::layout::LAYOUT_ATTR,
    attr("pads", AttrKind::Ints, AttrDefault::Absent),
    attr("strides", AttrKind::Ints, AttrDefault::Absent),
];

crate::attr_enum! {
    /// The part of a quantized weight one `quant.quantize_weight` produces.
    pub enum QuantPart {
        /// The packed codes `[N, Kp]`.
        Codes = "codes",
        /// The block scales `[N, blocks]` (8-bit codes when double-quantized).
        Scales = "scales",
        /// The zero points of asymmetric schemes.
        ZeroPoints = "zero_points",
        /// The double-quantized scales' absmax per group.
        ScaleAbsmax = "scale_absmax",
        /// The double-quantized scales' offset.
        ScaleOffset = "scale_offset",
        /// NVFP4's per-tensor scale.
        GlobalScale = "global_scale",
    }
}

/// The scheme, K axis and block size of a `quant.quantize_weight`.
pub fn quantize_weight_params(
    ctx: &InferCtx<'_>,
) -> Result<(crate::codec::block::Scheme, usize, usize, bool), InferError> {
    let scheme: crate::codec::block::Scheme = ctx.enum_attr("scheme")?;
    let name = scheme.name();
    let axis = ctx.int("axis")?;
    if !(0..=1).contains(&axis) {
        bail!("axis must be 0 or 1, got {axis}");
    }
    let block = ctx.int("block_size")?;
    if block < 0 {
        bail!("block_size must be non-negative, got {block}");
    }
    let (def, fixed) = scheme.default_block();
    if fixed && block as usize != def {
        bail!("{name} has blocks of {def}, not {block}");
    }
    let per = crate::codec::packing::per_byte(scheme.code_dtype().bits().min(8));
    if block > 0 && !(block as usize).is_multiple_of(per) {
        bail!("block_size {block} must be a multiple of {per} for {name} codes");
    }
    let double = ctx.bool("double_quant")?;
    if double && scheme != crate::codec::block::Scheme::Nf4 {
        bail!("double quantization applies to nf4 only");
    }
    Ok((scheme, axis as usize, block as usize, double))
}

fn infer_quantize_weight(ctx: &InferCtx<'_>) -> R {
    use crate::codec::block::{blocks_per_row, padded_k, Scheme, DOUBLE_QUANT_BLOCK};
    let w = ctx.input(0)?;
    require_one_of(
        w.dtype,
        &[DType::F32, DType::F16, DType::BF16, DType::F64],
        "weight",
    )?;
    let (d0, d1) = static2(w, "weight")?;
    let (scheme, axis, block, double) = quantize_weight_params(ctx)?;
    let (n, k) = if axis == 0 { (d1, d0) } else { (d0, d1) };
    let (n, k) = (n as usize, k as usize);
    let nb = blocks_per_row(k, block);
    let part: QuantPart = ctx.enum_attr("part")?;
    let scalar = || TensorType::fixed(DType::F32, &[]);
    let t = match part {
        QuantPart::Codes => TensorType::fixed(
            scheme.code_dtype(),
            &[n as u64, padded_k(k, block, scheme.code_dtype()) as u64],
        ),
        QuantPart::Scales if double => TensorType::fixed(DType::U8, &[n as u64, nb as u64]),
        QuantPart::Scales => TensorType::fixed(scheme.scale_dtype(), &[n as u64, nb as u64]),
        QuantPart::ZeroPoints if scheme.has_zero_point() => {
            let cols = crate::codec::block::zero_point_cols(nb, scheme.code_dtype());
            TensorType::fixed(scheme.code_dtype(), &[n as u64, cols as u64])
        }
        QuantPart::ScaleAbsmax if double => {
            TensorType::fixed(DType::F32, &[(n * nb).div_ceil(DOUBLE_QUANT_BLOCK) as u64])
        }
        QuantPart::ScaleOffset if double => scalar(),
        QuantPart::GlobalScale if scheme == Scheme::Nvfp4 => scalar(),
        other => bail!("scheme {} has no part \"{other}\" here", scheme.name()),
    };
    Ok(vec![t])
}

/// `quant.quantize_weight %w {scheme, block_size, axis, part, double_quant}`:
/// quantizes a 2-D weight with `codec::block` (rows are the output channels:
/// `axis` is the contraction axis K of `%w`, 0 for a MatMul's `[K, N]`) and
/// returns one `part` of the result: `codes` `[N, Kp]`, `scales` `[N,
/// blocks]`, `zero_points`, the double-quantized scales' `scale_absmax` and
/// `scale_offset`, or NVFP4's `global_scale`. Meant for derived weights,
/// which feed `quant.matmul`.
pub const QUANTIZE_WEIGHT: OpDef = OpDef {
    name: "quant.quantize_weight",
    summary: "Block-wise quantization of a 2-D weight (one part of the result)",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: &[
        attr(
            "scheme",
            AttrKind::Enum(crate::codec::block::Scheme::NAMES),
            AttrDefault::Required,
        ),
        attr("block_size", AttrKind::Int, AttrDefault::Int(0)),
        attr("axis", AttrKind::Int, AttrDefault::Int(0)),
        attr(
            "part",
            AttrKind::Enum(QuantPart::NAMES),
            AttrDefault::Str("codes"),
        ),
        attr("double_quant", AttrKind::Bool, AttrDefault::Bool(false)),
    ],
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_quantize_weight,
};

/// An operand of a [`DqlStep`]: the quantized tensor, a named f32 scalar
/// constant, or the result of an earlier step (by index).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DqlOperand {
    X,
    Const(&'static str, f32),
    Step(usize),
}

/// The shape of a [`DqlStep`]'s result: a scalar, or `x`'s shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DqlShape {
    Scalar,
    LikeX,
}

/// One node of DynamicQuantizeLinear's ONNX function body in Kiln ops.
#[derive(Clone, Debug)]
pub struct DqlStep {
    /// A short name for the result, unique within the body.
    pub name: &'static str,
    pub kind: crate::ops::OpKind,
    pub inputs: Vec<DqlOperand>,
    pub attrs: crate::attr::Attrs,
    pub dtype: DType,
    pub shape: DqlShape,
}

/// DynamicQuantizeLinear-11 (uint8, per tensor) as Kiln ops, written once
/// for every client that builds it (the ONNX importer for the ONNX op, the
/// `quantize-weights` pass for `--quantize-activations=dynamic`): the range
/// `[min(0, min x), max(0, max x)]` maps onto uint8 with scale
/// `(max - min) / 255` (1 when the range is empty) and zero point
/// `rint(clip(-min / scale, 0, 255))`; `y` is QuantizeLinear with them.
/// The results are the steps [`DQL_Y`], [`DQL_SCALE`] and
/// [`DQL_ZERO_POINT`]; `y` is the last step.
pub fn dynamic_quantize_linear_body() -> Vec<DqlStep> {
    use crate::attr::{Attr, Attrs};
    use crate::ops::OpKind;
    use DqlOperand::{Step, X};
    const ZERO: DqlOperand = DqlOperand::Const("zero", 0.0);
    const ONE: DqlOperand = DqlOperand::Const("one", 1.0);
    const QMAX: DqlOperand = DqlOperand::Const("qmax", 255.0);
    let keep = || {
        let mut a = Attrs::new();
        a.insert("keepdims".into(), Attr::Bool(false));
        a
    };
    let cast_u8 = {
        let mut a = Attrs::new();
        a.insert("to".into(), Attr::DType(DType::U8));
        a
    };
    let s = |name, kind, inputs: &[DqlOperand], attrs, dtype| DqlStep {
        name,
        kind,
        inputs: inputs.to_vec(),
        attrs,
        dtype,
        shape: DqlShape::Scalar,
    };
    let none = Attrs::new;
    let f = DType::F32;
    let mut body = vec![
        s("max", OpKind::ReduceMax, &[X], keep(), f),      // 0
        s("hi", OpKind::Max, &[Step(0), ZERO], none(), f), // 1
        s("min", OpKind::ReduceMin, &[X], keep(), f),      // 2
        s("lo", OpKind::Min, &[Step(2), ZERO], none(), f), // 3
        s(
            "empty",
            OpKind::Equal,
            &[Step(1), Step(3)],
            none(),
            DType::Bool,
        ), // 4
        s("span", OpKind::Sub, &[Step(1), Step(3)], none(), f), // 5
        s("range", OpKind::Where, &[Step(4), ONE, Step(5)], none(), f), // 6
        s("scale", OpKind::Div, &[Step(6), QMAX], none(), f), // 7
        s("lo_q", OpKind::Div, &[Step(3), Step(7)], none(), f), // 8
        s("zp_f", OpKind::Sub, &[ZERO, Step(8)], none(), f), // 9
        s("zp_c", OpKind::Clip, &[Step(9), ZERO, QMAX], none(), f), // 10
        s("zp_r", OpKind::Round, &[Step(10)], none(), f),  // 11
        s("zp", OpKind::Cast, &[Step(11)], cast_u8, DType::U8), // 12
        s(
            "y",
            OpKind::QuantizeLinear,
            &[X, Step(7), Step(12)],
            none(),
            DType::U8,
        ), // 13
    ];
    body[DQL_Y].shape = DqlShape::LikeX;
    body
}

/// The step of [`dynamic_quantize_linear_body`] that is `y`.
pub const DQL_Y: usize = 13;
/// The step of [`dynamic_quantize_linear_body`] that is `y_scale`.
pub const DQL_SCALE: usize = 7;
/// The step of [`dynamic_quantize_linear_body`] that is `y_zero_point`.
pub const DQL_ZERO_POINT: usize = 12;
