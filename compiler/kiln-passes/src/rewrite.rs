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

use kiln_ir::{Attrs, Graph, OpKind, ValueId};

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
