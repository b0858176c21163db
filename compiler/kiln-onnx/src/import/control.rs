//! Control flow (`If`, `Loop`, `Scan`) by expansion at import time.
//!
//! Kiln IR is a flat dataflow graph without regions, so control flow is
//! resolved while importing, where constant folding already runs:
//! - `If` imports the branch its condition selects; the condition must be a
//!   compile-time constant.
//! - `Loop` is unrolled; its trip count and its condition must be known
//!   before each iteration, while the loop-carried values may be anything.
//!   Scan outputs are stacked along a new axis 0.
//! - `Scan` is unrolled over the scan axis, whose extent must be static.
//!   Scan-8's batch axis is unrolled too.
//! - `FlexAttention` (`ai.onnx.preview`) imports its `score_mod` and
//!   `prob_mod` subgraphs inline around the attention it composes.
//!
//! A condition or trip count that depends on graph inputs is reported as
//! [`OnnxError::NeedsInputValues`] naming those inputs: `kiln run` imports
//! again with the values it was given, and `kiln compile --freeze-input`
//! passes them up front ([`super::ImportOptions::input_values`]).
//!
//! Invariants:
//! - A body is imported once per iteration in a fresh scope holding only
//!   its formal inputs, its initializers and the outer values it captures;
//!   names defined in a body never leak into the enclosing scope.
//! - Unrolling is bounded ([`MAX_UNROLL`] iterations per node, and
//!   [`MAX_BODIES`] bodies or [`MAX_EXPANDED_NODES`] nodes per model, since
//!   nested loops multiply), so a model cannot make the importer loop
//!   forever or grow the graph without limit.

use super::{Builder, NodeCtx, Scope, MAX_INLINE_DEPTH};
use crate::error::OnnxError;
use crate::model::{OnnxAttr, OnnxGraph, OnnxNode};
use kiln_interp::Tensor;
use kiln_ir::{Blob, DType, TensorType, ValueId};
use std::collections::{BTreeSet, HashMap};

/// Most iterations one `Loop` or `Scan` node is unrolled to.
pub const MAX_UNROLL: u64 = 4096;

/// Most control-flow bodies one model may expand into, all nodes together
/// (nested loops multiply), and most nodes the expanded graph may reach:
/// a small model must not make the importer run for minutes.
pub const MAX_BODIES: u64 = 1 << 16;
/// See [`MAX_BODIES`].
pub const MAX_EXPANDED_NODES: usize = 1 << 22;

/// Largest integer graph input whose value the importer asks for when a
/// result type depends on it (see [`Builder::value_inputs_of`]).
pub const SHAPE_LIKE_MAX_ELEMENTS: u64 = 64;

/// Whether `node` is an operator with graph attributes that this module
/// imports: control flow, or FlexAttention with its modifier subgraphs.
pub(super) fn takes_subgraphs(node: &OnnxNode) -> bool {
    matches!(
        (node.domain.as_str(), node.op_type.as_str()),
        ("", "If" | "Loop" | "Scan") | ("ai.onnx.preview", "FlexAttention")
    )
}

/// The subgraphs held by a node's attributes.
pub(super) fn subgraphs(node: &OnnxNode) -> impl Iterator<Item = &OnnxGraph> {
    node.attrs.values().flat_map(|a| match a {
        OnnxAttr::Graph(g) => std::slice::from_ref(&**g).iter().collect::<Vec<_>>(),
        OnnxAttr::Graphs(gs) => gs.iter().collect(),
        _ => Vec::new(),
    })
}

/// The outer values `body` (or a graph nested in it) refers to: the only
/// names an imported body sees besides its own.
fn captures(body: &OnnxGraph, outer: &Scope) -> Scope {
    fn collect(body: &OnnxGraph, outer: &Scope, out: &mut Scope) {
        let used = body
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter().flatten())
            .chain(body.outputs.iter().map(|o| &o.name));
        for name in used {
            if let Some(&v) = outer.get(name) {
                out.insert(name.clone(), v);
            }
        }
        for g in body.nodes.iter().flat_map(subgraphs) {
            collect(g, outer, out);
        }
    }
    let mut out = Scope::new();
    collect(body, outer, &mut out);
    out
}

/// A Scan node's operands and body: `n` states then `m` scan inputs in
/// `vals`, and `k` scan outputs.
struct ScanParts<'n> {
    vals: Vec<ValueId>,
    n: usize,
    m: usize,
    k: usize,
    body: &'n OnnxGraph,
}

/// What a body import needs besides its arguments.
struct BodyEnv<'a> {
    opset: i64,
    fn_attrs: &'a HashMap<String, OnnxAttr>,
    depth: usize,
}

impl<'m> Builder<'m> {
    /// Imports one control-flow node, binding its outputs in `scope`.
    pub(super) fn import_control(
        &mut self,
        node: &OnnxNode,
        version: i64,
        opset: i64,
        scope: &mut Scope,
        fn_attrs: &HashMap<String, OnnxAttr>,
        depth: usize,
    ) -> Result<(), OnnxError> {
        if depth >= MAX_INLINE_DEPTH {
            return Err(OnnxError::Limit {
                file: self.file.clone(),
                context: node.describe(),
                message: format!("control flow nests deeper than {MAX_INLINE_DEPTH}"),
            });
        }
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for i in &node.inputs {
            inputs.push(match i {
                Some(name) => Some(self.lookup(scope, name, node)?),
                None => None,
            });
        }
        let env = BodyEnv {
            opset,
            fn_attrs,
            depth,
        };
        let outs = match node.op_type.as_str() {
            "FlexAttention" => self.import_flex_attention(node, &inputs, scope, &env)?,
            "If" => self.import_if(node, &inputs, scope, &env)?,
            "Loop" => self.import_loop(node, &inputs, scope, &env)?,
            _ if version < 9 => self.import_scan8(node, &inputs, scope, &env)?,
            _ => self.import_scan(node, &inputs, scope, &env)?,
        };
        for (i, name) in node.outputs.iter().enumerate() {
            let Some(name) = name else { continue };
            let v = outs.get(i).copied().ok_or_else(|| {
                self.node_invalid(
                    node,
                    format!("output #{i} ('{name}') has no matching body output"),
                )
            })?;
            scope.insert(name.clone(), v);
        }
        Ok(())
    }

    fn node_invalid(&self, node: &OnnxNode, message: impl Into<String>) -> OnnxError {
        OnnxError::Invalid {
            file: self.file.clone(),
            context: node.describe(),
            message: message.into(),
        }
    }

    fn node_unsupported(&self, node: &OnnxNode, message: impl Into<String>) -> OnnxError {
        OnnxError::Unsupported {
            file: self.file.clone(),
            context: node.describe(),
            message: message.into(),
        }
    }

    fn unroll_limit(&self, node: &OnnxNode, what: &str, n: f64) -> OnnxError {
        OnnxError::Limit {
            file: self.file.clone(),
            context: node.describe(),
            message: format!(
                "{what} asks for {}{n} iterations, over Kiln's limit of {MAX_UNROLL} for unrolling control flow at compile time",
                if what == "the loop condition" { "at least " } else { "" }
            ),
        }
    }

    fn body<'n>(&self, node: &'n OnnxNode, name: &str) -> Result<&'n OnnxGraph, OnnxError> {
        node.attr(name)
            .and_then(OnnxAttr::as_graph)
            .ok_or_else(|| self.node_invalid(node, format!("graph attribute '{name}' is missing")))
    }

    /// The value of `v` if it is a compile-time constant.
    pub(super) fn known(&self, v: ValueId) -> Option<Tensor> {
        let w = self.consts.get(&v)?;
        Tensor::from_weight(self.graph.weight(*w)).ok()
    }

    /// A one-element constant as a scalar, or the error saying why it is
    /// not known.
    fn known_scalar(&self, node: &OnnxNode, v: ValueId, what: &str) -> Result<f64, OnnxError> {
        let Some(t) = self.known(v) else {
            return Err(self.not_known(node, v, what));
        };
        if t.numel() != 1 {
            return Err(self.node_invalid(
                node,
                format!("{what} must hold one element, it has {}", t.numel()),
            ));
        }
        Ok(t.get_f64(0))
    }

    /// The graph inputs (in graph order) that `v` is computed from.
    fn input_dependencies(&self, v: ValueId) -> Vec<ValueId> {
        let mut producer: HashMap<ValueId, usize> = HashMap::new();
        for (i, n) in self.graph.nodes.iter().enumerate() {
            for &o in &n.outputs {
                producer.insert(o, i);
            }
        }
        let mut seen = BTreeSet::new();
        let mut reached = BTreeSet::new();
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            if !seen.insert(v) {
                continue;
            }
            match producer.get(&v) {
                Some(&i) => stack.extend(self.graph.nodes[i].inputs.iter().flatten()),
                None => {
                    reached.insert(v);
                }
            }
        }
        self.graph
            .inputs
            .iter()
            .copied()
            .filter(|i| reached.contains(i))
            .collect()
    }

    /// For a node whose result type cannot be inferred: the small integer
    /// graph inputs (at most [`SHAPE_LIKE_MAX_ELEMENTS`] elements) behind
    /// its non-constant static operands and its operands of non-static
    /// type. Giving their values may make the type static; data inputs
    /// are never proposed, and an error about anything else (a dtype, an
    /// attribute) proposes nothing.
    pub(super) fn value_inputs_of(&self, node: &kiln_ir::Node) -> Vec<String> {
        let statics = node.op.def().static_operands;
        let mut found = BTreeSet::new();
        for (i, v) in node.inputs.iter().enumerate() {
            let Some(v) = *v else { continue };
            let relevant = if statics.contains(&i) {
                !self.consts.contains_key(&v)
            } else {
                !self.graph.value(v).ty.is_static()
            };
            if !relevant {
                continue;
            }
            for i in self.input_dependencies(v) {
                let ty = &self.graph.value(i).ty;
                let small = ty
                    .static_shape()
                    .is_some_and(|s| s.iter().product::<u64>() <= SHAPE_LIKE_MAX_ELEMENTS);
                if small && ty.dtype.is_int() {
                    found.insert(i);
                }
            }
        }
        self.graph
            .inputs
            .iter()
            .filter(|i| found.contains(i))
            .map(|&i| self.graph.value(i).name.clone())
            .collect()
    }

    /// Why `v` is not a compile-time constant: the graph inputs it depends
    /// on, if any.
    pub(super) fn not_known(&self, node: &OnnxNode, v: ValueId, what: &str) -> OnnxError {
        let inputs: Vec<String> = self
            .input_dependencies(v)
            .into_iter()
            .map(|i| self.graph.value(i).name.clone())
            .collect();
        if inputs.is_empty() {
            self.node_unsupported(
                node,
                format!(
                    "{what} is not a compile-time constant (Kiln expands control flow while compiling)"
                ),
            )
        } else {
            OnnxError::NeedsInputValues {
                file: self.file.clone(),
                context: node.describe(),
                what: what.to_string(),
                inputs,
            }
        }
    }

    /// Imports `body` once with `args` bound to its formal inputs; returns
    /// its outputs.
    fn run_body(
        &mut self,
        node: &OnnxNode,
        body: &OnnxGraph,
        args: &[ValueId],
        captured: &Scope,
        env: &BodyEnv<'_>,
    ) -> Result<Vec<ValueId>, OnnxError> {
        self.bodies += 1;
        if self.bodies > MAX_BODIES || self.graph.nodes.len() > MAX_EXPANDED_NODES {
            return Err(OnnxError::Limit {
                file: self.file.clone(),
                context: node.describe(),
                message: format!(
                    "control flow expands into more than {MAX_BODIES} bodies or {MAX_EXPANDED_NODES} nodes, Kiln's limits for unrolling at compile time"
                ),
            });
        }
        if args.len() != body.inputs.len() {
            return Err(self.node_invalid(
                node,
                format!(
                    "body graph '{}' declares {} inputs, the operator passes {}",
                    body.name,
                    body.inputs.len(),
                    args.len()
                ),
            ));
        }
        let mut inner = captured.clone();
        for t in &body.initializers {
            let v = self.add_tensor_constant(&t.name, t);
            inner.insert(t.name.clone(), v);
        }
        for (formal, &a) in body.inputs.iter().zip(args) {
            let actual = self.graph.value(a).ty.dtype;
            if let Some(dt) = formal.dtype {
                if dt != actual {
                    return Err(self.node_invalid(
                        node,
                        format!(
                            "body input '{}' is declared {} but receives {}",
                            formal.name,
                            dt.name(),
                            actual.name()
                        ),
                    ));
                }
            }
            inner.insert(formal.name.clone(), a);
        }
        self.import_nodes(
            &body.nodes,
            env.opset,
            &mut inner,
            env.fn_attrs,
            env.depth + 1,
        )?;
        body.outputs
            .iter()
            .map(|o| {
                inner.get(&o.name).copied().ok_or_else(|| {
                    self.node_invalid(node, format!("body output '{}' is never produced", o.name))
                })
            })
            .collect()
    }

    /// A scalar constant built for this node.
    fn scalar(&mut self, node: &OnnxNode, dtype: DType, value: f64) -> Result<ValueId, OnnxError> {
        let mut c = self.ctx(node);
        c.const_scalar(dtype, value)
    }

    fn ctx<'b>(&'b mut self, node: &'b OnnxNode) -> NodeCtx<'b, 'm> {
        NodeCtx {
            b: self,
            node,
            version: 0,
            inputs: Vec::new(),
        }
    }

    /// `x` at position `index` of `axis`, with that axis removed.
    fn take(
        &mut self,
        node: &OnnxNode,
        x: ValueId,
        axis: i64,
        index: u64,
    ) -> Result<ValueId, OnnxError> {
        self.ctx(node).take(x, axis, index)
    }

    /// Stacks equally typed values along a new axis `axis` (negative counts
    /// from the end of the result's rank).
    fn stack(
        &mut self,
        node: &OnnxNode,
        vals: &[ValueId],
        axis: i64,
    ) -> Result<ValueId, OnnxError> {
        let Some(&first) = vals.first() else {
            return Err(self.node_unsupported(node, "an empty scan output is not supported"));
        };
        let rank = self.graph.value(first).ty.rank() as i64 + 1;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            return Err(self.node_invalid(
                node,
                format!("output axis {axis} is out of range for rank {rank}"),
            ));
        }
        self.ctx(node).stack(vals, axis)
    }

    /// An empty stack of values typed like `like`: extent 0 at `axis`.
    fn empty_stack(
        &mut self,
        node: &OnnxNode,
        like: ValueId,
        axis: usize,
    ) -> Result<ValueId, OnnxError> {
        let ty = self.graph.value(like).ty.clone();
        let Some(mut shape) = ty.static_shape() else {
            return Err(self.node_unsupported(
                node,
                "a scan output of zero iterations needs a static element shape",
            ));
        };
        shape.insert(axis.min(shape.len()), 0);
        let name = format!(
            "{}_empty",
            node.outputs.iter().flatten().next().map_or("scan", |s| s)
        );
        Ok(self.add_constant_blob(
            &name,
            TensorType::fixed(ty.dtype, &shape),
            Blob::from_vec(Vec::new()),
        ))
    }

    fn import_if(
        &mut self,
        node: &OnnxNode,
        inputs: &[Option<ValueId>],
        scope: &Scope,
        env: &BodyEnv<'_>,
    ) -> Result<Vec<ValueId>, OnnxError> {
        let cond = inputs
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| self.node_invalid(node, "If needs a condition input"))?;
        let take_then = self.known_scalar(node, cond, "the condition")? != 0.0;
        let branch = self.body(
            node,
            if take_then {
                "then_branch"
            } else {
                "else_branch"
            },
        )?;
        let captured = captures(branch, scope);
        self.run_body(node, branch, &[], &captured, env)
    }

    fn import_loop(
        &mut self,
        node: &OnnxNode,
        inputs: &[Option<ValueId>],
        scope: &Scope,
        env: &BodyEnv<'_>,
    ) -> Result<Vec<ValueId>, OnnxError> {
        let body = self.body(node, "body")?;
        let mut carried = Vec::new();
        for (i, v) in inputs.iter().enumerate().skip(2) {
            carried.push(v.ok_or_else(|| {
                self.node_invalid(node, format!("loop-carried input #{i} is absent"))
            })?);
        }
        let n_carried = carried.len();
        let Some(n_scan) = body.outputs.len().checked_sub(1 + n_carried) else {
            return Err(self.node_invalid(
                node,
                format!(
                    "body has {} outputs, fewer than the condition plus {n_carried} loop-carried values",
                    body.outputs.len()
                ),
            ));
        };
        let trip = match inputs.first().copied().flatten() {
            Some(m) => Some(self.known_scalar(node, m, "the trip count")?),
            None => None,
        };
        let mut cond = match inputs.get(1).copied().flatten() {
            Some(c) => self.known_scalar(node, c, "the loop condition")? != 0.0,
            None => true,
        };
        if trip.is_some_and(|t| t > MAX_UNROLL as f64) {
            return Err(self.unroll_limit(node, "the trip count", trip.unwrap_or_default()));
        }
        let captured = captures(body, scope);
        let mut scans: Vec<Vec<ValueId>> = vec![Vec::new(); n_scan];
        let mut i: u64 = 0;
        while cond && trip.is_none_or(|t| (i as f64) < t) {
            if i >= MAX_UNROLL {
                return Err(self.unroll_limit(node, "the loop condition", (i + 1) as f64));
            }
            let iv = self.scalar(node, DType::I64, i as f64)?;
            let cv = self.scalar(node, DType::Bool, 1.0)?;
            let mut args = vec![iv, cv];
            args.extend(&carried);
            let outs = self.run_body(node, body, &args, &captured, env)?;
            cond = self.known_scalar(node, outs[0], "the loop condition")? != 0.0;
            carried = outs[1..=n_carried].to_vec();
            for (k, s) in scans.iter_mut().enumerate() {
                s.push(outs[1 + n_carried + k]);
            }
            i += 1;
        }
        let mut results = carried;
        if i == 0 && n_scan > 0 {
            // Types only: the body is imported once more, its nodes stay
            // unused and dead-code elimination removes them.
            let iv = self.scalar(node, DType::I64, 0.0)?;
            let cv = self.scalar(node, DType::Bool, 1.0)?;
            let mut args = vec![iv, cv];
            args.extend(&results);
            let outs = self.run_body(node, body, &args, &captured, env)?;
            for k in 0..n_scan {
                results.push(self.empty_stack(node, outs[1 + n_carried + k], 0)?);
            }
        } else {
            for s in &scans {
                results.push(self.stack(node, s, 0)?);
            }
        }
        Ok(results)
    }

    fn ints_attr(&self, node: &OnnxNode, name: &str, len: usize) -> Result<Vec<i64>, OnnxError> {
        match node.attr(name) {
            None => Ok(vec![0; len]),
            Some(a) => {
                let v = a.as_ints().ok_or_else(|| {
                    self.node_invalid(node, format!("attribute '{name}' must be INTS"))
                })?;
                if v.len() != len {
                    return Err(self.node_invalid(
                        node,
                        format!("attribute '{name}' has {} entries, expected {len}", v.len()),
                    ));
                }
                Ok(v.to_vec())
            }
        }
    }

    /// A Scan node's operands (states, then scan inputs) and body.
    fn scan_parts<'n>(
        &self,
        node: &'n OnnxNode,
        inputs: &[Option<ValueId>],
    ) -> Result<ScanParts<'n>, OnnxError> {
        let vals: Vec<ValueId> = inputs
            .iter()
            .map(|v| v.ok_or_else(|| self.node_invalid(node, "Scan inputs cannot be absent")))
            .collect::<Result<_, _>>()?;
        let m = self.num_scan_inputs(node, vals.len())?;
        let n = vals.len() - m;
        let body = self.body(node, "body")?;
        let k = body.outputs.len().checked_sub(n).ok_or_else(|| {
            self.node_invalid(node, "body has fewer outputs than state variables")
        })?;
        Ok(ScanParts {
            vals,
            n,
            m,
            k,
            body,
        })
    }

    fn num_scan_inputs(&self, node: &OnnxNode, total: usize) -> Result<usize, OnnxError> {
        let m = node
            .attr("num_scan_inputs")
            .and_then(OnnxAttr::as_int)
            .ok_or_else(|| self.node_invalid(node, "attribute 'num_scan_inputs' is required"))?;
        if m < 1 || m as usize > total {
            return Err(self.node_invalid(
                node,
                format!("num_scan_inputs = {m} does not fit the {total} inputs"),
            ));
        }
        Ok(m as usize)
    }

    /// Scan from version 9: states and scan inputs without a batch axis.
    fn import_scan(
        &mut self,
        node: &OnnxNode,
        inputs: &[Option<ValueId>],
        scope: &Scope,
        env: &BodyEnv<'_>,
    ) -> Result<Vec<ValueId>, OnnxError> {
        let ScanParts {
            vals,
            n,
            m,
            k,
            body,
        } = self.scan_parts(node, inputs)?;
        let in_axes = self.ints_attr(node, "scan_input_axes", m)?;
        let in_dirs = self.ints_attr(node, "scan_input_directions", m)?;
        let out_axes = self.ints_attr(node, "scan_output_axes", k)?;
        let out_dirs = self.ints_attr(node, "scan_output_directions", k)?;
        let xs: Vec<(ValueId, i64, bool)> = vals[n..]
            .iter()
            .zip(in_axes.iter().zip(&in_dirs))
            .map(|(&x, (&a, &d))| (x, a, d != 0))
            .collect();
        let outs: Vec<(i64, bool)> = out_axes
            .iter()
            .zip(&out_dirs)
            .map(|(&a, &d)| (a, d != 0))
            .collect();
        let captured = captures(body, scope);
        self.unroll_scan(node, body, vals[..n].to_vec(), &xs, &outs, &captured, env)
    }

    /// Scan-8: every state and scan input has a leading batch axis and the
    /// scan axis is 1; the batch is unrolled too.
    fn import_scan8(
        &mut self,
        node: &OnnxNode,
        inputs: &[Option<ValueId>],
        scope: &Scope,
        env: &BodyEnv<'_>,
    ) -> Result<Vec<ValueId>, OnnxError> {
        if inputs.first().copied().flatten().is_some() {
            return Err(self.node_unsupported(
                node,
                "Scan-8 with sequence_lens (per-batch sequence lengths) is not supported",
            ));
        }
        let ScanParts {
            vals,
            n,
            m,
            k,
            body,
        } = self.scan_parts(node, inputs.get(1..).unwrap_or_default())?;
        let dirs = self.ints_attr(node, "directions", m)?;
        let batch = match self.graph.value(vals[0]).ty.dims.first() {
            Some(kiln_ir::Dim::Static(b)) if *b > 0 => *b,
            _ => {
                return Err(self.node_unsupported(
                    node,
                    "Scan-8 needs a static, non-zero batch extent (axis 0)",
                ))
            }
        };
        let captured = captures(body, scope);
        let outs: Vec<(i64, bool)> = vec![(0, false); k];
        let mut per_batch: Vec<Vec<ValueId>> = vec![Vec::new(); n + k];
        for b in 0..batch {
            let mut states = Vec::with_capacity(n);
            for &s in &vals[..n] {
                states.push(self.take(node, s, 0, b)?);
            }
            let mut xs = Vec::with_capacity(m);
            for (&x, &d) in vals[n..].iter().zip(&dirs) {
                xs.push((self.take(node, x, 0, b)?, 0, d != 0));
            }
            let r = self.unroll_scan(node, body, states, &xs, &outs, &captured, env)?;
            for (slot, v) in per_batch.iter_mut().zip(r) {
                slot.push(v);
            }
        }
        per_batch.iter().map(|vs| self.stack(node, vs, 0)).collect()
    }

    /// Unrolls a scan: `xs` are (value, scan axis, reversed) and `outs`
    /// are (stacking axis, reversed) per scan output. Returns the final
    /// states followed by the stacked scan outputs.
    #[allow(clippy::too_many_arguments)]
    fn unroll_scan(
        &mut self,
        node: &OnnxNode,
        body: &OnnxGraph,
        mut states: Vec<ValueId>,
        xs: &[(ValueId, i64, bool)],
        outs: &[(i64, bool)],
        captured: &Scope,
        env: &BodyEnv<'_>,
    ) -> Result<Vec<ValueId>, OnnxError> {
        let n = states.len();
        let mut len: Option<u64> = None;
        let mut axes = Vec::with_capacity(xs.len());
        for &(x, axis, _) in xs {
            let ty = &self.graph.value(x).ty;
            let rank = ty.rank() as i64;
            let a = if axis < 0 { axis + rank } else { axis };
            if !(0..rank).contains(&a) {
                return Err(self.node_invalid(
                    node,
                    format!("scan input axis {axis} is out of range for rank {rank}"),
                ));
            }
            let kiln_ir::Dim::Static(t) = ty.dims[a as usize] else {
                return Err(self.node_unsupported(
                    node,
                    format!(
                        "the scan axis of '{}' must have a static extent (Kiln unrolls scans while compiling)",
                        self.graph.value(x).name
                    ),
                ));
            };
            if len.is_some_and(|l| l != t) {
                return Err(self.node_invalid(node, "scan inputs have different sequence lengths"));
            }
            len = Some(t);
            axes.push(a);
        }
        let len = len.unwrap_or(0);
        if len == 0 {
            return Err(
                self.node_unsupported(node, "a scan over an empty sequence is not supported")
            );
        }
        if len > MAX_UNROLL {
            return Err(self.unroll_limit(node, "the sequence length", len as f64));
        }
        let mut scans: Vec<Vec<ValueId>> = vec![Vec::new(); outs.len()];
        for t in 0..len {
            let mut args = states.clone();
            for (&(x, _, rev), &a) in xs.iter().zip(&axes) {
                let i = if rev { len - 1 - t } else { t };
                args.push(self.take(node, x, a, i)?);
            }
            let r = self.run_body(node, body, &args, captured, env)?;
            if r.len() != n + outs.len() {
                return Err(self.node_invalid(node, "body output count does not match the node"));
            }
            states = r[..n].to_vec();
            for (s, &v) in scans.iter_mut().zip(&r[n..]) {
                s.push(v);
            }
        }
        let mut results = states;
        for (mut s, &(axis, rev)) in scans.into_iter().zip(outs) {
            if rev {
                s.reverse();
            }
            results.push(self.stack(node, &s, axis)?);
        }
        Ok(results)
    }

    /// FlexAttention-1 (`ai.onnx.preview`): `softmax(score_mod(Q·Kᵀ·scale))`
    /// then `prob_mod`, times V, computed in the softmax precision (f32 for
    /// non-double inputs unless `softmax_precision` says otherwise); each
    /// K/V head serves `q_num_heads / kv_num_heads` consecutive query heads.
    fn import_flex_attention(
        &mut self,
        node: &OnnxNode,
        inputs: &[Option<ValueId>],
        scope: &Scope,
        env: &BodyEnv<'_>,
    ) -> Result<Vec<ValueId>, OnnxError> {
        self.ctx(node)
            .check_attrs(&["prob_mod", "scale", "score_mod", "softmax_precision"])?;
        let arg = |i: usize| {
            inputs
                .get(i)
                .copied()
                .flatten()
                .ok_or_else(|| self.node_invalid(node, format!("input #{i} is required")))
        };
        let (q, k, v) = (arg(0)?, arg(1)?, arg(2)?);
        let shape = |b: &Self, x: ValueId, what: &str| {
            b.graph
                .value(x)
                .ty
                .static_shape()
                .filter(|s| s.len() == 4)
                .ok_or_else(|| {
                    b.node_unsupported(
                        node,
                        format!(
                            "{what} must be a rank-4 tensor of static shape, got {}",
                            b.graph.value(x).ty
                        ),
                    )
                })
        };
        let (qs, ks, vs) = (
            shape(self, q, "Q")?,
            shape(self, k, "K")?,
            shape(self, v, "V")?,
        );
        let (hq, hkv) = (qs[1], ks[1]);
        if ks[0] != qs[0]
            || vs[0] != qs[0]
            || vs[1] != hkv
            || ks[2] != vs[2]
            || ks[3] != qs[3]
            || hkv == 0
            || hq % hkv != 0
        {
            return Err(self.node_invalid(
                node,
                format!("Q {qs:?}, K {ks:?} and V {vs:?} do not fit (B, H, L, E), (B, Hkv, S, E), (B, Hkv, S, Ev) with Hq a multiple of Hkv"),
            ));
        }
        let in_dt = self.graph.value(q).ty.dtype;
        let prec = match node.attr("softmax_precision").and_then(OnnxAttr::as_int) {
            Some(code) => crate::tensor::dtype_from_onnx(code as i32)
                .ok()
                .filter(|d| d.is_float())
                .ok_or_else(|| {
                    self.node_invalid(
                        node,
                        format!("softmax_precision {code} is not a float type"),
                    )
                })?,
            None if in_dt == DType::F64 => DType::F64,
            None => DType::F32,
        };
        let scale = match node.attr("scale").and_then(OnnxAttr::as_float) {
            Some(s) => f64::from(s),
            None => 1.0 / (qs[3] as f64).sqrt(),
        };
        let mut c = self.ctx(node);
        let qc = c.cast(q, prec)?;
        let mut kc = c.cast(k, prec)?;
        let mut vc = c.cast(v, prec)?;
        if hq != hkv {
            let g = (hq / hkv) as i64;
            let (b, hkv, s) = (qs[0] as i64, hkv as i64, ks[2] as i64);
            for (x, e) in [(&mut kc, ks[3] as i64), (&mut vc, vs[3] as i64)] {
                let u = c.unsqueeze(*x, &[2])?;
                let u = c.expand(u, &[b, hkv, g, s, e])?;
                *x = c.reshape(u, &[b, hkv * g, s, e])?;
            }
        }
        let kt = c.transpose(kc, &[0, 1, 3, 2])?;
        let scores = c.op(kiln_ir::OpKind::MatMul, &[qc, kt])?;
        let sc = c.const_scalar(prec, scale)?;
        let mut scores = c.op(kiln_ir::OpKind::Mul, &[scores, sc])?;
        let modifier = |b: &mut Self, name: &str, x: ValueId| -> Result<ValueId, OnnxError> {
            let Some(g) = node.attr(name).and_then(OnnxAttr::as_graph) else {
                return Ok(x);
            };
            let captured = captures(g, scope);
            let outs = b.run_body(node, g, &[x], &captured, env)?;
            match outs.as_slice() {
                [y] if b.graph.value(*y).ty.rank() == 4 => Ok(*y),
                _ => Err(b.node_invalid(node, format!("{name} must produce one rank-4 tensor"))),
            }
        };
        scores = modifier(self, "score_mod", scores)?;
        let mut c = self.ctx(node);
        let probs = c.op_with(
            kiln_ir::OpKind::Softmax,
            &[scores],
            &[("axis", kiln_ir::Attr::Int(-1))],
        )?;
        let probs = modifier(self, "prob_mod", probs)?;
        let mut c = self.ctx(node);
        let y = c.op(kiln_ir::OpKind::MatMul, &[probs, vc])?;
        Ok(vec![c.cast(y, in_dt)?])
    }
}
