//! ONNX Runtime's `com.microsoft` MatMulNBits and MatMulBnb4
//! (`import/contrib.rs`): models in ORT's blockwise 4- and 8-bit format and
//! in bitsandbytes' NF4/FP4 format (`tests/fixtures/gen_contrib.py`, the
//! latter quantized by ORT's MatMulBnb4Quantizer; outputs from ORT's own
//! kernels) import as `quant.matmul` over packed codes, and the reference
//! interpreter matches ORT; other operators of the domain are refused by
//! name.

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

const BNB4_CASES: [&str; 3] = ["bnb4_nf4", "bnb4_nf4_blocks_cross_rows", "bnb4_fp4"];

#[test]
fn matmul_bnb4_matches_onnx_runtime() {
    let dir = repo().join("compiler/kiln-onnx/tests/fixtures/contrib");
    for case in BNB4_CASES {
        check_test_set(&dir.join(case), &[], 1e-5);
    }
}

#[test]
fn matmul_bnb4_keeps_its_weights_packed() {
    let dir = repo().join("compiler/kiln-onnx/tests/fixtures/contrib");
    // (case, code dtype, Kiln block: gcd(K, block_size), code book)
    for (case, dt, block, book) in [
        ("bnb4_nf4", DType::NF4, 64, false),
        ("bnb4_nf4_blocks_cross_rows", DType::NF4, 2, false),
        ("bnb4_fp4", DType::U4, 16, true),
    ] {
        let model = load_model(dir.join(case).join("model.onnx")).unwrap();
        let g = import_model(&model, &ImportOptions::default()).unwrap();
        let q: Vec<_> = g.nodes.iter().filter(|n| n.op == OpKind::QMatMul).collect();
        assert_eq!(q.len(), 1, "{case}");
        assert_eq!(g.value(q[0].inputs[1].unwrap()).ty.dtype, dt, "{case}");
        assert_eq!(
            q[0].attrs.get("block_size"),
            Some(&kiln_ir::Attr::Int(block)),
            "{case}"
        );
        assert_eq!(q[0].attrs.contains_key("code_book"), book, "{case}");
        assert!(!g.nodes.iter().any(|n| n.op == OpKind::MatMul), "{case}");
    }
}

#[test]
fn matmul_bnb4_odd_blocks_are_refused() {
    // K = 70 with blocks of 35: Kiln blocks of gcd = 35 codes, not whole bytes.
    let dir = repo().join("compiler/kiln-onnx/tests/fixtures/contrib");
    let mut model = load_model(dir.join("bnb4_nf4_blocks_cross_rows").join("model.onnx")).unwrap();
    model.graph.nodes[0]
        .attrs
        .insert("block_size".into(), kiln_onnx::OnnxAttr::Int(35));
    let err = import_model(&model, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.kind(), kiln_onnx::ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("blocks of 35 codes"), "{err}");
}
