//! Layouts: `nn.pack` / `nn.unpack` (blocked and kernel-panel layouts) and
//! the `layout` attribute of the convolution and pooling ops (`nchw`, `nhwc`).
//!
//! The byte layout of every packed form is defined once here, as a map from
//! each packed element to the logical element it holds ([`Packing::source`]);
//! the interpreter, derived weights and the docs of the kernel library
//! (`docs/middle-end.md`) all follow it.

use super::infer::{bail, InferCtx, InferError};
use super::{attr, Arity, AttrDefault, AttrSpec, OpDef, Traits};
use crate::attr::{AttrEnum, AttrKind};
use crate::types::TensorType;

type R = Result<Vec<TensorType>, InferError>;

crate::attr_enum! {
    /// The packed forms `nn.pack` produces.
    pub enum PackLayout {
        /// GEMM right-hand side `B[K, N]` as `[ceil(N/NR), K, NR]` panels:
        /// `packed[p][k][j] = B[k][p*NR + j]`, zero past `N` (`block` = NR).
        GemmB = "gemm_b",
        /// OIHW convolution weights `[Cout, Cin/G, KH, KW]` as, per group, the
        /// GEMM operand `B_g[K, Cout/G]` (`K = KH*KW*Cin/G`, `k = (kh*KW + kw) *
        /// Cin/G + c`) packed like [`PackLayout::GemmB`]: `[G, ceil((Cout/G)/NR),
        /// K, NR]`.
        ConvNhwc = "conv_nhwc",
        /// Depthwise weights `[C, 1, KH, KW]` as `[KH, KW, C]`.
        DwConvNhwc = "dwconv_nhwc",
        /// Activations `[N, C, spatial...]` as `[N, ceil(C/b), spatial..., b]`,
        /// zero past `C` (`block` = b).
        Nchwc = "nchwc",
        /// 8-bit GEMM right-hand side `B[K, N]` as `[ceil(N/NR), ceil(K/4),
        /// NR*4]` panels holding 4 consecutive K values per column (the
        /// operand of x86 `vpdpbusd`): `packed[p][q][4*j + r] = B[4q + r][p*NR +
        /// j]`, zero past `K` and `N` (`block` = NR).
        Int8GemmB = "int8_gemm_b",
        /// [`PackLayout::Int8GemmB`] of i8 values within
        /// [`INT8_NARROW_BOUND`] in magnitude, checked when packed
        /// ([`Packing::check_values`]): the operand x86 `pmaddubsw` multiplies by
        /// u8 values in pairs summed into int16 without saturating (`2 * 255 *
        /// 64 <= 32767`), the AVX2 path of 8-bit products (`igemmp`).
        Int8GemmBNarrow = "int8_gemm_b_narrow",
        /// A row-major `[R, C]` matrix (rows: the output columns of a
        /// `quant.matmul`, whose weights and scales are `[N, ...]`) as
        /// `[ceil(R/b), C, b]` panels of b rows: `packed[p][c][i] = L[p*b +
        /// i][c]`, zero past `R` (`block` = b). The scales of the 4-bit GEMV
        /// on [`PackLayout::RowPanelsK8`] codes.
        RowPanels = "row_panels",
        /// A row-major `[R, C]` matrix as `[ceil(R/b), ceil(C/8), b, 8]`: runs
        /// of 8 consecutive values of b rows, `packed[p][q][i][r] = L[p*b +
        /// i][8q + r]`, zero past `R` and `C` (`block` = b). The one layout
        /// that also re-lays sub-byte elements out: a run of 8 4-bit codes is
        /// 4 whole bytes, so one 64-byte load holds 8 codes of each of 16
        /// rows (the 4-bit GEMV of `kernels/qgemm.h`, `qg_gemvp`).
        RowPanelsK8 = "row_panels_k8",
    }
}

/// The largest magnitude of an [`PackLayout::Int8GemmBNarrow`] value.
pub const INT8_NARROW_BOUND: u8 = 64;

/// A resolved packing: layout, block and groups, against a logical shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packing {
    /// The layout.
    pub layout: PackLayout,
    /// Panel width or channel block (1 where unused).
    pub block: u64,
    /// Convolution groups (1 where unused).
    pub groups: u64,
    /// The logical (unpacked) shape.
    pub logical: Vec<u64>,
}

impl Packing {
    /// Reads `layout`, `block`, `groups` from a node and checks them against
    /// a static logical shape.
    pub fn read(ctx: &InferCtx<'_>, logical: Vec<u64>) -> Result<Packing, InferError> {
        let layout = ctx.enum_attr::<PackLayout>("layout")?;
        let block = ctx.int("block")?;
        let groups = ctx.int("groups")?;
        if block <= 0 || groups <= 0 {
            bail!("block and groups must be positive, got {block} and {groups}");
        }
        Packing::new(layout, block as u64, groups as u64, logical)
    }

    /// A packing, checked against the logical shape.
    pub fn new(
        layout: PackLayout,
        block: u64,
        groups: u64,
        logical: Vec<u64>,
    ) -> Result<Packing, InferError> {
        let p = Packing {
            layout,
            block,
            groups,
            logical,
        };
        let s = &p.logical;
        match layout {
            PackLayout::GemmB
            | PackLayout::Int8GemmB
            | PackLayout::Int8GemmBNarrow
            | PackLayout::RowPanels
            | PackLayout::RowPanelsK8
                if s.len() != 2 =>
            {
                bail!(
                    "{} packs a [K, N] matrix, got rank {}",
                    layout.name(),
                    s.len()
                )
            }
            PackLayout::ConvNhwc | PackLayout::DwConvNhwc if s.len() != 4 => {
                bail!(
                    "{} packs [Cout, Cin/G, KH, KW] weights, got rank {}",
                    layout.name(),
                    s.len()
                )
            }
            PackLayout::ConvNhwc if !s[0].is_multiple_of(groups) => {
                bail!(
                    "{} output channels are not divisible by {groups} groups",
                    s[0]
                )
            }
            PackLayout::DwConvNhwc if s[1] != 1 => {
                bail!(
                    "dwconv_nhwc packs depthwise weights [C, 1, KH, KW], got {:?}",
                    s
                )
            }
            PackLayout::Nchwc if s.len() < 3 => {
                bail!(
                    "nchwc packs [N, C, spatial...] activations, got rank {}",
                    s.len()
                )
            }
            _ => {}
        }
        if p.packed_shape()
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .is_none()
        {
            bail!("the packed form of {:?} is too large", p.logical);
        }
        Ok(p)
    }

    /// The packed shape.
    pub fn packed_shape(&self) -> Vec<u64> {
        let s = &self.logical;
        let b = self.block;
        match self.layout {
            PackLayout::GemmB => vec![s[1].div_ceil(b), s[0], b],
            PackLayout::Int8GemmB | PackLayout::Int8GemmBNarrow => {
                vec![s[1].div_ceil(b), s[0].div_ceil(4), 4 * b]
            }
            PackLayout::RowPanels => vec![s[0].div_ceil(b), s[1], b],
            PackLayout::RowPanelsK8 => vec![s[0].div_ceil(b), s[1].div_ceil(8), b, 8],
            PackLayout::ConvNhwc => {
                let cg = s[0] / self.groups;
                vec![self.groups, cg.div_ceil(b), s[1] * s[2] * s[3], b]
            }
            PackLayout::DwConvNhwc => vec![s[2], s[3], s[0]],
            PackLayout::Nchwc => {
                let mut v = vec![s[0], s[1].div_ceil(b)];
                v.extend(&s[2..]);
                v.push(b);
                v
            }
        }
    }

    /// The logical flat index the packed element at flat index `p` holds,
    /// or `None` for padding (zero).
    pub fn source(&self, p: u64) -> Option<u64> {
        let s = &self.logical;
        let b = self.block;
        match self.layout {
            // B[K, N] holds column n of panel p at B[k][n]: the panels of
            // Bᵀ's rows, one value (gemm_b) or 4 along K (int8_gemm_b) per lane.
            PackLayout::GemmB => row_panel_runs(p, b, 1, s[1], s[0]).map(|(n, k)| k * s[1] + n),
            PackLayout::Int8GemmB | PackLayout::Int8GemmBNarrow => {
                row_panel_runs(p, b, 4, s[1], s[0]).map(|(n, k)| k * s[1] + n)
            }
            PackLayout::RowPanels => row_panel_runs(p, b, 1, s[0], s[1]).map(|(r, c)| r * s[1] + c),
            PackLayout::RowPanelsK8 => {
                row_panel_runs(p, b, 8, s[0], s[1]).map(|(r, c)| r * s[1] + c)
            }
            PackLayout::ConvNhwc => {
                let (cout, cg_in, kh_n, kw_n) = (s[0], s[1], s[2], s[3]);
                let cg_out = cout / self.groups;
                let kk = kh_n * kw_n * cg_in;
                let panels = cg_out.div_ceil(b);
                let j = p % b;
                let k = (p / b) % kk;
                let panel = (p / (b * kk)) % panels;
                let g = p / (b * kk * panels);
                let o = panel * b + j;
                if o >= cg_out {
                    return None;
                }
                let (kh, rem) = (k / (kw_n * cg_in), k % (kw_n * cg_in));
                let (kw, c) = (rem / cg_in, rem % cg_in);
                Some(((g * cg_out + o) * cg_in + c) * kh_n * kw_n + kh * kw_n + kw)
            }
            PackLayout::DwConvNhwc => {
                let (c_n, kh_n, kw_n) = (s[0], s[2], s[3]);
                let c = p % c_n;
                let kw = (p / c_n) % kw_n;
                let kh = p / (c_n * kw_n);
                Some((c * kh_n + kh) * kw_n + kw)
            }
            PackLayout::Nchwc => {
                let (c_n, sp): (u64, u64) = (s[1], s[2..].iter().product());
                let blocks = c_n.div_ceil(b);
                let j = p % b;
                let pos = (p / b) % sp;
                let cb = (p / (b * sp)) % blocks;
                let n = p / (b * sp * blocks);
                let c = cb * b + j;
                (c < c_n).then_some((n * c_n + c) * sp + pos)
            }
        }
    }

    /// Checks that the logical tensor's bytes `src` (of `dtype`) may be
    /// packed this way: [`PackLayout::Int8GemmBNarrow`] holds i8 values within
    /// [`INT8_NARROW_BOUND`] only; every other layout holds any values.
    pub fn check_values(&self, src: &[u8], dtype: crate::DType) -> Result<(), String> {
        if self.layout != PackLayout::Int8GemmBNarrow {
            return Ok(());
        }
        if dtype != crate::DType::I8 {
            return Err(format!("int8_gemm_b_narrow packs i8 values, not {dtype}"));
        }
        match src
            .iter()
            .map(|&b| b as i8)
            .find(|v| v.unsigned_abs() > INT8_NARROW_BOUND)
        {
            Some(v) => Err(format!(
                "int8_gemm_b_narrow holds values within [-{INT8_NARROW_BOUND}, \
                 {INT8_NARROW_BOUND}], the weight has {v}"
            )),
            None => Ok(()),
        }
    }

    /// Packs `src` (the logical tensor's bytes, `elem` bytes per element)
    /// into the packed layout; padding is zero.
    pub fn pack_bytes(&self, src: &[u8], elem: usize) -> Vec<u8> {
        let n: u64 = self.packed_shape().iter().product();
        let mut out = vec![0u8; n as usize * elem];
        for (p, dst) in out.chunks_exact_mut(elem).enumerate() {
            if let Some(i) = self.source(p as u64) {
                let i = i as usize * elem;
                dst.copy_from_slice(&src[i..i + elem]);
            }
        }
        out
    }

    /// Packs `src`, the logical tensor's elements of `bits` < 8 bits packed
    /// in bytes (element `i` in bits `bits * (i % (8 / bits))` upwards of
    /// byte `i / (8 / bits)`, the storage of sub-byte dtypes), into the
    /// packed layout stored the same way; padding is zero.
    pub fn pack_bits(&self, src: &[u8], bits: u32) -> Vec<u8> {
        let per = (8 / bits.clamp(1, 8)) as u64;
        let mask = ((1u16 << bits) - 1) as u8;
        let n: u64 = self.packed_shape().iter().product();
        let mut out = vec![0u8; n.div_ceil(per) as usize];
        for p in 0..n {
            let Some(i) = self.source(p) else { continue };
            let Some(&byte) = src.get((i / per) as usize) else {
                continue;
            };
            let v = (byte >> ((i % per) as u32 * bits)) & mask;
            out[(p / per) as usize] |= v << ((p % per) as u32 * bits);
        }
        out
    }

    /// Unpacks `src` (the packed bytes) into the logical layout.
    pub fn unpack_bytes(&self, src: &[u8], elem: usize) -> Vec<u8> {
        let n: u64 = self.logical.iter().product();
        let mut out = vec![0u8; n as usize * elem];
        for (p, s) in src.chunks_exact(elem).enumerate() {
            if let Some(i) = self.source(p as u64) {
                let i = i as usize * elem;
                out[i..i + elem].copy_from_slice(s);
            }
        }
        out
    }
}

/// The (row, column) of an `[rows, cols]` matrix that packed element `p`
/// holds when the matrix is laid out as `[ceil(rows/b), ceil(cols/run), b,
/// run]` (panels of `b` rows, runs of `run` consecutive columns per row),
/// or `None` for padding: the shape of `gemm_b`, `int8_gemm_b` (of Bᵀ),
/// `row_panels` and `row_panels_k8`.
fn row_panel_runs(p: u64, b: u64, run: u64, rows: u64, cols: u64) -> Option<(u64, u64)> {
    let runs = cols.div_ceil(run);
    let r = p % run;
    let i = (p / run) % b;
    let q = (p / (run * b)) % runs;
    let (row, col) = ((p / (run * b * runs)) * b + i, q * run + r);
    (row < rows && col < cols).then_some((row, col))
}

const PACK_ATTRS: &[AttrSpec] = &[
    attr(
        "layout",
        AttrKind::Enum(PackLayout::NAMES),
        AttrDefault::Required,
    ),
    attr("block", AttrKind::Int, AttrDefault::Int(1)),
    attr("groups", AttrKind::Int, AttrDefault::Int(1)),
];

const UNPACK_ATTRS: &[AttrSpec] = &[
    attr(
        "layout",
        AttrKind::Enum(PackLayout::NAMES),
        AttrDefault::Required,
    ),
    attr("block", AttrKind::Int, AttrDefault::Int(1)),
    attr("groups", AttrKind::Int, AttrDefault::Int(1)),
    attr("shape", AttrKind::Ints, AttrDefault::Required),
];

/// Sub-byte elements re-lay out only in runs of whole bytes
/// ([`PackLayout::RowPanelsK8`] with 1-, 2- or 4-bit elements).
fn whole_bytes(t: &TensorType, layout: PackLayout) -> Result<(), InferError> {
    if t.dtype.is_packed() && !(layout == PackLayout::RowPanelsK8 && 8 % t.dtype.bits() == 0) {
        bail!("{} elements share bytes and cannot be re-laid out", t.dtype);
    }
    Ok(())
}

fn infer_pack(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    whole_bytes(x, ctx.enum_attr::<PackLayout>("layout")?)?;
    let Some(shape) = x.static_shape() else {
        bail!("nn.pack needs a static operand, got {x}");
    };
    let p = Packing::read(ctx, shape)?;
    Ok(vec![TensorType::fixed(x.dtype, &p.packed_shape())])
}

/// The logical shape an `nn.unpack` node restores.
pub fn unpack_shape(ctx: &InferCtx<'_>) -> Result<Vec<u64>, InferError> {
    let shape = ctx.ints("shape")?.unwrap_or_default();
    shape
        .iter()
        .map(|&d| u64::try_from(d).map_err(|_| InferError(format!("shape entry {d} is negative"))))
        .collect()
}

fn infer_unpack(ctx: &InferCtx<'_>) -> R {
    let x = ctx.input(0)?;
    whole_bytes(x, ctx.enum_attr::<PackLayout>("layout")?)?;
    let p = Packing::read(ctx, unpack_shape(ctx)?)?;
    let want = TensorType::fixed(x.dtype, &p.packed_shape());
    if !x.is_compatible(&want) {
        bail!(
            "the packed operand is {x} but {} of {:?} is {want}",
            p.layout.name(),
            p.logical
        );
    }
    Ok(vec![TensorType::fixed(x.dtype, &p.logical)])
}

/// `nn.pack %x {layout, block, groups}`: re-lays a logical tensor out in a
/// blocked or kernel-panel layout ([`PackLayout`]).
pub const PACK: OpDef = OpDef {
    name: "nn.pack",
    summary: "Re-lays a tensor out in a blocked or kernel-panel layout",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: PACK_ATTRS,
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_pack,
};

/// `nn.unpack %p {layout, block, groups, shape}`: the inverse of `nn.pack`.
pub const UNPACK: OpDef = OpDef {
    name: "nn.unpack",
    summary: "Restores the logical layout of a packed tensor",
    inputs: Arity::exactly(1),
    outputs: Arity::exactly(1),
    attrs: UNPACK_ATTRS,
    traits: Traits::NONE,
    static_operands: &[],
    infer: infer_unpack,
};

crate::attr_enum! {
    /// The activation layout of a convolution or pooling op (its `layout`
    /// attribute).
    #[derive(Default)]
    pub enum DataLayout {
        /// `[N, C, spatial...]` (ONNX's).
        #[default]
        Nchw = "nchw",
        /// `[N, spatial..., C]`.
        Nhwc = "nhwc",
    }
}

impl DataLayout {
    /// Reads a node's `layout` attribute (default `nchw`).
    pub fn read(ctx: &InferCtx<'_>) -> Result<DataLayout, InferError> {
        ctx.enum_attr("layout")
    }

    /// The permutation taking this layout's dims to NCHW order (`perm[i]` is
    /// the source dim of NCHW dim `i`), for rank `r`.
    pub fn to_nchw_perm(self, r: usize) -> Vec<usize> {
        match self {
            DataLayout::Nchw => (0..r).collect(),
            DataLayout::Nhwc => {
                let mut p = vec![0, r - 1];
                p.extend(1..r - 1);
                p
            }
        }
    }

    /// The permutation taking NCHW dims to this layout.
    pub fn from_nchw_perm(self, r: usize) -> Vec<usize> {
        match self {
            DataLayout::Nchw => (0..r).collect(),
            DataLayout::Nhwc => {
                let mut p = vec![0];
                p.extend(2..r);
                p.push(1);
                p
            }
        }
    }
}

/// The `layout` attribute entry every layout-aware op lists.
pub const LAYOUT_ATTR: AttrSpec = attr(
    "layout",
    AttrKind::Enum(DataLayout::NAMES),
    AttrDefault::Str("nchw"),
);

pub(super) fn permute(t: &TensorType, perm: &[usize]) -> TensorType {
    TensorType::new(t.dtype, perm.iter().map(|&p| t.dims[p].clone()).collect())
}

/// Runs an NCHW inference function for an op whose operand 0 and result 0
/// may be in another layout: operand 0 is viewed in NCHW order, the result
/// permuted back. Other operands (weights, bias) are layout-free.
pub fn infer_in_layout(ctx: &InferCtx<'_>, nchw: fn(&InferCtx<'_>) -> R) -> R {
    let layout = DataLayout::read(ctx)?;
    if layout == DataLayout::Nchw {
        return nchw(ctx);
    }
    let x = ctx.input(0)?;
    if x.rank() < 3 {
        bail!(
            "layout {} needs an operand of rank 3 or more, got {x}",
            layout.name()
        );
    }
    let viewed = permute(x, &layout.to_nchw_perm(x.rank()));
    let mut inputs: Vec<Option<&TensorType>> = ctx.inputs.to_vec();
    inputs[0] = Some(&viewed);
    let inner = InferCtx {
        inputs: &inputs,
        ..*ctx
    };
    let outs = nchw(&inner)?;
    Ok(outs
        .into_iter()
        .map(|t| {
            if t.rank() == x.rank() {
                permute(&t, &layout.from_nchw_perm(t.rank()))
            } else {
                t
            }
        })
        .collect())
}
