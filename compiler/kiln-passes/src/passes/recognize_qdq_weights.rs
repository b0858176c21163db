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
//! (times `beta`) after the product. Without this, `fold-constants` would
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
use kiln_ir::{Attr, Attrs, Blob, DType, Graph, OpKind, TensorType};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "recognize-qdq-weights",
    summary: "MatMul/Gemm of a DequantizeLinear of constant integer weights becomes quant.matmul over the packed codes",
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
    if !m.single_use(b) || m.is_output(b) {
        return None;
    }
    let (_, dq) = m.def(b, OpKind::DequantizeLinear)?;
    let w = dq.inputs.first().copied().flatten()?;
    let s = dq.inputs.get(1).copied().flatten()?;
    let z = dq.inputs.get(2).copied().flatten();
    let (wt, bt) = (m.ty(w).clone(), m.ty(b));
    let shape = wt.static_shape()?;
    let dt = wt.dtype;
    if !matches!(
        dt,
        DType::I8 | DType::U8 | DType::I4 | DType::U4 | DType::I2 | DType::U2
    ) || bt.dtype != DType::F32
        || m.ty(a).dtype != DType::F32
        || m.ty(s).dtype != DType::F32
        || shape.len() != 2
    {
        return None;
    }
    let (k, nn) = if rows {
        (shape[1] as usize, shape[0] as usize)
    } else {
        (shape[0] as usize, shape[1] as usize)
    };
    let bits = dt.bits() as usize;
    if !(k * bits).is_multiple_of(8) {
        return None;
    }
    let wid = m.g.constant_weight(m.defs(), w)?;
    let scale = m.const_tensor(s)?.to_f64_vec();
    let zp: Option<Vec<i128>> = match z {
        Some(z) => Some(m.const_tensor(z)?.ints()?.to_vec()),
        None => None,
    };
    let axis = pattern::int_attr(dq, "axis")?;
    let block = pattern::int_attr(dq, "block_size")?;
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
    if zp.as_ref().is_some_and(|z| z.len() != scale.len()) {
        return None;
    }
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
    let mut sbytes = Vec::with_capacity(nn * nb * 4);
    for j in 0..nn {
        for b in 0..nb {
            sbytes.extend_from_slice(&(scale[at(j, b)] as f32).to_le_bytes());
        }
    }
    let scales = bytes_weight(
        &mut r,
        &format!("{name}.row_scales"),
        TensorType::fixed(DType::F32, &[nn as u64, nb as u64]),
        sbytes,
    );
    let mut inputs = vec![Some(Val::Old(a)), Some(codes), Some(scales)];
    if let Some(zp) = &zp {
        let cols = zero_point_cols(nb, dt);
        let codes = (0..nn)
            .flat_map(|j| (0..cols).map(move |b| if b < nb { zp[at(j, b)] as u8 } else { 0 }));
        let zbytes = if bits < 8 {
            packing::pack(codes, bits as u32)
        } else {
            codes.collect()
        };
        inputs.push(Some(bytes_weight(
            &mut r,
            &format!("{name}.row_zero_points"),
            TensorType::fixed(dt, &[nn as u64, cols as u64]),
            zbytes,
        )));
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

#[cfg(test)]
#[path = "recognize_qdq_weights_tests.rs"]
mod tests;
