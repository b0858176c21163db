//! ONNX Runtime's `com.microsoft` MatMulNBits (`import/contrib.rs`): models
//! in ORT's blockwise 4- and 8-bit format (`tests/fixtures/gen_contrib.py`,
//! outputs from ORT's own MatMulNBits kernel) import as `quant.matmul` over
//! the packed bytes, and the reference interpreter matches ORT; other
//! operators of the domain are refused by name.

mod common;

use common::{check_test_set, repo};
use kiln_ir::{DType, OpKind};
use kiln_onnx::import::{import_model, ImportOptions};
use kiln_onnx::load_model;

const CASES: [&str; 4] = [
    "nbits4_asym",
    "nbits4_sym_bias",
    "nbits8_asym",
    "nbits4_block64_odd_blocks",
];

#[test]
fn matmul_nbits_matches_onnx_runtime() {
    let dir = repo().join("compiler/kiln-onnx/tests/fixtures/contrib");
    for case in CASES {
        check_test_set(&dir.join(case), &[], 1e-5);
    }
}

#[test]
fn matmul_nbits_keeps_its_weights_packed() {
    let dir = repo().join("compiler/kiln-onnx/tests/fixtures/contrib");
    for (case, dt) in [("nbits4_asym", DType::U4), ("nbits8_asym", DType::U8)] {
        let model = load_model(dir.join(case).join("model.onnx")).unwrap();
        let g = import_model(&model, &ImportOptions::default()).unwrap();
        let q: Vec<_> = g.nodes.iter().filter(|n| n.op == OpKind::QMatMul).collect();
        assert_eq!(q.len(), 1, "{case}");
        let codes = q[0].inputs[1].unwrap();
        assert_eq!(g.value(codes).ty.dtype, dt, "{case}");
        assert!(
            !g.nodes.iter().any(|n| n.op == OpKind::MatMul),
            "{case}: a dequantized MatMul"
        );
        // No f32 weight as large as the dequantized matrix.
        let n = g.value(q[0].outputs[0]).ty.dims.last().cloned();
        assert!(n.is_some());
        for w in g.weights() {
            assert!(
                w.ty.dtype != DType::F32 || w.ty.numel().unwrap_or(0) < 200,
                "{case}: f32 weight {} of {}",
                w.name,
                w.ty
            );
        }
    }
}
