//! The graph verifier: SSA well-formedness, op arity, attribute schemas,
//! weight references, and agreement of declared result types with each
//! op's inference.
//!
//! Passes run it after every pass in debug builds and tests; the text
//! parser runs it on everything it reads. It reports all problems it finds,
//! not only the first, each naming the node.

use crate::attr::{Attr, AttrKind};
use crate::graph::{Def, Derivation, Graph, Node, ValueId, WeightData, WeightId};
use crate::ops::infer::{ConstOperand, InferCtx, InferError};
use crate::ops::AttrDefault;
use crate::ops::OpKind;
use crate::types::{Dim, TensorType};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// One verifier finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// Index of the offending node, if the problem is in a node.
    pub node: Option<usize>,
    /// What is wrong, naming the node and values.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VerifyError {}

/// Infers the result types of `node` from its operands' current types,
/// attributes and constant operands.
pub fn infer_node(
    g: &Graph,
    node: &Node,
    defs: &HashMap<ValueId, Def>,
) -> Result<Vec<TensorType>, InferError> {
    infer_node_with(g, node, &|v| g.constant_weight(defs, v))
}

/// Like [`infer_node`], with the caller telling which operands are
/// constants (builders that track constants incrementally avoid
/// recomputing the def map for every node).
pub fn infer_node_with(
    g: &Graph,
    node: &Node,
    const_weight: &dyn Fn(ValueId) -> Option<WeightId>,
) -> Result<Vec<TensorType>, InferError> {
    let def = node.op.def();
    let types: Vec<Option<&TensorType>> = node
        .inputs
        .iter()
        .map(|v| v.map(|v| &g.value(v).ty))
        .collect();
    let consts: Vec<Option<ConstOperand<'_>>> = node
        .inputs
        .iter()
        .map(|v| {
            let w = g.weight(const_weight((*v)?)?);
            w.bytes().map(|data| ConstOperand { ty: &w.ty, data })
        })
        .collect();
    let weight_ty = node.attrs.values().find_map(|a| match a {
        Attr::Weight(w) if (w.0 as usize) < g.weights().len() => Some(&g.weight(*w).ty),
        _ => None,
    });
    let ctx = InferCtx {
        def,
        inputs: &types,
        attrs: &node.attrs,
        consts: &consts,
        num_outputs: node.outputs.len(),
        weight_ty,
        body: node.body.as_deref(),
    };
    (def.infer)(&ctx)
}

/// Infers the type of a derived weight from its operands' types.
pub fn infer_derivation(g: &Graph, d: &Derivation) -> Result<TensorType, InferError> {
    let def = d.op.def();
    if d.inputs.iter().any(|w| w.0 as usize >= g.weights().len()) {
        return Err(InferError("refers to a weight that does not exist".into()));
    }
    if !def.inputs.allows(d.inputs.len()) || !def.outputs.allows(1) {
        return Err(InferError(format!(
            "{} cannot derive a weight from {} operands",
            def.name,
            d.inputs.len()
        )));
    }
    if def.attrs.iter().any(|a| a.kind == AttrKind::Weight) || d.op == OpKind::Fused {
        return Err(InferError(format!("{} cannot derive a weight", def.name)));
    }
    let types: Vec<Option<&TensorType>> = d.inputs.iter().map(|w| Some(&g.weight(*w).ty)).collect();
    let consts: Vec<Option<ConstOperand<'_>>> = d
        .inputs
        .iter()
        .map(|w| {
            let w = g.weight(*w);
            w.bytes().map(|data| ConstOperand { ty: &w.ty, data })
        })
        .collect();
    let ctx = InferCtx {
        def,
        inputs: &types,
        attrs: &d.attrs,
        consts: &consts,
        num_outputs: 1,
        weight_ty: None,
        body: None,
    };
    let mut tys = (def.infer)(&ctx)?;
    if tys.is_empty() {
        return Err(InferError(format!("{} produced no result", def.name)));
    }
    Ok(tys.swap_remove(0))
}

/// Whether a declared result type is consistent with the inferred one: same
/// dtype and rank, and no two static extents disagree.
fn agrees(declared: &TensorType, inferred: &TensorType) -> bool {
    declared.is_compatible(inferred)
}

/// Checks one node's arity and attributes against its schema.
fn check_schema(node: &Node) -> Vec<String> {
    let def = node.op.def();
    let mut errs = Vec::new();
    if !def.inputs.allows(node.inputs.len()) {
        errs.push(format!(
            "expects {} operands, got {}",
            arity_text(def.inputs.min, def.inputs.max),
            node.inputs.len()
        ));
    }
    for (i, v) in node.inputs.iter().enumerate() {
        if v.is_none() && i < def.inputs.min {
            errs.push(format!("operand #{i} is required but absent"));
        }
    }
    if !def.outputs.allows(node.outputs.len()) {
        errs.push(format!(
            "expects {} results, got {}",
            arity_text(def.outputs.min, def.outputs.max),
            node.outputs.len()
        ));
    }
    errs.extend(check_attrs(def, &node.attrs));
    errs
}

/// Checks attributes against an op's schema: known names, kinds, required
/// ones present.
fn check_attrs(def: &crate::ops::OpDef, attrs: &crate::attr::Attrs) -> Vec<String> {
    let mut errs = Vec::new();
    for (name, a) in attrs {
        match def.attr_spec(name) {
            None => errs.push(format!("unknown attribute '{name}'")),
            Some(s) if !a.fits(s.kind) => errs.push(format!(
                "attribute '{name}' must be {}, got {}",
                s.kind.name(),
                a.kind().name()
            )),
            Some(s) => errs.extend(s.kind.value_error(name, a)),
        }
    }
    for s in def.attrs {
        if matches!(s.default, AttrDefault::Required) && !attrs.contains_key(s.name) {
            errs.push(format!("attribute '{}' is required", s.name));
        }
    }
    errs
}

fn arity_text(min: usize, max: usize) -> String {
    if min == max {
        min.to_string()
    } else if max == usize::MAX {
        format!("at least {min}")
    } else {
        format!("{min} to {max}")
    }
}

/// Verifies the whole graph; returns every problem found.
pub fn verify(g: &Graph) -> Result<(), Vec<VerifyError>> {
    let mut errs = Vec::new();
    let mut defined: HashSet<ValueId> = HashSet::new();
    let mut push = |node: Option<usize>, message: String| errs.push(VerifyError { node, message });

    for &v in &g.inputs {
        if !defined.insert(v) {
            push(
                None,
                format!("graph input %{} is listed twice", g.value(v).name),
            );
        }
    }
    for (i, w) in g.weights().iter().enumerate() {
        match (&w.data, w.ty.storage_bytes()) {
            (_, None) => push(
                None,
                format!(
                    "weight @{} has a non-static or oversized type {}",
                    w.name, w.ty
                ),
            ),
            (WeightData::Bytes(b), Some(n)) if b.len() as u64 != n => push(
                None,
                format!(
                    "weight @{} has {} bytes but {} needs {n}",
                    w.name,
                    b.len(),
                    w.ty
                ),
            ),
            (WeightData::Elided { bytes, .. }, Some(n)) if *bytes != n => push(
                None,
                format!(
                    "weight @{} records {bytes} bytes but {} needs {n}",
                    w.name, w.ty
                ),
            ),
            _ => {}
        }
        if let Some(d) = w.derivation() {
            if let Some(bad) = d.inputs.iter().find(|x| x.0 as usize >= i) {
                let what = g
                    .weights()
                    .get(bad.0 as usize)
                    .map_or_else(|| format!("#{}", bad.0), |x| format!("@{}", x.name));
                push(
                    None,
                    format!(
                        "derived weight @{} uses {what}, which does not come before it",
                        w.name
                    ),
                );
                continue;
            }
            for e in check_attrs(d.op.def(), &d.attrs) {
                push(None, format!("derived weight @{}: {e}", w.name));
            }
            match infer_derivation(g, d) {
                Err(e) => push(None, format!("derived weight @{}: {e}", w.name)),
                Ok(t) if t != w.ty => push(
                    None,
                    format!(
                        "derived weight @{} is declared {} but {} gives {t}",
                        w.name,
                        w.ty,
                        d.op.name()
                    ),
                ),
                Ok(_) => {}
            }
        }
    }
    let defs = g.defs();
    for (n, node) in g.nodes.iter().enumerate() {
        let what = node.describe();
        let schema_errs = check_schema(node);
        for e in &schema_errs {
            push(Some(n), format!("{what}: {e}"));
        }
        let mut operands_ok = true;
        for v in node.operands() {
            if !defined.contains(&v) {
                operands_ok = false;
                let name = if (v.0 as usize) < g.num_values() {
                    g.value(v).name.clone()
                } else {
                    format!("#{}", v.0)
                };
                push(
                    Some(n),
                    format!("{what}: operand %{name} is used before it is defined"),
                );
            }
        }
        for a in node.attrs.values() {
            if let Attr::Weight(w) = a {
                if w.0 as usize >= g.weights().len() {
                    operands_ok = false;
                    push(
                        Some(n),
                        format!("{what}: refers to a weight that does not exist"),
                    );
                }
            }
        }
        for &v in &node.outputs {
            if !defined.insert(v) {
                push(
                    Some(n),
                    format!("{what}: result %{} is defined twice", g.value(v).name),
                );
            }
        }
        match (&node.body, node.op == OpKind::Fused) {
            (Some(body), true) => {
                if let Err(body_errs) = verify(body) {
                    for e in body_errs {
                        push(Some(n), format!("{what}: in its body: {e}"));
                    }
                    continue;
                }
            }
            (None, true) => push(Some(n), format!("{what}: has no body")),
            (Some(_), false) => push(Some(n), format!("{what}: only nn.fused has a body")),
            (None, false) => {}
        }
        if !operands_ok || !node.op.def().inputs.allows(node.inputs.len()) {
            continue;
        }
        match infer_node(g, node, &defs) {
            // Inference reads attributes through the same typed readers, so
            // it may repeat a schema error word for word: report it once.
            Err(e) if schema_errs.contains(&e.0) => {}
            Err(e) => push(Some(n), format!("{what}: {e}")),
            Ok(tys) if tys.len() < node.outputs.len() => push(
                Some(n),
                format!(
                    "{what}: declares {} results but the op produces {}",
                    node.outputs.len(),
                    tys.len()
                ),
            ),
            Ok(tys) => {
                for (r, (&v, t)) in node.outputs.iter().zip(&tys).enumerate() {
                    let declared = &g.value(v).ty;
                    if !agrees(declared, t) {
                        push(
                            Some(n),
                            format!(
                                "{what}: result #{r} is declared {declared} but the op infers {t}"
                            ),
                        );
                    }
                }
            }
        }
    }
    for &v in &g.outputs {
        if !defined.contains(&v) {
            push(
                None,
                format!("graph output %{} is not defined", g.value(v).name),
            );
        }
    }
    if let (Some(plan), true) = (&g.memory_plan, errs.is_empty()) {
        if let Err(plan_errs) = crate::plan::verify_plan(g, plan) {
            errs.extend(plan_errs.into_iter().map(|e| VerifyError {
                node: None,
                message: e.to_string(),
            }));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Refines declared result types with inferred ones where inference knows
/// more (an unknown or symbolic dim becomes static). Returns whether any
/// type changed. Errors are left for [`verify`] to report.
pub fn refine_types(g: &mut Graph) -> bool {
    let defs = g.defs();
    let consts: HashMap<ValueId, WeightId> = defs
        .keys()
        .filter_map(|&v| g.constant_weight(&defs, v).map(|w| (v, w)))
        .collect();
    let mut changed = false;
    for n in 0..g.nodes.len() {
        changed |= refine_node_types(g, n, &|v| consts.get(&v).copied());
    }
    changed
}

/// Refines the result types of node `n` from its operands' current types
/// and constants (see [`refine_types`]); returns whether a type changed.
/// Passes that make operands constant call it to keep later nodes' types
/// current within one forward sweep.
pub fn refine_node_types(
    g: &mut Graph,
    n: usize,
    const_weight: &dyn Fn(ValueId) -> Option<WeightId>,
) -> bool {
    let Ok(tys) = infer_node_with(g, &g.nodes[n], const_weight) else {
        return false;
    };
    let mut changed = false;
    let outs = g.nodes[n].outputs.clone();
    for (v, t) in outs.into_iter().zip(tys) {
        let cur = g.value(v).ty.clone();
        if !cur.is_compatible(&t) {
            continue;
        }
        let dims: Vec<Dim> = cur
            .dims
            .iter()
            .zip(&t.dims)
            .map(|(c, i)| match (c, i) {
                (Dim::Static(_), _) => c.clone(),
                (_, Dim::Static(_)) => i.clone(),
                (Dim::Unknown, Dim::Sym(_)) => i.clone(),
                _ => c.clone(),
            })
            .collect();
        if dims != cur.dims {
            g.value_ty_mut(v).dims = dims;
            changed = true;
        }
    }
    changed
}
