//! Operators whose older versions the importer rewrites into the newest
//! form (Upsample → Resize, Softmax-1 → reshape + softmax, CastLike →
//! Cast, ...): the imported graph, run by the reference interpreter, must
//! reproduce the ONNX test data (an independent reference) of the node
//! tests in `.cache/onnx-node-tests` (generated on first use).

mod common;

use common::{check_test_set, node_tests_dir};

/// Imports `name`, runs test_data_set_0 and compares within `tol`.
fn check(name: &str, tol: f64) {
    check_test_set(&node_tests_dir().join(name), &[], tol);
}

#[test]
fn legacy_versions_match_onnx_test_data() {
    check("test_upsample_nearest", 0.0);
    check("test_castlike_FLOAT_to_DOUBLE", 0.0);
    check("test_castlike_FLOAT16_to_FLOAT", 0.0);
}
