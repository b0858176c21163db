//! `pack-weights`: re-lays constant weights out in the panel layouts of the
//! target's kernels (`kiln_ir::ops::layout::Packing`, docs/middle-end.md
//! §1), as derived weights computed when their bytes are written, with an
//! `nn.unpack` in front of the consumer so the graph still means the same
//! (the interpreter sees logical weights; the lowering reads the packed
//! constant behind the unpack directly).
//!
//! - `nn.matmul` with a constant 2-D `B[K, N]`, and `nn.gemm` with a
//!   constant `B` (transposed `[N, K]` weights are transposed as part of the
//!   derivation and the Gemm's `trans_b` cleared): `gemm_b` panels
//!   `[ceil(N/NR), K, NR]`;
//! - NHWC `nn.conv` (2-D) with constant OIHW weights: `conv_nhwc` panels
//!   per group; depthwise ones (`group = Cin = Cout`) `dwconv_nhwc` when
//!   the target packs them.
//!
//! Also inside fused epilogues, whose body's contraction reads the weight
//! through a body input: the unpack goes in front of the fused node.
//!
//! - `quant.matmul_integer` with a constant 2-D i8 `B[K, N]` where the
//!   target has 8-bit dot products (`TargetFacts::int8_dot`): `int8_gemm_b`
//!   panels `[ceil(N/NR), ceil(K/4), 4*NR]` (the weights stay 8-bit). Where
//!   the target instead multiplies u8 by i8 in saturating pairs
//!   (`TargetFacts::int8_pairs`, x86 AVX2), weights known to lie within
//!   [-64, 64] ([`i8_bound`]: stored bytes scanned, or `int7` codes of
//!   `quant.quantize_weight` through transposes and reshapes) pack as
//!   `int8_gemm_b_narrow` (same panels; the range is checked again when the
//!   bytes are packed); others stay as stored.
//!
//! - `quant.matmul` of one row with constant 4-bit codes `[N, Kw]` (no code
//!   book, blocks of a multiple of 8 or one per row), constant scales `[N,
//!   blocks]` and constant zero points if any, where the target's 4-bit
//!   GEMV reads panels (`TargetFacts::qgemv_panel` = b > 0): codes and zero
//!   points as `row_panels_k8` `[ceil(N/b), ceil(Kw/8), b, 8]` (they stay
//!   4-bit), scales as `row_panels` `[ceil(N/b), blocks, b]`.
//! - NHWC `quant.conv` (alone or an epilogue's head) with the same kind of
//!   constant 4-bit codes and input channels per group a multiple of 8:
//!   the same panels (the conv2d kernel decodes a step of 8 channels of 16
//!   output channels at once); 8-bit codes and zero points as `row_panels`
//!   `[ceil(N/b), Kw, b]` (16 output channels' codes of one K index are 16
//!   bytes).
//!
//! `NR` is `TargetFacts::gemm_nr`; with 0 (the default target facts) the
//! pass does nothing. f32 weights, and the i8 and 4-bit weights above.
//! Preconditions: a verified graph; NHWC layouts assigned (`assign-layout`).
//! Graph outputs keep their names and types.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats, TargetFacts};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep_pass, Direction, NewNode, Recipe, Val, WRef};
use kiln_ir::codec::block::Scheme;
use kiln_ir::ops::layout::{DataLayout, PackLayout, Packing, INT8_NARROW_BOUND};
use kiln_ir::ops::QuantPart;
use kiln_ir::{Attr, Attrs, DType, Graph, Node, OpKind, TensorType, ValueId, WeightData, WeightId};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "pack-weights",
    summary: "Re-lays constant MatMul/Gemm/Conv weights out in the kernels' panel layouts as derived weights behind nn.unpack",
    create: || Box::new(PackWeights::default()),
};

/// Options of `pack-weights`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Pack MatMul and Gemm weights (and the 4-bit weights of one-row
    /// `quant.matmul`s).
    pub gemm: bool,
    /// Pack convolution weights.
    pub conv: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            gemm: true,
            conv: true,
        }
    }
}

/// The weight packing pass.
#[derive(Clone, Debug, Default)]
pub struct PackWeights {
    /// Options.
    pub options: Options,
}

impl Pass for PackWeights {
    pass_info!();
    fn run(&self, g: &mut Graph, opts: &PassOptions) -> Result<PassStats, PassError> {
        if opts.target.gemm_nr == 0 {
            return Ok(PassStats::default());
        }
        let facts = &opts.target;
        Ok(sweep_pass(g, Direction::Forward, |m, n| {
            plan(m, n, &self.options, facts)
        }))
    }
}

/// What to do with one contraction's weight.
struct Packed {
    /// The packing (of the logical weight, after a transpose if any).
    packing: Packing,
    /// Transpose the stored weight first (a Gemm's `trans_b`).
    transpose: bool,
}

/// The largest magnitude of i8 weight `id`'s values where it is known:
/// stored bytes are scanned; a derived weight that only moves values
/// (transpose, reshape) has its operand's bound; the codes of a symmetric
/// integer `quant.quantize_weight` of `bits` lie within `2^(bits-1)`.
pub fn i8_bound(g: &Graph, id: WeightId) -> Option<u8> {
    let w = g.weights().get(id.0 as usize)?;
    if w.ty.dtype != DType::I8 {
        return None;
    }
    match &w.data {
        WeightData::Bytes(b) => Some(
            b.bytes()
                .iter()
                .map(|&x| (x as i8).unsigned_abs())
                .max()
                .unwrap_or(0),
        ),
        WeightData::Derived(d) => match d.op {
            OpKind::Transpose | OpKind::Reshape => i8_bound(g, *d.inputs.first()?),
            OpKind::QuantizeWeight => {
                let part = match d.attrs.get("part") {
                    Some(a) => a.as_enum::<QuantPart>()?,
                    None => QuantPart::Codes,
                };
                match (d.attrs.get("scheme")?.as_enum::<Scheme>()?, part) {
                    (Scheme::Int(bits @ 2..=8), QuantPart::Codes) => {
                        u8::try_from(1u32 << (bits - 1)).ok()
                    }
                    _ => None,
                }
            }
            _ => None,
        },
        WeightData::Elided { .. } => None,
    }
}

/// How contraction `node`'s weight operand `w` (of type `wt`, weight `id`
/// of `g`) packs.
fn packing(
    g: &Graph,
    id: WeightId,
    node: &Node,
    wt: &TensorType,
    opts: &Options,
    facts: &TargetFacts,
) -> Option<Packed> {
    let shape = wt.static_shape()?;
    let nr = facts.gemm_nr;
    let p = |layout, block, groups, logical| Packing::new(layout, block, groups, logical).ok();
    match node.op {
        OpKind::MatMul if opts.gemm && shape.len() == 2 => Some(Packed {
            packing: p(PackLayout::GemmB, nr, 1, shape)?,
            transpose: false,
        }),
        OpKind::Gemm if opts.gemm && shape.len() == 2 => {
            let t = pattern::bool_attr(node, "trans_b")?;
            let logical = if t { vec![shape[1], shape[0]] } else { shape };
            Some(Packed {
                packing: p(PackLayout::GemmB, nr, 1, logical)?,
                transpose: t,
            })
        }
        OpKind::QMatMulInteger if opts.gemm && shape.len() == 2 && wt.dtype == DType::I8 => {
            let layout = if facts.int8_dot {
                PackLayout::Int8GemmB
            } else if facts.int8_pairs && i8_bound(g, id)? <= INT8_NARROW_BOUND {
                PackLayout::Int8GemmBNarrow
            } else {
                return None;
            };
            Some(Packed {
                packing: p(layout, nr, 1, shape)?,
                transpose: false,
            })
        }
        OpKind::Conv if opts.conv && shape.len() == 4 => {
            if pattern::enum_attr::<DataLayout>(node, "layout")? != DataLayout::Nhwc {
                return None;
            }
            let groups = u64::try_from(pattern::int_attr(node, "group")?).ok()?;
            let cout = shape[0];
            let cin = shape[1] * groups;
            let depthwise = groups == cin && cout == cin && shape[1] == 1;
            if depthwise {
                return facts.pack_depthwise.then(|| {
                    Some(Packed {
                        packing: p(PackLayout::DwConvNhwc, 1, 1, shape)?,
                        transpose: false,
                    })
                })?;
            }
            Some(Packed {
                packing: p(PackLayout::ConvNhwc, nr, groups, shape)?,
                transpose: false,
            })
        }
        _ => None,
    }
}

/// The attributes of the `nn.pack` / `nn.unpack` of `p`.
fn pack_attrs(p: &Packing, unpack: bool) -> Attrs {
    let mut a = Attrs::new();
    a.insert("layout".into(), Attr::of_enum(p.layout));
    a.insert("block".into(), Attr::Int(p.block as i64));
    a.insert("groups".into(), Attr::Int(p.groups as i64));
    if unpack {
        a.insert(
            "shape".into(),
            Attr::Ints(p.logical.iter().map(|&d| d as i64).collect()),
        );
    }
    a
}

/// Adds to `r` the weight `src` (named `name`, of `dtype`) packed as `p`, a
/// derived weight, its constant and the `nn.unpack` consumers read: the
/// unpacked value.
fn pack_through(r: &mut Recipe, name: &str, src: WRef, p: &Packing, dtype: DType) -> Val {
    let packed_ty = TensorType::fixed(dtype, &p.packed_shape());
    let pw = r.derived(
        &format!("{name}.{}", p.layout.name()),
        packed_ty.clone(),
        OpKind::Pack,
        pack_attrs(p, false),
        vec![src],
    );
    let c = r.push(NewNode::constant(
        &format!("{name}.{}", p.layout.name()),
        pw,
        packed_ty,
    ));
    r.push(NewNode::op(
        OpKind::Unpack,
        vec![c],
        pack_attrs(p, true),
        &format!("{name}.unpacked"),
        TensorType::fixed(dtype, &p.logical),
    ))
}

/// The contraction `n` is, directly or as the head of a fused epilogue:
/// the node, and the index of the outer operand holding its weight.
fn contraction(m: &Matcher<'_>, n: usize) -> Option<(Node, usize)> {
    let node = &m.g.nodes[n];
    match (&node.body, node.op) {
        (None, OpKind::MatMul | OpKind::Gemm | OpKind::Conv | OpKind::QMatMulInteger) => {
            Some((node.clone(), 1))
        }
        (Some(body), OpKind::Fused) => {
            let head = body.nodes.first()?;
            if !matches!(
                head.op,
                OpKind::MatMul | OpKind::Gemm | OpKind::Conv | OpKind::QMatMulInteger
            ) {
                return None;
            }
            let w = head.inputs.get(1).copied().flatten()?;
            // The weight must reach the body as an input used only there.
            let k = body.inputs.iter().position(|&b| b == w)?;
            let uses = body
                .nodes
                .iter()
                .flat_map(|b| b.operands())
                .filter(|&v| v == w)
                .count();
            (uses == 1 && !body.outputs.contains(&w)).then(|| (head.clone(), k))
        }
        _ => None,
    }
}

/// Decides whether node `n`'s constant weight packs.
pub fn plan(m: &Matcher<'_>, n: usize, opts: &Options, facts: &TargetFacts) -> Option<Recipe> {
    if m.g.nodes[n].op == OpKind::QMatMul {
        return plan_qgemv(m, n, opts, facts);
    }
    if let Some(r) = plan_qconv(m, n, opts, facts) {
        return Some(r);
    }
    let (head, k) = contraction(m, n)?;
    let node = &m.g.nodes[n];
    let w: ValueId = node.inputs.get(k).copied().flatten()?;
    let wt = m.ty(w).clone();
    let int8 = head.op == OpKind::QMatMulInteger && wt.dtype == DType::I8;
    if wt.dtype != DType::F32 && !int8 {
        return None;
    }
    let id = m.g.constant_weight(m.defs(), w)?;
    let packed = packing(m.g, id, &head, &wt, opts, facts)?;
    let p = &packed.packing;
    let name = m.g.weight(id).name.clone();
    let mut r = Recipe::at(n);
    let logical_ty = TensorType::fixed(wt.dtype, &p.logical);
    let src = if packed.transpose {
        let mut a = Attrs::new();
        a.insert("perm".into(), Attr::Ints(vec![1, 0]));
        r.derived(
            &format!("{name}.t"),
            logical_ty.clone(),
            OpKind::Transpose,
            a,
            vec![WRef::Old(id)],
        )
    } else {
        WRef::Old(id)
    };
    let u = pack_through(&mut r, &name, src, p, wt.dtype);
    // The consumer again, reading the unpacked weight (a Gemm no longer
    // transposes it).
    let mut inputs: Vec<Option<Val>> = node.inputs.iter().map(|v| v.map(Val::Old)).collect();
    inputs[k] = Some(u);
    let mut attrs = node.attrs.clone();
    let mut body = node.body.clone();
    if packed.transpose {
        match &mut body {
            Some(b) => {
                let bw = b.inputs[k];
                *b.value_ty_mut(bw) = r.ty(m.g, u).clone();
                b.nodes[0].attrs.insert("trans_b".into(), Attr::Bool(false));
            }
            None => {
                attrs.insert("trans_b".into(), Attr::Bool(false));
            }
        }
    }
    consumer_again(m, node, r, inputs, attrs, body)
}

/// Finishes recipe `r`: `node` again with `inputs`, `attrs` and `body`, its
/// results replacing the old ones.
fn consumer_again(
    m: &Matcher<'_>,
    node: &Node,
    mut r: Recipe,
    inputs: Vec<Option<Val>>,
    attrs: Attrs,
    body: Option<Box<Graph>>,
) -> Option<Recipe> {
    let results: Vec<(String, TensorType)> = node
        .outputs
        .iter()
        .map(|&v| (m.g.value(v).name.clone(), m.ty(v).clone()))
        .collect();
    let new = r.push(NewNode {
        op: node.op,
        inputs,
        attrs,
        results,
        weight: None,
        body,
    });
    let Val::New { node: ni, .. } = new else {
        return None;
    };
    for (i, &v) in node.outputs.iter().enumerate() {
        r.replace.push((
            v,
            Val::New {
                node: ni,
                result: i,
            },
        ));
    }
    Some(r)
}

/// The panel packings of a quantized weight's codes `w`, scales `s` and
/// zero points `z` (in that order) for a product contracting `k` values in
/// blocks of `block` (0: one per row), where the target's 4-bit kernels
/// read panels (`TargetFacts::qgemv_panel` = b > 0): 4-bit codes `[N,
/// Kw]` (with `bytes`, 8-bit ones too), f32/E8M0/E4M3 scales `[N,
/// blocks]`, blocks of a multiple of 8 or one per row, all constant. 4-bit
/// codes and zero points become `row_panels_k8`, 8-bit ones `row_panels`,
/// scales `row_panels`, with block b.
fn panel_packings(
    m: &Matcher<'_>,
    (w, s, z): (ValueId, ValueId, Option<ValueId>),
    k: u64,
    block: u64,
    facts: &TargetFacts,
    bytes: bool,
) -> Option<Vec<Packing>> {
    let b = facts.qgemv_panel;
    let (wt, st) = (m.ty(w), m.ty(s));
    let scale_ok = matches!(st.dtype, DType::F32 | DType::F8E8M0 | DType::F8E4M3FN);
    let bits = wt.dtype.bits();
    if b == 0 || k == 0 || !(bits == 4 || (bytes && bits == 8)) || !scale_ok {
        return None;
    }
    // 8-bit codes (convolutions): a K step of a panel is b bytes.
    let codes = if bits == 8 {
        PackLayout::RowPanels
    } else {
        PackLayout::RowPanelsK8
    };
    let ws = wt.static_shape()?;
    let ss = st.static_shape()?;
    if !(block == 0 || block >= k || block.is_multiple_of(8)) || ws.len() != 2 || ss.len() != 2 {
        return None;
    }
    m.g.constant_weight(m.defs(), w)?;
    m.g.constant_weight(m.defs(), s)?;
    let mut out = vec![
        Packing::new(codes, b, 1, ws).ok()?,
        Packing::new(PackLayout::RowPanels, b, 1, ss).ok()?,
    ];
    if let Some(z) = z {
        let zt = m.ty(z);
        let zs = zt.static_shape()?;
        if zt.dtype.bits() != bits || zs.len() != 2 {
            return None;
        }
        m.g.constant_weight(m.defs(), z)?;
        out.push(Packing::new(codes, b, 1, zs).ok()?);
    }
    Some(out)
}

/// The packings of a one-row `quant.matmul`'s operands (codes, scales and
/// zero points if any, by operand index; see the module doc), if its 4-bit
/// GEMV reads panels.
fn qgemv_packings(
    m: &Matcher<'_>,
    node: &Node,
    facts: &TargetFacts,
) -> Option<Vec<(usize, Packing)>> {
    let operand = |k: usize| node.inputs.get(k).copied().flatten();
    let (x, w, s) = (operand(0)?, operand(1)?, operand(2)?);
    if node.body.is_some() || operand(4).is_some() || node.attrs.contains_key("code_book") {
        return None;
    }
    let xt = m.ty(x);
    let xs = xt.static_shape()?;
    let k = *xs.last()?;
    let rows = xs.iter().product::<u64>() / k.max(1);
    if xt.dtype != DType::F32 || rows != 1 {
        return None;
    }
    let block = u64::try_from(pattern::int_attr(node, "block_size")?).ok()?;
    let z = operand(3);
    let p = panel_packings(m, (w, s, z), k, block, facts, false)?;
    Some([1, 2, 3].into_iter().zip(p).collect())
}

/// Packs the codes, scales and zero points of a one-row `quant.matmul`
/// (see the module doc).
fn plan_qgemv(m: &Matcher<'_>, n: usize, opts: &Options, facts: &TargetFacts) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    if !opts.gemm {
        return None;
    }
    let packings = qgemv_packings(m, node, facts)?;
    pack_operands(m, n, packings, node.body.clone())
}

/// Packs the codes, scales and zero points of an NHWC `quant.conv`, alone
/// or the head of a fused epilogue (its operands are then the fused node's,
/// each used once in the body), with 8-bit codes, or 4-bit codes and input
/// channels per group a multiple of 8 (the kernel decodes whole steps of 8
/// channels of a tap): the panels of [`panel_packings`].
fn plan_qconv(m: &Matcher<'_>, n: usize, opts: &Options, facts: &TargetFacts) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    if !opts.conv {
        return None;
    }
    // The quant.conv, and the outer operand index of each of its operands.
    let (head, outer): (&Node, Vec<Option<usize>>) = match (&node.body, node.op) {
        (None, OpKind::QConv) => (node, (0..node.inputs.len()).map(Some).collect()),
        (Some(body), OpKind::Fused) => {
            let head = body.nodes.first().filter(|h| h.op == OpKind::QConv)?;
            let idx = head
                .inputs
                .iter()
                .map(|v| {
                    let v = (*v)?;
                    let uses = body.nodes.iter().flat_map(|b| b.operands());
                    let once = uses.filter(|&u| u == v).count() == 1;
                    body.inputs
                        .iter()
                        .position(|&b| b == v)
                        .filter(|_| once && !body.outputs.contains(&v))
                })
                .collect();
            (head, idx)
        }
        _ => return None,
    };
    if pattern::enum_attr::<DataLayout>(head, "layout")? != DataLayout::Nhwc
        || head.attrs.contains_key("code_book")
    {
        return None;
    }
    let at = |k: usize| outer.get(k).copied().flatten();
    let val = |k: usize| node.inputs.get(at(k)?).copied().flatten();
    let (x, w, s) = (val(0)?, val(1)?, val(2)?);
    let z = match head.inputs.get(3).copied().flatten() {
        Some(_) => Some(val(3)?),
        None => None,
    };
    let xs = m.ty(x).static_shape()?;
    let group = u64::try_from(pattern::int_attr(head, "group")?)
        .ok()?
        .max(1);
    let Some(Attr::Ints(ks)) = head.attrs.get("kernel_shape") else {
        return None;
    };
    let cin_g = xs.get(3)? / group;
    // 4-bit codes decode in steps of 8 channels of a tap.
    let steps_ok = m.ty(w).dtype.bits() == 8 || cin_g.is_multiple_of(8);
    if xs.len() != 4 || ks.len() != 2 || !steps_ok {
        return None;
    }
    let k = u64::try_from(ks[0] * ks[1]).ok()? * cin_g;
    let block = u64::try_from(pattern::int_attr(head, "block_size")?).ok()?;
    let p = panel_packings(m, (w, s, z), k, block, facts, true)?;
    let packings = [at(1)?, at(2)?]
        .into_iter()
        .chain(z.and_then(|_| at(3)))
        .zip(p)
        .collect();
    pack_operands(m, n, packings, node.body.clone())
}

/// Node `n` again with each operand `k` of `packings` packed as its
/// packing (the constant behind an `nn.unpack`); `body` kept (operand
/// types do not change).
fn pack_operands(
    m: &Matcher<'_>,
    n: usize,
    packings: Vec<(usize, Packing)>,
    body: Option<Box<Graph>>,
) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    let mut r = Recipe::at(n);
    let mut inputs: Vec<Option<Val>> = node.inputs.iter().map(|v| v.map(Val::Old)).collect();
    for (k, p) in packings {
        let v = node.inputs[k]?;
        let id = m.g.constant_weight(m.defs(), v)?;
        let name = m.g.weight(id).name.clone();
        inputs[k] = Some(pack_through(
            &mut r,
            &name,
            WRef::Old(id),
            &p,
            m.ty(v).dtype,
        ));
    }
    consumer_again(m, node, r, inputs, node.attrs.clone(), body)
}

#[cfg(test)]
#[path = "pack_weights_tests.rs"]
mod tests;
