//! `fold-constants`: replaces the results of nodes whose operands are all
//! `nn.constant`s with new constants computed by the reference interpreter
//! (`kiln-interp`), and the results of `nn.shape` / `nn.size` with constants
//! read off their operand's static type, without evaluating the operand.
//!
//! Deciding is [`can_fold`] (pure: looks at the graph, never at weight
//! data); computing the values ([`evaluate`]) may fail, and then the node is
//! simply left alone; rewriting ([`fold`]) cannot fail.
//!
//! Invariants:
//! - **Bounded growth.** A folded result has at most
//!   [`PassOptions::fold_max_elements`] elements: the declared type is
//!   checked before evaluating, and the interpreter's own limit refuses
//!   larger results of dynamically typed nodes. Operands are decoded only up
//!   to [`OPERAND_FACTOR`] times that bound, so folding never decodes a
//!   large weight (a gather from a big embedding table stays a gather).
//! - **Folding is never an error.** Anything the interpreter refuses
//!   (integer division by zero, training-mode dropout, which is random,
//!   unsupported cases, elided weights, results above the cap) leaves the
//!   node as it was.
//! - **Order.** A new constant is inserted right before the node it
//!   replaces, so nodes stay in topological order; because they are, one
//!   forward sweep folds whole constant subgraphs (a folded result is a
//!   constant by the time its users are visited).
//! - **Interface.** Results are replaced through [`crate::rewrite`], so
//!   graph outputs keep their names and types; a folded internal value
//!   keeps its name too (the new constant takes it).
//! - **Specialized inputs stay on the data path.** A constant that stands
//!   for a graph input frozen only to fix shapes
//!   ([`PassOptions::specialized_inputs`]) taints everything computed from
//!   it; a tainted node is folded only when one of its results is needed at
//!   compile time, i.e. reaches some op's static operand (a Reshape's shape,
//!   a Range's limits, ...). So `kiln run` on `Range(start, limit, delta)`
//!   folds the shape arithmetic and leaves the Range itself to generated
//!   code, instead of computing the whole answer in the interpreter.
//!
//! Folded floats are computed the interpreter's way (in f64, rounded once
//! to the result dtype), which is what ONNX Runtime's reference semantics
//! ask for; compiled code may round differently in the last place.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::passes::dce;
use crate::registry::PassInfo;
use crate::rewrite::{self, plan_replace, How};
use kiln_interp::{eval_node, Limits, Tensor};
use kiln_ir::ops::AttrDefault;
use kiln_ir::{
    Attr, Blob, DType, Graph, Node, OpKind, TensorType, ValueId, Weight, WeightData, WeightId,
};
use std::collections::{HashMap, HashSet};

/// Values whose contents some op needs at compile time: its static operands
/// ([`kiln_ir::OpDef::static_operands`]) and, transitively, every operand of
/// a node producing one of them.
pub fn compile_time_values(g: &Graph) -> HashSet<ValueId> {
    let mut needed: HashSet<ValueId> = HashSet::new();
    // Nodes are in topological order, so one backward sweep closes the set.
    for node in g.nodes.iter().rev() {
        for &i in node.op.def().static_operands {
            needed.extend(node.inputs.get(i).copied().flatten());
        }
        if node.outputs.iter().any(|v| needed.contains(v)) {
            needed.extend(node.operands());
        }
    }
    needed
}

/// The constants standing for specialized graph inputs (see
/// [`PassOptions::specialized_inputs`]).
fn specialized_constants(g: &Graph, opts: &PassOptions) -> HashSet<ValueId> {
    if opts.specialized_inputs.is_empty() {
        return HashSet::new();
    }
    g.nodes
        .iter()
        .filter(|n| n.op == OpKind::Constant)
        .filter_map(|n| match (n.attrs.get("value"), n.outputs.as_slice()) {
            (Some(Attr::Weight(w)), [v])
                if opts.specialized_inputs.contains(&g.weight(*w).name) =>
            {
                Some(*v)
            }
            _ => None,
        })
        .collect()
}

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "fold-constants",
    summary:
        "Evaluates nodes of constant operands and nn.shape/nn.size of static types into constants",
    create: || Box::new(FoldConstants),
};

/// Operands of a folded node may have this many times
/// [`PassOptions::fold_max_elements`] elements (gathers and reductions make
/// small results from larger operands); larger weights are never decoded.
pub const OPERAND_FACTOR: u64 = 64;

/// The constant folding pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct FoldConstants;

/// A decided fold of node `node`.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Evaluate the node with the interpreter; every operand is a constant.
    Evaluate {
        /// The node.
        node: usize,
    },
    /// The node's single result is known without evaluation (`nn.shape`,
    /// `nn.size` of a value with the needed extents static).
    Known {
        /// The node.
        node: usize,
        /// The i64 values of the result.
        values: Vec<i64>,
        /// The result's shape (`[len]` for `nn.shape`, `[]` for `nn.size`).
        shape: Vec<u64>,
    },
}

/// An integer attribute of `node`, or the default its op's schema gives;
/// `Ok(None)` when absent without default, `Err(())` when malformed.
fn int_attr(node: &Node, name: &str) -> Result<Option<i64>, ()> {
    match node.attrs.get(name) {
        Some(Attr::Int(v)) => Ok(Some(*v)),
        Some(_) => Err(()),
        None => match node.op.def().attr_spec(name).map(|s| s.default) {
            Some(AttrDefault::Int(v)) => Ok(Some(v)),
            _ => Ok(None),
        },
    }
}

/// The values of `nn.shape x {start, end}` if the selected dims of `x` are
/// static (ONNX clamps `start` and `end` into `[0, rank]`).
fn known_shape(g: &Graph, node: &Node) -> Option<(Vec<i64>, Vec<u64>)> {
    let [Some(x)] = node.inputs.as_slice() else {
        return None;
    };
    let dims = &g.value(*x).ty.dims;
    let rank = i64::try_from(dims.len()).ok()?;
    let clamp = |v: i64| {
        if v < 0 {
            v.saturating_add(rank).max(0)
        } else {
            v.min(rank)
        }
    };
    let start = clamp(int_attr(node, "start").ok()?.unwrap_or(0));
    let end = clamp(int_attr(node, "end").ok()?.unwrap_or(rank));
    let range = usize::try_from(start).ok()?..usize::try_from(end.max(start)).ok()?;
    let values = dims[range]
        .iter()
        .map(|d| i64::try_from(d.as_static()?).ok())
        .collect::<Option<Vec<i64>>>()?;
    let len = values.len() as u64;
    Some((values, vec![len]))
}

/// The value of `nn.size x` if `x` has a static type whose element count
/// fits an i64.
fn known_size(g: &Graph, node: &Node) -> Option<(Vec<i64>, Vec<u64>)> {
    let [Some(x)] = node.inputs.as_slice() else {
        return None;
    };
    let n = i64::try_from(g.value(*x).ty.numel()?).ok()?;
    Some((vec![n], vec![]))
}

/// Decides whether node `n` folds. `consts` maps each constant value seen
/// so far to its weight; `used` holds the values something uses.
pub fn can_fold(
    g: &Graph,
    consts: &HashMap<ValueId, WeightId>,
    used: &HashSet<ValueId>,
    n: usize,
    opts: &PassOptions,
) -> Option<Plan> {
    let node = g.nodes.get(n)?;
    if node.op == OpKind::Constant || !node.outputs.iter().any(|v| used.contains(v)) {
        return None;
    }
    let known = match node.op {
        OpKind::Shape => known_shape(g, node),
        OpKind::Size => known_size(g, node),
        _ => None,
    };
    if let Some((values, shape)) = known {
        return Some(Plan::Known {
            node: n,
            values,
            shape,
        });
    }
    // Results whose declared size is already known to be too large are
    // refused before anything is decoded.
    let too_big = |ty: &TensorType, cap: u64| ty.numel().is_some_and(|e| e > cap);
    if node
        .outputs
        .iter()
        .any(|&v| too_big(&g.value(v).ty, opts.fold_max_elements))
    {
        return None;
    }
    let operand_cap = opts.fold_max_elements.saturating_mul(OPERAND_FACTOR);
    for v in node.operands() {
        let w = g.weight(*consts.get(&v)?);
        if w.bytes().is_none() || too_big(&w.ty, operand_cap) || w.ty.numel().is_none() {
            return None;
        }
    }
    Some(Plan::Evaluate { node: n })
}

/// Computes the results of a planned fold, one per node result. `None` when
/// the interpreter refuses (see the module invariants).
pub fn evaluate(
    g: &Graph,
    consts: &HashMap<ValueId, WeightId>,
    plan: &Plan,
    opts: &PassOptions,
) -> Option<Vec<Tensor>> {
    match plan {
        Plan::Known { values, shape, .. } => Some(vec![Tensor::from_ints(
            DType::I64,
            shape.clone(),
            values.iter().map(|&v| i128::from(v)).collect(),
        )]),
        Plan::Evaluate { node } => {
            let node = &g.nodes[*node];
            let operands = node
                .inputs
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(v) => {
                        let w = consts.get(v).ok_or_else(|| {
                            kiln_interp::InterpError::Graph("not constant".into())
                        })?;
                        Tensor::from_weight(g.weight(*w)).map(Some)
                    }
                })
                .collect::<Result<Vec<Option<Tensor>>, _>>();
            let limits = Limits {
                max_elements: opts.fold_max_elements,
            };
            let result = operands.and_then(|ops| {
                let refs: Vec<Option<&Tensor>> = ops.iter().map(Option::as_ref).collect();
                eval_node(g.weights(), node, &refs, &limits)
            });
            match result {
                Ok(ts) => Some(ts),
                Err(e) => {
                    tracing::debug!(node = %node.describe(), error = %e, "not folded");
                    None
                }
            }
        }
    }
}

/// Replaces the results of node `n` with constants holding `values` (one per
/// result; extra values are ignored, unused results are skipped) and records
/// the new constants in `consts`. Returns the node's new index (constants
/// are inserted before it) and how many results were replaced. A constant
/// that [`crate::rewrite`] does not let take its result's place (a rare
/// type mismatch) is left unused for dce.
pub fn fold(
    g: &mut Graph,
    n: usize,
    values: Vec<Tensor>,
    consts: &mut HashMap<ValueId, WeightId>,
    used: &HashSet<ValueId>,
) -> (usize, usize) {
    let mut at = n;
    let mut replaced = 0;
    let outputs = g.nodes[n].outputs.clone();
    for (old, t) in outputs.into_iter().zip(values) {
        if !used.contains(&old) {
            continue;
        }
        let name = g.value(old).name.clone();
        let ty = TensorType::fixed(t.dtype, &t.shape);
        let weight = Weight {
            name: name.clone(),
            ty,
            data: WeightData::Bytes(Blob::from_vec(t.to_bytes())),
            source: None,
        };
        let new = g.add_constant(&name, weight);
        // add_constant appends; the constant belongs right before its user.
        if let Some(c) = g.nodes.pop() {
            g.nodes.insert(at, c);
        }
        let w = match g.nodes[at].attrs.get("value") {
            Some(Attr::Weight(w)) => *w,
            _ => continue,
        };
        at += 1;
        consts.insert(new, w);
        let Some(r) = plan_replace(g, at, old, new) else {
            continue;
        };
        rewrite::apply(g, r);
        if r.how == How::Uses {
            // The folded value is dead now; the constant takes its name.
            g.swap_value_names(old, new);
        }
        if let How::IdentityNode { .. } = r.how {
            // `old` is an identity of the constant now: same data, so its
            // users may fold too.
            consts.insert(old, w);
        }
        replaced += 1;
    }
    (at, replaced)
}

impl Pass for FoldConstants {
    pass_info!();
    fn run(&self, g: &mut Graph, opts: &PassOptions) -> Result<PassStats, PassError> {
        // Uses of a node's results only change when that node is folded,
        // so the set computed up front stays right for the nodes ahead.
        let used: HashSet<ValueId> = g.use_counts().into_keys().collect();
        // Values computed from specialized inputs, and those needed at
        // compile time (see the module invariants).
        let mut tainted = specialized_constants(g, opts);
        let needed = if tainted.is_empty() {
            HashSet::new()
        } else {
            compile_time_values(g)
        };
        let mut consts: HashMap<ValueId, WeightId> = HashMap::new();
        let (mut rewrites, mut inserted) = (0, 0);
        let mut n = 0;
        while n < g.nodes.len() {
            let node = &g.nodes[n];
            if node.op == OpKind::Constant {
                if let (Some(Attr::Weight(w)), [v]) =
                    (node.attrs.get("value"), node.outputs.as_slice())
                {
                    consts.insert(*v, *w);
                }
                n += 1;
                continue;
            }
            // Operands may have become constants earlier in this sweep:
            // refine this node's result types first, so that shape-only
            // folds (nn.shape of a padded value) and later nodes see them,
            // and one forward sweep reaches the fixpoint.
            // Graph outputs keep their declared types (the crate's rewrite
            // policy); shape-inference refines them when asked to.
            if !g.nodes[n].outputs.iter().any(|v| g.outputs.contains(v)) {
                rewrites += usize::from(kiln_ir::verify::refine_node_types(g, n, &|v| {
                    consts.get(&v).copied()
                }));
            }
            let node = &g.nodes[n];
            let is_tainted = node.operands().any(|v| tainted.contains(&v));
            if is_tainted {
                tainted.extend(node.outputs.iter().copied());
            }
            let data_path = is_tainted && !node.outputs.iter().any(|v| needed.contains(v));
            let plan = can_fold(g, &consts, &used, n, opts)
                .filter(|p| !data_path || matches!(p, Plan::Known { .. }));
            if let Some(plan) = plan {
                if let Some(values) = evaluate(g, &consts, &plan, opts) {
                    let (at, replaced) = fold(g, n, values, &mut consts, &used);
                    if is_tainted {
                        // The new constants (inserted at n..at) carry the
                        // tainted data on.
                        for c in &g.nodes[n..at] {
                            tainted.extend(c.outputs.iter().copied());
                        }
                    }
                    tracing::trace!(node = at, replaced, "fold-constants");
                    rewrites += replaced;
                    inserted += at - n;
                    n = at;
                }
            }
            n += 1;
        }
        if inserted > 0 {
            // Folded nodes, the constants only they used, and any constant
            // that could not take its result's place.
            dce::eliminate(g);
        }
        Ok(PassStats { rewrites })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::{graph, run};
    use crate::{ManagerOptions, PassManager, Pipeline};
    use kiln_interp::run_graph;
    use kiln_ir::text::print;

    /// Runs the pass with `opts` on `src` and verifies the result.
    fn folded(src: &str, opts: &PassOptions) -> (Graph, PassStats) {
        let mut g = graph(src);
        let stats = FoldConstants.run(&mut g, opts).expect("fold failed");
        if let Err(e) = kiln_ir::verify(&g) {
            panic!("fold-constants broke the graph: {e:?}\n{}", print(&g));
        }
        (g, stats)
    }

    /// The elements of weight `@name`, as f64.
    fn weight_values(g: &Graph, name: &str) -> Vec<f64> {
        let w = g
            .weight_by_name(name)
            .unwrap_or_else(|| panic!("no @{name}"));
        Tensor::from_weight(g.weight(w)).unwrap().to_f64_vec()
    }

    #[test]
    fn hand_computed_chain_folds_into_one_constant() {
        // (a + b) * a = ([1,2,3] + [4,5,6]) * [1,2,3] = [5, 14, 27];
        // -[5, 14, 27] = [-5, -14, -27]. Only %y depends on the input.
        let (g, stats) = folded(
            "weight @a : tensor<3xf32> = dense<[1.0, 2.0, 3.0]>\n\
             weight @b : tensor<3xf32> = dense<[4.0, 5.0, 6.0]>\n\
             graph @main(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {\n  \
               %a = nn.constant {value = @a} : tensor<3xf32>\n  \
               %b = nn.constant {value = @b} : tensor<3xf32>\n  \
               %s = nn.add %a, %b : tensor<3xf32>\n  \
               %m = nn.mul %s, %a : tensor<3xf32>\n  \
               %n = nn.neg %m : tensor<3xf32>\n  \
               %y = nn.add %x, %n : tensor<3xf32>\n  \
               return %y, %n\n}\n",
            &PassOptions::default(),
        );
        let out = print(&g);
        assert_eq!(stats.rewrites, 3, "{out}");
        assert!(out.contains("%y = nn.add %x, %n"), "{out}");
        assert!(!out.contains("nn.mul") && !out.contains("nn.neg"), "{out}");
        // The output keeps its name and its value is the folded one.
        assert_eq!(g.value(g.outputs[1]).name, "n");
        assert_eq!(weight_values(&g, "n"), vec![-5.0, -14.0, -27.0]);
        // Only the weight still used survives.
        assert_eq!(g.weights().len(), 1, "{out}");
    }

    #[test]
    fn shape_and_size_of_static_types_fold_without_evaluating() {
        let (g, stats) = folded(
            "graph @main(%x: tensor<2x3x4xf32>, %d: tensor<?x5xf32>) -> (tensor<2xi64>, tensor<i64>, tensor<1xi64>, tensor<i64>) {\n  \
               %e = nn.exp %x : tensor<2x3x4xf32>\n  \
               %s = nn.shape %e {start = -2} : tensor<2xi64>\n  \
               %n = nn.size %e : tensor<i64>\n  \
               %t = nn.shape %d {start = 1} : tensor<1xi64>\n  \
               %u = nn.size %d : tensor<i64>\n  \
               return %s, %n, %t, %u\n}\n",
            &PassOptions::default(),
        );
        let out = print(&g);
        assert_eq!(stats.rewrites, 3, "{out}");
        assert_eq!(weight_values(&g, "s"), vec![3.0, 4.0]);
        assert_eq!(weight_values(&g, "n"), vec![24.0]);
        // Dim 1 of %d is static even though dim 0 is not.
        assert_eq!(weight_values(&g, "t"), vec![5.0]);
        // The element count of %d is unknown.
        assert!(out.contains("%u = nn.size %d"), "{out}");
        // %e is no longer needed.
        assert!(!out.contains("nn.exp"), "{out}");
    }

    #[test]
    fn results_above_the_element_cap_stay() {
        let src = "weight @shape : tensor<2xi64> = dense<[1000, 1000]>\n\
                   weight @a : tensor<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>\n\
                   graph @main() -> (tensor<1000x1000xf32>, tensor<4xf32>) {\n  \
                     %shape = nn.constant {value = @shape} : tensor<2xi64>\n  \
                     %a = nn.constant {value = @a} : tensor<4xf32>\n  \
                     %big = nn.constant_of_shape %shape {value = 1.0} : tensor<1000x1000xf32>\n  \
                     %e = nn.exp %a : tensor<4xf32>\n  \
                     return %big, %e\n}\n";
        // A million elements exceed the default cap of 65536.
        let (g, stats) = folded(src, &PassOptions::default());
        let out = print(&g);
        assert!(out.contains("nn.constant_of_shape"), "{out}");
        assert_eq!(stats.rewrites, 1, "{out}");
        // With a cap of 3, the 4-element exp stays too.
        let opts = PassOptions {
            fold_max_elements: 3,
            ..PassOptions::default()
        };
        let (g, stats) = folded(src, &opts);
        assert!(print(&g).contains("nn.exp"));
        assert!(!stats.changed());
    }

    #[test]
    fn the_cap_also_holds_for_dynamically_typed_results() {
        // The declared type does not tell the size; the interpreter's limit
        // refuses the result instead.
        let opts = PassOptions {
            fold_max_elements: 8,
            ..PassOptions::default()
        };
        let (g, stats) = folded(
            "weight @shape : tensor<2xi64> = dense<[3, 3]>\n\
             graph @main() -> (tensor<?x?xf32>) {\n  \
               %shape = nn.constant {value = @shape} : tensor<2xi64>\n  \
               %big = nn.constant_of_shape %shape {value = 1.0} : tensor<?x?xf32>\n  \
               return %big\n}\n",
            &opts,
        );
        assert!(print(&g).contains("nn.constant_of_shape"));
        assert!(!stats.changed());
    }

    #[test]
    fn interpreter_refusals_leave_nodes_alone() {
        // Integer division by zero, and elided weights, are not errors.
        let src = "weight @a : tensor<2xi32> = dense<[1, 2]>\n\
                   weight @z : tensor<2xi32> = dense<[0, 1]>\n\
                   weight @e : tensor<2xf32> = elided<bytes = 8, fnv = 0x0000000000000000>\n\
                   graph @main() -> (tensor<2xi32>, tensor<2xf32>) {\n  \
                     %a = nn.constant {value = @a} : tensor<2xi32>\n  \
                     %z = nn.constant {value = @z} : tensor<2xi32>\n  \
                     %e = nn.constant {value = @e} : tensor<2xf32>\n  \
                     %d = nn.div %a, %z : tensor<2xi32>\n  \
                     %x = nn.exp %e : tensor<2xf32>\n  \
                     return %d, %x\n}\n";
        let (out, stats) = run(&FoldConstants, src);
        assert_eq!(out, src);
        assert!(!stats.changed());
    }

    #[test]
    fn a_folded_output_with_a_less_static_type_keeps_its_type() {
        // The folded constant is tensor<2xf32>, the output is declared
        // tensor<?xf32>: an identity keeps the declared output type.
        let (g, _) = folded(
            "weight @a : tensor<2xf32> = dense<[1.0, 4.0]>\n\
             graph @main() -> (tensor<?xf32>) {\n  \
               %a = nn.constant {value = @a} : tensor<2xf32>\n  \
               %r = nn.sqrt %a : tensor<?xf32>\n  \
               return %r\n}\n",
            &PassOptions::default(),
        );
        let out = print(&g);
        assert!(out.contains("%r = nn.identity"), "{out}");
        assert!(out.contains("-> (tensor<?xf32>)"), "{out}");
        assert!(out.contains("dense<[1.0, 2.0]>"), "{out}");
    }

    #[test]
    fn specialized_inputs_fold_only_where_compile_time_values_are_needed() {
        // %start/%limit/%delta and %s stand for graph inputs frozen to fix
        // shapes. The range's limits and the reshape's shape arithmetic
        // are needed at compile time; the range's values, the
        // constant_of_shape fill and the exp on the data path are not.
        let src = "weight @start : tensor<f32> = dense<[1.0]>\n\
             weight @limit : tensor<f32> = dense<[4.0]>\n\
             weight @delta : tensor<f32> = dense<[1.0]>\n\
             weight @s : tensor<1xi64> = dense<[2]>\n\
             weight @w : tensor<3xf32> = dense<[1.0, 2.0, 3.0]>\n\
             graph @main(%x: tensor<1x3xf32>) -> (tensor<3xf32>, tensor<2xf32>, tensor<3x1xf32>, tensor<3xf32>) {\n  \
               %start = nn.constant {value = @start} : tensor<f32>\n  \
               %limit = nn.constant {value = @limit} : tensor<f32>\n  \
               %delta = nn.constant {value = @delta} : tensor<f32>\n  \
               %s = nn.constant {value = @s} : tensor<1xi64>\n  \
               %w = nn.constant {value = @w} : tensor<3xf32>\n  \
               %r = nn.range %start, %limit, %delta : tensor<3xf32>\n  \
               %c = nn.constant_of_shape %s {value = 0.5} : tensor<2xf32>\n  \
               %one = nn.div %s, %s : tensor<1xi64>\n  \
               %three = nn.add %s, %one : tensor<1xi64>\n  \
               %shape = nn.concat %three, %one {axis = 0} : tensor<2xi64>\n  \
               %y = nn.reshape %x, %shape : tensor<3x1xf32>\n  \
               %e = nn.exp %w : tensor<3xf32>\n  \
               return %r, %c, %y, %e\n}\n";
        let opts = PassOptions {
            specialized_inputs: ["start", "limit", "delta", "s"]
                .into_iter()
                .map(String::from)
                .collect(),
            ..PassOptions::default()
        };
        let (g, _) = folded(src, &opts);
        let out = print(&g);
        assert!(out.contains("nn.range %start, %limit, %delta"), "{out}");
        assert!(out.contains("nn.constant_of_shape %s"), "{out}");
        // The shape arithmetic feeding the reshape folded.
        for gone in ["nn.div", "nn.add", "nn.concat"] {
            assert!(!out.contains(gone), "{gone} left:\n{out}");
        }
        // An ordinary weight's data path still folds.
        assert!(!out.contains("nn.exp"), "{out}");
        // Without the option everything constant folds, as before.
        let (g, _) = folded(src, &PassOptions::default());
        let out = print(&g);
        assert!(
            !out.contains("nn.range") && !out.contains("constant_of_shape"),
            "{out}"
        );
    }

    #[test]
    fn compile_time_values_follow_static_operands_backwards() {
        let g = graph(
            "weight @s : tensor<1xi64> = dense<[3]>\n\
             graph @main(%x: tensor<3xf32>) -> (tensor<3xf32>) {\n  \
               %s = nn.constant {value = @s} : tensor<1xi64>\n  \
               %n = nn.neg %s : tensor<1xi64>\n  \
               %m = nn.neg %n : tensor<1xi64>\n  \
               %e = nn.exp %x : tensor<3xf32>\n  \
               %y = nn.reshape %e, %m : tensor<3xf32>\n  \
               return %y\n}\n",
        );
        let needed = compile_time_values(&g);
        let names: std::collections::BTreeSet<&str> =
            needed.iter().map(|&v| g.value(v).name.as_str()).collect();
        assert_eq!(names, ["m", "n", "s"].into_iter().collect());
    }

    /// A PyTorch-style graph: a shape computation feeding reshapes, a
    /// constant subgraph feeding a matmul, an inference dropout whose mask
    /// is returned, and transpose and reshape chains.
    const MIXED: &str = "weight @w : tensor<4x3xf32> = dense<[0.5, -1.0, 2.0, 0.25, 1.5, -0.75, 3.0, 0.0, -2.0, 1.0, 0.125, -0.5]>\n\
        weight @scale : tensor<3xf32> = dense<[2.0, 0.5, -1.0]>\n\
        weight @idx : tensor<1xi64> = dense<[0]>\n\
        weight @rest : tensor<1xi64> = dense<[-1]>\n\
        weight @three : tensor<1xi64> = dense<[3]>\n\
        graph @main(%x: tensor<2x3x4xf32>) -> (tensor<?x4xf32>, tensor<2xi64>, tensor<2x3x4xbool>) {\n  \
          %w = nn.constant {value = @w} : tensor<4x3xf32>\n  \
          %scale = nn.constant {value = @scale} : tensor<3xf32>\n  \
          %idx = nn.constant {value = @idx} : tensor<1xi64>\n  \
          %rest = nn.constant {value = @rest} : tensor<1xi64>\n  \
          %three = nn.constant {value = @three} : tensor<1xi64>\n  \
          %e = nn.exp %scale : tensor<3xf32>\n  \
          %ws = nn.mul %w, %e : tensor<4x3xf32>\n  \
          %wt = nn.transpose %ws : tensor<3x4xf32>\n  \
          %s = nn.shape %x : tensor<3xi64>\n  \
          %b = nn.gather %s, %idx {axis = 0} : tensor<1xi64>\n  \
          %s2 = nn.concat %rest, %b {axis = 0} : tensor<2xi64>\n  \
          %d, %mask = nn.dropout %x : tensor<2x3x4xf32>, tensor<2x3x4xbool>\n  \
          %p = nn.reshape %d, %s2 : tensor<?x?xf32>\n  \
          %q = nn.reshape %p, %rest : tensor<?xf32>\n  \
          %c3 = nn.concat %b, %rest, %b {axis = 0} : tensor<3xi64>\n  \
          %u = nn.reshape %q, %c3 : tensor<?x?x?xf32>\n  \
          %tq = nn.transpose %u {perm = [1, 0, 2]} : tensor<?x?x?xf32>\n  \
          %tr = nn.transpose %tq {perm = [0, 2, 1]} : tensor<?x?x?xf32>\n  \
          %sh = nn.concat %rest, %three {axis = 0} : tensor<2xi64>\n  \
          %flat = nn.reshape %tr, %sh : tensor<?x3xf32>\n  \
          %mm = nn.matmul %flat, %wt : tensor<?x4xf32>\n  \
          return %mm, %s2, %mask\n}\n";

    #[test]
    fn default_pipeline_preserves_interpreter_results() {
        // The interpreter is the oracle: the graph computes the same before
        // and after the pipeline, exactly (folding evaluates the same ops
        // with the same interpreter; the rewrites only move data).
        let before = graph(MIXED);
        let mut after = before.clone();
        PassManager::new(
            Pipeline::default_pipeline(),
            ManagerOptions {
                verify_each: true,
                ..ManagerOptions::default()
            },
        )
        .run(&mut after)
        .expect("pipeline failed");
        let out = print(&after);
        for gone in ["nn.shape", "nn.gather", "nn.concat", "nn.dropout", "nn.exp"] {
            assert!(!out.contains(gone), "{gone} left:\n{out}");
        }
        // The transposes composed into one and the reshapes of %x into one.
        assert_eq!(out.matches("nn.transpose").count(), 1, "{out}");
        assert!(out.contains("nn.reshape %x, "), "{out}");
        assert!(
            out.contains("-> (tensor<8x4xf32>, tensor<2xi64>, tensor<2x3x4xbool>)"),
            "{out}"
        );

        let x: Vec<f64> = (0..24).map(|i| f64::from(i) * 0.25 - 3.0).collect();
        let input = Tensor::from_f64(DType::F32, vec![2, 3, 4], x);
        let want = run_graph(&before, std::slice::from_ref(&input)).expect("before");
        let got = run_graph(&after, &[input]).expect("after");
        assert_eq!(got, want);
        // And the shape output is what ONNX defines: [-1, x.shape[0]].
        assert_eq!(got[1].to_f64_vec(), vec![-1.0, 2.0]);
    }
}
