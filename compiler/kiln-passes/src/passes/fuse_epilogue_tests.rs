//! Tests of `fuse-epilogue`, each checked with the interpreter before and
//! after on random inputs.

use super::*;
use crate::passes::models;
use crate::passes::testutil::{
    assert_unchanged, check_graph, check_pass, check_pass_with, graph, ops, padding_mask, weight,
};
use kiln_ir::text::print;
use kiln_ir::Node;

/// The fused nodes of `g` with the ops of their bodies.
fn bodies(g: &Graph) -> Vec<(String, Vec<OpKind>)> {
    g.nodes
        .iter()
        .filter_map(|n: &Node| {
            let body = n.body.as_ref()?;
            let kind = match n.attrs.get("kind") {
                Some(kiln_ir::Attr::Str(k)) => k.clone(),
                _ => String::new(),
            };
            Some((kind, body.nodes.iter().map(|b| b.op).collect()))
        })
        .collect()
}

#[test]
fn resnet_block_becomes_epilogues() {
    // Batch norms folded first, as in the pipeline.
    let src = models::resnet_block(4, 5, 3);
    let mut g = graph(&src);
    crate::passes::fold_batch_norm::FoldBatchNorm::default()
        .run(&mut g, &PassOptions::default())
        .unwrap();
    let after = check_graph(
        &FuseEpilogue::default(),
        g,
        &PassOptions::default(),
        &|_, _, _| None,
    );
    assert_eq!(
        bodies(&after),
        [
            ("epilogue".to_string(), vec![OpKind::Conv, OpKind::Relu]),
            (
                "epilogue".to_string(),
                vec![OpKind::Conv, OpKind::Add, OpKind::Relu]
            ),
        ],
        "{}",
        print(&after)
    );
    // The Gemm head has nothing after it.
    assert!(ops(&after).contains(&OpKind::Gemm));
}

#[test]
fn mobilenet_block_becomes_epilogues() {
    let src = models::mobilenet_block(3, 2, 5);
    let mut g = graph(&src);
    crate::passes::fold_batch_norm::FoldBatchNorm::default()
        .run(&mut g, &PassOptions::default())
        .unwrap();
    let after = check_graph(
        &FuseEpilogue::default(),
        g,
        &PassOptions::default(),
        &|_, _, _| None,
    );
    let kinds: Vec<Vec<OpKind>> = bodies(&after).into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        kinds,
        [
            vec![OpKind::Conv, OpKind::Clip],
            vec![OpKind::Conv, OpKind::Clip],
            vec![OpKind::Conv, OpKind::Add],
        ],
        "{}",
        print(&after)
    );
}

/// BERT's FFN: the GELU after the first MatMul is fused into *that*
/// MatMul's epilogue (applied once per output element), never into the
/// second MatMul it feeds (issue 10: erf recomputed inside the reduction).
#[test]
fn gelu_feeding_a_matmul_is_never_inside_it() {
    // With the GELU recognized, it joins the first epilogue.
    let src = models::bert_layer(1, 5, 2, 4, 12);
    let mut g = graph(&src);
    crate::passes::recognize_norms::RecognizeNorms::default()
        .run(&mut g, &PassOptions::default())
        .unwrap();
    let after = check_graph(
        &FuseEpilogue::default(),
        g,
        &PassOptions::default(),
        &padding_mask,
    );
    let b = bodies(&after);
    let with_gelu: Vec<&Vec<OpKind>> = b
        .iter()
        .map(|(_, ops)| ops)
        .filter(|ops| ops.contains(&OpKind::Gelu))
        .collect();
    assert_eq!(
        with_gelu,
        [&vec![OpKind::MatMul, OpKind::Add, OpKind::Gelu]]
    );
    assert_eq!(
        ops(&after).iter().filter(|&&o| o == OpKind::Gelu).count(),
        0
    );
    // The second FFN MatMul's epilogue holds its bias and the residual only.
    assert!(
        b.iter()
            .any(|(_, ops)| ops == &[OpKind::MatMul, OpKind::Add, OpKind::Add]),
        "{b:?}"
    );
    // Spelled out, the GELU reads the biased value twice: the epilogue
    // stops at the bias and the erf stays outside every MatMul's node.
    let after = check_pass_with(
        &FuseEpilogue::default(),
        &src,
        &PassOptions::default(),
        &padding_mask,
    );
    for (_, ops) in bodies(&after) {
        if ops.contains(&OpKind::MatMul) {
            assert!(!ops.contains(&OpKind::Erf), "{ops:?}");
        }
    }
    assert_eq!(ops(&after).iter().filter(|&&o| o == OpKind::Erf).count(), 1);
}

#[test]
fn chains_stop_at_the_kernel_limit_and_at_other_uses() {
    let long: String = (0..10)
        .map(|i| format!("  %a{} = nn.relu %a{i} : tensor<3x4xf32>\n", i + 1))
        .collect();
    let src = format!(
        "{}graph @t(%x: tensor<3x5xf32>) -> (tensor<3x4xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<5x4xf32>
  %a0 = nn.matmul %x, %w : tensor<3x4xf32>
{long}  return %a10
}}",
        weight("w", &[5, 4], 1, 0.0, false)
    );
    let after = check_pass(&FuseEpilogue::default(), &src);
    // 8 steps fit (the default kernel limit); the other two stay.
    assert_eq!(bodies(&after)[0].1.len(), 9, "{}", print(&after));
    assert_eq!(
        ops(&after).iter().filter(|&&o| o == OpKind::Relu).count(),
        2
    );
    // A limit from the target facts.
    let mut opts = PassOptions::default();
    opts.target.epilogue_max_ops = 2;
    let after = check_pass_with(&FuseEpilogue::default(), &src, &opts, &|_, _, _| None);
    assert_eq!(bodies(&after)[0].1.len(), 3);

    // %r is also returned: the chain ends there, and it is a result.
    let src = format!(
        "{}graph @t(%x: tensor<3x5xf32>) -> (tensor<3x4xf32>, tensor<3x4xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<5x4xf32>
  %m = nn.matmul %x, %w : tensor<3x4xf32>
  %r = nn.relu %m : tensor<3x4xf32>
  %e = nn.exp %r : tensor<3x4xf32>
  return %e, %r
}}",
        weight("w", &[5, 4], 1, 0.0, false)
    );
    let after = check_pass(&FuseEpilogue::default(), &src);
    assert_eq!(bodies(&after)[0].1, [OpKind::MatMul, OpKind::Relu]);
    assert!(print(&after).contains("%r = nn.fused"), "{}", print(&after));
}

#[test]
fn what_must_stay() {
    let cases = [
        // A convolution with runtime weights is not a kernel's contraction.
        "graph @t(%x: tensor<1x2x3x3xf32>, %w: tensor<2x2x1x1xf32>) -> (tensor<1x2x3x3xf32>) {
  %c = nn.conv %x, %w : tensor<1x2x3x3xf32>
  %y = nn.relu %c : tensor<1x2x3x3xf32>
  return %y
}"
        .to_string(),
        // The MatMul result has two users.
        "graph @t(%x: tensor<2x3xf32>, %w: tensor<3x3xf32>) -> (tensor<2x3xf32>) {
  %m = nn.matmul %x, %w : tensor<2x3xf32>
  %r = nn.relu %m : tensor<2x3xf32>
  %y = nn.add %r, %m : tensor<2x3xf32>
  return %y
}"
        .to_string(),
        // A broadcast that enlarges the result is not an epilogue step.
        "graph @t(%x: tensor<2x3xf32>, %w: tensor<3x3xf32>, %b: tensor<4x2x3xf32>) -> (tensor<4x2x3xf32>) {
  %m = nn.matmul %x, %w : tensor<2x3xf32>
  %y = nn.add %m, %b : tensor<4x2x3xf32>
  return %y
}"
        .to_string(),
        // SiLU as x * sigmoid(x) reads an earlier chain value: recognize-norms
        // makes it nn.swish first.
        "graph @t(%x: tensor<2x3xf32>, %w: tensor<3x3xf32>, %z: tensor<2x3xf32>) -> (tensor<2x3xf32>) {
  %m = nn.matmul %x, %w : tensor<2x3xf32>
  %y = nn.add %z, %z : tensor<2x3xf32>
  return %y
}"
        .to_string(),
    ];
    for src in cases {
        assert_unchanged(&FuseEpilogue::default(), &src);
    }
}

#[test]
fn int8_products_take_their_cast_and_scale() {
    // ORT's dynamic quantization: MatMulInteger, Cast to f32, scale, bias, one epilogue.
    let src = "weight @w : tensor<4x3xi8> = dense<[1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -128]>
weight @b : tensor<3xf32> = dense<[0.5, -1.0, 2.0]>
graph @t(%a: tensor<2x4xu8>, %za: tensor<u8>, %s: tensor<f32>) -> (tensor<2x3xf32>, tensor<2x3xi32>) {
  %w = nn.constant {value = @w} : tensor<4x3xi8>
  %b = nn.constant {value = @b} : tensor<3xf32>
  %p = quant.matmul_integer %a, %w, %za : tensor<2x3xi32>
  %f = nn.cast %p {to = f32} : tensor<2x3xf32>
  %m = nn.mul %f, %s : tensor<2x3xf32>
  %y = nn.add %m, %b : tensor<2x3xf32>
  %q = quant.matmul_integer %a, %w : tensor<2x3xi32>
  %c = nn.cast %q {to = f32} : tensor<2x3xf32>
  %i = nn.cast %c {to = i32} : tensor<2x3xi32>
  return %y, %i
}";
    let after = check_pass(&FuseEpilogue::default(), src);
    // The second product's cast is followed by no epilogue step: it fuses alone (the kernel
    // writes f32), the cast back to i32 stays outside.
    assert_eq!(
        bodies(&after),
        [
            (
                "epilogue".to_string(),
                vec![
                    OpKind::QMatMulInteger,
                    OpKind::Cast,
                    OpKind::Mul,
                    OpKind::Add
                ]
            ),
            (
                "epilogue".to_string(),
                vec![OpKind::QMatMulInteger, OpKind::Cast]
            ),
        ],
        "{}",
        print(&after)
    );
    // Without a cast to f32 first, nothing fuses.
    let plain = "weight @w : tensor<4x3xi8> = dense<[1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -128]>
graph @t(%a: tensor<2x4xu8>) -> (tensor<2x3xi32>) {
  %w = nn.constant {value = @w} : tensor<4x3xi8>
  %p = quant.matmul_integer %a, %w : tensor<2x3xi32>
  %r = nn.relu %p : tensor<2x3xi32>
  return %r
}";
    assert_unchanged(&FuseEpilogue::default(), plain);
}
