//! Tests of `recognize-qdq-weights`, each checked with the interpreter
//! before and after on random inputs (the rewrite keeps the meaning).

use super::*;
use crate::passes::testutil::{assert_unchanged, check_pass, count};
use kiln_ir::text::print;

/// `weight @name : tensor<..x{dt}> = dense<[...]>` of integers cycling
/// through `lo..=hi`.
fn ints(name: &str, shape: &[u64], dt: &str, lo: i64, hi: i64, seed: i64) -> String {
    let n: u64 = shape.iter().product();
    let span = hi - lo + 1;
    let v: Vec<String> = (0..n as i64)
        .map(|i| (lo + (i * 7 + seed * 3 + i * i % 5).rem_euclid(span)).to_string())
        .collect();
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let bits = kiln_ir::DType::from_name(dt).expect("a dtype").bits();
    if bits < 8 {
        // Sub-byte weights are written as their packed bytes.
        let codes = v
            .iter()
            .map(|x| x.parse::<i64>().expect("an integer") as u8);
        let hex: String = packing::pack(codes, bits)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        return format!(
            "weight @{name} : tensor<{}x{dt}> = dense<\"0x{hex}\">\n",
            dims.join("x")
        );
    }
    format!(
        "weight @{name} : tensor<{}x{dt}> = dense<[{}]>\n",
        dims.join("x"),
        v.join(", ")
    )
}

fn floats(name: &str, shape: &[u64], seed: u64) -> String {
    let n: u64 = shape.iter().product();
    let v: Vec<String> = (0..n)
        .map(|i| format!("{:?}", 0.01 + ((i * 13 + seed * 7) % 17) as f32 * 0.003))
        .collect();
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let ty = if dims.is_empty() {
        "f32".to_string()
    } else {
        format!("{}xf32", dims.join("x"))
    };
    format!(
        "weight @{name} : tensor<{ty}> = dense<[{}]>\n",
        v.join(", ")
    )
}

fn graph(
    weights: &str,
    k: u64,
    n: u64,
    wdt: &str,
    sty: &str,
    zp: Option<&str>,
    attrs: &str,
) -> String {
    let (zop, zdecl) = match zp {
        Some(t) => (
            ", %z".to_string(),
            format!("  %z = nn.constant {{value = @z}} : {t}\n"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "{weights}graph @t(%x: tensor<3x{k}xf32>) -> (tensor<3x{n}xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<{k}x{n}x{wdt}>
  %s = nn.constant {{value = @s}} : {sty}
{zdecl}  %b = quant.dequantize_linear %w, %s{zop} {attrs} : tensor<{k}x{n}xf32>
  %y = nn.matmul %x, %b : tensor<3x{n}xf32>
  return %y
}}"
    )
}

#[test]
fn per_column_int8_with_zero_points() {
    let (k, n) = (37, 6);
    let src = graph(
        &format!(
            "{}{}{}",
            ints("w", &[k, n], "i8", -128, 127, 1),
            floats("s", &[n], 2),
            ints("z", &[n], "i8", -3, 3, 4)
        ),
        k,
        n,
        "i8",
        &format!("tensor<{n}xf32>"),
        Some(&format!("tensor<{n}xi8>")),
        "{axis = 1}",
    );
    let g = check_pass(&RecognizeQdqWeights, &src);
    let text = print(&g);
    assert_eq!(count(&g, OpKind::QMatMul), 1, "{text}");
    assert!(
        text.contains("derived<nn.transpose {perm = [1, 0]}>(@w)"),
        "{text}"
    );
}

#[test]
fn blocked_u4_along_k_with_zero_points_and_a_short_last_block() {
    // K = 70: blocks of 32, 32 and 6; 3 zero points per row, padded to 4.
    let (k, n) = (70, 5);
    let src = graph(
        &format!(
            "{}{}{}",
            ints("w", &[k, n], "u4", 0, 15, 2),
            floats("s", &[3, n], 5),
            ints("z", &[3, n], "u4", 5, 10, 6)
        ),
        k,
        n,
        "u4",
        &format!("tensor<3x{n}xf32>"),
        Some(&format!("tensor<3x{n}xu4>")),
        "{axis = 0, block_size = 32}",
    );
    let g = check_pass(&RecognizeQdqWeights, &src);
    let text = print(&g);
    assert!(text.contains("tensor<5x4xu4>"), "{text}");
    assert!(text.contains("{block_size = 32}"), "{text}");
}

#[test]
fn per_tensor_i4_without_zero_point() {
    let (k, n) = (16, 9);
    let src = graph(
        &format!(
            "{}{}",
            ints("w", &[k, n], "i4", -8, 7, 3),
            floats("s", &[], 1)
        ),
        k,
        n,
        "i4",
        "tensor<f32>",
        None,
        "",
    );
    let g = check_pass(&RecognizeQdqWeights, &src);
    assert_eq!(count(&g, OpKind::QMatMul), 1, "{}", print(&g));
}

#[test]
fn other_granularities_and_shared_dequantizations_stay() {
    let (k, n) = (8, 3);
    // Per-row (axis 0) scales: one scale per K index, not per output.
    let src = graph(
        &format!(
            "{}{}",
            ints("w", &[k, n], "i8", -9, 9, 1),
            floats("s", &[k], 2)
        ),
        k,
        n,
        "i8",
        &format!("tensor<{k}xf32>"),
        None,
        "{axis = 0}",
    );
    assert_unchanged(&RecognizeQdqWeights, &src);
    // The dequantized weight is also a graph output.
    let shared = src
        .replace(
            &format!("-> (tensor<3x{n}xf32>)"),
            &format!("-> (tensor<3x{n}xf32>, tensor<{k}x{n}xf32>)"),
        )
        .replace("return %y", "return %y, %b");
    assert_unchanged(&RecognizeQdqWeights, &shared);
}

/// A Gemm `x[3, K] * B + beta * c[N]` whose `B` is dequantized from `w`
/// (stored `[N, K]` with `trans_b`).
fn gemm_graph(weights: &str, k: u64, n: u64, wdt: &str, sty: &str, dq: &str, gemm: &str) -> String {
    let wshape = if gemm.contains("trans_b = true") {
        format!("{n}x{k}")
    } else {
        format!("{k}x{n}")
    };
    format!(
        "{weights}graph @t(%x: tensor<3x{k}xf32>) -> (tensor<3x{n}xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<{wshape}x{wdt}>
  %s = nn.constant {{value = @s}} : {sty}
  %c = nn.constant {{value = @c}} : tensor<{n}xf32>
  %b = quant.dequantize_linear %w, %s {dq} : tensor<{wshape}xf32>
  %y = nn.gemm %x, %b, %c {gemm} : tensor<3x{n}xf32>
  return %y
}}"
    )
}

#[test]
fn gemm_with_transposed_rows_per_output_row_and_a_scaled_bias() {
    // trans_b: the codes are [N, K] rows already (no derived transpose);
    // axis 0 is per output row; the bias is added after, times beta.
    let (k, n) = (29, 7);
    let src = gemm_graph(
        &format!(
            "{}{}{}",
            ints("w", &[n, k], "i8", -128, 127, 5),
            floats("s", &[n], 3),
            floats("c", &[n], 4)
        ),
        k,
        n,
        "i8",
        &format!("tensor<{n}xf32>"),
        "{axis = 0}",
        "{beta = 0.5, trans_b = true}",
    );
    let g = check_pass(&RecognizeQdqWeights, &src);
    let text = print(&g);
    assert_eq!(count(&g, OpKind::QMatMul), 1, "{text}");
    assert_eq!(count(&g, OpKind::Gemm), 0, "{text}");
    assert_eq!(count(&g, OpKind::Add), 1, "{text}");
    assert_eq!(count(&g, OpKind::Mul), 1, "{text}");
    assert!(!text.contains("nn.transpose"), "{text}");
    assert!(text.contains("quant.matmul %x, %w, %"), "{text}");
}

#[test]
fn gemm_with_transposed_rows_blocked_along_k() {
    // K = 45 in blocks of 16 (16, 16, 13): scales [N, 3], axis 1.
    let (k, n) = (45, 4);
    let src = gemm_graph(
        &format!(
            "{}{}{}",
            ints("w", &[n, k], "i8", -7, 7, 2),
            floats("s", &[n, 3], 1),
            floats("c", &[n], 6)
        ),
        k,
        n,
        "i8",
        &format!("tensor<{n}x3xf32>"),
        "{axis = 1, block_size = 16}",
        "{trans_b = true}",
    );
    let g = check_pass(&RecognizeQdqWeights, &src);
    let text = print(&g);
    assert!(text.contains("{block_size = 16}"), "{text}");
    assert_eq!(count(&g, OpKind::Mul), 0, "{text}");
}

#[test]
fn gemm_without_trans_b_is_taken_like_a_matmul() {
    let (k, n) = (16, 5);
    let src = gemm_graph(
        &format!(
            "{}{}{}",
            ints("w", &[k, n], "u4", 0, 15, 7),
            floats("s", &[n], 2),
            floats("c", &[n], 3)
        ),
        k,
        n,
        "u4",
        &format!("tensor<{n}xf32>"),
        "{axis = 1}",
        "{}",
    );
    let g = check_pass(&RecognizeQdqWeights, &src);
    let text = print(&g);
    assert!(
        text.contains("derived<nn.transpose {perm = [1, 0]}>(@w)"),
        "{text}"
    );
}

#[test]
fn gemm_with_alpha_or_per_k_scales_stays() {
    let (k, n) = (8, 3);
    let weights = format!(
        "{}{}{}",
        ints("w", &[n, k], "i8", -9, 9, 1),
        floats("s", &[n], 2),
        floats("c", &[n], 3)
    );
    let sty = format!("tensor<{n}xf32>");
    let src = gemm_graph(
        &weights,
        k,
        n,
        "i8",
        &sty,
        "{axis = 0}",
        "{alpha = 2.0, trans_b = true}",
    );
    assert_unchanged(&RecognizeQdqWeights, &src);
    // Per-K scales (axis 1 without blocks) are not per output row.
    let src = gemm_graph(
        &format!(
            "{}{}{}",
            ints("w", &[n, k], "i8", -9, 9, 1),
            floats("s", &[k], 2),
            floats("c", &[n], 3)
        ),
        k,
        n,
        "i8",
        &format!("tensor<{k}xf32>"),
        "{axis = 1}",
        "{trans_b = true}",
    );
    assert_unchanged(&RecognizeQdqWeights, &src);
}

/// `nn.conv %x[2, C, 6, 5], (dequantize_linear %w[M, C/group, 3, 3],
/// %s, %z?) {dq}, %bias {group, pads 1}` in NCHW.
#[allow(clippy::too_many_arguments)]
fn conv_graph(
    weights: &str,
    (c, m, group): (u64, u64, u64),
    wdt: &str,
    sty: &str,
    zty: Option<&str>,
    dq: &str,
) -> String {
    let cg = c / group;
    let (z_decl, z_use) = match zty {
        Some(t) => (format!("  %z = nn.constant {{value = @z}} : {t}\n"), ", %z"),
        None => (String::new(), ""),
    };
    format!(
        "{weights}{}graph @t(%x: tensor<2x{c}x6x5xf32>) -> (tensor<2x{m}x6x5xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<{m}x{cg}x3x3x{wdt}>
  %s = nn.constant {{value = @s}} : {sty}
{z_decl}  %cb = nn.constant {{value = @cb}} : tensor<{m}xf32>
  %b = quant.dequantize_linear %w, %s{z_use} {dq} : tensor<{m}x{cg}x3x3xf32>
  %y = nn.conv %x, %b, %cb {{group = {group}, pads = [1, 1, 1, 1]}} : tensor<2x{m}x6x5xf32>
  return %y
}}",
        floats("cb", &[m], 9)
    )
}

/// Conv weights: per output channel with zero points (int8), blocks along
/// the input channels (int4; uint4 with zero points, grouped), per tensor;
/// the interpreter gives the same result before and after (quant.conv
/// reads the codes in window order). Blocks that do not divide the
/// channels, per-input-channel scales and depthwise weights stay.
#[test]
fn conv_weights_per_channel_blocked_and_per_tensor() {
    let cases = [
        (
            (8, 6, 1),
            "i8",
            ints("w", &[6, 8, 3, 3], "i8", -100, 100, 1)
                + &floats("s", &[6], 2)
                + &ints("z", &[6], "i8", -5, 5, 3),
            "tensor<6xf32>".to_string(),
            Some("tensor<6xi8>"),
            "{axis = 0}",
            "{block_size = 0, group = 1, kernel_shape = [3, 3], pads = [1, 1, 1, 1]}",
        ),
        (
            (16, 5, 1),
            "i4",
            ints("w", &[5, 16, 3, 3], "i4", -8, 7, 4) + &floats("s", &[5, 2, 3, 3], 5),
            "tensor<5x2x3x3xf32>".to_string(),
            None,
            "{axis = 1, block_size = 8}",
            "{block_size = 8, group = 1, kernel_shape = [3, 3], pads = [1, 1, 1, 1]}",
        ),
        (
            (8, 4, 2),
            "u4",
            ints("w", &[4, 4, 3, 3], "u4", 0, 15, 6)
                + &floats("s", &[4, 2, 3, 3], 7)
                + &ints("z", &[4, 2, 3, 3], "u4", 6, 9, 8),
            "tensor<4x2x3x3xf32>".to_string(),
            Some("tensor<4x2x3x3xu4>"),
            "{axis = 1, block_size = 2}",
            "{block_size = 2, group = 2, kernel_shape = [3, 3], pads = [1, 1, 1, 1]}",
        ),
        (
            (4, 3, 1),
            "u8",
            ints("w", &[3, 4, 3, 3], "u8", 0, 255, 9)
                + &floats("s", &[], 1)
                + &ints("z", &[], "u8", 120, 130, 2).replace("tensor<xu8>", "tensor<u8>"),
            "tensor<f32>".to_string(),
            Some("tensor<u8>"),
            "",
            "{block_size = 0, group = 1, kernel_shape = [3, 3], pads = [1, 1, 1, 1]}",
        ),
    ];
    for (shape, wdt, weights, sty, zty, dq, attrs) in cases {
        let src = conv_graph(&weights, shape, wdt, &sty, zty, dq);
        let g = check_pass(&RecognizeQdqWeights, &src);
        let text = print(&g);
        assert_eq!(count(&g, OpKind::QConv), 1, "{text}");
        assert_eq!(count(&g, OpKind::DequantizeLinear), 0, "{text}");
        assert!(text.contains(attrs), "{text}");
        assert!(
            text.contains("derived<nn.transpose {perm = [0, 2, 3, 1]}>(@w)"),
            "{text}"
        );
    }
    // Blocks of 3 do not divide 8 channels; per-input-channel scales
    // (axis 1 without blocks); depthwise weights.
    let stays = [
        conv_graph(
            &(ints("w", &[5, 8, 3, 3], "i4", -8, 7, 4) + &floats("s", &[5, 3, 3, 3], 5)),
            (8, 5, 1),
            "i4",
            "tensor<5x3x3x3xf32>",
            None,
            "{axis = 1, block_size = 3}",
        ),
        conv_graph(
            &(ints("w", &[5, 8, 3, 3], "i8", -8, 7, 4) + &floats("s", &[8], 5)),
            (8, 5, 1),
            "i8",
            "tensor<8xf32>",
            None,
            "{axis = 1}",
        ),
        conv_graph(
            &(ints("w", &[4, 1, 3, 3], "i8", -8, 7, 4) + &floats("s", &[4], 5)),
            (4, 4, 4),
            "i8",
            "tensor<4xf32>",
            None,
            "{axis = 0}",
        ),
    ];
    for src in stays {
        assert_unchanged(&RecognizeQdqWeights, &src);
    }
}
