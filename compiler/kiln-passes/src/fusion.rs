//! Building `nn.fused` nodes out of groups of graph nodes, shared by the
//! fusion passes.
//!
//! A group becomes one node whose body holds copies of the group's nodes:
//! the body's inputs are the values the group uses from outside (in order
//! of first use), its outputs the group's values used outside it or
//! returned by the graph (in node order), so an intermediate that others
//! need is a result of the fused node and is never recomputed. The fused
//! node goes where the group's last node was; [`topo_sort`] then restores a
//! topological order, since a node outside the group may sit between its
//! members and use one of their results.
//!
//! Soundness needs a *convex* group — no path leaves it and comes back —
//! which the passes check with [`depends_on`] before growing a group.

use crate::pattern::Matcher;
use crate::rewrite::{NewNode, Recipe, Val};
use kiln_ir::ops::fused::FusedKind;
use kiln_ir::{Attr, Attrs, Graph, Node, OpKind, ValueId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

/// The recipe replacing the nodes `members` (indices, in graph order) with
/// one `nn.fused {kind}` node.
pub fn fuse(m: &Matcher<'_>, members: &[usize], kind: FusedKind) -> Recipe {
    let g = m.g;
    let set: HashSet<usize> = members.iter().copied().collect();
    let defined: HashSet<ValueId> = members
        .iter()
        .flat_map(|&i| g.nodes[i].outputs.iter().copied())
        .collect();
    let mut body = Graph::new(kind.name());
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let mut inputs: Vec<ValueId> = Vec::new();
    for &i in members {
        for v in g.nodes[i].operands() {
            if !defined.contains(&v) && !map.contains_key(&v) {
                let info = g.value(v);
                map.insert(v, body.add_input(&info.name, info.ty.clone()));
                inputs.push(v);
            }
        }
    }
    let mut results: Vec<ValueId> = Vec::new();
    for &i in members {
        let n = &g.nodes[i];
        let ins = n.inputs.iter().map(|v| v.map(|v| map[&v])).collect();
        let outs = n
            .outputs
            .iter()
            .map(|&v| (g.value(v).name.clone(), g.value(v).ty.clone()))
            .collect();
        let made = body.add_node(n.op, ins, n.attrs.clone(), outs);
        if let Some(last) = body.nodes.last_mut() {
            last.body = n.body.clone();
            last.loc = n.loc.clone();
        }
        for (&v, &b) in n.outputs.iter().zip(&made) {
            map.insert(v, b);
            let outside = m.is_output(v) || m.users(v).iter().any(|u| !set.contains(u));
            if outside {
                results.push(v);
            }
        }
    }
    body.outputs = results.iter().map(|v| map[v]).collect();
    let at = *members.iter().max().expect("a group has members");
    let mut r = Recipe::at(at);
    let mut attrs = Attrs::new();
    attrs.insert("kind".into(), Attr::of_enum(kind));
    let fused = r.push(NewNode {
        op: OpKind::Fused,
        inputs: inputs.iter().map(|&v| Some(Val::Old(v))).collect(),
        attrs,
        results: results
            .iter()
            .map(|&v| (g.value(v).name.clone(), g.value(v).ty.clone()))
            .collect(),
        weight: None,
        body: Some(Box::new(body)),
    });
    let Val::New { node, .. } = fused else {
        unreachable!("push returns a new value")
    };
    for (k, &v) in results.iter().enumerate() {
        r.replace.push((v, Val::New { node, result: k }));
    }
    r
}

/// Whether the node producing `v` depends, through any path, on a node of
/// `group` (whose smallest index is `min`): nodes before `min` cannot.
pub fn depends_on(m: &Matcher<'_>, v: ValueId, group: &HashSet<usize>, min: usize) -> bool {
    let mut stack: Vec<usize> = m.node_of(v).into_iter().collect();
    let mut seen: HashSet<usize> = HashSet::new();
    while let Some(n) = stack.pop() {
        if group.contains(&n) {
            return true;
        }
        if n < min || !seen.insert(n) {
            continue;
        }
        stack.extend(m.g.nodes[n].operands().filter_map(|o| m.node_of(o)));
    }
    false
}

/// Reorders nodes topologically, keeping the existing order wherever it is
/// already valid (a node waits only for its producers).
pub fn topo_sort(g: &mut Graph) {
    let n = g.nodes.len();
    let mut producer: HashMap<ValueId, usize> = HashMap::new();
    for (i, node) in g.nodes.iter().enumerate() {
        for &v in &node.outputs {
            producer.insert(v, i);
        }
    }
    let mut pending = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in g.nodes.iter().enumerate() {
        let mut deps: Vec<usize> = node
            .operands()
            .filter_map(|v| producer.get(&v).copied())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        pending[i] = deps.len();
        for d in deps {
            users[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| pending[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            pending[u] -= 1;
            if pending[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    if order.len() != n || order.iter().enumerate().all(|(k, &i)| k == i) {
        // A cycle (a bug the verifier reports) or nothing to do.
        return;
    }
    let mut old: Vec<Option<Node>> = std::mem::take(&mut g.nodes).into_iter().map(Some).collect();
    g.nodes = order
        .into_iter()
        .map(|i| old[i].take().expect("each node once"))
        .collect();
}
