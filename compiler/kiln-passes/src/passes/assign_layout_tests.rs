//! Tests of `assign-layout`, each checked with the interpreter before and
//! after on random inputs.

use super::*;
use crate::pass::TargetFacts;
use crate::passes::fold_batch_norm::FoldBatchNorm;
use crate::passes::models;
use crate::passes::testutil::{assert_unchanged, check_graph, graph, ops, weight};
use kiln_ir::text::print;

fn nhwc() -> PassOptions {
    PassOptions {
        target: TargetFacts {
            conv_layout: DataLayout::Nhwc,
            ..TargetFacts::default()
        },
        ..PassOptions::default()
    }
}

fn transposes(g: &Graph) -> usize {
    ops(g).iter().filter(|&&o| o == OpKind::Transpose).count()
}

fn layouts(g: &Graph) -> Vec<DataLayout> {
    g.nodes
        .iter()
        .filter(|n| n.op.def().attr_spec("layout").is_some() && n.op != OpKind::Pack)
        .filter_map(|n| pattern::enum_attr::<DataLayout>(n, "layout"))
        .collect()
}

/// A ResNet block: every conv and the pool run in NHWC; one transpose
/// remains, at the graph input; the pooled result goes back through a
/// free reshape to the NCHW Flatten and Gemm.
#[test]
fn resnet_block_runs_in_nhwc() {
    let mut g = graph(&models::resnet_block(4, 5, 3));
    FoldBatchNorm::default()
        .run(&mut g, &PassOptions::default())
        .unwrap();
    let after = check_graph(&AssignLayout::default(), g, &nhwc(), &|_, _, _| None);
    let text = print(&after);
    assert_eq!(layouts(&after), [DataLayout::Nhwc; 3], "{text}");
    assert_eq!(transposes(&after), 1, "{text}");
    assert!(
        text.contains("nn.transpose %x {perm = [0, 2, 3, 1]}"),
        "{text}"
    );
}

/// Unfolded batch norms become per-channel affine ops that the layout
/// passes through; relu6 (Clip) and the residual add too.
#[test]
fn mobilenet_block_with_batch_norms_runs_in_nhwc() {
    let g = graph(&models::mobilenet_block(3, 2, 5));
    let after = check_graph(&AssignLayout::default(), g, &nhwc(), &|_, _, _| None);
    let text = print(&after);
    assert_eq!(layouts(&after), [DataLayout::Nhwc; 3], "{text}");
    assert!(!ops(&after).contains(&OpKind::BatchNorm), "{text}");
    // In at the input, out at the output.
    assert_eq!(transposes(&after), 2, "{text}");
}

/// Two branches concatenated on channels, then a max pool: the
/// concatenation moves to the NHWC channel axis.
#[test]
fn channel_concatenation_stays_in_nhwc() {
    let src = format!(
        "{}{}graph @t(%x: tensor<1x3x6x6xf32>) -> (tensor<1x7x3x3xf32>) {{
  %wa = nn.constant {{value = @wa}} : tensor<4x3x1x1xf32>
  %wb = nn.constant {{value = @wb}} : tensor<3x3x3x3xf32>
  %a = nn.conv %x, %wa : tensor<1x4x6x6xf32>
  %b = nn.conv %x, %wb {{pads = [1, 1, 1, 1]}} : tensor<1x3x6x6xf32>
  %ra = nn.relu %a : tensor<1x4x6x6xf32>
  %c = nn.concat %ra, %b {{axis = 1}} : tensor<1x7x6x6xf32>
  %y = nn.max_pool %c {{kernel_shape = [2, 2], strides = [2, 2]}} : tensor<1x7x3x3xf32>
  return %y
}}",
        weight("wa", &[4, 3, 1, 1], 1, 0.0, false),
        weight("wb", &[3, 3, 3, 3], 2, 0.0, false)
    );
    let after = check_graph(
        &AssignLayout::default(),
        graph(&src),
        &nhwc(),
        &|_, _, _| None,
    );
    let text = print(&after);
    assert!(
        text.contains("nn.concat") && text.contains("{axis = 3}"),
        "{text}"
    );
    assert_eq!(transposes(&after), 2, "{text}");
}

#[test]
fn nothing_without_an_nhwc_target() {
    assert_unchanged(&AssignLayout::default(), &models::resnet_block(2, 3, 2));
}
