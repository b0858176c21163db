//! The import table: (op type, oldest handled version) → builder.
//!
//! Most operators map one-to-one onto the Kiln op of the same name
//! ([`direct`]); the others normalize what older versions passed as
//! attributes (Squeeze's axes, Slice's starts, Clip's bounds, ...) into the
//! operands the Kiln op takes, or pick the inference-time form (Dropout,
//! BatchNormalization).

use super::{compose, Importer, NodeCtx};
use crate::error::OnnxError;
use crate::model::OnnxAttr;
use kiln_ir::ops::resample::{CoordinateTransform, NearestMode, ResizeMode};
use kiln_ir::{Attr, Attrs, DType, OpKind, ValueId};

type R = Result<Vec<Option<ValueId>>, OnnxError>;

/// Imports a node as the Kiln op `op` with the same operands, converting
/// attributes through the op's schema (renaming where given).
fn direct_renamed(c: &mut NodeCtx<'_, '_>, op: OpKind, rename: &[(&str, &str)]) -> R {
    let attrs = c.convert_attrs(op, rename, &[])?;
    let max = op.def().outputs.max;
    let n = c.node.outputs.len().clamp(1, max);
    let inputs = c.inputs.clone();
    Ok(c.emit(op, inputs, attrs, n)?
        .into_iter()
        .map(Some)
        .collect())
}

fn direct(c: &mut NodeCtx<'_, '_>, op: OpKind) -> R {
    direct_renamed(c, op, &[])
}

macro_rules! table {
    ($($name:literal $since:literal => $body:expr;)*) => {
        /// Every supported ONNX operator of the default domain.
        pub static IMPORTERS: &[Importer] = &[$(
            Importer {
                op_type: $name,
                since: $since,
                import: {
                    fn f(c: &mut NodeCtx<'_, '_>) -> R {
                        let body: fn(&mut NodeCtx<'_, '_>) -> R = $body;
                        body(c)
                    }
                    f
                },
            },
        )*];
    };
}

table! {
    "Abs" 6 => |c| direct(c, OpKind::Abs);
    "Acos" 7 => |c| direct(c, OpKind::Acos);
    "Acosh" 9 => |c| direct(c, OpKind::Acosh);
    "Add" 1 => |c| legacy_binary(c, OpKind::Add);
    "AffineGrid" 20 => super::indexing::affine_grid;
    "And" 1 => |c| legacy_binary(c, OpKind::And);
    "ArgMax" 1 => |c| direct(c, OpKind::ArgMax);
    "ArgMin" 1 => |c| direct(c, OpKind::ArgMin);
    "Asin" 7 => |c| direct(c, OpKind::Asin);
    "Asinh" 9 => |c| direct(c, OpKind::Asinh);
    "Atan" 7 => |c| direct(c, OpKind::Atan);
    "Atanh" 9 => |c| direct(c, OpKind::Atanh);
    "Attention" 23 => |c| direct(c, OpKind::Attention);
    "AveragePool" 7 => |c| direct(c, OpKind::AveragePool);
    "BatchNormalization" 6 => batch_norm;
    "BitCast" 26 => |c| direct(c, OpKind::BitCast);
    "BitShift" 11 => bit_shift;
    "BitwiseAnd" 18 => |c| direct(c, OpKind::BitwiseAnd);
    "BitwiseNot" 18 => |c| direct(c, OpKind::BitwiseNot);
    "BitwiseOr" 18 => |c| direct(c, OpKind::BitwiseOr);
    "BitwiseXor" 18 => |c| direct(c, OpKind::BitwiseXor);
    "BlackmanWindow" 17 => |c| compose::window(c, [0.42, 0.5, 0.08]);
    "Cast" 6 => |c| direct(c, OpKind::Cast);
    "CastLike" 15 => cast_like;
    "CausalConvWithState" 27 => super::stateful::causal_conv_with_state;
    "Ceil" 6 => |c| direct(c, OpKind::Ceil);
    "Celu" 12 => |c| direct(c, OpKind::Celu);
    "CenterCropPad" 18 => compose::center_crop_pad;
    "Clip" 6 => clip;
    "Col2Im" 18 => super::indexing::col2im;
    "Compress" 9 => super::indexing::compress;
    "Concat" 4 => |c| direct(c, OpKind::Concat);
    "Constant" 9 => constant;
    "ConstantOfShape" 9 => constant_of_shape;
    "Conv" 1 => |c| direct(c, OpKind::Conv);
    "ConvInteger" 10 => compose::conv_integer;
    "ConvTranspose" 1 => |c| direct(c, OpKind::ConvTranspose);
    "Cos" 7 => |c| direct(c, OpKind::Cos);
    "Cosh" 9 => |c| direct(c, OpKind::Cosh);
    "CumProd" 26 => |c| direct(c, OpKind::CumProd);
    "CumSum" 11 => |c| direct(c, OpKind::CumSum);
    "DeformConv" 19 => super::linalg::deform_conv;
    "DepthToSpace" 11 => |c| direct(c, OpKind::DepthToSpace);
    "DequantizeLinear" 10 => |c| direct(c, OpKind::DequantizeLinear);
    "Det" 11 => super::linalg::det;
    "DFT" 17 => dft;
    "Div" 1 => |c| legacy_binary(c, OpKind::Div);
    "Dropout" 6 => dropout;
    "DynamicQuantizeLinear" 11 => compose::dynamic_quantize_linear;
    "Einsum" 12 => |c| direct(c, OpKind::Einsum);
    "Elu" 6 => |c| direct(c, OpKind::Elu);
    "Equal" 1 => |c| legacy_binary(c, OpKind::Equal);
    "Erf" 9 => |c| direct(c, OpKind::Erf);
    "Exp" 6 => |c| direct(c, OpKind::Exp);
    "Expand" 8 => |c| direct(c, OpKind::Expand);
    "EyeLike" 9 => |c| direct(c, OpKind::EyeLike);
    "Flatten" 1 => |c| direct(c, OpKind::Flatten);
    "Floor" 6 => |c| direct(c, OpKind::Floor);
    "Gather" 1 => |c| direct(c, OpKind::Gather);
    "GatherElements" 11 => |c| direct(c, OpKind::GatherElements);
    "GatherND" 11 => |c| direct(c, OpKind::GatherNd);
    "Gelu" 20 => |c| direct(c, OpKind::Gelu);
    "Gemm" 6 => gemm;
    "GlobalAveragePool" 1 => |c| direct(c, OpKind::GlobalAveragePool);
    "GlobalLpPool" 2 => |c| direct(c, OpKind::GlobalLpPool);
    "GlobalMaxPool" 1 => |c| direct(c, OpKind::GlobalMaxPool);
    "Greater" 1 => |c| legacy_binary(c, OpKind::Greater);
    "GreaterOrEqual" 12 => |c| direct(c, OpKind::GreaterOrEqual);
    "GridSample" 16 => grid_sample;
    "GroupNormalization" 18 => compose::group_norm;
    "GRU" 7 => super::rnn::gru;
    "HammingWindow" 17 => |c| compose::window(c, [0.543_478_25, 0.456_521_75, 0.0]);
    "HannWindow" 17 => |c| compose::window(c, [0.5, 0.5, 0.0]);
    "Hardmax" 13 => |c| direct(c, OpKind::Hardmax);
    "HardSigmoid" 6 => |c| direct(c, OpKind::HardSigmoid);
    "HardSwish" 14 => |c| direct(c, OpKind::HardSwish);
    "Identity" 1 => |c| direct(c, OpKind::Identity);
    "InstanceNormalization" 6 => |c| direct(c, OpKind::InstanceNorm);
    "IsInf" 10 => |c| direct(c, OpKind::IsInf);
    "IsNaN" 9 => |c| direct(c, OpKind::IsNan);
    "LayerNormalization" 17 => |c| direct(c, OpKind::LayerNorm);
    "LeakyRelu" 6 => |c| direct(c, OpKind::LeakyRelu);
    "Less" 1 => |c| legacy_binary(c, OpKind::Less);
    "LessOrEqual" 12 => |c| direct(c, OpKind::LessOrEqual);
    "LinearAttention" 27 => super::stateful::linear_attention;
    "Log" 6 => |c| direct(c, OpKind::Log);
    "LogSoftmax" 1 => |c| softmax_like(c, OpKind::LogSoftmax);
    "LpNormalization" 1 => |c| direct(c, OpKind::LpNormalization);
    "LpPool" 11 => |c| direct(c, OpKind::LpPool);
    "LRN" 1 => |c| direct(c, OpKind::Lrn);
    "LSTM" 7 => super::rnn::lstm;
    "MatMul" 1 => |c| direct(c, OpKind::MatMul);
    "MatMulInteger" 10 => compose::matmul_integer;
    "Max" 6 => |c| direct(c, OpKind::Max);
    "MaxPool" 1 => |c| direct(c, OpKind::MaxPool);
    "MaxUnpool" 9 => super::indexing::max_unpool;
    "Mean" 6 => |c| direct(c, OpKind::Mean);
    "MeanVarianceNormalization" 9 => |c| direct(c, OpKind::MeanVarianceNormalization);
    "MelWeightMatrix" 17 => super::indexing::mel_weight_matrix;
    "Min" 6 => |c| direct(c, OpKind::Min);
    "Mish" 18 => |c| direct(c, OpKind::Mish);
    "Mod" 10 => |c| direct(c, OpKind::Mod);
    "Mul" 1 => |c| legacy_binary(c, OpKind::Mul);
    "Neg" 6 => |c| direct(c, OpKind::Neg);
    "NegativeLogLikelihoodLoss" 12 => compose::nll_loss;
    "NonZero" 9 => |c| direct(c, OpKind::NonZero);
    "Not" 1 => |c| direct(c, OpKind::Not);
    "OneHot" 9 => |c| direct(c, OpKind::OneHot);
    "OptionalGetElement" 15 => super::indexing::optional_get_element;
    "OptionalHasElement" 15 => super::indexing::optional_has_element;
    "Or" 1 => |c| legacy_binary(c, OpKind::Or);
    "Pad" 2 => pad;
    "Pow" 1 => |c| legacy_binary(c, OpKind::Pow);
    "PRelu" 6 => prelu;
    "QLinearConv" 10 => compose::qlinear_conv;
    "QLinearMatMul" 10 => compose::qlinear_matmul;
    "QuantizeLinear" 10 => |c| direct(c, OpKind::QuantizeLinear);
    "Range" 11 => |c| direct(c, OpKind::Range);
    "Reciprocal" 6 => |c| direct(c, OpKind::Reciprocal);
    "ReduceL1" 1 => |c| reduce(c, OpKind::ReduceL1, 18);
    "ReduceL2" 1 => |c| reduce(c, OpKind::ReduceL2, 18);
    "ReduceLogSum" 1 => |c| reduce(c, OpKind::ReduceLogSum, 18);
    "ReduceLogSumExp" 1 => |c| reduce(c, OpKind::ReduceLogSumExp, 18);
    "ReduceMax" 1 => |c| reduce(c, OpKind::ReduceMax, 18);
    "ReduceMean" 1 => |c| reduce(c, OpKind::ReduceMean, 18);
    "ReduceMin" 1 => |c| reduce(c, OpKind::ReduceMin, 18);
    "ReduceProd" 1 => |c| reduce(c, OpKind::ReduceProd, 18);
    "ReduceSum" 1 => |c| reduce(c, OpKind::ReduceSum, 13);
    "ReduceSumSquare" 1 => |c| reduce(c, OpKind::ReduceSumSquare, 18);
    "Relu" 6 => |c| direct(c, OpKind::Relu);
    "Reshape" 5 => |c| direct(c, OpKind::Reshape);
    "Resize" 10 => resize;
    "ReverseSequence" 10 => compose::reverse_sequence;
    "RMSNormalization" 23 => |c| direct(c, OpKind::RmsNorm);
    "RNN" 7 => super::rnn::rnn;
    "RoiAlign" 10 => super::indexing::roi_align;
    "RotaryEmbedding" 23 => |c| direct(c, OpKind::RotaryEmbedding);
    "Round" 11 => |c| direct(c, OpKind::Round);
    "Scatter" 9 => compose::scatter;
    "ScatterElements" 11 => |c| direct(c, OpKind::ScatterElements);
    "ScatterND" 11 => |c| direct(c, OpKind::ScatterNd);
    "Selu" 6 => |c| direct(c, OpKind::Selu);
    "Shape" 1 => |c| direct(c, OpKind::Shape);
    "Shrink" 9 => |c| direct(c, OpKind::Shrink);
    "Sigmoid" 6 => |c| direct(c, OpKind::Sigmoid);
    "Sign" 9 => |c| direct(c, OpKind::Sign);
    "Sin" 7 => |c| direct(c, OpKind::Sin);
    "Sinh" 9 => |c| direct(c, OpKind::Sinh);
    "Size" 1 => |c| direct(c, OpKind::Size);
    "Slice" 1 => slice;
    "Softmax" 1 => |c| softmax_like(c, OpKind::Softmax);
    "SoftmaxCrossEntropyLoss" 12 => compose::softmax_cross_entropy_loss;
    "Softplus" 1 => |c| direct(c, OpKind::Softplus);
    "Softsign" 1 => |c| direct(c, OpKind::Softsign);
    "SpaceToDepth" 1 => compose::space_to_depth;
    "Split" 2 => split;
    "Sqrt" 6 => |c| direct(c, OpKind::Sqrt);
    "Squeeze" 1 => |c| axes_operand(c, OpKind::Squeeze, 13);
    "STFT" 17 => |c| direct(c, OpKind::Stft);
    "Sub" 1 => |c| legacy_binary(c, OpKind::Sub);
    "Sum" 6 => |c| direct(c, OpKind::Sum);
    "SwiGLU" 28 => compose::swiglu;
    "Swish" 24 => compose::swish;
    "Tan" 7 => |c| direct(c, OpKind::Tan);
    "Tanh" 6 => |c| direct(c, OpKind::Tanh);
    "TensorScatter" 24 => compose::tensor_scatter;
    "TfIdfVectorizer" 9 => super::text::tfidf_vectorizer;
    "ThresholdedRelu" 10 => |c| direct(c, OpKind::ThresholdedRelu);
    "Tile" 6 => |c| direct(c, OpKind::Tile);
    "TopK" 1 => top_k;
    "Transpose" 1 => |c| direct(c, OpKind::Transpose);
    "Trilu" 14 => |c| direct(c, OpKind::Trilu);
    "Unsqueeze" 1 => |c| axes_operand(c, OpKind::Unsqueeze, 13);
    "Upsample" 7 => upsample;
    "Where" 9 => |c| direct(c, OpKind::Where);
    "Xor" 1 => |c| legacy_binary(c, OpKind::Xor);
}

/// Emits `op` with explicit operands and converted attributes.
fn emit_with(
    c: &mut NodeCtx<'_, '_>,
    op: OpKind,
    inputs: Vec<Option<ValueId>>,
    skip: &[&str],
) -> R {
    let attrs = c.convert_attrs(op, &[], skip)?;
    let n = c.node.outputs.len().clamp(1, op.def().outputs.max);
    Ok(c.emit(op, inputs, attrs, n)?
        .into_iter()
        .map(Some)
        .collect())
}

/// Before `since`, the op took `axes` as an attribute; Kiln takes an operand.
fn axes_operand(c: &mut NodeCtx<'_, '_>, op: OpKind, since: i64) -> R {
    if c.version >= since {
        return direct(c, op);
    }
    let x = c.input(0)?;
    let axes = c.attr_ints("axes")?.map(|a| c.const_i64(&a, false));
    emit_with(c, op, vec![Some(x), axes], &["axes"])
}

/// Reductions: `axes` moved from attribute to operand (ReduceSum at 13,
/// the others at 18).
fn reduce(c: &mut NodeCtx<'_, '_>, op: OpKind, since: i64) -> R {
    if c.version >= since {
        return direct(c, op);
    }
    let x = c.input(0)?;
    let axes = c.attr_ints("axes")?.map(|a| c.const_i64(&a, false));
    emit_with(c, op, vec![Some(x), axes], &["axes"])
}

/// Softmax/LogSoftmax before 13 coerce the input to 2-D at `axis` (by
/// default 1) and normalize over everything from `axis` on; from 13 they
/// normalize over one axis (by default -1). The old form is a reshape
/// around the new.
fn softmax_like(c: &mut NodeCtx<'_, '_>, op: OpKind) -> R {
    if c.version >= 13 {
        return direct(c, op);
    }
    let x = c.input(0)?;
    let ty = c.ty(x).clone();
    let rank = ty.rank() as i64;
    let mut axis = c.attr_int("axis", 1)?;
    if axis < 0 {
        axis += rank;
    }
    if axis < 0 || axis > rank {
        return Err(c.invalid(format!("axis {axis} is out of range for rank {rank}")));
    }
    if axis == rank - 1 || rank == 0 {
        let mut attrs = Attrs::new();
        attrs.insert("axis".into(), Attr::Int(-1));
        return Ok(vec![Some(c.emit1(op, vec![Some(x)], attrs)?)]);
    }
    let Some(shape) = ty.static_shape() else {
        return Err(c.unsupported(format!(
            "{} before opset 13 with axis {axis} needs a static input shape",
            c.node.op_type
        )));
    };
    let outer: u64 = shape[..axis as usize].iter().product();
    let inner: u64 = shape[axis as usize..].iter().product();
    let s2 = c.const_i64(&[outer as i64, inner as i64], false);
    let flat = c.emit_internal(OpKind::Reshape, vec![Some(x), Some(s2)], Attrs::new())?;
    let mut attrs = Attrs::new();
    attrs.insert("axis".into(), Attr::Int(-1));
    let y = c.emit_internal(op, vec![Some(flat)], attrs)?;
    let back: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let sb = c.const_i64(&back, false);
    Ok(vec![Some(c.emit1(
        OpKind::Reshape,
        vec![Some(y), Some(sb)],
        Attrs::new(),
    )?)])
}

fn batch_norm(c: &mut NodeCtx<'_, '_>) -> R {
    if c.attr_int("training_mode", 0)? != 0 {
        return Err(
            c.unsupported("training_mode = 1 (training-time BatchNormalization) is not supported")
        );
    }
    if c.version < 9 && c.attr_int("spatial", 1)? != 1 {
        return Err(c.unsupported("spatial = 0 is not supported"));
    }
    if c.node.outputs.iter().skip(1).any(Option::is_some) {
        return Err(c.unsupported("the running mean/variance outputs are training-only"));
    }
    let inputs = c.inputs.clone();
    let attrs = c.convert_attrs(
        OpKind::BatchNorm,
        &[],
        &["training_mode", "spatial", "momentum", "is_test"],
    )?;
    Ok(vec![Some(c.emit1(OpKind::BatchNorm, inputs, attrs)?)])
}

fn clip(c: &mut NodeCtx<'_, '_>) -> R {
    if c.version >= 11 {
        return direct(c, OpKind::Clip);
    }
    let x = c.input(0)?;
    let dt = c.ty(x).dtype;
    let min = match c.attr("min") {
        Some(_) => Some(c.const_scalar(dt, f64::from(c.attr_float("min", f32::MIN)?))?),
        None => None,
    };
    let max = match c.attr("max") {
        Some(_) => Some(c.const_scalar(dt, f64::from(c.attr_float("max", f32::MAX)?))?),
        None => None,
    };
    Ok(vec![Some(c.emit1(
        OpKind::Clip,
        vec![Some(x), min, max],
        Attrs::new(),
    )?)])
}

fn constant(c: &mut NodeCtx<'_, '_>) -> R {
    let (name, attr) = c
        .node
        .attrs
        .iter()
        .next()
        .ok_or_else(|| c.invalid("Constant has no value attribute"))?;
    if c.node.attrs.len() != 1 {
        return Err(c.invalid("Constant must have exactly one value attribute"));
    }
    let v = match (name.as_str(), attr) {
        ("value", OnnxAttr::Tensor(t)) => {
            let mut t = t.clone();
            if let Some(Some(out)) = c.node.outputs.first() {
                t.name = out.clone();
            }
            c.const_tensor(&t)
        }
        ("value_float", OnnxAttr::Float(f)) => c.const_scalar(DType::F32, f64::from(*f))?,
        ("value_int", OnnxAttr::Int(i)) => c.const_i64(&[*i], true),
        ("value_ints", OnnxAttr::Ints(v)) => c.const_i64(v, false),
        ("value_floats", OnnxAttr::Floats(v)) => {
            let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
            let t = crate::tensor::OnnxTensor {
                name: c
                    .node
                    .outputs
                    .first()
                    .cloned()
                    .flatten()
                    .unwrap_or_default(),
                dtype: DType::F32,
                dims: vec![v.len() as u64],
                data: kiln_ir::Blob::from_vec(bytes),
            };
            c.const_tensor(&t)
        }
        ("sparse_value", _) | ("value_string", _) | ("value_strings", _) => {
            return Err(c.unsupported(format!("Constant with '{name}' is not supported")))
        }
        _ => return Err(c.invalid(format!("attribute '{name}' has type {}", attr.kind_name()))),
    };
    Ok(vec![Some(v)])
}

fn constant_of_shape(c: &mut NodeCtx<'_, '_>) -> R {
    let shape = c.input(0)?;
    let mut attrs = Attrs::new();
    if let Some(a) = c.attr("value") {
        let t = a
            .as_tensor()
            .ok_or_else(|| c.invalid("attribute 'value' must be a TENSOR"))?;
        if t.numel() != 1 {
            return Err(c.invalid("attribute 'value' must hold exactly one element"));
        }
        let v = kiln_interp::Tensor::from_bytes(t.dtype, &t.dims, t.data.bytes())
            .map_err(|e| c.invalid(e.to_string()))?;
        attrs.insert("value_dtype".into(), Attr::DType(t.dtype));
        attrs.insert("value".into(), Attr::Float(v.get_f64(0)));
    }
    Ok(vec![Some(c.emit1(
        OpKind::ConstantOfShape,
        vec![Some(shape)],
        attrs,
    )?)])
}

/// Dropout at inference time is the identity; its mask output is all true.
fn dropout(c: &mut NodeCtx<'_, '_>) -> R {
    if c.version >= 12 {
        if let Some(t) = c.opt_input(2) {
            let _ = t;
            return direct(c, OpKind::Dropout);
        }
    }
    let x = c.input(0)?;
    let attrs = c.convert_attrs(OpKind::Dropout, &[], &["ratio", "is_test"])?;
    let n = c.node.outputs.len().clamp(1, 2);
    let inputs = if c.version >= 12 {
        c.inputs.clone()
    } else {
        vec![Some(x)]
    };
    Ok(c.emit(OpKind::Dropout, inputs, attrs, n)?
        .into_iter()
        .map(Some)
        .collect())
}

/// Pad before 11 took `pads` and `value` as attributes.
fn pad(c: &mut NodeCtx<'_, '_>) -> R {
    if c.version >= 11 {
        return direct(c, OpKind::Pad);
    }
    let x = c.input(0)?;
    let pads = c
        .attr_ints("pads")?
        .ok_or_else(|| c.invalid("attribute 'pads' is required"))?;
    let pads = c.const_i64(&pads, false);
    let dt = c.ty(x).dtype;
    let value = c.attr_float("value", 0.0)?;
    let v = c.const_scalar(dt, f64::from(value))?;
    emit_with(
        c,
        OpKind::Pad,
        vec![Some(x), Some(pads), Some(v)],
        &["pads", "value"],
    )
}

/// Resize-10 took (X, scales); 11+ take (X, roi, scales, sizes).
fn resize(c: &mut NodeCtx<'_, '_>) -> R {
    if c.version >= 11 {
        return direct(c, OpKind::Resize);
    }
    let x = c.input(0)?;
    let scales = c.input(1)?;
    let mut attrs = c.convert_attrs(OpKind::Resize, &[], &[])?;
    // Resize-10's coordinate mapping is "asymmetric".
    attrs.insert(
        "coordinate_transformation_mode".into(),
        Attr::of_enum(CoordinateTransform::Asymmetric),
    );
    if !attrs.contains_key("nearest_mode") {
        attrs.insert("nearest_mode".into(), Attr::of_enum(NearestMode::Floor));
    }
    Ok(vec![Some(c.emit1(
        OpKind::Resize,
        vec![Some(x), None, Some(scales), None],
        attrs,
    )?)])
}

/// Upsample (deprecated at 10) is Resize with Resize-10's coordinate
/// mapping: `asymmetric`, nearest neighbours by `floor` (Upsample only
/// enlarges, where ONNX Runtime's "simple" rounding is the floor).
/// Upsample-7 takes `scales` as an attribute, 9 and 10 as an operand.
fn upsample(c: &mut NodeCtx<'_, '_>) -> R {
    let x = c.input(0)?;
    let scales = if c.version >= 9 {
        c.input(1)?
    } else {
        let s = c
            .node
            .attr("scales")
            .and_then(|a| a.as_floats())
            .ok_or_else(|| c.invalid("attribute 'scales' (FLOATS) is required"))?
            .to_vec();
        let bytes: Vec<u8> = s.iter().flat_map(|f| f.to_le_bytes()).collect();
        let t = crate::tensor::OnnxTensor {
            name: String::new(),
            dtype: DType::F32,
            dims: vec![s.len() as u64],
            data: kiln_ir::Blob::from_vec(bytes),
        };
        c.const_tensor(&t)
    };
    let mode = match c.attr("mode") {
        None => ResizeMode::Nearest,
        Some(a) => {
            let s = a
                .as_str()
                .ok_or_else(|| c.invalid("attribute 'mode' must be a STRING"))?;
            match ResizeMode::parse(s) {
                Some(m @ (ResizeMode::Nearest | ResizeMode::Linear)) => m,
                _ => {
                    return Err(c.invalid(format!(
                        "attribute 'mode' has unknown value \"{s}\" (expected one of \"nearest\", \"linear\")"
                    )))
                }
            }
        }
    };
    let mut attrs = Attrs::new();
    attrs.insert("mode".into(), Attr::of_enum(mode));
    attrs.insert(
        "coordinate_transformation_mode".into(),
        Attr::of_enum(CoordinateTransform::Asymmetric),
    );
    attrs.insert("nearest_mode".into(), Attr::of_enum(NearestMode::Floor));
    Ok(vec![Some(c.emit1(
        OpKind::Resize,
        vec![Some(x), None, Some(scales), None],
        attrs,
    )?)])
}

/// Slice before 10 took starts/ends/axes as attributes.
fn slice(c: &mut NodeCtx<'_, '_>) -> R {
    if c.version >= 10 {
        return direct(c, OpKind::Slice);
    }
    let x = c.input(0)?;
    let starts = c
        .attr_ints("starts")?
        .ok_or_else(|| c.invalid("attribute 'starts' is required"))?;
    let ends = c
        .attr_ints("ends")?
        .ok_or_else(|| c.invalid("attribute 'ends' is required"))?;
    let s = c.const_i64(&starts, false);
    let e = c.const_i64(&ends, false);
    let axes = c.attr_ints("axes")?.map(|a| c.const_i64(&a, false));
    emit_with(
        c,
        OpKind::Slice,
        vec![Some(x), Some(s), Some(e), axes],
        &["starts", "ends", "axes"],
    )
}

/// Split before 13 took `split` as an attribute.
fn split(c: &mut NodeCtx<'_, '_>) -> R {
    if c.version >= 13 {
        return direct(c, OpKind::Split);
    }
    let x = c.input(0)?;
    let sizes = match c.attr_ints("split")? {
        Some(s) => Some(c.const_i64(&s, false)),
        None => c.opt_input(1),
    };
    let attrs = c.convert_attrs(OpKind::Split, &[], &["split"])?;
    let n = c.node.outputs.len().max(1);
    Ok(c.emit(OpKind::Split, vec![Some(x), sizes], attrs, n)?
        .into_iter()
        .map(Some)
        .collect())
}

/// TopK-1 took `k` as an attribute.
fn top_k(c: &mut NodeCtx<'_, '_>) -> R {
    if c.version >= 10 {
        return direct(c, OpKind::TopK);
    }
    let x = c.input(0)?;
    let k = c.attr_int("k", 0)?;
    let k = c.const_i64(&[k], false);
    emit_with(c, OpKind::TopK, vec![Some(x), Some(k)], &["k"])
}

/// ONNX spells BitShift's direction in capitals; Kiln in lower case.
fn bit_shift(c: &mut NodeCtx<'_, '_>) -> R {
    let mut attrs = c.convert_attrs(OpKind::BitShift, &[], &[])?;
    if let Some(Attr::Str(d)) = attrs.get_mut("direction") {
        *d = d.to_ascii_lowercase();
    }
    let inputs = c.inputs.clone();
    Ok(vec![Some(c.emit1(OpKind::BitShift, inputs, attrs)?)])
}

/// Binary ops before version 7 broadcast only with `broadcast = 1`, and
/// then align the second operand at `axis` (default: trailing) rather than
/// by NumPy's trailing rule. Reshaping B with trailing ones makes the two
/// agree.
fn legacy_binary(c: &mut NodeCtx<'_, '_>, op: OpKind) -> R {
    if c.version >= 7 {
        return direct(c, op);
    }
    let a = c.input(0)?;
    let b = c.input(1)?;
    let mut b2 = b;
    if c.attr_int("broadcast", 0)? != 0 {
        if let Some(axis) = c.attr("axis").map(|_| c.attr_int("axis", 0)).transpose()? {
            let ra = c.ty(a).rank() as i64;
            let bt = c.ty(b).clone();
            let axis = if axis < 0 { axis + ra } else { axis };
            let trailing = ra - axis - bt.rank() as i64;
            if axis < 0 || trailing < 0 {
                return Err(c.invalid(format!(
                    "broadcast axis {axis} does not fit operand ranks {ra} and {}",
                    bt.rank()
                )));
            }
            if trailing > 0 {
                let Some(shape) = bt.static_shape() else {
                    return Err(
                        c.unsupported("legacy axis broadcasting needs a static second operand")
                    );
                };
                let mut dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                dims.extend(std::iter::repeat_n(1, trailing as usize));
                let s = c.const_i64(&dims, false);
                b2 = c.emit_internal(OpKind::Reshape, vec![Some(b), Some(s)], Attrs::new())?;
            }
        }
    }
    emit_with(c, op, vec![Some(a), Some(b2)], &["broadcast", "axis"])
}

/// Gemm-6 carries a `broadcast` flag; NumPy-style broadcasting of C is a
/// superset of both of its settings.
fn gemm(c: &mut NodeCtx<'_, '_>) -> R {
    let inputs = c.inputs.clone();
    emit_with(c, OpKind::Gemm, inputs, &["broadcast"])
}

/// PRelu-6 applies a 1-D slope of length C along the channel axis 1; from
/// version 7 the slope broadcasts by NumPy's trailing rule.
fn prelu(c: &mut NodeCtx<'_, '_>) -> R {
    let x = c.input(0)?;
    let slope = c.input(1)?;
    let (rx, st) = (c.ty(x).rank(), c.ty(slope).clone());
    if c.version >= 7 || st.rank() != 1 || st.dims[0] == kiln_ir::Dim::Static(1) || rx <= 2 {
        return direct(c, OpKind::PRelu);
    }
    let Some(shape) = st.static_shape() else {
        return Err(c.unsupported("PRelu-6 needs a static slope shape"));
    };
    let mut dims = vec![shape[0] as i64];
    dims.extend(std::iter::repeat_n(1, rx - 2));
    let s = c.const_i64(&dims, false);
    let s2 = c.emit_internal(OpKind::Reshape, vec![Some(slope), Some(s)], Attrs::new())?;
    emit_with(c, OpKind::PRelu, vec![Some(x), Some(s2)], &[])
}

/// CastLike casts to the element type of its second operand.
fn cast_like(c: &mut NodeCtx<'_, '_>) -> R {
    let x = c.input(0)?;
    let like = c.input(1)?;
    let to = c.ty(like).dtype;
    let mut attrs = c.convert_attrs(OpKind::Cast, &[], &[])?;
    attrs.insert("to".into(), Attr::DType(to));
    Ok(vec![Some(c.emit1(OpKind::Cast, vec![Some(x)], attrs)?)])
}

/// GridSample-16 names its modes `bilinear` and `bicubic` (20 and later:
/// `linear` and `cubic`; both spellings are taken at every version, as
/// exporters mix them); inputs of rank other than 4 are GridSample-20's
/// extension.
fn grid_sample(c: &mut NodeCtx<'_, '_>) -> R {
    let mut attrs = c.convert_attrs(OpKind::GridSample, &[], &[])?;
    if let Some(Attr::Str(m)) = attrs.get_mut("mode") {
        match m.as_str() {
            "bilinear" => *m = "linear".into(),
            "bicubic" => *m = "cubic".into(),
            _ => {}
        }
    }
    let x = c.input(0)?;
    if c.version < 20 && c.ty(x).rank() != 4 {
        return Err(c.invalid(format!(
            "GridSample-{} takes a 4-D input, got {}",
            c.version,
            c.ty(x)
        )));
    }
    let inputs = c.inputs.clone();
    Ok(vec![Some(c.emit1(OpKind::GridSample, inputs, attrs)?)])
}

/// DFT-17 takes `axis` as an attribute (default 1); from 20 it is an
/// optional operand (default -2).
fn dft(c: &mut NodeCtx<'_, '_>) -> R {
    if c.version >= 20 {
        return direct(c, OpKind::Dft);
    }
    let x = c.input(0)?;
    let axis = c.attr_int("axis", 1)?;
    let axis = c.const_i64(&[axis], true);
    let len = c.opt_input(1);
    emit_with(c, OpKind::Dft, vec![Some(x), len, Some(axis)], &["axis"])
}
