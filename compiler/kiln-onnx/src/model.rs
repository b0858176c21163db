//! The decoded, checked model that the importer walks.
//!
//! Invariants (established by [`crate::load_model`]):
//! - Every initializer and tensor attribute is decoded into Kiln's storage
//!   layout ([`OnnxTensor`]).
//! - Node domains are normalized: `""` and `"ai.onnx"` both read `""`.
//! - Every graph is in SSA form, every node input is defined (by a graph
//!   input, an initializer, an earlier node or an enclosing graph), and the
//!   nodes are in a topological order that keeps file order where possible.
//! - Absent optional inputs and outputs (empty names in ONNX) are `None`.

use crate::tensor::OnnxTensor;
use kiln_ir::{DType, Dim, TensorType};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A loaded ONNX model.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    /// The file it came from (`<memory>` for in-memory models).
    pub path: PathBuf,
    /// The ONNX IR version.
    pub ir_version: i64,
    /// Imported opsets by domain; the default domain is `""`.
    pub opsets: BTreeMap<String, i64>,
    /// The main graph.
    pub graph: OnnxGraph,
    /// Model-local functions, keyed by `(domain, name)`.
    pub functions: BTreeMap<(String, String), OnnxFunction>,
    /// The external-data files the model's tensors were read from
    /// (canonical paths, sorted): what a build system must watch.
    pub external_files: Vec<std::path::PathBuf>,
}

impl OnnxModel {
    /// The default-domain (`ai.onnx`) opset version.
    pub fn default_opset(&self) -> i64 {
        // load_model refuses models without one.
        self.opsets.get("").copied().unwrap_or_default()
    }
}

/// A graph: the main graph or a control-flow body.
#[derive(Clone, Debug, Default)]
pub struct OnnxGraph {
    /// The graph's name.
    pub name: String,
    /// Declared inputs, in file order. Since IR 4 an input may also be an
    /// initializer (which then is its default value).
    pub inputs: Vec<OnnxValueInfo>,
    /// Declared outputs, in file order.
    pub outputs: Vec<OnnxValueInfo>,
    /// Constant tensors, in file order.
    pub initializers: Vec<OnnxTensor>,
    /// Type annotations for intermediate values.
    pub value_info: Vec<OnnxValueInfo>,
    /// Nodes in topological order.
    pub nodes: Vec<OnnxNode>,
}

impl OnnxGraph {
    /// The initializer named `name`.
    pub fn initializer(&self, name: &str) -> Option<&OnnxTensor> {
        self.initializers.iter().find(|t| t.name == name)
    }

    /// Inputs that are not also initializers: the values a caller supplies.
    pub fn runtime_inputs(&self) -> impl Iterator<Item = &OnnxValueInfo> {
        self.inputs
            .iter()
            .filter(|i| !self.initializers.iter().any(|t| t.name == i.name))
    }
}

/// A named value with its (possibly partial) type.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxValueInfo {
    /// The value's name.
    pub name: String,
    /// Element type, if declared and a tensor type Kiln knows.
    pub dtype: Option<DType>,
    /// Shape, if declared: `dim_param` is [`Dim::Sym`], a missing extent is
    /// [`Dim::Unknown`]. `None` means unranked.
    pub dims: Option<Vec<Dim>>,
}

impl OnnxValueInfo {
    /// The value's Kiln type when both dtype and rank are known.
    pub fn tensor_type(&self) -> Option<TensorType> {
        Some(TensorType::new(self.dtype?, self.dims.clone()?))
    }
}

/// One operator application.
#[derive(Clone, Debug)]
pub struct OnnxNode {
    /// The node's name (may be empty).
    pub name: String,
    /// Position in the file's node list, for messages about unnamed nodes.
    pub index: usize,
    /// Operator name, e.g. `Conv`.
    pub op_type: String,
    /// Operator domain, `""` for the default domain.
    pub domain: String,
    /// Inputs; `None` is an absent optional input.
    pub inputs: Vec<Option<String>>,
    /// Outputs; `None` is an unused optional output.
    pub outputs: Vec<Option<String>>,
    /// Attributes by name.
    pub attrs: BTreeMap<String, OnnxAttr>,
}

impl OnnxNode {
    /// `node 'name' (Op)`, or `node #index (Op)` when unnamed: how errors
    /// refer to this node.
    pub fn describe(&self) -> String {
        describe_node(&self.name, self.index, &self.op_type)
    }

    /// The attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&OnnxAttr> {
        self.attrs.get(name)
    }

    /// The `i`-th input's name, `None` if absent or out of range.
    pub fn input(&self, i: usize) -> Option<&str> {
        self.inputs.get(i)?.as_deref()
    }
}

pub(crate) fn describe_node(name: &str, index: usize, op_type: &str) -> String {
    if name.is_empty() {
        format!("node #{index} ({op_type})")
    } else {
        format!("node '{name}' ({op_type})")
    }
}

/// A node attribute value.
#[derive(Clone, Debug)]
pub enum OnnxAttr {
    /// `FLOAT`.
    Float(f32),
    /// `INT`.
    Int(i64),
    /// `STRING` (bytes; ONNX does not promise UTF-8).
    String(Vec<u8>),
    /// `TENSOR`.
    Tensor(OnnxTensor),
    /// `GRAPH`.
    Graph(Box<OnnxGraph>),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `STRINGS`.
    Strings(Vec<Vec<u8>>),
    /// `TENSORS`.
    Tensors(Vec<OnnxTensor>),
    /// `GRAPHS`.
    Graphs(Vec<OnnxGraph>),
    /// Inside a function body: a reference to the calling node's attribute.
    Ref(String),
}

impl OnnxAttr {
    /// The ONNX name of this attribute's type, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            OnnxAttr::Float(_) => "FLOAT",
            OnnxAttr::Int(_) => "INT",
            OnnxAttr::String(_) => "STRING",
            OnnxAttr::Tensor(_) => "TENSOR",
            OnnxAttr::Graph(_) => "GRAPH",
            OnnxAttr::Floats(_) => "FLOATS",
            OnnxAttr::Ints(_) => "INTS",
            OnnxAttr::Strings(_) => "STRINGS",
            OnnxAttr::Tensors(_) => "TENSORS",
            OnnxAttr::Graphs(_) => "GRAPHS",
            OnnxAttr::Ref(_) => "reference",
        }
    }

    /// The value of an `INT` attribute.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            OnnxAttr::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The value of a `FLOAT` attribute.
    pub fn as_float(&self) -> Option<f32> {
        match self {
            OnnxAttr::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// The value of a `STRING` attribute if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            OnnxAttr::String(v) => std::str::from_utf8(v).ok(),
            _ => None,
        }
    }

    /// The value of an `INTS` attribute.
    pub fn as_ints(&self) -> Option<&[i64]> {
        match self {
            OnnxAttr::Ints(v) => Some(v),
            _ => None,
        }
    }

    /// The value of a `FLOATS` attribute.
    pub fn as_floats(&self) -> Option<&[f32]> {
        match self {
            OnnxAttr::Floats(v) => Some(v),
            _ => None,
        }
    }

    /// The value of a `TENSOR` attribute.
    pub fn as_tensor(&self) -> Option<&OnnxTensor> {
        match self {
            OnnxAttr::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The value of a `GRAPH` attribute.
    pub fn as_graph(&self) -> Option<&OnnxGraph> {
        match self {
            OnnxAttr::Graph(g) => Some(g),
            _ => None,
        }
    }
}

/// A model-local function (`FunctionProto`).
#[derive(Clone, Debug)]
pub struct OnnxFunction {
    /// Domain the function is called through.
    pub domain: String,
    /// Function (operator) name.
    pub name: String,
    /// Formal input names.
    pub inputs: Vec<String>,
    /// Formal output names.
    pub outputs: Vec<String>,
    /// Attribute names without defaults.
    pub attributes: Vec<String>,
    /// Attributes with default values.
    pub attribute_defaults: BTreeMap<String, OnnxAttr>,
    /// The function's own opset imports.
    pub opsets: BTreeMap<String, i64>,
    /// Body nodes in topological order.
    pub nodes: Vec<OnnxNode>,
}
