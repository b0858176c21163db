//! String attributes with a closed set of values (ONNX's modes, auto_pad,
//! reductions...) are refused at import when the value is outside the set,
//! as invalid input naming the node, the attribute, the value and the
//! allowed spellings (models built by `onnx.helper`, unchecked).

mod common;

use common::{expect, import_error};
use kiln_onnx::ErrorKind;

fn f32_info(name: &str, dims: &str) -> String {
    format!("h.make_tensor_value_info('{name}', T.FLOAT, [{dims}])")
}

#[test]
fn values_outside_the_set_name_the_node() {
    let x4 = f32_info("x", "1, 1, 4, 4");
    let cases: Vec<(String, String, String, u32, &str)> = vec![
        (
            "h.make_node('Pad', ['x', 'p'], ['y'], mode='mirror', name='pad_1')".into(),
            format!("{}, h.make_tensor_value_info('p', T.INT64, [8])", x4),
            f32_info("y", ""),
            18,
            "attribute 'mode' has unknown value \"mirror\" (expected one of \"constant\", \"reflect\", \"edge\", \"wrap\")",
        ),
        (
            "h.make_node('Conv', ['x', 'w'], ['y'], auto_pad='SAME', name='conv_1')".into(),
            format!("{x4}, {}", f32_info("w", "1, 1, 3, 3")),
            f32_info("y", "1, 1, 4, 4"),
            17,
            "attribute 'auto_pad' has unknown value \"SAME\"",
        ),
        (
            "h.make_node('Resize', ['x', '', 's'], ['y'], mode='area', name='resize_1')".into(),
            format!("{x4}, {}", f32_info("s", "4")),
            f32_info("y", ""),
            19,
            "attribute 'mode' has unknown value \"area\" (expected one of \"nearest\", \"linear\", \"cubic\")",
        ),
        (
            "h.make_node('Resize', ['x', '', 's'], ['y'], coordinate_transformation_mode='center', name='resize_2')".into(),
            format!("{x4}, {}", f32_info("s", "4")),
            f32_info("y", ""),
            19,
            "attribute 'coordinate_transformation_mode' has unknown value \"center\"",
        ),
        (
            "h.make_node('GridSample', ['x', 'g'], ['y'], padding_mode='wrap', name='grid_1')".into(),
            format!("{x4}, {}", f32_info("g", "1, 2, 2, 2")),
            f32_info("y", "1, 1, 2, 2"),
            20,
            "attribute 'padding_mode' has unknown value \"wrap\"",
        ),
        (
            "h.make_node('DepthToSpace', ['x'], ['y'], blocksize=2, mode='RDC', name='d2s_1')".into(),
            f32_info("x", "1, 4, 2, 2"),
            f32_info("y", "1, 1, 4, 4"),
            13,
            "attribute 'mode' has unknown value \"RDC\" (expected one of \"DCR\", \"CRD\")",
        ),
        (
            "h.make_node('ScatterElements', ['x', 'i', 'u'], ['y'], reduction='mean', name='scatter_1')".into(),
            format!(
                "{}, h.make_tensor_value_info('i', T.INT64, [2]), {}",
                f32_info("x", "4"),
                f32_info("u", "2")
            ),
            f32_info("y", "4"),
            18,
            "attribute 'reduction' has unknown value \"mean\"",
        ),
        (
            "h.make_node('Gelu', ['x'], ['y'], approximate='fast', name='gelu_1')".into(),
            f32_info("x", "4"),
            f32_info("y", "4"),
            20,
            "attribute 'approximate' has unknown value \"fast\" (expected one of \"none\", \"tanh\")",
        ),
        (
            "h.make_node('BitShift', ['a', 'b'], ['y'], direction='UP', name='shift_1')".into(),
            "h.make_tensor_value_info('a', T.UINT8, [4]), h.make_tensor_value_info('b', T.UINT8, [4])".into(),
            "h.make_tensor_value_info('y', T.UINT8, [4])".into(),
            11,
            "attribute 'direction' has unknown value \"up\" (expected one of \"left\", \"right\")",
        ),
    ];
    for (node, inputs, outputs, opset, message) in cases {
        let err = import_error(&node, &inputs, &outputs, opset);
        let name = node
            .split("name='")
            .nth(1)
            .and_then(|s| s.split('\'').next())
            .expect("every case names its node");
        let text = err.to_string();
        assert!(
            text.contains(name),
            "the error does not name {name}: {text}"
        );
        expect(err, ErrorKind::InvalidInput, message);
    }
}

#[test]
fn a_misspelled_onnx_spelling_is_refused() {
    // GridSample-16's `bilinear` imports as `linear` (the node tests cover
    // it); a typo of it is refused like any other value outside the set.
    let err = import_error(
        "h.make_node('GridSample', ['x', 'g'], ['y'], mode='bilnear', name='grid_2')",
        &format!(
            "{}, {}",
            f32_info("x", "1, 1, 4, 4"),
            f32_info("g", "1, 2, 2, 2")
        ),
        &f32_info("y", "1, 1, 2, 2"),
        16,
    );
    expect(
        err,
        ErrorKind::InvalidInput,
        "attribute 'mode' has unknown value \"bilnear\"",
    );
}
