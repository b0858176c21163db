//! `recognize-qdq-weights`: a QDQ model's quantized weight stays quantized.
//! `nn.matmul %a, (quant.dequantize_linear %w, %scale, %zero_point?)` with
//! constant integer codes `%w[K, N]` (i8, u8, i4, u4, i2, u2) and f32
//! scales — per tensor, per output column (`axis = 1`), or in blocks along
//! K (`axis = 0`, `block_size`) — becomes `quant.matmul` over the
//! transposed codes (a derived weight: `[N, K]`, still packed) with the
//! scales and zero points rearranged per output row. `nn.gemm` (no
//! `trans_a`, `alpha = 1`) is taken the same way: with `trans_b` its codes
//! `%w[N, K]` are already rows (per output row `axis = 0`, blocks along K
//! `axis = 1`) and are used as they are; its bias becomes an `nn.add`
//! (times `beta`) after the product. `nn.conv` (2-D, NCHW) of a
//! dequantized `[M, C/group, kh, kw]` weight — per tensor, per output
//! channel, or in blocks along the input channels that divide `C/group` —
//! becomes `quant.conv` over the codes in window order (derived: `[M, kh,
//! kw, C/group]` flattened to rows). Without this, `fold-constants` would
//! turn the dequantization into an f32 constant four to sixteen times its
//! size.
//!
//! The rewrite keeps the meaning exactly: both sides compute `(q - z) *
//! s` in f32 before the products (only the summation order of the product
//! may differ). Dequantizations with other users, runtime operands, other
//! dtypes or granularities are left alone.
//! Preconditions: a verified graph. Graph outputs keep their names and types.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep_pass, Direction, NewData, NewNode, NewWeight, Recipe, Val, WRef};
use kiln_ir::codec::block::zero_point_cols;
use kiln_ir::codec::packing;
use kiln_ir::{Attr, Attrs, Blob, DType, Graph, OpKind, TensorType, ValueId};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "recognize-qdq-weights",
    summary: "MatMul/Gemm/Conv of a DequantizeLinear of constant integer weights becomes quant.matmul / quant.conv over the packed codes",
    create: || Box::new(RecognizeQdqWeights),
};

/// The pass (no options).
#[derive(Clone, Copy, Debug, Default)]
pub struct RecognizeQdqWeights;

impl Pass for RecognizeQdqWeights {
    pass_info!();
    fn run(&self, g: &mut Graph, _opts: &PassOptions) -> Result<PassStats, PassError> {
        Ok(sweep_pass(g, Direction::Forward, plan))
    }
}

/// A weight of `ty` holding `bytes`.
fn bytes_weight(r: &mut Recipe, name: &str, ty: TensorType, bytes: Vec<u8>) -> Val {
    let w = r.weight(NewWeight {
        name: name.to_string(),
        ty: ty.clone(),
        data: NewData::Bytes(Blob::from_vec(bytes), None),
    });
    r.push(NewNode::constant(name, w, ty))
}

/// Decides whether node `n` is a MatMul of a dequantized constant weight.
pub fn plan(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    if node.body.is_some() {
        return None;
    }
    // Whether the stored weight is [N, K] (a Gemm's trans_b), and the bias.
    let (rows, bias) = match node.op {
        OpKind::Conv => return plan_conv(m, n),
        OpKind::MatMul => (false, None),
        OpKind::Gemm => {
            if pattern::bool_attr(node, "trans_a")? || pattern::float_attr(node, "alpha")? != 1.0 {
                return None;
            }
            let beta = pattern::float_attr(node, "beta")?;
            (
                pattern::bool_attr(node, "trans_b")?,
                node.inputs.get(2).copied().flatten().map(|c| (c, beta)),
            )
        }
        _ => return None,
    };
    let a = node.inputs.first().copied().flatten()?;
    let b = node.inputs.get(1).copied().flatten()?;
    if m.ty(a).dtype != DType::F32 {
        return None;
    }
    let DqWeight {
        w,
        wid,
        dt,
        shape,
        scale,
        zp,
        axis,
        block,
    } = dq_weight(m, b, 2)?;
    let (k, nn) = if rows {
        (shape[1] as usize, shape[0] as usize)
    } else {
        (shape[0] as usize, shape[1] as usize)
    };
    if !(k * dt.bits() as usize).is_multiple_of(8) {
        return None;
    }
    // The scale (and zero point) of block `b` of output row `j` is element
    // `j * sj + b * sb` of the ONNX scale tensor; `nb` blocks of `blk`
    // values per row. The N axis of the stored weight is 1, or 0 for rows.
    let (n_axis, k_axis) = if rows { (0, 1) } else { (1, 0) };
    let (nb, blk, sj, sb) = if scale.len() == 1 {
        (1, k, 0, 0)
    } else if block == 0 && (axis == n_axis || axis == n_axis - 2) && scale.len() == nn {
        (1, k, 1, 0)
    } else if block > 0 && (axis == k_axis || axis == k_axis - 2) {
        let blk = block as usize;
        let nb = k.div_ceil(blk);
        if scale.len() != nb * nn {
            return None;
        }
        if rows {
            (nb, blk, nb, 1)
        } else {
            (nb, blk, 1, nn)
        }
    } else {
        return None;
    };
    let at = |j: usize, b: usize| j * sj + b * sb;
    let name = m.g.weight(wid).name.clone();
    let mut r = Recipe::at(n);
    let codes = if rows {
        Val::Old(w)
    } else {
        let mut perm = Attrs::new();
        perm.insert("perm".into(), Attr::Ints(vec![1, 0]));
        let codes_ty = TensorType::fixed(dt, &[nn as u64, k as u64]);
        let codes = r.derived(
            &format!("{name}.rows"),
            codes_ty.clone(),
            OpKind::Transpose,
            perm,
            vec![WRef::Old(wid)],
        );
        r.push(NewNode::constant(&format!("{name}.rows"), codes, codes_ty))
    };
    let (scales, zps) = row_params(&mut r, &name, (nn, nb), dt, &scale, zp.as_deref(), &at);
    let mut inputs = vec![Some(Val::Old(a)), Some(codes), Some(scales)];
    if let Some(z) = zps {
        inputs.push(Some(z));
    }
    let out = node.outputs[0];
    let mut attrs = Attrs::new();
    let blk = if nb == 1 { 0 } else { blk };
    attrs.insert("block_size".into(), Attr::Int(blk as i64));
    let (out_name, out_ty) = (m.g.value(out).name.clone(), m.ty(out).clone());
    let prod_name = if bias.is_some() {
        format!("{out_name}.q")
    } else {
        out_name.clone()
    };
    let mut y = r.push(NewNode {
        op: OpKind::QMatMul,
        inputs,
        attrs,
        results: vec![(prod_name, out_ty.clone())],
        weight: None,
        body: None,
    });
    if let Some(bias) = bias {
        y = r.gemm_bias(y, bias, m.ty(bias.0).clone(), &out_name, out_ty);
    }
    r.replace.push((out, y));
    Some(r)
}

/// Where block `b` of row `j` finds its scale in the ONNX scale tensor.
type BlockAt = Box<dyn Fn(usize, usize) -> usize>;

/// A weight operand `b` that is a single-use `quant.dequantize_linear` of
/// constant integer codes (i8, u8, i4, u4, i2, u2) of rank `rank` with
/// constant f32 scales and zero points of the scales' size.
struct DqWeight {
    w: ValueId,
    wid: kiln_ir::WeightId,
    dt: DType,
    shape: Vec<u64>,
    scale: Vec<f64>,
    zp: Option<Vec<i128>>,
    axis: i64,
    block: i64,
}

fn dq_weight(m: &Matcher<'_>, b: ValueId, rank: usize) -> Option<DqWeight> {
    if !m.single_use(b) || m.is_output(b) || m.ty(b).dtype != DType::F32 {
        return None;
    }
    let (_, dq) = m.def(b, OpKind::DequantizeLinear)?;
    let w = dq.inputs.first().copied().flatten()?;
    let s = dq.inputs.get(1).copied().flatten()?;
    let z = dq.inputs.get(2).copied().flatten();
    let wt = m.ty(w);
    let shape = wt.static_shape()?;
    let dt = wt.dtype;
    if !matches!(
        dt,
        DType::I8 | DType::U8 | DType::I4 | DType::U4 | DType::I2 | DType::U2
    ) || m.ty(s).dtype != DType::F32
        || shape.len() != rank
    {
        return None;
    }
    let wid = m.g.constant_weight(m.defs(), w)?;
    let scale = m.const_tensor(s)?.to_f64_vec();
    let zp: Option<Vec<i128>> = match z {
        Some(z) => Some(m.const_tensor(z)?.ints()?.to_vec()),
        None => None,
    };
    if zp.as_ref().is_some_and(|z| z.len() != scale.len()) {
        return None;
    }
    Some(DqWeight {
        w,
        wid,
        dt,
        shape,
        scale,
        zp,
        axis: pattern::int_attr(dq, "axis")?,
        block: pattern::int_attr(dq, "block_size")?,
    })
}

/// The row scales `[rows, nb]` and, with `zp`, the row zero points `[rows,
/// zero_point_cols]` of codes of `dt`, element `(j, b)` taken from element
/// `at(j, b)` of the ONNX scale and zero point tensors.
#[allow(clippy::too_many_arguments)]
fn row_params(
    r: &mut Recipe,
    name: &str,
    (rows, nb): (usize, usize),
    dt: DType,
    scale: &[f64],
    zp: Option<&[i128]>,
    at: &dyn Fn(usize, usize) -> usize,
) -> (Val, Option<Val>) {
    let mut sbytes = Vec::with_capacity(rows * nb * 4);
    for j in 0..rows {
        for b in 0..nb {
            sbytes.extend_from_slice(&(scale[at(j, b)] as f32).to_le_bytes());
        }
    }
    let scales = bytes_weight(
        r,
        &format!("{name}.row_scales"),
        TensorType::fixed(DType::F32, &[rows as u64, nb as u64]),
        sbytes,
    );
    let zps = zp.map(|zp| {
        let cols = zero_point_cols(nb, dt);
        let codes = (0..rows)
            .flat_map(|j| (0..cols).map(move |b| if b < nb { zp[at(j, b)] as u8 } else { 0 }));
        let bits = dt.bits();
        let zbytes = if bits < 8 {
            packing::pack(codes, bits)
        } else {
            codes.collect()
        };
        bytes_weight(
            r,
            &format!("{name}.row_zero_points"),
            TensorType::fixed(dt, &[rows as u64, cols as u64]),
            zbytes,
        )
    });
    (scales, zps)
}

/// `nn.conv %x, (quant.dequantize_linear %w, %scale, %zero_point?), %bias?`
/// (2-D, NCHW, f32) with constant integer codes `%w[M, C/group, kh, kw]`
/// and f32 scales per tensor, per output channel (`axis = 0`) or in blocks
/// of `block_size` along the input channels (`axis = 1`, blocks that divide
/// `C/group`, so none crosses a tap): `quant.conv` over the codes in window
/// order (derived: transposed to `[M, kh, kw, C/group]` and flattened to
/// rows) with the scales and zero points per row and block.
fn plan_conv(m: &Matcher<'_>, n: usize) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    let x = node.inputs.first().copied().flatten()?;
    let b = node.inputs.get(1).copied().flatten()?;
    let bias = node.inputs.get(2).copied().flatten();
    if matches!(node.attrs.get("layout"), Some(Attr::Str(l)) if l != "nchw")
        || m.ty(x).dtype != DType::F32
        || m.ty(x).rank() != 4
        || bias.is_some_and(|c| m.ty(c).dtype != DType::F32)
    {
        return None;
    }
    let DqWeight {
        wid,
        dt,
        shape,
        scale,
        zp,
        axis,
        block,
        ..
    } = dq_weight(m, b, 4)?;
    let [co, cg, kh, kw] = [shape[0], shape[1], shape[2], shape[3]].map(|d| d as usize);
    let (taps, k) = (kh * kw, kh * kw * cg);
    // Depthwise weights (a few taps per channel) stay with the f32 kernel.
    if cg == 1 && pattern::int_attr(node, "group").unwrap_or(1) > 1 {
        return None;
    }
    if !(k * dt.bits() as usize).is_multiple_of(8) {
        return None;
    }
    // Row j's block b: per tensor or channel one block; blocked along the
    // input channels, block b of a row is tap b / nbc, channel block b %
    // nbc, ONNX element (j, b % nbc, tap) of the [M, C/g / B, kh, kw] scale.
    let (nb, blk, at): (usize, usize, BlockAt) = if scale.len() == 1 {
        (1, k, Box::new(|_, _| 0))
    } else if block == 0 && (axis == 0 || axis == -4) && scale.len() == co {
        (1, k, Box::new(|j, _| j))
    } else if block > 0 && (axis == 1 || axis == -3) && cg.is_multiple_of(block as usize) {
        let bs = block as usize;
        let nbc = cg / bs;
        if scale.len() != co * nbc * taps {
            return None;
        }
        (
            taps * nbc,
            bs,
            Box::new(move |j, b| (j * nbc + b % nbc) * taps + b / nbc),
        )
    } else {
        return None;
    };
    let name = m.g.weight(wid).name.clone();
    let mut r = Recipe::at(n);
    let mut perm = Attrs::new();
    perm.insert("perm".into(), Attr::Ints(vec![0, 2, 3, 1]));
    let ohwi = r.derived(
        &format!("{name}.ohwi"),
        TensorType::fixed(dt, &[shape[0], shape[2], shape[3], shape[1]]),
        OpKind::Transpose,
        perm,
        vec![WRef::Old(wid)],
    );
    let mut fa = Attrs::new();
    fa.insert("axis".into(), Attr::Int(1));
    let rows_ty = TensorType::fixed(dt, &[co as u64, k as u64]);
    let rows = r.derived(
        &format!("{name}.rows"),
        rows_ty.clone(),
        OpKind::Flatten,
        fa,
        vec![ohwi],
    );
    let codes = r.push(NewNode::constant(&format!("{name}.rows"), rows, rows_ty));
    let (scales, zps) = row_params(&mut r, &name, (co, nb), dt, &scale, zp.as_deref(), &*at);
    let inputs = vec![
        Some(Val::Old(x)),
        Some(codes),
        Some(scales),
        zps,
        bias.map(Val::Old),
    ];
    let mut attrs = node.attrs.clone();
    attrs.insert(
        "block_size".into(),
        Attr::Int(if nb == 1 { 0 } else { blk as i64 }),
    );
    attrs.insert(
        "kernel_shape".into(),
        Attr::Ints(vec![kh as i64, kw as i64]),
    );
    let out = node.outputs[0];
    let y = r.push(NewNode {
        op: OpKind::QConv,
        inputs: if bias.is_some() {
            inputs
        } else {
            inputs.into_iter().take(4).collect::<Vec<_>>()
        },
        attrs,
        results: vec![(m.g.value(out).name.clone(), m.ty(out).clone())],
        weight: None,
        body: None,
    });
    r.replace.push((out, y));
    Some(r)
}

#[cfg(test)]
#[path = "recognize_qdq_weights_tests.rs"]
mod tests;
