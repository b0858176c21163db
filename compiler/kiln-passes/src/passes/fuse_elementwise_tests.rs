//! Tests of `fuse-elementwise`, each checked with the interpreter before
//! and after on random inputs.

use super::*;
use crate::pass::Pass;
use crate::passes::fuse_epilogue::FuseEpilogue;
use crate::passes::models;
use crate::passes::testutil::{
    assert_unchanged, check_graph, check_pass, graph, ops, padding_mask,
};
use kiln_ir::text::print;

/// The fused nodes of `g`: kind, body ops, number of results.
fn fused(g: &Graph) -> Vec<(String, Vec<OpKind>, usize)> {
    g.nodes
        .iter()
        .filter_map(|n| {
            let body = n.body.as_ref()?;
            let kind = match n.attrs.get("kind") {
                Some(kiln_ir::Attr::Str(k)) => k.clone(),
                _ => String::new(),
            };
            Some((
                kind,
                body.nodes.iter().map(|b| b.op).collect(),
                n.outputs.len(),
            ))
        })
        .collect()
}

#[test]
fn a_chain_becomes_one_node() {
    let src = "weight @c : tensor<5xf32> = dense<[1.0, 2.0, 3.0, 4.0, 5.0]>
graph @t(%x: tensor<3x5xf32>) -> (tensor<3x5xf32>) {
  %c = nn.constant {value = @c} : tensor<5xf32>
  %a = nn.mul %x, %c : tensor<3x5xf32>
  %b = nn.tanh %a : tensor<3x5xf32>
  %d = nn.sub %b, %x : tensor<3x5xf32>
  %y = nn.abs %d : tensor<3x5xf32>
  return %y
}";
    let g = check_pass(&FuseElementwise::default(), src);
    assert_eq!(
        fused(&g),
        [(
            "elementwise".to_string(),
            vec![OpKind::Mul, OpKind::Tanh, OpKind::Sub, OpKind::Abs],
            1
        )],
        "{}",
        print(&g)
    );
    assert_eq!(ops(&g), [OpKind::Fused]);
}

/// A DAG with a value used inside the group twice and returned: one node,
/// the returned intermediate an extra result (computed once).
#[test]
fn multi_use_values_become_results() {
    let src = "graph @t(%x: tensor<4x6xf32>) -> (tensor<4x6xf32>, tensor<4x6xf32>) {
  %a = nn.exp %x : tensor<4x6xf32>
  %b = nn.sin %a : tensor<4x6xf32>
  %c = nn.cos %a : tensor<4x6xf32>
  %d = nn.add %b, %c : tensor<4x6xf32>
  %y = nn.mul %a, %d : tensor<4x6xf32>
  return %y, %a
}";
    let g = check_pass(&FuseElementwise::default(), src);
    let f = fused(&g);
    assert_eq!(f.len(), 1, "{}", print(&g));
    assert_eq!(f[0].1.iter().filter(|&&o| o == OpKind::Exp).count(), 1);
    assert_eq!(f[0].2, 2, "{}", print(&g));
    let text = print(&g);
    assert!(
        text.contains("%a, %y = nn.fused %x {kind = \"elementwise\"}"),
        "{text}"
    );
}

/// A small producer broadcast into a larger result stays outside: fused
/// into the larger loop it would be recomputed for every row.
#[test]
fn no_fusion_across_a_broadcast() {
    let src = "graph @t(%v: tensor<7xf32>, %m: tensor<5x7xf32>) -> (tensor<5x7xf32>) {
  %e = nn.erf %v : tensor<7xf32>
  %s = nn.sqrt %e : tensor<7xf32>
  %a = nn.add %m, %s : tensor<5x7xf32>
  %y = nn.relu %a : tensor<5x7xf32>
  return %y
}";
    let g = check_pass(&FuseElementwise::default(), src);
    let f = fused(&g);
    assert_eq!(f.len(), 2, "{}", print(&g));
    assert!(f.iter().any(|(_, b, _)| b == &[OpKind::Erf, OpKind::Sqrt]));
    assert!(f.iter().any(|(_, b, _)| b == &[OpKind::Add, OpKind::Relu]));
}

/// `b = a + matmul(a, w)`: the MatMul sits between a and b, so a group
/// {a, b} would read its own output through the MatMul.
#[test]
fn groups_stay_convex() {
    let src = "graph @t(%x: tensor<4x4xf32>, %w: tensor<4x4xf32>) -> (tensor<4x4xf32>) {
  %a = nn.exp %x : tensor<4x4xf32>
  %m = nn.matmul %a, %w : tensor<4x4xf32>
  %b = nn.add %a, %m : tensor<4x4xf32>
  %y = nn.neg %b : tensor<4x4xf32>
  return %y
}";
    let g = check_pass(&FuseElementwise::default(), src);
    assert_eq!(
        fused(&g),
        [("elementwise".to_string(), vec![OpKind::Add, OpKind::Neg], 1)],
        "{}",
        print(&g)
    );
}

/// BERT with the GELU spelled out: after fuse-epilogue, the GELU's five
/// ops form one elementwise node; no node holding a MatMul holds an erf,
/// and erf appears exactly once (issue 10: 768 erf per element when MLIR
/// pulled it into the next MatMul's reduction loop).
#[test]
fn bert_gelu_is_one_elementwise_node_outside_every_matmul() {
    let mut g = graph(&models::bert_layer(1, 5, 2, 4, 12));
    FuseEpilogue::default()
        .run(&mut g, &PassOptions::default())
        .unwrap();
    let g = check_graph(
        &FuseElementwise::default(),
        g,
        &PassOptions::default(),
        &padding_mask,
    );
    let f = fused(&g);
    let erfs: usize = f
        .iter()
        .map(|(_, b, _)| b.iter().filter(|&&o| o == OpKind::Erf).count())
        .sum();
    assert_eq!(erfs, 1, "{}", print(&g));
    for (_, body, _) in &f {
        if body.contains(&OpKind::MatMul) {
            assert!(!body.contains(&OpKind::Erf), "{body:?}");
        }
    }
    assert!(
        f.iter().any(|(k, b, _)| k == "elementwise"
            && b == &[
                OpKind::Div,
                OpKind::Erf,
                OpKind::Add,
                OpKind::Mul,
                OpKind::Mul
            ]),
        "{f:?}"
    );
}

#[test]
fn what_must_stay() {
    // One elementwise op alone, and ops separated by a reduction.
    assert_unchanged(
        &FuseElementwise::default(),
        "weight @ax : tensor<1xi64> = dense<[1]>
graph @t(%x: tensor<3x4xf32>) -> (tensor<3x1xf32>) {
  %ax = nn.constant {value = @ax} : tensor<1xi64>
  %a = nn.exp %x : tensor<3x4xf32>
  %s = nn.reduce_sum %a, %ax : tensor<3x1xf32>
  %y = nn.log %s : tensor<3x1xf32>
  return %y
}",
    );
}
