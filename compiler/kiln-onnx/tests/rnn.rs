//! RNN, GRU and LSTM, unrolled at import time (`import/rnn.rs`): the
//! imported graph, run by the reference interpreter, must reproduce
//! independent expected outputs — ONNX's own node-test data
//! (`.cache/onnx-node-tests`, generated on first use) and fixtures whose
//! outputs ONNX Runtime computed (`tests/fixtures/gen_rnn.py`: peepholes,
//! batch-major layout, linear_before_reset, clip, input_forget, activation
//! parameters, run-time sequence_lens). Nodes that cannot be unrolled or
//! are malformed are refused with the right error class.

mod common;

use common::{check_test_set, expect, import_error, node_tests_dir, repo};
use kiln_onnx::{ErrorKind, OnnxError};

#[test]
fn node_tests_match_onnx_test_data() {
    for name in [
        "test_rnn_seq_length",
        "test_simple_rnn_batchwise",
        "test_simple_rnn_bidirectional",
        "test_simple_rnn_defaults",
        "test_simple_rnn_reverse",
        "test_simple_rnn_with_initial_bias",
        "test_gru_batchwise",
        "test_gru_bidirectional",
        "test_gru_defaults",
        "test_gru_reverse",
        "test_gru_seq_length",
        "test_gru_with_initial_bias",
        "test_lstm_batchwise",
        "test_lstm_bidirectional",
        "test_lstm_defaults",
        "test_lstm_reverse",
        "test_lstm_with_initial_bias",
        // Peepholes, initial states and a run-time sequence_lens input.
        "test_lstm_with_peepholes",
    ] {
        check_test_set(&node_tests_dir().join(name), &[], 1e-5);
    }
}

#[test]
fn fixtures_match_onnx_runtime() {
    let dir = repo().join("compiler/kiln-onnx/tests/fixtures/rnn");
    for name in [
        "lstm_bidirectional_batchwise_peepholes",
        "gru_reverse_linear_before_reset_seq_lens",
        "rnn_bidirectional_activations",
        "lstm_input_forget_clip_seq_lens",
    ] {
        check_test_set(&dir.join(name), &[], 1e-5);
    }
}

/// Builds a one-node model with output Y_h and returns its import error.
fn rnn_error(node: &str, inputs: &str, opset: u32) -> OnnxError {
    import_error(
        node,
        inputs,
        "h.make_tensor_value_info('Y_h', T.FLOAT, None)",
        opset,
    )
}

/// X, W and R as graph inputs of the given shapes (hidden size 2, one gate).
fn rnn_inputs(x: &str, w: &str) -> String {
    format!(
        "h.make_tensor_value_info('X', T.FLOAT, {x}), \
         h.make_tensor_value_info('W', T.FLOAT, {w}), \
         h.make_tensor_value_info('R', T.FLOAT, [1, 2, 2])"
    )
}

#[test]
fn nodes_that_cannot_be_unrolled_or_are_malformed_are_refused() {
    let rnn = "h.make_node('RNN', ['X', 'W', 'R'], ['', 'Y_h'], hidden_size=2)";
    expect(
        rnn_error(rnn, &rnn_inputs("['seq', 1, 3]", "[1, 2, 3]"), 14),
        ErrorKind::Unsupported,
        "static sequence length",
    );
    expect(
        rnn_error(rnn, &rnn_inputs("[5000, 1, 3]", "[1, 2, 3]"), 14),
        ErrorKind::Unsupported,
        "unroll limit of 4096",
    );
    expect(
        rnn_error(
            "h.make_node('RNN', ['X', 'W', 'R'], ['', 'Y_h'], hidden_size=2, activations=['Gelu'])",
            &rnn_inputs("[2, 1, 3]", "[1, 2, 3]"),
            14,
        ),
        ErrorKind::Unsupported,
        "activation 'Gelu'",
    );
    expect(
        rnn_error(rnn, &rnn_inputs("[2, 1, 3]", "[1, 3, 3]"), 14),
        ErrorKind::InvalidInput,
        "W is",
    );
    expect(
        rnn_error(
            "h.make_node('RNN', ['X', 'W', 'R'], ['', 'Y_h'], hidden_size=3)",
            &rnn_inputs("[2, 1, 3]", "[1, 2, 3]"),
            14,
        ),
        ErrorKind::InvalidInput,
        "hidden_size is 3",
    );
    expect(
        rnn_error(
            "h.make_node('RNN', ['X', 'W', 'R'], ['', 'Y_h'], direction='sideways')",
            &rnn_inputs("[2, 1, 3]", "[1, 2, 3]"),
            14,
        ),
        ErrorKind::InvalidInput,
        "direction 'sideways'",
    );
    expect(
        rnn_error(
            "h.make_node('RNN', ['X', 'W', 'R'], ['', 'Y_h'], layout=1)",
            &rnn_inputs("[2, 1, 3]", "[1, 2, 3]"),
            7,
        ),
        ErrorKind::InvalidInput,
        "layout",
    );
}
