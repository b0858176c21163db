//! A Graphviz (`dot`) picture of a graph, for `kiln compile --emit=dot` and
//! `kiln inspect --dot`.
//!
//! Graph inputs and outputs are ellipses, constants small grey notes named
//! after their weight, every other node a box with its op, attributes and
//! result types. A node with a body (`nn.fused`) is drawn as a cluster
//! holding its body's nodes, labelled with its kind: edges go from the
//! producers of its operands straight to the body nodes that use them, and
//! from the body nodes producing its results to their users, so the picture
//! shows both the kernels and what is inside them.
//!
//! The output is deterministic (node order), and names are escaped, so any
//! value name is safe.

use super::print::attrs_text;
use crate::graph::{Graph, ValueId};
use crate::ops::OpKind;
use std::collections::HashMap;
use std::fmt::Write;

/// Longest attribute text shown in a node (longer lists are cut).
const MAX_ATTR_CHARS: usize = 60;

/// Escapes `s` for a double-quoted dot string.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Where each value of one graph level comes from: a dot node id, or
/// nothing (an absent source draws no edge).
type Sources = HashMap<ValueId, String>;

/// Prints `g` as a dot digraph.
pub fn print_dot(g: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", esc(&g.name));
    out.push_str("  rankdir=TB;\n");
    out.push_str("  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
    out.push_str("  edge [fontname=\"monospace\", fontsize=8];\n");
    let mut sources = Sources::new();
    for (i, &v) in g.inputs.iter().enumerate() {
        let id = format!("in{i}");
        let info = g.value(v);
        let _ = writeln!(
            out,
            "  {id} [label=\"%{}\\n{}\", shape=ellipse, style=filled, fillcolor=\"#dbe8fb\"];",
            esc(&info.name),
            info.ty
        );
        sources.insert(v, id);
    }
    emit_nodes(&mut out, g, g, "n", &mut sources, 1);
    for (i, &v) in g.outputs.iter().enumerate() {
        let id = format!("out{i}");
        let info = g.value(v);
        let _ = writeln!(
            out,
            "  {id} [label=\"%{}\\n{}\", shape=ellipse, style=filled, fillcolor=\"#dcf3dc\"];",
            esc(&info.name),
            info.ty
        );
        if let Some(src) = sources.get(&v) {
            let _ = writeln!(out, "  {src} -> {id};");
        }
    }
    out.push_str("}\n");
    out
}

/// Emits the nodes of `level` (the top graph or a body) with ids prefixed
/// by `prefix`, edges from `sources`, and records where each result comes
/// from. `top` holds the weights constants refer to.
fn emit_nodes(
    out: &mut String,
    top: &Graph,
    level: &Graph,
    prefix: &str,
    sources: &mut Sources,
    depth: usize,
) {
    let pad = "  ".repeat(depth);
    for (i, node) in level.nodes.iter().enumerate() {
        let id = format!("{prefix}{i}");
        if let Some(body) = &node.body {
            // A cluster holding the body, its inputs bound to our operands.
            let kind = match node.attrs.get("kind") {
                Some(crate::attr::Attr::Str(k)) => k.clone(),
                _ => String::new(),
            };
            let results: Vec<String> = node
                .outputs
                .iter()
                .map(|&v| format!("%{}", level.value(v).name))
                .collect();
            let _ = writeln!(out, "{pad}subgraph cluster_{id} {{");
            let _ = writeln!(
                out,
                "{pad}  label=\"{} {}\\n{}\";",
                node.op.name(),
                esc(&kind),
                esc(&results.join(", "))
            );
            let _ = writeln!(
                out,
                "{pad}  style=\"rounded,filled\"; fillcolor=\"#fff4d6\"; color=\"#c98a00\";"
            );
            let mut inner = Sources::new();
            for (&b, outer) in body.inputs.iter().zip(&node.inputs) {
                if let Some(src) = outer.and_then(|o| sources.get(&o)) {
                    inner.insert(b, src.clone());
                }
            }
            emit_nodes(out, top, body, &format!("{id}_"), &mut inner, depth + 1);
            let _ = writeln!(out, "{pad}}}");
            for (&r, &b) in node.outputs.iter().zip(&body.outputs) {
                if let Some(src) = inner.get(&b) {
                    sources.insert(r, src.clone());
                }
            }
            continue;
        }
        let types: Vec<String> = node
            .outputs
            .iter()
            .map(|&v| level.value(v).ty.to_string())
            .collect();
        if node.op == OpKind::Constant {
            let w = match node.attrs.get("value") {
                Some(crate::attr::Attr::Weight(w)) if (w.0 as usize) < top.weights().len() => {
                    format!("@{}", top.weight(*w).name)
                }
                _ => "constant".to_string(),
            };
            let _ = writeln!(
                out,
                "{pad}{id} [label=\"{}\\n{}\", shape=note, style=filled, fillcolor=\"#eeeeee\", fontsize=8];",
                esc(&w),
                types.join(", ")
            );
        } else {
            let mut attrs = attrs_text(top, &node.attrs);
            if attrs.chars().count() > MAX_ATTR_CHARS {
                attrs = attrs.chars().take(MAX_ATTR_CHARS).collect::<String>() + "...}";
            }
            let names: Vec<String> = node
                .outputs
                .iter()
                .map(|&v| format!("%{}", level.value(v).name))
                .collect();
            let _ = writeln!(
                out,
                "{pad}{id} [label=\"{}{}\\n{} : {}\"];",
                node.op.name(),
                esc(&attrs),
                esc(&names.join(", ")),
                types.join(", ")
            );
        }
        for v in node.operands() {
            if let Some(src) = sources.get(&v) {
                let _ = writeln!(out, "{pad}{src} -> {id};");
            }
        }
        for &v in &node.outputs {
            sources.insert(v, id.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse;

    fn dot(src: &str) -> String {
        match parse(src, "t.kir", None) {
            Ok(p) => print_dot(&p.graph),
            Err(e) => panic!("{}", e[0]),
        }
    }

    #[test]
    fn nodes_edges_and_interface() {
        let d = dot("weight @w : tensor<2xf32> = dense<[1.0, 2.0]>
graph @g(%x: tensor<2xf32>) -> (tensor<2xf32>) {
  %w = nn.constant {value = @w} : tensor<2xf32>
  %a = nn.add %x, %w : tensor<2xf32>
  %y = nn.leaky_relu %a {alpha = 0.5} : tensor<2xf32>
  return %y
}");
        assert!(d.starts_with("digraph \"g\" {\n"), "{d}");
        assert!(
            d.contains("in0 [label=\"%x\\ntensor<2xf32>\", shape=ellipse"),
            "{d}"
        );
        assert!(
            d.contains("n0 [label=\"@w\\ntensor<2xf32>\", shape=note"),
            "{d}"
        );
        assert!(
            d.contains("n1 [label=\"nn.add\\n%a : tensor<2xf32>\"];"),
            "{d}"
        );
        assert!(
            d.contains("n2 [label=\"nn.leaky_relu {alpha = 0.5}\\n%y : tensor<2xf32>\"];"),
            "{d}"
        );
        for edge in ["in0 -> n1;", "n0 -> n1;", "n1 -> n2;", "n2 -> out0;"] {
            assert!(d.contains(edge), "{edge} missing:\n{d}");
        }
        assert!(d.ends_with("}\n"));
    }

    #[test]
    fn fused_nodes_are_clusters_of_their_body() {
        let d = dot(
            "graph @g(%x: tensor<5x2xf32>, %k: tensor<2x3xf32>) -> (tensor<5x3xf32>) {
  %y = nn.fused %x, %k {kind = \"epilogue\"} : tensor<5x3xf32> {
    ^(%a: tensor<5x2xf32>, %b: tensor<2x3xf32>):
    %m = nn.matmul %a, %b : tensor<5x3xf32>
    %r = nn.relu %m : tensor<5x3xf32>
    return %r
  }
  %z = nn.exp %y : tensor<5x3xf32>
  return %z
}",
        );
        assert!(d.contains("subgraph cluster_n0 {"), "{d}");
        assert!(d.contains("label=\"nn.fused epilogue\\n%y\";"), "{d}");
        // Operands flow into the body; the body's result to the outer user.
        for edge in [
            "in0 -> n0_0;",
            "in1 -> n0_0;",
            "n0_0 -> n0_1;",
            "n0_1 -> n1;",
            "n1 -> out0;",
        ] {
            assert!(d.contains(edge), "{edge} missing:\n{d}");
        }
        assert!(
            !d.contains("  n0 ["),
            "the fused node itself is a cluster:\n{d}"
        );
    }

    #[test]
    fn names_are_escaped() {
        let d = dot(
            "graph @\"a\\\"b\"(%\"x\\\"y\": tensor<2xf32>) -> (tensor<2xf32>) {
  %y = nn.relu %\"x\\\"y\" : tensor<2xf32>
  return %y
}",
        );
        assert!(d.starts_with("digraph \"a\\\"b\" {"), "{d}");
        assert!(d.contains("label=\"%x\\\"y\\n"), "{d}");
    }
}
