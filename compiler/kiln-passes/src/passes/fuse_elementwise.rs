//! `fuse-elementwise`: maximal groups of elementwise ops become
//! `nn.fused {kind = "elementwise"}` nodes, each run as one loop.
//!
//! Groups grow along producer -> consumer edges between elementwise nodes
//! (`Traits::elementwise`, one result, no body), visiting nodes in order,
//! under three rules that keep the rewrite sound and never slower:
//! - **No recomputation across a broadcast.** A producer joins its
//!   consumer's group only when its result has exactly the consumer's
//!   shape; a smaller producer broadcast into a larger result would be
//!   recomputed once per element of it (the shape of issue 10's bug, where
//!   a GELU was fused into the MatMul it fed). So every value in a group
//!   has the group's shape; broadcast operands are inputs of the node.
//! - **Multi-use intermediates are results, never recomputed.** A group
//!   value used outside the group (or returned) becomes an extra result of
//!   the fused node.
//! - **Convex groups only.** A producer group is merged only if no value
//!   the merged group reads from outside depends on the group itself (a
//!   path that leaves the group and comes back would make a cycle).
//!
//! Reductions, contractions, data movement and fused nodes are not
//! elementwise and stay outside (run `fuse-epilogue` first, so the ops
//! after a contraction go with it). Groups of one node are left alone.
//!
//! Deciding is [`groups`] (pure); rewriting builds each group with
//! [`crate::fusion::fuse`] and cannot fail. Preconditions: a verified
//! graph. Graph outputs keep their names and types; the fused node runs
//! the same ops in the same order, so results are bit-identical.

use crate::fusion;
use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::pattern::{self, Matcher};
use crate::registry::PassInfo;
use crate::rewrite::apply_recipe;
use kiln_ir::ops::fused::FusedKind;
use kiln_ir::{Graph, OpKind};
use std::collections::{HashMap, HashSet};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "fuse-elementwise",
    summary:
        "Fuses maximal convex groups of same-shape elementwise ops into nn.fused elementwise nodes",
    create: || Box::new(FuseElementwise::default()),
};

/// Options of `fuse-elementwise`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Smallest group worth a fused node.
    pub min_group: usize,
    /// Largest group (a bound on the size of one loop body).
    pub max_group: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            min_group: 2,
            max_group: 64,
        }
    }
}

/// The elementwise fusion pass.
#[derive(Clone, Debug, Default)]
pub struct FuseElementwise {
    /// Options.
    pub options: Options,
}

impl Pass for FuseElementwise {
    pass_info!();
    fn run(&self, g: &mut Graph, _opts: &PassOptions) -> Result<PassStats, PassError> {
        let recipes = {
            let m = Matcher::new(g);
            let mut rs: Vec<_> = groups(&m, &self.options)
                .iter()
                .map(|members| fusion::fuse(&m, members, FusedKind::Elementwise))
                .collect();
            // Last group first: a recipe leaves the nodes before it in place.
            rs.sort_by_key(|r| std::cmp::Reverse(r.at));
            rs
        };
        let rewrites = recipes.len();
        for r in recipes {
            apply_recipe(g, r);
        }
        if rewrites > 0 {
            fusion::topo_sort(g);
            crate::passes::dce::eliminate(g);
        }
        Ok(PassStats { rewrites })
    }
}

/// Whether node `n` may be in an elementwise group.
fn eligible(m: &Matcher<'_>, n: usize) -> bool {
    let node = &m.g.nodes[n];
    node.op.def().traits.elementwise
        && node.op != OpKind::Constant
        && node.outputs.len() == 1
        && node.body.is_none()
}

/// The groups to fuse: node indices, each group in graph order.
pub fn groups(m: &Matcher<'_>, opts: &Options) -> Vec<Vec<usize>> {
    let g = m.g;
    // Group id of each grouped node; members of each group.
    let mut group_of: HashMap<usize, usize> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for u in 0..g.nodes.len() {
        if !eligible(m, u) {
            continue;
        }
        let id = members.len();
        members.push(vec![u]);
        group_of.insert(u, id);
        let mut producers: Vec<usize> = g.nodes[u]
            .operands()
            .filter(|&o| same_shape(m, o, g.nodes[u].outputs[0]))
            .filter_map(|o| m.node_of(o))
            .filter(|p| group_of.contains_key(p))
            .collect();
        producers.sort_unstable();
        producers.dedup();
        for p in producers {
            let pg = group_of[&p];
            let ug = group_of[&u];
            if pg == ug || members[pg].len() + members[ug].len() > opts.max_group {
                continue;
            }
            let mut merged: Vec<usize> = members[pg].iter().chain(&members[ug]).copied().collect();
            merged.sort_unstable();
            if !convex(m, &merged) {
                continue;
            }
            for &n in &members[pg] {
                group_of.insert(n, ug);
            }
            members[pg].clear();
            members[ug] = merged;
        }
    }
    members
        .into_iter()
        .filter(|g| g.len() >= opts.min_group.max(2))
        .collect()
}

/// Whether the value `o` has the same static or symbolic extents as `y`.
fn same_shape(m: &Matcher<'_>, o: kiln_ir::ValueId, y: kiln_ir::ValueId) -> bool {
    let (a, b) = (m.ty(o), m.ty(y));
    a.rank() == b.rank()
        && a.dims
            .iter()
            .zip(&b.dims)
            .all(|(x, z)| pattern::same_dim(x, z))
}

/// Whether no value the group reads from outside depends on the group.
fn convex(m: &Matcher<'_>, group: &[usize]) -> bool {
    let set: HashSet<usize> = group.iter().copied().collect();
    let min = group[0];
    group.iter().all(|&n| {
        m.g.nodes[n].operands().all(|v| {
            m.node_of(v).is_some_and(|p| set.contains(&p)) || !fusion::depends_on(m, v, &set, min)
        })
    })
}

#[cfg(test)]
#[path = "fuse_elementwise_tests.rs"]
mod tests;
