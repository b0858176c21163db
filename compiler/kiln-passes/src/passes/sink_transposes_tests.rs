//! Tests of `sink-transposes`, each checked with the interpreter before and
//! after on random inputs.

use super::*;
use crate::passes::testutil::{assert_unchanged, check_pass, count, ops};
use kiln_ir::text::print;

#[test]
fn a_transpose_sinks_through_unary_ops_and_cancels() {
    let src = "graph @t(%x: tensor<2x3x4x5xf32>) -> (tensor<2x3x4x5xf32>) {
  %a = nn.transpose %x {perm = [0, 2, 3, 1]} : tensor<2x4x5x3xf32>
  %b = nn.relu %a : tensor<2x4x5x3xf32>
  %c = nn.sigmoid %b : tensor<2x4x5x3xf32>
  %y = nn.transpose %c {perm = [0, 3, 1, 2]} : tensor<2x3x4x5xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    assert_eq!(ops(&g), [OpKind::Relu, OpKind::Sigmoid], "{}", print(&g));
    assert!(print(&g).contains("%y = nn.sigmoid"), "{}", print(&g));
}

#[test]
fn two_transposed_operands_become_one_transpose() {
    let src = "graph @t(%x: tensor<3x4xf32>, %z: tensor<3x4xf32>) -> (tensor<4x3xf32>) {
  %a = nn.transpose %x {perm = [1, 0]} : tensor<4x3xf32>
  %b = nn.transpose %z {perm = [1, 0]} : tensor<4x3xf32>
  %y = nn.add %a, %b : tensor<4x3xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(ops(&g), [OpKind::Add, OpKind::Transpose], "{text}");
    assert!(text.contains("nn.add %x, %z : tensor<3x4xf32>"), "{text}");
    assert!(text.contains("%y = nn.transpose"), "{text}");
}

/// NCHW -> NHWC, a per-channel bias on the last axis, back to NCHW: the
/// bias becomes [C, 1, 1] (same bytes), both transposes go.
#[test]
fn per_channel_constants_are_reshaped_not_copied() {
    let src = "weight @bias : tensor<3xf32> = dense<[1.0, -2.0, 0.5]>
weight @s : tensor<f32> = dense<[0.25]>
graph @t(%x: tensor<1x3x4x5xf32>) -> (tensor<1x3x4x5xf32>) {
  %bias = nn.constant {value = @bias} : tensor<3xf32>
  %s = nn.constant {value = @s} : tensor<f32>
  %a = nn.transpose %x {perm = [0, 2, 3, 1]} : tensor<1x4x5x3xf32>
  %b = nn.add %a, %bias : tensor<1x4x5x3xf32>
  %c = nn.mul %s, %b : tensor<1x4x5x3xf32>
  %y = nn.transpose %c {perm = [0, 3, 1, 2]} : tensor<1x3x4x5xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(ops(&g), [OpKind::Add, OpKind::Mul], "{text}");
    assert!(
        text.contains("tensor<3x1x1xf32> = dense<[1.0, -2.0, 0.5]>"),
        "{text}"
    );
    assert_eq!(count(&g, OpKind::Transpose), 0);
}

/// A constant with two non-unit dims whose order the transpose swaps is
/// permuted into a new weight.
#[test]
fn full_constants_are_permuted() {
    let src = "weight @c : tensor<3x2xf32> = dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]>
graph @t(%x: tensor<2x5x3xf32>) -> (tensor<2x5x3xf32>) {
  %c = nn.constant {value = @c} : tensor<3x2xf32>
  %a = nn.transpose %x {perm = [1, 2, 0]} : tensor<5x3x2xf32>
  %b = nn.mul %a, %c : tensor<5x3x2xf32>
  %y = nn.transpose %b {perm = [2, 0, 1]} : tensor<2x5x3xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(ops(&g), [OpKind::Mul], "{text}");
    assert!(
        text.contains("tensor<2x1x3xf32> = dense<[1.0, 3.0, 5.0, 2.0, 4.0, 6.0]>"),
        "{text}"
    );
}

/// Runtime vectors get an nn.reshape; runtime scalars stay as they are.
#[test]
fn runtime_vectors_and_scalars() {
    let src = "graph @t(%x: tensor<2x3x4xf32>, %v: tensor<3xf32>, %s: tensor<1x1xf32>) -> (tensor<2x3x4xf32>) {
  %a = nn.transpose %x {perm = [0, 2, 1]} : tensor<2x4x3xf32>
  %b = nn.sub %a, %v : tensor<2x4x3xf32>
  %c = nn.div %b, %s : tensor<2x4x3xf32>
  %y = nn.transpose %c {perm = [0, 2, 1]} : tensor<2x3x4xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(
        ops(&g),
        [OpKind::Reshape, OpKind::Sub, OpKind::Div],
        "{text}"
    );
    assert!(text.contains("nn.reshape %v"), "{text}");
    assert!(text.contains(", %s : tensor<2x3x4xf32>"), "{text}");
}

#[test]
fn unit_reshapes_sink_and_collapse() {
    let src = "weight @ax : tensor<1xi64> = dense<[1]>
graph @t(%x: tensor<4x5xf32>, %w: tensor<4x1x5xf32>) -> (tensor<4x5xf32>) {
  %ax = nn.constant {value = @ax} : tensor<1xi64>
  %a = nn.unsqueeze %x, %ax : tensor<4x1x5xf32>
  %b = nn.tanh %a : tensor<4x1x5xf32>
  %c = nn.add %b, %w : tensor<4x1x5xf32>
  %y = nn.squeeze %c, %ax : tensor<4x5xf32>
  return %y
}";
    // The runtime %w stops the unsqueeze after the tanh.
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(
        ops(&g),
        [
            OpKind::Tanh,
            OpKind::Unsqueeze,
            OpKind::Add,
            OpKind::Squeeze
        ],
        "{text}"
    );
    // A constant %w is reshaped (same bytes), and the pair collapses.
    let src = src
        .replace(", %w: tensor<4x1x5xf32>", "")
        .replace(
            "graph @t",
            "weight @w : tensor<4x1x5xf32> = dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0]>\ngraph @t",
        )
        .replace(
            "  %a = nn.unsqueeze",
            "  %w = nn.constant {value = @w} : tensor<4x1x5xf32>\n  %a = nn.unsqueeze",
        );
    let g = check_pass(&SinkTransposes::default(), &src);
    let text = print(&g);
    assert_eq!(ops(&g), [OpKind::Tanh, OpKind::Add], "{text}");
    assert!(text.contains("weight @w_1 : tensor<4x5xf32>"), "{text}");
}

#[test]
fn a_transpose_of_unit_dims_is_a_reshape() {
    let src = "graph @t(%x: tensor<1x6x1x7xf32>) -> (tensor<6x7x1x1xf32>) {
  %y = nn.transpose %x {perm = [1, 3, 0, 2]} : tensor<6x7x1x1xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    assert_eq!(ops(&g), [OpKind::Reshape], "{}", print(&g));
}

#[test]
fn what_must_stay() {
    let cases = [
        // The transpose is also returned: sinking would add one.
        "graph @t(%x: tensor<3x4xf32>) -> (tensor<4x3xf32>, tensor<4x3xf32>) {
  %a = nn.transpose %x {perm = [1, 0]} : tensor<4x3xf32>
  %y = nn.relu %a : tensor<4x3xf32>
  return %y, %a
}",
        // A runtime operand with two non-unit dims would need a transpose.
        "graph @t(%x: tensor<3x4xf32>, %z: tensor<4x3xf32>) -> (tensor<4x3xf32>) {
  %a = nn.transpose %x {perm = [1, 0]} : tensor<4x3xf32>
  %y = nn.add %a, %z : tensor<4x3xf32>
  return %y
}",
        // Not elementwise.
        "graph @t(%x: tensor<3x4xf32>) -> (tensor<4x4xf32>) {
  %a = nn.transpose %x {perm = [1, 0]} : tensor<4x3xf32>
  %y = nn.matmul %a, %x : tensor<4x4xf32>
  return %y
}",
    ];
    for src in cases {
        assert_unchanged(&SinkTransposes::default(), src);
    }
}

#[test]
fn primes_and_ones() {
    for (d, p) in [
        ([1u64, 1, 1], [2, 0, 1]),
        ([7, 1, 13], [1, 2, 0]),
        ([5, 3, 2], [2, 1, 0]),
    ] {
        let t = |dims: [u64; 3]| format!("tensor<{}x{}x{}xf32>", dims[0], dims[1], dims[2]);
        let pd = [d[p[0]], d[p[1]], d[p[2]]];
        let inv = pattern::invert(&p);
        let src = format!(
            "graph @t(%x: {}, %c: tensor<{}xf32>) -> ({}) {{
  %a = nn.transpose %x {{perm = [{}, {}, {}]}} : {}
  %b = nn.mul %a, %c : {}
  %e = nn.exp %b : {}
  %y = nn.transpose %e {{perm = [{}, {}, {}]}} : {}
  return %y
}}",
            t(d),
            pd[2],
            t(d),
            p[0],
            p[1],
            p[2],
            t(pd),
            t(pd),
            t(pd),
            inv[0],
            inv[1],
            inv[2],
            t(d)
        );
        let g = check_pass(&SinkTransposes::default(), &src);
        assert_eq!(count(&g, OpKind::Transpose), 0, "{}", print(&g));
    }
}

#[test]
fn concatenations_of_transposed_operands() {
    let src =
        "graph @t(%a: tensor<1x2x3x4xf32>, %b: tensor<1x5x3x4xf32>) -> (tensor<1x7x3x4xf32>) {
  %ta = nn.transpose %a {perm = [0, 2, 3, 1]} : tensor<1x3x4x2xf32>
  %tb = nn.transpose %b {perm = [0, 2, 3, 1]} : tensor<1x3x4x5xf32>
  %c = nn.concat %ta, %tb {axis = 3} : tensor<1x3x4x7xf32>
  %y = nn.transpose %c {perm = [0, 3, 1, 2]} : tensor<1x7x3x4xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(ops(&g), [OpKind::Concat], "{text}");
    assert!(text.contains("%y = nn.concat %a, %b {axis = 1}"), "{text}");
}

/// ShuffleNet v2's unit in NHWC: the channel split and the channel
/// shuffle (reshape to groups, swap, reshape back) of an NCHW value that
/// comes from NHWC and goes back to it. Afterwards the split runs on the
/// NHWC channels and the shuffle is one transpose of the two innermost
/// dims; no layout change is left. Channel counts 2·7 (a prime per group).
#[test]
fn channel_split_and_shuffle_run_in_the_operand_layout() {
    let src = "weight @sizes : tensor<2xi64> = dense<[7, 7]>
weight @groups : tensor<5xi64> = dense<[1, 2, 7, 3, 5]>
weight @flat : tensor<4xi64> = dense<[1, 14, 3, 5]>
graph @t(%x: tensor<1x3x5x14xf32>) -> (tensor<1x3x5x7xf32>, tensor<1x3x5x14xf32>) {
  %sizes = nn.constant {value = @sizes} : tensor<2xi64>
  %groups = nn.constant {value = @groups} : tensor<5xi64>
  %flat = nn.constant {value = @flat} : tensor<4xi64>
  %a = nn.transpose %x {perm = [0, 3, 1, 2]} : tensor<1x14x3x5xf32>
  %b = nn.reshape %a, %groups : tensor<1x2x7x3x5xf32>
  %c = nn.transpose %b {perm = [0, 2, 1, 3, 4]} : tensor<1x7x2x3x5xf32>
  %d = nn.reshape %c, %flat : tensor<1x14x3x5xf32>
  %s0, %s1 = nn.split %d, %sizes {axis = 1} : tensor<1x7x3x5xf32>, tensor<1x7x3x5xf32>
  %r = nn.relu %s1 : tensor<1x7x3x5xf32>
  %y0 = nn.transpose %r {perm = [0, 2, 3, 1]} : tensor<1x3x5x7xf32>
  %y1 = nn.transpose %d {perm = [0, 2, 3, 1]} : tensor<1x3x5x14xf32>
  return %y0, %y1
}";
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(count(&g, OpKind::Transpose), 1, "{text}");
    assert!(text.contains("{perm = [0, 1, 2, 4, 3]}"), "{text}");
    assert!(text.contains("{axis = 3}"), "{text}");
}

/// Reshapes of transposed values: a merge of dims the operand holds in
/// the other order must move data and stays; a split of one dim moves the
/// transpose below the reshape (the reshape splits the operand's dim).
#[test]
fn reshapes_of_transposed_values() {
    let src = "weight @s : tensor<3xi64> = dense<[4, 5, 3]>
weight @m : tensor<2xi64> = dense<[4, 15]>
graph @t(%x: tensor<4x3x5xf32>) -> (tensor<4x15xf32>) {
  %s = nn.constant {value = @s} : tensor<3xi64>
  %m = nn.constant {value = @m} : tensor<2xi64>
  %a = nn.transpose %x {perm = [0, 2, 1]} : tensor<4x5x3xf32>
  %b = nn.tanh %a : tensor<4x5x3xf32>
  %y = nn.reshape %b, %m : tensor<4x15xf32>
  return %y
}";
    // The merged dims (5, 3) are x's dims 2 and 1, out of order: the one
    // transpose stays.
    let g = check_pass(&SinkTransposes::default(), src);
    assert_eq!(count(&g, OpKind::Transpose), 1, "{}", print(&g));
    // A dim split under a transpose: the reshape splits x's last dim, the
    // transpose sinks below it and the exp.
    let src = "weight @s : tensor<4xi64> = dense<[3, 2, 5, 7]>
graph @t(%x: tensor<3x7x10xf32>) -> (tensor<3x2x5x7xf32>) {
  %s = nn.constant {value = @s} : tensor<4xi64>
  %a = nn.transpose %x {perm = [0, 2, 1]} : tensor<3x10x7xf32>
  %b = nn.reshape %a, %s : tensor<3x2x5x7xf32>
  %y = nn.exp %b : tensor<3x2x5x7xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(
        ops(&g),
        [OpKind::Reshape, OpKind::Exp, OpKind::Transpose],
        "{text}"
    );
    assert!(text.contains("tensor<3x7x2x5xf32>"), "{text}");
}

#[test]
fn pads_move_to_the_operands_dims() {
    // NHWC -> NCHW, padded in H and W (and the channels at the end), back
    // to NHWC: the pad runs in NHWC with its pads permuted, nothing moves.
    let src = "weight @p : tensor<8xi64> = dense<[0, 0, 1, 2, 0, 3, 2, 0]>
graph @t(%x: tensor<2x4x5x3xf32>) -> (tensor<2x7x7x6xf32>) {
  %p = nn.constant {value = @p} : tensor<8xi64>
  %a = nn.transpose %x {perm = [0, 3, 1, 2]} : tensor<2x3x4x5xf32>
  %b = nn.pad %a, %p : tensor<2x6x7x7xf32>
  %y = nn.transpose %b {perm = [0, 2, 3, 1]} : tensor<2x7x7x6xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(ops(&g), [OpKind::Pad], "{text}");
    assert!(text.contains("dense<[0, 1, 2, 0, 0, 2, 0, 3]>"), "{text}");
    // A transpose with another use stays where it is.
    let shared = "weight @p : tensor<4xi64> = dense<[1, 0, 0, 1]>
graph @t(%x: tensor<3x4xf32>) -> (tensor<5x4xf32>, tensor<4x3xf32>) {
  %p = nn.constant {value = @p} : tensor<4xi64>
  %a = nn.transpose %x {perm = [1, 0]} : tensor<4x3xf32>
  %b = nn.pad %a, %p : tensor<5x4xf32>
  return %b, %a
}";
    let g = check_pass(&SinkTransposes::default(), shared);
    assert_eq!(ops(&g), [OpKind::Transpose, OpKind::Pad], "{}", print(&g));
}

#[test]
fn slices_of_one_transposed_value_slice_its_operand() {
    // Three slices of an NCHW view of an NHWC value (negative axes; axes
    // and steps in another order, negative; no axes), summed and viewed as
    // NHWC again: each slices the NHWC value along the permuted axes, and
    // the transposes sink through the sums and cancel.
    let src = "weight @s0 : tensor<3xi64> = dense<[0, 1, 0]>
weight @e0 : tensor<3xi64> = dense<[2, 3, 3]>
weight @a0 : tensor<3xi64> = dense<[-3, -2, -1]>
weight @s1 : tensor<3xi64> = dense<[2, 3, 4]>
weight @e1 : tensor<3xi64> = dense<[0, 0, 2]>
weight @a1 : tensor<3xi64> = dense<[1, 3, 2]>
weight @st1 : tensor<3xi64> = dense<[-1, -1, -1]>
weight @s2 : tensor<4xi64> = dense<[0, 1, 3, 1]>
weight @e2 : tensor<4xi64> = dense<[2, 3, 5, 4]>
graph @t(%x: tensor<2x5x4x3xf32>) -> (tensor<2x2x3x2xf32>) {
  %s0 = nn.constant {value = @s0} : tensor<3xi64>
  %e0 = nn.constant {value = @e0} : tensor<3xi64>
  %a0 = nn.constant {value = @a0} : tensor<3xi64>
  %s1 = nn.constant {value = @s1} : tensor<3xi64>
  %e1 = nn.constant {value = @e1} : tensor<3xi64>
  %a1 = nn.constant {value = @a1} : tensor<3xi64>
  %st1 = nn.constant {value = @st1} : tensor<3xi64>
  %s2 = nn.constant {value = @s2} : tensor<4xi64>
  %e2 = nn.constant {value = @e2} : tensor<4xi64>
  %a = nn.transpose %x {perm = [0, 3, 1, 2]} : tensor<2x3x5x4xf32>
  %b = nn.slice %a, %s0, %e0, %a0 : tensor<2x2x2x3xf32>
  %c = nn.slice %a, %s1, %e1, %a1, %st1 : tensor<2x2x2x3xf32>
  %e = nn.slice %a, %s2, %e2 : tensor<2x2x2x3xf32>
  %d = nn.add %b, %c : tensor<2x2x2x3xf32>
  %f = nn.add %d, %e : tensor<2x2x2x3xf32>
  %y = nn.transpose %f {perm = [0, 2, 3, 1]} : tensor<2x2x3x2xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(count(&g, OpKind::Transpose), 0, "{text}");
    assert_eq!(count(&g, OpKind::Slice), 3, "{text}");
    assert!(text.contains("dense<[3, 2, 1]>"), "{text}");
    // Another use of the transpose (not a slice) keeps the slices behind it.
    let mixed = "weight @s0 : tensor<1xi64> = dense<[1]>
weight @e0 : tensor<1xi64> = dense<[3]>
graph @t(%x: tensor<3x4xf32>) -> (tensor<4x2xf32>, tensor<4x3xf32>) {
  %s0 = nn.constant {value = @s0} : tensor<1xi64>
  %e0 = nn.constant {value = @e0} : tensor<1xi64>
  %a = nn.transpose %x {perm = [1, 0]} : tensor<4x3xf32>
  %b = nn.slice %a, %s0, %e0, %s0 : tensor<4x2xf32>
  %c = nn.relu %a : tensor<4x3xf32>
  return %b, %c
}";
    let g = check_pass(&SinkTransposes::default(), mixed);
    assert!(print(&g).contains("nn.slice %a,"), "{}", print(&g));
}

#[test]
fn an_interleave_merging_two_groups_meets_the_layout_change_below() {
    // conv-transpose-to-conv's interleave of residue pairs [n, qh, qw, ah,
    // aw, c] -> [n, c, qh * ah, qw * aw], an activation, back to NHWC: one
    // transpose of the grid ([n, qh, ah, qw, aw, c]) merged into NHWC.
    let src = "weight @s : tensor<4xi64> = dense<[2, 3, 10, 6]>
graph @t(%g: tensor<2x5x3x2x2x3xf32>) -> (tensor<2x10x6x3xf32>) {
  %s = nn.constant {value = @s} : tensor<4xi64>
  %i = nn.transpose %g {perm = [0, 5, 1, 3, 2, 4]} : tensor<2x3x5x2x3x2xf32>
  %r = nn.reshape %i, %s : tensor<2x3x10x6xf32>
  %a = nn.relu %r : tensor<2x3x10x6xf32>
  %y = nn.transpose %a {perm = [0, 2, 3, 1]} : tensor<2x10x6x3xf32>
  return %y
}";
    let g = check_pass(&SinkTransposes::default(), src);
    let text = print(&g);
    assert_eq!(
        ops(&g),
        [OpKind::Transpose, OpKind::Reshape, OpKind::Relu],
        "{text}"
    );
    assert!(text.contains("perm = [0, 1, 3, 2, 4, 5]"), "{text}");
    // Without the transpose back below, the interleave stays one transpose.
    let kept = "weight @s : tensor<4xi64> = dense<[2, 3, 10, 6]>
graph @t(%g: tensor<2x5x3x2x2x3xf32>) -> (tensor<2x3x10x6xf32>) {
  %s = nn.constant {value = @s} : tensor<4xi64>
  %i = nn.transpose %g {perm = [0, 5, 1, 3, 2, 4]} : tensor<2x3x5x2x3x2xf32>
  %r = nn.reshape %i, %s : tensor<2x3x10x6xf32>
  %y = nn.relu %r : tensor<2x3x10x6xf32>
  return %y
}";
    assert_unchanged(&SinkTransposes::default(), kept);
}
