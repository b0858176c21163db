//! Tests of `quantize-weights`: the interpreter runs the graph before and
//! after on random inputs; the quantized graph must stay within the
//! scheme's error of the f32 one, and (int8, int4) agree with a
//! dequantization written independently here.

use super::*;
use crate::passes::dce::Dce;
use crate::passes::testutil::{count, graph, random_inputs, weight};
use kiln_interp::{run_graph, Tensor};
use kiln_ir::text::print;
use kiln_ir::Graph;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn opts(o: Options) -> PassOptions {
    PassOptions {
        quantize: o,
        ..PassOptions::default()
    }
}

/// Runs the pass and dce, verifies, returns the graph.
fn quantize(src: &str, o: Options) -> (Graph, Graph) {
    quantize_for(src, opts(o))
}

/// [`quantize`] with the target facts of `po` too.
fn quantize_for(src: &str, po: PassOptions) -> (Graph, Graph) {
    let before = graph(src);
    let mut after = before.clone();
    QuantizeWeights.run(&mut after, &po).expect("pass runs");
    Dce.run(&mut after, &po).expect("dce runs");
    if let Err(e) = kiln_ir::verify(&after) {
        panic!("quantize-weights broke the graph: {e:?}\n{}", print(&after));
    }
    (before, after)
}

/// Runs both graphs on the same random inputs: `(f32 results, quantized
/// results, inputs)`.
fn run_both(before: &Graph, after: &Graph, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<Tensor>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let inputs = random_inputs(before, &mut rng, &|_, _, _| None);
    let want = run_graph(before, &inputs).expect("f32 graph runs");
    let got = run_graph(after, &inputs)
        .unwrap_or_else(|e| panic!("quantized graph fails: {e}\n{}", print(after)));
    assert_eq!(want[0].shape, got[0].shape);
    assert_eq!(want[0].dtype, got[0].dtype);
    (want[0].to_f64_vec(), got[0].to_f64_vec(), inputs)
}

/// `||got - want|| / ||want||`, NaN never passing.
fn rel_err(want: &[f64], got: &[f64]) -> f64 {
    assert!(got.iter().all(|v| v.is_finite()), "non-finite result");
    let num: f64 = want.iter().zip(got).map(|(a, b)| (a - b).powi(2)).sum();
    let den: f64 = want.iter().map(|a| a * a).sum();
    (num / den).sqrt()
}

/// Every element within `tol * (1 + |reference|)` of the reference.
fn assert_near(reference: &[f64], got: &[f64], tol: f64, what: &str) {
    assert_eq!(reference.len(), got.len(), "{what}");
    for (i, (a, b)) in reference.iter().zip(got).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + a.abs()),
            "{what} element {i}: reference {a}, got {b}"
        );
    }
}

fn matmul_src(m: u64, k: u64, n: u64) -> String {
    format!(
        "{}graph @t(%x: tensor<{m}x{k}xf32>) -> (tensor<{m}x{n}xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<{k}x{n}xf32>
  %y = nn.matmul %x, %w : tensor<{m}x{n}xf32>
  return %y
}}",
        weight("w", &[k, n], 11, 0.0, false)
    )
}

/// The f32 values of weight `@w` of `g`, `[K, N]` row-major.
fn weight_values(g: &Graph) -> Vec<f64> {
    named_weight_values(g, "w")
}

/// The f32 values of weight `name` of `g`, row-major.
fn named_weight_values(g: &Graph, name: &str) -> Vec<f64> {
    let id = g.weight_by_name(name).unwrap();
    let w = g.weight(id);
    let shape = w.ty.static_shape().unwrap();
    Tensor::from_bytes(w.ty.dtype, &shape, w.bytes().unwrap().bytes())
        .unwrap()
        .to_f64_vec()
}

/// `x . w'` in f64 with `w'` the symmetric `bits`-bit quantization of
/// `w[K, N]` (one scale per output column and block of `block` rows of K,
/// `amax / qmax`, round half to even, clamp), written from the scheme's
/// definition without `kiln_ir::codec`.
fn reference_int(
    x: &[f64],
    w: &[f64],
    m: usize,
    k: usize,
    n: usize,
    bits: u32,
    block: usize,
) -> Vec<f64> {
    let mut deq = vec![0f64; k * n];
    for j in 0..n {
        let col: Vec<f64> = (0..k).map(|r| w[r * n + j]).collect();
        for (r, v) in sym_dequant(&col, bits, block).into_iter().enumerate() {
            deq[r * n + j] = v;
        }
    }
    let mut y = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            y[i * n + j] = (0..k).map(|r| x[i * k + r] * deq[r * n + j]).sum();
        }
    }
    y
}

/// `v` quantized as symmetric `bits`-bit integers in blocks of `block`
/// (0: one block) — scale `amax / qmax` in f32, round half to even,
/// clamp — and dequantized, written from the scheme's definition without
/// `kiln_ir::codec`.
fn sym_dequant(v: &[f64], bits: u32, block: usize) -> Vec<f64> {
    let qmax = f64::from((1u32 << (bits - 1)) - 1);
    let bk = if block == 0 { v.len().max(1) } else { block };
    let mut out = Vec::with_capacity(v.len());
    for chunk in v.chunks(bk) {
        let amax = chunk.iter().map(|&x| (x as f32).abs()).fold(0f32, f32::max);
        let s = amax / qmax as f32;
        for &x in chunk {
            let q = if s == 0.0 {
                0.0
            } else {
                f64::from((x as f32 / s).round_ties_even()).clamp(-qmax - 1.0, qmax)
            };
            out.push(f64::from((q as f32) * s));
        }
    }
    out
}

#[test]
fn int8_per_channel_matches_an_independent_dequantization() {
    // Odd sizes: K = 67 (prime), N = 13.
    let (m, k, n) = (3, 67, 13);
    let o = Options {
        block_size: Some(0),
        min_elements: 1,
        ..Options::scheme(Scheme::Int(8))
    };
    let (before, after) = quantize(&matmul_src(m, k, n), o);
    let text = print(&after);
    assert_eq!(count(&after, OpKind::QMatMul), 1, "{text}");
    assert_eq!(count(&after, OpKind::MatMul), 0, "{text}");
    assert!(
        text.contains("derived<quant.quantize_weight {axis = 0, block_size = 0, double_quant = false, part = \"codes\", scheme = \"int8\"}>(@w)"),
        "{text}"
    );
    for seed in 0..3 {
        let (want, got, inputs) = run_both(&before, &after, seed);
        let x = inputs[0].to_f64_vec();
        let r = reference_int(
            &x,
            &weight_values(&before),
            m as usize,
            k as usize,
            n as usize,
            8,
            0,
        );
        assert_near(&r, &got, 1e-4, "int8");
        let e = rel_err(&want, &got);
        assert!(e < 0.01, "int8 relative error {e}");
        assert!(e > 0.0, "int8 quantization changed nothing");
    }
}

#[test]
fn int4_blocks_along_k_match_an_independent_dequantization() {
    // K = 70 is not a multiple of the block (32): the last block is short.
    let (m, k, n) = (2, 70, 5);
    let o = Options {
        block_size: Some(32),
        min_elements: 1,
        ..Options::scheme(Scheme::Int(4))
    };
    let (before, after) = quantize(&matmul_src(m, k, n), o);
    let (want, got, inputs) = run_both(&before, &after, 7);
    let r = reference_int(
        &inputs[0].to_f64_vec(),
        &weight_values(&before),
        m as usize,
        k as usize,
        n as usize,
        4,
        32,
    );
    for (a, b) in r.iter().zip(&got) {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
            "reference {a}, got {b}"
        );
    }
    let e = rel_err(&want, &got);
    assert!(e < 0.15, "int4 relative error {e}");
}

#[test]
fn every_scheme_stays_within_its_error() {
    let (m, k, n) = (4, 131, 17);
    for (scheme, bound) in [
        (Scheme::Nf4, 0.12),
        (Scheme::Int(8), 0.01),
        (Scheme::Int(4), 0.15),
        (Scheme::Uint(4), 0.15),
        (Scheme::Uint(8), 0.01),
        (Scheme::Fp8(kiln_ir::codec::FloatFormat::E4M3FN), 0.05),
        (Scheme::Fp8(kiln_ir::codec::FloatFormat::E5M2), 0.1),
        (Scheme::Mxfp4, 0.25),
        (Scheme::Nvfp4, 0.2),
    ] {
        for double in [false, true] {
            if double && scheme != Scheme::Nf4 {
                continue;
            }
            let o = Options {
                min_elements: 1,
                double_quant: double,
                ..Options::scheme(scheme)
            };
            let (before, after) = quantize(&matmul_src(m, k, n), o);
            assert_eq!(count(&after, OpKind::QMatMul), 1, "{}", print(&after));
            assert!(
                after.weight_by_name("w").is_none()
                    || !print(&after).contains("nn.constant {value = @w}")
            );
            let (want, got, _) = run_both(&before, &after, 3);
            let e = rel_err(&want, &got);
            assert!(
                e < bound && e > 0.0,
                "{} (double {double}): relative error {e}",
                scheme.name()
            );
        }
    }
}

/// A Gemm with a transposed [N, K] = [9, 40] weight, a bias and beta 0.5.
fn gemm_src() -> String {
    format!(
        "{}{}graph @t(%x: tensor<3x40xf32>) -> (tensor<3x9xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<9x40xf32>
  %b = nn.constant {{value = @b}} : tensor<9xf32>
  %y = nn.gemm %x, %w, %b {{trans_b = true, beta = 0.5}} : tensor<3x9xf32>
  return %y
}}",
        weight("w", &[9, 40], 2, 0.0, false),
        weight("b", &[9], 3, 0.0, false)
    )
}

#[test]
fn gemm_with_transposed_weight_and_bias() {
    let src = gemm_src();
    let o = Options {
        block_size: Some(0),
        min_elements: 1,
        ..Options::scheme(Scheme::Int(8))
    };
    let (before, after) = quantize(&src, o);
    let text = print(&after);
    assert!(text.contains("axis = 1"), "{text}");
    assert_eq!(count(&after, OpKind::Gemm), 0, "{text}");
    let (want, got, _) = run_both(&before, &after, 1);
    let e = rel_err(&want, &got);
    assert!(e < 0.01 && e > 0.0, "relative error {e}");
}

#[test]
fn excluded_small_and_disabled_weights_stay_f32() {
    let src = matmul_src(2, 33, 7);
    let print_src = print(&graph(&src));
    for o in [
        Options::default(),
        Options::scheme(Scheme::Nf4), // 231 values < min_elements
        Options {
            min_elements: 1,
            exclude: vec!["y".into()],
            ..Options::scheme(Scheme::Nf4)
        },
        Options {
            min_elements: 1,
            exclude: vec!["w".into()],
            ..Options::scheme(Scheme::Nf4)
        },
        Options {
            min_elements: 1,
            ops: vec![OpKind::Gemm],
            ..Options::scheme(Scheme::Nf4)
        },
    ] {
        let mut g = graph(&src);
        let stats = QuantizeWeights.run(&mut g, &opts(o.clone())).unwrap();
        assert!(!stats.changed(), "{o:?}");
        assert_eq!(print(&g), print_src);
    }
}

#[test]
fn bad_options_are_errors() {
    let mut g = graph(&matmul_src(1, 64, 4));
    for o in [
        Options {
            double_quant: true,
            ..Options::scheme(Scheme::Int(8))
        },
        Options {
            block_size: Some(3),
            ..Options::scheme(Scheme::Int(4))
        },
    ] {
        assert!(QuantizeWeights.run(&mut g, &opts(o)).is_err());
    }
}

/// `x . w` with both sides quantized as `--quantize-activations=dynamic`
/// does, written from the definitions without `kiln_ir::codec`: `x` as
/// ONNX's DynamicQuantizeLinear (uint8, per tensor, the range widened to
/// include 0, round half to even), `w[K, N]` as symmetric int8 with one
/// scale per column, the products summed exactly in integers and scaled by
/// `x_scale * w_scale[n]` in f32.
/// `x` as ONNX's DynamicQuantizeLinear quantizes it (uint8, per tensor,
/// the range widened to include 0, round half to even): `(x_scale, codes
/// minus the zero point)`.
fn dynamic_quantized(x: &[f64]) -> (f32, Vec<i64>) {
    let xs: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let hi = xs.iter().copied().fold(0f32, f32::max);
    let lo = xs.iter().copied().fold(0f32, f32::min);
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255.0 };
    let zp = (-lo / scale).clamp(0.0, 255.0).round_ties_even();
    let xq = xs
        .iter()
        .map(|&v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as i64 - zp as i64)
        .collect();
    (scale, xq)
}

/// (`qmax` is the weight codes' largest magnitude: 127 for int8, 63 for int7.)
fn reference_dynamic(
    x: &[f64],
    w: &[f64],
    (m, k, n): (usize, usize, usize),
    qmax: f32,
) -> Vec<f64> {
    let (scale, xq) = dynamic_quantized(x);
    let mut y = vec![0f64; m * n];
    for j in 0..n {
        let amax = (0..k)
            .map(|r| (w[r * n + j] as f32).abs())
            .fold(0f32, f32::max);
        let ws = amax / qmax;
        let wq: Vec<i64> = (0..k)
            .map(|r| {
                if ws == 0.0 {
                    0
                } else {
                    (w[r * n + j] as f32 / ws)
                        .round_ties_even()
                        .clamp(-qmax - 1.0, qmax) as i64
                }
            })
            .collect();
        for i in 0..m {
            let acc: i64 = (0..k).map(|r| xq[i * k + r] * wq[r]).sum();
            y[i * n + j] = f64::from(acc as f32 * (scale * ws));
        }
    }
    y
}

/// Also for a target whose exact 8-bit products are AVX2's pmaddubsw pairs
/// (`int8_pairs`): the weights become int7 (codes within [-63, 63]) unless
/// `reduce_range` says no; `reduce_range` asks for int7 anywhere, and so does
/// the int7 scheme.
#[test]
fn int8_dynamic_activations_match_an_independent_integer_product() {
    // Odd sizes: M = 5, K = 67 (prime), N = 13; and a single row.
    let cases = [(5u64, 67u64, 13u64), (1, 31, 17)];
    let targets = [
        (Scheme::Int(8), false, None, 127.0),
        (Scheme::Int(8), true, None, 63.0),
        (Scheme::Int(8), true, Some(false), 127.0),
        (Scheme::Int(8), false, Some(true), 63.0),
        (Scheme::Int(7), false, None, 63.0),
    ];
    for ((m, k, n), (scheme, pairs, reduce_range, qmax)) in
        cases.into_iter().flat_map(|c| targets.map(|t| (c, t)))
    {
        let o = Options {
            min_elements: 1,
            dynamic_activations: true,
            reduce_range,
            ..Options::scheme(scheme)
        };
        let mut po = opts(o);
        po.target.int8_pairs = pairs;
        let (before, after) = quantize_for(&matmul_src(m, k, n), po);
        let text = print(&after);
        let name = if qmax == 63.0 { "int7" } else { "int8" };
        assert!(text.contains(&format!("scheme = \"{name}\"")), "{text}");
        assert_eq!(count(&after, OpKind::QMatMulInteger), 1, "{text}");
        assert_eq!(count(&after, OpKind::QuantizeLinear), 1, "{text}");
        assert_eq!(
            count(&after, OpKind::MatMul) + count(&after, OpKind::QMatMul),
            0,
            "{text}"
        );
        for seed in 0..3 {
            let (want, got, inputs) = run_both(&before, &after, seed);
            let r = reference_dynamic(
                &inputs[0].to_f64_vec(),
                &weight_values(&before),
                (m as usize, k as usize, n as usize),
                qmax,
            );
            assert_near(&r, &got, 1e-5, &format!("{m}x{k}x{n} {name}"));
            let e = rel_err(&want, &got);
            assert!(e < 0.02 && e > 0.0, "int8 dynamic relative error {e}");
        }
    }
}

#[test]
fn int8_dynamic_activations_on_a_gemm_with_bias_and_other_schemes_refused() {
    let src = gemm_src();
    let o = Options {
        min_elements: 1,
        dynamic_activations: true,
        ..Options::scheme(Scheme::Int(8))
    };
    let (before, after) = quantize(&src, o);
    let text = print(&after);
    assert_eq!(count(&after, OpKind::Gemm), 0, "{text}");
    assert_eq!(count(&after, OpKind::QMatMulInteger), 1, "{text}");
    let (want, got, _) = run_both(&before, &after, 4);
    let e = rel_err(&want, &got);
    assert!(e < 0.02 && e > 0.0, "relative error {e}");
    let mut g = graph(&matmul_src(2, 64, 4));
    let o = Options {
        dynamic_activations: true,
        ..Options::scheme(Scheme::Nf4)
    };
    let err = QuantizeWeights.run(&mut g, &opts(o)).unwrap_err();
    assert!(err.to_string().contains("applies to int8"), "{err}");
}

/// A 2-D convolution: input `x: [n, c, h, w]`, weight `@w: [co, c / group,
/// kh, kw]`, optional bias `@b`, and its attributes.
struct ConvCase {
    x: [u64; 4],
    w: [u64; 4],
    bias: bool,
    group: u64,
    strides: [u64; 2],
    pads: [u64; 4],
    dilations: [u64; 2],
}

impl ConvCase {
    fn out(&self) -> [u64; 4] {
        let o = |i: usize| {
            let ext = self.dilations[i] * (self.w[2 + i] - 1) + 1;
            (self.x[2 + i] + self.pads[i] + self.pads[2 + i] - ext) / self.strides[i] + 1
        };
        [self.x[0], self.w[0], o(0), o(1)]
    }

    fn src(&self) -> String {
        let t = |d: &[u64]| d.iter().map(u64::to_string).collect::<Vec<_>>().join("x");
        let l = |d: &[u64]| d.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        let (b_decl, b_weight, b_use) = if self.bias {
            (
                format!(
                    "  %b = nn.constant {{value = @b}} : tensor<{}xf32>\n",
                    self.w[0]
                ),
                weight("b", &[self.w[0]], 5, 0.0, false),
                ", %b",
            )
        } else {
            (String::new(), String::new(), "")
        };
        format!(
            "{}{b_weight}graph @t(%x: tensor<{}xf32>) -> (tensor<{}xf32>) {{
  %w = nn.constant {{value = @w}} : tensor<{}xf32>
{b_decl}  %y = nn.conv %x, %w{b_use} {{group = {}, strides = [{}], pads = [{}], dilations = [{}]}} : tensor<{}xf32>
  return %y
}}",
            weight("w", &self.w, 11, 0.0, false),
            t(&self.x),
            t(&self.out()),
            t(&self.w),
            self.group,
            l(&self.strides),
            l(&self.pads),
            l(&self.dilations),
            t(&self.out()),
        )
    }

    /// The convolution with `x` quantized as ONNX's DynamicQuantizeLinear
    /// and the weight as symmetric int8 with one scale per output channel,
    /// summed exactly in integers (padding adds zeros after the shift),
    /// scaled by `x_scale * w_scale[c]` in f32, plus the bias in f32:
    /// written from the definitions, without `kiln_ir::codec`.
    fn reference(&self, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let (scale, xq) = dynamic_quantized(x);
        let [n, c, h, wd] = self.x.map(|d| d as usize);
        let [co, cig, kh, kw] = self.w.map(|d| d as usize);
        let [_, _, oh, ow] = self.out().map(|d| d as usize);
        let k = cig * kh * kw;
        let cog = co / self.group as usize;
        let mut y = vec![0f64; n * co * oh * ow];
        for o in 0..co {
            let row = &w[o * k..(o + 1) * k];
            let amax = row.iter().map(|&v| (v as f32).abs()).fold(0f32, f32::max);
            let ws = amax / 127.0;
            let wq: Vec<i64> = row
                .iter()
                .map(|&v| {
                    if ws == 0.0 {
                        0
                    } else {
                        (v as f32 / ws).round_ties_even().clamp(-128.0, 127.0) as i64
                    }
                })
                .collect();
            let g = o / cog;
            for img in 0..n {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0i64;
                        for ci in 0..cig {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * self.strides[0] as usize
                                        + ky * self.dilations[0] as usize)
                                        as i64
                                        - self.pads[0] as i64;
                                    let ix = (ox * self.strides[1] as usize
                                        + kx * self.dilations[1] as usize)
                                        as i64
                                        - self.pads[1] as i64;
                                    if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                        continue;
                                    }
                                    let chan = g * cig + ci;
                                    let xi =
                                        ((img * c + chan) * h + iy as usize) * wd + ix as usize;
                                    acc += xq[xi] * wq[(ci * kh + ky) * kw + kx];
                                }
                            }
                        }
                        let mut v = acc as f32 * (scale * ws);
                        if self.bias {
                            v += b[o] as f32;
                        }
                        y[((img * co + o) * oh + oy) * ow + ox] = f64::from(v);
                    }
                }
            }
        }
        y
    }
}

fn conv_options() -> Options {
    Options {
        min_elements: 1,
        dynamic_activations: true,
        ops: vec![OpKind::Conv],
        ..Options::scheme(Scheme::Int(8))
    }
}

#[test]
fn int8_dynamic_convolutions_match_an_independent_integer_convolution() {
    #[rustfmt::skip]
    let cases = [
        // Grouped, strided, padded, with bias; odd sizes.
        ConvCase { x: [2, 6, 7, 5], w: [4, 3, 3, 3], bias: true, group: 2, strides: [2, 1], pads: [1, 1, 1, 1], dilations: [1, 1] },
        // 1x1, no bias.
        ConvCase { x: [1, 3, 5, 5], w: [5, 3, 1, 1], bias: false, group: 1, strides: [1, 1], pads: [0; 4], dilations: [1, 1] },
        // Depthwise, dilated, asymmetric padding.
        ConvCase { x: [1, 4, 6, 7], w: [4, 1, 3, 3], bias: true, group: 4, strides: [1, 2], pads: [2, 1, 2, 0], dilations: [2, 2] },
    ];
    for c in &cases {
        let src = c.src();
        let (before, after) = quantize(&src, conv_options());
        let text = print(&after);
        assert_eq!(count(&after, OpKind::QConvInteger), 1, "{text}");
        assert_eq!(count(&after, OpKind::Conv), 0, "{text}");
        assert_eq!(count(&after, OpKind::QuantizeLinear), 1, "{text}");
        // No node reads the f32 weight any more: the constant of its shape
        // is the int8 codes.
        for node in after.nodes.iter().filter(|n| n.op == OpKind::Constant) {
            let ty = &after.value(node.outputs[0]).ty;
            assert!(
                ty.static_shape().as_deref() != Some(&c.w[..]) || ty.dtype == DType::I8,
                "a {ty} constant is left:\n{text}"
            );
        }
        let w = named_weight_values(&before, "w");
        let b = if c.bias {
            named_weight_values(&before, "b")
        } else {
            Vec::new()
        };
        for seed in 0..3 {
            let (want, got, inputs) = run_both(&before, &after, seed);
            let r = c.reference(&inputs[0].to_f64_vec(), &w, &b);
            assert_near(&r, &got, 1e-5, &format!("{:?} x {:?}", c.x, c.w));
            let e = rel_err(&want, &got);
            assert!(e < 0.03 && e > 0.0, "int8 dynamic conv relative error {e}");
        }
    }
}

#[test]
fn convolutions_stay_f32_unless_asked_for() {
    let c = ConvCase {
        x: [1, 3, 5, 5],
        w: [5, 3, 3, 3],
        bias: false,
        group: 1,
        strides: [1, 1],
        pads: [1; 4],
        dilations: [1, 1],
    };
    // Without Conv in `ops` (the default) a convolution stays f32; an
    // excluded one, too.
    for o in [
        Options {
            min_elements: 1,
            dynamic_activations: true,
            ..Options::scheme(Scheme::Int(8))
        },
        Options {
            exclude: vec!["w".into()],
            ..conv_options()
        },
    ] {
        let (_, after) = quantize(&c.src(), o);
        assert_eq!(count(&after, OpKind::Conv), 1, "{}", print(&after));
        assert_eq!(count(&after, OpKind::QConvInteger), 0);
    }
}

impl ConvCase {
    /// The convolution by the OIHW weight `w` plus the bias, in f64, from
    /// the definition (zero padding, dilations, groups).
    fn reference_f(&self, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let [n, c, h, wd] = self.x.map(|d| d as usize);
        let [co, cig, kh, kw] = self.w.map(|d| d as usize);
        let [_, _, oh, ow] = self.out().map(|d| d as usize);
        let cog = co / self.group as usize;
        let [sh, sw] = self.strides.map(|v| v as isize);
        let [dh, dw] = self.dilations.map(|v| v as isize);
        let (pt, pl) = (self.pads[0] as isize, self.pads[1] as isize);
        let mut y = vec![0f64; n * co * oh * ow];
        for img in 0..n {
            for o in 0..co {
                let g = o / cog;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b.get(o).copied().unwrap_or(0.0);
                        for ci in 0..cig {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = oy as isize * sh - pt + ky as isize * dh;
                                    let ix = ox as isize * sw - pl + kx as isize * dw;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let ch = g * cig + ci;
                                    let xi = ((img * c + ch) * h + iy as usize) * wd + ix as usize;
                                    acc += x[xi] * w[((o * cig + ci) * kh + ky) * kw + kx];
                                }
                            }
                        }
                        y[((img * co + o) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        y
    }
}

/// OIHW `w` of `shape` with each output channel's row taken in window
/// order (taps, then channels: `quant.conv`'s), quantized by
/// [`sym_dequant`] and put back in OIHW order.
fn window_dequant(w: &[f64], shape: [u64; 4], bits: u32, block: usize) -> Vec<f64> {
    let [co, cig, kh, kw] = shape.map(|d| d as usize);
    let taps = kh * kw;
    let mut out = vec![0f64; w.len()];
    for o in 0..co {
        let row: Vec<f64> = (0..taps * cig)
            .map(|k| w[(o * cig + k % cig) * taps + k / cig])
            .collect();
        for (k, v) in sym_dequant(&row, bits, block).into_iter().enumerate() {
            out[(o * cig + k % cig) * taps + k / cig] = v;
        }
    }
    out
}

#[test]
fn weight_only_convolutions_match_an_independent_dequantized_convolution() {
    #[rustfmt::skip]
    let cases = [
        // Grouped, strided, padded, with bias; blocks across taps.
        ConvCase { x: [2, 6, 7, 5], w: [4, 3, 3, 3], bias: true, group: 2, strides: [2, 1], pads: [1, 1, 1, 1], dilations: [1, 1] },
        // 1x1, no bias.
        ConvCase { x: [1, 5, 5, 5], w: [7, 5, 1, 1], bias: false, group: 1, strides: [1, 1], pads: [0; 4], dilations: [1, 1] },
        // Dilated, asymmetric padding, 2x3 window.
        ConvCase { x: [1, 4, 6, 7], w: [3, 4, 2, 3], bias: true, group: 1, strides: [1, 2], pads: [2, 1, 2, 0], dilations: [2, 2] },
    ];
    for c in &cases {
        for (scheme, bits, block) in [(Scheme::Int(4), 4, 4), (Scheme::Int(8), 8, 0)] {
            let o = Options {
                min_elements: 1,
                block_size: Some(block),
                ops: vec![OpKind::Conv],
                ..Options::scheme(scheme)
            };
            let (before, after) = quantize(&c.src(), o);
            let text = print(&after);
            assert_eq!(count(&after, OpKind::QConv), 1, "{text}");
            assert_eq!(count(&after, OpKind::Conv), 0, "{text}");
            assert!(!text.contains("nn.constant {value = @w}"), "{text}");
            let w = window_dequant(&named_weight_values(&before, "w"), c.w, bits, block);
            let b = if c.bias {
                named_weight_values(&before, "b")
            } else {
                Vec::new()
            };
            for seed in 0..2 {
                let (want, got, inputs) = run_both(&before, &after, seed);
                let r = c.reference_f(&inputs[0].to_f64_vec(), &w, &b);
                let what = format!("{} {:?} x {:?}", scheme.name(), c.x, c.w);
                assert_near(&r, &got, 1e-5, &what);
                let e = rel_err(&want, &got);
                assert!(e > 0.0 && e < 0.2, "{what}: relative error {e}");
            }
        }
    }
}

#[test]
fn weight_only_convolutions_stay_within_each_schemes_error() {
    let c = ConvCase {
        x: [1, 16, 6, 6],
        w: [12, 16, 3, 3],
        bias: true,
        group: 1,
        strides: [1, 1],
        pads: [1; 4],
        dilations: [1, 1],
    };
    for (scheme, bound) in [
        (Scheme::Nf4, 0.12),
        (Scheme::Uint(4), 0.15),
        (Scheme::Uint(8), 0.01),
        (Scheme::Fp8(kiln_ir::codec::FloatFormat::E4M3FN), 0.05),
        (Scheme::Fp8(kiln_ir::codec::FloatFormat::E5M2), 0.1),
        (Scheme::Mxfp4, 0.25),
    ] {
        let o = Options {
            min_elements: 1,
            ops: vec![OpKind::Conv],
            ..Options::scheme(scheme)
        };
        let (before, after) = quantize(&c.src(), o);
        assert_eq!(count(&after, OpKind::QConv), 1, "{}", print(&after));
        let (want, got, _) = run_both(&before, &after, 5);
        let e = rel_err(&want, &got);
        assert!(
            e > 0.0 && e < bound,
            "{}: relative error {e}",
            scheme.name()
        );
    }
    // Depthwise convolutions stay f32; double quantization and NVFP4's
    // global scale are refused for Conv.
    let dw = ConvCase {
        x: [1, 4, 6, 7],
        w: [4, 1, 3, 3],
        bias: true,
        group: 4,
        strides: [1, 1],
        pads: [1; 4],
        dilations: [1, 1],
    };
    let nf4 = Options {
        min_elements: 1,
        ops: vec![OpKind::Conv],
        ..Options::scheme(Scheme::Nf4)
    };
    let (_, after) = quantize(&dw.src(), nf4.clone());
    assert_eq!(count(&after, OpKind::Conv), 1, "{}", print(&after));
    for (o, want) in [
        (
            Options {
                double_quant: true,
                ..nf4.clone()
            },
            "double-quantized scales apply to MatMul/Gemm",
        ),
        (
            Options {
                ops: vec![OpKind::Conv],
                ..Options::scheme(Scheme::Nvfp4)
            },
            "nvfp4's per-tensor scale",
        ),
    ] {
        let mut g = graph(&c.src());
        let err = QuantizeWeights.run(&mut g, &opts(o)).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
}
