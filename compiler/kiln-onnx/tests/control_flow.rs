//! Control flow (`If`, `Loop`, `Scan`) expanded at import time: the
//! imported graph, run by the reference interpreter, must reproduce
//! independent expected outputs — ONNX's own node-test data
//! (`.cache/onnx-node-tests`, generated on first use) and fixtures whose
//! outputs ONNX Runtime computed (`tests/fixtures/gen_control_flow.py`).
//! Control flow that depends on input values is refused with the inputs
//! named, and imports once their values are given.

mod common;

use common::{check_test_set, node_tests_dir, repo};
use kiln_ir::Blob;
use kiln_onnx::import::{import_model, ImportOptions, InputValue};
use kiln_onnx::{load_model, ErrorKind, OnnxError};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    repo().join("compiler/kiln-onnx/tests/fixtures/control_flow")
}

#[test]
fn onnx_node_tests_with_control_flow() {
    let d = node_tests_dir();
    check_test_set(&d.join("test_scan9_sum"), &[], 1e-6);
    check_test_set(&d.join("test_scan_sum"), &[], 1e-6);
    check_test_set(&d.join("test_scan9_multi_state"), &[], 1e-6);
    check_test_set(&d.join("test_if"), &["cond"], 0.0);
    check_test_set(&d.join("test_loop11"), &["trip_count", "cond"], 1e-6);
    check_test_set(
        &d.join("test_range_int32_type_negative_delta_expanded"),
        &["start", "limit", "delta"],
        0.0,
    );
}

#[test]
fn scan_directions_and_axes_match_onnx_runtime() {
    check_test_set(&fixtures().join("scan_directions"), &[], 1e-6);
}

#[test]
fn zero_iterations_give_an_empty_scan_output() {
    check_test_set(&fixtures().join("loop_zero_trips"), &["n"], 0.0);
}

#[test]
fn trip_count_given_as_a_value_matches_onnx_runtime() {
    check_test_set(&fixtures().join("loop_trip_count"), &["n"], 1e-6);
}

#[test]
fn while_loop_with_nested_if_matches_onnx_runtime() {
    check_test_set(&fixtures().join("while_loop_with_if"), &[], 1e-6);
}

#[test]
fn trip_count_from_an_input_names_the_inputs_to_freeze() {
    let model = load_model(node_tests_dir().join("test_loop11/model.onnx")).unwrap();
    let err = import_model(&model, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    match &err {
        OnnxError::NeedsInputValues { inputs, what, .. } => {
            assert_eq!(inputs, &["trip_count".to_string()]);
            assert_eq!(what, "the trip count");
        }
        other => panic!("expected NeedsInputValues, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("'trip_count'") && msg.contains("--freeze-input"),
        "{msg}"
    );
}

#[test]
fn if_condition_from_an_input_is_refused_until_given() {
    let model = load_model(node_tests_dir().join("test_if/model.onnx")).unwrap();
    let err = import_model(&model, &ImportOptions::default()).unwrap_err();
    assert!(
        matches!(&err, OnnxError::NeedsInputValues { inputs, .. } if inputs == &["cond".to_string()]),
        "{err}"
    );
}

#[test]
fn given_value_of_the_wrong_type_is_invalid() {
    let model = load_model(node_tests_dir().join("test_if/model.onnx")).unwrap();
    let mut opts = ImportOptions::default();
    opts.input_values.insert(
        "cond".into(),
        InputValue {
            dtype: kiln_ir::DType::F32,
            shape: vec![],
            data: Blob::from_vec(1f32.to_le_bytes().to_vec()),
        },
    );
    let err = import_model(&model, &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("'cond'"), "{err}");
    opts.input_values.clear();
    opts.input_values.insert(
        "no_such_input".into(),
        InputValue {
            dtype: kiln_ir::DType::Bool,
            shape: vec![],
            data: Blob::from_vec(vec![1]),
        },
    );
    let err = import_model(&model, &opts).unwrap_err();
    assert!(err.to_string().contains("names no graph input"), "{err}");
}

#[test]
fn unrolling_is_bounded() {
    let model = load_model(fixtures().join("runaway_loop/model.onnx")).unwrap();
    let err = import_model(&model, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{err}");
    assert!(err.to_string().contains("4096"), "{err}");
}

#[test]
fn nested_unrolling_is_bounded_per_model() {
    let model = load_model(fixtures().join("nested_loop_bomb/model.onnx")).unwrap();
    let err = import_model(&model, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{err}");
    assert!(err.to_string().contains("bodies"), "{err}");
}
