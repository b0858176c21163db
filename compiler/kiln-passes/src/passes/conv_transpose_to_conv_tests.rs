//! Tests of `conv-transpose-to-conv`: each rewrite checked with the
//! interpreter before and after on random inputs (the interpreter's
//! transposed convolution against its convolution of the zero-inserted
//! input with the derived weight), at odd sizes: strides 1 to 3, kernels 1
//! to 5, pads beyond the kernel's reach, dilation, groups, depthwise,
//! output_padding, output_shape and every auto_pad.

use super::*;
use crate::pass::PassOptions;
use crate::passes::testutil::{assert_unchanged, check_pass_with, count, ops, weight};
use kiln_ir::text::print;

/// A one-node graph: `nn.conv_transpose` of x `[n, c, h, w]` by a constant
/// weight `[c, m / group, kh, kw]` (and a bias of `m` when `bias`), with
/// `attrs` (text) and result `out` `[h', w']`.
fn src(
    x: [u64; 4],
    m: u64,
    k: [u64; 2],
    group: u64,
    bias: bool,
    attrs: &str,
    out: [u64; 2],
) -> String {
    let [n, c, h, w] = x;
    let wshape = [c, m / group, k[0], k[1]];
    let y = format!("tensor<{n}x{m}x{}x{}xf32>", out[0], out[1]);
    format!(
        "{}{}graph @t(%x: tensor<{n}x{c}x{h}x{w}xf32>) -> ({y}) {{
  %w = nn.constant {{value = @w}} : tensor<{}x{}x{}x{}xf32>
{}  %y = nn.conv_transpose %x, %w{} {{group = {group}{attrs}}} : {y}
  return %y
}}",
        weight("w", &wshape, 3 + c + m, 0.0, false),
        if bias {
            weight("b", &[m], 5, 0.0, false)
        } else {
            String::new()
        },
        wshape[0],
        wshape[1],
        wshape[2],
        wshape[3],
        if bias {
            format!("  %b = nn.constant {{value = @b}} : tensor<{m}xf32>\n")
        } else {
            String::new()
        },
        if bias { ", %b" } else { "" },
    )
}

/// The pass with `sub_pixel`, `col2im` and the target's panel width `nr`.
fn pass_with(sub_pixel: bool, col2im: bool, nr: u64) -> (ConvTransposeToConv, PassOptions) {
    let pass = ConvTransposeToConv {
        options: Options {
            sub_pixel,
            col2im,
            ..Options::default()
        },
    };
    let mut opts = PassOptions::default();
    opts.target.gemm_nr = nr;
    (pass, opts)
}

/// Every form of a strided one (sub-pixel convolutions, one per residue
/// pair or, for outputs narrower than a panel of 64, col2im sums of one
/// 1x1 convolution's shifted slices or one convolution over a common
/// window; the zero-inserted input) against the transposed convolution.
fn check(src: &str) {
    for (sub_pixel, col2im, nr) in [
        (true, true, 0),
        (true, true, 64),
        (true, false, 64),
        (false, true, 0),
    ] {
        let (pass, opts) = pass_with(sub_pixel, col2im, nr);
        let g = check_pass_with(&pass, src, &opts, &|_, _, _| None);
        let ops = ops(&g);
        assert!(
            ops.contains(&OpKind::Conv) && !ops.contains(&OpKind::ConvTranspose),
            "{}",
            print(&g)
        );
        // The sub-pixel form: one convolution per output residue pair,
        // concatenated; strides of 1 and dilations insert nothing.
        let strided = src.contains("strides = [") && !src.contains("dilations");
        if nr == 0 {
            assert_eq!(
                ops.contains(&OpKind::Concat),
                sub_pixel && strided,
                "{}",
                print(&g)
            );
        }
    }
}

#[test]
fn strides_pads_and_output_padding() {
    // (x, m, kernel, group, bias, attrs, output extent)
    check(&src(
        [1, 5, 7, 11],
        7,
        [3, 3],
        1,
        true,
        ", strides = [2, 2], pads = [1, 1, 1, 1], output_padding = [1, 1]",
        [14, 22],
    ));
    check(&src(
        [2, 3, 5, 4],
        2,
        [3, 3],
        1,
        false,
        ", pads = [1, 1, 1, 1]",
        [5, 4],
    ));
    check(&src(
        [1, 4, 5, 5],
        3,
        [4, 4],
        1,
        true,
        ", strides = [2, 2], pads = [1, 1, 1, 1]",
        [10, 10],
    ));
    check(&src(
        [1, 3, 4, 5],
        2,
        [5, 5],
        1,
        true,
        ", strides = [3, 2], pads = [0, 2, 3, 1]",
        [11, 10],
    ));
    check(&src(
        [1, 13, 3, 5],
        1,
        [1, 1],
        1,
        false,
        ", strides = [2, 2]",
        [5, 9],
    ));
}

#[test]
fn pads_beyond_the_kernels_reach_crop_the_input() {
    check(&src(
        [1, 4, 8, 9],
        3,
        [3, 2],
        1,
        true,
        ", strides = [2, 3], pads = [3, 2, 3, 4]",
        [11, 20],
    ));
    check(&src(
        [1, 2, 6, 7],
        2,
        [3, 3],
        1,
        false,
        ", pads = [3, 3, 3, 3]",
        [2, 3],
    ));
}

#[test]
fn dilation_groups_and_depthwise() {
    check(&src(
        [1, 6, 5, 4],
        5,
        [3, 3],
        1,
        false,
        ", strides = [2, 2], dilations = [2, 2], pads = [1, 0, 2, 1]",
        [10, 10],
    ));
    check(&src(
        [2, 6, 5, 7],
        9,
        [3, 3],
        3,
        true,
        ", strides = [2, 1], pads = [1, 1, 0, 1]",
        [10, 7],
    ));
    check(&src(
        [1, 8, 6, 6],
        8,
        [3, 3],
        8,
        true,
        ", strides = [2, 2], pads = [1, 1, 1, 1], output_padding = [1, 0]",
        [12, 11],
    ));
}

#[test]
fn output_shape_and_auto_pad() {
    check(&src(
        [1, 4, 5, 5],
        3,
        [3, 3],
        1,
        true,
        ", strides = [2, 2], output_shape = [12, 11]",
        [12, 11],
    ));
    check(&src(
        [1, 5, 4, 7],
        3,
        [4, 3],
        1,
        true,
        ", strides = [2, 2], auto_pad = \"SAME_UPPER\"",
        [8, 14],
    ));
    check(&src(
        [1, 5, 5, 4],
        3,
        [3, 4],
        1,
        true,
        ", strides = [3, 2], auto_pad = \"SAME_LOWER\"",
        [15, 8],
    ));
    check(&src(
        [1, 3, 1, 1],
        4,
        [3, 3],
        1,
        true,
        ", strides = [2, 2], auto_pad = \"VALID\"",
        [3, 3],
    ));
}

#[test]
fn strides_above_the_limit_and_runtime_weights_stay() {
    let pass = ConvTransposeToConv {
        options: Options {
            max_stride: 2,
            ..Options::default()
        },
    };
    assert_unchanged(
        &pass,
        &src(
            [1, 2, 3, 3],
            2,
            [3, 3],
            1,
            false,
            ", strides = [3, 3]",
            [9, 9],
        ),
    );
    assert_unchanged(
        &ConvTransposeToConv::default(),
        "graph @t(%x: tensor<1x2x3x3xf32>, %w: tensor<2x1x2x2xf32>) -> (tensor<1x1x6x6xf32>) {
  %y = nn.conv_transpose %x, %w {strides = [2, 2]} : tensor<1x1x6x6xf32>
  return %y
}",
    );
}

#[test]
fn narrow_outputs_take_one_convolution_over_a_common_window() {
    // 4 residue pairs x 3 channels fit a panel of 64: one convolution whose
    // 12 output channels are the pairs' (with the bias repeated); 4 x 17 do
    // not, and a grouped one never merges.
    let narrow = src(
        [2, 5, 4, 3],
        3,
        [4, 4],
        1,
        true,
        ", strides = [2, 2], pads = [1, 1, 1, 1]",
        [8, 6],
    );
    let wide = src(
        [1, 5, 4, 3],
        17,
        [4, 4],
        1,
        true,
        ", strides = [2, 2], pads = [1, 1, 1, 1]",
        [8, 6],
    );
    let grouped = src(
        [1, 6, 4, 3],
        6,
        [3, 3],
        3,
        true,
        ", strides = [2, 2], pads = [1, 1, 1, 1]",
        [7, 5],
    );
    for (s, convs) in [(&narrow, 1), (&wide, 4), (&grouped, 4)] {
        let (pass, opts) = pass_with(true, false, 64);
        let g = check_pass_with(&pass, s, &opts, &|_, _, _| None);
        assert_eq!(count(&g, OpKind::Conv), convs, "{}", print(&g));
        assert_eq!(
            count(&g, OpKind::Concat),
            usize::from(convs > 1),
            "{}",
            print(&g)
        );
    }
}

#[test]
fn narrow_outputs_sum_shifted_slices_of_one_1x1_convolution() {
    // 3 and 5 output channels, narrower than a panel of 16: one 1x1
    // convolution with a channel per tap and output channel, then per
    // residue pair the sum of its taps' shifted slices (col2im); 16 fill a
    // panel (a convolution per pair), a grouped one never takes it, and
    // a kernel smaller than the stride (pairs without taps) takes the
    // common window.
    let cases = [
        (
            src(
                [2, 5, 4, 3],
                3,
                [4, 4],
                1,
                true,
                ", strides = [2, 2], pads = [1, 1, 1, 1]",
                [8, 6],
            ),
            Some(4),
        ),
        (
            src(
                [1, 7, 5, 4],
                5,
                [3, 5],
                1,
                false,
                ", strides = [2, 3], pads = [2, 0, 1, 3], output_padding = [1, 2]",
                [9, 13],
            ),
            Some(6),
        ),
        (
            src(
                [1, 3, 3, 3],
                2,
                [2, 2],
                1,
                true,
                ", strides = [2, 2], pads = [3, 3, 0, 0]",
                [3, 3],
            ),
            Some(4),
        ),
        (
            src(
                [1, 3, 3, 2],
                16,
                [4, 4],
                1,
                false,
                ", strides = [2, 2], pads = [1, 1, 1, 1]",
                [6, 4],
            ),
            None,
        ),
        (
            src(
                [1, 6, 4, 3],
                6,
                [3, 3],
                3,
                true,
                ", strides = [2, 2], pads = [1, 1, 1, 1]",
                [7, 5],
            ),
            None,
        ),
        (
            src(
                [1, 3, 4, 3],
                2,
                [1, 1],
                1,
                true,
                ", strides = [2, 2]",
                [7, 5],
            ),
            None,
        ),
    ];
    for (s, pairs) in &cases {
        let (pass, opts) = pass_with(true, true, 16);
        let g = check_pass_with(&pass, s, &opts, &|_, _, _| None);
        let slices = count(&g, OpKind::Slice);
        match pairs {
            Some(p) => {
                assert_eq!(count(&g, OpKind::Conv), 1, "{}", print(&g));
                assert!(slices >= *p, "{}", print(&g));
                assert_eq!(count(&g, OpKind::Concat), 1, "{}", print(&g));
            }
            None => assert_eq!(slices, 0, "{}", print(&g)),
        }
    }
    // A bias computed at run time is added to every pair's sum.
    let runtime_bias = format!(
        "{}graph @t(%x: tensor<1x4x3x5xf32>, %b: tensor<3xf32>) -> (tensor<1x3x6x10xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<4x3x4x4xf32>
  %y = nn.conv_transpose %x, %w, %b {{group = 1, strides = [2, 2], pads = [1, 1, 1, 1]}} : tensor<1x3x6x10xf32>
  return %y
}}",
        weight("w", &[4, 3, 4, 4], 11, 0.0, false)
    );
    let (pass, opts) = pass_with(true, true, 16);
    let g = check_pass_with(&pass, &runtime_bias, &opts, &|_, _, _| None);
    assert_eq!(count(&g, OpKind::Conv), 1, "{}", print(&g));
    assert!(count(&g, OpKind::Add) >= 4, "{}", print(&g));
}
