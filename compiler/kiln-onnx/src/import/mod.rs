//! Import of a checked [`OnnxModel`] into a Kiln [`Graph`].
//!
//! Invariants:
//! - Every ONNX node is imported by exactly one entry of [`table::IMPORTERS`],
//!   chosen by (domain, op type) and the operator version the model's opset
//!   selects (from [`versions::SINCE_VERSIONS`]). An entry states the oldest
//!   version it handles; an older one is refused, never imported with
//!   another version's semantics.
//! - Before anything is built, every node is checked for an importer, so
//!   the error for an unsupported model lists *all* unsupported ops at once.
//! - ONNX attributes are converted through the Kiln op's schema: an ONNX
//!   attribute the Kiln op does not know is refused (exit 3), not ignored.
//! - Constant subgraphs are folded while importing (shape chains such as
//!   Shape→Gather→Concat→Reshape), with the reference interpreter, under
//!   [`ImportOptions::fold_max_elements`] so that a tiny model cannot expand
//!   into gigabytes.
//! - Initializers become weights whose bytes stay views into the mapped
//!   model or external-data files.

mod build;
mod compose;
pub mod contrib;
mod control;
mod indexing;
mod linalg;
mod ml;
mod rnn;
mod stateful;
mod table;
mod text;
pub mod versions;

use crate::error::OnnxError;
use crate::model::{OnnxAttr, OnnxGraph, OnnxModel, OnnxNode};
use crate::tensor::OnnxTensor;
use kiln_interp::{eval_node, Limits, Tensor};
use kiln_ir::ops::AttrDefault;
use kiln_ir::verify::infer_node_with;
use kiln_ir::{
    Attr, AttrKind, Attrs, Blob, DType, Dim, Graph, Node, OpKind, TensorType, ValueId, Weight,
    WeightData, WeightId,
};
use std::collections::{BTreeMap, HashMap};

pub use table::IMPORTERS;

/// Import settings.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Shapes that replace the declared shapes of graph inputs (for example
    /// to fix a symbolic batch size). Symbols bound this way are substituted
    /// in every input.
    pub input_shapes: BTreeMap<String, Vec<u64>>,
    /// Largest number of elements a folded constant may have.
    pub fold_max_elements: u64,
    /// Whether to fold constant subgraphs at all.
    pub fold: bool,
    /// Known values of graph inputs: each named input becomes a constant
    /// (it is no longer an input of the Kiln graph), so that control flow
    /// depending on it can be expanded and everything downstream folds.
    pub input_values: BTreeMap<String, InputValue>,
}

/// A graph input's value given at import time
/// ([`ImportOptions::input_values`]).
#[derive(Clone, Debug)]
pub struct InputValue {
    /// Element type; must match the input's declared type.
    pub dtype: DType,
    /// Extents; must fit the input's declared shape.
    pub shape: Vec<u64>,
    /// The elements in Kiln's storage layout.
    pub data: Blob,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            input_shapes: BTreeMap::new(),
            fold_max_elements: 1 << 16,
            fold: true,
            input_values: BTreeMap::new(),
        }
    }
}

/// Signature of an importer: builds Kiln nodes for one ONNX node and
/// returns the values of its outputs (`None` for outputs it does not
/// produce, which must then be unused).
pub type ImportFn = fn(&mut NodeCtx<'_, '_>) -> Result<Vec<Option<ValueId>>, OnnxError>;

/// One entry of the import table.
pub struct Importer {
    /// ONNX operator name.
    pub op_type: &'static str,
    /// Oldest operator version this importer handles; every later version
    /// in [`versions::SINCE_VERSIONS`] is handled too (version differences
    /// are dealt with inside via [`NodeCtx::version`]).
    pub since: i64,
    /// The builder.
    pub import: ImportFn,
}

/// The version of `op_type` that a model with default-domain `opset`
/// selects, or `None` if ONNX has no such operator at that opset.
pub fn selected_version(op_type: &str, opset: i64) -> Option<i64> {
    let (_, vs) = versions::SINCE_VERSIONS
        .iter()
        .find(|(n, _)| *n == op_type)?;
    vs.iter().rev().copied().find(|&v| v <= opset)
}

fn find_importer(op_type: &str) -> Option<&'static Importer> {
    IMPORTERS.iter().find(|i| i.op_type == op_type)
}

/// Why a node cannot be imported (for `kiln inspect` and import errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// `domain:op_type` or `op_type`, with the selected version.
    pub op: String,
    /// Reason.
    pub reason: String,
    /// Names (or `#index`) of the nodes using it.
    pub nodes: Vec<String>,
}

/// Checks every node (including model-local function bodies that are
/// called) for an importer; returns all unsupported ops grouped by kind.
pub fn unsupported_ops(model: &OnnxModel) -> Vec<Unsupported> {
    let mut found: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let opset = model.default_opset();
    check_nodes(model, &model.graph.nodes, opset, &mut found, 0);
    found
        .into_iter()
        .map(|((op, reason), nodes)| Unsupported { op, reason, nodes })
        .collect()
}

fn node_label(n: &OnnxNode) -> String {
    if n.name.is_empty() {
        format!("#{}", n.index)
    } else {
        n.name.clone()
    }
}

fn check_nodes(
    model: &OnnxModel,
    nodes: &[OnnxNode],
    opset: i64,
    found: &mut BTreeMap<(String, String), Vec<String>>,
    depth: usize,
) {
    for n in nodes {
        if let Some(f) = model.functions.get(&(n.domain.clone(), n.op_type.clone())) {
            if depth < MAX_INLINE_DEPTH {
                let fopset = f.opsets.get("").copied().unwrap_or(opset);
                check_nodes(model, &f.nodes, fopset, found, depth + 1);
            }
            continue;
        }
        let preview = model.opsets.get("ai.onnx.preview").is_some_and(|&v| v >= 1);
        if control::takes_subgraphs(n)
            && (selected_version(&n.op_type, opset).is_some_and(|v| n.op_type != "Scan" || v >= 8)
                || (n.domain == "ai.onnx.preview" && preview))
        {
            if depth < MAX_INLINE_DEPTH {
                for g in control::subgraphs(n) {
                    check_nodes(model, &g.nodes, opset, found, depth + 1);
                }
            }
            continue;
        }
        let (key, reason) = if n.domain == ML_DOMAIN {
            let v = model.opsets.get(ML_DOMAIN).copied().unwrap_or(0);
            match ml::find(&n.op_type) {
                Some(imp) if v >= imp.since => continue,
                Some(imp) => (
                    format!("{ML_DOMAIN}:{}", n.op_type),
                    format!(
                        "ai.onnx.ml opset {v} not supported (Kiln imports opsets >= {})",
                        imp.since
                    ),
                ),
                None => (
                    format!("{ML_DOMAIN}:{}", n.op_type),
                    "operator not supported".to_string(),
                ),
            }
        } else if n.domain == CONTRIB_DOMAIN {
            if contrib::find(&n.op_type).is_some() {
                continue;
            }
            (
                format!("{CONTRIB_DOMAIN}:{}", n.op_type),
                "operator not supported".to_string(),
            )
        } else if !n.domain.is_empty() {
            (
                format!("{}:{}", n.domain, n.op_type),
                "operator domain not supported".to_string(),
            )
        } else {
            match (
                selected_version(&n.op_type, opset),
                find_importer(&n.op_type),
            ) {
                (None, _) => (
                    n.op_type.clone(),
                    format!("not an ONNX operator at opset {opset}"),
                ),
                (Some(v), None) => (
                    format!("{}-{v}", n.op_type),
                    "operator not supported".to_string(),
                ),
                (Some(v), Some(imp)) if v < imp.since => (
                    format!("{}-{v}", n.op_type),
                    format!(
                        "version {v} not supported (Kiln imports versions >= {})",
                        imp.since
                    ),
                ),
                _ => continue,
            }
        };
        found.entry((key, reason)).or_default().push(node_label(n));
    }
}

const MAX_INLINE_DEPTH: usize = 16;

/// Dequantizations of at least this many elements are not folded at import
/// (see `try_fold`).
const QDQ_WEIGHT_ELEMENTS: u64 = 1024;

/// The classic-ML operator domain ([`ml`]).
const ML_DOMAIN: &str = "ai.onnx.ml";

/// ONNX Runtime's contrib operator domain ([`contrib`]).
const CONTRIB_DOMAIN: &str = "com.microsoft";

/// Imports a loaded model into a Kiln graph.
pub fn import_model(model: &OnnxModel, opts: &ImportOptions) -> Result<Graph, OnnxError> {
    let file = model.path.display().to_string();
    let unsupported = unsupported_ops(model);
    if !unsupported.is_empty() {
        let total: usize = unsupported.iter().map(|u| u.nodes.len()).sum();
        let list: Vec<String> = unsupported
            .iter()
            .map(|u| {
                let mut names = u
                    .nodes
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                if u.nodes.len() > 5 {
                    names.push_str(", ...");
                }
                format!(
                    "  {} ({}): {} node(s): {names}",
                    u.op,
                    u.reason,
                    u.nodes.len()
                )
            })
            .collect();
        return Err(OnnxError::Unsupported {
            file,
            context: "model".into(),
            message: format!(
                "{total} node(s) use unsupported operators:\n{}",
                list.join("\n")
            ),
        });
    }
    let mut b = Builder {
        model,
        file,
        graph: Graph::new(if model.graph.name.is_empty() {
            "main"
        } else {
            &model.graph.name
        }),
        consts: HashMap::new(),
        opts,
        declared: HashMap::new(),
        bodies: 0,
    };
    b.import_main()?;
    Ok(b.graph)
}

/// Import state shared by all node contexts.
struct Builder<'m> {
    model: &'m OnnxModel,
    file: String,
    graph: Graph,
    /// Values produced by `nn.constant`, with their weight.
    consts: HashMap<ValueId, WeightId>,
    opts: &'m ImportOptions,
    /// ONNX-declared types of intermediate values and outputs.
    declared: HashMap<String, TensorType>,
    /// Control-flow bodies imported so far (see [`control::MAX_BODIES`]).
    bodies: u64,
}

/// Substitutes user-given input shapes and the symbols they bind.
fn apply_input_shapes(
    inputs: &mut [(String, TensorType)],
    shapes: &BTreeMap<String, Vec<u64>>,
    file: &str,
) -> Result<(), OnnxError> {
    let mut syms: HashMap<String, u64> = HashMap::new();
    for (name, shape) in shapes {
        let Some((_, ty)) = inputs.iter().find(|(n, _)| n == name) else {
            let known: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
            return Err(OnnxError::Invalid {
                file: file.into(),
                context: format!("--input-shape {name}"),
                message: format!(
                    "the model has no input '{name}' (inputs: {})",
                    known.join(", ")
                ),
            });
        };
        if ty.rank() != shape.len() {
            return Err(OnnxError::Invalid {
                file: file.into(),
                context: format!("--input-shape {name}"),
                message: format!(
                    "input '{name}' has rank {} ({ty}) but the given shape has rank {}",
                    ty.rank(),
                    shape.len()
                ),
            });
        }
        for (d, &n) in ty.dims.iter().zip(shape) {
            match d {
                Dim::Static(s) if *s != n => {
                    return Err(OnnxError::Invalid {
                        file: file.into(),
                        context: format!("--input-shape {name}"),
                        message: format!(
                        "input '{name}' is declared {ty}; its static extent {s} cannot become {n}"
                    ),
                    })
                }
                Dim::Sym(s) => {
                    if let Some(&prev) = syms.get(&**s) {
                        if prev != n {
                            return Err(OnnxError::Invalid {
                                file: file.into(),
                                context: format!("--input-shape {name}"),
                                message: format!("symbol '{s}' is bound to both {prev} and {n}"),
                            });
                        }
                    }
                    syms.insert(s.to_string(), n);
                }
                _ => {}
            }
        }
    }
    for (name, ty) in inputs.iter_mut() {
        if let Some(shape) = shapes.get(name) {
            ty.dims = shape.iter().map(|&n| Dim::Static(n)).collect();
        } else {
            for d in &mut ty.dims {
                if let Dim::Sym(s) = d {
                    if let Some(&n) = syms.get(&**s) {
                        *d = Dim::Static(n);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Name scope for values: ONNX names to Kiln values. Function bodies get a
/// fresh scope layered over their actual arguments.
type Scope = HashMap<String, ValueId>;

impl<'m> Builder<'m> {
    fn import_main(&mut self) -> Result<(), OnnxError> {
        let g: &'m OnnxGraph = &self.model.graph;
        for vi in g.value_info.iter().chain(&g.outputs) {
            if let Some(t) = vi.tensor_type() {
                self.declared.insert(vi.name.clone(), t);
            }
        }
        let mut scope = Scope::new();
        // Initializers first: a graph input that is also an initializer is
        // treated as the constant (Kiln compiles for the given weights).
        for t in &g.initializers {
            let v = self.add_tensor_constant(&t.name, t);
            scope.insert(t.name.clone(), v);
        }
        let mut inputs: Vec<(String, TensorType)> = Vec::new();
        for vi in g.runtime_inputs() {
            let ty = vi.tensor_type().ok_or_else(|| OnnxError::Unsupported {
                file: self.file.clone(),
                context: format!("graph input '{}'", vi.name),
                message: "input has no tensor type Kiln supports (sequence, map, optional, string or unranked)".into(),
            })?;
            inputs.push((vi.name.clone(), ty));
        }
        let mut shapes = self.opts.input_shapes.clone();
        for (name, iv) in &self.opts.input_values {
            if !inputs.iter().any(|(n, _)| n == name) {
                return Err(OnnxError::Invalid {
                    file: self.file.clone(),
                    context: format!("value given for '{name}'"),
                    message: "names no graph input".into(),
                });
            }
            shapes.insert(name.clone(), iv.shape.clone());
        }
        apply_input_shapes(&mut inputs, &shapes, &self.file)?;
        for (name, ty) in inputs {
            if let Some(iv) = self.opts.input_values.get(&name) {
                let bytes =
                    kiln_interp::tensor::numel(&iv.shape).and_then(|n| iv.dtype.storage_bytes(n));
                if iv.dtype != ty.dtype || bytes != Some(iv.data.len() as u64) {
                    return Err(OnnxError::Invalid {
                        file: self.file.clone(),
                        context: format!("value given for input '{name}'"),
                        message: format!(
                            "is {} {:?} in {} bytes, the input is declared {ty}",
                            iv.dtype.name(),
                            iv.shape,
                            iv.data.len()
                        ),
                    });
                }
                let v = self.add_constant_blob(
                    &name,
                    TensorType::fixed(iv.dtype, &iv.shape),
                    iv.data.clone(),
                );
                scope.insert(name, v);
                continue;
            }
            let v = self.graph.add_input(&name, ty);
            scope.insert(name, v);
        }
        let opset = self.model.default_opset();
        self.import_nodes(&g.nodes, opset, &mut scope, &HashMap::new(), 0)?;
        for o in &g.outputs {
            let Some(&v) = scope.get(&o.name) else {
                return Err(OnnxError::Invalid {
                    file: self.file.clone(),
                    context: format!("graph output '{}'", o.name),
                    message: "is not produced by any node, input or initializer".into(),
                });
            };
            self.graph.outputs.push(v);
        }
        // Graph outputs keep their ONNX names: runtime users look outputs up by name.
        // If an output value is also an input, a constant or another output, or
        // its Kiln name differs, route it through nn.identity under that name.
        let mut seen = std::collections::HashSet::new();
        for (i, o) in g.outputs.iter().enumerate() {
            let v = self.graph.outputs[i];
            let is_input = self.graph.inputs.contains(&v);
            if self.graph.value(v).name != o.name || is_input || !seen.insert(v) {
                let ty = self.graph.value(v).ty.clone();
                let name = if self.graph.has_value_named(&o.name) {
                    format!("{}_out", o.name)
                } else {
                    o.name.clone()
                };
                let out = self.graph.add_node(
                    OpKind::Identity,
                    vec![Some(v)],
                    Attrs::new(),
                    vec![(name, ty)],
                )[0];
                self.graph.outputs[i] = out;
            }
        }
        self.graph.gc_weights();
        Ok(())
    }

    fn add_tensor_constant(&mut self, name: &str, t: &OnnxTensor) -> ValueId {
        self.add_constant_blob(name, t.tensor_type(), t.data.clone())
    }

    fn add_constant_blob(&mut self, name: &str, ty: TensorType, data: Blob) -> ValueId {
        let v = self.graph.add_constant(
            name,
            Weight {
                name: name.to_string(),
                ty,
                data: WeightData::Bytes(data),
                source: None,
            },
        );
        let n = self.graph.nodes.last().expect("constant node");
        if let Some(Attr::Weight(w)) = n.attrs.get("value") {
            self.consts.insert(v, *w);
        }
        v
    }

    fn import_nodes(
        &mut self,
        nodes: &[OnnxNode],
        opset: i64,
        scope: &mut Scope,
        fn_attrs: &HashMap<String, OnnxAttr>,
        depth: usize,
    ) -> Result<(), OnnxError> {
        for node in nodes {
            // Inside a function body, attribute references resolve against the caller.
            let resolved;
            let node = if node.attrs.values().any(|a| matches!(a, OnnxAttr::Ref(_))) {
                let mut n = node.clone();
                n.attrs = node
                    .attrs
                    .iter()
                    .filter_map(|(k, a)| match a {
                        OnnxAttr::Ref(r) => fn_attrs.get(r).map(|v| (k.clone(), v.clone())),
                        _ => Some((k.clone(), a.clone())),
                    })
                    .collect();
                resolved = n;
                &resolved
            } else {
                node
            };
            if let Some(f) = self
                .model
                .functions
                .get(&(node.domain.clone(), node.op_type.clone()))
            {
                if depth >= MAX_INLINE_DEPTH {
                    return Err(OnnxError::Limit {
                        file: self.file.clone(),
                        context: node.describe(),
                        message: format!(
                            "model-local functions nest deeper than {MAX_INLINE_DEPTH}"
                        ),
                    });
                }
                let mut inner = Scope::new();
                for (i, formal) in f.inputs.iter().enumerate() {
                    if let Some(Some(actual)) = node.inputs.get(i) {
                        let v = self.lookup(scope, actual, node)?;
                        inner.insert(formal.clone(), v);
                    }
                }
                let mut attrs = f.attribute_defaults.clone();
                for (k, v) in &node.attrs {
                    attrs.insert(k.clone(), v.clone());
                }
                let attrs: HashMap<String, OnnxAttr> = attrs.into_iter().collect();
                let fopset = f.opsets.get("").copied().unwrap_or(opset);
                self.import_nodes(&f.nodes, fopset, &mut inner, &attrs, depth + 1)?;
                for (i, formal) in f.outputs.iter().enumerate() {
                    if let Some(Some(actual)) = node.outputs.get(i) {
                        let v = *inner.get(formal).ok_or_else(|| OnnxError::Invalid {
                            file: self.file.clone(),
                            context: format!("function {}", f.name),
                            message: format!("output '{formal}' is never produced"),
                        })?;
                        scope.insert(actual.clone(), v);
                    }
                }
                continue;
            }
            let version = selected_version(&node.op_type, opset).unwrap_or(0);
            if control::takes_subgraphs(node) {
                self.import_control(node, version, opset, scope, fn_attrs, depth)?;
                continue;
            }
            let (import, version): (ImportFn, i64) = if node.domain == ML_DOMAIN {
                let v = self.model.opsets.get(ML_DOMAIN).copied().unwrap_or(0);
                match ml::find(&node.op_type) {
                    Some(imp) if v >= imp.since => (imp.import, v),
                    _ => {
                        return Err(OnnxError::Unsupported {
                            file: self.file.clone(),
                            context: node.describe(),
                            message: format!("ai.onnx.ml opset {v} operator not supported"),
                        })
                    }
                }
            } else if node.domain == CONTRIB_DOMAIN {
                match contrib::find(&node.op_type) {
                    Some(imp) => (imp.import, 1),
                    None => {
                        return Err(OnnxError::Unsupported {
                            file: self.file.clone(),
                            context: node.describe(),
                            message: format!("{CONTRIB_DOMAIN} operator not supported"),
                        })
                    }
                }
            } else {
                let imp = find_importer(&node.op_type).ok_or_else(|| OnnxError::Unsupported {
                    file: self.file.clone(),
                    context: node.describe(),
                    message: "operator not supported".into(),
                })?;
                (imp.import, version)
            };
            let mut inputs = Vec::with_capacity(node.inputs.len());
            for i in &node.inputs {
                inputs.push(match i {
                    Some(name) => Some(self.lookup(scope, name, node)?),
                    None => None,
                });
            }
            let mut ctx = NodeCtx {
                b: self,
                node,
                version,
                inputs,
            };
            let outs = import(&mut ctx)?;
            for (i, name) in node.outputs.iter().enumerate() {
                let Some(name) = name else { continue };
                match outs.get(i).copied().flatten() {
                    Some(v) => {
                        scope.insert(name.clone(), v);
                    }
                    None => {
                        return Err(OnnxError::Unsupported {
                            file: self.file.clone(),
                            context: node.describe(),
                            message: format!("output #{i} ('{name}') is not supported by Kiln's import of this operator"),
                        })
                    }
                }
            }
        }
        Ok(())
    }

    fn lookup(&self, scope: &Scope, name: &str, node: &OnnxNode) -> Result<ValueId, OnnxError> {
        scope.get(name).copied().ok_or_else(|| OnnxError::Invalid {
            file: self.file.clone(),
            context: node.describe(),
            message: format!("input '{name}' is not defined"),
        })
    }
}

/// What an importer sees: the ONNX node, its selected version and its
/// operands, plus builders for Kiln nodes.
pub struct NodeCtx<'b, 'm> {
    b: &'b mut Builder<'m>,
    /// The ONNX node.
    pub node: &'b OnnxNode,
    /// The operator version the model's opset selects.
    pub version: i64,
    /// The node's operands (`None` for absent optional inputs).
    pub inputs: Vec<Option<ValueId>>,
}

impl NodeCtx<'_, '_> {
    /// An error about this node, of the invalid-input class.
    pub fn invalid(&self, message: impl Into<String>) -> OnnxError {
        OnnxError::Invalid {
            file: self.b.file.clone(),
            context: self.node.describe(),
            message: message.into(),
        }
    }

    /// An error about this node, of the unsupported class.
    pub fn unsupported(&self, message: impl Into<String>) -> OnnxError {
        OnnxError::Unsupported {
            file: self.b.file.clone(),
            context: self.node.describe(),
            message: message.into(),
        }
    }

    /// Operand `i`, which must be present.
    pub fn input(&self, i: usize) -> Result<ValueId, OnnxError> {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| self.invalid(format!("input #{i} is required")))
    }

    /// Operand `i` if present.
    pub fn opt_input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }

    /// The type of a value.
    pub fn ty(&self, v: ValueId) -> &TensorType {
        &self.b.graph.value(v).ty
    }

    /// The ONNX attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&OnnxAttr> {
        self.node.attr(name)
    }

    /// An integer attribute with a default.
    pub fn attr_int(&self, name: &str, default: i64) -> Result<i64, OnnxError> {
        match self.attr(name) {
            None => Ok(default),
            Some(a) => a.as_int().ok_or_else(|| {
                self.invalid(format!(
                    "attribute '{name}' must be INT, got {}",
                    a.kind_name()
                ))
            }),
        }
    }

    /// An integer-list attribute.
    pub fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>, OnnxError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => a.as_ints().map(|v| Some(v.to_vec())).ok_or_else(|| {
                self.invalid(format!(
                    "attribute '{name}' must be INTS, got {}",
                    a.kind_name()
                ))
            }),
        }
    }

    /// A float attribute with a default.
    pub fn attr_float(&self, name: &str, default: f32) -> Result<f32, OnnxError> {
        match self.attr(name) {
            None => Ok(default),
            Some(a) => a.as_float().ok_or_else(|| {
                self.invalid(format!(
                    "attribute '{name}' must be FLOAT, got {}",
                    a.kind_name()
                ))
            }),
        }
    }

    /// Adds an i64 constant (1-D, or a scalar when `scalar`).
    pub fn const_i64(&mut self, values: &[i64], scalar: bool) -> ValueId {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let ty = if scalar {
            TensorType::scalar(DType::I64)
        } else {
            TensorType::fixed(DType::I64, &[values.len() as u64])
        };
        let name = format!("{}_const", self.hint());
        self.b.add_constant_blob(&name, ty, Blob::from_vec(bytes))
    }

    /// Adds a scalar constant of `dtype` holding `value`.
    pub fn const_scalar(&mut self, dtype: DType, value: f64) -> Result<ValueId, OnnxError> {
        let t = Tensor::from_f64(DType::F64, vec![], vec![value]);
        let t = cast_tensor(&t, dtype).map_err(|e| self.invalid(e))?;
        let name = format!("{}_const", self.hint());
        Ok(self.b.add_constant_blob(
            &name,
            TensorType::scalar(dtype),
            Blob::from_vec(t.to_bytes()),
        ))
    }

    /// Adds a constant from an ONNX tensor.
    pub fn const_tensor(&mut self, t: &OnnxTensor) -> ValueId {
        let name = if t.name.is_empty() {
            format!("{}_value", self.hint())
        } else {
            t.name.clone()
        };
        self.b.add_tensor_constant(&name, t)
    }

    fn hint(&self) -> String {
        self.node
            .outputs
            .iter()
            .flatten()
            .next()
            .cloned()
            .unwrap_or_else(|| self.node.op_type.to_lowercase())
    }

    /// Converts the ONNX node's attributes through the schema of `op`:
    /// `rename` maps ONNX names to Kiln names (others are converted from
    /// camelCase to snake_case), `skip` lists ONNX attributes that the
    /// importer handles itself. Unknown attributes are refused.
    pub fn convert_attrs(
        &self,
        op: OpKind,
        rename: &[(&str, &str)],
        skip: &[&str],
    ) -> Result<Attrs, OnnxError> {
        let def = op.def();
        let mut out = Attrs::new();
        for (name, a) in &self.node.attrs {
            if skip.contains(&name.as_str()) {
                continue;
            }
            let kname = rename
                .iter()
                .find(|(o, _)| o == name)
                .map(|(_, k)| k.to_string())
                .unwrap_or_else(|| snake_case(name));
            let Some(spec) = def.attr_spec(&kname) else {
                return Err(self.unsupported(format!("attribute '{name}' is not supported")));
            };
            let v = convert_attr(a, spec.kind).ok_or_else(|| {
                self.invalid(format!(
                    "attribute '{name}' has type {}, expected {}",
                    a.kind_name(),
                    spec.kind.name()
                ))
            })?;
            out.insert(kname, v);
        }
        Ok(out)
    }

    /// Emits a Kiln node with the given operands and attributes; its
    /// results take the ONNX output names (or fresh names) and inferred
    /// types, refined by ONNX's declared types. Folds it when all operands
    /// are constants.
    pub fn emit(
        &mut self,
        op: OpKind,
        inputs: Vec<Option<ValueId>>,
        attrs: Attrs,
        num_results: usize,
    ) -> Result<Vec<ValueId>, OnnxError> {
        self.emit_named(op, inputs, attrs, num_results, true)
    }

    /// Emits a helper node whose results are intermediates of this ONNX
    /// node: they get fresh names and no ONNX-declared types.
    pub fn emit_internal(
        &mut self,
        op: OpKind,
        inputs: Vec<Option<ValueId>>,
        attrs: Attrs,
    ) -> Result<ValueId, OnnxError> {
        Ok(self.emit_named(op, inputs, attrs, 1, false)?[0])
    }

    fn emit_named(
        &mut self,
        op: OpKind,
        inputs: Vec<Option<ValueId>>,
        attrs: Attrs,
        num_results: usize,
        onnx_names: bool,
    ) -> Result<Vec<ValueId>, OnnxError> {
        let mut inputs = inputs;
        // Absent trailing optional operands are the same as none at all.
        while inputs.len() > op.def().inputs.max && inputs.last() == Some(&None) {
            inputs.pop();
        }
        self.check_schema(op, &inputs, &attrs, num_results)?;
        let b = &mut *self.b;
        let mut node = Node {
            op,
            inputs,
            // Placeholders: inference reads only how many results are declared.
            outputs: vec![ValueId(u32::MAX); num_results],
            attrs,
            loc: Some(if self.node.name.is_empty() {
                format!("{}#{}", self.node.op_type, self.node.index)
            } else {
                self.node.name.clone()
            }),
            body: None,
        };
        let consts = &b.consts;
        let inferred = match infer_node_with(&b.graph, &node, &|v| consts.get(&v).copied()) {
            Ok(t) => t,
            Err(e) => {
                // A type that depends on the values of small integer inputs
                // (sizes, axes, counts) can be made static by giving them.
                let inputs = b.value_inputs_of(&node);
                return Err(if inputs.is_empty() {
                    self.invalid_at(op, e.to_string())
                } else {
                    OnnxError::NeedsInputValues {
                        file: b.file.clone(),
                        context: self.node.describe(),
                        what: format!("the result type of {} ({e})", op.name()),
                        inputs,
                    }
                });
            }
        };
        if inferred.len() < num_results {
            return Err(self.invalid_at(
                op,
                format!(
                    "produces {} results, {num_results} requested",
                    inferred.len()
                ),
            ));
        }
        let mut results = Vec::with_capacity(num_results);
        for (i, ty) in inferred.into_iter().take(num_results).enumerate() {
            let onnx_name = if onnx_names {
                self.node.outputs.get(i).cloned().flatten()
            } else {
                None
            };
            let ty = match onnx_name.as_ref().and_then(|n| self.b.declared.get(n)) {
                Some(decl) => refine(&ty, decl).ok_or_else(|| {
                    self.invalid(format!(
                        "ONNX declares output #{i} as {decl} but Kiln infers {ty}"
                    ))
                })?,
                None => ty,
            };
            let name = onnx_name.unwrap_or_else(|| {
                format!("{}_{}", self.hint(), op.name().trim_start_matches("nn."))
            });
            results.push((name, ty));
        }
        let b = &mut *self.b;
        if let Some(folded) = try_fold(b, &node, &results)? {
            return Ok(folded);
        }
        let outs: Vec<ValueId> = results
            .into_iter()
            .map(|(n, t)| b.graph.add_value(&n, t))
            .collect();
        node.outputs = outs.clone();
        b.graph.nodes.push(node);
        Ok(outs)
    }

    /// [`NodeCtx::emit`] for single-result ops.
    pub fn emit1(
        &mut self,
        op: OpKind,
        inputs: Vec<Option<ValueId>>,
        attrs: Attrs,
    ) -> Result<ValueId, OnnxError> {
        Ok(self.emit(op, inputs, attrs, 1)?[0])
    }

    /// The verifier's schema checks (arity, required operands and
    /// attributes), done before inference so that a malformed ONNX node is
    /// refused as invalid input instead of yielding a graph that does not
    /// verify.
    fn check_schema(
        &self,
        op: OpKind,
        inputs: &[Option<ValueId>],
        attrs: &Attrs,
        num_results: usize,
    ) -> Result<(), OnnxError> {
        let def = op.def();
        let arity = |min: usize, max: usize| {
            if min == max {
                min.to_string()
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            }
        };
        if !def.inputs.allows(inputs.len()) {
            return Err(self.invalid_at(
                op,
                format!(
                    "expects {} operands, got {}",
                    arity(def.inputs.min, def.inputs.max),
                    inputs.len()
                ),
            ));
        }
        if let Some(i) = inputs.iter().take(def.inputs.min).position(Option::is_none) {
            return Err(self.invalid_at(op, format!("operand #{i} is required but absent")));
        }
        if !def.outputs.allows(num_results) {
            return Err(self.invalid_at(
                op,
                format!(
                    "expects {} results, got {num_results}",
                    arity(def.outputs.min, def.outputs.max)
                ),
            ));
        }
        for s in def.attrs {
            if matches!(s.default, AttrDefault::Required) && !attrs.contains_key(s.name) {
                return Err(self.invalid_at(op, format!("attribute '{}' is required", s.name)));
            }
        }
        for (name, a) in attrs {
            if let Some(msg) = def
                .attr_spec(name)
                .and_then(|s| s.kind.value_error(name, a))
            {
                return Err(self.invalid_at(op, msg));
            }
        }
        Ok(())
    }

    fn invalid_at(&self, op: OpKind, msg: String) -> OnnxError {
        // Inference reports features it does not cover yet as "... not
        // supported ..."; those are exit class 3, everything else is bad input.
        if msg.contains("not supported") {
            self.unsupported(format!("as {}: {msg}", op.name()))
        } else {
            self.invalid(format!("as {}: {msg}", op.name()))
        }
    }
}

/// Folds `node` into constants when every operand is a constant (or, for
/// `nn.shape`/`nn.size`, when the operand's shape is static) and the
/// results are small enough.
fn try_fold(
    b: &mut Builder<'_>,
    node: &Node,
    results: &[(String, TensorType)],
) -> Result<Option<Vec<ValueId>>, OnnxError> {
    if !b.opts.fold || node.op == OpKind::Constant {
        return Ok(None);
    }
    let mut total: u64 = 0;
    for (_, t) in results {
        match t.numel() {
            Some(n) => total = total.saturating_add(n),
            None => return Ok(None),
        }
    }
    if total > b.opts.fold_max_elements {
        return Ok(None);
    }
    // A dequantized weight (a QDQ model's) stays a dequantization of its
    // codes: kiln-passes' recognize-qdq-weights keeps it quantized, where
    // folding would store it in f32. Small ones (scalars of QLinear* ops)
    // fold.
    if node.op == OpKind::DequantizeLinear && total >= QDQ_WEIGHT_ELEMENTS {
        return Ok(None);
    }
    let shape_only = matches!(node.op, OpKind::Shape | OpKind::Size);
    let mut operands: Vec<Option<Tensor>> = Vec::with_capacity(node.inputs.len());
    for (i, inp) in node.inputs.iter().enumerate() {
        let Some(v) = inp else {
            operands.push(None);
            continue;
        };
        match b.consts.get(v) {
            Some(&w) => match Tensor::from_weight(b.graph.weight(w)) {
                Ok(t) => operands.push(Some(t)),
                Err(_) => return Ok(None),
            },
            None if shape_only && i == 0 => {
                // Shape and Size only need the operand's static shape.
                let ty = &b.graph.value(*v).ty;
                let Some(shape) = ty.static_shape() else {
                    return Ok(None);
                };
                let n = shape.iter().product::<u64>();
                if n > b.opts.fold_max_elements {
                    // Build a stand-in of the right shape without materializing data.
                    return Ok(fold_shape_only(b, node, &shape, results));
                }
                operands.push(Some(Tensor::from_f64(
                    DType::F32,
                    shape,
                    vec![0.0; n as usize],
                )));
            }
            None => return Ok(None),
        }
    }
    let refs: Vec<Option<&Tensor>> = operands.iter().map(|o| o.as_ref()).collect();
    let limits = Limits {
        max_elements: b.opts.fold_max_elements,
    };
    let Ok(values) = eval_node(b.graph.weights(), node, &refs, &limits) else {
        // Folding is an optimization; the node stays and errors surface later.
        return Ok(None);
    };
    let mut outs = Vec::new();
    for ((name, ty), t) in results.iter().zip(values) {
        let ty = TensorType::fixed(ty.dtype, &t.shape);
        outs.push(b.add_constant_blob(name, ty, Blob::from_vec(t.to_bytes())));
    }
    Ok(Some(outs))
}

fn fold_shape_only(
    b: &mut Builder<'_>,
    node: &Node,
    shape: &[u64],
    results: &[(String, TensorType)],
) -> Option<Vec<ValueId>> {
    let (name, _) = results.first()?;
    let values: Vec<i64> = match node.op {
        OpKind::Size => vec![shape.iter().product::<u64>() as i64],
        _ => {
            let r = shape.len() as i64;
            let get = |k: &str, d: i64| match node.attrs.get(k) {
                Some(Attr::Int(v)) => *v,
                _ => d,
            };
            let clamp = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
            let (s, e) = (clamp(get("start", 0)), clamp(get("end", r)));
            shape.get(s..e.max(s))?.iter().map(|&d| d as i64).collect()
        }
    };
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let ty = if node.op == OpKind::Size {
        TensorType::scalar(DType::I64)
    } else {
        TensorType::fixed(DType::I64, &[values.len() as u64])
    };
    Some(vec![b.add_constant_blob(name, ty, Blob::from_vec(bytes))])
}

/// Combines an inferred type with an ONNX-declared one, preferring static
/// extents; `None` if they contradict.
fn refine(inferred: &TensorType, declared: &TensorType) -> Option<TensorType> {
    if declared.dtype != inferred.dtype || declared.rank() != inferred.rank() {
        return None;
    }
    let dims = inferred
        .dims
        .iter()
        .zip(&declared.dims)
        .map(|(i, d)| match (i, d) {
            (Dim::Static(a), Dim::Static(b)) if a != b => None,
            (Dim::Static(_), _) => Some(i.clone()),
            (_, Dim::Static(_)) => Some(d.clone()),
            (Dim::Sym(_), _) => Some(i.clone()),
            (_, Dim::Sym(_)) => Some(d.clone()),
            _ => Some(Dim::Unknown),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(TensorType::new(inferred.dtype, dims))
}

/// `transA` → `trans_a`, `noop_with_empty_axes` unchanged.
pub fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Converts an ONNX attribute to the kind a Kiln schema asks for.
pub fn convert_attr(a: &OnnxAttr, kind: AttrKind) -> Option<Attr> {
    Some(match (a, kind) {
        (OnnxAttr::Int(v), AttrKind::Int) => Attr::Int(*v),
        (OnnxAttr::Int(v), AttrKind::Bool) => Attr::Bool(*v != 0),
        (OnnxAttr::Int(v), AttrKind::Float) => Attr::Float(*v as f64),
        (OnnxAttr::Float(v), AttrKind::Float) => Attr::Float(f64::from(*v)),
        (OnnxAttr::String(_), AttrKind::Str | AttrKind::Enum(_)) => {
            Attr::Str(a.as_str()?.to_string())
        }
        (OnnxAttr::Ints(v), AttrKind::Ints) => Attr::Ints(v.clone()),
        (OnnxAttr::Floats(v), AttrKind::Floats) => {
            Attr::Floats(v.iter().map(|&x| f64::from(x)).collect())
        }
        (OnnxAttr::Strings(v), AttrKind::Strs) => Attr::Strs(
            v.iter()
                .map(|s| std::str::from_utf8(s).ok().map(str::to_string))
                .collect::<Option<Vec<_>>>()?,
        ),
        (OnnxAttr::Int(code), AttrKind::DType) => {
            Attr::DType(crate::tensor::dtype_from_onnx(*code as i32).ok()?)
        }
        _ => return None,
    })
}

/// Casts an interpreter tensor to `dtype` (for building typed constants).
fn cast_tensor(t: &Tensor, dtype: DType) -> Result<Tensor, String> {
    let mut attrs = Attrs::new();
    attrs.insert("to".into(), Attr::DType(dtype));
    let node = Node {
        op: OpKind::Cast,
        inputs: vec![None],
        outputs: vec![ValueId(0)],
        attrs,
        loc: None,
        body: None,
    };
    eval_node(&[], &node, &[Some(t)], &Limits::default())
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or_else(|| "cast produced nothing".to_string())
}

/// Kiln's default for an attribute the ONNX node leaves out, from the
/// Kiln op schema (used by importers that must compute with it).
pub fn schema_default(op: OpKind, name: &str) -> Option<AttrDefault> {
    op.def().attr_spec(name).map(|s| s.default)
}
