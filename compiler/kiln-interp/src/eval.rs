//! Node evaluation (the exhaustive dispatch over [`OpKind`]) and the graph
//! runner.

use crate::ops::{
    attention as attn, elementwise as ew, indexing as ix, layout, linalg, norm, pool, quant,
};
use crate::ops::{reduce as red, resize, shape as sh, signal};
use crate::tensor::numel;
use crate::{InterpError, Limits, Tensor};
use kiln_ir::ops::infer::ConstOperand;
use kiln_ir::ops::InferCtx;
use kiln_ir::{
    Attr, Blob, Dim, Graph, Node, OpKind, TensorType, ValueId, Weight, WeightData, WeightId,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Operands no larger than this are shown to shape inference as constants,
/// so that ops whose result shape depends on operand data (reshape, slice,
/// range, ...) infer a static shape.
const CONST_OPERAND_ELEMENTS: usize = 1 << 16;

/// What an op implementation sees: attributes (through the op's schema),
/// operands, weights and limits.
pub(crate) struct Op<'a> {
    /// Attribute reader with schema defaults and concrete operand types.
    pub a: &'a InferCtx<'a>,
    /// Operands; `None` for absent optional operands.
    pub ins: &'a [Option<&'a Tensor>],
    /// The graph's weights (for `nn.constant`).
    pub weights: &'a [Weight],
    /// Resource limits.
    pub limits: Limits,
    /// Results the node declares.
    pub num_outputs: usize,
}

impl<'a> Op<'a> {
    /// Operand `i`, which must be present.
    pub fn input(&self, i: usize) -> Result<&'a Tensor, InterpError> {
        match self.ins.get(i) {
            Some(Some(t)) => Ok(t),
            _ => Err(InterpError::Invalid(format!("operand #{i} is required"))),
        }
    }

    /// Operand `i` if present.
    pub fn opt(&self, i: usize) -> Option<&'a Tensor> {
        self.ins.get(i).copied().flatten()
    }

    /// All present operands.
    pub fn present(&self) -> Vec<&'a Tensor> {
        self.ins.iter().flatten().copied().collect()
    }

    /// Refuses result shapes above the element limit.
    pub fn check(&self, shape: &[u64]) -> Result<(), InterpError> {
        let n = numel(shape).unwrap_or(u64::MAX);
        if n > self.limits.max_elements {
            return Err(InterpError::TooLarge {
                elements: n,
                limit: self.limits.max_elements,
            });
        }
        Ok(())
    }
}

/// Evaluates one node on concrete operands (`None` for absent optional
/// operands). `weights` is the graph's weight table ([`Graph::weights`]).
pub fn eval_node(
    weights: &[Weight],
    node: &Node,
    inputs: &[Option<&Tensor>],
    limits: &Limits,
) -> Result<Vec<Tensor>, InterpError> {
    eval_inner(weights, node, inputs, limits).map_err(|e| InterpError::Node {
        node: node.describe(),
        source: Box::new(e),
    })
}

fn eval_inner(
    weights: &[Weight],
    node: &Node,
    inputs: &[Option<&Tensor>],
    limits: &Limits,
) -> Result<Vec<Tensor>, InterpError> {
    let def = node.op.def();
    if !def.inputs.allows(inputs.len()) || !def.outputs.allows(node.outputs.len()) {
        return Err(InterpError::Invalid(format!(
            "{} operands and {} results do not fit the op's arity",
            inputs.len(),
            node.outputs.len()
        )));
    }
    let types: Vec<Option<TensorType>> = inputs
        .iter()
        .map(|t| t.map(|t| TensorType::fixed(t.dtype, &t.shape)))
        .collect();
    let type_refs: Vec<Option<&TensorType>> = types.iter().map(Option::as_ref).collect();
    let blobs: Vec<Option<Blob>> = inputs
        .iter()
        .map(|t| {
            t.filter(|t| t.numel() <= CONST_OPERAND_ELEMENTS)
                .map(|t| Blob::from_vec(t.to_bytes()))
        })
        .collect();
    let consts: Vec<Option<ConstOperand<'_>>> = types
        .iter()
        .zip(&blobs)
        .map(|(t, b)| match (t, b) {
            (Some(ty), Some(data)) => Some(ConstOperand { ty, data }),
            _ => None,
        })
        .collect();
    let weight_ty = match node.attrs.get("value") {
        Some(Attr::Weight(w)) => weights.get(w.0 as usize).map(|w| &w.ty),
        _ => None,
    };
    let ctx = InferCtx {
        def,
        inputs: &type_refs,
        attrs: &node.attrs,
        consts: &consts,
        num_outputs: node.outputs.len(),
        weight_ty,
        body: node.body.as_deref(),
    };
    let inferred = (def.infer)(&ctx)?;
    let op = Op {
        a: &ctx,
        ins: inputs,
        weights,
        limits: *limits,
        num_outputs: node.outputs.len(),
    };
    for t in &inferred {
        if t.is_static() {
            let shape: Vec<u64> = t.dims.iter().filter_map(Dim::as_static).collect();
            op.check(&shape)?;
        }
    }
    let out = dispatch(node.op, &op)?;
    if out.len() != inferred.len() {
        return Err(InterpError::Internal(format!(
            "computed {} results but inference gives {}",
            out.len(),
            inferred.len()
        )));
    }
    for (o, t) in out.iter().zip(&inferred) {
        op.check(&o.shape)?;
        if !TensorType::fixed(o.dtype, &o.shape).is_compatible(t) {
            return Err(InterpError::Internal(format!(
                "computed a {} result but inference gives {t}",
                TensorType::fixed(o.dtype, &o.shape)
            )));
        }
    }
    Ok(out)
}

/// Exhaustive: a new op fails to compile here until it has semantics.
fn dispatch(kind: OpKind, op: &Op<'_>) -> Result<Vec<Tensor>, InterpError> {
    use ew::Binary as B;
    use ew::Unary as U;
    let one = |t: Result<Tensor, InterpError>| t.map(|t| vec![t]);
    match kind {
        OpKind::Constant => one(ew::constant(op)),
        OpKind::Abs => one(ew::unary(op, U::Abs)),
        OpKind::Acos => one(ew::unary(op, U::Acos)),
        OpKind::Asin => one(ew::unary(op, U::Asin)),
        OpKind::Atan => one(ew::unary(op, U::Atan)),
        OpKind::Acosh => one(ew::unary(op, U::Acosh)),
        OpKind::Asinh => one(ew::unary(op, U::Asinh)),
        OpKind::Atanh => one(ew::unary(op, U::Atanh)),
        OpKind::BitCast => one(ew::bit_cast(op)),
        OpKind::BitwiseNot => one(ew::bitwise_not(op)),
        OpKind::Celu => one(ew::unary(op, U::Celu)),
        OpKind::Shrink => one(ew::shrink(op)),
        OpKind::Cast => one(ew::cast(op)),
        OpKind::Ceil => one(ew::unary(op, U::Ceil)),
        OpKind::Clip => one(ew::clip(op)),
        OpKind::Cos => one(ew::unary(op, U::Cos)),
        OpKind::Cosh => one(ew::unary(op, U::Cosh)),
        OpKind::Elu => one(ew::unary(op, U::Elu)),
        OpKind::Erf => one(ew::unary(op, U::Erf)),
        OpKind::Exp => one(ew::unary(op, U::Exp)),
        OpKind::Floor => one(ew::unary(op, U::Floor)),
        OpKind::Gelu => one(ew::unary(op, U::Gelu)),
        OpKind::HardSigmoid => one(ew::unary(op, U::HardSigmoid)),
        OpKind::HardSwish => one(ew::unary(op, U::HardSwish)),
        OpKind::Identity => one(op.input(0).cloned()),
        OpKind::IsInf => one(ew::is_inf(op)),
        OpKind::IsNan => one(ew::is_nan(op)),
        OpKind::LeakyRelu => one(ew::unary(op, U::LeakyRelu)),
        OpKind::Log => one(ew::unary(op, U::Log)),
        OpKind::Mish => one(ew::unary(op, U::Mish)),
        OpKind::Neg => one(ew::unary(op, U::Neg)),
        OpKind::Not => one(ew::not(op)),
        OpKind::Reciprocal => one(ew::unary(op, U::Reciprocal)),
        OpKind::Relu => one(ew::unary(op, U::Relu)),
        OpKind::Round => one(ew::unary(op, U::Round)),
        OpKind::Selu => one(ew::unary(op, U::Selu)),
        OpKind::Sigmoid => one(ew::unary(op, U::Sigmoid)),
        OpKind::Sign => one(ew::unary(op, U::Sign)),
        OpKind::Sin => one(ew::unary(op, U::Sin)),
        OpKind::Sinh => one(ew::unary(op, U::Sinh)),
        OpKind::Softplus => one(ew::unary(op, U::Softplus)),
        OpKind::Softsign => one(ew::unary(op, U::Softsign)),
        OpKind::Sqrt => one(ew::unary(op, U::Sqrt)),
        OpKind::Swish => one(ew::unary(op, U::Swish)),
        OpKind::Tan => one(ew::unary(op, U::Tan)),
        OpKind::Tanh => one(ew::unary(op, U::Tanh)),
        OpKind::ThresholdedRelu => one(ew::unary(op, U::ThresholdedRelu)),
        OpKind::Add => one(ew::binary(op, B::Add)),
        OpKind::And => one(ew::logic(op, |a, b| a && b)),
        OpKind::BitShift => one(ew::bit_shift(op)),
        OpKind::BitwiseAnd => one(ew::bitwise(op, |a, b| a & b)),
        OpKind::BitwiseOr => one(ew::bitwise(op, |a, b| a | b)),
        OpKind::BitwiseXor => one(ew::bitwise(op, |a, b| a ^ b)),
        OpKind::Div => one(ew::binary(op, B::Div)),
        OpKind::Equal => one(ew::compare(op, |o| o == Some(std::cmp::Ordering::Equal))),
        OpKind::Greater => one(ew::compare(op, |o| o == Some(std::cmp::Ordering::Greater))),
        OpKind::GreaterOrEqual => one(ew::compare(op, |o| {
            matches!(
                o,
                Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            )
        })),
        OpKind::Less => one(ew::compare(op, |o| o == Some(std::cmp::Ordering::Less))),
        OpKind::LessOrEqual => one(ew::compare(op, |o| {
            matches!(
                o,
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            )
        })),
        OpKind::Max => one(ew::variadic(op, B::Max)),
        OpKind::Mean => one(ew::mean(op)),
        OpKind::Min => one(ew::variadic(op, B::Min)),
        OpKind::Mod => one(ew::binary(
            op,
            if op.a.bool("fmod")? { B::Fmod } else { B::Mod },
        )),
        OpKind::Mul => one(ew::binary(op, B::Mul)),
        OpKind::Or => one(ew::logic(op, |a, b| a || b)),
        OpKind::Pow => one(ew::pow(op)),
        OpKind::PRelu => one(ew::binary(op, B::PRelu)),
        OpKind::Sub => one(ew::binary(op, B::Sub)),
        OpKind::Sum => one(ew::variadic(op, B::Add)),
        OpKind::Where => one(ew::where_(op)),
        OpKind::Xor => one(ew::logic(op, |a, b| a != b)),
        OpKind::Conv => layout::in_layout(op, |op| one(linalg::conv(op))),
        OpKind::ConvTranspose => one(linalg::conv_transpose(op)),
        OpKind::Einsum => one(linalg::einsum(op)),
        OpKind::Gemm => one(linalg::gemm(op)),
        OpKind::MatMul => one(linalg::matmul(op)),
        OpKind::ArgMax => one(red::arg(op, true)),
        OpKind::ArgMin => one(red::arg(op, false)),
        OpKind::CumSum => one(red::cumsum(op)),
        OpKind::CumProd => one(red::cumprod(op)),
        OpKind::ReduceL1 => one(red::reduce(op, red::Reduce::L1)),
        OpKind::ReduceL2 => one(red::reduce(op, red::Reduce::L2)),
        OpKind::ReduceLogSum => one(red::reduce(op, red::Reduce::LogSum)),
        OpKind::ReduceLogSumExp => one(red::reduce(op, red::Reduce::LogSumExp)),
        OpKind::ReduceMax => one(red::reduce(op, red::Reduce::Max)),
        OpKind::ReduceMean => one(red::reduce(op, red::Reduce::Mean)),
        OpKind::ReduceMin => one(red::reduce(op, red::Reduce::Min)),
        OpKind::ReduceProd => one(red::reduce(op, red::Reduce::Prod)),
        OpKind::ReduceSum => one(red::reduce(op, red::Reduce::Sum)),
        OpKind::ReduceSumSquare => one(red::reduce(op, red::Reduce::SumSquare)),
        OpKind::TopK => red::top_k(op),
        OpKind::BatchNorm => one(norm::batch_norm(op)),
        OpKind::Hardmax => one(norm::axis_map(op, norm::AxisMap::Hardmax)),
        OpKind::InstanceNorm => one(norm::instance_norm(op)),
        OpKind::LayerNorm => norm::layer_norm(op, false),
        OpKind::LogSoftmax => one(norm::axis_map(op, norm::AxisMap::LogSoftmax)),
        OpKind::LpNormalization => one(norm::lp_normalization(op)),
        OpKind::MeanVarianceNormalization => one(norm::mvn(op)),
        OpKind::RmsNorm => norm::layer_norm(op, true),
        OpKind::Softmax => one(norm::axis_map(op, norm::AxisMap::Softmax)),
        OpKind::Concat => one(sh::concat(op)),
        OpKind::ConstantOfShape => one(sh::constant_of_shape(op)),
        OpKind::DepthToSpace => one(sh::depth_to_space(op)),
        OpKind::Dropout => sh::dropout(op),
        OpKind::Expand => one(sh::expand(op)),
        OpKind::EyeLike => one(sh::eye_like(op)),
        OpKind::Flatten => one(sh::flatten(op)),
        OpKind::Gather => one(sh::gather(op)),
        OpKind::GatherElements => one(sh::gather_elements(op)),
        OpKind::NonZero => one(sh::non_zero(op)),
        OpKind::OneHot => one(sh::one_hot(op)),
        OpKind::Range => one(sh::range(op)),
        OpKind::Reshape => one(sh::reshape(op)),
        OpKind::Shape => one(sh::shape_of(op)),
        OpKind::Size => one(sh::size(op)),
        OpKind::Slice => one(sh::slice(op)),
        OpKind::SpaceToDepth => one(sh::space_to_depth(op)),
        OpKind::Split => sh::split(op),
        OpKind::Squeeze => one(sh::squeeze(op)),
        OpKind::Tile => one(sh::tile(op)),
        OpKind::Transpose => one(sh::transpose(op)),
        OpKind::Trilu => one(sh::trilu(op)),
        OpKind::Unsqueeze => one(sh::unsqueeze(op)),
        OpKind::GatherNd => one(ix::gather_nd(op)),
        OpKind::ScatterElements => one(ix::scatter_elements(op)),
        OpKind::ScatterNd => one(ix::scatter_nd(op)),
        OpKind::Pad => one(ix::pad(op)),
        OpKind::Resize => one(resize::resize(op)),
        OpKind::GridSample => one(resize::grid_sample(op)),
        OpKind::Dft => one(signal::dft(op)),
        OpKind::Stft => one(signal::stft(op)),
        OpKind::AveragePool => layout::in_layout(op, |op| one(pool::average_pool(op))),
        OpKind::GlobalAveragePool => layout::in_layout(op, |op| one(pool::global_pool(op, false))),
        OpKind::GlobalMaxPool => layout::in_layout(op, |op| one(pool::global_pool(op, true))),
        OpKind::GlobalLpPool => one(pool::global_lp_pool(op)),
        OpKind::LpPool => one(pool::lp_pool(op)),
        OpKind::Lrn => one(pool::lrn(op)),
        OpKind::MaxPool => layout::in_layout(op, pool::max_pool),
        OpKind::Pack => one(layout::pack(op)),
        OpKind::Unpack => one(layout::unpack(op)),
        OpKind::Fused => {
            let body =
                op.a.body
                    .ok_or_else(|| InterpError::Invalid("nn.fused needs a body".into()))?;
            let args: Vec<Tensor> = op.present().into_iter().cloned().collect();
            run_graph_with(body, &args, &op.limits)
        }
        OpKind::Attention => attn::attention(op),
        OpKind::RotaryEmbedding => one(attn::rotary_embedding(op)),
        OpKind::DequantizeLinear => one(quant::dequantize_linear(op)),
        OpKind::Nf4Dequantize => one(quant::nf4_dequantize(op)),
        OpKind::QuantizeLinear => one(quant::quantize_linear(op)),
        OpKind::QConvInteger => layout::in_layout(op, |op| one(quant::qconv_integer(op))),
        OpKind::QConv => layout::in_layout(op, |op| one(quant::qconv(op))),
        OpKind::QMatMul => one(quant::qmatmul(op)),
        OpKind::QMatMulInteger => one(quant::qmatmul_integer(op)),
        OpKind::QuantizeWeight => one(quant::quantize_weight(op)),
    }
}

/// The value of weight `w`: its bytes, or for a derived weight its op
/// evaluated on its (recursively materialized) operands.
pub fn materialize(
    weights: &[Weight],
    w: WeightId,
    limits: &Limits,
) -> Result<Tensor, InterpError> {
    let weight = weights
        .get(w.0 as usize)
        .ok_or_else(|| InterpError::Invalid(format!("weight #{} does not exist", w.0)))?;
    let WeightData::Derived(d) = &weight.data else {
        return Tensor::from_weight(weight);
    };
    if d.inputs.iter().any(|x| x.0 >= w.0) {
        return Err(InterpError::Invalid(format!(
            "derived weight '{}' uses a weight that does not come before it",
            weight.name
        )));
    }
    let args: Vec<Tensor> = d
        .inputs
        .iter()
        .map(|&x| materialize(weights, x, limits))
        .collect::<Result<_, _>>()?;
    let refs: Vec<Option<&Tensor>> = args.iter().map(Some).collect();
    let node = Node {
        op: d.op,
        inputs: vec![None; args.len()],
        outputs: vec![ValueId(0)],
        attrs: d.attrs.clone(),
        loc: Some(weight.name.clone()),
        body: None,
    };
    let mut out = eval_node(weights, &node, &refs, limits)?;
    let t = out.pop().ok_or_else(|| {
        InterpError::Internal(format!("derived weight '{}' has no value", weight.name))
    })?;
    if !TensorType::fixed(t.dtype, &t.shape).is_compatible(&weight.ty) {
        return Err(InterpError::Invalid(format!(
            "derived weight '{}' computes {} but is declared {}",
            weight.name,
            TensorType::fixed(t.dtype, &t.shape),
            weight.ty
        )));
    }
    Ok(t)
}

/// The storage bytes of weight `w` (computed for a derived weight), as
/// the artifact's weight section holds them.
pub fn weight_bytes(weights: &[Weight], w: WeightId, limits: &Limits) -> Result<Blob, InterpError> {
    let weight = weights
        .get(w.0 as usize)
        .ok_or_else(|| InterpError::Invalid(format!("weight #{} does not exist", w.0)))?;
    if let Some(b) = weight.bytes() {
        return Ok(b.clone());
    }
    // Quantizing an f32 weight reads its bytes directly (no f64 tensor of a
    // large weight).
    if let Some(d) = weight.derivation() {
        let src = d.inputs.first().and_then(|&x| weights.get(x.0 as usize));
        if let (OpKind::QuantizeWeight, Some(src), 1) = (d.op, src, d.inputs.len()) {
            if let (Some(shape), kiln_ir::DType::F32) = (src.ty.static_shape(), src.ty.dtype) {
                let bytes = weight_bytes(weights, d.inputs[0], limits)?;
                return quantize_weight_bytes(weight, src, &shape, bytes.bytes(), &d.attrs)
                    .map(Blob::from_vec);
            }
        }
    }
    // Packing moves bytes: no need to decode the elements.
    if let Some(d) = weight.derivation() {
        let src = d.inputs.first().and_then(|&x| weights.get(x.0 as usize));
        if let (OpKind::Pack, Some(src), 1) = (d.op, src, d.inputs.len()) {
            // Whole bytes, or sub-byte elements (1, 2, 4 bits) packed in bytes.
            let bits = src.ty.dtype.bits();
            let moves = bits > 0 && (bits % 8 == 0 || 8 % bits == 0);
            if let (Some(shape), true) = (src.ty.static_shape(), moves) {
                let bytes = weight_bytes(weights, d.inputs[0], limits)?;
                let attrs = d.attrs.clone();
                let ctx_types = [Some(&src.ty)];
                let ctx = InferCtx {
                    def: OpKind::Pack.def(),
                    inputs: &ctx_types,
                    attrs: &attrs,
                    consts: &[],
                    num_outputs: 1,
                    weight_ty: None,
                    body: None,
                };
                let p = kiln_ir::ops::layout::Packing::read(&ctx, shape)?;
                p.check_values(bytes.bytes(), src.ty.dtype)
                    .map_err(|e| InterpError::Invalid(format!("weight '{}': {e}", weight.name)))?;
                return Ok(Blob::from_vec(if bits < 8 {
                    p.pack_bits(bytes.bytes(), bits)
                } else {
                    p.pack_bytes(bytes.bytes(), (bits / 8) as usize)
                }));
            }
        }
    }
    Ok(Blob::from_vec(materialize(weights, w, limits)?.to_bytes()))
}

/// Runs a graph with default [`Limits`].
pub fn run_graph(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, InterpError> {
    run_graph_with(graph, inputs, &Limits::default())
}

/// Runs a graph: checks the inputs against the graph's input types
/// (symbolic dims must bind consistently), evaluates nodes in order and
/// drops each intermediate after its last use.
pub fn run_graph_with(
    graph: &Graph,
    inputs: &[Tensor],
    limits: &Limits,
) -> Result<Vec<Tensor>, InterpError> {
    if inputs.len() != graph.inputs.len() {
        return Err(InterpError::Graph(format!(
            "the graph takes {} inputs but {} were given",
            graph.inputs.len(),
            inputs.len()
        )));
    }
    let mut syms: HashMap<Arc<str>, u64> = HashMap::new();
    let mut env: HashMap<ValueId, Tensor> = HashMap::new();
    for (index, (&v, t)) in graph.inputs.iter().zip(inputs).enumerate() {
        let info = graph.value(v);
        let err = |msg: String| InterpError::Input {
            index,
            name: info.name.clone(),
            msg,
        };
        let actual = TensorType::fixed(t.dtype, &t.shape);
        if t.dtype != info.ty.dtype || t.rank() != info.ty.rank() {
            return Err(err(format!("expected {}, got {actual}", info.ty)));
        }
        for (d, &n) in info.ty.dims.iter().zip(&t.shape) {
            match d {
                Dim::Static(s) if *s != n => {
                    return Err(err(format!("expected {}, got {actual}", info.ty)))
                }
                Dim::Sym(s) => {
                    let bound = *syms.entry(s.clone()).or_insert(n);
                    if bound != n {
                        return Err(err(format!(
                            "dimension {{{s}}} is {n} here but {bound} in an earlier input"
                        )));
                    }
                }
                _ => {}
            }
        }
        env.insert(v, t.clone());
    }
    let mut uses = graph.use_counts();
    let weights = graph.weights();
    for node in &graph.nodes {
        let mut args: Vec<Option<&Tensor>> = Vec::with_capacity(node.inputs.len());
        for v in &node.inputs {
            match v {
                None => args.push(None),
                Some(v) => match env.get(v) {
                    Some(t) => args.push(Some(t)),
                    None => {
                        return Err(InterpError::Graph(format!(
                            "{} uses '{}' before it is defined",
                            node.describe(),
                            graph.value(*v).name
                        )))
                    }
                },
            }
        }
        let outs = eval_node(weights, node, &args, limits)?;
        for (&v, t) in node.outputs.iter().zip(outs) {
            let declared = &graph.value(v).ty;
            if !TensorType::fixed(t.dtype, &t.shape).is_compatible(declared) {
                return Err(InterpError::Graph(format!(
                    "{} computed {} for '{}' declared as {declared}",
                    node.describe(),
                    TensorType::fixed(t.dtype, &t.shape),
                    graph.value(v).name
                )));
            }
            if uses.get(&v).copied().unwrap_or(0) > 0 {
                env.insert(v, t);
            }
        }
        for v in node.operands() {
            if let Some(n) = uses.get_mut(&v) {
                *n -= 1;
                if *n == 0 {
                    env.remove(&v);
                }
            }
        }
    }
    graph
        .outputs
        .iter()
        .map(|v| {
            env.get(v).cloned().ok_or_else(|| {
                InterpError::Graph(format!(
                    "output '{}' is never defined",
                    graph.value(*v).name
                ))
            })
        })
        .collect()
}

/// The bytes of a derived `quant.quantize_weight` of the f32 weight `src`.
fn quantize_weight_bytes(
    weight: &Weight,
    src: &Weight,
    shape: &[u64],
    bytes: &[u8],
    attrs: &kiln_ir::Attrs,
) -> Result<Vec<u8>, InterpError> {
    let tys = [Some(&src.ty)];
    let ctx = InferCtx {
        def: OpKind::QuantizeWeight.def(),
        inputs: &tys,
        attrs,
        consts: &[],
        num_outputs: 1,
        weight_ty: None,
        body: None,
    };
    let ty = &(ctx.def.infer)(&ctx)?[0];
    if !ty.is_compatible(&weight.ty) {
        return Err(InterpError::Invalid(format!(
            "derived weight '{}' computes {ty} but is declared {}",
            weight.name, weight.ty
        )));
    }
    let (scheme, axis, block, double) = kiln_ir::ops::quantize_weight_params(&ctx)?;
    let vals: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (rows, k, rowmajor) =
        kiln_ir::codec::block::weight_rows(vals, shape[0] as usize, shape[1] as usize, axis);
    let q = kiln_ir::codec::block::quantize(&rowmajor, rows, k, scheme, block);
    crate::ops::quant::quantized_part(&q, scheme, ctx.enum_attr("part")?, double)
}
