//! Tests of `fold-batch-norm`: each fold checked with the interpreter
//! before and after on random inputs, and the folded weights checked to be
//! derived (computed lazily), never copied.

use super::*;
use crate::passes::testutil::{assert_unchanged, check_pass, graph, ops, weight};
use kiln_ir::text::print;
use kiln_ir::WeightData;

/// Batch norm parameters `@g @b @m @v` for `c` channels.
fn bn_weights(c: u64) -> String {
    weight("g", &[c], 1, 1.0, false)
        + &weight("b", &[c], 2, 0.0, false)
        + &weight("m", &[c], 3, 0.0, false)
        + &weight("v", &[c], 4, 0.5, true)
}

const BN_CONSTS: &str = "  %g = nn.constant {value = @g} : tensor<CxF>
  %b = nn.constant {value = @b} : tensor<CxF>
  %m = nn.constant {value = @m} : tensor<CxF>
  %v = nn.constant {value = @v} : tensor<CxF>
";

fn bn_consts(c: u64) -> String {
    BN_CONSTS.replace("CxF", &format!("{c}xf32"))
}

/// Asserts that every weight the pass added is derived, a small shape or
/// scalar, or one the graph had.
fn assert_nothing_copied(before: &Graph, after: &Graph) {
    for w in after.weights() {
        let existed = before.weight_by_name(&w.name).is_some();
        let small = w.ty.numel().is_some_and(|n| n <= 4) && w.ty.rank() <= 1;
        assert!(
            existed || small || matches!(w.data, WeightData::Derived(_)),
            "weight {} was computed eagerly",
            w.name
        );
    }
}

fn check(src: &str) -> Graph {
    let after = check_pass(&FoldBatchNorm::default(), src);
    assert_nothing_copied(&graph(src), &after);
    after
}

#[test]
fn conv_and_batch_norm() {
    for (bias, bias_use) in [("", ""), (&weight("cb", &[4], 5, 0.0, false)[..], ", %cb")] {
        let src = format!(
            "{}{}{bias}graph @t(%x: tensor<2x3x6x5xf32>) -> (tensor<2x4x6x5xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<4x3x3x3xf32>
{}{}  %c = nn.conv %x, %w{bias_use} {{pads = [1, 1, 1, 1]}} : tensor<2x4x6x5xf32>
  %n = nn.batch_norm %c, %g, %b, %m, %v {{epsilon = 0.001}} : tensor<2x4x6x5xf32>
  %y = nn.relu %n : tensor<2x4x6x5xf32>
  return %y
}}",
            weight("w", &[4, 3, 3, 3], 9, 0.0, false),
            bn_weights(4),
            bn_consts(4),
            if bias.is_empty() {
                ""
            } else {
                "  %cb = nn.constant {value = @cb} : tensor<4xf32>\n"
            }
        );
        let g = check(&src);
        let text = print(&g);
        assert_eq!(ops(&g), [OpKind::Conv, OpKind::Relu], "{text}");
        assert!(
            text.contains(
                "weight @w.folded_w : tensor<4x3x3x3xf32> = derived<nn.mul>(@w, @w.scale_w)"
            ),
            "{text}"
        );
        assert!(text.contains("derived<nn.div>(@g, @w.bn_std)"), "{text}");
    }
}

/// A chain conv -> mul [C,1,1] -> add [1,C,1,1] -> div scalar folds into
/// one conv; grouped and depthwise convolutions scale per output channel.
#[test]
fn affine_chains_and_groups() {
    for (group, cin) in [(1u64, 4u64), (2, 4), (4, 4)] {
        let src = format!(
            "{}{}{}{}graph @t(%x: tensor<1x4x5x5xf32>) -> (tensor<1x4x5x5xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<4x{ci}x1x1xf32>
  %s = nn.constant {{value = @s}} : tensor<4x1x1xf32>
  %o = nn.constant {{value = @o}} : tensor<1x4x1x1xf32>
  %d = nn.constant {{value = @d}} : tensor<f32>
  %c = nn.conv %x, %w {{group = {group}}} : tensor<1x4x5x5xf32>
  %p = nn.mul %s, %c : tensor<1x4x5x5xf32>
  %q = nn.add %p, %o : tensor<1x4x5x5xf32>
  %y = nn.div %q, %d : tensor<1x4x5x5xf32>
  return %y
}}",
            weight("w", &[4, cin / group, 1, 1], 11, 0.0, false),
            weight("s", &[4, 1, 1], 12, 0.0, false),
            weight("o", &[1, 4, 1, 1], 13, 0.0, false),
            weight("d", &[], 14, 3.0, true),
            ci = cin / group,
        );
        let g = check(&src);
        assert_eq!(ops(&g), [OpKind::Conv], "{}", print(&g));
    }
}

#[test]
fn nhwc_conv_scales_the_last_axis() {
    let src = format!(
        "{}{}graph @t(%x: tensor<1x5x5x3xf32>) -> (tensor<1x5x5x2xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<2x3x3x3xf32>
  %s = nn.constant {{value = @s}} : tensor<2xf32>
  %c = nn.conv %x, %w {{layout = \"nhwc\", pads = [1, 1, 1, 1]}} : tensor<1x5x5x2xf32>
  %y = nn.sub %c, %s : tensor<1x5x5x2xf32>
  return %y
}}",
        weight("w", &[2, 3, 3, 3], 21, 0.0, false),
        weight("s", &[2], 22, 0.0, false),
    );
    let g = check(&src);
    assert_eq!(ops(&g), [OpKind::Conv], "{}", print(&g));
}

#[test]
fn conv_transpose_and_batch_norm() {
    let src = format!(
        "{}{}graph @t(%x: tensor<1x3x4x4xf32>) -> (tensor<1x5x9x9xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<3x5x3x3xf32>
{}  %c = nn.conv_transpose %x, %w {{strides = [2, 2]}} : tensor<1x5x9x9xf32>
  %y = nn.batch_norm %c, %g, %b, %m, %v : tensor<1x5x9x9xf32>
  return %y
}}",
        weight("w", &[3, 5, 3, 3], 31, 0.0, false),
        bn_weights(5),
        bn_consts(5)
    );
    let g = check(&src);
    assert_eq!(ops(&g), [OpKind::ConvTranspose], "{}", print(&g));
}

#[test]
fn gemm_and_matmul() {
    // Gemm with trans_b, a bias and beta != 1, then a batch norm.
    let gemm = format!(
        "{}{}{}graph @t(%x: tensor<3x7xf32>) -> (tensor<3x4xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<4x7xf32>
  %cb = nn.constant {{value = @cb}} : tensor<4xf32>
{}  %c = nn.gemm %x, %w, %cb {{alpha = 0.5, beta = 2.0, trans_b = true}} : tensor<3x4xf32>
  %y = nn.batch_norm %c, %g, %b, %m, %v : tensor<3x4xf32>
  return %y
}}",
        weight("w", &[4, 7], 41, 0.0, false),
        weight("cb", &[4], 42, 0.0, false),
        bn_weights(4),
        bn_consts(4)
    );
    let g = check(&gemm);
    assert_eq!(ops(&g), [OpKind::Gemm], "{}", print(&g));
    // A 2-D MatMul with a batch norm becomes a Gemm with the shift as C.
    let mm = format!(
        "{}{}graph @t(%x: tensor<3x7xf32>) -> (tensor<3x4xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<7x4xf32>
{}  %c = nn.matmul %x, %w : tensor<3x4xf32>
  %y = nn.batch_norm %c, %g, %b, %m, %v : tensor<3x4xf32>
  return %y
}}",
        weight("w", &[7, 4], 43, 0.0, false),
        bn_weights(4),
        bn_consts(4)
    );
    let g = check(&mm);
    assert_eq!(ops(&g), [OpKind::Gemm], "{}", print(&g));
    // A batched MatMul times a per-column constant.
    let bmm = format!(
        "{}{}graph @t(%x: tensor<2x3x7xf32>) -> (tensor<2x3x4xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<7x4xf32>
  %s = nn.constant {{value = @s}} : tensor<1x4xf32>
  %c = nn.matmul %x, %w : tensor<2x3x4xf32>
  %y = nn.mul %c, %s : tensor<2x3x4xf32>
  return %y
}}",
        weight("w", &[7, 4], 44, 0.0, false),
        weight("s", &[1, 4], 45, 0.0, false),
    );
    let g = check(&bmm);
    assert_eq!(ops(&g), [OpKind::MatMul], "{}", print(&g));
}

#[test]
fn what_must_stay() {
    let conv = |tail: &str, outs: &str, ret: &str, extra_in: &str| {
        format!(
            "{}{}graph @t(%x: tensor<1x2x3x3xf32>{extra_in}) -> ({outs}) {{
  %w = nn.constant {{value = @w}} : tensor<2x2x1x1xf32>
  %s = nn.constant {{value = @s}} : tensor<1x1x3x3xf32>
  %c = nn.conv %x, %w : tensor<1x2x3x3xf32>
{tail}  return {ret}
}}",
            weight("w", &[2, 2, 1, 1], 51, 0.0, false),
            weight("s", &[1, 1, 3, 3], 52, 0.0, false)
        )
    };
    let t = "tensor<1x2x3x3xf32>";
    let cases = [
        // The conv result is also returned.
        conv(
            &format!("  %y = nn.mul %c, %s : {t}\n"),
            &format!("{t}, {t}"),
            "%y, %c",
            "",
        ),
        // A constant that varies over space is not per channel.
        conv(&format!("  %y = nn.mul %c, %s : {t}\n"), t, "%y", ""),
        // A runtime factor.
        conv(
            &format!("  %y = nn.mul %c, %r : {t}\n"),
            t,
            "%y",
            ", %r: tensor<2x1x1xf32>",
        ),
        // An addition after a MatMul is the epilogue's, not a fold.
        format!(
            "{}{}graph @t(%x: tensor<3x7xf32>) -> (tensor<3x4xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<7x4xf32>
  %s = nn.constant {{value = @s}} : tensor<4xf32>
  %c = nn.matmul %x, %w : tensor<3x4xf32>
  %y = nn.add %c, %s : tensor<3x4xf32>
  return %y
}}",
            weight("w", &[7, 4], 53, 0.0, false),
            weight("s", &[4], 54, 0.0, false)
        ),
    ];
    for src in cases {
        assert_unchanged(&FoldBatchNorm::default(), &src);
    }
}

/// A batch norm after a `quant.conv` with f32 block scales folds into the
/// scales (each output channel's row times its factor; the codes stay) and
/// the bias, with and without a bias first; E8M0 scales (MXFP4) would round
/// and stay.
#[test]
fn quantized_conv_and_batch_norm() {
    let quant = |scheme: &str, code: &str, scale: &str, bias: bool| {
        let part = |p: &str, ty: &str| {
            format!(
                "weight @w.{p} : {ty} = derived<quant.quantize_weight {{axis = 1, block_size = 32, part = \"{p}\", scheme = \"{scheme}\"}}>(@w)\n"
            )
        };
        let (codes, scales) = (
            format!("tensor<4x32x{code}>"),
            format!("tensor<4x1x{scale}>"),
        );
        let (bias_w, bias_c, bias_use) = if bias {
            (
                weight("cb", &[4], 5, 0.0, false),
                "  %cb = nn.constant {value = @cb} : tensor<4xf32>\n",
                ", none, %cb",
            )
        } else {
            (String::new(), "", "")
        };
        format!(
            "{}{}{}{}{bias_w}graph @t(%x: tensor<2x3x6x5xf32>) -> (tensor<2x4x6x5xf32>) {{
  %c = nn.constant {{value = @w.codes}} : {codes}
  %s = nn.constant {{value = @w.scales}} : {scales}
{}{bias_c}  %q = quant.conv %x, %c, %s{bias_use} {{block_size = 32, kernel_shape = [3, 3], pads = [1, 1, 1, 1]}} : tensor<2x4x6x5xf32>
  %n = nn.batch_norm %q, %g, %b, %m, %v {{epsilon = 0.001}} : tensor<2x4x6x5xf32>
  %y = nn.relu %n : tensor<2x4x6x5xf32>
  return %y
}}",
            weight("w", &[4, 27], 9, 0.0, false),
            part("codes", &codes),
            part("scales", &scales),
            bn_weights(4),
            bn_consts(4),
        )
    };
    for bias in [false, true] {
        let g = check(&quant("nf4", "nf4", "f32", bias));
        let text = print(&g);
        assert_eq!(ops(&g), [OpKind::QConv, OpKind::Relu], "{text}");
        assert!(text.contains("folded_scales"), "{text}");
    }
    let src = quant("mxfp4", "f4e2m1", "f8e8m0", true);
    let g = check(&src);
    assert_eq!(
        ops(&g),
        [OpKind::QConv, OpKind::BatchNorm, OpKind::Relu],
        "{}",
        print(&g)
    );
}
