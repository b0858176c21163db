//! Graphs of ops over SSA values, and the weights they reference.
//!
//! Invariants (checked by [`crate::verify`]):
//! - every value is defined exactly once, by a graph input or one node
//!   output, and nodes appear in topological order (uses after defs);
//! - value names are unique within a graph (the text format relies on it);
//! - a constant's data lives in [`Graph::weights`] and is referenced by
//!   [`WeightId`]; the IR never copies weight bytes, only [`Blob`] views.

use crate::attr::{Attr, Attrs};
use crate::blob::Blob;
use crate::ops::OpKind;
use crate::plan::MemoryPlan;
use crate::types::TensorType;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// Index of a value in its graph's value arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// Index of a weight in its graph's weight table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeightId(pub u32);

/// A value's name and type.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    /// Unique name within the graph (ONNX names are kept as they were).
    pub name: String,
    /// The value's type.
    pub ty: TensorType,
}

/// One op application.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Which op.
    pub op: OpKind,
    /// Operands; `None` marks an absent optional operand.
    pub inputs: Vec<Option<ValueId>>,
    /// Results.
    pub outputs: Vec<ValueId>,
    /// Attributes, checked against the op's schema.
    pub attrs: Attrs,
    /// Where the node came from (an ONNX node name), for diagnostics.
    pub loc: Option<String>,
    /// The region of a node that holds a sub-graph (`nn.fused`): its inputs
    /// are bound, in order, to the node's operands and its outputs are the
    /// node's results. It has no weights of its own and sees only its own
    /// values. `None` for every other op.
    pub body: Option<Box<Graph>>,
}

impl Node {
    /// Present operands.
    pub fn operands(&self) -> impl Iterator<Item = ValueId> + '_ {
        self.inputs.iter().flatten().copied()
    }

    /// A short description for diagnostics: `nn.add "name"`.
    pub fn describe(&self) -> String {
        match &self.loc {
            Some(l) => format!("{} \"{}\"", self.op.name(), l),
            None => self.op.name().to_string(),
        }
    }
}

/// Where weight bytes live.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightData {
    /// Bytes in Kiln's storage layout (little-endian, nibbles packed low
    /// first), possibly a view into a memory-mapped file.
    Bytes(Blob),
    /// The bytes were left out when the IR was printed; only the size and a
    /// fingerprint remain. Such a graph can be optimized but not compiled.
    Elided {
        /// Byte length of the data that was left out.
        bytes: u64,
        /// FNV-1a 64 of the data that was left out.
        fingerprint: u64,
    },
    /// The result of an op applied to other weights (folding a batch norm
    /// into conv weights, packing a weight into a kernel's panel layout),
    /// computed only when the bytes are needed (by the interpreter, or
    /// while the artifact's weights are streamed), one weight at a time.
    Derived(Derivation),
}

/// How a derived weight is computed: `op {attrs}` applied to `inputs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Derivation {
    /// The op (any Kiln op with one result and no weight attribute).
    pub op: OpKind,
    /// Its attributes, checked against the op's schema.
    pub attrs: Attrs,
    /// The operand weights; each comes earlier in the weight table, so
    /// derivations never form cycles.
    pub inputs: Vec<WeightId>,
}

/// A file region a weight was loaded from, kept so that printers can refer
/// to the file instead of copying the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightSource {
    /// The file, as it should be written in the text format.
    pub file: PathBuf,
    /// Byte offset into the file.
    pub offset: u64,
}

/// A named constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    /// Unique name within the graph.
    pub name: String,
    /// Static type of the data.
    pub ty: TensorType,
    /// The data.
    pub data: WeightData,
    /// The file region the data came from, if any.
    pub source: Option<WeightSource>,
}

impl Weight {
    /// The bytes, unless elided or derived (derived bytes are computed by
    /// `kiln_interp::materialize`).
    pub fn bytes(&self) -> Option<&Blob> {
        match &self.data {
            WeightData::Bytes(b) => Some(b),
            WeightData::Elided { .. } | WeightData::Derived(_) => None,
        }
    }

    /// The derivation of a derived weight.
    pub fn derivation(&self) -> Option<&Derivation> {
        match &self.data {
            WeightData::Derived(d) => Some(d),
            _ => None,
        }
    }
}

/// FNV-1a 64-bit hash, used to fingerprint elided weights.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A computation graph.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// The graph's name (ONNX graph name or `main`).
    pub name: String,
    /// Graph inputs, in order.
    pub inputs: Vec<ValueId>,
    /// Graph outputs, in order.
    pub outputs: Vec<ValueId>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    values: Vec<ValueInfo>,
    weights: Vec<Weight>,
    used_names: HashSet<String>,
    weight_names: HashMap<String, WeightId>,
    /// Where the `_N` search for a taken value or weight name resumes, per
    /// base name: importing an unrolled loop asks for the same base name
    /// thousands of times, and rescanning from `_1` made that quadratic.
    /// Only a hint: candidates are still checked against the taken names.
    next_suffix: HashMap<String, u64>,
    next_weight_suffix: HashMap<String, u64>,
    /// Where each intermediate lives in the run's workspace, once
    /// `plan-memory` has run (see [`crate::plan`]).
    pub memory_plan: Option<MemoryPlan>,
}

/// `base_N` for the first N from `next[base]` on that `taken` rejects,
/// remembering where to resume.
fn fresh_name(base: &str, next: &mut HashMap<String, u64>, taken: impl Fn(&str) -> bool) -> String {
    let start = next.get(base).copied().unwrap_or(1);
    let (i, name) = (start..)
        .map(|i| (i, format!("{base}_{i}")))
        .find(|(_, n)| !taken(n))
        .expect("unbounded counter");
    next.insert(base.to_string(), i + 1);
    name
}

/// Producer of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Def {
    /// The i-th graph input.
    Input(usize),
    /// Output `result` of node `node` (an index into [`Graph::nodes`]).
    Node {
        /// Node index.
        node: usize,
        /// Result index.
        result: usize,
    },
}

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// Adds a value. The name is made unique by appending `_N` if taken.
    pub fn add_value(&mut self, name: &str, ty: TensorType) -> ValueId {
        let name = self.unique_name(name);
        self.used_names.insert(name.clone());
        let id = ValueId(self.values.len() as u32);
        self.values.push(ValueInfo { name, ty });
        id
    }

    fn unique_name(&mut self, hint: &str) -> String {
        let base = if hint.is_empty() { "v" } else { hint };
        if !self.used_names.contains(base) {
            return base.to_string();
        }
        let used = &self.used_names;
        fresh_name(base, &mut self.next_suffix, |n| used.contains(n))
    }

    /// Whether a value name is taken.
    pub fn has_value_named(&self, name: &str) -> bool {
        self.used_names.contains(name)
    }

    /// Adds a graph input.
    pub fn add_input(&mut self, name: &str, ty: TensorType) -> ValueId {
        let v = self.add_value(name, ty);
        self.inputs.push(v);
        v
    }

    /// Appends a node whose results get the given names and types.
    pub fn add_node(
        &mut self,
        op: OpKind,
        inputs: Vec<Option<ValueId>>,
        attrs: Attrs,
        results: Vec<(String, TensorType)>,
    ) -> Vec<ValueId> {
        let outputs: Vec<ValueId> = results
            .into_iter()
            .map(|(n, t)| self.add_value(&n, t))
            .collect();
        self.nodes.push(Node {
            op,
            inputs,
            outputs: outputs.clone(),
            attrs,
            loc: None,
            body: None,
        });
        outputs
    }

    /// Adds a weight; the name is made unique if taken.
    pub fn add_weight(&mut self, mut weight: Weight) -> WeightId {
        if self.weight_names.contains_key(&weight.name) || weight.name.is_empty() {
            let base = if weight.name.is_empty() {
                "w".to_string()
            } else {
                weight.name.clone()
            };
            let names = &self.weight_names;
            weight.name = fresh_name(&base, &mut self.next_weight_suffix, |n| {
                names.contains_key(n)
            });
        }
        let id = WeightId(self.weights.len() as u32);
        self.weight_names.insert(weight.name.clone(), id);
        self.weights.push(weight);
        id
    }

    /// Adds a weight and an `nn.constant` node producing it; returns the value.
    pub fn add_constant(&mut self, value_name: &str, weight: Weight) -> ValueId {
        let ty = weight.ty.clone();
        let w = self.add_weight(weight);
        let mut attrs = Attrs::new();
        attrs.insert("value".into(), Attr::Weight(w));
        self.add_node(
            OpKind::Constant,
            vec![],
            attrs,
            vec![(value_name.into(), ty)],
        )[0]
    }

    /// A value's name and type.
    pub fn value(&self, v: ValueId) -> &ValueInfo {
        &self.values[v.0 as usize]
    }

    /// Mutable access to a value's name and type. Renaming through this is
    /// not allowed (names are tracked); use it to refine types.
    pub fn value_ty_mut(&mut self, v: ValueId) -> &mut TensorType {
        &mut self.values[v.0 as usize].ty
    }

    /// Number of values ever created (live or dead).
    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    /// A weight.
    pub fn weight(&self, w: WeightId) -> &Weight {
        &self.weights[w.0 as usize]
    }

    /// All weights, indexed by [`WeightId`].
    pub fn weights(&self) -> &[Weight] {
        &self.weights
    }

    /// Looks a weight up by name.
    pub fn weight_by_name(&self, name: &str) -> Option<WeightId> {
        self.weight_names.get(name).copied()
    }

    /// Maps every value defined in the graph to its producer.
    pub fn defs(&self) -> HashMap<ValueId, Def> {
        let mut m = HashMap::new();
        for (i, &v) in self.inputs.iter().enumerate() {
            m.insert(v, Def::Input(i));
        }
        for (n, node) in self.nodes.iter().enumerate() {
            for (r, &v) in node.outputs.iter().enumerate() {
                m.insert(v, Def::Node { node: n, result: r });
            }
        }
        m
    }

    /// Counts uses of each value by nodes and graph outputs.
    pub fn use_counts(&self) -> HashMap<ValueId, usize> {
        let mut m: HashMap<ValueId, usize> = HashMap::new();
        for node in &self.nodes {
            for v in node.operands() {
                *m.entry(v).or_default() += 1;
            }
        }
        for &v in &self.outputs {
            *m.entry(v).or_default() += 1;
        }
        m
    }

    /// Replaces every use of `old` (operands and graph outputs) with `new`.
    pub fn replace_all_uses(&mut self, old: ValueId, new: ValueId) {
        for node in &mut self.nodes {
            for i in node.inputs.iter_mut().flatten() {
                if *i == old {
                    *i = new;
                }
            }
        }
        for o in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// The weight behind a value produced by `nn.constant`, if any.
    pub fn constant_weight(&self, defs: &HashMap<ValueId, Def>, v: ValueId) -> Option<WeightId> {
        match defs.get(&v)? {
            Def::Node { node, .. } => {
                let n = &self.nodes[*node];
                if n.op != OpKind::Constant {
                    return None;
                }
                match n.attrs.get("value") {
                    Some(Attr::Weight(w)) => Some(*w),
                    _ => None,
                }
            }
            Def::Input(_) => None,
        }
    }

    /// Removes weights that no `nn.constant` refers to (directly, or as an
    /// operand of a derived weight that one refers to) and renumbers the
    /// rest, keeping their order.
    pub fn gc_weights(&mut self) {
        let mut used = vec![false; self.weights.len()];
        for n in &self.nodes {
            for a in n.attrs.values() {
                if let Attr::Weight(w) = a {
                    used[w.0 as usize] = true;
                }
            }
        }
        // Derived weights only refer to earlier weights: one backward sweep
        // marks every operand of a used derivation.
        for i in (0..self.weights.len()).rev() {
            if !used[i] {
                continue;
            }
            if let Some(d) = self.weights[i].derivation() {
                for w in &d.inputs {
                    used[w.0 as usize] = true;
                }
            }
        }
        let mut remap = vec![None; self.weights.len()];
        let old = std::mem::take(&mut self.weights);
        self.weight_names.clear();
        for (i, mut w) in old.into_iter().enumerate() {
            if used[i] {
                if let WeightData::Derived(d) = &mut w.data {
                    for x in &mut d.inputs {
                        *x = remap[x.0 as usize].expect("an operand precedes its derived weight");
                    }
                }
                remap[i] = Some(WeightId(self.weights.len() as u32));
                self.weight_names
                    .insert(w.name.clone(), WeightId(self.weights.len() as u32));
                self.weights.push(w);
            }
        }
        for n in &mut self.nodes {
            for a in n.attrs.values_mut() {
                if let Attr::Weight(w) = a {
                    *w = remap[w.0 as usize].expect("used weight was kept");
                }
            }
        }
    }
}

// Name bookkeeping that rewrites need.
impl Graph {
    /// Swaps the names of two values. The set of names in use does not
    /// change, so uniqueness is kept. Rewrites use it so that a graph output
    /// keeps its name when another value takes its place.
    pub fn swap_value_names(&mut self, a: ValueId, b: ValueId) {
        let (ia, ib) = (a.0 as usize, b.0 as usize);
        if ia == ib {
            return;
        }
        let na = std::mem::take(&mut self.values[ia].name);
        let nb = std::mem::replace(&mut self.values[ib].name, na);
        self.values[ia].name = nb;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, WeightData};

    fn weight(name: &str) -> Weight {
        Weight {
            name: name.into(),
            ty: TensorType::scalar(DType::F32),
            data: WeightData::Bytes(crate::Blob::from_vec(vec![0; 4])),
            source: None,
        }
    }

    /// Taken names get the first free `_N`, including around names that
    /// were given explicitly (the resume point is only a hint).
    #[test]
    fn fresh_names_skip_every_taken_name() {
        let mut g = Graph::new("t");
        let ty = TensorType::scalar(DType::F32);
        let names: Vec<String> = ["x", "x", "x_2", "x", "x", "y", "x_5", "x"]
            .iter()
            .map(|n| {
                let v = g.add_value(n, ty.clone());
                g.value(v).name.clone()
            })
            .collect();
        assert_eq!(names, ["x", "x_1", "x_2", "x_3", "x_4", "y", "x_5", "x_6"]);
        let w: Vec<String> = ["w", "w", "w_2", "w", ""]
            .iter()
            .map(|n| {
                let id = g.add_weight(weight(n));
                g.weight(id).name.clone()
            })
            .collect();
        assert_eq!(w, ["w", "w_1", "w_2", "w_3", "w_4"]);
    }
}
