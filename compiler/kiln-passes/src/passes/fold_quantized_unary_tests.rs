//! Tests of `fold-quantized-unary`: every folded graph is run in the
//! interpreter on all 256 codes (in a tensor of odd shape) before and after,
//! and must agree bit for bit; graphs outside the pattern stay unchanged.

use super::*;
use crate::passes::testutil::{assert_unchanged, count, graph};
use kiln_interp::run_graph;
use kiln_ir::text::print;

/// A graph of one `[5, 53]` 8-bit input (`xdt`): `DQ(x)`, the `body` lines
/// (reading `%d`, ending in `%a`), `Q(%a)` into `ydt`. The DQ has scale
/// `xs` and zero point `xz`, the Q `ys` and `yz`.
fn src(xdt: &str, ydt: &str, (xs, xz): (&str, &str), (ys, yz): (&str, &str), body: &str) -> String {
    format!(
        "weight @xs : tensor<f32> = dense<[{xs}]>\n\
         weight @xz : tensor<{xdt}> = dense<[{xz}]>\n\
         weight @ys : tensor<f32> = dense<[{ys}]>\n\
         weight @yz : tensor<{ydt}> = dense<[{yz}]>\n\
         weight @lo : tensor<f32> = dense<[0.0]>\n\
         weight @hi : tensor<f32> = dense<[6.0]>\n\
         weight @k : tensor<1x1xf32> = dense<[0.75]>\n\
         graph @g(%x: tensor<5x53x{xdt}>) -> (tensor<5x53x{ydt}>) {{\n\
           %xs = nn.constant {{value = @xs}} : tensor<f32>\n\
           %xz = nn.constant {{value = @xz}} : tensor<{xdt}>\n\
           %ys = nn.constant {{value = @ys}} : tensor<f32>\n\
           %yz = nn.constant {{value = @yz}} : tensor<{ydt}>\n\
           %lo = nn.constant {{value = @lo}} : tensor<f32>\n\
           %hi = nn.constant {{value = @hi}} : tensor<f32>\n\
           %k = nn.constant {{value = @k}} : tensor<1x1xf32>\n\
           %d = quant.dequantize_linear %x, %xs, %xz : tensor<5x53xf32>\n\
           {body}\n\
           %y = quant.quantize_linear %a, %ys, %yz : tensor<5x53x{ydt}>\n\
           return %y\n\
         }}\n"
    )
}

/// Every code of `dt` (each at least once) in a `[5, 53]` tensor.
fn codes(dt: DType) -> Tensor {
    let v = (0..265i128)
        .map(|i| {
            let b = (i * 97 % 256) as u8;
            if dt == DType::I8 {
                b as i8 as i128
            } else {
                b as i128
            }
        })
        .collect();
    Tensor::from_ints(dt, vec![5, 53], v)
}

/// `s` with `from` replaced by `to`; `from` must occur (an edit that
/// matched nothing would leave the test checking another graph).
fn edit(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "{from:?} is not in\n{s}");
    s.replace(from, to)
}

/// Runs the pass and checks that the interpreter gives the same bytes for
/// every result on every code before and after; returns the rewritten
/// graph and the number of rewrites.
fn run_and_compare(src: &str) -> (Graph, usize) {
    let before = graph(src);
    let mut after = before.clone();
    let stats = FoldQuantizedUnary::default()
        .run(&mut after, &PassOptions::default())
        .expect("pass runs");
    kiln_ir::verify(&after).unwrap_or_else(|e| panic!("{e:?}\n{}", print(&after)));
    let x = codes(before.value(before.inputs[0]).ty.dtype);
    let want = run_graph(&before, std::slice::from_ref(&x)).expect("original runs");
    let got = run_graph(&after, &[x]).expect("folded runs");
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.to_bytes(), g.to_bytes(), "{}", print(&after));
    }
    (after, stats.rewrites)
}

/// [`run_and_compare`], and the pass made one lookup and left no
/// (de)quantization.
fn folds(src: &str) -> Graph {
    let (after, rewrites) = run_and_compare(src);
    assert_eq!(rewrites, 1, "{}", print(&after));
    assert_eq!(count(&after, OpKind::Gather), 1, "{}", print(&after));
    for op in [OpKind::QuantizeLinear, OpKind::DequantizeLinear] {
        assert_eq!(count(&after, op), 0, "{}", print(&after));
    }
    after
}

#[test]
fn clip_between_u8_codes_becomes_a_table() {
    // ReLU6 between two QLinearConvs, scales as ONNX Runtime's quantizer
    // makes them (the clipped range needs a finer scale).
    let g = folds(&src(
        "u8",
        "u8",
        ("0.0473", "117"),
        ("0.0235", "0"),
        "%a = nn.clip %d, %lo, %hi : tensor<5x53xf32>",
    ));
    let text = print(&g);
    assert!(text.contains("weight @y.table : tensor<256xu8>"), "{text}");
    assert!(
        text.contains("%y = nn.gather %y.table, %x {axis = 0}"),
        "{text}"
    );
}

#[test]
fn i8_codes_index_by_their_byte() {
    folds(&src(
        "i8",
        "i8",
        ("0.031", "-5"),
        ("0.017", "3"),
        "%a = nn.relu %d : tensor<5x53xf32>",
    ));
    // Into the other signedness, with saturation at both ends.
    folds(&src(
        "i8",
        "u8",
        ("0.5", "0"),
        ("0.25", "128"),
        "%a = nn.identity %d : tensor<5x53xf32>",
    ));
}

#[test]
fn longer_chains_with_scalar_constants_fold() {
    folds(&src(
        "u8",
        "i8",
        ("0.05", "128"),
        ("0.02", "-1"),
        "%e = nn.hard_swish %d : tensor<5x53xf32>\n\
         %f = nn.mul %e, %k : tensor<5x53xf32>\n\
         %g = nn.sigmoid %f : tensor<5x53xf32>\n\
         %a = nn.mul %g, %g : tensor<5x53xf32>",
    ));
    // A bare requantization (no op between) is a table too.
    let s = src(
        "u8",
        "u8",
        ("0.1", "10"),
        ("0.3", "20"),
        "%a = nn.identity %d : tensor<5x53xf32>",
    );
    let s = edit(&s, "%a = nn.identity %d : tensor<5x53xf32>\n", "");
    let s = edit(&s, "quantize_linear %a,", "quantize_linear %d,");
    folds(&s);
}

#[test]
fn values_used_elsewhere_stay_computed() {
    let s = src(
        "u8",
        "u8",
        ("0.05", "3"),
        ("0.04", "0"),
        "%a = nn.relu %d : tensor<5x53xf32>",
    );
    let s = edit(
        &s,
        "-> (tensor<5x53xu8>)",
        "-> (tensor<5x53xu8>, tensor<5x53xf32>)",
    );
    let s = edit(&s, "return %y", "return %y, %a");
    let (after, rewrites) = run_and_compare(&s);
    assert_eq!(rewrites, 1, "{}", print(&after));
    assert_eq!(count(&after, OpKind::Gather), 1, "{}", print(&after));
    assert_eq!(count(&after, OpKind::Relu), 1, "{}", print(&after));
}

#[test]
fn position_dependent_or_wider_chains_stay() {
    let pass = FoldQuantizedUnary::default();
    let relu = |xdt, ydt| {
        src(
            xdt,
            ydt,
            ("0.05", "3"),
            ("0.04", "0"),
            "%a = nn.relu %d : tensor<5x53xf32>",
        )
    };
    // A per-row constant in the chain: the result depends on the position.
    let s = edit(
        &relu("u8", "u8"),
        "%a = nn.relu %d : tensor<5x53xf32>",
        "%a = nn.mul %d, %r : tensor<5x53xf32>",
    );
    let s = edit(
        &s,
        "weight @lo",
        "weight @r : tensor<5x1xf32> = dense<[1.0, 2.0, 3.0, 4.0, 5.0]>\nweight @lo",
    );
    let s = edit(
        &s,
        "%lo = nn.constant",
        "%r = nn.constant {value = @r} : tensor<5x1xf32>\n  %lo = nn.constant",
    );
    assert_unchanged(&pass, &s);
    // Two runtime operands.
    let s = edit(
        &relu("u8", "u8"),
        "%a = nn.relu %d : tensor<5x53xf32>",
        "%a = nn.add %d, %z : tensor<5x53xf32>",
    );
    let s = edit(
        &s,
        "(%x: tensor<5x53xu8>)",
        "(%x: tensor<5x53xu8>, %z: tensor<5x53xf32>)",
    );
    assert_unchanged(&pass, &s);
    // A chain that is not elementwise.
    let s = edit(
        &relu("u8", "u8"),
        "%a = nn.relu %d : tensor<5x53xf32>",
        "%a = nn.softmax %d {axis = 1} : tensor<5x53xf32>",
    );
    assert_unchanged(&pass, &s);
    // Wider codes out.
    assert_unchanged(&pass, &relu("u8", "u16"));
    // A per-axis scale and zero point in.
    let mut s = relu("u8", "u8");
    for (from, to) in [
        (
            "weight @xs : tensor<f32> = dense<[0.05]>",
            "weight @xs : tensor<5xf32> = dense<[0.05, 0.1, 0.2, 0.3, 0.4]>",
        ),
        (
            "%xs = nn.constant {value = @xs} : tensor<f32>",
            "%xs = nn.constant {value = @xs} : tensor<5xf32>",
        ),
        ("%x, %xs, %xz :", "%x, %xs, %xz {axis = 0} :"),
        (
            "weight @xz : tensor<u8> = dense<[3]>",
            "weight @xz : tensor<5xu8> = dense<[3, 3, 3, 3, 3]>",
        ),
        (
            "%xz = nn.constant {value = @xz} : tensor<u8>",
            "%xz = nn.constant {value = @xz} : tensor<5xu8>",
        ),
    ] {
        s = edit(&s, from, to);
    }
    assert_unchanged(&pass, &s);
}
