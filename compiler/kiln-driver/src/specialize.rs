//! Specializing a graph to given input values and shapes before the pass
//! pipeline runs.
//!
//! Two tools, both applied to a freshly loaded graph:
//! - [`freeze_inputs`] turns graph inputs into constants holding given
//!   tensors (`kiln compile --freeze-input`, and `kiln run` for inputs that
//!   decide shapes). The pipeline's constant folding and shape inference
//!   then make everything downstream static.
//! - [`bind_input_shapes`] fixes the symbolic and unknown extents of graph
//!   inputs to the shapes of given tensors (`kiln run` on a model whose
//!   inputs are dynamic).
//!
//! [`shape_defining_inputs`] names the inputs whose *values* a static
//! compile needs: those feeding a slot listed in the op's
//! [`kiln_ir::OpDef::static_operands`] (Reshape's shape, a reduction's
//! axes, TopK's k, ...), directly or through a chain of value-preserving
//! ops ([`PASS_THROUGH`]).
//!
//! Invariants: a frozen input keeps its value id and name (the constant
//! node defines it instead of the input list), so nothing downstream is
//! rewritten; a given tensor must agree with the declared dtype, rank and
//! static extents, or the graph is left unchanged and the error names the
//! input.

use crate::error::{DriverError, Result};
use crate::tensors::HostTensor;
use kiln_ir::{Attr, Attrs, Blob, Def, Dim, Graph, Node, OpKind, TensorType, Weight, WeightData};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Ops through which [`shape_defining_inputs`] follows a static operand
/// back to a graph input, with the operands it follows: each computes its
/// result from those operands' values alone, so folding it needs exactly
/// them to be constant. `None` means every operand.
const PASS_THROUGH: &[(OpKind, Option<usize>)] = &[
    (OpKind::Identity, Some(0)),
    (OpKind::Cast, Some(0)),
    (OpKind::Squeeze, Some(0)),
    (OpKind::Unsqueeze, Some(0)),
    (OpKind::Reshape, Some(0)),
    (OpKind::Flatten, Some(0)),
    (OpKind::Concat, None),
    (OpKind::Split, Some(0)),
    (OpKind::Slice, Some(0)),
];

/// Integer arithmetic that shape computations use (ONNX functions such as
/// CenterCropPad compute pads as `(max(shape(x), s) - shape(x)) / 2`);
/// followed through every operand, but only where the result is an integer
/// tensor, so that float data paths are never specialized.
const SHAPE_ARITHMETIC: &[OpKind] = &[
    OpKind::Add,
    OpKind::Sub,
    OpKind::Mul,
    OpKind::Div,
    OpKind::Mod,
    OpKind::Max,
    OpKind::Min,
    OpKind::Neg,
    OpKind::Abs,
    OpKind::Gather,
];

/// Names of the graph inputs (in graph order) whose values decide result
/// shapes or are needed by the code generator at compile time.
pub fn shape_defining_inputs(g: &Graph) -> Vec<String> {
    let defs = g.defs();
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    let mut stack: Vec<kiln_ir::ValueId> = g
        .nodes
        .iter()
        .flat_map(|n| {
            n.op.def()
                .static_operands
                .iter()
                .filter_map(|&i| n.inputs.get(i).copied().flatten())
        })
        .collect();
    let mut visited = BTreeSet::new();
    while let Some(v) = stack.pop() {
        if !visited.insert(v) {
            continue;
        }
        match defs.get(&v) {
            Some(Def::Input(i)) => {
                seen.insert(*i);
            }
            Some(Def::Node { node, .. }) => {
                let n = &g.nodes[*node];
                if let Some((_, which)) = PASS_THROUGH.iter().find(|(op, _)| *op == n.op) {
                    match which {
                        Some(i) => stack.extend(n.inputs.get(*i).copied().flatten()),
                        None => stack.extend(n.operands()),
                    }
                } else if SHAPE_ARITHMETIC.contains(&n.op) && g.value(v).ty.dtype.is_int() {
                    stack.extend(n.operands());
                }
            }
            None => {}
        }
    }
    seen.into_iter()
        .map(|i| g.value(g.inputs[i]).name.clone())
        .collect()
}

/// The graph input called `name`, or an error listing the inputs.
fn input_index(g: &Graph, name: &str, what: &str) -> Result<usize> {
    g.inputs
        .iter()
        .position(|&v| g.value(v).name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
            DriverError::Invalid(format!(
                "{what} names '{name}', which is not a graph input (inputs: {})",
                names.join(", ")
            ))
        })
}

/// Checks that `t` can stand for a value of type `ty` (same dtype and rank,
/// equal static extents, one extent per symbol).
fn check_fits(t: &HostTensor, ty: &TensorType, symbols: &mut BTreeMap<String, u64>) -> Result<()> {
    let bad = |why: String| {
        DriverError::Invalid(format!(
            "input '{}': the given tensor ({} {:?}) does not fit the declared type {ty}: {why}",
            t.name,
            t.dtype.name(),
            t.shape
        ))
    };
    if t.dtype != ty.dtype {
        return Err(bad("the dtype differs".into()));
    }
    if t.shape.len() != ty.dims.len() {
        return Err(bad("the rank differs".into()));
    }
    for (d, &n) in ty.dims.iter().zip(&t.shape) {
        match d {
            Dim::Static(s) if *s != n => {
                return Err(bad(format!("extent {n} where the type has {s}")))
            }
            Dim::Sym(s) => {
                if let Some(old) = symbols.insert(s.to_string(), n) {
                    if old != n {
                        return Err(bad(format!("symbol '{s}' would be both {old} and {n}")));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Turns the graph inputs named by `tensors` into constants holding them,
/// and returns the names of the weights holding their values (the input's
/// name unless another weight has it) in the order of `tensors`.
///
/// Every tensor must name a graph input and fit its declared type; on an
/// error the graph is unchanged.
pub fn freeze_inputs(g: &mut Graph, tensors: &[HostTensor]) -> Result<Vec<String>> {
    let mut symbols = BTreeMap::new();
    let mut indices = Vec::with_capacity(tensors.len());
    for t in tensors {
        let i = input_index(g, &t.name, "--freeze-input")?;
        if indices.contains(&i) {
            return Err(DriverError::Invalid(format!(
                "input '{}' is frozen twice",
                t.name
            )));
        }
        check_fits(t, &g.value(g.inputs[i]).ty, &mut symbols)?;
        indices.push(i);
    }
    let mut constants = Vec::with_capacity(tensors.len());
    let mut weight_names = Vec::with_capacity(tensors.len());
    for (t, &i) in tensors.iter().zip(&indices) {
        let v = g.inputs[i];
        let ty = TensorType::fixed(t.dtype, &t.shape);
        let w = g.add_weight(Weight {
            name: t.name.clone(),
            ty: ty.clone(),
            data: WeightData::Bytes(Blob::from_vec(t.data.as_ref().to_vec())),
            source: None,
        });
        weight_names.push(g.weight(w).name.clone());
        *g.value_ty_mut(v) = ty;
        let mut attrs = Attrs::new();
        attrs.insert("value".into(), Attr::Weight(w));
        constants.push(Node {
            op: OpKind::Constant,
            inputs: Vec::new(),
            outputs: vec![v],
            attrs,
            loc: None,
            body: None,
        });
    }
    let frozen: BTreeSet<usize> = indices.into_iter().collect();
    let mut index = 0;
    g.inputs.retain(|_| {
        let keep = !frozen.contains(&index);
        index += 1;
        keep
    });
    // The constants go first so that the node list stays topologically
    // ordered.
    constants.append(&mut g.nodes);
    g.nodes = constants;
    substitute_symbols(g, &symbols);
    Ok(weight_names)
}

/// Gives the graph inputs named by `tensors` the tensors' shapes where
/// their types have symbolic or unknown extents; a symbol bound by one
/// input is substituted in every other input. Tensors naming no graph input
/// are skipped (the session reports them when running).
pub fn bind_input_shapes(g: &mut Graph, tensors: &[HostTensor]) -> Result<()> {
    let by_name: HashMap<&str, &HostTensor> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut symbols = BTreeMap::new();
    let mut fixed = Vec::new();
    for &v in &g.inputs {
        let info = g.value(v);
        if info.ty.is_static() {
            continue;
        }
        if let Some(t) = by_name.get(info.name.as_str()) {
            check_fits(t, &info.ty, &mut symbols)?;
            fixed.push((v, TensorType::fixed(t.dtype, &t.shape)));
        }
    }
    for (v, ty) in fixed {
        *g.value_ty_mut(v) = ty;
    }
    substitute_symbols(g, &symbols);
    Ok(())
}

/// Replaces bound symbols in the graph inputs' types.
pub(crate) fn substitute_symbols(g: &mut Graph, symbols: &BTreeMap<String, u64>) {
    if symbols.is_empty() {
        return;
    }
    for v in g.inputs.clone() {
        let ty = g.value(v).ty.clone();
        let dims = ty
            .dims
            .iter()
            .map(|d| match d {
                Dim::Sym(s) => symbols
                    .get(&**s)
                    .map_or_else(|| d.clone(), |&n| Dim::Static(n)),
                _ => d.clone(),
            })
            .collect();
        *g.value_ty_mut(v) = TensorType::new(ty.dtype, dims);
    }
}
