//! RoiAlign (imported as a composition, `import/indexing.rs`): the
//! imported graph, run by the reference interpreter, must match ONNX's
//! node tests and ONNX Runtime's outputs for several images and channels,
//! a spatial scale, and ROIs that reach outside the image
//! (`tests/fixtures/gen_indexing.py`).

mod common;

use common::{check_test_set, node_tests_dir, repo};

#[test]
fn roi_align_matches_onnx_test_data() {
    for name in [
        "test_roialign_aligned_false",
        "test_roialign_aligned_true",
        "test_roialign_mode_max",
    ] {
        // The stored expectations are rounded to 4 decimals.
        check_test_set(&node_tests_dir().join(name), &[], 1e-3);
    }
}

#[test]
fn roi_align_matches_onnx_runtime() {
    let dir = repo().join("compiler/kiln-onnx/tests/fixtures/indexing");
    check_test_set(&dir.join("roi_align_avg_half_pixel"), &[], 1e-5);
    check_test_set(&dir.join("roi_align_avg_output_half_pixel"), &[], 1e-5);
}
