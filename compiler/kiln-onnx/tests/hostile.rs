//! Composed operators build constants and shapes from attribute and
//! operand values, which are untrusted: values that would overflow or ask
//! for gigabytes are refused with an error of the right class, never a
//! panic or an allocation failure.

mod common;

use common::{expect, import_error};
use kiln_onnx::ErrorKind;

#[test]
fn huge_or_overflowing_values_are_refused() {
    // Col2Im with a block of 2^40 positions (the one-hot kernel would be 2^80 values).
    expect(
        import_error(
            "h.make_node('Col2Im', ['x', 'img', 'blk'], ['y'])",
            "h.make_tensor_value_info('x', T.FLOAT, [1, 4, 1])",
            "h.make_tensor_value_info('y', T.FLOAT, None)], \
             initializer=[h.make_tensor('img', T.INT64, [2], [1048576, 1048576]), \
             h.make_tensor('blk', T.INT64, [2], [1048576, 1048576])",
            18,
        ),
        ErrorKind::Unsupported,
        "too large",
    );
    // MaxUnpool strides that overflow i64 when computing the output extent.
    expect(
        import_error(
            "h.make_node('MaxUnpool', ['x', 'i'], ['y'], kernel_shape=[2], strides=[9223372036854775807])",
            "h.make_tensor_value_info('x', T.FLOAT, [1, 1, 4]), \
             h.make_tensor_value_info('i', T.INT64, [1, 1, 4])",
            "h.make_tensor_value_info('y', T.FLOAT, None)",
            22,
        ),
        ErrorKind::InvalidInput,
        "unpooled shape",
    );
    // TfIdfVectorizer whose n-gram index asks for a 2^62-entry output.
    expect(
        import_error(
            "h.make_node('TfIdfVectorizer', ['x'], ['y'], mode='TF', min_gram_length=1, \
             max_gram_length=1, max_skip_count=0, ngram_counts=[0], \
             ngram_indexes=[4611686018427387904], pool_int64s=[7])",
            "h.make_tensor_value_info('x', T.INT64, [6])",
            "h.make_tensor_value_info('y', T.FLOAT, None)",
            9,
        ),
        ErrorKind::Unsupported,
        "limit",
    );
    // MelWeightMatrix of 2^16 bins over a 2^24-point DFT (2^39 values).
    expect(
        import_error(
            "h.make_node('MelWeightMatrix', ['n', 'd', 'r', 'lo', 'hi'], ['y'])",
            "",
            "h.make_tensor_value_info('y', T.FLOAT, None)], initializer=[\
             h.make_tensor('n', T.INT32, [], [65536]), h.make_tensor('d', T.INT32, [], [16777216]), \
             h.make_tensor('r', T.INT32, [], [16000]), h.make_tensor('lo', T.FLOAT, [], [0.0]), \
             h.make_tensor('hi', T.FLOAT, [], [8000.0])",
            17,
        ),
        ErrorKind::Unsupported,
        "limit",
    );
}
