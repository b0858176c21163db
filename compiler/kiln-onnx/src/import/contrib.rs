//! ONNX Runtime's `com.microsoft` operators that keep a quantized model's
//! structure: `MatMulNBits` (blockwise 2/4/8-bit weight-only MatMul, the
//! format of ORT's `MatMulNBitsQuantizer` and of many exported LLMs) becomes
//! `quant.matmul` over the same bytes, so the weights stay packed.
//!
//! MatMulNBits: `Y = A . W` with `W[k, n] = (q(B[n, k]) - z[n, b]) * s[n, b]`,
//! `b = k / block_size`; `B` is uint8 `[N, blocks, block_size * bits / 8]`
//! (codes of a row first-lowest, so its bytes are a `[N, blocks *
//! block_size]` u2/u4/u8 tensor), scales `[N * blocks]`, zero points uint8
//! `[N * ceil(blocks * bits / 8)]` packed like B (rows padded to whole
//! bytes, as `codec::block::zero_point_cols`), `2^(bits - 1)` when absent,
//! an optional bias `[N]`.
//!
//! MatMulBnb4 (bitsandbytes' 4-bit format, from ORT's
//! `MatMulBnb4Quantizer`): `W[k, n] = table[code(n * K + k)] * absmax[(n *
//! K + k) / block_size]` with the NF4 (`quant_type = 1`) or bitsandbytes FP4
//! (`quant_type = 0`) table; `B` is uint8 `[ceil(N * K / 2)]`, the codes of
//! `Wᵀ` flattened, two per byte, the first in the high nibble; `absmax`
//! `[ceil(N * K / block_size)]`. Blocks run over the flattened array, so
//! they cross rows when `block_size` does not divide K: Kiln's blocks are
//! then `gcd(K, block_size)` values (each inside one bitsandbytes block)
//! with the scale repeated. The codes are repacked once, at import, into
//! Kiln's rows (first code in the low nibble): NF4 as `nf4`, FP4 as `u4`
//! with the table as `quant.matmul`'s `code_book`.
//!
//! Other operators of the domain are refused by name; so are `g_idx`, float
//! zero points and non-constant weights.

use super::NodeCtx;
use crate::error::OnnxError;
use kiln_ir::{Attr, Blob, DType, OpKind, TensorType, ValueId};

type R = Result<Vec<Option<ValueId>>, OnnxError>;

/// One `com.microsoft` importer.
pub struct ContribImporter {
    /// Operator name.
    pub op_type: &'static str,
    /// The builder.
    pub import: fn(&mut NodeCtx<'_, '_>) -> R,
}

/// Every supported operator of the `com.microsoft` domain.
pub static CONTRIB_IMPORTERS: &[ContribImporter] = &[
    ContribImporter {
        op_type: "MatMulNBits",
        import: matmul_nbits,
    },
    ContribImporter {
        op_type: "MatMulBnb4",
        import: matmul_bnb4,
    },
];

/// The importer of `op_type`, if Kiln has one.
pub fn find(op_type: &str) -> Option<&'static ContribImporter> {
    CONTRIB_IMPORTERS.iter().find(|i| i.op_type == op_type)
}

/// The bytes of constant operand `v`, with its type.
fn const_bytes(ctx: &NodeCtx<'_, '_>, v: ValueId) -> Option<(Blob, TensorType)> {
    let w = ctx.b.consts.get(&v)?;
    let w = ctx.b.graph.weight(*w);
    Some((w.bytes()?.clone(), w.ty.clone()))
}

fn matmul_nbits(ctx: &mut NodeCtx<'_, '_>) -> R {
    ctx.check_attrs(&["K", "N", "bits", "block_size", "accuracy_level"])?;
    let req = |ctx: &NodeCtx<'_, '_>, name: &str| -> Result<u64, OnnxError> {
        match ctx.attr_int(name, -1)? {
            v if v > 0 => Ok(v as u64),
            _ => Err(ctx.invalid(format!("attribute '{name}' must be a positive integer"))),
        }
    };
    let (k, n, block) = (req(ctx, "K")?, req(ctx, "N")?, req(ctx, "block_size")?);
    let bits = ctx.attr_int("bits", 4)?;
    let code_dt = match bits {
        2 => DType::U2,
        4 => DType::U4,
        8 => DType::U8,
        _ => return Err(ctx.unsupported(format!("bits = {bits} (Kiln imports 2, 4 and 8)"))),
    };
    let bits = bits as u64;
    if block < 2 || !(block * bits).is_multiple_of(8) {
        return Err(ctx.invalid(format!("block_size {block} does not fill whole bytes")));
    }
    if ctx.opt_input(4).is_some() {
        return Err(ctx.unsupported("g_idx (act-order) is not supported"));
    }
    let a = ctx.input(0)?;
    if ctx.ty(a).dtype != DType::F32 {
        return Err(ctx.unsupported(format!("A of {} (Kiln imports f32)", ctx.ty(a).dtype)));
    }
    let blocks = k.div_ceil(block);
    let kw = blocks * block;
    let name = ctx
        .node
        .outputs
        .iter()
        .flatten()
        .next()
        .cloned()
        .unwrap_or_default();
    let need_const = |ctx: &NodeCtx<'_, '_>, i: usize, what: &str| {
        ctx.opt_input(i)
            .and_then(|v| const_bytes(ctx, v))
            .ok_or_else(|| ctx.unsupported(format!("{what} must be an initializer")))
    };
    let (b, bt) = need_const(ctx, 1, "B")?;
    let want = n * blocks * (block * bits / 8);
    if bt.dtype != DType::U8 || b.len() as u64 != want {
        return Err(ctx.invalid(format!(
            "B of {bt} does not hold [{n}, {blocks}, {}] uint8",
            block * bits / 8
        )));
    }
    let codes = ctx.b.add_constant_blob(
        &format!("{name}.codes"),
        TensorType::fixed(code_dt, &[n, kw]),
        b,
    );
    let (s, st) = need_const(ctx, 2, "scales")?;
    if !matches!(st.dtype, DType::F32 | DType::F16) || st.numel() != Some(n * blocks) {
        return Err(ctx.invalid(format!("scales of {st} are not [{}] f32/f16", n * blocks)));
    }
    let mut scales = ctx.b.add_constant_blob(
        &format!("{name}.scales"),
        TensorType::fixed(st.dtype, &[n, blocks]),
        s,
    );
    if st.dtype != DType::F32 {
        scales = ctx.cast(scales, DType::F32)?;
    }
    let zcols = kiln_ir::codec::block::zero_point_cols(blocks as usize, code_dt) as u64;
    let zbytes = n * zcols * bits / 8;
    let zp_blob = match ctx.opt_input(3) {
        Some(_) => {
            let (z, zt) = need_const(ctx, 3, "zero_points")?;
            if zt.dtype != DType::U8 || z.len() as u64 != zbytes {
                return Err(ctx.unsupported(format!(
                    "zero points of {zt} (Kiln imports packed uint8 [{zbytes}])"
                )));
            }
            z
        }
        None => {
            // 2^(bits - 1) in every code of every byte.
            let byte = match bits {
                2 => 0xAA,
                4 => 0x88,
                _ => 0x80,
            };
            Blob::from_vec(vec![byte; zbytes as usize])
        }
    };
    let zp = ctx.b.add_constant_blob(
        &format!("{name}.zero_points"),
        TensorType::fixed(code_dt, &[n, zcols]),
        zp_blob,
    );
    let y = ctx.op_with(
        OpKind::QMatMul,
        &[a, codes, scales, zp],
        &[("block_size", Attr::Int(block as i64))],
    )?;
    let y = match ctx.opt_input(5) {
        Some(bias) => ctx.op(OpKind::Add, &[y, bias])?,
        None => y,
    };
    Ok(vec![Some(y)])
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn matmul_bnb4(ctx: &mut NodeCtx<'_, '_>) -> R {
    ctx.check_attrs(&[
        "K",
        "N",
        "block_size",
        "quant_type",
        "training_mode",
        "transB",
    ])?;
    let req = |ctx: &NodeCtx<'_, '_>, name: &str| -> Result<u64, OnnxError> {
        match ctx.attr_int(name, -1)? {
            v if v > 0 => Ok(v as u64),
            _ => Err(ctx.invalid(format!("attribute '{name}' must be a positive integer"))),
        }
    };
    let (k, n, block) = (req(ctx, "K")?, req(ctx, "N")?, req(ctx, "block_size")?);
    let fp4 = match ctx.attr_int("quant_type", -1)? {
        0 => true,
        1 => false,
        q => return Err(ctx.invalid(format!("quant_type {q} is neither 0 (FP4) nor 1 (NF4)"))),
    };
    if ctx.attr_int("transB", 1)? != 1 {
        return Err(ctx.unsupported("transB = 0 (Kiln imports the quantizer's transB = 1)"));
    }
    let a = ctx.input(0)?;
    if ctx.ty(a).dtype != DType::F32 {
        return Err(ctx.unsupported(format!("A of {} (Kiln imports f32)", ctx.ty(a).dtype)));
    }
    if ctx.ty(a).dims.last() != Some(&kiln_ir::Dim::Static(k)) {
        return Err(ctx.invalid(format!("A of {} does not end in K = {k}", ctx.ty(a))));
    }
    // Kiln's blocks: the largest that divides both K and block_size, so each
    // lies in one bitsandbytes block; whole bytes of codes.
    let g = gcd(k, block);
    if !g.is_multiple_of(2) {
        return Err(ctx.unsupported(format!(
            "K = {k} with block_size {block}: blocks of {g} codes do not fill whole bytes"
        )));
    }
    let (nk, name) = (
        n.checked_mul(k)
            .ok_or_else(|| ctx.invalid("N * K overflows"))?,
        ctx.node
            .outputs
            .iter()
            .flatten()
            .next()
            .cloned()
            .unwrap_or_default(),
    );
    let need_const = |ctx: &NodeCtx<'_, '_>, i: usize, what: &str| {
        ctx.opt_input(i)
            .and_then(|v| const_bytes(ctx, v))
            .ok_or_else(|| ctx.unsupported(format!("{what} must be an initializer")))
    };
    let (b, bt) = need_const(ctx, 1, "B")?;
    if bt.dtype != DType::U8 || b.len() as u64 != nk.div_ceil(2) {
        return Err(ctx.invalid(format!(
            "B of {bt} does not hold [{}] uint8 (N * K codes, two per byte)",
            nk.div_ceil(2)
        )));
    }
    let (m, mt) = need_const(ctx, 2, "absmax")?;
    let nblocks = nk.div_ceil(block);
    if !matches!(mt.dtype, DType::F32 | DType::F16) || mt.numel() != Some(nblocks) {
        return Err(ctx.invalid(format!("absmax of {mt} is not [{nblocks}] f32/f16")));
    }
    // Codes: high nibble first in B; Kiln rows take the first in the low
    // nibble (K is even, so rows are whole bytes).
    let bytes = b.bytes();
    let codes = (0..nk as usize).map(|i| {
        let byte = bytes[i / 2];
        if i % 2 == 0 {
            byte >> 4
        } else {
            byte & 0x0F
        }
    });
    let packed = kiln_ir::codec::packing::pack(codes, 4);
    let code_dt = if fp4 { DType::U4 } else { DType::NF4 };
    let codes = ctx.b.add_constant_blob(
        &format!("{name}.codes"),
        TensorType::fixed(code_dt, &[n, k]),
        Blob::from_vec(packed),
    );
    // Scales [N, K / g]: the absmax of the bitsandbytes block holding each.
    let elem = mt.dtype.storage_bytes(1).unwrap_or(4) as usize;
    let per_row = k / g;
    let src = m.bytes();
    let mut sbytes = Vec::with_capacity((n * per_row) as usize * elem);
    for j in 0..n {
        for c in 0..per_row {
            let i = ((j * k + c * g) / block) as usize * elem;
            sbytes.extend_from_slice(&src[i..i + elem]);
        }
    }
    let mut scales = ctx.b.add_constant_blob(
        &format!("{name}.scales"),
        TensorType::fixed(mt.dtype, &[n, per_row]),
        Blob::from_vec(sbytes),
    );
    if mt.dtype != DType::F32 {
        scales = ctx.cast(scales, DType::F32)?;
    }
    let mut attrs = vec![("block_size", Attr::Int(g as i64))];
    if fp4 {
        attrs.push((
            "code_book",
            Attr::Floats(
                kiln_ir::codec::block::BNB_FP4_CODE_BOOK
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect(),
            ),
        ));
    }
    let y = ctx.op_with(OpKind::QMatMul, &[a, codes, scales], &attrs)?;
    Ok(vec![Some(y)])
}
