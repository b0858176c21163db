//! `quantize-weights`: weight-only quantization. Each `nn.matmul` with a
//! constant 2-D f32 weight `B[K, N]` and each `nn.gemm` with a constant
//! weight (`trans_a` off, `alpha = 1`) becomes a `quant.matmul` whose
//! weight operands are derived weights `quant.quantize_weight(@w)` (codes,
//! block scales, zero points, double-quantized scales), computed when the
//! artifact's weights are written, so the artifact stores the packed codes
//! and the f32 weight is no longer referenced (dce drops it). A Gemm's
//! bias becomes an `nn.add` (times `beta`) after the product.
//!
//! The scheme and its parameters come in as [`Options`] through
//! `PassOptions::quantize` (`kiln compile --quantize=...`, `kiln opt
//! --quantize=...`); without a scheme the pass does nothing, so it can
//! sit in any pipeline. Weights with fewer than `min_elements` values, and
//! nodes named in `exclude` (their ONNX node name, their result's name or
//! their weight's name), stay f32.
//!
//! With `dynamic_activations` (int8 only: `--quantize=int8
//! --quantize-activations=dynamic`), the activations are quantized too, at
//! run time, as ONNX Runtime's `quantize_dynamic` does: each product's input
//! goes through ONNX's DynamicQuantizeLinear (uint8, per tensor, range
//! including 0; the same composition the ONNX importer builds), the weight is
//! stored as int8 `[K, N]` codes with per-column scales, and the product is
//! `quant.matmul_integer` (int32, exact) cast to f32 and scaled by
//! `a_scale * w_scale[n]`: int8 dot products (VNNI where the CPU has them)
//! instead of f32 ones.
//!
//! Asked for (`ops` holding `nn.conv`: `kiln compile --quantize-ops=Conv`),
//! 2-D NCHW convolutions with a constant weight are quantized too: with
//! int8 dynamic activations into `quant.conv_integer` (int8 codes with one
//! scale per output channel, ONNX Runtime's `quantize_dynamic` structure);
//! with a weight-only scheme into `quant.conv`, the weight's rows taken in
//! window order (`[C_out, kh, kw, C_in / group]`, the order an NHWC window
//! is read in) and quantized along them in blocks, like a MatMul's.
//! Depthwise convolutions stay f32 (a few taps per channel); NVFP4 (its
//! per-tensor scale) and double-quantized scales are refused for Conv.
//!
//! The rewrite changes values (that is the point): tests check the result
//! against the f32 graph within the scheme's error, and against an
//! independent dequantization.
//! Preconditions: a verified graph. Graph outputs keep their names and types.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::{sweep_pass, Direction, NewNode, Recipe, Val, WRef};
use kiln_ir::codec::block::{Scheme, DOUBLE_QUANT_BLOCK};
use kiln_ir::ops::QuantPart;
use kiln_ir::{Attr, Attrs, DType, Dim, OpKind, TensorType, ValueId};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "quantize-weights",
    summary: "Weight-only quantization: MatMul/Gemm (and, asked for, Conv) with constant f32 weights become quant.matmul / quant.conv over block-quantized derived weights (PassOptions::quantize)",
    create: || Box::new(QuantizeWeights),
};

/// Options of `quantize-weights` (part of `PassOptions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The scheme; `None` disables the pass.
    pub scheme: Option<Scheme>,
    /// Values per block along K; `None` takes the scheme's default
    /// (`Scheme::default_block`), 0 is one block per output channel.
    pub block_size: Option<usize>,
    /// Which contractions to quantize (`nn.matmul`, `nn.gemm`, `nn.conv`).
    pub ops: Vec<OpKind>,
    /// Nodes to leave alone: ONNX node names, result names or weight names.
    pub exclude: Vec<String>,
    /// Double-quantize NF4 block scales (bitsandbytes' nested statistics).
    pub double_quant: bool,
    /// Weights with fewer values stay f32.
    pub min_elements: u64,
    /// Quantize each product's activations at run time (int8 only).
    pub dynamic_activations: bool,
    /// With `dynamic_activations` and int8: quantize the MatMul/Gemm weights
    /// as int7 (`Some(true)`), keep int8 (`Some(false)`), or let the target
    /// decide (`None`: int7 where `TargetFacts::int8_pairs`).
    pub reduce_range: Option<bool>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            scheme: None,
            block_size: None,
            ops: vec![OpKind::MatMul, OpKind::Gemm],
            exclude: Vec::new(),
            double_quant: false,
            min_elements: 1024,
            dynamic_activations: false,
            reduce_range: None,
        }
    }
}

impl Options {
    /// Options for `scheme` with everything else at its default.
    pub fn scheme(scheme: Scheme) -> Options {
        Options {
            scheme: Some(scheme),
            ..Options::default()
        }
    }

    /// The block size used: the asked one or the scheme's default.
    pub fn block(&self, scheme: Scheme) -> usize {
        let (def, fixed) = scheme.default_block();
        if fixed {
            def
        } else {
            self.block_size.unwrap_or(def)
        }
    }
}

/// The weight quantization pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuantizeWeights;

impl Pass for QuantizeWeights {
    pass_info!();
    fn run(&self, g: &mut kiln_ir::Graph, opts: &PassOptions) -> Result<PassStats, PassError> {
        let q = &opts.quantize;
        let Some(scheme) = q.scheme else {
            return Ok(PassStats::default());
        };
        if q.double_quant && scheme != Scheme::Nf4 {
            return Err(unsupported(
                "double quantization applies to nf4 only".into(),
            ));
        }
        if q.ops.contains(&OpKind::Conv) && !q.dynamic_activations {
            if q.double_quant {
                return Err(unsupported(
                    "double-quantized scales apply to MatMul/Gemm weights; quant.conv takes \
                     f32, E8M0 or E4M3 scales (leave Conv out of --quantize-ops, or drop \
                     --double-quant)"
                        .into(),
                ));
            }
            if scheme == Scheme::Nvfp4 {
                return Err(unsupported(
                    "nvfp4's per-tensor scale has no place in quant.conv; quantize Conv \
                     weights as mxfp4, nf4, int4, fp8 or int8"
                        .into(),
                ));
            }
        }
        if q.dynamic_activations && !matches!(scheme, Scheme::Int(7 | 8)) {
            return Err(unsupported(format!(
                "dynamic activation quantization applies to int8 (or int7), not {}",
                scheme.name()
            )));
        }
        // Where the target's exact 8-bit products need i8 weights within [-64, 64] (x86 AVX2's
        // pmaddubsw pairs, `TargetFacts::int8_pairs`), the products' int8 weights get 7 bits,
        // as ONNX Runtime's `reduce_range` does, unless the options say otherwise;
        // convolutions (no such kernel reads their weights) keep 8.
        let reduce = q.reduce_range.unwrap_or(opts.target.int8_pairs);
        let scheme = if q.dynamic_activations && scheme == Scheme::Int(8) && reduce {
            tracing::info!(
                "quantize-weights: int8 MatMul/Gemm weights as int7 (codes within [-63, 63]) \
                 for this CPU's exact pmaddubsw products"
            );
            Scheme::Int(7)
        } else {
            scheme
        };
        let block = q.block(scheme);
        let per = kiln_ir::codec::packing::per_byte(scheme.code_dtype().bits().min(8));
        if !block.is_multiple_of(per) {
            return Err(unsupported(format!(
                "block size {block} must be a multiple of {per} for {} codes",
                scheme.name()
            )));
        }
        Ok(sweep_pass(g, Direction::Forward, |m, n| {
            plan(m, n, q, scheme, block)
        }))
    }
}

fn unsupported(what: String) -> PassError {
    PassError::Unsupported {
        pass: INFO.name,
        what,
    }
}

/// The attributes of one `quant.quantize_weight` part.
fn qw_attrs(scheme: Scheme, block: usize, axis: i64, part: QuantPart, double: bool) -> Attrs {
    let mut a = Attrs::new();
    a.insert("scheme".into(), Attr::of_enum(scheme));
    a.insert("block_size".into(), Attr::Int(block as i64));
    a.insert("axis".into(), Attr::Int(axis));
    a.insert("part".into(), Attr::of_enum(part));
    a.insert("double_quant".into(), Attr::Bool(double));
    a
}

/// The derived weight `@{weight}.{scheme}.{part}`: one part of `weight`
/// quantized (`quant.quantize_weight`), of type `ty`.
#[allow(clippy::too_many_arguments)]
fn derived_part(
    r: &mut Recipe,
    weight: (kiln_ir::WeightId, &str),
    scheme: Scheme,
    block: usize,
    axis: i64,
    part: QuantPart,
    double: bool,
    ty: TensorType,
) -> WRef {
    r.derived(
        &format!("{}.{}.{part}", weight.1, scheme.name()),
        ty,
        OpKind::QuantizeWeight,
        qw_attrs(scheme, block, axis, part, double),
        vec![WRef::Old(weight.0)],
    )
}

/// Whether `--exclude` names the node (its ONNX name), its result or its
/// weight.
fn excluded(opts: &Options, node: &kiln_ir::Node, result: &str, weight: &str) -> bool {
    opts.exclude
        .iter()
        .any(|e| node.loc.as_deref() == Some(e.as_str()) || result == e || weight == e)
}

/// Decides whether node `n`'s weight is quantized.
pub fn plan(
    m: &Matcher<'_>,
    n: usize,
    opts: &Options,
    scheme: Scheme,
    block: usize,
) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    if !opts.ops.contains(&node.op) || node.body.is_some() {
        return None;
    }
    if node.op == OpKind::Conv {
        if opts.dynamic_activations {
            return plan_conv(m, n, opts);
        }
        return plan_conv_weights(m, n, opts, scheme, block);
    }
    let a = node.inputs.first().copied().flatten()?;
    let w: ValueId = node.inputs.get(1).copied().flatten()?;
    let wt = m.ty(w).clone();
    let shape = wt.static_shape()?;
    if wt.dtype != DType::F32 || shape.len() != 2 || m.ty(a).dtype != DType::F32 {
        return None;
    }
    let id = m.g.constant_weight(m.defs(), w)?;
    let wname = m.g.weight(id).name.clone();
    let out = *node.outputs.first()?;
    if excluded(opts, node, &m.g.value(out).name, &wname) || shape[0] * shape[1] < opts.min_elements
    {
        return None;
    }
    // The contraction axis of the stored weight, and the bias of a Gemm.
    let (axis, bias) = match node.op {
        OpKind::MatMul => {
            if m.ty(a).rank() < 1 {
                return None;
            }
            (0, None)
        }
        OpKind::Gemm => {
            if pattern::bool_attr(node, "trans_a")? || pattern::float_attr(node, "alpha")? != 1.0 {
                return None;
            }
            let t = pattern::bool_attr(node, "trans_b")?;
            let beta = pattern::float_attr(node, "beta")?;
            (
                i64::from(t),
                node.inputs.get(2).copied().flatten().map(|c| (c, beta)),
            )
        }
        _ => return None,
    };
    let (k, nn) = if axis == 0 {
        (shape[0], shape[1])
    } else {
        (shape[1], shape[0])
    };
    if m.ty(a).dims.last() != Some(&Dim::Static(k)) {
        return None;
    }
    if opts.dynamic_activations {
        let w = Weighted {
            a,
            id,
            name: &wname,
            axis,
            k,
            n: nn,
        };
        return Some(plan_dynamic(m, n, out, w, bias, scheme));
    }
    let double = opts.double_quant && scheme == Scheme::Nf4;
    let mut r = Recipe::at(n);
    let kp = kiln_ir::codec::block::padded_k(k as usize, block, scheme.code_dtype()) as u64;
    let nb = kiln_ir::codec::block::blocks_per_row(k as usize, block) as u64;
    let part = |r: &mut Recipe, part: QuantPart, ty: TensorType| -> Val {
        let name = format!("{wname}.{}.{part}", scheme.name());
        let d = derived_part(
            r,
            (id, &wname),
            scheme,
            block,
            axis,
            part,
            double,
            ty.clone(),
        );
        r.push(NewNode::constant(&name, d, ty))
    };
    let codes = part(
        &mut r,
        QuantPart::Codes,
        TensorType::fixed(scheme.code_dtype(), &[nn, kp]),
    );
    let scale_dt = if double {
        DType::U8
    } else {
        scheme.scale_dtype()
    };
    let scales = part(
        &mut r,
        QuantPart::Scales,
        TensorType::fixed(scale_dt, &[nn, nb]),
    );
    let mut inputs = vec![Some(Val::Old(a)), Some(codes), Some(scales)];
    if scheme.has_zero_point() {
        let cols = kiln_ir::codec::block::zero_point_cols(nb as usize, scheme.code_dtype());
        let z = part(
            &mut r,
            QuantPart::ZeroPoints,
            TensorType::fixed(scheme.code_dtype(), &[nn, cols as u64]),
        );
        inputs.push(Some(z));
    }
    if double {
        if inputs.len() == 3 {
            inputs.push(None);
        }
        let groups = (nn * nb).div_ceil(DOUBLE_QUANT_BLOCK as u64);
        let am = part(
            &mut r,
            QuantPart::ScaleAbsmax,
            TensorType::fixed(DType::F32, &[groups]),
        );
        let off = part(
            &mut r,
            QuantPart::ScaleOffset,
            TensorType::fixed(DType::F32, &[]),
        );
        inputs.push(Some(am));
        inputs.push(Some(off));
    }
    let out_name = m.g.value(out).name.clone();
    let out_ty = m.ty(out).clone();
    let mut attrs = Attrs::new();
    attrs.insert("block_size".into(), Attr::Int(block as i64));
    // NVFP4's per-tensor scale multiplies the product (quant.matmul has
    // none): `a . (c * s * g)ᵀ = (a . (c * s)ᵀ) * g`.
    let global = (scheme == Scheme::Nvfp4).then(|| {
        part(
            &mut r,
            QuantPart::GlobalScale,
            TensorType::fixed(DType::F32, &[]),
        )
    });
    let prod_name = if bias.is_some() || global.is_some() {
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
    if let Some(g) = global {
        let name = if bias.is_some() {
            format!("{out_name}.scaled")
        } else {
            out_name.clone()
        };
        y = r.push(NewNode::op(
            OpKind::Mul,
            vec![y, g],
            Attrs::new(),
            &name,
            out_ty.clone(),
        ));
    }
    if let Some(bias) = bias {
        y = r.gemm_bias(y, bias, m.ty(bias.0).clone(), &out_name, out_ty);
    }
    r.replace.push((out, y));
    Some(r)
}

/// A contraction's activation and constant weight, as [`plan`] found them.
struct Weighted<'a> {
    /// The activation `[.., M, K]`.
    a: ValueId,
    /// The weight and its name.
    id: kiln_ir::WeightId,
    name: &'a str,
    /// The stored weight's K axis (1: `[N, K]`, a Gemm's `trans_b`).
    axis: i64,
    k: u64,
    n: u64,
}

fn f32_scalar(r: &mut Recipe, name: &str, v: f32) -> Val {
    r.constant(
        name,
        kiln_ir::Weight {
            name: name.to_string(),
            ty: TensorType::fixed(DType::F32, &[]),
            data: kiln_ir::WeightData::Bytes(kiln_ir::Blob::from_vec(v.to_le_bytes().to_vec())),
            source: None,
        },
    )
}

/// DynamicQuantizeLinear of `a` (type `a_ty`) as
/// [`kiln_ir::ops::dynamic_quantize_linear_body`] defines it, each result
/// named by `name`; returns `(y, y_scale, y_zero_point)`.
fn dynamic_quantize(
    r: &mut Recipe,
    a: Val,
    a_ty: &TensorType,
    name: &dyn Fn(&str) -> String,
) -> (Val, Val, Val) {
    use kiln_ir::ops::{DqlOperand, DqlShape, DQL_SCALE, DQL_Y, DQL_ZERO_POINT};
    let mut done: Vec<Val> = Vec::new();
    let mut consts: Vec<(u32, Val)> = Vec::new();
    for st in kiln_ir::ops::dynamic_quantize_linear_body() {
        let mut ins = Vec::with_capacity(st.inputs.len());
        for o in &st.inputs {
            ins.push(match *o {
                DqlOperand::X => a,
                DqlOperand::Step(j) => done[j],
                DqlOperand::Const(cname, v) => match consts.iter().find(|(b, _)| *b == v.to_bits())
                {
                    Some(&(_, c)) => c,
                    None => {
                        let c = f32_scalar(r, &name(cname), v);
                        consts.push((v.to_bits(), c));
                        c
                    }
                },
            });
        }
        let ty = match st.shape {
            DqlShape::Scalar => TensorType::fixed(st.dtype, &[]),
            DqlShape::LikeX => TensorType::new(st.dtype, a_ty.dims.clone()),
        };
        done.push(r.push(NewNode::op(st.kind, ins, st.attrs, &name(st.name), ty)));
    }
    (done[DQL_Y], done[DQL_SCALE], done[DQL_ZERO_POINT])
}

/// Node `n` (result `out`) as int8 dynamic quantization: ONNX's
/// DynamicQuantizeLinear of the activation (as `kiln_onnx`'s
/// `compose::dynamic_quantize_linear` builds it), `quant.matmul_integer`
/// with the int8 weight `[K, N]`, then `f32(acc) * (a_scale * w_scale)`.
fn plan_dynamic(
    m: &Matcher<'_>,
    n: usize,
    out: ValueId,
    w: Weighted<'_>,
    bias: Option<(ValueId, f64)>,
    scheme: Scheme,
) -> Recipe {
    let mut r = Recipe::at(n);
    let out_name = m.g.value(out).name.clone();
    let out_ty = m.ty(out).clone();
    let a_ty = m.ty(w.a).clone();
    let p = |s: &str| format!("{out_name}.dq.{s}");
    // The weight: int8 codes [N, K] with one scale per output channel, both
    // transposed for the product ([K, N] codes, [1, N] scales).
    let derive = |r: &mut Recipe, part: QuantPart, ty: TensorType| {
        derived_part(r, (w.id, w.name), scheme, 0, w.axis, part, false, ty)
    };
    let transposed = |r: &mut Recipe, src: WRef, name: String, ty: TensorType| {
        let mut attrs = Attrs::new();
        attrs.insert("perm".into(), Attr::Ints(vec![1, 0]));
        let d = r.derived(&name, ty.clone(), OpKind::Transpose, attrs, vec![src]);
        r.push(NewNode::constant(&name, d, ty))
    };
    let codes = derive(
        &mut r,
        QuantPart::Codes,
        TensorType::fixed(DType::I8, &[w.n, w.k]),
    );
    let codes = transposed(
        &mut r,
        codes,
        format!("{}.{}.codes_kn", w.name, scheme.name()),
        TensorType::fixed(DType::I8, &[w.k, w.n]),
    );
    let scales = derive(
        &mut r,
        QuantPart::Scales,
        TensorType::fixed(DType::F32, &[w.n, 1]),
    );
    let w_scale = transposed(
        &mut r,
        scales,
        format!("{}.{}.scales_1n", w.name, scheme.name()),
        TensorType::fixed(DType::F32, &[1, w.n]),
    );
    // DynamicQuantizeLinear, replayed from its one definition in kiln-ir.
    let (aq, scale, zp) = dynamic_quantize(&mut r, Val::Old(w.a), &a_ty, &p);
    // The int32 product, in f32, times a_scale * w_scale[n].
    let op =
        |r: &mut Recipe, kind: OpKind, ins: Vec<Val>, attrs: Attrs, s: &str, ty: &TensorType| {
            r.push(NewNode::op(kind, ins, attrs, &p(s), ty.clone()))
        };
    let acc_ty = TensorType::new(DType::I32, out_ty.dims.clone());
    let acc = op(
        &mut r,
        OpKind::QMatMulInteger,
        vec![aq, codes, zp],
        Attrs::new(),
        "acc",
        &acc_ty,
    );
    let s_ty = TensorType::fixed(DType::F32, &[1, w.n]);
    let scales = (scale, w_scale, s_ty);
    let mut y = scaled_product(&mut r, acc, scales, &out_ty, &out_name, bias.is_some());
    if let Some(bias) = bias {
        y = r.gemm_bias(y, bias, m.ty(bias.0).clone(), &out_name, out_ty);
    }
    r.replace.push((out, y));
    r
}

/// `f32(acc) * (x_scale * w_scale)` for an int32 product `acc` of type
/// `out_ty` (as i32); `scales` is `(x_scale, w_scale, type of their
/// product)`. The result is named `out_name`, or `{out_name}.q` when a bias
/// follows; the other nodes `{out_name}.dq.accf` and `{out_name}.dq.s`.
fn scaled_product(
    r: &mut Recipe,
    acc: Val,
    (x_scale, w_scale, s_ty): (Val, Val, TensorType),
    out_ty: &TensorType,
    out_name: &str,
    then_bias: bool,
) -> Val {
    let mut to = Attrs::new();
    to.insert("to".into(), Attr::DType(DType::F32));
    let accf = r.push(NewNode::op(
        OpKind::Cast,
        vec![acc],
        to,
        &format!("{out_name}.dq.accf"),
        out_ty.clone(),
    ));
    let s = r.push(NewNode::op(
        OpKind::Mul,
        vec![x_scale, w_scale],
        Attrs::new(),
        &format!("{out_name}.dq.s"),
        s_ty,
    ));
    let name = if then_bias {
        format!("{out_name}.q")
    } else {
        out_name.to_string()
    };
    r.push(NewNode::op(
        OpKind::Mul,
        vec![accf, s],
        Attrs::new(),
        &name,
        out_ty.clone(),
    ))
}

/// An i64 weight holding `dims` (a reshape's shape operand).
fn shape_weight(r: &mut Recipe, name: &str, dims: &[u64]) -> WRef {
    let bytes: Vec<u8> = dims
        .iter()
        .flat_map(|&d| (d as i64).to_le_bytes())
        .collect();
    r.weight(crate::rewrite::NewWeight {
        name: name.to_string(),
        ty: TensorType::fixed(DType::I64, &[dims.len() as u64]),
        data: crate::rewrite::NewData::Bytes(kiln_ir::Blob::from_vec(bytes), None),
    })
}

/// A derived weight: `src` reshaped to `dims` (same element order).
fn reshaped_weight(r: &mut Recipe, src: WRef, name: &str, dtype: DType, dims: &[u64]) -> Val {
    let shape = shape_weight(r, &format!("{name}.shape"), dims);
    let ty = TensorType::fixed(dtype, dims);
    let d = r.derived(
        name,
        ty.clone(),
        OpKind::Reshape,
        Attrs::new(),
        vec![src, shape],
    );
    r.push(NewNode::constant(name, d, ty))
}

/// A 2-D NCHW `nn.conv` node `n` with an f32 input (and bias) and a
/// constant f32 OIHW weight, not excluded and not below `min_elements`:
/// its input, weight (id, name, shape), bias and result.
struct ConvWeight {
    x: ValueId,
    id: kiln_ir::WeightId,
    name: String,
    shape: Vec<u64>,
    bias: Option<ValueId>,
    out: ValueId,
}

fn conv_weight(m: &Matcher<'_>, n: usize, opts: &Options) -> Option<ConvWeight> {
    let node = &m.g.nodes[n];
    let x = node.inputs.first().copied().flatten()?;
    let w = node.inputs.get(1).copied().flatten()?;
    let bias = node.inputs.get(2).copied().flatten();
    let wt = m.ty(w).clone();
    let shape = wt.static_shape()?;
    if wt.dtype != DType::F32 || shape.len() != 4 || m.ty(x).dtype != DType::F32 {
        return None;
    }
    if m.ty(x).rank() != 4 || bias.is_some_and(|b| m.ty(b).dtype != DType::F32) {
        return None;
    }
    // NCHW only (the pass runs before layouts are assigned).
    if matches!(node.attrs.get("layout"), Some(Attr::Str(l)) if l != "nchw") {
        return None;
    }
    let id = m.g.constant_weight(m.defs(), w)?;
    let name = m.g.weight(id).name.clone();
    let out = *node.outputs.first()?;
    let (co, k) = (shape[0], shape[1] * shape[2] * shape[3]);
    if excluded(opts, node, &m.g.value(out).name, &name) || co * k < opts.min_elements || k == 0 {
        return None;
    }
    Some(ConvWeight {
        x,
        id,
        name,
        shape,
        bias,
        out,
    })
}

/// `nn.conv` node `n` (2-D, constant f32 weight `[C_out, C_in / group, kh,
/// kw]`, NCHW) with a weight-only `scheme`: `quant.conv` over derived
/// weights, the weight's taps moved before its channels (`[C_out, kh, kw,
/// C_in / group]`, flattened to rows of K codes, the order `quant.conv`
/// reads) and quantized along K in blocks of `block`. Depthwise
/// convolutions (one input channel per group) stay f32: their weights are
/// a few taps per channel, and their kernel reads f32 taps.
fn plan_conv_weights(
    m: &Matcher<'_>,
    n: usize,
    opts: &Options,
    scheme: Scheme,
    block: usize,
) -> Option<Recipe> {
    let node = &m.g.nodes[n];
    let cw = conv_weight(m, n, opts)?;
    let (shape, wname) = (&cw.shape, &cw.name);
    let group = pattern::int_attr(node, "group").unwrap_or(1).max(1) as u64;
    if shape[1] == 1 && group > 1 {
        return None;
    }
    let (co, k) = (shape[0], shape[1] * shape[2] * shape[3]);
    let mut r = Recipe::at(n);
    let mut perm = Attrs::new();
    perm.insert("perm".into(), Attr::Ints(vec![0, 2, 3, 1]));
    let ohwi = r.derived(
        &format!("{wname}.ohwi"),
        TensorType::fixed(DType::F32, &[shape[0], shape[2], shape[3], shape[1]]),
        OpKind::Transpose,
        perm,
        vec![WRef::Old(cw.id)],
    );
    let mut fa = Attrs::new();
    fa.insert("axis".into(), Attr::Int(1));
    let rows = r.derived(
        &format!("{wname}.rows"),
        TensorType::fixed(DType::F32, &[co, k]),
        OpKind::Flatten,
        fa,
        vec![ohwi],
    );
    let kp = kiln_ir::codec::block::padded_k(k as usize, block, scheme.code_dtype()) as u64;
    let nb = kiln_ir::codec::block::blocks_per_row(k as usize, block) as u64;
    let part = |r: &mut Recipe, part: QuantPart, ty: TensorType| -> Val {
        let name = format!("{wname}.{}.{part}", scheme.name());
        let d = r.derived(
            &name,
            ty.clone(),
            OpKind::QuantizeWeight,
            qw_attrs(scheme, block, 1, part, false),
            vec![rows],
        );
        r.push(NewNode::constant(&name, d, ty))
    };
    let codes = part(
        &mut r,
        QuantPart::Codes,
        TensorType::fixed(scheme.code_dtype(), &[co, kp]),
    );
    let scales = part(
        &mut r,
        QuantPart::Scales,
        TensorType::fixed(scheme.scale_dtype(), &[co, nb]),
    );
    let mut inputs = vec![Some(Val::Old(cw.x)), Some(codes), Some(scales), None];
    if scheme.has_zero_point() {
        let cols = kiln_ir::codec::block::zero_point_cols(nb as usize, scheme.code_dtype());
        inputs[3] = Some(part(
            &mut r,
            QuantPart::ZeroPoints,
            TensorType::fixed(scheme.code_dtype(), &[co, cols as u64]),
        ));
    }
    inputs.push(cw.bias.map(Val::Old));
    while inputs.last().is_some_and(Option::is_none) {
        inputs.pop();
    }
    let mut attrs = node.attrs.clone();
    attrs.insert("block_size".into(), Attr::Int(block as i64));
    attrs.insert(
        "kernel_shape".into(),
        Attr::Ints(vec![shape[2] as i64, shape[3] as i64]),
    );
    let y = r.push(NewNode {
        op: OpKind::QConv,
        inputs,
        attrs,
        results: vec![(m.g.value(cw.out).name.clone(), m.ty(cw.out).clone())],
        weight: None,
        body: None,
    });
    r.replace.push((cw.out, y));
    Some(r)
}

/// `nn.conv` node `n` (2-D, constant f32 weight `[C_out, C_in / group, kh,
/// kw]`, NCHW) as int8 dynamic quantization, the structure ONNX Runtime's
/// `quantize_dynamic` gives a Conv (DynamicQuantizeLinear, ConvInteger,
/// Cast, Mul, Add): the activation through DynamicQuantizeLinear, the
/// weight as symmetric int8 codes with one scale per output channel (the
/// weight flattened to `[C_out, K]` rows for the codec, the codes reshaped
/// back), `quant.conv_integer` with the node's attributes (exact int32),
/// then `f32(acc) * (x_scale * w_scale[c])` and the bias.
fn plan_conv(m: &Matcher<'_>, n: usize, opts: &Options) -> Option<Recipe> {
    let scheme = opts.scheme?;
    if !opts.dynamic_activations || !matches!(scheme, Scheme::Int(7 | 8)) {
        return None;
    }
    let node = &m.g.nodes[n];
    let ConvWeight {
        x,
        id,
        name: wname,
        shape,
        bias,
        out,
    } = conv_weight(m, n, opts)?;
    let (co, k) = (shape[0], shape[1] * shape[2] * shape[3]);
    let mut r = Recipe::at(n);
    let out_name = m.g.value(out).name.clone();
    let out_ty = m.ty(out).clone();
    let p = |s: &str| format!("{out_name}.dq.{s}");
    // The weight as [C_out, K] rows, quantized per row (block 0, K axis 1).
    let mut fa = Attrs::new();
    fa.insert("axis".into(), Attr::Int(1));
    let rows = r.derived(
        &format!("{wname}.rows"),
        TensorType::fixed(DType::F32, &[co, k]),
        OpKind::Flatten,
        fa,
        vec![WRef::Old(id)],
    );
    let part = |r: &mut Recipe, part: QuantPart, ty: TensorType| {
        r.derived(
            &format!("{wname}.int8.{part}"),
            ty,
            OpKind::QuantizeWeight,
            qw_attrs(scheme, 0, 1, part, false),
            vec![rows],
        )
    };
    let codes = part(
        &mut r,
        QuantPart::Codes,
        TensorType::fixed(DType::I8, &[co, k]),
    );
    let codes = reshaped_weight(
        &mut r,
        codes,
        &format!("{wname}.int8.codes_oihw"),
        DType::I8,
        &shape,
    );
    let scales = part(
        &mut r,
        QuantPart::Scales,
        TensorType::fixed(DType::F32, &[co, 1]),
    );
    let per_channel = [1, co, 1, 1];
    let w_scale = reshaped_weight(
        &mut r,
        scales,
        &format!("{wname}.int8.scales_c"),
        DType::F32,
        &per_channel,
    );
    let (xq, scale, zp) = dynamic_quantize(&mut r, Val::Old(x), m.ty(x), &p);
    let acc_ty = TensorType::new(DType::I32, out_ty.dims.clone());
    let acc = r.push(NewNode::op(
        OpKind::QConvInteger,
        vec![xq, codes, zp],
        node.attrs.clone(),
        &p("acc"),
        acc_ty,
    ));
    let scales = (scale, w_scale, TensorType::fixed(DType::F32, &per_channel));
    let mut y = scaled_product(&mut r, acc, scales, &out_ty, &out_name, bias.is_some());
    if let Some(b) = bias {
        let shape = shape_weight(&mut r, &p("bias_shape"), &per_channel);
        let shape = r.push(NewNode::constant(
            &p("bias_shape"),
            shape,
            TensorType::fixed(DType::I64, &[4]),
        ));
        let b = r.push(NewNode::op(
            OpKind::Reshape,
            vec![Val::Old(b), shape],
            Attrs::new(),
            &p("bias"),
            TensorType::fixed(DType::F32, &per_channel),
        ));
        y = r.push(NewNode::op(
            OpKind::Add,
            vec![y, b],
            Attrs::new(),
            &out_name,
            out_ty,
        ));
    }
    r.replace.push((out, y));
    Some(r)
}

#[cfg(test)]
#[path = "quantize_weights_tests.rs"]
mod tests;
