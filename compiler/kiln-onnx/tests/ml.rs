//! `ai.onnx.ml` operators (imported as compositions, `import/ml.rs`): the
//! imported graph, run by the reference interpreter, must match ONNX's
//! node-test data and ONNX Runtime's outputs for a preprocessing chain
//! (Scaler, Normalizer, LinearRegressor) and a two-tree averaged ensemble
//! with NaN routing
//! (`tests/fixtures/gen_ml.py`); ml operators Kiln does not import are
//! refused by name.

mod common;

use common::{check_test_set, node_tests_dir, repo};
use kiln_onnx::import::{import_model, ImportOptions};
use kiln_onnx::{load_model, ErrorKind};

#[test]
fn ml_node_tests_match_onnx_test_data() {
    for name in [
        "test_ai_onnx_ml_binarizer",
        "test_ai_onnx_ml_array_feature_extractor",
        "test_ai_onnx_ml_tree_ensemble_single_tree",
        "test_ai_onnx_ml_tree_ensemble_set_membership",
    ] {
        check_test_set(&node_tests_dir().join(name), &[], 1e-6);
    }
}

#[test]
fn ml_fixtures_match_onnx_runtime() {
    let dir = repo().join("compiler/kiln-onnx/tests/fixtures/ml");
    check_test_set(&dir.join("preprocessing"), &[], 1e-5);
    check_test_set(&dir.join("forest"), &[], 1e-6);
}

#[test]
fn unsupported_ml_operators_are_named() {
    let path = repo().join("compiler/kiln-onnx/tests/fixtures/ml/label_encoder/model.onnx");
    let model = load_model(path).unwrap();
    let err = import_model(&model, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("ai.onnx.ml:LabelEncoder") && msg.contains("labels"),
        "{msg}"
    );
}
