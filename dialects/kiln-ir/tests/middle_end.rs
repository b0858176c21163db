//! The IR the optimizer needs: fused regions, packed layouts, the `layout`
//! attribute, derived weights and memory plans — printed, parsed back
//! exactly, and verified.

use kiln_ir::ops::layout::{PackLayout, Packing};
use kiln_ir::text::{parse, print};
use kiln_ir::{Graph, Home};

fn parse_ok(src: &str) -> Graph {
    match parse(src, "t.kir", None) {
        Ok(p) => p.graph,
        Err(e) => panic!(
            "{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn parse_err(src: &str) -> String {
    match parse(src, "t.kir", None) {
        Ok(_) => panic!("parsed:\n{src}"),
        Err(e) => e
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn round_trips(src: &str) -> Graph {
    let g = parse_ok(src);
    let text = print(&g);
    let again = print(&parse_ok(&text));
    assert_eq!(text, again, "print(parse(print(g))) differs");
    g
}

const FUSED: &str = r#"weight @w : tensor<4x3xf32> = dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]>
weight @b : tensor<3xf32> = dense<[0.5, -0.5, 1.0]>
graph @g(%x: tensor<2x4xf32>, %r: tensor<2x3xf32>) -> (tensor<2x3xf32>) {
  %c = nn.constant {value = @w} : tensor<4x3xf32>
  %d = nn.constant {value = @b} : tensor<3xf32>
  %y = nn.fused %x, %c, %d, %r {kind = "epilogue"} : tensor<2x3xf32> loc("fc") {
    ^(%a: tensor<2x4xf32>, %k: tensor<4x3xf32>, %bias: tensor<3xf32>, %res: tensor<2x3xf32>):
    %m = nn.matmul %a, %k : tensor<2x3xf32>
    %s = nn.add %m, %bias : tensor<2x3xf32>
    %t = nn.add %s, %res : tensor<2x3xf32>
    %y = nn.relu %t : tensor<2x3xf32>
    return %y
  }
  return %y
}
"#;

#[test]
fn fused_nodes_round_trip_and_verify() {
    let g = round_trips(FUSED);
    let node = &g.nodes[2];
    let body = node.body.as_ref().expect("a body");
    assert_eq!(body.inputs.len(), 4);
    assert_eq!(body.nodes.len(), 4);
    assert_eq!(node.loc.as_deref(), Some("fc"));
    // The body's names live in their own scope: `%y` is defined in both.
    assert_eq!(g.value(node.outputs[0]).name, "y");
    assert_eq!(body.value(body.outputs[0]).name, "y");
}

#[test]
fn fused_bodies_are_checked_against_the_node() {
    // A body that verifies on its own but whose bias input (1x3, still a
    // valid broadcast inside) is not the operand's type (3).
    let wrong_type = FUSED.replace("%bias: tensor<3xf32>", "%bias: tensor<1x3xf32>");
    let e = parse_err(&wrong_type);
    assert!(e.contains("body input #2 is tensor<1x3xf32>"), "{e}");
    let bad_body = FUSED.replace(
        "%y = nn.relu %t : tensor<2x3xf32>",
        "%y = nn.relu %q : tensor<2x3xf32>",
    );
    assert!(parse_err(&bad_body).contains("undefined value %q"));
    let no_body = "graph @g(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %y = nn.fused %x {kind = \"elementwise\"} : tensor<2xf32>\n  return %y\n}\n";
    assert!(
        parse_err(no_body).contains("has no body"),
        "{}",
        parse_err(no_body)
    );
    let body_on_add = "graph @g(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %y = nn.relu %x : tensor<2xf32> {\n    ^(%a: tensor<2xf32>):\n    return %a\n  }\n  return %y\n}\n";
    assert!(parse_err(body_on_add).contains("only nn.fused has a body"));
    let bad_kind = FUSED.replace("kind = \"epilogue\"", "kind = \"magic\"");
    assert!(parse_err(&bad_kind).contains("attribute 'kind' has unknown value \"magic\""));
}

#[test]
fn packings_are_permutations_with_zero_padding() {
    // Every logical element appears exactly once; the rest is padding.
    let cases = [
        (PackLayout::GemmB, 4, 1, vec![5u64, 7]),
        (PackLayout::GemmB, 16, 1, vec![3, 16]),
        (PackLayout::ConvNhwc, 4, 2, vec![6, 3, 3, 2]),
        (PackLayout::ConvNhwc, 8, 1, vec![5, 2, 1, 1]),
        (PackLayout::DwConvNhwc, 1, 1, vec![5, 1, 3, 3]),
        (PackLayout::Nchwc, 8, 1, vec![2, 5, 3, 2]),
        (PackLayout::Int8GemmB, 4, 1, vec![7u64, 5]),
        (PackLayout::Int8GemmB, 16, 1, vec![8, 16]),
        (PackLayout::Int8GemmB, 64, 1, vec![1, 1]),
        (PackLayout::RowPanels, 16, 1, vec![17, 3]),
        (PackLayout::RowPanels, 4, 1, vec![1, 1]),
        (PackLayout::RowPanelsK8, 16, 1, vec![33, 19]),
        (PackLayout::RowPanelsK8, 4, 1, vec![5, 8]),
        (PackLayout::RowPanelsK8, 16, 1, vec![1, 1]),
    ];
    for (layout, block, groups, shape) in cases {
        let p = Packing::new(layout, block, groups, shape.clone()).expect("valid");
        let logical: u64 = shape.iter().product();
        let packed: u64 = p.packed_shape().iter().product();
        let mut seen = vec![0u32; logical as usize];
        for i in 0..packed {
            if let Some(s) = p.source(i) {
                seen[s as usize] += 1;
            }
        }
        assert!(
            seen.iter().all(|&n| n == 1),
            "{layout:?} {shape:?}: {seen:?}"
        );
        let src: Vec<u8> = (0..logical as u32)
            .flat_map(|v| (v + 1).to_le_bytes())
            .collect();
        let packed_bytes = p.pack_bytes(&src, 4);
        assert_eq!(packed_bytes.len() as u64, packed * 4);
        assert_eq!(
            p.unpack_bytes(&packed_bytes, 4),
            src,
            "{layout:?} {shape:?}"
        );
    }
}

#[test]
fn row_panels_k8_holds_runs_of_eight_values_per_row() {
    // packed[p][q][i][r] = L[p*b + i][8q + r], zero past R = 5 and C = 11.
    let p = Packing::new(PackLayout::RowPanelsK8, 4, 1, vec![5, 11]).unwrap();
    assert_eq!(p.packed_shape(), vec![2, 2, 4, 8]);
    let at = |panel: u64, q: u64, i: u64, r: u64| p.source(((panel * 2 + q) * 4 + i) * 8 + r);
    assert_eq!(at(0, 0, 0, 0), Some(0));
    assert_eq!(at(0, 0, 1, 7), Some(11 + 7));
    assert_eq!(at(0, 1, 3, 2), Some(3 * 11 + 10));
    assert_eq!(at(0, 1, 3, 3), None, "past C");
    assert_eq!(at(1, 0, 0, 5), Some(4 * 11 + 5));
    assert_eq!(at(1, 0, 1, 0), None, "past R");
    // row_panels: packed[p][c][i] = L[p*b + i][c].
    let p = Packing::new(PackLayout::RowPanels, 4, 1, vec![5, 3]).unwrap();
    assert_eq!(p.packed_shape(), vec![2, 3, 4]);
    assert_eq!(p.source(4 + 2), Some(2 * 3 + 1));
    assert_eq!(p.source(12 + 4), Some(4 * 3 + 1));
    assert_eq!(p.source(12 + 5), None);
}

#[test]
fn sub_byte_elements_pack_as_their_logical_elements() {
    // 4-bit and 2-bit elements (first element in the low bits of a byte):
    // every packed element equals the logical element it holds, padding 0.
    for (bits, shape) in [(4u32, vec![19u64, 13]), (2, vec![5, 24]), (4, vec![1, 1])] {
        let p = Packing::new(PackLayout::RowPanelsK8, 16, 1, shape.clone()).unwrap();
        let per = u64::from(8 / bits);
        let numel: u64 = shape.iter().product();
        let src: Vec<u8> = (0..numel.div_ceil(per))
            .map(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
            .collect();
        let get = |b: &[u8], i: u64| {
            (b[(i / per) as usize] >> ((i % per) as u32 * bits)) & ((1 << bits) - 1)
        };
        let packed = p.pack_bits(&src, bits);
        let n: u64 = p.packed_shape().iter().product();
        assert_eq!(packed.len() as u64, n.div_ceil(per));
        for e in 0..n {
            let want = p.source(e).map_or(0, |i| get(&src, i));
            assert_eq!(get(&packed, e), want, "{bits} bits {shape:?}: element {e}");
        }
    }
}

#[test]
fn only_row_panels_k8_re_lays_sub_byte_elements_out() {
    let packed = |layout: &str, dt: &str, shape: &str| {
        format!(
            "weight @w : tensor<{shape}x{dt}> = dense<\"0x{}\">\ngraph @g() -> (tensor<{shape}x{dt}>) {{\n  %w = nn.constant {{value = @w}} : tensor<{shape}x{dt}>\n  %p = nn.pack %w {{block = 16, layout = \"{layout}\"}} : tensor<1x1x16x8x{dt}>\n  %u = nn.unpack %p {{block = 16, layout = \"{layout}\", shape = [2, 8]}} : tensor<{shape}x{dt}>\n  return %u\n}}\n",
            "00".repeat(8)
        )
    };
    parse_ok(&packed("row_panels_k8", "nf4", "2x8"));
    let err = parse_err(&packed("gemm_b", "nf4", "2x8"));
    assert!(err.contains("nf4 elements share bytes"), "{err}");
}

#[test]
fn int8_gemm_b_holds_four_k_values_per_lane() {
    // packed[p][q][4*j + r] = B[4q + r][p*NR + j], zero past K = 7 and N = 5.
    let p = Packing::new(PackLayout::Int8GemmB, 4, 1, vec![7, 5]).unwrap();
    assert_eq!(p.packed_shape(), vec![2, 2, 16]);
    let at = |panel: u64, q: u64, j: u64, r: u64| p.source((panel * 2 + q) * 16 + 4 * j + r);
    assert_eq!(at(0, 0, 0, 0), Some(0));
    assert_eq!(at(0, 0, 0, 3), Some(3 * 5));
    assert_eq!(at(0, 1, 2, 1), Some(5 * 5 + 2));
    assert_eq!(at(1, 1, 0, 2), Some(6 * 5 + 4));
    assert_eq!(at(1, 1, 0, 3), None); // k = 7
    assert_eq!(at(1, 0, 1, 0), None); // n = 5
}

#[test]
fn packings_follow_the_documented_layouts() {
    // gemm_b: packed[p][k][j] = B[k][p*NR + j].
    let p = Packing::new(PackLayout::GemmB, 4, 1, vec![3, 6]).unwrap();
    assert_eq!(p.packed_shape(), vec![2, 3, 4]);
    let at = |panel: u64, k: u64, j: u64| p.source((panel * 3 + k) * 4 + j);
    assert_eq!(at(0, 0, 0), Some(0));
    assert_eq!(at(0, 2, 3), Some(2 * 6 + 3));
    assert_eq!(at(1, 1, 1), Some(6 + 5));
    assert_eq!(at(1, 1, 2), None);
    // conv_nhwc: k = (kh*KW + kw)*Cg + c, out channel g*Cout_g + panel*NR + j.
    let p = Packing::new(PackLayout::ConvNhwc, 2, 2, vec![4, 3, 2, 2]).unwrap();
    assert_eq!(p.packed_shape(), vec![2, 1, 12, 2]);
    // group 1, panel 0, k = (1*2 + 0)*3 + 2 (kh 1, kw 0, c 2), j 1 -> W[3][2][1][0].
    let k = (2 * 3) + 2;
    assert_eq!(
        p.source(((12) + k) * 2 + 1),
        Some(((3 * 3 + 2) * 2 + 1) * 2)
    );
    // dwconv_nhwc: P[kh][kw][c] = W[c][0][kh][kw].
    let p = Packing::new(PackLayout::DwConvNhwc, 1, 1, vec![3, 1, 2, 2]).unwrap();
    assert_eq!(p.source((2 + 1) * 3 + 2), Some(2 * 4 + 3));
}

#[test]
fn pack_ops_infer_and_reject_bad_layouts() {
    let src = r#"graph @g(%w: tensor<5x7xf32>) -> (tensor<5x7xf32>) {
  %p = nn.pack %w {block = 4, layout = "gemm_b"} : tensor<2x5x4xf32>
  %u = nn.unpack %p {block = 4, layout = "gemm_b", shape = [5, 7]} : tensor<5x7xf32>
  return %u
}
"#;
    round_trips(src);
    assert!(parse_err(&src.replace("tensor<2x5x4xf32>", "tensor<2x5x8xf32>")).contains("infers"));
    assert!(
        parse_err(&src.replace("\"gemm_b\"} : tensor<2x5x4", "\"gemm_c\"} : tensor<2x5x4"))
            .contains("attribute 'layout' has unknown value \"gemm_c\"")
    );
}

#[test]
fn nhwc_ops_infer_in_their_layout() {
    let src = r#"weight @w : tensor<8x3x3x3xf32> = elided<bytes = 864, fnv = 0x0000000000000001>
graph @g(%x: tensor<1x9x9x3xf32>) -> (tensor<1x4x4x8xf32>, tensor<1x1x1x8xf32>) {
  %w = nn.constant {value = @w} : tensor<8x3x3x3xf32>
  %c = nn.conv %x, %w {layout = "nhwc", pads = [1, 1, 1, 1], strides = [2, 2]} : tensor<1x5x5x8xf32>
  %p = nn.max_pool %c {kernel_shape = [2, 2], layout = "nhwc"} : tensor<1x4x4x8xf32>
  %q = nn.global_average_pool %p {layout = "nhwc"} : tensor<1x1x1x8xf32>
  return %p, %q
}
"#;
    round_trips(src);
    assert!(
        parse_err(&src.replace("tensor<1x5x5x8xf32>", "tensor<1x8x5x5xf32>")).contains("infers")
    );
}

const DERIVED: &str = r#"weight @w : tensor<2x3xf32> = dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]>
weight @s : tensor<3xf32> = dense<[2.0, 3.0, 4.0]>
weight @ws : tensor<2x3xf32> = derived<nn.mul>(@w, @s)
weight @p : tensor<1x2x4xf32> = derived<nn.pack {block = 4, layout = "gemm_b"}>(@ws)
graph @g(%x: tensor<1x2xf32>) -> (tensor<1x3xf32>) {
  %p = nn.constant {value = @p} : tensor<1x2x4xf32>
  %u = nn.unpack %p {block = 4, layout = "gemm_b", shape = [2, 3]} : tensor<2x3xf32>
  %y = nn.matmul %x, %u : tensor<1x3xf32>
  return %y
}
"#;

#[test]
fn derived_weights_round_trip_and_are_type_checked() {
    let mut g = round_trips(DERIVED);
    // Collecting unused weights keeps the operands of used derivations.
    g.gc_weights();
    assert_eq!(g.weights().len(), 4);
    assert!(print(&g).contains("derived<nn.pack {block = 4, layout = \"gemm_b\"}>(@ws)"));
    let wrong = DERIVED.replace(
        "weight @ws : tensor<2x3xf32>",
        "weight @ws : tensor<3x2xf32>",
    );
    assert!(parse_err(&wrong).contains("derived weight @ws"));
    let later = DERIVED.replace("derived<nn.mul>(@w, @s)", "derived<nn.mul>(@w, @p)");
    assert!(parse_err(&later).contains("unknown weight @p"));
    let bad_attr = DERIVED.replace("derived<nn.mul>", "derived<nn.mul {axis = 1}>");
    assert!(parse_err(&bad_attr).contains("unknown attribute 'axis'"));
}

const PLANNED: &str = r#"graph @g(%x: tensor<16xf32>) -> (tensor<16xf32>) {
  %a = nn.exp %x : tensor<16xf32>
  %b = nn.neg %a : tensor<16xf32>
  %c = nn.tanh %x : tensor<16xf32>
  %d = nn.add %b, %c : tensor<16xf32>
  %e = nn.reshape %d, %s : tensor<4x4xf32>
  %f = nn.reshape %e, %s2 : tensor<16xf32>
  return %f
}
memory_plan {arena = 128, align = 64} {
  %a = arena 0
  %b = arena 0
  %c = arena 64
  %d = output 0
  %e = output 0
  %f = output 0
}
"#;

fn planned(plan_lines: &str) -> String {
    let head = "graph @g(%x: tensor<16xf32>) -> (tensor<16xf32>) {\n  %s = nn.constant {value = @s} : tensor<2xi64>\n  %s2 = nn.constant {value = @s2} : tensor<1xi64>\n";
    let weights =
        "weight @s : tensor<2xi64> = dense<[4, 4]>\nweight @s2 : tensor<1xi64> = dense<[16]>\n";
    let rest = PLANNED
        .split_once("{\n")
        .map(|(_, r)| r)
        .expect("a body")
        .split_once("memory_plan")
        .map(|(body, _)| body)
        .expect("a plan");
    format!("{weights}{head}{rest}memory_plan {{arena = 128, align = 64}} {{\n{plan_lines}}}\n")
}

#[test]
fn memory_plans_round_trip_and_allow_in_place_and_views() {
    let ok = "  %a = arena 0\n  %b = arena 0\n  %c = arena 64\n  %d = output 0\n  %e = output 0\n  %f = output 0\n";
    let g = round_trips(&planned(ok));
    let plan = g.memory_plan.as_ref().expect("a plan");
    assert_eq!(plan.arena_bytes, 128);
    assert_eq!(
        plan.homes
            .values()
            .filter(|h| **h == Home::Output(0))
            .count(),
        3
    );
}

#[test]
fn unsafe_memory_plans_are_refused() {
    // %c is written over %b while %b is still needed by %d.
    let clash = "  %a = arena 0\n  %b = arena 64\n  %c = arena 64\n  %d = output 0\n  %e = output 0\n  %f = output 0\n";
    let e = parse_err(&planned(clash));
    assert!(e.contains("share memory while both are live"), "{e}");
    // A view must share its operand's home.
    let view = "  %a = arena 0\n  %b = arena 0\n  %c = arena 64\n  %d = output 0\n  %e = arena 0\n  %f = output 0\n";
    assert!(parse_err(&planned(view)).contains("must share its home"));
    // A computed value cannot live in a read-only input.
    let ro = "  %a = input 0\n  %b = arena 0\n  %c = arena 64\n  %d = output 0\n  %e = output 0\n  %f = output 0\n";
    assert!(parse_err(&planned(ro)).contains("read-only"));
    // Offsets are aligned and fit.
    let mis = "  %a = arena 100\n  %b = arena 64\n  %c = arena 0\n  %d = output 0\n  %e = output 0\n  %f = output 0\n";
    let e = parse_err(&planned(mis));
    assert!(
        e.contains("not aligned") && e.contains("does not fit"),
        "{e}"
    );
    let missing =
        "  %a = arena 0\n  %b = arena 0\n  %c = arena 64\n  %e = output 0\n  %f = output 0\n";
    assert!(parse_err(&planned(missing)).contains("%d (result of nn.add) has no home"));
}

/// A fused epilogue never writes its result over its residual operand: the
/// contraction's kernel may keep partial sums of a blocked reduction in the
/// output before the epilogue reads the residual (BERT's FFN and
/// MobileNetV2's projections computed wrong results when it did). A fused
/// elementwise node may.
#[test]
fn epilogues_are_never_computed_in_place() {
    let g = parse_ok(
        "graph @g(%x: tensor<4x8xf32>, %w: tensor<8x8xf32>, %r: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %e = nn.exp %r : tensor<4x8xf32>
  %y = nn.fused %x, %w, %e {kind = \"epilogue\"} : tensor<4x8xf32> {
    ^(%a: tensor<4x8xf32>, %b: tensor<8x8xf32>, %c: tensor<4x8xf32>):
    %m = nn.matmul %a, %b : tensor<4x8xf32>
    %s = nn.add %m, %c : tensor<4x8xf32>
    return %s
  }
  %z = nn.fused %y {kind = \"elementwise\"} : tensor<4x8xf32> {
    ^(%a: tensor<4x8xf32>):
    %n = nn.neg %a : tensor<4x8xf32>
    %t = nn.tanh %n : tensor<4x8xf32>
    return %t
  }
  return %z, %e
}",
    );
    let node = |i: usize| &g.nodes[i];
    assert!(kiln_ir::plan::in_place_operands(&g, node(1)).is_empty());
    assert_eq!(kiln_ir::plan::in_place_operands(&g, node(2)), [(0, 0)]);
}
