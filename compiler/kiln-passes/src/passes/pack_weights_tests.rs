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

/// An int8 product and the f32 ops after it, as ORT's dynamic quantization writes them: with
/// 8-bit dot products the fused epilogue's i8 weight is packed as `int8_gemm_b` (K = 7 and
/// N = 5 both padded); without them, or for a u8 weight, nothing is packed.
const INT8: &str = "weight @w : tensor<7x5xi8> = dense<[1, -2, 3, -4, 5, -6, 7, -8, 9, -10, \
    11, -12, 13, -14, 15, -16, 17, -18, 19, -20, 21, -22, 23, -24, 25, -26, 27, -28, 29, -30, \
    31, -32, 33, -34, 127]>
weight @zb : tensor<i8> = dense<[-3]>
graph @t(%a: tensor<3x7xu8>, %za: tensor<u8>, %s: tensor<f32>) -> (tensor<3x5xf32>) {
  %w = nn.constant {value = @w} : tensor<7x5xi8>
  %zb = nn.constant {value = @zb} : tensor<i8>
  %p = quant.matmul_integer %a, %w, %za, %zb : tensor<3x5xi32>
  %f = nn.cast %p {to = f32} : tensor<3x5xf32>
  %y = nn.mul %f, %s : tensor<3x5xf32>
  return %y
}";

/// `src` with its int8 product fused (as ORT's pattern is before packing), then packed for
/// NR = 4 with the target facts `set` adjusts, checked against the interpreter.
fn pack_int8(src: &str, set: impl Fn(&mut TargetFacts)) -> Graph {
    let mut g = graph(src);
    FuseEpilogue::default()
        .run(&mut g, &PassOptions::default())
        .unwrap();
    let mut opts = facts(4);
    set(&mut opts.target);
    check_graph(&PackWeights::default(), g, &opts, &|_, _, _| None)
}

#[test]
fn int8_weights_pack_where_the_cpu_has_dot_products() {
    let run = |src: &str, dot: bool| pack_int8(src, |t| t.int8_dot = dot);
    let g = run(INT8, true);
    assert_eq!(packed(&g), ["int8_gemm_b"], "{}", print(&g));
    assert_eq!(ops(&g), [OpKind::Unpack, OpKind::Fused], "{}", print(&g));
    assert!(print(&g).contains("tensor<2x2x16xi8>"), "{}", print(&g));
    assert!(packed(&run(INT8, false)).is_empty());
    let u8_weight = INT8
        .replace(
            "tensor<7x5xi8> = dense<[1, -2",
            "tensor<7x5xu8> = dense<[1, 2",
        )
        .replace(", -", ", ")
        .replace("7x5xi8", "7x5xu8")
        .replace("tensor<i8> = dense<[-3]>", "tensor<u8> = dense<[3]>")
        .replace("{value = @zb} : tensor<i8>", "{value = @zb} : tensor<u8>");
    assert!(packed(&run(&u8_weight, true)).is_empty());
}

/// Without dot products but with AVX2's pmaddubsw pairs (`int8_pairs`), an i8 weight packs
/// as `int8_gemm_b_narrow` only when every value lies within [-64, 64] (the bounds
/// included): INT8's 127 keeps it as stored.
#[test]
fn narrow_int8_weights_pack_for_pmaddubsw_pairs() {
    let run = |src: &str| pack_int8(src, |t| t.int8_pairs = true);
    assert!(packed(&run(INT8)).is_empty());
    let narrow = INT8
        .replace(", 127]", ", 64]")
        .replace("[1, -2,", "[-64, -2,");
    let g = run(&narrow);
    assert_eq!(packed(&g), ["int8_gemm_b_narrow"], "{}", print(&g));
    assert!(print(&g).contains("tensor<2x2x16xi8>"), "{}", print(&g));
    assert!(packed(&run(&narrow.replace(", 64]", ", 65]"))).is_empty());
}

/// The derived quantized parts (codes, scales, zero points with `zp`) of
/// weight `@{src}` holding `n` rows of `k` values along `axis`, by `scheme`
/// (`code` / `scale` dtypes) in blocks of `block`: their weight lines, the
/// graph's constants `%c`, `%s` (`%z`), and the operand list `%c, %s(, %z)`.
#[allow(clippy::too_many_arguments)]
fn qparts(
    scheme: &str,
    (code, scale): (&str, &str),
    block: u64,
    (n, k): (u64, u64),
    axis: u64,
    src: &str,
    zp: bool,
) -> (String, String, String) {
    let per = if code.ends_with('4') { 2 } else { 1 };
    let kp = if block == 0 {
        k.div_ceil(per) * per
    } else {
        k.div_ceil(block) * block
    };
    let nb = if block == 0 { 1 } else { k.div_ceil(block) };
    let mut parts = vec![
        ("codes", "c", format!("tensor<{n}x{kp}x{code}>")),
        ("scales", "s", format!("tensor<{n}x{nb}x{scale}>")),
    ];
    if zp {
        let zps = format!("tensor<{n}x{}x{code}>", nb.div_ceil(per) * per);
        parts.push(("zero_points", "z", zps));
    }
    let (mut weights, mut consts, mut operands) = (String::new(), String::new(), Vec::new());
    for (p, v, ty) in parts {
        weights += &format!(
            "weight @w.{p} : {ty} = derived<quant.quantize_weight {{axis = {axis}, block_size = {block}, part = \"{p}\", scheme = \"{scheme}\"}}>(@{src})\n"
        );
        consts += &format!("  %{v} = nn.constant {{value = @w.{p}}} : {ty}\n");
        operands.push(format!("%{v}"));
    }
    (weights, consts, operands.join(", "))
}

/// A one-row `quant.matmul` of `scheme` weights (K = 70, N = 19, blocks of
/// `block`) over derived quantized codes and scales, with `rows` rows.
fn qmatmul(scheme: &str, code: &str, scale: &str, block: u64, rows: u64, zp: bool) -> String {
    let (k, n) = (70u64, 19u64);
    let (parts, consts, operands) = qparts(scheme, (code, scale), block, (n, k), 0, "w", zp);
    weight("w", &[k, n], 5, 0.0, false)
        + &parts
        + &format!(
            "graph @t(%x: tensor<{rows}x{k}xf32>) -> (tensor<{rows}x{n}xf32>) {{
{consts}  %y = quant.matmul %x, {operands} {{block_size = {block}}} : tensor<{rows}x{n}xf32>
  return %y
}}"
        )
}

/// Where the 4-bit GEMV reads panels (`qgemv_panel` = 16), a one-row
/// `quant.matmul`'s codes become `row_panels_k8` and its scales
/// `row_panels` (N = 19: a partial second panel; K = 70: a partial last
/// run of 8), zero points as `row_panels_k8` too; the interpreter gives
/// the same result before and after. Several rows, blocks that are not a
/// multiple of 8, 8-bit codes and targets without the panel GEMV keep the
/// weights as stored.
#[test]
fn one_row_4bit_products_get_panels() {
    let run = |src: &str, panel: u64| {
        let mut opts = facts(16);
        opts.target.qgemv_panel = panel;
        check_graph(&PackWeights::default(), graph(src), &opts, &|_, _, _| None)
    };
    for (scheme, code, scale, block) in [
        ("nf4", "nf4", "f32", 64),
        ("nf4", "nf4", "f32", 0),
        ("nf4", "nf4", "f32", 8),
        ("int4", "i4", "f32", 32),
        ("mxfp4", "f4e2m1", "f8e8m0", 32),
    ] {
        let g = run(&qmatmul(scheme, code, scale, block, 1, false), 16);
        assert_eq!(packed(&g), ["row_panels_k8", "row_panels"], "{}", print(&g));
        assert_eq!(
            ops(&g),
            [OpKind::Unpack, OpKind::Unpack, OpKind::QMatMul],
            "{}",
            print(&g)
        );
        let kp = if block == 0 {
            70
        } else {
            70u64.div_ceil(block) * block
        };
        let nb = if block == 0 { 1 } else { 70u64.div_ceil(block) };
        let text = print(&g);
        assert!(
            text.contains(&format!("tensor<2x{}x16x8x{code}>", kp.div_ceil(8))),
            "{text}"
        );
        assert!(
            text.contains(&format!("tensor<2x{nb}x16x{scale}>")),
            "{text}"
        );
    }
    let g = run(&qmatmul("uint4", "u4", "f32", 32, 1, true), 16);
    assert_eq!(
        packed(&g),
        ["row_panels_k8", "row_panels", "row_panels_k8"],
        "{}",
        print(&g)
    );
    // Zero points [19, 4] (3 blocks, padded to whole bytes): one run of 8.
    assert!(print(&g).contains("tensor<2x1x16x8xu4>"), "{}", print(&g));
    let stays = [
        run(&qmatmul("nf4", "nf4", "f32", 64, 2, false), 16),
        run(&qmatmul("nf4", "nf4", "f32", 64, 1, false), 0),
        run(&qmatmul("nf4", "nf4", "f32", 20, 1, false), 16),
        run(&qmatmul("uint4", "u4", "f32", 32, 2, true), 16),
        run(&qmatmul("int8", "i8", "f32", 0, 1, false), 16),
    ];
    for g in stays {
        assert!(packed(&g).is_empty(), "{}", print(&g));
    }
}

/// An NHWC `quant.conv` (3x3, `cin` input channels, 20 output channels,
/// `group` groups) of `scheme` codes over derived weights in window order
/// (zero points for the unsigned schemes), with a bias, then Relu.
fn qconv(scheme: &str, code: &str, scale: &str, block: u64, cin: u64, group: u64) -> String {
    let (co, k) = (20u64, 9 * cin / group);
    let zp = scheme.starts_with('u');
    let (parts, consts, mut operands) =
        qparts(scheme, (code, scale), block, (co, k), 1, "w.rows", zp);
    if !zp {
        operands += ", none";
    }
    weight("w", &[co, k], 5, 0.0, false).replace("@w :", "@w.rows :")
        + &weight("b", &[co], 6, 0.0, false)
        + &parts
        + &format!(
            "graph @t(%x: tensor<1x5x6x{cin}xf32>) -> (tensor<1x5x6x{co}xf32>) {{
{consts}  %b = nn.constant {{value = @b}} : tensor<{co}xf32>
  %q = quant.conv %x, {operands}, %b {{block_size = {block}, group = {group}, kernel_shape = [3, 3], layout = \"nhwc\", pads = [1, 1, 1, 1]}} : tensor<1x5x6x{co}xf32>
  %y = nn.relu %q : tensor<1x5x6x{co}xf32>
  return %y
}}"
        )
}

/// Where the 4-bit kernels read panels, an NHWC `quant.conv`'s codes,
/// scales and zero points get the GEMV's panels (alone, and as a fused
/// epilogue's head, the unpacks then in front of the fused node); the
/// interpreter gives the same result before and after; 8-bit codes as
/// `row_panels`. 4-bit codes with channels per group not a multiple of 8
/// or blocks not a multiple of 8, and targets without the panels, keep the
/// weights as stored.
#[test]
fn quantized_convolutions_get_panels() {
    let run = |src: &str, panel: u64, fuse: bool| {
        let mut opts = facts(64);
        opts.target.qgemv_panel = panel;
        let mut g = graph(src);
        if fuse {
            FuseEpilogue::default().run(&mut g, &opts).unwrap();
        }
        check_graph(&PackWeights::default(), g, &opts, &|_, _, _| None)
    };
    for (scheme, code, scale, block, cin, group) in [
        ("nf4", "nf4", "f32", 64, 16, 1),
        ("nf4", "nf4", "f32", 0, 16, 2),
        ("mxfp4", "f4e2m1", "f8e8m0", 32, 8, 1),
    ] {
        let src = qconv(scheme, code, scale, block, cin, group);
        let g = run(&src, 16, false);
        assert_eq!(packed(&g), ["row_panels_k8", "row_panels"], "{}", print(&g));
        assert_eq!(
            ops(&g),
            [OpKind::Unpack, OpKind::Unpack, OpKind::QConv, OpKind::Relu],
            "{}",
            print(&g)
        );
        let g = run(&src, 16, true);
        assert_eq!(packed(&g), ["row_panels_k8", "row_panels"], "{}", print(&g));
        assert_eq!(
            ops(&g),
            [OpKind::Unpack, OpKind::Unpack, OpKind::Fused],
            "{}",
            print(&g)
        );
    }
    let g = run(&qconv("uint4", "u4", "f32", 32, 16, 1), 16, true);
    assert_eq!(
        packed(&g),
        ["row_panels_k8", "row_panels", "row_panels_k8"],
        "{}",
        print(&g)
    );
    // 8-bit codes (any channel count): a K index of 16 rows at a time.
    for (scheme, code, cin) in [("int8", "i8", 12), ("fp8-e4m3", "f8e4m3fn", 16)] {
        let g = run(&qconv(scheme, code, "f32", 0, cin, 1), 16, true);
        assert_eq!(packed(&g), ["row_panels", "row_panels"], "{}", print(&g));
    }
    let g = run(&qconv("uint8", "u8", "f32", 32, 16, 1), 16, false);
    assert_eq!(
        packed(&g),
        ["row_panels", "row_panels", "row_panels"],
        "{}",
        print(&g)
    );
    for (src, panel) in [
        (qconv("nf4", "nf4", "f32", 64, 12, 1), 16),
        (qconv("nf4", "nf4", "f32", 64, 16, 1), 0),
        (qconv("nf4", "nf4", "f32", 20, 16, 1), 16),
        (qconv("int8", "i8", "f32", 0, 16, 1), 0),
    ] {
        let g = run(&src, panel, false);
        assert!(packed(&g).is_empty(), "{}", print(&g));
    }
}
