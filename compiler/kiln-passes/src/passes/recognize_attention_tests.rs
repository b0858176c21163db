//! Tests of `recognize-attention` on graphs spelled the way PyTorch exports
//! BERT, GPT-2 and Llama attention, each checked with the interpreter
//! before and after on random inputs.

use super::*;
use crate::passes::testutil::{
    assert_unchanged, check_pass, check_pass_with, count, graph, normal_floats, padding_mask, run,
};
use kiln_interp::Tensor;
use kiln_ir::text::print;
use rand::RngExt;

/// `weight @name : tensor<...> = dense<[...]>` for i64 values.
fn ints(name: &str, vals: &[i64]) -> String {
    let list: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
    format!(
        "weight @{name} : tensor<{}xi64> = dense<[{}]>\n",
        vals.len(),
        list.join(", ")
    )
}

/// A float weight of `dt` (f16 as the hex bytes the text format needs).
fn floats(name: &str, dt: &str, shape: &str, vals: &[f64]) -> String {
    let data = if dt == "f16" {
        let hex: String = vals
            .iter()
            .flat_map(|&v| half::f16::from_f64(v).to_le_bytes())
            .map(|b| format!("{b:02X}"))
            .collect();
        format!("\"0x{hex}\"")
    } else {
        let list: Vec<String> = vals.iter().map(|&v| format!("{:?}", v as f32)).collect();
        format!("[{}]", list.join(", "))
    };
    format!("weight @{name} : tensor<{shape}{dt}> = dense<{data}>\n")
}

/// A scalar float weight.
fn scalar(name: &str, dt: &str, v: &str) -> String {
    floats(name, dt, "", &[v.parse().expect("a float")])
}

/// Sizes of one test graph.
#[derive(Clone, Copy)]
struct Dims {
    b: u64,
    s: u64,
    h: u64,
    d: u64,
}

/// HF BERT self-attention as exported (opset 14+), after canonicalize:
/// packed projections, K transposed to BHDS in one transpose, scores
/// divided by sqrt(D), an additive mask `[B,1,1,S]`.
fn bert(d: Dims, k_transposes: &str) -> String {
    let Dims { b, s, h, d } = d;
    let hd = h * d;
    let mut t = ints("s4", &[b as i64, s as i64, h as i64, d as i64]);
    t += &ints("s3", &[b as i64, s as i64, hd as i64]);
    t += &scalar("c", "f32", &format!("{:?}", (d as f32).sqrt()));
    t += &format!(
        "graph @bert(%x: tensor<{b}x{s}x{hd}xf32>, %wq: tensor<{hd}x{hd}xf32>, %wk: tensor<{hd}x{hd}xf32>, \
         %wv: tensor<{hd}x{hd}xf32>, %mask: tensor<{b}x1x1x{s}xf32>) -> (tensor<{b}x{s}x{hd}xf32>) {{
  %s4 = nn.constant {{value = @s4}} : tensor<4xi64>
  %s3 = nn.constant {{value = @s3}} : tensor<3xi64>
  %c = nn.constant {{value = @c}} : tensor<f32>
  %q0 = nn.matmul %x, %wq : tensor<{b}x{s}x{hd}xf32>
  %q1 = nn.reshape %q0, %s4 : tensor<{b}x{s}x{h}x{d}xf32>
  %q = nn.transpose %q1 {{perm = [0, 2, 1, 3]}} : tensor<{b}x{h}x{s}x{d}xf32>
  %k0 = nn.matmul %x, %wk : tensor<{b}x{s}x{hd}xf32>
  %k1 = nn.reshape %k0, %s4 : tensor<{b}x{s}x{h}x{d}xf32>
{k_transposes}
  %v0 = nn.matmul %x, %wv : tensor<{b}x{s}x{hd}xf32>
  %v1 = nn.reshape %v0, %s4 : tensor<{b}x{s}x{h}x{d}xf32>
  %v = nn.transpose %v1 {{perm = [0, 2, 1, 3]}} : tensor<{b}x{h}x{s}x{d}xf32>
  %sc = nn.matmul %q, %kt : tensor<{b}x{h}x{s}x{s}xf32>
  %sd = nn.div %sc, %c : tensor<{b}x{h}x{s}x{s}xf32>
  %sm = nn.add %sd, %mask : tensor<{b}x{h}x{s}x{s}xf32>
  %p = nn.softmax %sm {{axis = -1}} : tensor<{b}x{h}x{s}x{s}xf32>
  %o = nn.matmul %p, %v : tensor<{b}x{h}x{s}x{d}xf32>
  %ot = nn.transpose %o {{perm = [0, 2, 1, 3]}} : tensor<{b}x{s}x{h}x{d}xf32>
  %y = nn.reshape %ot, %s3 : tensor<{b}x{s}x{hd}xf32>
  return %y
}}
"
    );
    t
}

/// BERT's K: one composed transpose to `[B, H, D, S]`.
fn k_composed(d: Dims) -> String {
    let Dims { b, s, h, d } = d;
    format!("  %kt = nn.transpose %k1 {{perm = [0, 2, 3, 1]}} : tensor<{b}x{h}x{d}x{s}xf32>")
}

/// BERT's K as exported before canonicalize: BHSD, then the last two dims swapped.
fn k_two_steps(d: Dims) -> String {
    let Dims { b, s, h, d } = d;
    format!(
        "  %k = nn.transpose %k1 {{perm = [0, 2, 1, 3]}} : tensor<{b}x{h}x{s}x{d}xf32>\n  \
         %kt = nn.transpose %k {{perm = [0, 1, 3, 2]}} : tensor<{b}x{h}x{d}x{s}xf32>"
    )
}

const BERT: Dims = Dims {
    b: 2,
    s: 5,
    h: 3,
    d: 4,
};

#[test]
fn bert_becomes_one_packed_attention() {
    for k in [k_composed(BERT), k_two_steps(BERT)] {
        let src = bert(BERT, &k);
        let g = check_pass_with(
            &RecognizeAttention::default(),
            &src,
            &PassOptions::default(),
            &padding_mask,
        );
        let text = print(&g);
        assert_eq!(count(&g, OpKind::Attention), 1, "{text}");
        for gone in [OpKind::Softmax, OpKind::Transpose, OpKind::Div] {
            assert_eq!(count(&g, gone), 0, "{gone:?} left:\n{text}");
        }
        assert!(
            text.contains(
                "%y = nn.attention %q0, %k0, %v0, %mask {kv_num_heads = 3, q_num_heads = 3, scale = 0.5} : tensor<2x5x12xf32>"
            ),
            "{text}"
        );
    }
}

#[test]
fn packed_form_can_be_turned_off() {
    let pass = RecognizeAttention {
        options: Options {
            packed_layout: false,
            ..Options::default()
        },
    };
    let g = check_pass_with(
        &pass,
        &bert(BERT, &k_composed(BERT)),
        &PassOptions::default(),
        &padding_mask,
    );
    let text = print(&g);
    // 4-D operands: Q as it was, K through one new transpose to BHSD.
    assert!(
        text.contains("nn.attention %q, %k, %v, %mask {scale = 0.5} : tensor<2x3x5x4xf32>"),
        "{text}"
    );
    assert!(
        text.contains("%k = nn.transpose %k1 {perm = [0, 2, 1, 3]}"),
        "{text}"
    );
}

/// GPT-2 (HF, eager attention) as exported: fused QKV projection split in
/// three, a causal mask sliced from a constant lower-triangular table and
/// applied with `Where(mask, scores, finfo.min)`, then an additive padding
/// mask.
fn gpt2(d: Dims, max_pos: u64, fill: &str, with_padding: bool) -> String {
    let Dims { b, s, h, d } = d;
    let hd = h * d;
    let mut t = ints("s4", &[b as i64, s as i64, h as i64, d as i64]);
    t += &ints("s3", &[b as i64, s as i64, hd as i64]);
    t += &ints("split", &[hd as i64, hd as i64, hd as i64]);
    t += &ints("starts", &[0, 0]);
    t += &ints("ends", &[s as i64, s as i64]);
    t += &ints("axes", &[2, 3]);
    t += &scalar("c", "f32", &format!("{:?}", (d as f32).sqrt()));
    t += &scalar("fill", "f32", fill);
    let table: Vec<&str> = (0..max_pos * max_pos)
        .map(|e| {
            if e % max_pos <= e / max_pos {
                "true"
            } else {
                "false"
            }
        })
        .collect();
    t += &format!(
        "weight @bias : tensor<1x1x{max_pos}x{max_pos}xbool> = dense<[{}]>\n",
        table.join(", ")
    );
    let (pad_in, pad_use, top) = if with_padding {
        (
            format!(", %mask: tensor<{b}x1x1x{s}xf32>"),
            format!("  %sp = nn.add %sw, %mask : tensor<{b}x{h}x{s}x{s}xf32>\n"),
            "%sp",
        )
    } else {
        (String::new(), String::new(), "%sw")
    };
    t += &format!(
        "graph @gpt2(%x: tensor<{b}x{s}x{hd}xf32>, %w: tensor<{hd}x{h3}xf32>, %bi: tensor<{h3}xf32>{pad_in}) -> (tensor<{b}x{s}x{hd}xf32>) {{
  %s4 = nn.constant {{value = @s4}} : tensor<4xi64>
  %s3 = nn.constant {{value = @s3}} : tensor<3xi64>
  %split = nn.constant {{value = @split}} : tensor<3xi64>
  %starts = nn.constant {{value = @starts}} : tensor<2xi64>
  %ends = nn.constant {{value = @ends}} : tensor<2xi64>
  %axes = nn.constant {{value = @axes}} : tensor<2xi64>
  %c = nn.constant {{value = @c}} : tensor<f32>
  %fill = nn.constant {{value = @fill}} : tensor<f32>
  %bias = nn.constant {{value = @bias}} : tensor<1x1x{max_pos}x{max_pos}xbool>
  %qkv0 = nn.matmul %x, %w : tensor<{b}x{s}x{h3}xf32>
  %qkv = nn.add %qkv0, %bi : tensor<{b}x{s}x{h3}xf32>
  %q0, %k0, %v0 = nn.split %qkv, %split {{axis = 2}} : tensor<{b}x{s}x{hd}xf32>, tensor<{b}x{s}x{hd}xf32>, tensor<{b}x{s}x{hd}xf32>
  %q1 = nn.reshape %q0, %s4 : tensor<{b}x{s}x{h}x{d}xf32>
  %q = nn.transpose %q1 {{perm = [0, 2, 1, 3]}} : tensor<{b}x{h}x{s}x{d}xf32>
  %k1 = nn.reshape %k0, %s4 : tensor<{b}x{s}x{h}x{d}xf32>
  %k = nn.transpose %k1 {{perm = [0, 2, 1, 3]}} : tensor<{b}x{h}x{s}x{d}xf32>
  %v1 = nn.reshape %v0, %s4 : tensor<{b}x{s}x{h}x{d}xf32>
  %v = nn.transpose %v1 {{perm = [0, 2, 1, 3]}} : tensor<{b}x{h}x{s}x{d}xf32>
  %kt = nn.transpose %k {{perm = [0, 1, 3, 2]}} : tensor<{b}x{h}x{d}x{s}xf32>
  %sc = nn.matmul %q, %kt : tensor<{b}x{h}x{s}x{s}xf32>
  %sd = nn.div %sc, %c : tensor<{b}x{h}x{s}x{s}xf32>
  %causal = nn.slice %bias, %starts, %ends, %axes : tensor<1x1x{s}x{s}xbool>
  %sw = nn.where %causal, %sd, %fill : tensor<{b}x{h}x{s}x{s}xf32>
{pad_use}  %p = nn.softmax {top} {{axis = -1}} : tensor<{b}x{h}x{s}x{s}xf32>
  %o = nn.matmul %p, %v : tensor<{b}x{h}x{s}x{d}xf32>
  %ot = nn.transpose %o {{perm = [0, 2, 1, 3]}} : tensor<{b}x{s}x{h}x{d}xf32>
  %y = nn.reshape %ot, %s3 : tensor<{b}x{s}x{hd}xf32>
  return %y
}}
",
        h3 = 3 * hd
    );
    t
}

const GPT2: Dims = Dims {
    b: 1,
    s: 7,
    h: 2,
    d: 3,
};

#[test]
fn gpt2_causal_where_becomes_is_causal() {
    let g = check_pass(
        &RecognizeAttention::default(),
        &gpt2(GPT2, 11, "-3.4028234663852886e38", false),
    );
    let text = print(&g);
    assert!(
        text.contains(
            "%y = nn.attention %q0, %k0, %v0 {is_causal = true, kv_num_heads = 2, q_num_heads = 2, scale = "
        ),
        "{text}"
    );
    for gone in [
        OpKind::Where,
        OpKind::Slice,
        OpKind::Softmax,
        OpKind::Transpose,
    ] {
        assert_eq!(count(&g, gone), 0, "{gone:?} left:\n{text}");
    }
}

#[test]
fn gpt2_with_padding_keeps_the_additive_mask() {
    let g = check_pass_with(
        &RecognizeAttention::default(),
        &gpt2(GPT2, 7, "-inf", true),
        &PassOptions::default(),
        &padding_mask,
    );
    let text = print(&g);
    assert!(
        text.contains("nn.attention %q0, %k0, %v0, %mask {is_causal = true"),
        "{text}"
    );
}

#[test]
fn a_mild_where_fill_is_not_a_mask() {
    // Where(causal, s, -5) is not masking: -5 competes with real scores.
    let (out, stats) = run(
        &RecognizeAttention::default(),
        &gpt2(GPT2, 7, "-5.0", false),
    );
    assert!(!stats.changed(), "{out}");
}

/// A Llama decoder's attention as exported (eager): head-split Q, K, V
/// with a position-dependent term added (RoPE's role: the operands are no
/// longer plain packed projections), K and V repeated for GQA by
/// Unsqueeze/Expand/Reshape, scores times 1/sqrt(D), a causal mask
/// `Trilu(full(min), 1)`, softmax in f32 between casts when `dt` is not
/// f32.
fn llama(dt: &str, b: u64, s: u64, hq: u64, hkv: u64, d: u64) -> String {
    let n = hq / hkv;
    let (hd, kd) = (hq * d, hkv * d);
    let mut t = ints("sq", &[b as i64, s as i64, hq as i64, d as i64]);
    t += &ints("skv", &[b as i64, s as i64, hkv as i64, d as i64]);
    t += &ints("ax2", &[2]);
    t += &ints(
        "eshape",
        &[b as i64, hkv as i64, n as i64, s as i64, d as i64],
    );
    t += &ints("rshape", &[b as i64, hq as i64, s as i64, d as i64]);
    t += &ints("s3", &[b as i64, s as i64, hd as i64]);
    t += &scalar("inv", dt, &format!("{:?}", 1.0 / (d as f32).sqrt()));
    t += "weight @one : tensor<i64> = dense<[1]>\n";
    // torch.finfo(dtype).min
    let min = if dt == "f16" {
        -65504.0
    } else {
        f32::MIN as f64
    };
    t += &floats(
        "full",
        dt,
        &format!("{s}x{s}x"),
        &vec![min; (s * s) as usize],
    );
    let (c1, c2, sin) = if dt == "f32" {
        (String::new(), String::new(), "%sm")
    } else {
        (
            format!("  %sf = nn.cast %sm {{to = f32}} : tensor<{b}x{hq}x{s}x{s}xf32>\n"),
            format!("  %p = nn.cast %pf {{to = {dt}}} : tensor<{b}x{hq}x{s}x{s}x{dt}>\n"),
            "%sf",
        )
    };
    let (sdt, pname) = if dt == "f32" {
        (dt, "%p")
    } else {
        ("f32", "%pf")
    };
    t += &format!(
        "graph @llama(%x: tensor<{b}x{s}x{hd}x{dt}>, %wq: tensor<{hd}x{hd}x{dt}>, %wk: tensor<{hd}x{kd}x{dt}>, \
         %wv: tensor<{hd}x{kd}x{dt}>, %pos: tensor<1x1x{s}x{d}x{dt}>) -> (tensor<{b}x{s}x{hd}x{dt}>) {{
  %sq = nn.constant {{value = @sq}} : tensor<4xi64>
  %skv = nn.constant {{value = @skv}} : tensor<4xi64>
  %ax2 = nn.constant {{value = @ax2}} : tensor<1xi64>
  %eshape = nn.constant {{value = @eshape}} : tensor<5xi64>
  %rshape = nn.constant {{value = @rshape}} : tensor<4xi64>
  %s3 = nn.constant {{value = @s3}} : tensor<3xi64>
  %inv = nn.constant {{value = @inv}} : tensor<{dt}>
  %one = nn.constant {{value = @one}} : tensor<i64>
  %full = nn.constant {{value = @full}} : tensor<{s}x{s}x{dt}>
  %q0 = nn.matmul %x, %wq : tensor<{b}x{s}x{hd}x{dt}>
  %q1 = nn.reshape %q0, %sq : tensor<{b}x{s}x{hq}x{d}x{dt}>
  %q2 = nn.transpose %q1 {{perm = [0, 2, 1, 3]}} : tensor<{b}x{hq}x{s}x{d}x{dt}>
  %q = nn.add %q2, %pos : tensor<{b}x{hq}x{s}x{d}x{dt}>
  %k0 = nn.matmul %x, %wk : tensor<{b}x{s}x{kd}x{dt}>
  %k1 = nn.reshape %k0, %skv : tensor<{b}x{s}x{hkv}x{d}x{dt}>
  %k2 = nn.transpose %k1 {{perm = [0, 2, 1, 3]}} : tensor<{b}x{hkv}x{s}x{d}x{dt}>
  %k = nn.add %k2, %pos : tensor<{b}x{hkv}x{s}x{d}x{dt}>
  %v0 = nn.matmul %x, %wv : tensor<{b}x{s}x{kd}x{dt}>
  %v1 = nn.reshape %v0, %skv : tensor<{b}x{s}x{hkv}x{d}x{dt}>
  %v = nn.transpose %v1 {{perm = [0, 2, 1, 3]}} : tensor<{b}x{hkv}x{s}x{d}x{dt}>
  %ku = nn.unsqueeze %k, %ax2 : tensor<{b}x{hkv}x1x{s}x{d}x{dt}>
  %ke = nn.expand %ku, %eshape : tensor<{b}x{hkv}x{n}x{s}x{d}x{dt}>
  %kr = nn.reshape %ke, %rshape : tensor<{b}x{hq}x{s}x{d}x{dt}>
  %vu = nn.unsqueeze %v, %ax2 : tensor<{b}x{hkv}x1x{s}x{d}x{dt}>
  %ve = nn.expand %vu, %eshape : tensor<{b}x{hkv}x{n}x{s}x{d}x{dt}>
  %vr = nn.reshape %ve, %rshape : tensor<{b}x{hq}x{s}x{d}x{dt}>
  %kt = nn.transpose %kr {{perm = [0, 1, 3, 2]}} : tensor<{b}x{hq}x{d}x{s}x{dt}>
  %sc = nn.matmul %q, %kt : tensor<{b}x{hq}x{s}x{s}x{dt}>
  %ss = nn.mul %sc, %inv : tensor<{b}x{hq}x{s}x{s}x{dt}>
  %causal = nn.trilu %full, %one {{upper = true}} : tensor<{s}x{s}x{dt}>
  %sm = nn.add %ss, %causal : tensor<{b}x{hq}x{s}x{s}x{dt}>
{c1}  {pname} = nn.softmax {sin} {{axis = -1}} : tensor<{b}x{hq}x{s}x{s}x{sdt}>
{c2}  %o = nn.matmul %p, %vr : tensor<{b}x{hq}x{s}x{d}x{dt}>
  %ot = nn.transpose %o {{perm = [0, 2, 1, 3]}} : tensor<{b}x{s}x{hq}x{d}x{dt}>
  %y = nn.reshape %ot, %s3 : tensor<{b}x{s}x{hd}x{dt}>
  return %y
}}
"
    );
    t
}

#[test]
fn llama_gqa_uses_unrepeated_kv_heads_and_is_causal() {
    let g = check_pass(&RecognizeAttention::default(), &llama("f32", 2, 5, 4, 2, 4));
    let text = print(&g);
    assert!(
        text.contains(
            "nn.attention %q, %k, %v {is_causal = true, scale = 0.5} : tensor<2x4x5x4xf32>"
        ),
        "{text}"
    );
    for gone in [
        OpKind::Expand,
        OpKind::Unsqueeze,
        OpKind::Trilu,
        OpKind::Softmax,
    ] {
        assert_eq!(count(&g, gone), 0, "{gone:?} left:\n{text}");
    }
    // The output's head merge stays: Q is not a plain packed projection.
    assert_eq!(count(&g, OpKind::Transpose), 4, "{text}");
}

#[test]
fn llama_f16_softmax_in_f32_sets_softmax_precision() {
    let g = check_pass_with(
        &RecognizeAttention::default(),
        &llama("f16", 1, 6, 6, 2, 2),
        &PassOptions::default(),
        &normal_floats(0.5),
    );
    let text = print(&g);
    assert!(
        text.contains("{is_causal = true, scale = 0.70703125, softmax_precision = 1}"),
        "{text}"
    );
    assert_eq!(count(&g, OpKind::Cast), 0, "{text}");
}

/// Multi-query attention: one K/V head broadcast over the query heads by
/// the MatMuls themselves; scale folded into Q.
const MQA: &str = "
weight @c : tensor<f32> = dense<[0.25]>
graph @mqa(%q: tensor<2x4x3x8xf32>, %k: tensor<2x1x5x8xf32>, %v: tensor<2x1x5x6xf32>) -> (tensor<2x4x3x6xf32>) {
  %c = nn.constant {value = @c} : tensor<f32>
  %qs = nn.mul %c, %q : tensor<2x4x3x8xf32>
  %kt = nn.transpose %k {perm = [0, 1, 3, 2]} : tensor<2x1x8x5xf32>
  %s = nn.matmul %qs, %kt : tensor<2x4x3x5xf32>
  %p = nn.softmax %s {axis = 3} : tensor<2x4x3x5xf32>
  %y = nn.matmul %p, %v : tensor<2x4x3x6xf32>
  return %y
}
";

#[test]
fn multi_query_attention_and_a_scaled_q() {
    let g = check_pass(&RecognizeAttention::default(), MQA);
    let text = print(&g);
    assert!(
        text.contains("%y = nn.attention %q, %k, %v {scale = 0.25} : tensor<2x4x3x6xf32>"),
        "{text}"
    );
    assert_eq!(g.nodes.len(), 1, "{text}");
}

#[test]
fn shapes_of_one_and_primes() {
    for d in [
        Dims {
            b: 1,
            s: 1,
            h: 1,
            d: 1,
        },
        Dims {
            b: 3,
            s: 7,
            h: 5,
            d: 3,
        },
    ] {
        let g = check_pass_with(
            &RecognizeAttention::default(),
            &bert(d, &k_composed(d)),
            &PassOptions::default(),
            &padding_mask,
        );
        assert_eq!(count(&g, OpKind::Attention), 1);
    }
}

#[test]
fn patterns_that_must_stay() {
    let cases = [
        // The scores are also a graph output: they cannot disappear.
        MQA.replace("-> (tensor<2x4x3x6xf32>)", "-> (tensor<2x4x3x6xf32>, tensor<2x4x3x5xf32>)")
            .replace("return %y", "return %y, %s"),
        // Softmax over the query axis is not attention.
        MQA.replace("{axis = 3} : tensor<2x4x3x5xf32>", "{axis = 2} : tensor<2x4x3x5xf32>"),
        // A negative scale has no square root.
        MQA.replace("dense<[0.25]>", "dense<[-0.25]>"),
        // A mask with one key column broadcasts; nn.attention would pad it.
        "graph @m(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x4x5xf32>, %v: tensor<1x2x5x4xf32>, %m: tensor<1x1x3x1xf32>) -> (tensor<1x2x3x4xf32>) {
  %s = nn.matmul %q, %k : tensor<1x2x3x5xf32>
  %a = nn.add %s, %m : tensor<1x2x3x5xf32>
  %p = nn.softmax %a {axis = -1} : tensor<1x2x3x5xf32>
  %y = nn.matmul %p, %v : tensor<1x2x3x4xf32>
  return %y
}"
        .to_string(),
    ];
    for src in cases {
        assert_unchanged(&RecognizeAttention::default(), &src);
    }
}

#[test]
fn a_scale_after_the_mask_is_left_alone() {
    let src = "weight @c : tensor<f32> = dense<[2.0]>
graph @m(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x4x5xf32>, %v: tensor<1x2x5x4xf32>, %m: tensor<1x1x3x5xf32>) -> (tensor<1x2x3x4xf32>) {
  %c = nn.constant {value = @c} : tensor<f32>
  %s = nn.matmul %q, %k : tensor<1x2x3x5xf32>
  %a = nn.add %s, %m : tensor<1x2x3x5xf32>
  %d = nn.div %a, %c : tensor<1x2x3x5xf32>
  %p = nn.softmax %d {axis = -1} : tensor<1x2x3x5xf32>
  %y = nn.matmul %p, %v : tensor<1x2x3x4xf32>
  return %y
}";
    let (_, stats) = run(&RecognizeAttention::default(), src);
    assert!(!stats.changed());
}

/// A `masked_fill(mask == 0, -1e9)` with a runtime mask becomes an additive
/// `Where(cond, fill, 0)`; Kᵀ given directly (no transpose) gets one.
#[test]
fn dynamic_masked_fill_becomes_an_additive_mask() {
    let src = "weight @f : tensor<f32> = dense<[-1000000000.0]>
graph @m(%q: tensor<2x2x3x4xf32>, %kt: tensor<2x2x4x5xf32>, %v: tensor<2x2x5x4xf32>, %pad: tensor<2x1x1x5xbool>) -> (tensor<2x2x3x4xf32>) {
  %f = nn.constant {value = @f} : tensor<f32>
  %s = nn.matmul %q, %kt : tensor<2x2x3x5xf32>
  %a = nn.where %pad, %f, %s : tensor<2x2x3x5xf32>
  %p = nn.softmax %a {axis = -1} : tensor<2x2x3x5xf32>
  %y = nn.matmul %p, %v : tensor<2x2x3x4xf32>
  return %y
}";
    // Key 0 is never padded, so no row is masked entirely.
    let pad = |name: &str, ty: &TensorType, rng: &mut rand::rngs::StdRng| {
        (name == "pad").then(|| {
            let v = (0..10)
                .map(|i| i % 5 != 0 && rng.random_bool(0.4))
                .collect();
            Tensor::from_bools(ty.static_shape().unwrap(), v)
        })
    };
    let g = check_pass_with(
        &RecognizeAttention::default(),
        src,
        &PassOptions::default(),
        &pad,
    );
    let text = print(&g);
    assert!(
        text.contains("nn.where %pad, %mask_fill, %mask_zero"),
        "{text}"
    );
    assert!(
        text.contains("nn.transpose %kt {perm = [0, 1, 3, 2]}"),
        "{text}"
    );
    assert!(
        text.contains("nn.attention %q, %k, %v, %mask {scale = 1.0}"),
        "{text}"
    );
}

/// The documented difference: a query row whose every key is masked gets
/// zeros from nn.attention (ONNX's rule) where the exported softmax over
/// `-inf` gives NaN.
#[test]
fn a_fully_masked_row_becomes_zeros() {
    let src = "graph @m(%q: tensor<1x1x2x2xf32>, %kt: tensor<1x1x2x2xf32>, %v: tensor<1x1x2x2xf32>, %m: tensor<1x1x2x2xf32>) -> (tensor<1x1x2x2xf32>) {
  %s = nn.matmul %q, %kt : tensor<1x1x2x2xf32>
  %a = nn.add %s, %m : tensor<1x1x2x2xf32>
  %p = nn.softmax %a {axis = -1} : tensor<1x1x2x2xf32>
  %y = nn.matmul %p, %v : tensor<1x1x2x2xf32>
  return %y
}";
    let before = graph(src);
    let mut after = before.clone();
    RecognizeAttention::default()
        .run(&mut after, &PassOptions::default())
        .unwrap();
    assert_eq!(count(&after, OpKind::Attention), 1);
    let t = |v: Vec<f64>| Tensor::from_f64(DType::F32, vec![1, 1, 2, 2], v);
    let inputs = [
        t(vec![1.0, 2.0, 3.0, 4.0]),
        t(vec![0.5, -1.0, 2.0, 1.5]),
        t(vec![1.0, 2.0, 3.0, 4.0]),
        t(vec![
            0.0,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ]),
    ];
    let want = kiln_interp::run_graph(&before, &inputs).unwrap()[0].to_f64_vec();
    let got = kiln_interp::run_graph(&after, &inputs).unwrap()[0].to_f64_vec();
    assert_eq!(&want[..2], &got[..2]);
    assert!(want[2].is_nan() && want[3].is_nan(), "{want:?}");
    assert_eq!(&got[2..], &[0.0, 0.0]);
}
