//! Tests of `recognize-norms`: each decomposed form as PyTorch or
//! TensorFlow exporters write it, checked with the interpreter before and
//! after on random inputs, and the near misses that must stay.

use super::*;
use crate::passes::testutil::{assert_unchanged, check_pass, count, graph, ops, run};
use kiln_ir::text::print;

/// Scalar f32 weights `@name = value` and their constants, then a graph
/// `@t` with the given inputs, one output of type `out` named `%y`, and
/// `body`.
fn g(
    consts: &[(&str, f64)],
    ints: &[(&str, &[i64])],
    inputs: &str,
    out: &str,
    body: &str,
) -> String {
    let mut s = String::new();
    let mut defs = String::new();
    for (name, v) in consts {
        s += &format!("weight @{name} : tensor<f32> = dense<[{:?}]>\n", *v as f32);
        defs += &format!("  %{name} = nn.constant {{value = @{name}}} : tensor<f32>\n");
    }
    for (name, v) in ints {
        let list: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        s += &format!(
            "weight @{name} : tensor<{}xi64> = dense<[{}]>\n",
            v.len(),
            list.join(", ")
        );
        defs += &format!(
            "  %{name} = nn.constant {{value = @{name}}} : tensor<{}xi64>\n",
            v.len()
        );
    }
    s += &format!("graph @t({inputs}) -> ({out}) {{\n{defs}{body}  return %y\n}}\n");
    s
}

const T: &str = "tensor<2x3x8xf32>";

/// PyTorch's LayerNorm decomposition with the given variance, division and
/// affine lines.
fn layer_norm_src(square: &str, divide: &str, affine: &str) -> String {
    g(
        &[("two", 2.0), ("eps", 1e-5), ("one", 1.0)],
        &[("axes", &[-1])],
        &format!("%x: {T}, %gamma: tensor<8xf32>, %beta: tensor<8xf32>"),
        T,
        &format!(
            "  %mean = nn.reduce_mean %x, %axes : tensor<2x3x1xf32>
  %d = nn.sub %x, %mean : {T}
{square}
  %var = nn.reduce_mean %sq, %axes : tensor<2x3x1xf32>
  %ve = nn.add %var, %eps : tensor<2x3x1xf32>
  %std = nn.sqrt %ve : tensor<2x3x1xf32>
{divide}
{affine}"
        ),
    )
}

const POW: &str = "  %sq = nn.pow %d, %two : tensor<2x3x8xf32>";
const MULSQ: &str = "  %sq = nn.mul %d, %d : tensor<2x3x8xf32>";
const DIV: &str = "  %n = nn.div %d, %std : tensor<2x3x8xf32>";
const RECIP: &str =
    "  %r = nn.reciprocal %std : tensor<2x3x1xf32>\n  %n = nn.mul %r, %d : tensor<2x3x8xf32>";
const ONE_OVER: &str =
    "  %r = nn.div %one, %std : tensor<2x3x1xf32>\n  %n = nn.mul %d, %r : tensor<2x3x8xf32>";

#[test]
fn pytorch_layer_norm_forms() {
    let affine = [
        (
            "  %s = nn.mul %n, %gamma : tensor<2x3x8xf32>\n  %y = nn.add %s, %beta : tensor<2x3x8xf32>",
            "%y = nn.layer_norm %x, %gamma, %beta {axis = -1, epsilon = 9.999999747378752e-6, stash_type = 1}",
        ),
        (
            "  %s = nn.mul %gamma, %n : tensor<2x3x8xf32>\n  %y = nn.add %beta, %s : tensor<2x3x8xf32>",
            "nn.layer_norm %x, %gamma, %beta",
        ),
        ("  %y = nn.mul %n, %gamma : tensor<2x3x8xf32>", "nn.layer_norm %x, %gamma {"),
        ("  %y = nn.add %n, %beta : tensor<2x3x8xf32>", "nn.layer_norm %x, %ones, %beta {"),
        ("  %y = nn.relu %n : tensor<2x3x8xf32>", "nn.layer_norm %x, %ones {"),
    ];
    for square in [POW, MULSQ] {
        for divide in [DIV, RECIP, ONE_OVER] {
            for (aff, want) in affine {
                let after = check_pass(
                    &RecognizeNorms::default(),
                    &layer_norm_src(square, divide, aff),
                );
                let text = print(&after);
                assert!(text.contains(want), "{text}");
                assert!(
                    !ops(&after).iter().any(|op| matches!(
                        op,
                        OpKind::ReduceMean | OpKind::Sqrt | OpKind::Sub | OpKind::Div
                    )),
                    "{text}"
                );
            }
        }
    }
}

#[test]
fn layer_norm_over_two_trailing_axes() {
    let src = g(
        &[("eps", 1e-3)],
        &[("axes", &[1, 2])],
        "%x: tensor<2x3x5xf32>",
        "tensor<2x3x5xf32>",
        "  %mean = nn.reduce_mean %x, %axes : tensor<2x1x1xf32>
  %d = nn.sub %x, %mean : tensor<2x3x5xf32>
  %sq = nn.mul %d, %d : tensor<2x3x5xf32>
  %var = nn.reduce_mean %sq, %axes : tensor<2x1x1xf32>
  %ve = nn.add %eps, %var : tensor<2x1x1xf32>
  %std = nn.sqrt %ve : tensor<2x1x1xf32>
  %y = nn.div %d, %std : tensor<2x3x5xf32>
",
    );
    let after = check_pass(&RecognizeNorms::default(), &src);
    let text = print(&after);
    assert!(
        text.contains("nn.layer_norm %x, %ones {axis = -2"),
        "{text}"
    );
    assert!(text.contains("weight @ones : tensor<3x5xf32>"), "{text}");
}

#[test]
fn tensorflow_layer_norm() {
    let src = g(
        &[("eps", 1e-3)],
        &[("axes", &[-1])],
        &format!("%x: {T}, %gamma: tensor<8xf32>, %beta: tensor<8xf32>"),
        T,
        &format!(
            "  %mean = nn.reduce_mean %x, %axes : tensor<2x3x1xf32>
  %d = nn.sub %x, %mean : {T}
  %sq = nn.mul %d, %d : {T}
  %var = nn.reduce_mean %sq, %axes : tensor<2x3x1xf32>
  %ve = nn.add %var, %eps : tensor<2x3x1xf32>
  %std = nn.sqrt %ve : tensor<2x3x1xf32>
  %r = nn.reciprocal %std : tensor<2x3x1xf32>
  %m = nn.mul %r, %gamma : {T}
  %xm = nn.mul %x, %m : {T}
  %mm = nn.mul %mean, %m : {T}
  %c = nn.sub %beta, %mm : {T}
  %y = nn.add %xm, %c : {T}
"
        ),
    );
    let after = check_pass(&RecognizeNorms::default(), &src);
    let text = print(&after);
    assert!(
        text.contains(
            "%y = nn.layer_norm %x, %gamma, %beta {axis = -1, epsilon = 0.0010000000474974513"
        ),
        "{text}"
    );
    assert_eq!(ops(&after), [OpKind::LayerNorm], "{text}");
}

/// Llama's RMSNorm: `weight * (x * rsqrt(mean(x^2) + eps))`, rsqrt exported
/// as Sqrt + Reciprocal.
#[test]
fn llama_rms_norm() {
    for (sq, inv) in [
        (
            "%sq = nn.pow %x, %two",
            "%r = nn.reciprocal %std : tensor<2x3x1xf32>\n  %n = nn.mul %x, %r",
        ),
        ("%sq = nn.mul %x, %x", "%n = nn.div %x, %std"),
    ] {
        let src = g(
            &[("two", 2.0), ("eps", 1e-6)],
            &[("axes", &[-1])],
            &format!("%x: {T}, %w: tensor<8xf32>"),
            T,
            &format!(
                "  {sq} : {T}
  %ms = nn.reduce_mean %sq, %axes : tensor<2x3x1xf32>
  %me = nn.add %ms, %eps : tensor<2x3x1xf32>
  %std = nn.sqrt %me : tensor<2x3x1xf32>
  {inv} : {T}
  %y = nn.mul %w, %n : {T}
"
            ),
        );
        let after = check_pass(&RecognizeNorms::default(), &src);
        let text = print(&after);
        assert!(text.contains("%y = nn.rms_norm %x, %w {axis = -1, epsilon = 9.999999974752427e-7, stash_type = 1}"), "{text}");
        assert_eq!(ops(&after), [OpKind::RmsNorm], "{text}");
    }
}

#[test]
fn softmax_and_log_softmax_spelled_out() {
    let shifted = "  %mx = nn.reduce_max %x, %axes : tensor<2x1x8xf32>
  %d = nn.sub %x, %mx : tensor<2x3x8xf32>
";
    for (pre, d) in [(shifted, "%d"), ("", "%x")] {
        let soft = g(
            &[],
            &[("axes", &[1])],
            &format!("%x: {T}"),
            T,
            &format!(
                "{pre}  %e = nn.exp {d} : {T}
  %s = nn.reduce_sum %e, %axes : tensor<2x1x8xf32>
  %y = nn.div %e, %s : {T}
"
            ),
        );
        let after = check_pass(&RecognizeNorms::default(), &soft);
        assert!(
            print(&after).contains("%y = nn.softmax %x {axis = -2}"),
            "{}",
            print(&after)
        );
        assert_eq!(ops(&after), [OpKind::Softmax]);
        let log = g(
            &[],
            &[("axes", &[1])],
            &format!("%x: {T}"),
            T,
            &format!(
                "{pre}  %e = nn.exp {d} : {T}
  %s = nn.reduce_sum %e, %axes : tensor<2x1x8xf32>
  %l = nn.log %s : tensor<2x1x8xf32>
  %y = nn.sub {d}, %l : {T}
"
            ),
        );
        let after = check_pass(&RecognizeNorms::default(), &log);
        assert!(
            print(&after).contains("%y = nn.log_softmax %x {axis = -2}"),
            "{}",
            print(&after)
        );
        assert_eq!(ops(&after), [OpKind::LogSoftmax]);
    }
    let lse = g(
        &[],
        &[("axes", &[-1])],
        &format!("%x: {T}"),
        T,
        &format!("  %l = nn.reduce_log_sum_exp %x, %axes : tensor<2x3x1xf32>\n  %y = nn.sub %x, %l : {T}\n"),
    );
    let after = check_pass(&RecognizeNorms::default(), &lse);
    assert_eq!(ops(&after), [OpKind::LogSoftmax], "{}", print(&after));
}

/// The exact GELU in the operand orders exporters produce.
#[test]
fn exact_gelu_in_every_order() {
    let inner = [
        "  %u = nn.div %x, %sqrt2 : tensor<4x7xf32>\n",
        "  %u = nn.mul %inv_sqrt2, %x : tensor<4x7xf32>\n",
    ];
    let outer = [
        // BERT: x * 0.5 * (1 + erf(x / sqrt(2)))
        "  %h = nn.mul %x, %half : tensor<4x7xf32>\n  %y = nn.mul %h, %b : tensor<4x7xf32>\n",
        // torch.nn.GELU before opset 20: (x * (1 + erf)) * 0.5
        "  %h = nn.mul %x, %b : tensor<4x7xf32>\n  %y = nn.mul %h, %half : tensor<4x7xf32>\n",
        // x * (0.5 * (1 + erf))
        "  %h = nn.mul %half, %b : tensor<4x7xf32>\n  %y = nn.mul %x, %h : tensor<4x7xf32>\n",
    ];
    for i in inner {
        for o in outer {
            let src = g(
                &[("sqrt2", std::f64::consts::SQRT_2), ("inv_sqrt2", std::f64::consts::FRAC_1_SQRT_2), ("half", 0.5), ("one", 1.0)],
                &[],
                "%x: tensor<4x7xf32>",
                "tensor<4x7xf32>",
                &format!("{i}  %e = nn.erf %u : tensor<4x7xf32>\n  %b = nn.add %one, %e : tensor<4x7xf32>\n{o}"),
            );
            let after = check_pass(&RecognizeNorms::default(), &src);
            let text = print(&after);
            assert!(
                text.contains("%y = nn.gelu %x {approximate = \"none\"}"),
                "{text}"
            );
            assert_eq!(ops(&after), [OpKind::Gelu], "{text}");
        }
    }
}

/// GPT-2's `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`.
#[test]
fn tanh_gelu() {
    for cube in [
        "  %p = nn.pow %x, %three : tensor<4x7xf32>\n",
        "  %xx = nn.mul %x, %x : tensor<4x7xf32>\n  %p = nn.mul %xx, %x : tensor<4x7xf32>\n",
    ] {
        let src = g(
            &[
                ("three", 3.0),
                ("c", 0.044715),
                ("k", (2.0 / std::f64::consts::PI).sqrt()),
                ("half", 0.5),
                ("one", 1.0),
            ],
            &[],
            "%x: tensor<4x7xf32>",
            "tensor<4x7xf32>",
            &format!(
                "{cube}  %q = nn.mul %c, %p : tensor<4x7xf32>
  %r = nn.add %x, %q : tensor<4x7xf32>
  %s = nn.mul %k, %r : tensor<4x7xf32>
  %t = nn.tanh %s : tensor<4x7xf32>
  %b = nn.add %t, %one : tensor<4x7xf32>
  %h = nn.mul %half, %x : tensor<4x7xf32>
  %y = nn.mul %h, %b : tensor<4x7xf32>
"
            ),
        );
        let after = check_pass(&RecognizeNorms::default(), &src);
        let text = print(&after);
        assert!(
            text.contains("%y = nn.gelu %x {approximate = \"tanh\"}"),
            "{text}"
        );
        assert_eq!(ops(&after), [OpKind::Gelu], "{text}");
    }
}

#[test]
fn silu_swish_and_hard_swish() {
    let cases = [
        ("  %s = nn.sigmoid %x : tensor<4x7xf32>\n  %y = nn.mul %s, %x : tensor<4x7xf32>\n", "%y = nn.swish %x {alpha = 1.0}"),
        (
            "  %bx = nn.mul %x, %beta : tensor<4x7xf32>\n  %s = nn.sigmoid %bx : tensor<4x7xf32>\n  %y = nn.mul %x, %s : tensor<4x7xf32>\n",
            "%y = nn.swish %x {alpha = 1.7020000219345093}",
        ),
        (
            "  %h = nn.hard_sigmoid %x {alpha = 0.1666666716337204, beta = 0.5} : tensor<4x7xf32>\n  %y = nn.mul %x, %h : tensor<4x7xf32>\n",
            "%y = nn.hard_swish %x",
        ),
        (
            "  %a = nn.add %x, %three : tensor<4x7xf32>\n  %c = nn.clip %a, %zero, %six : tensor<4x7xf32>\n  %p = nn.mul %x, %c : tensor<4x7xf32>\n  %y = nn.div %p, %six : tensor<4x7xf32>\n",
            "%y = nn.hard_swish %x",
        ),
        (
            "  %a = nn.add %three, %x : tensor<4x7xf32>\n  %c = nn.clip %a, %zero, %six : tensor<4x7xf32>\n  %d = nn.div %c, %six : tensor<4x7xf32>\n  %y = nn.mul %d, %x : tensor<4x7xf32>\n",
            "%y = nn.hard_swish %x",
        ),
        (
            "  %a = nn.add %x, %three : tensor<4x7xf32>\n  %c = nn.clip %a, %zero, %six : tensor<4x7xf32>\n  %p = nn.mul %c, %x : tensor<4x7xf32>\n  %y = nn.mul %sixth, %p : tensor<4x7xf32>\n",
            "%y = nn.hard_swish %x",
        ),
    ];
    for (body, want) in cases {
        let src = g(
            &[
                ("beta", 1.702),
                ("three", 3.0),
                ("zero", 0.0),
                ("six", 6.0),
                ("sixth", 1.0 / 6.0),
            ],
            &[],
            "%x: tensor<4x7xf32>",
            "tensor<4x7xf32>",
            body,
        );
        let after = check_pass(&RecognizeNorms::default(), &src);
        let text = print(&after);
        assert!(text.contains(want), "{text}");
        assert_eq!(ops(&after).len(), 1, "{text}");
    }
}

/// Shapes of one and primes; f16 constants match to their own precision.
#[test]
fn odd_shapes_and_half_precision() {
    for shape in ["1x1", "13x1", "3x17"] {
        let t = format!("tensor<{shape}xf32>");
        let src = g(
            &[("sqrt2", std::f64::consts::SQRT_2), ("half", 0.5), ("one", 1.0)],
            &[],
            &format!("%x: {t}"),
            &t,
            &format!("  %u = nn.div %x, %sqrt2 : {t}\n  %e = nn.erf %u : {t}\n  %b = nn.add %e, %one : {t}\n  %h = nn.mul %x, %half : {t}\n  %y = nn.mul %h, %b : {t}\n"),
        );
        let after = check_pass(&RecognizeNorms::default(), &src);
        assert_eq!(ops(&after), [OpKind::Gelu]);
    }
    // f16: 0x3DA8 is sqrt(2) rounded to f16 (1.4140625, 2.1e-4 off).
    let src = "weight @sqrt2 : tensor<f16> = dense<\"0xA83D\">
weight @half : tensor<f16> = dense<\"0x0038\">
weight @one : tensor<f16> = dense<\"0x003C\">
graph @t(%x: tensor<5x3xf16>) -> (tensor<5x3xf16>) {
  %sqrt2 = nn.constant {value = @sqrt2} : tensor<f16>
  %half = nn.constant {value = @half} : tensor<f16>
  %one = nn.constant {value = @one} : tensor<f16>
  %u = nn.div %x, %sqrt2 : tensor<5x3xf16>
  %e = nn.erf %u : tensor<5x3xf16>
  %b = nn.add %e, %one : tensor<5x3xf16>
  %h = nn.mul %x, %half : tensor<5x3xf16>
  %y = nn.mul %h, %b : tensor<5x3xf16>
  return %y
}";
    let after = check_pass(&RecognizeNorms::default(), src);
    assert_eq!(ops(&after), [OpKind::Gelu]);
}

#[test]
fn near_misses_stay() {
    let gelu = |sqrt2: f64, extra_out: bool| {
        let (out, ret) = if extra_out {
            ("tensor<4x7xf32>, tensor<4x7xf32>", "%y, %e")
        } else {
            ("tensor<4x7xf32>", "%y")
        };
        format!(
            "weight @sqrt2 : tensor<f32> = dense<[{:?}]>
weight @half : tensor<f32> = dense<[0.5]>
weight @one : tensor<f32> = dense<[1.0]>
graph @t(%x: tensor<4x7xf32>) -> ({out}) {{
  %sqrt2 = nn.constant {{value = @sqrt2}} : tensor<f32>
  %half = nn.constant {{value = @half}} : tensor<f32>
  %one = nn.constant {{value = @one}} : tensor<f32>
  %u = nn.div %x, %sqrt2 : tensor<4x7xf32>
  %e = nn.erf %u : tensor<4x7xf32>
  %b = nn.add %e, %one : tensor<4x7xf32>
  %h = nn.mul %x, %half : tensor<4x7xf32>
  %y = nn.mul %h, %b : tensor<4x7xf32>
  return {ret}
}}",
            sqrt2 as f32
        )
    };
    let cases = [
        // sqrt(2) off by 1e-4: a different function.
        gelu(1.4143, false),
        // The erf is also returned: it cannot disappear.
        gelu(std::f64::consts::SQRT_2, true),
        // Softmax over two axes is not one nn.softmax.
        g(
            &[],
            &[("axes", &[1, 2])],
            &format!("%x: {T}"),
            T,
            &format!("  %e = nn.exp %x : {T}\n  %s = nn.reduce_sum %e, %axes : tensor<2x1x1xf32>\n  %y = nn.div %e, %s : {T}\n"),
        ),
        // Normalizing over a leading axis is not a layer norm.
        g(
            &[("eps", 1e-5)],
            &[("axes", &[0])],
            &format!("%x: {T}"),
            T,
            &format!(
                "  %mean = nn.reduce_mean %x, %axes : tensor<1x3x8xf32>
  %d = nn.sub %x, %mean : {T}
  %sq = nn.mul %d, %d : {T}
  %var = nn.reduce_mean %sq, %axes : tensor<1x3x8xf32>
  %ve = nn.add %var, %eps : tensor<1x3x8xf32>
  %std = nn.sqrt %ve : tensor<1x3x8xf32>
  %y = nn.div %d, %std : {T}
"
            ),
        ),
        // x * sigmoid(z) for another z.
        "graph @t(%x: tensor<4xf32>, %z: tensor<4xf32>) -> (tensor<4xf32>) {
  %s = nn.sigmoid %z : tensor<4xf32>
  %y = nn.mul %x, %s : tensor<4xf32>
  return %y
}"
        .to_string(),
    ];
    for src in cases {
        assert_unchanged(&RecognizeNorms::default(), &src);
    }
}

#[test]
fn options_turn_patterns_off() {
    let src = "graph @t(%x: tensor<4xf32>) -> (tensor<4xf32>) {
  %s = nn.sigmoid %x : tensor<4xf32>
  %y = nn.mul %x, %s : tensor<4xf32>
  return %y
}";
    let pass = RecognizeNorms {
        options: Options {
            swish: false,
            ..Options::default()
        },
    };
    let (_, stats) = run(&pass, src);
    assert!(!stats.changed());
    let (_, stats) = run(&RecognizeNorms::default(), src);
    assert!(stats.changed());
    assert_eq!(count(&graph(src), OpKind::Swish), 0);
}
