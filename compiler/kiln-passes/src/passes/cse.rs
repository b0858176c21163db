//! `cse`: common subexpression elimination. Merges a node into an earlier
//! node with the same op, the same operands (the first two in either order
//! for commutative ops), the same attributes and the same number of results.
//! Two `nn.constant` nodes merge when their weights have the same type and
//! the same bytes, whatever the weights are called.
//!
//! Precondition: a verified graph. All ops are pure, so equal inputs give
//! equal results. Attributes compare by bit pattern (0.0 and -0.0 differ).
//! Elided weights never merge: only a fingerprint of their bytes is known;
//! nor do nodes with a body (`nn.fused`), whose bodies may differ.
//! Constants above [`MAX_CONSTANT_BYTES`] are not compared by content:
//! hashing them would page gigabytes of mapped weights into memory for a
//! merge that real models almost never offer (shared weights are shared by
//! name, which needs no hashing).
//! Replacing a graph output follows [`crate::rewrite`]; merged nodes are
//! left dead for `dce`.

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::registry::PassInfo;
use crate::rewrite::{self, How};
use kiln_ir::graph::fingerprint;
use kiln_ir::{Attr, Attrs, Graph, Node, OpKind, TensorType, ValueId, WeightData};
use std::collections::HashMap;

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "cse",
    summary:
        "Merges nodes with the same op, operands and attributes, and constants with equal bytes",
    create: || Box::new(Cse),
};

/// The common subexpression elimination pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cse;

/// What makes two nodes equal. Constants are keyed by their data; the key
/// holds a fingerprint and candidates are confirmed by comparing bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Node {
        op: OpKind,
        inputs: Vec<Option<ValueId>>,
        attrs: Attrs,
        results: usize,
    },
    Constant {
        ty: TensorType,
        len: usize,
        fingerprint: u64,
    },
}

/// Largest constant whose bytes CSE hashes and compares.
pub const MAX_CONSTANT_BYTES: usize = 1 << 20;

fn key_of(g: &Graph, node: &Node) -> Option<Key> {
    if node.op == OpKind::Constant {
        let Some(Attr::Weight(w)) = node.attrs.get("value") else {
            return None;
        };
        let w = g.weight(*w);
        let WeightData::Bytes(b) = &w.data else {
            return None;
        };
        if b.len() > MAX_CONSTANT_BYTES {
            return None;
        }
        return Some(Key::Constant {
            ty: w.ty.clone(),
            len: b.len(),
            fingerprint: fingerprint(b.bytes()),
        });
    }
    if node.body.is_some() {
        // Fused nodes with equal operands may hold different bodies.
        return None;
    }
    let mut inputs = node.inputs.clone();
    if node.op.def().traits.commutative && inputs.len() >= 2 && inputs[1] < inputs[0] {
        inputs.swap(0, 1);
    }
    Some(Key::Node {
        op: node.op,
        inputs,
        attrs: node.attrs.clone(),
        results: node.outputs.len(),
    })
}

/// Whether two constant nodes with equal keys really hold equal bytes.
fn same_constant_bytes(g: &Graph, a: &Node, b: &Node) -> bool {
    let bytes = |n: &Node| match n.attrs.get("value") {
        Some(Attr::Weight(w)) => g.weight(*w).bytes().map(|b| b.bytes()),
        _ => None,
    };
    matches!((bytes(a), bytes(b)), (Some(x), Some(y)) if x == y)
}

impl Pass for Cse {
    pass_info!();
    fn run(&self, g: &mut Graph, _opts: &PassOptions) -> Result<PassStats, PassError> {
        let mut rewrites = 0;
        // Operands are canonicalized through `remap` as the walk goes, so a
        // node whose operands were merged compares equal to its twin (one
        // walk in topological order handles chains of duplicates).
        let mut remap: HashMap<ValueId, ValueId> = HashMap::new();
        let mut table: HashMap<Key, Vec<usize>> = HashMap::new();
        for i in 0..g.nodes.len() {
            for v in g.nodes[i].inputs.iter_mut().flatten() {
                if let Some(&r) = remap.get(v) {
                    *v = r;
                }
            }
            let Some(key) = key_of(g, &g.nodes[i]) else {
                continue;
            };
            let rep = table.get(&key).and_then(|cands| {
                cands.iter().copied().find(|&c| {
                    g.nodes[i].op != OpKind::Constant
                        || same_constant_bytes(g, &g.nodes[c], &g.nodes[i])
                })
            });
            let Some(rep) = rep else {
                table.entry(key).or_default().push(i);
                continue;
            };
            if merge(g, rep, i, &mut remap) {
                rewrites += 1;
            }
        }
        Ok(PassStats { rewrites })
    }
}

/// Merges node `dup` into the earlier node `rep`. Non-output results are
/// redirected through `remap`; output results through the rewrite policy.
/// Does nothing (and returns false) when some output result cannot be
/// replaced.
fn merge(g: &mut Graph, rep: usize, dup: usize, remap: &mut HashMap<ValueId, ValueId>) -> bool {
    let pairs: Vec<(ValueId, ValueId)> = g.nodes[dup]
        .outputs
        .iter()
        .copied()
        .zip(g.nodes[rep].outputs.iter().copied())
        .collect();
    // Decide for every result before rewriting any.
    let mut plans = Vec::new();
    for &(old, new) in &pairs {
        match rewrite::plan_replace(g, dup, old, new) {
            Some(p) => plans.push(p),
            None => return false,
        }
    }
    for p in plans {
        // Plans for output results are re-checked: an earlier result of the
        // same node may have changed which names are interface names.
        let p = if p.how == How::Uses {
            p
        } else {
            match rewrite::plan_replace(g, dup, p.old, p.new) {
                Some(p) => p,
                None => continue,
            }
        };
        rewrite::apply(g, p);
        // Even when `old` lives on as an identity (it is an output), later
        // users read `new` directly.
        remap.insert(p.old, p.new);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::run;

    #[test]
    fn merges_equal_nodes_and_chains_of_them() {
        let (out, stats) = run(
            &Cse,
            "graph @main(%x: tensor<2xf32>, %y: tensor<2xf32>) -> (tensor<2xf32>) {\n  \
               %a = nn.add %x, %y : tensor<2xf32>\n  \
               %b = nn.add %y, %x : tensor<2xf32>\n  \
               %c = nn.exp %a : tensor<2xf32>\n  \
               %d = nn.exp %b : tensor<2xf32>\n  \
               %e = nn.mul %c, %d : tensor<2xf32>\n  \
               return %e\n}\n",
        );
        // add is commutative, so %b is %a; then %d is %c.
        assert!(out.contains("%e = nn.mul %c, %c"), "{out}");
        assert_eq!(stats.rewrites, 2);
    }

    #[test]
    fn different_attributes_or_ops_do_not_merge() {
        let src = "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  \
                   %a = nn.leaky_relu %x {alpha = 0.0} : tensor<2xf32>\n  \
                   %b = nn.leaky_relu %x {alpha = -0.0} : tensor<2xf32>\n  \
                   %c = nn.sub %a, %b : tensor<2xf32>\n  \
                   %d = nn.sub %b, %a : tensor<2xf32>\n  \
                   %e = nn.add %c, %d : tensor<2xf32>\n  \
                   return %e\n}\n";
        let (out, stats) = run(&Cse, src);
        assert_eq!(out, src);
        assert!(!stats.changed());
    }

    #[test]
    fn constants_with_equal_bytes_merge_and_others_do_not() {
        let (out, stats) = run(
            &Cse,
            "weight @w1 : tensor<2xf32> = dense<[1.0, 2.0]>\n\
             weight @w2 : tensor<2xf32> = dense<[1.0, 2.0]>\n\
             weight @w3 : tensor<2xi32> = dense<[1065353216, 1073741824]>\n\
             weight @w4 : tensor<2xf32> = dense<[1.0, 3.0]>\n\
             graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xi32>) {\n  \
               %c1 = nn.constant {value = @w1} : tensor<2xf32>\n  \
               %c2 = nn.constant {value = @w2} : tensor<2xf32>\n  \
               %c3 = nn.constant {value = @w3} : tensor<2xi32>\n  \
               %c4 = nn.constant {value = @w4} : tensor<2xf32>\n  \
               %a = nn.add %x, %c1 : tensor<2xf32>\n  \
               %b = nn.add %a, %c2 : tensor<2xf32>\n  \
               %d = nn.add %b, %c4 : tensor<2xf32>\n  \
               return %d, %c3\n}\n",
        );
        // @w3 has the same bytes as @w1 but another type; @w4 other bytes.
        assert!(out.contains("%b = nn.add %a, %c1"), "{out}");
        assert!(out.contains("%d = nn.add %b, %c4"), "{out}");
        assert_eq!(stats.rewrites, 1);
    }

    #[test]
    fn duplicate_outputs_keep_their_names() {
        let (out, _) = run(
            &Cse,
            "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) {\n  \
               %a = nn.exp %x : tensor<2xf32>\n  \
               %b = nn.exp %x : tensor<2xf32>\n  \
               %c = nn.exp %x : tensor<2xf32>\n  \
               %s = nn.add %b, %c : tensor<2xf32>\n  \
               return %b, %c, %s\n}\n",
        );
        // %b takes %a's place under its own name; %c, also an output, becomes
        // an identity of it, so all three output names survive.
        assert!(out.contains("%b = nn.exp %x"), "{out}");
        assert!(out.contains("%c = nn.identity %b"), "{out}");
        assert!(out.contains("%s = nn.add %b, %b"), "{out}");
        assert!(out.contains("return %b, %c, %s"), "{out}");
    }

    #[test]
    fn elided_weights_never_merge() {
        let src = "weight @w1 : tensor<2xf32> = elided<bytes = 8, fnv = 0x0000000000000001>\n\
                   weight @w2 : tensor<2xf32> = elided<bytes = 8, fnv = 0x0000000000000001>\n\
                   graph @main() -> (tensor<2xf32>) {\n  \
                   %c1 = nn.constant {value = @w1} : tensor<2xf32>\n  \
                   %c2 = nn.constant {value = @w2} : tensor<2xf32>\n  \
                   %a = nn.add %c1, %c2 : tensor<2xf32>\n  \
                   return %a\n}\n";
        let (out, _) = run(&Cse, src);
        assert_eq!(out, src);
    }
}
