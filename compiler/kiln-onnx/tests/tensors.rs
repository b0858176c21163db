//! Tensor decoding of every supported dtype, from `raw_data` and from the
//! typed repeated fields, against bytes computed by ONNX's own
//! `numpy_helper.to_array` (see `fixtures/gen_tensors.py`).

use kiln_ir::DType;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_dtype_matches_numpy_helper() {
    let model = kiln_onnx::load_model(fixtures().join("tensors.onnx")).expect("fixture loads");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tensors.json")).unwrap())
            .unwrap();
    let expected = expected.as_object().unwrap();
    assert_eq!(model.graph.initializers.len(), expected.len());

    let mut seen_dtypes = std::collections::BTreeSet::new();
    for t in &model.graph.initializers {
        let e = &expected[&t.name];
        let dtype = DType::from_name(e["dtype"].as_str().unwrap()).unwrap();
        let dims: Vec<u64> = e["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.dtype, dtype, "{}", t.name);
        assert_eq!(t.dims, dims, "{}", t.name);
        assert_eq!(
            hex(t.data.bytes()),
            e["hex"].as_str().unwrap(),
            "{}",
            t.name
        );
        assert_eq!(
            Some(t.data.len() as u64),
            dtype.storage_bytes(t.numel()),
            "{}",
            t.name
        );
        seen_dtypes.insert(dtype);
    }
    // Every Kiln dtype except nf4 (which has no ONNX encoding) is covered.
    let all: std::collections::BTreeSet<DType> = DType::ALL
        .iter()
        .copied()
        .filter(|&d| d != DType::NF4)
        .collect();
    assert_eq!(seen_dtypes, all);
}

#[test]
fn raw_and_typed_encodings_agree() {
    let model = kiln_onnx::load_model(fixtures().join("tensors.onnx")).unwrap();
    for t in model
        .graph
        .initializers
        .iter()
        .filter(|t| t.name.starts_with("raw_"))
    {
        let typed = model
            .graph
            .initializer(&t.name.replacen("raw_", "typed_", 1))
            .expect("typed twin");
        assert_eq!(t.dtype, typed.dtype);
        assert_eq!(t.data, typed.data, "{}", t.name);
    }
}
