//! `kiln compile --quantize` end to end on a real-size layer: a BERT-base
//! feed-forward block (768 -> 3072 -> 768, GELU, biases, residual) over 16
//! tokens, compiled at -O3 in f32 and with every offered scheme. Checks
//! that the quantized artifact calls the qgemm kernel (no f32 copy of a
//! weight), that its external weights file holds the packed codes (an NF4
//! artifact's weights about 1/7 of the f32 ones), and that its output stays
//! within the scheme's error of the f32 artifact's. Prints the numbers
//! (`--nocapture`).

use kiln_driver::tensors::{AlignedBytes, HostTensor};
use kiln_driver::{compile, CompileOptions, OptLevel, Session, SessionOptions, WeightsMode};
use kiln_ir::codec::block::Scheme;
use kiln_ir::DType;
use std::fmt::Write;
use std::path::Path;

/// Normal values from a seeded generator (Box-Muller).
fn normal(n: usize, std: f32, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut u = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (a, b) = (u(), u());
            ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32 * std
        })
        .collect()
}

fn weight(name: &str, shape: &[u64], v: &[f32]) -> String {
    let mut hex = String::with_capacity(v.len() * 8);
    for x in v {
        for b in x.to_le_bytes() {
            let _ = write!(hex, "{b:02X}");
        }
    }
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!(
        "weight @{name} : tensor<{}xf32> = dense<\"0x{hex}\">\n",
        dims.join("x")
    )
}

const T: u64 = 16;
const D: u64 = 768;
const H: u64 = 3072;

fn ffn() -> kiln_ir::Graph {
    let d = D as usize;
    let h = H as usize;
    let mut kir = String::new();
    kir += &weight("w1", &[D, H], &normal(d * h, 0.02, 1));
    kir += &weight("b1", &[H], &normal(h, 0.02, 2));
    kir += &weight("w2", &[H, D], &normal(h * d, 0.02, 3));
    kir += &weight("b2", &[D], &normal(d, 0.02, 4));
    kir += &format!(
        "graph @ffn(%x: tensor<{T}x{D}xf32>) -> (tensor<{T}x{D}xf32>) {{
  %w1 = nn.constant {{value = @w1}} : tensor<{D}x{H}xf32>
  %b1 = nn.constant {{value = @b1}} : tensor<{H}xf32>
  %w2 = nn.constant {{value = @w2}} : tensor<{H}x{D}xf32>
  %b2 = nn.constant {{value = @b2}} : tensor<{D}xf32>
  %m1 = nn.matmul %x, %w1 : tensor<{T}x{H}xf32>
  %a1 = nn.add %m1, %b1 : tensor<{T}x{H}xf32>
  %g = nn.gelu %a1 : tensor<{T}x{H}xf32>
  %m2 = nn.matmul %g, %w2 : tensor<{T}x{D}xf32>
  %a2 = nn.add %m2, %b2 : tensor<{T}x{D}xf32>
  %y = nn.add %a2, %x : tensor<{T}x{D}xf32>
  return %y
}}
"
    );
    kiln_ir::text::parse(&kir, "ffn.kir", None).unwrap().graph
}

/// Compiles `g` (quantized with `q`) into `dir`; returns the artifact, the
/// size of its weights file and the kernels it calls.
fn build(
    g: &kiln_ir::Graph,
    q: Option<kiln_passes::QuantizeOptions>,
    dir: &Path,
    name: &str,
) -> (std::path::PathBuf, u64, Vec<String>) {
    let so = dir.join(format!("{name}.so"));
    // The portable deploy target: a host build may record CPU features a
    // virtual machine hides.
    let target = kiln_driver::deploy_target_from_args(None, None).unwrap();
    let mut opts = CompileOptions::new(target, Some(so.clone()));
    opts.set_level(OptLevel::O3);
    if let Some(q) = q {
        opts.set_quantize(q);
    }
    opts.weights = WeightsMode::External;
    let art = compile(g.clone(), &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    let wfile = dir.join(format!("{name}.so.weights"));
    let bytes = std::fs::metadata(&wfile)
        .unwrap_or_else(|e| panic!("{}: {e}", wfile.display()))
        .len();
    (so, bytes, art.kernels)
}

fn floats(t: &HostTensor) -> Vec<f32> {
    t.data
        .as_ref()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn quantized_ffn_layer_is_small_and_close_to_f32() {
    let g = ffn();
    let dir = tempfile::tempdir().unwrap();
    let x = normal((T * D) as usize, 1.0, 9);
    let input = HostTensor {
        name: "x".into(),
        dtype: DType::F32,
        shape: vec![T, D],
        data: AlignedBytes::from_slice(
            &x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
        ),
    };
    let run = |so: &Path| {
        let s = Session::open(so, &SessionOptions::default()).unwrap();
        floats(&s.run(std::slice::from_ref(&input)).unwrap()[0])
    };
    let (so32, bytes32, kernels32) = build(&g, None, dir.path(), "f32");
    assert!(!kernels32.iter().any(|k| k.contains("qgemm")));
    let want = run(&so32);
    // The output minus the residual: what the two matmuls contribute.
    let delta: Vec<f64> = want.iter().zip(&x).map(|(y, x)| f64::from(y - x)).collect();
    let norm = delta.iter().map(|v| v * v).sum::<f64>().sqrt();
    println!("f32: weights {bytes32} bytes");
    for (scheme, block, max_ratio, max_err) in [
        // Bounds: two layers of Gaussian weights, each with the scheme's
        // relative RMS weight error (NF4/INT4 ~0.1, INT8 ~0.008, E4M3
        // ~0.03, MXFP4 ~0.15) adding in quadrature.
        (Scheme::Nf4, None, 0.15, 0.16),
        (Scheme::Int(4), None, 0.16, 0.18),
        (Scheme::Int(8), None, 0.26, 0.02),
        (
            Scheme::Fp8(kiln_ir::codec::FloatFormat::E4M3FN),
            None,
            0.26,
            0.06,
        ),
        (Scheme::Mxfp4, None, 0.14, 0.3),
        (Scheme::Nf4, Some(128), 0.14, 0.17),
    ] {
        let q = kiln_passes::QuantizeOptions {
            block_size: block,
            ..kiln_passes::QuantizeOptions::scheme(scheme)
        };
        let name = format!(
            "{}{}",
            scheme.name(),
            block.map_or(String::new(), |b| format!("-b{b}"))
        );
        let (so, bytes, kernels) = build(&g, Some(q), dir.path(), &name);
        assert!(
            kernels.iter().any(|k| k.starts_with("kiln_k_qgemm_")),
            "{name}: no qgemm call ({kernels:?})"
        );
        assert!(
            !kernels.iter().any(|k| k.starts_with("kiln_k_gemm_")),
            "{name}: an f32 GEMM is left ({kernels:?})"
        );
        let got = run(&so);
        assert!(
            got.iter().all(|v| v.is_finite()),
            "{name}: non-finite output"
        );
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            .sqrt()
            / norm;
        let max_abs = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let ratio = bytes as f64 / bytes32 as f64;
        println!(
            "{name}: weights {bytes} bytes ({ratio:.3} of f32), relative L2 error of the layer's update {err:.4}, max abs error {max_abs:.4}"
        );
        assert!(ratio <= max_ratio, "{name}: weights {ratio} of f32");
        assert!(err > 0.0 && err <= max_err, "{name}: relative error {err}");
    }
}
