//! `Det` (imported as unrolled Gaussian elimination with partial
//! pivoting): the imported graph, run by the reference interpreter, must
//! match ONNX's node-test data and NumPy's LAPACK determinants for matrices
//! that need row swaps, a singular matrix and a batch of 5×5 matrices
//! (`tests/fixtures/gen_linalg.py`); DeformConv must match ONNX's node tests
//! and the ONNX reference evaluator with groups, offset groups, stride,
//! dilation, padding, mask and bias.

mod common;

use common::{check_test_set, node_tests_dir, repo};

#[test]
fn det_matches_onnx_test_data() {
    check_test_set(&node_tests_dir().join("test_det_2d"), &[], 1e-6);
    check_test_set(&node_tests_dir().join("test_det_nd"), &[], 1e-6);
}

#[test]
fn det_pivots_and_batches_match_numpy() {
    let dir = repo().join("compiler/kiln-onnx/tests/fixtures/linalg");
    check_test_set(&dir.join("det_pivoting"), &[], 1e-12);
    check_test_set(&dir.join("det_batch_5x5"), &[], 1e-12);
}

#[test]
fn deform_conv_matches_onnx_references() {
    for name in [
        "test_basic_deform_conv_with_padding",
        "test_basic_deform_conv_without_padding",
        "test_deform_conv_with_mask_bias",
        "test_deform_conv_with_multiple_offset_groups",
    ] {
        check_test_set(&node_tests_dir().join(name), &[], 1e-5);
    }
    let dir = repo().join("compiler/kiln-onnx/tests/fixtures/linalg");
    check_test_set(&dir.join("deform_conv"), &[], 1e-4);
}
