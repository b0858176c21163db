//! Runs both statically linked models on raw little-endian f32 inputs and
//! compares with expected outputs: `kiln-build-demo MLP_IN MLP_EXPECTED
//! MLP4_IN MLP4_EXPECTED`. Prints "kiln-build-demo: ok" and exits 0 when
//! every output is within 1e-4 (relative, floor 1e-3) of its expectation.

mod mlp {
    include!(concat!(env!("OUT_DIR"), "/mlp.rs"));
}
mod mlp4 {
    include!(concat!(env!("OUT_DIR"), "/mlp4.rs"));
}

fn read_f32<const N: usize>(path: &str) -> Box<[f32; N]> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(bytes.len(), N * 4, "{path}: expected {N} f32 values");
    let mut out = Box::new([0f32; N]);
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    out
}

fn check(what: &str, got: &[f32], want: &[f32]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(1e-3);
        assert!(err <= 1e-4 && !g.is_nan(), "{what}[{i}] = {g}, expected {w}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(args.len(), 5, "usage: kiln-build-demo MLP_IN MLP_EXPECTED MLP4_IN MLP4_EXPECTED");
    let a = mlp::Model::new().expect("mlp");
    let b = mlp4::Model::new().expect("mlp4");
    assert_eq!(mlp::INPUT_X_SHAPE, [1, 64]);
    assert_eq!(mlp4::OUTPUT_PROBS_SHAPE, [4, 10]);

    let x = read_f32::<64>(&args[1]);
    let out = a.run(&mlp::Inputs { x: &x }).expect("run mlp");
    check("mlp.probs", &out.probs, &read_f32::<10>(&args[2])[..]);

    let x4 = read_f32::<256>(&args[3]);
    let out4 = b.run(&mlp4::Inputs { x: &x4 }).expect("run mlp4");
    check("mlp4.probs", &out4.probs, &read_f32::<40>(&args[4])[..]);
    println!("kiln-build-demo: ok");
}
