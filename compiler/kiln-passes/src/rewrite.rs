//! The one policy for replacing a value with another, shared by every pass.
//!
//! Replacing `old` by `new` redirects every use of `old` to `new`. Graph
//! outputs are part of the interface, so they get special care — a graph
//! output never changes its name or type:
//!
//! - `old` is not a graph output: plain use replacement; `new` must have a
//!   compatible type (same dtype and rank, no disagreeing static extent).
//! - `old` is a graph output, `new` is an ordinary node result with exactly
//!   `old`'s type: uses are redirected and the two values *swap names*, so
//!   the output keeps its name and `old` (now dead) carries `new`'s former
//!   name until dce removes it. No node is added.
//! - otherwise (`new` is a graph input or already a graph output, so its
//!   name is fixed too, or its type differs from `old`'s): `old`'s defining
//!   node is rewritten in place into `nn.identity new`. The identity is
//!   what keeps the two interface names apart; canonicalize's identity
//!   elimination goes through this same policy and therefore leaves such an
//!   identity alone, so rewriting reaches a fixpoint.
//!
//! Deciding ([`plan_replace`]) is separate from rewriting ([`apply`]);
//! [`apply`] cannot fail.

use crate::pattern::Matcher;
use kiln_ir::graph::Derivation;
use kiln_ir::{
    Attrs, Blob, DType, Graph, OpKind, TensorType, ValueId, Weight, WeightData, WeightId,
    WeightSource,
};

/// How a planned replacement is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Redirect uses.
    Uses,
    /// Redirect uses, then swap the names of `old` and `new`.
    TakeName,
    /// Rewrite node `node` (which defines `old`) into `nn.identity new`.
    IdentityNode {
        /// The node defining `old`.
        node: usize,
    },
}

/// A decided replacement of `old` by `new`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The value going away.
    pub old: ValueId,
    /// The value taking its place.
    pub new: ValueId,
    /// How.
    pub how: How,
}

/// Decides whether and how `old`, the result of node `node`, can be replaced
/// by `new`, which must be defined before `node`. `None` when it cannot (or
/// when the replacement would not change anything).
pub fn plan_replace(g: &Graph, node: usize, old: ValueId, new: ValueId) -> Option<Replacement> {
    if old == new {
        return None;
    }
    let (old_ty, new_ty) = (&g.value(old).ty, &g.value(new).ty);
    if !old_ty.is_compatible(new_ty) {
        return None;
    }
    if !g.outputs.contains(&old) {
        return Some(Replacement {
            old,
            new,
            how: How::Uses,
        });
    }
    let new_is_interface = g.outputs.contains(&new) || g.inputs.contains(&new);
    if !new_is_interface && old_ty == new_ty {
        return Some(Replacement {
            old,
            new,
            how: How::TakeName,
        });
    }
    let n = g.nodes.get(node)?;
    if n.outputs.len() != 1 || n.outputs[0] != old {
        return None;
    }
    if n.op == OpKind::Identity && n.inputs == [Some(new)] {
        return None;
    }
    Some(Replacement {
        old,
        new,
        how: How::IdentityNode { node },
    })
}

/// Carries out a planned replacement.
pub fn apply(g: &mut Graph, r: Replacement) {
    match r.how {
        How::Uses => g.replace_all_uses(r.old, r.new),
        How::TakeName => {
            g.replace_all_uses(r.old, r.new);
            g.swap_value_names(r.old, r.new);
        }
        How::IdentityNode { node } => {
            let n = &mut g.nodes[node];
            n.op = OpKind::Identity;
            n.inputs = vec![Some(r.new)];
            n.attrs = Attrs::new();
        }
    }
}

/// A value in a [`Recipe`]: one that exists, or a result of one of the
/// recipe's new nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val {
    /// An existing value.
    Old(ValueId),
    /// Result `result` of the recipe's new node `node`.
    New {
        /// Index into [`Recipe::nodes`].
        node: usize,
        /// Result index.
        result: usize,
    },
}

impl Val {
    /// The single result of new node `node`.
    pub fn new(node: usize) -> Val {
        Val::New { node, result: 0 }
    }
}

impl From<ValueId> for Val {
    fn from(v: ValueId) -> Val {
        Val::Old(v)
    }
}

/// A node a [`Recipe`] adds, with its result names and types decided.
#[derive(Clone, Debug, PartialEq)]
pub struct NewNode {
    /// The op.
    pub op: OpKind,
    /// Operands.
    pub inputs: Vec<Option<Val>>,
    /// Attributes (for a constant, `value` is filled in from `weight`).
    pub attrs: Attrs,
    /// Result names (made unique when taken) and types.
    pub results: Vec<(String, TensorType)>,
    /// The weight of a new `nn.constant`.
    pub weight: Option<WRef>,
    /// The body of a new `nn.fused`.
    pub body: Option<Box<Graph>>,
}

impl NewNode {
    /// A single-result node.
    pub fn op(op: OpKind, inputs: Vec<Val>, attrs: Attrs, name: &str, ty: TensorType) -> NewNode {
        NewNode {
            op,
            inputs: inputs.into_iter().map(Some).collect(),
            attrs,
            results: vec![(name.to_string(), ty)],
            weight: None,
            body: None,
        }
    }

    /// A new `nn.constant` of weight `w` (of type `ty`), named `name`.
    pub fn constant(name: &str, w: WRef, ty: TensorType) -> NewNode {
        NewNode {
            op: OpKind::Constant,
            inputs: Vec::new(),
            attrs: Attrs::new(),
            results: vec![(name.to_string(), ty)],
            weight: Some(w),
            body: None,
        }
    }
}

/// A weight in a [`Recipe`]: one that exists, or one of the recipe's new
/// weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WRef {
    /// An existing weight.
    Old(WeightId),
    /// Index into [`Recipe::weights`].
    New(usize),
}

/// A weight a [`Recipe`] adds: bytes, or a derivation (computed lazily,
/// see `kiln_ir::Derivation`) whose operands may be earlier new weights.
#[derive(Clone, Debug, PartialEq)]
pub struct NewWeight {
    /// The name (made unique when taken).
    pub name: String,
    /// Its type.
    pub ty: TensorType,
    /// Its data.
    pub data: NewData,
}

/// The data of a [`NewWeight`].
#[derive(Clone, Debug, PartialEq)]
pub enum NewData {
    /// Bytes (possibly a view of another weight's bytes), with the file
    /// region they came from.
    Bytes(Blob, Option<WeightSource>),
    /// Elided bytes (a graph printed without its weights can still be
    /// optimized).
    Elided {
        /// Byte length.
        bytes: u64,
        /// FNV-1a 64 of the bytes.
        fingerprint: u64,
    },
    /// `op {attrs}` applied to `inputs`.
    Derived {
        /// The op.
        op: OpKind,
        /// Its attributes.
        attrs: Attrs,
        /// Its operands.
        inputs: Vec<WRef>,
    },
}

/// A decided rewrite that adds nodes and replaces values: the nodes are
/// inserted, in order, right before node `at`, then every `(old, new)` in
/// `replace` is carried out with the policy of this module. The planner
/// guarantees that each new value has exactly its old value's type, that
/// every operand of a new node is defined before `at` (or is an earlier
/// new node), and that each `old` is a result of a node at or after `at`:
/// then [`apply_recipe`] cannot fail and the graph stays topologically
/// ordered. Nodes left unused are removed by dce afterwards.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recipe {
    /// Where the new nodes go.
    pub at: usize,
    /// The new weights, added before the nodes.
    pub weights: Vec<NewWeight>,
    /// The new nodes.
    pub nodes: Vec<NewNode>,
    /// Values to replace and their replacements.
    pub replace: Vec<(ValueId, Val)>,
}

impl Recipe {
    /// An empty recipe inserting before node `at`.
    pub fn at(at: usize) -> Recipe {
        Recipe {
            at,
            ..Recipe::default()
        }
    }

    /// Adds a node; returns its single (first) result.
    pub fn push(&mut self, node: NewNode) -> Val {
        self.nodes.push(node);
        Val::new(self.nodes.len() - 1)
    }

    /// Adds a weight.
    pub fn weight(&mut self, w: NewWeight) -> WRef {
        self.weights.push(w);
        WRef::New(self.weights.len() - 1)
    }

    /// Adds a derived weight `op {attrs}(inputs)` of type `ty`.
    pub fn derived(
        &mut self,
        name: &str,
        ty: TensorType,
        op: OpKind,
        attrs: Attrs,
        inputs: Vec<WRef>,
    ) -> WRef {
        self.weight(NewWeight {
            name: name.to_string(),
            ty,
            data: NewData::Derived { op, attrs, inputs },
        })
    }

    /// Adds an i64 weight `[v.len()]` holding `v` (shapes, pads, axes).
    pub fn i64_weight(&mut self, v: &[i64], name: &str) -> WRef {
        self.weight(NewWeight {
            name: name.to_string(),
            ty: TensorType::fixed(DType::I64, &[v.len() as u64]),
            data: NewData::Bytes(
                Blob::from_vec(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                None,
            ),
        })
    }

    /// Adds an i64 weight holding `v` and an `nn.constant` of it.
    pub fn i64_const(&mut self, v: &[i64], name: &str) -> Val {
        let w = self.i64_weight(v, name);
        self.push(NewNode::constant(
            name,
            w,
            TensorType::fixed(DType::I64, &[v.len() as u64]),
        ))
    }

    /// Adds `derived<nn.reshape>(w, dims)` of dtype `dt`, its shape operand
    /// the weight `<name>_shape`.
    pub fn derived_reshape(&mut self, w: WRef, dims: &[u64], dt: DType, name: &str) -> WRef {
        let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let s = self.i64_weight(&shape, &format!("{name}_shape"));
        self.derived(
            name,
            TensorType::fixed(dt, dims),
            OpKind::Reshape,
            Attrs::new(),
            vec![w, s],
        )
    }

    /// Adds a weight holding `w`'s data and an `nn.constant` of it.
    pub fn constant(&mut self, name: &str, w: Weight) -> Val {
        let data = match w.data {
            WeightData::Bytes(b) => NewData::Bytes(b, w.source),
            WeightData::Derived(d) => NewData::Derived {
                op: d.op,
                attrs: d.attrs,
                inputs: d.inputs.into_iter().map(WRef::Old).collect(),
            },
            WeightData::Elided { bytes, fingerprint } => NewData::Elided { bytes, fingerprint },
        };
        let ty = w.ty;
        let r = self.weight(NewWeight {
            name: w.name,
            ty: ty.clone(),
            data,
        });
        self.push(NewNode::constant(name, r, ty))
    }

    /// The declared type of a value of the recipe.
    pub fn ty<'a>(&'a self, g: &'a Graph, v: Val) -> &'a TensorType {
        match v {
            Val::Old(v) => &g.value(v).ty,
            Val::New { node, result } => &self.nodes[node].results[result].1,
        }
    }

    /// A Gemm's `+ beta * C` after its product `y` (the Gemm's result
    /// `out_name` of type `out_ty`; `C` of type `cty`): `nn.add`, with an
    /// `nn.mul` by a constant `beta` first unless it is 1. Returns the sum.
    pub fn gemm_bias(
        &mut self,
        y: Val,
        (c, beta): (ValueId, f64),
        cty: TensorType,
        out_name: &str,
        out_ty: TensorType,
    ) -> Val {
        let mut c = Val::Old(c);
        if beta != 1.0 {
            let bw = Weight {
                name: format!("{out_name}.beta"),
                ty: TensorType::fixed(kiln_ir::DType::F32, &[]),
                data: WeightData::Bytes(Blob::from_vec((beta as f32).to_le_bytes().to_vec())),
                source: None,
            };
            let bv = self.constant(&format!("{out_name}.beta"), bw);
            c = self.push(NewNode::op(
                OpKind::Mul,
                vec![c, bv],
                Attrs::new(),
                &format!("{out_name}.bias"),
                cty,
            ));
        }
        self.push(NewNode::op(
            OpKind::Add,
            vec![y, c],
            Attrs::new(),
            out_name,
            out_ty,
        ))
    }
}

/// Carries out a [`Recipe`]; returns the number of nodes inserted.
pub fn apply_recipe(g: &mut Graph, recipe: Recipe) -> usize {
    let mut made: Vec<Vec<ValueId>> = Vec::with_capacity(recipe.nodes.len());
    let resolve = |made: &[Vec<ValueId>], v: Val| match v {
        Val::Old(v) => v,
        Val::New { node, result } => made[node][result],
    };
    let count = recipe.nodes.len();
    let mut weights: Vec<WeightId> = Vec::with_capacity(recipe.weights.len());
    let wid = |weights: &[WeightId], r: WRef| match r {
        WRef::Old(w) => w,
        WRef::New(i) => weights[i],
    };
    for w in recipe.weights {
        let (data, source) = match w.data {
            NewData::Bytes(b, source) => (WeightData::Bytes(b), source),
            NewData::Elided { bytes, fingerprint } => {
                (WeightData::Elided { bytes, fingerprint }, None)
            }
            NewData::Derived { op, attrs, inputs } => (
                WeightData::Derived(Derivation {
                    op,
                    attrs,
                    inputs: inputs.into_iter().map(|r| wid(&weights, r)).collect(),
                }),
                None,
            ),
        };
        weights.push(g.add_weight(Weight {
            name: w.name,
            ty: w.ty,
            data,
            source,
        }));
    }
    for (i, n) in recipe.nodes.into_iter().enumerate() {
        let mut attrs = n.attrs;
        if let Some(w) = n.weight {
            attrs.insert("value".into(), kiln_ir::Attr::Weight(wid(&weights, w)));
        }
        let inputs = n
            .inputs
            .iter()
            .map(|v| v.map(|v| resolve(&made, v)))
            .collect();
        let outs = g.add_node(n.op, inputs, attrs, n.results);
        let mut node = g.nodes.pop().expect("just added");
        node.body = n.body;
        g.nodes.insert(recipe.at + i, node);
        made.push(outs);
    }
    for (old, new) in recipe.replace {
        let fresh = matches!(new, Val::New { .. });
        let new = resolve(&made, new);
        let node = g.nodes.iter().position(|n| n.outputs.contains(&old));
        // The planner's guarantees make this a plain redirect or a rename;
        // the general policy still covers an existing interface value.
        if let Some(r) = node.and_then(|n| plan_replace(g, n, old, new)) {
            apply(g, r);
            if fresh && r.how == How::Uses {
                // A new value takes the name of the one it replaces, so the
                // printed graph keeps the names people know (ONNX names).
                g.swap_value_names(old, new);
            }
        }
    }
    count
}

/// Which way [`sweep`] visits nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// First to last: a rewrite's result is visited again as an operand of
    /// later nodes in the same sweep.
    Forward,
    /// Last to first: a pattern ending at the outermost node matches
    /// before its inner parts could.
    Backward,
}

/// Visits every node once in `direction`, asking `plan` for a recipe at
/// each and applying it; the [`Matcher`] is rebuilt only after a rewrite.
/// A recipe may insert before or after its node; the visit goes on with
/// the next node not yet visited. Returns the number of recipes applied;
/// dead nodes are left for dce.
pub fn sweep(
    g: &mut Graph,
    direction: Direction,
    mut plan: impl FnMut(&Matcher<'_>, usize) -> Option<Recipe>,
) -> usize {
    let mut applied = 0;
    let mut next = match direction {
        Direction::Forward => Some(0),
        Direction::Backward => g.nodes.len().checked_sub(1),
    };
    while let Some(start) = next {
        let found = {
            let m = Matcher::new(g);
            // Dead nodes (left by earlier rewrites) are not rewritten.
            let mut try_at = |n: usize| {
                if !m.is_live(n) {
                    return None;
                }
                plan(&m, n).map(|r| (n, r))
            };
            match direction {
                Direction::Forward => (start..g.nodes.len()).find_map(&mut try_at),
                Direction::Backward => (0..=start).rev().find_map(&mut try_at),
            }
        };
        let Some((n, r)) = found else { break };
        let at = r.at;
        let inserted = apply_recipe(g, r);
        applied += 1;
        // Nodes before `at` keep their indices; those from `at` on moved
        // up by `inserted`.
        let shifted = |i: usize| if i >= at { i + inserted } else { i };
        next = match direction {
            Direction::Forward => Some(shifted(n) + 1),
            Direction::Backward => n.min(at).checked_sub(1),
        };
    }
    applied
}

/// [`sweep`] as a whole pass: then removes what the rewrites left dead.
pub fn sweep_pass(
    g: &mut Graph,
    direction: Direction,
    plan: impl FnMut(&Matcher<'_>, usize) -> Option<Recipe>,
) -> crate::pass::PassStats {
    let rewrites = sweep(g, direction, plan);
    if rewrites > 0 {
        crate::passes::dce::eliminate(g);
    }
    crate::pass::PassStats { rewrites }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{DType, TensorType};

    #[test]
    fn outputs_keep_their_names() {
        let mut g = Graph::new("main");
        let t = TensorType::fixed(DType::F32, &[2]);
        let x = g.add_input("x", t.clone());
        let a = g.add_node(
            OpKind::Relu,
            vec![Some(x)],
            Attrs::new(),
            vec![("a".into(), t.clone())],
        )[0];
        let b = g.add_node(
            OpKind::Relu,
            vec![Some(a)],
            Attrs::new(),
            vec![("b".into(), t.clone())],
        )[0];
        g.outputs.push(b);

        // An internal value takes the output's place and its name.
        let r = plan_replace(&g, 1, b, a).unwrap();
        assert_eq!(r.how, How::TakeName);
        apply(&mut g, r);
        assert_eq!(g.outputs, vec![a]);
        assert_eq!(g.value(a).name, "b");

        // A graph input cannot take an output's name: an identity keeps both.
        let r = plan_replace(&g, 0, a, x).unwrap();
        assert_eq!(r.how, How::IdentityNode { node: 0 });
        apply(&mut g, r);
        assert_eq!(g.nodes[0].op, OpKind::Identity);
        assert_eq!(g.outputs, vec![a]);
        // ... and the identity is a fixpoint.
        assert_eq!(plan_replace(&g, 0, a, x), None);
        assert!(kiln_ir::verify(&g).is_ok());
    }

    #[test]
    fn incompatible_types_are_never_replaced() {
        let mut g = Graph::new("main");
        let x = g.add_input("x", TensorType::fixed(DType::F32, &[2]));
        let c = g.add_node(
            OpKind::Cast,
            vec![Some(x)],
            [("to".to_string(), kiln_ir::Attr::DType(DType::I32))]
                .into_iter()
                .collect(),
            vec![("c".into(), TensorType::fixed(DType::I32, &[2]))],
        )[0];
        assert_eq!(plan_replace(&g, 0, c, x), None);
    }
}
