//! Operators imported as compositions of Kiln ops (`import/compose.rs`):
//! the imported graph, run by the reference interpreter, must reproduce
//! the ONNX test data (an independent reference) of the node tests in
//! `.cache/onnx-node-tests`; malformed or unsupported uses must be refused
//! with the right error class (models built by the `onnx` package's
//! helpers, unchecked, in a temp dir).

mod common;

use common::{check_test_set, expect, import_error, node_tests_dir, python};
use kiln_onnx::ErrorKind;
use std::process::Command;

/// Imports node test `name`, runs test_data_set_0 through the interpreter
/// and compares every output ([`common::check_test_set`]).
fn check(name: &str, tol: f64) {
    check_test_set(&node_tests_dir().join(name), &[], tol);
}

#[test]
fn losses_match_onnx_test_data() {
    for name in [
        "test_nllloss_NC",
        "test_nllloss_NCd1_weight_ii",
        "test_nllloss_NCd1_mean_weight_negative_ii",
        "test_nllloss_NCd1d2_no_weight_reduction_mean_ii",
        "test_nllloss_NCd1d2d3_none_no_weight_negative_ii",
        "test_nllloss_NCd1d2_with_weight_reduction_sum",
        "test_sce_mean_weight_ii_3d_log_prob",
        "test_sce_none_weights",
        "test_sce_NCd1d2d3_sum_weight_high_ii_log_prob",
        // The expanded form calls NegativeLogLikelihoodLoss inside.
        "test_sce_mean_no_weight_ii_4d_expanded",
    ] {
        check(name, 1e-5);
    }
}

#[test]
fn integer_and_qlinear_ops_match_onnx_test_data() {
    for name in [
        "test_matmulinteger",
        "test_convinteger_with_padding",
        "test_convinteger_without_padding",
        "test_qlinearmatmul_2D_uint8_float16",
        "test_qlinearmatmul_3D_int8_float32",
        "test_qlinearconv",
        "test_dynamicquantizelinear",
        "test_dynamicquantizelinear_min_adjusted",
    ] {
        check(name, 0.0);
    }
}

#[test]
fn other_compositions_match_onnx_test_data() {
    for (name, tol) in [
        ("test_scatter_with_axis", 0.0),
        ("test_swish", 1e-6),
        ("test_swiglu_float16", 1e-3),
        ("test_hannwindow_symmetric", 1e-6),
        ("test_hammingwindow", 1e-6),
        ("test_blackmanwindow", 1e-6),
        ("test_spacetodepth_crd_mode_example", 0.0),
        ("test_spacetodepth_dcr_mode_example", 0.0),
        ("test_reversesequence_batch", 0.0),
        ("test_reversesequence_time", 0.0),
        // Target shape given at run time.
        ("test_center_crop_pad_crop_and_pad", 0.0),
        ("test_center_crop_pad_crop_negative_axes_hwc", 0.0),
        ("test_group_normalization_epsilon", 1e-5),
        ("test_tensorscatter_circular", 0.0),
        ("test_tensorscatter_3d", 0.0),
    ] {
        check(name, tol);
    }
}

/// Cases the node tests do not cover (older versions, per-channel
/// parameters, constant operands, other ranks and axes), in the node-test
/// layout;
/// the expected outputs come from ONNX's reference evaluator.
const GENERATED_CASES: &str = r#"
import sys, os, numpy as np, onnx
from onnx import helper as h, TensorProto as T, numpy_helper as nh
from onnx.reference import ReferenceEvaluator
out = sys.argv[1]
rng = np.random.default_rng(7)
def case(name, node, ins, outs, opset, inits=()):
    g = h.make_graph([node], name, [h.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in ins],
                     [h.make_tensor_value_info(n, T.UNDEFINED, None) for n in outs],
                     initializer=[nh.from_array(a, n) for n, a in inits])
    m = h.make_model(g, opset_imports=[h.make_opsetid('', opset)])
    res = ReferenceEvaluator(m).run(None, dict(ins))
    for vi, r in zip(m.graph.output, res):
        vi.CopyFrom(h.make_tensor_value_info(vi.name, onnx.helper.np_dtype_to_tensor_dtype(r.dtype), r.shape))
    d = os.path.join(out, name, 'test_data_set_0')
    os.makedirs(d)
    onnx.save(m, os.path.join(out, name, 'model.onnx'))
    for i, (n, a) in enumerate(ins):
        onnx.save_tensor(nh.from_array(a, n), os.path.join(d, f'input_{i}.pb'))
    for i, r in enumerate(res):
        onnx.save_tensor(nh.from_array(r, outs[i]), os.path.join(d, f'output_{i}.pb'))
f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
u8 = lambda *s: rng.integers(0, 256, s).astype(np.uint8)
case('group_norm_18_per_group', h.make_node('GroupNormalization', ['x', 's', 'b'], ['y'], num_groups=2, epsilon=1e-3),
     [('x', f32(2, 4, 3))], ['y'], 18, [('s', np.array([2, 3], np.float32)), ('b', np.array([.5, -1], np.float32))])
case('center_crop_pad_constant_shape', h.make_node('CenterCropPad', ['x', 'shape'], ['y'], axes=[0, 1]),
     [('x', f32(5, 4, 3))], ['y'], 18, [('shape', np.array([2, 7], np.int64))])
case('reverse_sequence_rank3', h.make_node('ReverseSequence', ['x', 'lens'], ['y'], time_axis=0, batch_axis=1),
     [('x', f32(4, 3, 2)), ('lens', np.array([4, 1, 3], np.int64))], ['y'], 10)
case('matmul_integer_per_column', h.make_node('MatMulInteger', ['a', 'b', 'az', 'bz'], ['y']),
     [('a', u8(2, 3)), ('b', u8(3, 4)), ('az', np.array(12, np.uint8)), ('bz', u8(4))], ['y'], 10)
case('qlinear_conv_per_channel', h.make_node('QLinearConv', ['x', 'xs', 'xz', 'w', 'ws', 'wz', 'ys', 'yz', 'bias'], ['y'], pads=[1, 1, 0, 0], strides=[1, 2]),
     [('x', u8(1, 2, 4, 4)), ('w', u8(3, 2, 2, 2))], ['y'], 10,
     [('xs', np.array(0.02, np.float32)), ('xz', np.array(100, np.uint8)), ('ws', np.array([0.01, 0.002, 0.03], np.float32)),
      ('wz', np.array([120, 128, 3], np.uint8)), ('ys', np.array(0.5, np.float32)), ('yz', np.array(60, np.uint8)),
      ('bias', np.array([1000, -2000, 30], np.int32))])
case('nll_loss_12_weight_sum_ii', h.make_node('NegativeLogLikelihoodLoss', ['x', 't', 'w'], ['y'], reduction='sum', ignore_index=2),
     [('x', f32(3, 4, 2)), ('t', np.array([[0, 2], [3, 1], [2, 2]], np.int64)), ('w', np.array([1, 2, 3, 4], np.float32))], ['y'], 12)
case('sce_none_f64_log_prob', h.make_node('SoftmaxCrossEntropyLoss', ['x', 't'], ['y', 'lp'], reduction='none'),
     [('x', rng.standard_normal((3, 5))), ('t', np.array([4, 0, 2], np.int32))], ['y', 'lp'], 13)
case('tensor_scatter_prefill', h.make_node('TensorScatter', ['past', 'upd'], ['y']),
     [('past', f32(2, 3, 6, 4)), ('upd', f32(2, 3, 2, 4))], ['y'], 24)
case('tensor_scatter_circular_axis1', h.make_node('TensorScatter', ['past', 'upd', 'w'], ['y'], axis=1, mode='circular'),
     [('past', f32(2, 5, 3)), ('upd', f32(2, 3, 3)), ('w', np.array([3, 4], np.int64))], ['y'], 24)
"#;

#[test]
fn generated_cases_match_the_onnx_reference_evaluator() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new(python())
        .args(["-c", GENERATED_CASES])
        .arg(tmp.path())
        .status()
        .expect("run python");
    assert!(st.success(), "case generation failed");
    for (name, tol) in [
        ("group_norm_18_per_group", 1e-5),
        ("center_crop_pad_constant_shape", 0.0),
        ("reverse_sequence_rank3", 0.0),
        ("matmul_integer_per_column", 0.0),
        ("qlinear_conv_per_channel", 0.0),
        ("nll_loss_12_weight_sum_ii", 1e-6),
        ("sce_none_f64_log_prob", 1e-12),
        ("tensor_scatter_prefill", 0.0),
        ("tensor_scatter_circular_axis1", 0.0),
    ] {
        check_test_set(&tmp.path().join(name), &[], tol);
    }
}

#[test]
fn malformed_or_unsupported_uses_are_refused() {
    let nll_io = "h.make_tensor_value_info('x', T.FLOAT, [2, 3]), \
                  h.make_tensor_value_info('t', T.INT64, [2])";
    let loss = "h.make_tensor_value_info('y', T.FLOAT, [])";
    expect(
        import_error(
            "h.make_node('NegativeLogLikelihoodLoss', ['x', 't'], ['y'], reduction='avg')",
            nll_io,
            loss,
            13,
        ),
        ErrorKind::InvalidInput,
        "reduction 'avg'",
    );
    expect(
        import_error(
            "h.make_node('NegativeLogLikelihoodLoss', ['x', 't'], ['y'], label_smoothing=0.1)",
            nll_io,
            loss,
            13,
        ),
        ErrorKind::Unsupported,
        "attribute 'label_smoothing'",
    );
    // Target rank must be the input's rank minus one.
    expect(
        import_error(
            "h.make_node('SoftmaxCrossEntropyLoss', ['x', 't'], ['y'])",
            "h.make_tensor_value_info('x', T.FLOAT, [2, 3]), \
             h.make_tensor_value_info('t', T.INT64, [2, 1])",
            loss,
            13,
        ),
        ErrorKind::InvalidInput,
        "target of rank 1",
    );
    expect(
        import_error(
            "h.make_node('MatMulInteger', ['a', 'b'], ['y'])",
            "h.make_tensor_value_info('a', T.INT32, [2, 2]), \
             h.make_tensor_value_info('b', T.INT32, [2, 2])",
            "h.make_tensor_value_info('y', T.INT32, [2, 2])",
            10,
        ),
        ErrorKind::Unsupported,
        "int8 or uint8",
    );
    expect(
        import_error(
            "h.make_node('SpaceToDepth', ['x'], ['y'], blocksize=2, mode='RDC')",
            "h.make_tensor_value_info('x', T.FLOAT, [1, 1, 2, 2])",
            "h.make_tensor_value_info('y', T.FLOAT, [1, 4, 1, 1])",
            28,
        ),
        ErrorKind::InvalidInput,
        "mode 'RDC'",
    );
    // QLinearMatMul takes all eight operands.
    expect(
        import_error(
            "h.make_node('QLinearMatMul', ['a', 's'], ['y'])",
            "h.make_tensor_value_info('a', T.UINT8, [2, 2]), \
             h.make_tensor_value_info('s', T.FLOAT, [])",
            "h.make_tensor_value_info('y', T.UINT8, [2, 2])",
            10,
        ),
        ErrorKind::InvalidInput,
        "input #2 is required",
    );
}
