//! Reference semantics of the optimizer's IR: fused bodies, packings, the
//! NHWC layout and derived weights, each checked against a computation
//! written independently here.

use kiln_interp::{materialize, run_graph, weight_bytes, Limits, Tensor};
use kiln_ir::text::parse;
use kiln_ir::{DType, Graph, WeightId};

fn graph(src: &str) -> Graph {
    match parse(src, "t.kir", None) {
        Ok(p) => p.graph,
        Err(e) => panic!("{}", e[0]),
    }
}

/// Deterministic values in [-1, 1) that are not on a coarse grid.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            f64::from(((s >> 40) as f32) / (1u64 << 24) as f32 * 2.0 - 1.0)
        })
        .collect()
}

fn f32s(shape: &[u64], seed: u64) -> Tensor {
    let n = shape.iter().product::<u64>() as usize;
    Tensor::from_f64(DType::F32, shape.to_vec(), values(n, seed))
}

fn floats(t: &Tensor) -> Vec<f64> {
    match &t.data {
        kiln_interp::Data::Float(v) => v.clone(),
        kiln_interp::Data::Int(_) => panic!("not a float tensor"),
    }
}

#[test]
fn an_nhwc_convolution_is_the_nchw_one_transposed() {
    // Direct loops over NHWC data against the interpreter's NHWC conv.
    let (h, w, c, m, k) = (7u64, 6u64, 3u64, 4u64, 3u64);
    let x = f32s(&[1, h, w, c], 1);
    let wt = f32s(&[m, c, k, k], 2);
    let src = format!(
        "graph @g(%x: tensor<1x{h}x{w}x{c}xf32>, %w: tensor<{m}x{c}x{k}x{k}xf32>) -> (tensor<1x4x3x{m}xf32>) {{\n  %y = nn.conv %x, %w {{layout = \"nhwc\", pads = [1, 1, 1, 1], strides = [2, 2]}} : tensor<1x4x3x{m}xf32>\n  return %y\n}}\n"
    );
    let out = run_graph(&graph(&src), &[x.clone(), wt.clone()]).unwrap();
    let (xv, wv, yv) = (floats(&x), floats(&wt), floats(&out[0]));
    for oh in 0..4u64 {
        for ow in 0..3u64 {
            for o in 0..m {
                let mut acc = 0.0f64;
                for kh in 0..k {
                    for kw in 0..k {
                        let (ih, iw) = ((oh * 2 + kh) as i64 - 1, (ow * 2 + kw) as i64 - 1);
                        if ih < 0 || iw < 0 || ih >= h as i64 || iw >= w as i64 {
                            continue;
                        }
                        for ci in 0..c {
                            let xi = ((ih as u64 * w + iw as u64) * c + ci) as usize;
                            let wi = (((o * c + ci) * k + kh) * k + kw) as usize;
                            acc += xv[xi] * wv[wi];
                        }
                    }
                }
                let got = yv[((oh * 3 + ow) * m + o) as usize];
                assert!((got - acc).abs() < 1e-5, "({oh},{ow},{o}): {got} vs {acc}");
            }
        }
    }
}

#[test]
fn a_fused_node_computes_its_body() {
    let body = "%m = nn.matmul %a, %k : tensor<3x5xf32>\n    %s = nn.add %m, %r : tensor<3x5xf32>\n    %y = nn.sigmoid %s : tensor<3x5xf32>\n";
    let fused = format!(
        "graph @g(%x: tensor<3x4xf32>, %w: tensor<4x5xf32>, %res: tensor<3x5xf32>) -> (tensor<3x5xf32>) {{\n  %y = nn.fused %x, %w, %res {{kind = \"epilogue\"}} : tensor<3x5xf32> {{\n    ^(%a: tensor<3x4xf32>, %k: tensor<4x5xf32>, %r: tensor<3x5xf32>):\n    {body}    return %y\n  }}\n  return %y\n}}\n"
    );
    let ins = [f32s(&[3, 4], 3), f32s(&[4, 5], 4), f32s(&[3, 5], 5)];
    let y = floats(&run_graph(&graph(&fused), &ins).unwrap()[0]);
    let (a, k, r) = (floats(&ins[0]), floats(&ins[1]), floats(&ins[2]));
    for i in 0..3 {
        for j in 0..5 {
            let dot: f64 = (0..4).map(|t| a[i * 4 + t] * k[t * 5 + j]).sum();
            let want = 1.0 / (1.0 + (-(dot + r[i * 5 + j])).exp());
            assert!((y[i * 5 + j] - want).abs() < 1e-6);
        }
    }
}

#[test]
fn pack_then_unpack_is_the_identity_and_pads_with_zeros() {
    let src = "graph @g(%w: tensor<6x5x3x3xf32>) -> (tensor<2x1x45x4xf32>, tensor<6x5x3x3xf32>) {\n  %p = nn.pack %w {block = 4, groups = 2, layout = \"conv_nhwc\"} : tensor<2x1x45x4xf32>\n  %u = nn.unpack %p {block = 4, groups = 2, layout = \"conv_nhwc\", shape = [6, 5, 3, 3]} : tensor<6x5x3x3xf32>\n  return %p, %u\n}\n";
    // Weights [Cout = 6, Cin/G = 5, 3, 3] in 2 groups: 3 output channels per
    // group, padded to a panel of 4.
    let w = f32s(&[6, 5, 3, 3], 6);
    let out = run_graph(&graph(src), std::slice::from_ref(&w)).unwrap();
    assert_eq!(out[1], w);
    let p = floats(&out[0]);
    let wv = floats(&w);
    // packed[g][0][k][j]: k = (kh*3 + kw)*5 + c, out channel g*3 + j.
    for g in 0..2 {
        for k in 0..45 {
            let (kh, kw, c) = (k / 15, (k % 15) / 5, k % 5);
            for j in 0..4 {
                let got = p[(g * 45 + k) * 4 + j];
                let want = if j < 3 {
                    wv[(((g * 3 + j) * 5 + c) * 3 + kh) * 3 + kw]
                } else {
                    0.0
                };
                assert_eq!(got, want, "g {g} k {k} j {j}");
            }
        }
    }
}

#[test]
fn derived_weights_are_computed_from_their_operands() {
    let src = r#"weight @w : tensor<2x3xf32> = dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]>
weight @s : tensor<3xf32> = dense<[2.0, 3.0, 4.0]>
weight @ws : tensor<2x3xf32> = derived<nn.mul>(@w, @s)
weight @p : tensor<2x2x2xf32> = derived<nn.pack {block = 2, layout = "gemm_b"}>(@ws)
graph @g(%x: tensor<1x2xf32>) -> (tensor<1x3xf32>) {
  %p = nn.constant {value = @p} : tensor<2x2x2xf32>
  %u = nn.unpack %p {block = 2, layout = "gemm_b", shape = [2, 3]} : tensor<2x3xf32>
  %y = nn.matmul %x, %u : tensor<1x3xf32>
  return %y
}
"#;
    let g = graph(src);
    let limits = Limits::default();
    let ws = materialize(g.weights(), WeightId(2), &limits).unwrap();
    assert_eq!(floats(&ws), vec![2.0, 6.0, 12.0, 8.0, 15.0, 24.0]);
    // The byte-moving fast path of packing agrees with the interpreter's.
    let fast = weight_bytes(g.weights(), WeightId(3), &limits).unwrap();
    let slow = materialize(g.weights(), WeightId(3), &limits)
        .unwrap()
        .to_bytes();
    assert_eq!(fast.bytes(), &slow[..]);
    let p: Vec<f32> = fast
        .bytes()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(p, vec![2.0, 6.0, 8.0, 15.0, 12.0, 0.0, 24.0, 0.0]);
    let y = run_graph(
        &g,
        &[Tensor::from_f64(DType::F32, vec![1, 2], vec![1.0, -1.0])],
    )
    .unwrap();
    assert_eq!(floats(&y[0]), vec![-6.0, -9.0, -12.0]);
}

/// `int8_gemm_b_narrow` holds i8 values within [-64, 64] only (AVX2's pmaddubsw pairs are exact
/// for them): packing one beyond is an error naming the weight, on both the interpreter's path
/// and the byte-moving one the artifact writer takes; the bounds themselves pack.
#[test]
fn narrow_int8_packing_refuses_values_beyond_64() {
    let src = |v: i32| {
        format!(
            r#"weight @w : tensor<2x3xi8> = dense<[64, -64, 1, 0, {v}, -7]>
weight @p : tensor<1x1x64xi8> = derived<nn.pack {{block = 16, layout = "int8_gemm_b_narrow"}}>(@w)
graph @g(%x: tensor<1x2xu8>) -> (tensor<1x3xi32>) {{
  %p = nn.constant {{value = @p}} : tensor<1x1x64xi8>
  %u = nn.unpack %p {{block = 16, layout = "int8_gemm_b_narrow", shape = [2, 3]}} : tensor<2x3xi8>
  %y = quant.matmul_integer %x, %u : tensor<1x3xi32>
  return %y
}}
"#
        )
    };
    let limits = Limits::default();
    let ok = graph(&src(-63));
    let fast = weight_bytes(ok.weights(), WeightId(1), &limits).unwrap();
    let slow = materialize(ok.weights(), WeightId(1), &limits)
        .unwrap()
        .to_bytes();
    assert_eq!(fast.bytes(), &slow[..]);
    let y = run_graph(
        &ok,
        &[Tensor::from_ints(DType::U8, vec![1, 2], vec![255, 2])],
    )
    .unwrap();
    assert_eq!(
        y[0].ints().unwrap(),
        &[255 * 64, -255 * 64 - 126, 255 - 14][..]
    );
    for bad in [65, -65, 127, -128] {
        let g = graph(&src(bad));
        let e = weight_bytes(g.weights(), WeightId(1), &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'p'") && e.contains(&bad.to_string()), "{e}");
        let e = materialize(g.weights(), WeightId(1), &limits)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("int8_gemm_b_narrow") && e.contains(&bad.to_string()),
            "{e}"
        );
    }
}
