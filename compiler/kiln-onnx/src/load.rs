//! From protobuf bytes to a checked [`OnnxModel`].
//!
//! Invariants:
//! - Version and domain checks run before any tensor is decoded, so an
//!   unsupported model is reported as such even if its weights are broken.
//! - Nothing here panics on any input: every index, size and conversion is
//!   checked and reported as an [`OnnxError`].

use crate::check;
use crate::error::{Ctx, OnnxError};
use crate::external::ExternalData;
use crate::model::{
    describe_node, OnnxAttr, OnnxFunction, OnnxGraph, OnnxModel, OnnxNode, OnnxValueInfo,
};
use crate::proto::onnx::{
    attribute_proto::AttributeType, tensor_shape_proto::dimension, type_proto, AttributeProto,
    FunctionProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto,
};
use crate::tensor::{decode_tensor, dtype_from_onnx};
use bytes::Bytes;
use kiln_ir::Dim;
use prost::Message;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

/// Supported ONNX IR versions.
pub const IR_VERSIONS: std::ops::RangeInclusive<i64> = 3..=14;
/// Supported default-domain opset versions: every opset ONNX has defined
/// up to 28, the newest the `onnx` 1.23 package defines. An old opset is
/// safe to accept because the importer resolves each operator's version
/// from the opset and refuses versions it does not implement, by name.
pub const OPSET_VERSIONS: std::ops::RangeInclusive<i64> = 1..=28;

/// Domains that are known ONNX operator sets Kiln does not implement; named
/// in the message so users know what to convert away.
const DEFAULT_DOMAINS: [&str; 2] = ["", "ai.onnx"];

/// Other operator domains with operators Kiln imports (the importer
/// refuses their other operators by name).
pub(crate) const EXTRA_DOMAINS: [&str; 3] = ["ai.onnx.ml", "ai.onnx.preview", "com.microsoft"];

pub(crate) fn load_bytes(
    ctx: &Ctx,
    path: PathBuf,
    bytes: Bytes,
    base: Option<PathBuf>,
) -> Result<OnnxModel, OnnxError> {
    let proto = ModelProto::decode(bytes).map_err(|source| OnnxError::Decode {
        file: ctx.file.clone(),
        source,
    })?;
    // A missing version means this is not a ModelProto at all (an empty
    // or foreign protobuf decodes to all-default fields).
    let Some(ir_version) = proto.ir_version else {
        return Err(ctx.invalid("model", "no IR version: not an ONNX model"));
    };
    if !IR_VERSIONS.contains(&ir_version) {
        return Err(OnnxError::IrVersion {
            file: ctx.file.clone(),
            version: ir_version,
            min: *IR_VERSIONS.start(),
            max: *IR_VERSIONS.end(),
        });
    }
    let opsets = opset_map(ctx, "model", &proto.opset_import)?;
    match opsets.get("") {
        Some(&opset) if !OPSET_VERSIONS.contains(&opset) => {
            return Err(OnnxError::OpsetVersion {
                file: ctx.file.clone(),
                version: opset,
                min: *OPSET_VERSIONS.start(),
                max: *OPSET_VERSIONS.end(),
            });
        }
        Some(_) => {}
        None => {
            // A model built only from other domains is well-formed ONNX:
            // Kiln takes it when those domains are ones it imports
            // (ai.onnx.ml pipelines), else refuses the domain; one whose
            // main graph uses default-domain operators without importing
            // the domain is malformed.
            let uses_default = proto.graph.as_ref().is_some_and(|g| {
                g.node
                    .iter()
                    .any(|n| matches!(n.domain.as_deref().unwrap_or(""), "" | "ai.onnx"))
            });
            if uses_default {
                return Err(ctx.invalid(
                    "model",
                    "no opset is imported for the default domain 'ai.onnx'",
                ));
            }
            let foreign = opsets.keys().find(|d| !EXTRA_DOMAINS.contains(&d.as_str()));
            if let Some(domain) = foreign.filter(|_| !ctx.foreign_domains) {
                return Err(OnnxError::Domain {
                    file: ctx.file.clone(),
                    context: "model".into(),
                    domain: domain.clone(),
                });
            }
        }
    }

    let mut loader = Loader {
        ctx,
        ext: ExternalData::new(base),
        function_domains: proto
            .functions
            .iter()
            .map(|f| normalize_domain(f.domain.as_deref().unwrap_or("")).to_string())
            .filter(|d| !d.is_empty())
            .collect(),
    };
    let Some(graph_proto) = &proto.graph else {
        return Err(ctx.invalid("model", "model has no graph"));
    };
    // Refuse foreign domains before decoding any weights.
    loader.check_domains(&graph_proto.node)?;
    for f in &proto.functions {
        loader.check_domains(&f.node)?;
    }

    let mut graph = loader.graph(graph_proto, true)?;
    check::check_graph(ctx, "main graph", &mut graph, &HashSet::new())?;

    let mut functions = BTreeMap::new();
    for f in &proto.functions {
        let func = loader.function(f)?;
        let key = (func.domain.clone(), func.name.clone());
        if functions.contains_key(&key) {
            return Err(ctx.invalid(
                format!("function '{}' in domain '{}'", key.1, key.0),
                "function is defined twice",
            ));
        }
        functions.insert(key, func);
    }

    let external_files = loader.ext.files();
    Ok(OnnxModel {
        external_files,
        path,
        ir_version,
        opsets,
        graph,
        functions,
    })
}

fn normalize_domain(d: &str) -> &str {
    if DEFAULT_DOMAINS.contains(&d) {
        ""
    } else {
        d
    }
}

fn opset_map(
    ctx: &Ctx,
    what: &str,
    imports: &[OperatorSetIdProto],
) -> Result<BTreeMap<String, i64>, OnnxError> {
    let mut out = BTreeMap::new();
    for o in imports {
        let domain = normalize_domain(o.domain.as_deref().unwrap_or("")).to_string();
        let version = o.version.unwrap_or(0);
        if out.insert(domain.clone(), version).is_some() {
            return Err(ctx.invalid(
                what,
                format!("opset for domain '{domain}' is imported twice"),
            ));
        }
    }
    Ok(out)
}

struct Loader<'a> {
    ctx: &'a Ctx,
    ext: ExternalData,
    function_domains: HashSet<String>,
}

impl Loader<'_> {
    /// Refuses nodes (including nested subgraphs) in domains Kiln does not
    /// implement.
    fn check_domains(&self, nodes: &[NodeProto]) -> Result<(), OnnxError> {
        for (i, n) in nodes.iter().enumerate() {
            let domain = normalize_domain(n.domain.as_deref().unwrap_or(""));
            if !domain.is_empty()
                && !self.ctx.foreign_domains
                && !self.function_domains.contains(domain)
                && !EXTRA_DOMAINS.contains(&domain)
            {
                return Err(OnnxError::Domain {
                    file: self.ctx.file.clone(),
                    context: describe_node(
                        n.name.as_deref().unwrap_or(""),
                        i,
                        n.op_type.as_deref().unwrap_or(""),
                    ),
                    domain: domain.to_string(),
                });
            }
            for a in &n.attribute {
                for g in a.g.iter().chain(&a.graphs) {
                    self.check_domains(&g.node)?;
                }
            }
        }
        Ok(())
    }

    fn graph(&mut self, g: &GraphProto, top: bool) -> Result<OnnxGraph, OnnxError> {
        let ctx = self.ctx;
        if let Some(s) = g.sparse_initializer.first() {
            let name = s
                .values
                .as_ref()
                .and_then(|v| v.name.clone())
                .unwrap_or_default();
            return Err(ctx.unsupported(
                format!("sparse initializer '{name}'"),
                "sparse initializers are not supported",
            ));
        }
        let io = |kind: &str, v: &ValueInfoProto| value_info(ctx, kind, v, top);
        let inputs = g
            .input
            .iter()
            .map(|v| io("graph input", v))
            .collect::<Result<_, _>>()?;
        let outputs = g
            .output
            .iter()
            .map(|v| io("graph output", v))
            .collect::<Result<_, _>>()?;
        let value_info = g
            .value_info
            .iter()
            .map(|v| value_info(ctx, "value", v, false))
            .collect::<Result<_, _>>()?;
        let mut initializers = Vec::with_capacity(g.initializer.len());
        for t in &g.initializer {
            let what = format!("initializer '{}'", t.name.as_deref().unwrap_or(""));
            if t.name.as_deref().unwrap_or("").is_empty() {
                return Err(ctx.invalid(what, "initializer has no name"));
            }
            initializers.push(decode_tensor(ctx, &mut self.ext, &what, t)?);
        }
        let nodes = g
            .node
            .iter()
            .enumerate()
            .map(|(i, n)| self.node(i, n))
            .collect::<Result<_, _>>()?;
        Ok(OnnxGraph {
            name: g.name.clone().unwrap_or_default(),
            inputs,
            outputs,
            initializers,
            value_info,
            nodes,
        })
    }

    fn node(&mut self, index: usize, n: &NodeProto) -> Result<OnnxNode, OnnxError> {
        let name = n.name.clone().unwrap_or_default();
        let op_type = n.op_type.clone().unwrap_or_default();
        let what = describe_node(&name, index, &op_type);
        if op_type.is_empty() {
            return Err(self.ctx.invalid(what, "node has no op_type"));
        }
        let opt = |s: &String| (!s.is_empty()).then(|| s.clone());
        let mut attrs = BTreeMap::new();
        for a in &n.attribute {
            let aname = a.name.clone().unwrap_or_default();
            let awhat = format!("attribute '{aname}' of {what}");
            if aname.is_empty() {
                return Err(self.ctx.invalid(awhat, "attribute has no name"));
            }
            let value = self.attr(&awhat, a)?;
            if attrs.insert(aname, value).is_some() {
                return Err(self.ctx.invalid(awhat, "attribute is given twice"));
            }
        }
        Ok(OnnxNode {
            name,
            index,
            op_type,
            domain: normalize_domain(n.domain.as_deref().unwrap_or("")).to_string(),
            inputs: n.input.iter().map(opt).collect(),
            outputs: n.output.iter().map(opt).collect(),
            attrs,
        })
    }

    fn attr(&mut self, what: &str, a: &AttributeProto) -> Result<OnnxAttr, OnnxError> {
        let ctx = self.ctx;
        if let Some(r) = a.ref_attr_name.as_deref().filter(|r| !r.is_empty()) {
            return Ok(OnnxAttr::Ref(r.to_string()));
        }
        let ty = match a.r#type {
            Some(code) => AttributeType::try_from(code)
                .map_err(|_| ctx.invalid(what, format!("invalid attribute type code {code}")))?,
            None => infer_attr_type(a),
        };
        Ok(match ty {
            AttributeType::Float => OnnxAttr::Float(a.f.unwrap_or_default()),
            AttributeType::Int => OnnxAttr::Int(a.i.unwrap_or_default()),
            AttributeType::String => OnnxAttr::String(a.s.as_deref().unwrap_or_default().to_vec()),
            AttributeType::Tensor => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| ctx.invalid(what, "TENSOR attribute has no tensor"))?;
                OnnxAttr::Tensor(decode_tensor(ctx, &mut self.ext, what, t)?)
            }
            AttributeType::Graph => {
                let g =
                    a.g.as_ref()
                        .ok_or_else(|| ctx.invalid(what, "GRAPH attribute has no graph"))?;
                OnnxAttr::Graph(Box::new(self.graph(g, false)?))
            }
            AttributeType::Floats => OnnxAttr::Floats(a.floats.clone()),
            AttributeType::Ints => OnnxAttr::Ints(a.ints.clone()),
            AttributeType::Strings => {
                OnnxAttr::Strings(a.strings.iter().map(|s| s.to_vec()).collect())
            }
            AttributeType::Tensors => OnnxAttr::Tensors(
                a.tensors
                    .iter()
                    .map(|t| decode_tensor(ctx, &mut self.ext, what, t))
                    .collect::<Result<_, _>>()?,
            ),
            AttributeType::Graphs => OnnxAttr::Graphs(
                a.graphs
                    .iter()
                    .map(|g| self.graph(g, false))
                    .collect::<Result<_, _>>()?,
            ),
            AttributeType::Undefined => {
                return Err(ctx.invalid(what, "attribute has no value"));
            }
            other => {
                return Err(ctx.unsupported(
                    what,
                    format!(
                        "attributes of type {} are not supported",
                        other.as_str_name()
                    ),
                ))
            }
        })
    }

    fn function(&mut self, f: &FunctionProto) -> Result<OnnxFunction, OnnxError> {
        let ctx = self.ctx;
        let domain = normalize_domain(f.domain.as_deref().unwrap_or("")).to_string();
        let name = f.name.clone().unwrap_or_default();
        let what = format!("function '{name}' in domain '{domain}'");
        let opsets = opset_map(ctx, &what, &f.opset_import)?;
        let mut attribute_defaults = BTreeMap::new();
        for a in &f.attribute_proto {
            let aname = a.name.clone().unwrap_or_default();
            let v = self.attr(&format!("attribute '{aname}' of {what}"), a)?;
            attribute_defaults.insert(aname, v);
        }
        let untyped = |n: &String| OnnxValueInfo {
            name: n.clone(),
            dtype: None,
            dims: None,
        };
        let mut body = OnnxGraph {
            name: name.clone(),
            inputs: f.input.iter().map(untyped).collect(),
            outputs: f.output.iter().map(untyped).collect(),
            nodes: f
                .node
                .iter()
                .enumerate()
                .map(|(i, n)| self.node(i, n))
                .collect::<Result<_, _>>()?,
            ..OnnxGraph::default()
        };
        check::check_graph(ctx, &what, &mut body, &HashSet::new())?;
        Ok(OnnxFunction {
            domain,
            name,
            inputs: f.input.clone(),
            outputs: f.output.clone(),
            attributes: f.attribute.clone(),
            attribute_defaults,
            opsets,
            nodes: body.nodes,
        })
    }
}

/// Old models omit `AttributeProto.type`; infer it from the set field.
fn infer_attr_type(a: &AttributeProto) -> AttributeType {
    if a.f.is_some() {
        AttributeType::Float
    } else if a.i.is_some() {
        AttributeType::Int
    } else if a.s.is_some() {
        AttributeType::String
    } else if a.t.is_some() {
        AttributeType::Tensor
    } else if a.g.is_some() {
        AttributeType::Graph
    } else if !a.floats.is_empty() {
        AttributeType::Floats
    } else if !a.ints.is_empty() {
        AttributeType::Ints
    } else if !a.strings.is_empty() {
        AttributeType::Strings
    } else if !a.tensors.is_empty() {
        AttributeType::Tensors
    } else if !a.graphs.is_empty() {
        AttributeType::Graphs
    } else {
        AttributeType::Undefined
    }
}

/// Converts a `ValueInfoProto`. With `strict` (main-graph inputs and
/// outputs) a missing or non-tensor type is an error; elsewhere types are
/// only hints and anything Kiln cannot use is dropped.
fn value_info(
    ctx: &Ctx,
    kind: &str,
    v: &ValueInfoProto,
    strict: bool,
) -> Result<OnnxValueInfo, OnnxError> {
    let name = v.name.clone().unwrap_or_default();
    let what = format!("{kind} '{name}'");
    if name.is_empty() {
        return Err(ctx.invalid(what, "value has no name"));
    }
    let mut out = OnnxValueInfo {
        name,
        dtype: None,
        dims: None,
    };
    let tensor = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        Some(_) if strict => {
            return Err(ctx.unsupported(
                what,
                "only tensor-typed graph inputs and outputs are supported",
            ))
        }
        None if strict => return Err(ctx.invalid(what, "missing type")),
        _ => return Ok(out),
    };
    match tensor.elem_type.unwrap_or(0) {
        0 if strict => return Err(ctx.invalid(what, "missing element type")),
        0 => {}
        code => match dtype_from_onnx(code) {
            Ok(d) => out.dtype = Some(d),
            Err(Some(n)) if strict => {
                return Err(ctx.unsupported(what, format!("element type {n} is not supported")))
            }
            Err(None) if strict => {
                return Err(ctx.invalid(what, format!("invalid element type code {code}")))
            }
            Err(_) => {}
        },
    }
    if let Some(shape) = &tensor.shape {
        let mut dims = Vec::with_capacity(shape.dim.len());
        for d in &shape.dim {
            dims.push(match &d.value {
                Some(dimension::Value::DimValue(n)) => {
                    Dim::Static(u64::try_from(*n).map_err(|_| {
                        ctx.invalid(what.as_str(), format!("negative dimension {n}"))
                    })?)
                }
                Some(dimension::Value::DimParam(p)) if !p.is_empty() => Dim::sym(p),
                _ => Dim::Unknown,
            });
        }
        out.dims = Some(dims);
    }
    Ok(out)
}
