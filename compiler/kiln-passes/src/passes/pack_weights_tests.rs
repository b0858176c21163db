//! Tests of `pack-weights`, each checked with the interpreter before and
//! after on random inputs (the interpreter unpacks what the pass packed).

use super::*;
use crate::pass::TargetFacts;
use crate::passes::fuse_epilogue::FuseEpilogue;
use crate::passes::testutil::{assert_unchanged, check_graph, check_pass_with, graph, ops, weight};
use kiln_ir::ops::layout::DataLayout;
use kiln_ir::text::print;
use kiln_ir::WeightData;

fn facts(nr: u64) -> PassOptions {
    PassOptions {
        target: TargetFacts {
            conv_layout: DataLayout::Nhwc,
            gemm_nr: nr,
            pack_depthwise: true,
            ..TargetFacts::default()
        },
        ..PassOptions::default()
    }
}

fn check(src: &str, nr: u64) -> Graph {
    check_pass_with(&PackWeights::default(), src, &facts(nr), &|_, _, _| None)
}

/// The derivations of the packed weights: layout names.
fn packed(g: &Graph) -> Vec<String> {
    g.weights()
        .iter()
        .filter_map(|w| match &w.data {
            WeightData::Derived(d) if d.op == OpKind::Pack => match d.attrs.get("layout") {
                Some(Attr::Str(s)) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn matmul_and_gemm_weights_become_panels() {
    // N = 5 is not a multiple of NR = 4: the last panel is padded.
    let src = format!(
        "{}graph @t(%x: tensor<2x3x7xf32>) -> (tensor<2x3x5xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<7x5xf32>
  %y = nn.matmul %x, %w : tensor<2x3x5xf32>
  return %y
}}",
        weight("w", &[7, 5], 1, 0.0, false)
    );
    let g = check(&src, 4);
    let text = print(&g);
    assert!(
        text.contains("weight @w.gemm_b : tensor<2x7x4xf32> = derived<nn.pack {block = 4, groups = 1, layout = \"gemm_b\"}>(@w)"),
        "{text}"
    );
    assert!(
        text.contains("nn.unpack %w.gemm_b {block = 4, groups = 1, layout = \"gemm_b\", shape = [7, 5]} : tensor<7x5xf32>"),
        "{text}"
    );
    // Gemm with transposed weights: transposed in the derivation, trans_b off.
    let src = format!(
        "{}{}graph @t(%x: tensor<3x7xf32>) -> (tensor<3x5xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<5x7xf32>
  %b = nn.constant {{value = @b}} : tensor<5xf32>
  %y = nn.gemm %x, %w, %b {{trans_b = true}} : tensor<3x5xf32>
  return %y
}}",
        weight("w", &[5, 7], 2, 0.0, false),
        weight("b", &[5], 3, 0.0, false)
    );
    let g = check(&src, 16);
    let text = print(&g);
    assert!(
        text.contains("derived<nn.transpose {perm = [1, 0]}>(@w)"),
        "{text}"
    );
    assert!(text.contains("{trans_b = false}"), "{text}");
    assert_eq!(packed(&g), ["gemm_b"]);
}

#[test]
fn nhwc_convolutions_and_depthwise() {
    let src = format!(
        "{}{}graph @t(%x: tensor<1x5x5x4xf32>) -> (tensor<1x5x5x6xf32>) {{
  %wd = nn.constant {{value = @wd}} : tensor<4x1x3x3xf32>
  %w = nn.constant {{value = @w}} : tensor<6x2x1x1xf32>
  %d = nn.conv %x, %wd {{group = 4, layout = \"nhwc\", pads = [1, 1, 1, 1]}} : tensor<1x5x5x4xf32>
  %y = nn.conv %d, %w {{group = 2, layout = \"nhwc\"}} : tensor<1x5x5x6xf32>
  return %y
}}",
        weight("wd", &[4, 1, 3, 3], 4, 0.0, false),
        weight("w", &[6, 2, 1, 1], 5, 0.0, false)
    );
    let g = check(&src, 4);
    assert_eq!(packed(&g), ["dwconv_nhwc", "conv_nhwc"], "{}", print(&g));
    assert_eq!(
        ops(&g),
        [OpKind::Unpack, OpKind::Conv, OpKind::Unpack, OpKind::Conv]
    );
}

/// Inside an epilogue, the unpack goes in front of the fused node.
#[test]
fn fused_epilogues_get_their_weights_packed() {
    let src = format!(
        "{}graph @t(%x: tensor<4x6xf32>) -> (tensor<4x3xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<3x6xf32>
  %m = nn.gemm %x, %w {{trans_b = true}} : tensor<4x3xf32>
  %y = nn.relu %m : tensor<4x3xf32>
  return %y
}}",
        weight("w", &[3, 6], 6, 0.0, false)
    );
    let mut g = graph(&src);
    FuseEpilogue::default()
        .run(&mut g, &PassOptions::default())
        .unwrap();
    let g = check_graph(&PackWeights::default(), g, &facts(8), &|_, _, _| None);
    let text = print(&g);
    assert_eq!(ops(&g), [OpKind::Unpack, OpKind::Fused], "{text}");
    assert!(text.contains("nn.gemm %x, %w {trans_b = false}"), "{text}");
}

#[test]
fn what_must_stay() {
    let nchw = format!(
        "{}graph @t(%x: tensor<1x2x3x3xf32>) -> (tensor<1x2x3x3xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<2x2x1x1xf32>
  %y = nn.conv %x, %w : tensor<1x2x3x3xf32>
  return %y
}}",
        weight("w", &[2, 2, 1, 1], 7, 0.0, false)
    );
    // NCHW convolutions have no packed kernel.
    let mut g = graph(&nchw);
    let before = print(&g);
    PackWeights::default().run(&mut g, &facts(8)).unwrap();
    assert_eq!(print(&g), before);
    // Default target facts: nothing is packed.
    assert_unchanged(
        &PackWeights::default(),
        "graph @t(%x: tensor<2x3xf32>) -> (tensor<2x2xf32>) {
  %w = nn.constant {value = @w} : tensor<3x2xf32>
  %y = nn.matmul %x, %w : tensor<2x2xf32>
  return %y
}"
        .replace(
            "graph",
            "weight @w : tensor<3x2xf32> = dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]>\ngraph",
        )
        .as_str(),
    );
}
