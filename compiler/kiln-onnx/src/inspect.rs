//! `kiln inspect`: a summary of a loaded model, rendered as text or JSON.
//!
//! Invariants:
//! - Building a report never reads weight bytes: parameter counts and byte
//!   sizes come from each initializer's dtype, dims and [`kiln_ir::Blob`]
//!   length, so inspecting a model with gigabytes of memory-mapped weights
//!   keeps them on disk.
//! - Unsupported operators are a finding, not an error: the report lists
//!   all of them (from [`crate::import::unsupported_ops`]) with the nodes
//!   that use them.
//! - The JSON form is stable and machine-readable: static extents are
//!   numbers, symbolic extents strings, unknown extents `null`, and an
//!   unranked shape is `null`.

use crate::import::{unsupported_ops, Unsupported};
use crate::model::{OnnxModel, OnnxValueInfo};
use kiln_ir::Dim;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A graph input or output as declared in the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueReport {
    /// The value's name.
    pub name: String,
    /// Element type name (`f32`), or `None` if undeclared or not a tensor
    /// type Kiln knows.
    pub dtype: Option<String>,
    /// Extents, or `None` for an unranked value.
    pub dims: Option<Vec<Dim>>,
}

impl ValueReport {
    fn from_info(vi: &OnnxValueInfo) -> ValueReport {
        ValueReport {
            name: vi.name.clone(),
            dtype: vi.dtype.map(|d| d.name().to_string()),
            dims: vi.dims.clone(),
        }
    }

    /// `tensor<{batch}x3xf32>`-style type, with `?` for what is unknown.
    pub fn type_string(&self) -> String {
        let dtype = self.dtype.as_deref().unwrap_or("?");
        match &self.dims {
            None => format!("tensor<*x{dtype}>"),
            Some(dims) => {
                let mut s = String::from("tensor<");
                for d in dims {
                    let _ = write!(s, "{d}x");
                }
                let _ = write!(s, "{dtype}>");
                s
            }
        }
    }

    fn to_json(&self) -> Value {
        let shape = self.dims.as_ref().map(|dims| {
            dims.iter()
                .map(|d| match d {
                    Dim::Static(n) => json!(n),
                    Dim::Sym(s) => json!(&**s),
                    Dim::Unknown => Value::Null,
                })
                .collect::<Vec<_>>()
        });
        json!({ "name": self.name, "dtype": self.dtype, "shape": shape })
    }
}

/// What `kiln inspect` prints about a model.
#[derive(Clone, Debug, PartialEq)]
pub struct InspectReport {
    /// The model file.
    pub file: String,
    /// The ONNX IR version.
    pub ir_version: i64,
    /// Imported opsets by domain (`""` is the default domain, shown as
    /// `ai.onnx`).
    pub opsets: BTreeMap<String, i64>,
    /// The main graph's name.
    pub graph_name: String,
    /// Inputs a caller supplies (graph inputs that are not initializers).
    pub inputs: Vec<ValueReport>,
    /// Graph outputs.
    pub outputs: Vec<ValueReport>,
    /// Main-graph node count by operator (`domain:Op` outside the default
    /// domain).
    pub op_histogram: BTreeMap<String, usize>,
    /// Number of main-graph nodes.
    pub node_count: usize,
    /// Number of initializers.
    pub initializer_count: usize,
    /// Total elements over all initializers.
    pub parameter_count: u64,
    /// Total bytes of initializer data in Kiln's storage layout.
    pub parameter_bytes: u64,
    /// Model-local functions, as `domain:name`.
    pub functions: Vec<String>,
    /// Every operator Kiln cannot import, with the nodes using it.
    pub unsupported: Vec<Unsupported>,
}

impl InspectReport {
    /// Builds the report. Touches no weight bytes.
    pub fn new(model: &OnnxModel) -> InspectReport {
        let g = &model.graph;
        let mut op_histogram: BTreeMap<String, usize> = BTreeMap::new();
        for n in &g.nodes {
            let key = if n.domain.is_empty() {
                n.op_type.clone()
            } else {
                format!("{}:{}", n.domain, n.op_type)
            };
            *op_histogram.entry(key).or_default() += 1;
        }
        let (mut parameter_count, mut parameter_bytes) = (0u64, 0u64);
        for t in &g.initializers {
            parameter_count = parameter_count.saturating_add(t.numel());
            parameter_bytes = parameter_bytes.saturating_add(t.data.len() as u64);
        }
        InspectReport {
            file: model.path.display().to_string(),
            ir_version: model.ir_version,
            opsets: model.opsets.clone(),
            graph_name: g.name.clone(),
            inputs: g.runtime_inputs().map(ValueReport::from_info).collect(),
            outputs: g.outputs.iter().map(ValueReport::from_info).collect(),
            op_histogram,
            node_count: g.nodes.len(),
            initializer_count: g.initializers.len(),
            parameter_count,
            parameter_bytes,
            functions: model
                .functions
                .keys()
                .map(|(d, n)| format!("{}:{n}", domain_name(d)))
                .collect(),
            unsupported: unsupported_ops(model),
        }
    }

    /// Number of nodes using an unsupported operator.
    pub fn unsupported_node_count(&self) -> usize {
        self.unsupported.iter().map(|u| u.nodes.len()).sum()
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "model: {}", self.file);
        let opsets: Vec<String> = self
            .opsets
            .iter()
            .map(|(d, v)| format!("{} {v}", domain_name(d)))
            .collect();
        let _ = writeln!(s, "ir version: {}", self.ir_version);
        let _ = writeln!(s, "opsets: {}", opsets.join(", "));
        if !self.graph_name.is_empty() {
            let _ = writeln!(s, "graph: {}", self.graph_name);
        }
        for (title, values) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            let _ = writeln!(s, "{title} ({}):", values.len());
            let width = values.iter().map(|v| v.name.len()).max().unwrap_or(0);
            for v in values {
                let _ = writeln!(s, "  {:<width$}  {}", v.name, v.type_string());
            }
        }
        let _ = writeln!(
            s,
            "parameters: {} in {} initializer(s), {} ({} bytes)",
            self.parameter_count,
            self.initializer_count,
            human_bytes(self.parameter_bytes),
            self.parameter_bytes
        );
        if !self.functions.is_empty() {
            let _ = writeln!(s, "functions: {}", self.functions.join(", "));
        }
        let _ = writeln!(
            s,
            "ops ({} node(s), {} distinct):",
            self.node_count,
            self.op_histogram.len()
        );
        let mut ops: Vec<(&String, &usize)> = self.op_histogram.iter().collect();
        // Most frequent first; ties by name so the output is deterministic.
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let width = ops.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (op, n) in ops {
            let _ = writeln!(s, "  {op:<width$}  {n}");
        }
        if self.unsupported.is_empty() {
            let _ = writeln!(s, "unsupported ops: none");
        } else {
            let _ = writeln!(
                s,
                "unsupported ops ({} node(s), {} distinct):",
                self.unsupported_node_count(),
                self.unsupported.len()
            );
            for u in &self.unsupported {
                let _ = writeln!(
                    s,
                    "  {} ({}): {} node(s): {}",
                    u.op,
                    u.reason,
                    u.nodes.len(),
                    u.nodes.join(", ")
                );
            }
        }
        s
    }

    /// The machine-readable form (a JSON object).
    pub fn to_json(&self) -> Value {
        let opsets: serde_json::Map<String, Value> = self
            .opsets
            .iter()
            .map(|(d, v)| (domain_name(d).to_string(), json!(v)))
            .collect();
        let ops: serde_json::Map<String, Value> = self
            .op_histogram
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let unsupported: Vec<Value> = self
            .unsupported
            .iter()
            .map(|u| {
                json!({
                    "op": u.op,
                    "reason": u.reason,
                    "count": u.nodes.len(),
                    "nodes": u.nodes,
                })
            })
            .collect();
        json!({
            "file": self.file,
            "ir_version": self.ir_version,
            "opsets": opsets,
            "graph": self.graph_name,
            "inputs": self.inputs.iter().map(ValueReport::to_json).collect::<Vec<_>>(),
            "outputs": self.outputs.iter().map(ValueReport::to_json).collect::<Vec<_>>(),
            "node_count": self.node_count,
            "ops": ops,
            "initializer_count": self.initializer_count,
            "parameter_count": self.parameter_count,
            "parameter_bytes": self.parameter_bytes,
            "functions": self.functions,
            "unsupported": unsupported,
        })
    }

    /// [`InspectReport::to_json`] pretty-printed, with a final newline.
    pub fn to_json_string(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_json())
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }
}

fn domain_name(d: &str) -> &str {
    if d.is_empty() {
        "ai.onnx"
    } else {
        d
    }
}

/// `1.5 GiB`-style size.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_units() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn value_types_render_symbols_and_unknowns() {
        let v = ValueReport {
            name: "x".into(),
            dtype: Some("f32".into()),
            dims: Some(vec![Dim::Sym("batch".into()), Dim::Unknown, Dim::Static(3)]),
        };
        assert_eq!(v.type_string(), "tensor<{batch}x?x3xf32>");
        assert_eq!(
            v.to_json(),
            json!({"name": "x", "dtype": "f32", "shape": ["batch", null, 3]})
        );
        let unranked = ValueReport {
            name: "y".into(),
            dtype: None,
            dims: None,
        };
        assert_eq!(unranked.type_string(), "tensor<*x?>");
        assert_eq!(unranked.to_json()["shape"], Value::Null);
    }
}
