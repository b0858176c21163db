//! The graph runner, storage bytes and limits.

use kiln_interp::{run_graph, run_graph_with, InterpError, Limits, Tensor};
use kiln_ir::{Attrs, Blob, DType, Dim, Graph, OpKind, TensorType, Weight, WeightData};

fn f32s(shape: &[u64], v: &[f32]) -> Tensor {
    Tensor::from_f64(
        DType::F32,
        shape.to_vec(),
        v.iter().map(|&x| f64::from(x)).collect(),
    )
}

/// y = relu(x + c) with a constant c; expected values computed by hand.
fn small_graph() -> Graph {
    let mut g = Graph::new("main");
    let ty = TensorType::new(DType::F32, vec![Dim::sym("n"), Dim::Static(2)]);
    let x = g.add_input("x", ty.clone());
    let bytes: Vec<u8> = [1.0f32, -3.0]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let c = g.add_constant(
        "c",
        Weight {
            name: "c".into(),
            ty: TensorType::fixed(DType::F32, &[2]),
            data: WeightData::Bytes(Blob::from_vec(bytes)),
            source: None,
        },
    );
    let s = g.add_node(
        OpKind::Add,
        vec![Some(x), Some(c)],
        Attrs::new(),
        vec![("s".into(), ty.clone())],
    )[0];
    let y = g.add_node(
        OpKind::Relu,
        vec![Some(s)],
        Attrs::new(),
        vec![("y".into(), ty)],
    )[0];
    g.outputs.push(y);
    g
}

#[test]
fn runs_a_graph_with_symbolic_dims() {
    let out = run_graph(&small_graph(), &[f32s(&[2, 2], &[0.5, 4.0, -2.0, 2.0])]).unwrap();
    assert_eq!(out[0], f32s(&[2, 2], &[1.5, 1.0, 0.0, 0.0]));
}

#[test]
fn rejects_mismatched_inputs() {
    let e = run_graph(&small_graph(), &[f32s(&[2, 3], &[0.0; 6])]).unwrap_err();
    assert!(matches!(e, InterpError::Input { index: 0, .. }), "{e}");
    let i = Tensor::from_ints(DType::I32, vec![1, 2], vec![1, 2]);
    assert!(matches!(
        run_graph(&small_graph(), &[i]).unwrap_err(),
        InterpError::Input { .. }
    ));
}

#[test]
fn element_limit_is_an_error_naming_the_node() {
    let e = run_graph_with(
        &small_graph(),
        &[f32s(&[4, 2], &[0.0; 8])],
        &Limits { max_elements: 4 },
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("nn.add"), "{msg}");
    assert!(
        matches!(e, InterpError::Node { source, .. } if matches!(*source, InterpError::TooLarge { elements: 8, limit: 4 }))
    );
}

#[test]
fn storage_bytes_round_trip() {
    // int4: -8, 7, -1 packed low nibble first: 0x78, 0x0F.
    let t = Tensor::from_bytes(DType::I4, &[3], &[0x78, 0x0F]).unwrap();
    assert_eq!(t.ints().unwrap(), &[-8, 7, -1]);
    assert_eq!(t.to_bytes(), vec![0x78, 0x0F]);
    let u = Tensor::from_bytes(DType::U4, &[2], &[0xF1]).unwrap();
    assert_eq!(u.ints().unwrap(), &[1, 15]);
    // f16 1.0 = 0x3C00, bf16 -2.0 = 0xC000.
    assert_eq!(
        Tensor::from_bytes(DType::F16, &[1], &[0x00, 0x3C])
            .unwrap()
            .floats()
            .unwrap(),
        &[1.0]
    );
    assert_eq!(
        Tensor::from_bytes(DType::BF16, &[1], &[0x00, 0xC0])
            .unwrap()
            .floats()
            .unwrap(),
        &[-2.0]
    );
    // Wrong length and non-0/1 bools are errors.
    assert!(Tensor::from_bytes(DType::F32, &[2], &[0; 7]).is_err());
    assert!(Tensor::from_bytes(DType::Bool, &[1], &[2]).is_err());
}

#[test]
fn float8_known_bit_patterns() {
    use kiln_ir::codec::{CastMode, FloatFormat};
    let (sat, nosat) = (CastMode::CAST_DEFAULT, CastMode::ARITH);
    let (e4, e5) = (FloatFormat::E4M3FN, FloatFormat::E5M2);
    // From the ONNX float8 spec / ml_dtypes.
    assert_eq!(e4.decode_value(0x7E), 448.0);
    assert!(e4.decode_value(0x7F).is_nan());
    assert_eq!(e4.decode_value(0x01), 2f32.powi(-9));
    assert_eq!(e5.decode_value(0x7B), 57344.0);
    assert_eq!(e5.decode_value(0x7C), f32::INFINITY);
    assert_eq!(e5.decode_value(0x01), 2f32.powi(-16));
    assert_eq!(e4.encode_value(464.0, nosat), 0x7E); // tie to even
    assert_eq!(e4.encode_value(465.0, nosat), 0x7F); // NaN
    assert_eq!(e4.encode_value(f32::NEG_INFINITY, sat), 0xFE);
    assert_eq!(e5.encode_value(1e9, nosat), 0x7C);
    assert_eq!(e5.encode_value(f32::INFINITY, sat), 0x7B);
    assert_eq!(e4.encode_value(0.5, nosat), 0x30);
    // Tensors decode through the same codec.
    let t = Tensor::from_bytes(DType::F8E4M3FNUZ, &[2], &[0x80, 0x7F]).unwrap();
    let v = t.floats().unwrap();
    assert!(v[0].is_nan());
    assert_eq!(v[1], 240.0);
    let t = Tensor::from_bytes(DType::I2, &[5], &[0b1100_1001, 0b01]).unwrap();
    assert_eq!(t.ints().unwrap(), &[1, -2, 0, -1, 1]);
    assert_eq!(t.to_bytes(), [0b1100_1001, 0b01]);
}
