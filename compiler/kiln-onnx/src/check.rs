//! Structural checks on a decoded graph, and its topological sort.
//!
//! Invariants established for every graph (and recursively its subgraphs):
//! - SSA: no value is defined twice (two nodes, or a node and a graph
//!   input / initializer, or a node output shadowing an enclosing graph's
//!   value). A graph input that is also an initializer is legal (IR >= 4).
//! - Every node input, including the values a subgraph captures from its
//!   enclosing scopes, is defined somewhere in scope.
//! - Nodes are in topological order; among ready nodes the earliest in the
//!   file goes first, so already-sorted graphs keep their order.
//! - Every graph output is defined.

use crate::error::{Ctx, OnnxError};
use crate::model::{OnnxAttr, OnnxGraph, OnnxNode};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

#[derive(Clone, Copy)]
enum Def {
    Input,
    Initializer,
    Node(usize),
}

/// Checks and sorts `g` in place. `outer` holds the values visible from
/// enclosing graphs. Returns the outer values `g` uses (its captures).
pub(crate) fn check_graph(
    ctx: &Ctx,
    what: &str,
    g: &mut OnnxGraph,
    outer: &HashSet<String>,
) -> Result<BTreeSet<String>, OnnxError> {
    let mut defs: HashMap<String, Def> = HashMap::new();
    for v in &g.inputs {
        if defs.insert(v.name.clone(), Def::Input).is_some() {
            return Err(ctx.invalid(
                format!("graph input '{}' of {what}", v.name),
                "duplicate value name: input is declared twice",
            ));
        }
    }
    for t in &g.initializers {
        if let Some(Def::Initializer) = defs.insert(t.name.clone(), Def::Initializer) {
            return Err(ctx.invalid(
                format!("initializer '{}' of {what}", t.name),
                "duplicate value name: initializer is declared twice",
            ));
        }
    }
    for (i, n) in g.nodes.iter().enumerate() {
        for out in n.outputs.iter().flatten() {
            let dup = match defs.get(out) {
                Some(Def::Input) => Some("a graph input".to_string()),
                Some(Def::Initializer) => Some("an initializer".to_string()),
                Some(Def::Node(j)) => Some(g.nodes[*j].describe()),
                None if outer.contains(out) => Some("a value of an enclosing graph".to_string()),
                None => None,
            };
            if let Some(other) = dup {
                return Err(ctx.invalid(
                    n.describe(),
                    format!("duplicate value name '{out}': also defined by {other}"),
                ));
            }
            defs.insert(out.clone(), Def::Node(i));
        }
    }

    // What subgraphs may see: everything visible here. Captures of a
    // subgraph are extra inputs of the node that owns it.
    let mut uses: Vec<Vec<String>> = Vec::with_capacity(g.nodes.len());
    let needs_scope = g.nodes.iter().any(has_subgraph);
    let inner_scope: HashSet<String> = if needs_scope {
        outer.iter().cloned().chain(defs.keys().cloned()).collect()
    } else {
        HashSet::new()
    };
    let mut captures = BTreeSet::new();
    for n in g.nodes.iter_mut() {
        let mut used: Vec<String> = n.inputs.iter().flatten().cloned().collect();
        let describe = n.describe();
        for (aname, attr) in n.attrs.iter_mut() {
            let sub_what = format!("attribute '{aname}' of {describe}");
            match attr {
                OnnxAttr::Graph(sub) => {
                    used.extend(check_graph(ctx, &sub_what, sub, &inner_scope)?);
                }
                OnnxAttr::Graphs(subs) => {
                    for sub in subs {
                        used.extend(check_graph(ctx, &sub_what, sub, &inner_scope)?);
                    }
                }
                _ => {}
            }
        }
        for u in &used {
            if !defs.contains_key(u) {
                if outer.contains(u) {
                    captures.insert(u.clone());
                } else {
                    return Err(ctx.invalid(describe, format!("uses undefined value '{u}'")));
                }
            }
        }
        uses.push(used);
    }

    for v in &g.outputs {
        if !defs.contains_key(&v.name) {
            if outer.contains(&v.name) {
                captures.insert(v.name.clone());
            } else {
                return Err(ctx.invalid(
                    format!("graph output '{}' of {what}", v.name),
                    "undefined value: no node, input or initializer produces it",
                ));
            }
        }
    }

    let order = topo_order(ctx, &g.nodes, &uses, &defs)?;
    if order.iter().enumerate().any(|(i, &j)| i != j) {
        let mut slots: Vec<Option<OnnxNode>> =
            std::mem::take(&mut g.nodes).into_iter().map(Some).collect();
        g.nodes = order.iter().filter_map(|&i| slots[i].take()).collect();
    }
    Ok(captures)
}

fn has_subgraph(n: &OnnxNode) -> bool {
    n.attrs
        .values()
        .any(|a| matches!(a, OnnxAttr::Graph(_) | OnnxAttr::Graphs(_)))
}

/// Kahn's algorithm with a min-heap on file position (stable).
fn topo_order(
    ctx: &Ctx,
    nodes: &[OnnxNode],
    uses: &[Vec<String>],
    defs: &HashMap<String, Def>,
) -> Result<Vec<usize>, OnnxError> {
    let producer = |v: &str| match defs.get(v) {
        Some(Def::Node(j)) => Some(*j),
        _ => None,
    };
    let mut indegree = vec![0usize; nodes.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, used) in uses.iter().enumerate() {
        // A value used twice by one node is one edge.
        let producers: BTreeSet<usize> = used.iter().filter_map(|u| producer(u)).collect();
        indegree[i] = producers.len();
        for p in producers {
            users[p].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..nodes.len())
        .filter(|&i| indegree[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    if order.len() == nodes.len() {
        return Ok(order);
    }

    // Every node left has a producer that is also left: walk producers
    // from the first one until a node repeats, which closes a cycle.
    let Some(start) = (0..nodes.len()).find(|&i| indegree[i] > 0) else {
        return Err(ctx.invalid("graph", "cycle detected"));
    };
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut cur = start;
    loop {
        if let Some(&pos) = seen.get(&cur) {
            let cycle = &path[pos..];
            let values: Vec<String> = cycle.iter().rev().map(|(_, v)| format!("'{v}'")).collect();
            return Err(ctx.invalid(
                nodes[cur].describe(),
                format!(
                    "cycle: the node depends on itself through values {}",
                    values.join(" -> ")
                ),
            ));
        }
        seen.insert(cur, path.len());
        let next = uses[cur].iter().find_map(|u| {
            producer(u)
                .filter(|&p| indegree[p] > 0)
                .map(|p| (p, u.clone()))
        });
        let Some((p, value)) = next else {
            return Err(ctx.invalid(nodes[cur].describe(), "cycle detected"));
        };
        path.push((cur, value));
        cur = p;
    }
}
