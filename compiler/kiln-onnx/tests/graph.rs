//! Graph checks, sorting, attributes and types on models built in Rust
//! from the generated prost types.

use kiln_ir::{DType, Dim};
use kiln_onnx::proto::onnx::{
    attribute_proto::AttributeType, tensor_shape_proto::dimension::Value as DimValue,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, FunctionProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use kiln_onnx::{load_model_bytes, ErrorKind, OnnxAttr};
use prost::Message;

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn dim(d: Option<DimValue>) -> Dimension {
    Dimension {
        value: d,
        ..Default::default()
    }
}

fn value(name: &str, elem: i32, dims: Option<Vec<Dimension>>) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: dims.map(|dim| TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn f32_value(name: &str) -> ValueInfoProto {
    value(name, 1, Some(vec![dim(Some(DimValue::DimValue(2)))]))
}

fn model(nodes: Vec<NodeProto>, inputs: &[&str], outputs: &[&str]) -> ModelProto {
    ModelProto {
        ir_version: Some(10),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(21),
        }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: nodes,
            input: inputs.iter().map(|n| f32_value(n)).collect(),
            output: outputs.iter().map(|n| f32_value(n)).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn load(m: &ModelProto) -> Result<kiln_onnx::OnnxModel, kiln_onnx::OnnxError> {
    load_model_bytes("test.onnx", m.encode_to_vec().into())
}

fn names(m: &kiln_onnx::OnnxModel) -> Vec<&str> {
    m.graph.nodes.iter().map(|n| n.name.as_str()).collect()
}

#[test]
fn out_of_order_nodes_are_sorted_stably() {
    let m = model(
        vec![
            node("C", "Relu", &["b"], &["y"]),
            node("A", "Relu", &["x"], &["a"]),
            node("B", "Relu", &["a"], &["b"]),
            node("D", "Relu", &["x"], &["d"]),
        ],
        &["x"],
        &["y"],
    );
    let loaded = load(&m).unwrap();
    assert_eq!(names(&loaded), ["A", "B", "C", "D"]);
    // Indices still refer to file positions.
    assert_eq!(loaded.graph.nodes[0].index, 1);
}

#[test]
fn sorted_graph_keeps_file_order() {
    let m = model(
        vec![
            node("n0", "Relu", &["x"], &["a"]),
            node("n1", "Relu", &["x"], &["b"]),
            node("n2", "Add", &["a", "b"], &["y"]),
        ],
        &["x"],
        &["y"],
    );
    assert_eq!(names(&load(&m).unwrap()), ["n0", "n1", "n2"]);
}

#[test]
fn empty_names_are_absent_optionals() {
    let m = model(
        vec![node("clip", "Clip", &["x", "", "hi"], &["y"])],
        &["x", "hi"],
        &["y"],
    );
    let loaded = load(&m).unwrap();
    let n = &loaded.graph.nodes[0];
    assert_eq!(
        n.inputs,
        vec![Some("x".to_string()), None, Some("hi".to_string())]
    );
    assert_eq!(n.input(1), None);
    assert_eq!(n.input(2), Some("hi"));
}

#[test]
fn value_types_convert_dims() {
    let mut m = model(vec![node("r", "Relu", &["x"], &["y"])], &[], &["y"]);
    let g = m.graph.as_mut().unwrap();
    g.input.push(value(
        "x",
        10,
        Some(vec![
            dim(Some(DimValue::DimParam("batch".into()))),
            dim(None),
            dim(Some(DimValue::DimValue(768))),
        ]),
    ));
    g.value_info.push(value("unranked", 7, None));
    let loaded = load(&m).unwrap();
    let x = &loaded.graph.inputs[0];
    assert_eq!(x.dtype, Some(DType::F16));
    let t = x.tensor_type().unwrap();
    assert_eq!(
        t.dims,
        vec![Dim::sym("batch"), Dim::Unknown, Dim::Static(768)]
    );
    assert_eq!(t.to_string(), "tensor<{batch}x?x768xf16>");
    let u = &loaded.graph.value_info[0];
    assert_eq!((u.dtype, u.dims.clone()), (Some(DType::I64), None));
    assert_eq!(u.tensor_type(), None);
}

#[test]
fn negative_type_dim_is_invalid() {
    let mut m = model(vec![node("r", "Relu", &["x"], &["y"])], &[], &["y"]);
    m.graph.as_mut().unwrap().input.push(value(
        "x",
        1,
        Some(vec![dim(Some(DimValue::DimValue(-3)))]),
    ));
    let err = load(&m).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("graph input 'x'"), "{err}");
}

fn attr(name: &str, ty: AttributeType, f: impl FnOnce(&mut AttributeProto)) -> AttributeProto {
    let mut a = AttributeProto {
        name: Some(name.into()),
        r#type: Some(ty as i32),
        ..Default::default()
    };
    f(&mut a);
    a
}

#[test]
fn attributes_are_typed() {
    let mut n = node("c", "Conv", &["x", "x"], &["y"]);
    n.attribute = vec![
        attr("strides", AttributeType::Ints, |a| a.ints = vec![2, 2]),
        attr("alpha", AttributeType::Float, |a| a.f = Some(0.5)),
        attr("auto_pad", AttributeType::String, |a| {
            a.s = Some("SAME_UPPER".into())
        }),
        attr("group", AttributeType::Int, |a| a.i = Some(1)),
        attr("value", AttributeType::Tensor, |a| {
            a.t = Some(TensorProto {
                data_type: Some(7),
                dims: vec![2],
                int64_data: vec![3, -4],
                ..Default::default()
            })
        }),
        // Old exporters leave `type` unset; it is inferred.
        AttributeProto {
            name: Some("legacy".into()),
            floats: vec![1.0, 2.0],
            ..Default::default()
        },
    ];
    let loaded = load(&model(vec![n], &["x"], &["y"])).unwrap();
    let n = &loaded.graph.nodes[0];
    assert_eq!(
        n.attr("strides").and_then(OnnxAttr::as_ints),
        Some(&[2i64, 2][..])
    );
    assert_eq!(n.attr("alpha").and_then(OnnxAttr::as_float), Some(0.5));
    assert_eq!(
        n.attr("auto_pad").and_then(OnnxAttr::as_str),
        Some("SAME_UPPER")
    );
    assert_eq!(n.attr("group").and_then(OnnxAttr::as_int), Some(1));
    assert_eq!(
        n.attr("legacy").and_then(OnnxAttr::as_floats),
        Some(&[1.0f32, 2.0][..])
    );
    let t = n.attr("value").and_then(OnnxAttr::as_tensor).unwrap();
    assert_eq!((t.dtype, t.dims.clone()), (DType::I64, vec![2]));
    assert_eq!(
        t.data.bytes(),
        [3i64.to_le_bytes(), (-4i64).to_le_bytes()]
            .concat()
            .as_slice()
    );
    assert_eq!(n.attr("strides").unwrap().kind_name(), "INTS");
}

#[test]
fn duplicate_attribute_is_invalid() {
    let mut n = node("c", "Relu", &["x"], &["y"]);
    n.attribute = vec![
        attr("a", AttributeType::Int, |a| a.i = Some(1)),
        attr("a", AttributeType::Int, |a| a.i = Some(2)),
    ];
    let err = load(&model(vec![n], &["x"], &["y"])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(
        msg.contains("attribute 'a' of node 'c' (Relu)") && msg.contains("twice"),
        "{msg}"
    );
}

fn branch(nodes: Vec<NodeProto>, output: &str) -> GraphProto {
    GraphProto {
        name: Some("branch".into()),
        node: nodes,
        output: vec![f32_value(output)],
        ..Default::default()
    }
}

#[test]
fn subgraph_captures_order_the_owner() {
    // `if` captures `late`, produced by a node after it in the file.
    let mut iff = node("if", "If", &["cond"], &["y"]);
    iff.attribute = vec![
        attr("then_branch", AttributeType::Graph, |a| {
            a.g = Some(branch(
                vec![node("t", "Relu", &["late"], &["t_out"])],
                "t_out",
            ))
        }),
        attr("else_branch", AttributeType::Graph, |a| {
            a.g = Some(branch(vec![], "x"))
        }),
    ];
    let m = model(
        vec![iff, node("late", "Relu", &["x"], &["late"])],
        &["x", "cond"],
        &["y"],
    );
    let loaded = load(&m).unwrap();
    assert_eq!(names(&loaded), ["late", "if"]);
    let then = loaded.graph.nodes[1]
        .attr("then_branch")
        .and_then(OnnxAttr::as_graph)
        .unwrap();
    assert_eq!(then.nodes[0].name, "t");
}

#[test]
fn subgraph_undefined_value_is_reported() {
    let mut iff = node("if", "If", &["x"], &["y"]);
    iff.attribute = vec![attr("then_branch", AttributeType::Graph, |a| {
        a.g = Some(branch(
            vec![node("t", "Relu", &["nowhere"], &["t_out"])],
            "t_out",
        ))
    })];
    let err = load(&model(vec![iff], &["x"], &["y"])).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        msg.contains("node 't' (Relu)") && msg.contains("'nowhere'"),
        "{msg}"
    );
}

#[test]
fn subgraph_may_not_shadow_outer_values() {
    let mut iff = node("if", "If", &["x"], &["y"]);
    iff.attribute = vec![attr("then_branch", AttributeType::Graph, |a| {
        a.g = Some(branch(vec![node("t", "Relu", &["x"], &["x"])], "x"))
    })];
    let err = load(&model(vec![iff], &["x"], &["y"])).unwrap_err();
    assert!(
        err.to_string().contains("duplicate value name 'x'"),
        "{err}"
    );
}

#[test]
fn local_function_domain_is_allowed_and_checked() {
    let mut m = model(vec![node("call", "MyFn", &["x"], &["y"])], &["x"], &["y"]);
    m.graph.as_mut().unwrap().node[0].domain = Some("local".into());
    m.opset_import.push(OperatorSetIdProto {
        domain: Some("local".into()),
        version: Some(1),
    });
    let func = FunctionProto {
        name: Some("MyFn".into()),
        domain: Some("local".into()),
        input: vec!["a".into()],
        output: vec!["c".into()],
        node: vec![
            node("f2", "Neg", &["b"], &["c"]),
            node("f1", "Relu", &["a"], &["b"]),
        ],
        opset_import: vec![OperatorSetIdProto {
            domain: Some("ai.onnx".into()),
            version: Some(21),
        }],
        ..Default::default()
    };
    m.functions.push(func.clone());
    let loaded = load(&m).unwrap();
    let f = &loaded.functions[&("local".to_string(), "MyFn".to_string())];
    let order: Vec<&str> = f.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(order, ["f1", "f2"]);
    assert_eq!(f.opsets.get(""), Some(&21));
    assert_eq!(loaded.graph.nodes[0].domain, "local");

    // A body using an undefined value is refused, naming the function.
    let mut bad = func;
    bad.node = vec![node("f1", "Relu", &["zz"], &["c"])];
    m.functions = vec![bad];
    let msg = load(&m).unwrap_err().to_string();
    assert!(
        msg.contains("node 'f1' (Relu)") && msg.contains("'zz'"),
        "{msg}"
    );
}

#[test]
fn ai_onnx_domain_is_the_default_domain() {
    let mut m = model(vec![node("r", "Relu", &["x"], &["y"])], &["x"], &["y"]);
    m.opset_import[0].domain = Some("ai.onnx".into());
    m.graph.as_mut().unwrap().node[0].domain = Some("ai.onnx".into());
    let loaded = load(&m).unwrap();
    assert_eq!(loaded.default_opset(), 21);
    assert_eq!(loaded.graph.nodes[0].domain, "");
}

#[test]
fn raw_data_is_not_copied() {
    let mut m = model(
        vec![node("add", "Add", &["x", "w"], &["y"])],
        &["x"],
        &["y"],
    );
    let payload: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    m.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: Some("w".into()),
        data_type: Some(1),
        dims: vec![2],
        raw_data: Some(payload.clone().into()),
        ..Default::default()
    });
    let buf = bytes::Bytes::from(m.encode_to_vec());
    let range = buf.as_ptr_range();
    let loaded = load_model_bytes("mem.onnx", buf.clone()).unwrap();
    let w = loaded.graph.initializer("w").unwrap();
    assert_eq!(w.data.bytes(), payload.as_slice());
    assert!(
        range.contains(&w.data.bytes().as_ptr()),
        "raw_data was copied"
    );
}

#[test]
fn runtime_inputs_skip_initializers() {
    let mut m = model(
        vec![node("add", "Add", &["x", "w"], &["y"])],
        &["x", "w"],
        &["y"],
    );
    m.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: Some("w".into()),
        data_type: Some(1),
        dims: vec![2],
        float_data: vec![1.0, 2.0],
        ..Default::default()
    });
    let loaded = load(&m).unwrap();
    let rt: Vec<&str> = loaded
        .graph
        .runtime_inputs()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(rt, ["x"]);
}

#[test]
fn corrupted_models_never_panic() {
    // A deterministic mini-fuzz: every truncation and a spread of byte
    // flips of real models must be rejected or accepted, never panic.
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for file in ["tensors.onnx", "external.onnx"] {
        let data = std::fs::read(dir.join(file)).unwrap();
        for len in 0..data.len() {
            kiln_onnx::fuzz_load_bytes(&data[..len]);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..4000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut d = data.clone();
            let i = (seed % d.len() as u64) as usize;
            d[i] ^= (seed >> 32) as u8 | 1;
            kiln_onnx::fuzz_load_bytes(&d);
        }
    }
}

fn with_init(t: TensorProto) -> ModelProto {
    let mut m = model(
        vec![node("add", "Add", &["x", "w"], &["y"])],
        &["x"],
        &["y"],
    );
    m.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: Some("w".into()),
        ..t
    });
    m
}

#[test]
fn typed_values_out_of_range_are_invalid() {
    let cases = [
        (3, vec![300]),    // int8
        (2, vec![-1]),     // uint8
        (10, vec![70000]), // float16 bits
        (9, vec![2]),      // bool
        (22, vec![256]),   // int4 pair
    ];
    for (code, vals) in cases {
        let t = TensorProto {
            data_type: Some(code),
            dims: vec![1],
            int32_data: vals,
            ..Default::default()
        };
        let err = load(&with_init(t)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(
            err.to_string().contains("initializer 'w'") && err.to_string().contains("out of range"),
            "{err}"
        );
    }
    let t = TensorProto {
        data_type: Some(12),
        dims: vec![1],
        uint64_data: vec![1 << 40],
        ..Default::default()
    };
    assert!(load(&with_init(t))
        .unwrap_err()
        .to_string()
        .contains("out of range for u32"));
}

#[test]
fn wrong_typed_field_and_mixed_encodings_are_invalid() {
    let wrong_field = TensorProto {
        data_type: Some(1),
        dims: vec![1],
        int64_data: vec![1],
        ..Default::default()
    };
    let msg = load(&with_init(wrong_field)).unwrap_err().to_string();
    assert!(
        msg.contains("int64_data is not valid for a f32 tensor"),
        "{msg}"
    );
    let mixed = TensorProto {
        data_type: Some(1),
        dims: vec![1],
        float_data: vec![1.0],
        raw_data: Some(vec![0u8; 4].into()),
        ..Default::default()
    };
    let msg = load(&with_init(mixed)).unwrap_err().to_string();
    assert!(msg.contains("both raw_data and typed"), "{msg}");
    let bad_bool = TensorProto {
        data_type: Some(9),
        dims: vec![2],
        raw_data: Some(vec![1u8, 2].into()),
        ..Default::default()
    };
    let msg = load(&with_init(bad_bool)).unwrap_err().to_string();
    assert!(msg.contains("bool tensor holds the byte 2"), "{msg}");
    let unsupported = TensorProto {
        data_type: Some(14), // COMPLEX64
        dims: vec![1],
        raw_data: Some(vec![0u8; 8].into()),
        ..Default::default()
    };
    let err = load(&with_init(unsupported)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("COMPLEX64"), "{err}");
}

#[test]
fn foreign_domains_are_refused_on_import_and_listed_by_inspection() {
    // A custom-domain op next to a default-domain one.
    let mut custom = node("q", "MyOp", &["x"], &["y"]);
    custom.domain = Some("org.example".into());
    let mut contrib = node("b", "QOrderedMatMul", &["x"], &["w"]);
    contrib.domain = Some("com.microsoft".into());
    let mut m = model(
        vec![custom, contrib, node("r", "Relu", &["y"], &["z"])],
        &["x"],
        &["z"],
    );
    m.graph.as_mut().unwrap().output.push(f32_value("w"));
    for d in ["org.example", "com.microsoft"] {
        m.opset_import.push(OperatorSetIdProto {
            domain: Some(d.into()),
            version: Some(1),
        });
    }
    let err = load(&m).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("org.example"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contrib.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    let loaded = kiln_onnx::load_model_for_inspection(&path).unwrap();
    let report = kiln_onnx::inspect::InspectReport::new(&loaded);
    let ops: Vec<&str> = report.unsupported.iter().map(|u| u.op.as_str()).collect();
    assert_eq!(ops, ["com.microsoft:QOrderedMatMul", "org.example:MyOp"]);
    assert_eq!(report.unsupported[1].nodes, ["q"]);
    assert!(report.to_text().contains("org.example:MyOp"));
    // Importing still refuses them, naming the operators.
    let err = kiln_onnx::import::import_model(&loaded, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("MyOp"), "{err}");
    // A model whose only domain is foreign loads for inspection too.
    let mut only = m.clone();
    only.opset_import
        .retain(|o| o.domain.as_deref() == Some("org.example"));
    only.graph.as_mut().unwrap().node.truncate(1);
    only.graph.as_mut().unwrap().output = vec![f32_value("y")];
    assert!(load(&only).is_err());
    std::fs::write(&path, only.encode_to_vec()).unwrap();
    let loaded = kiln_onnx::load_model_for_inspection(&path).unwrap();
    assert_eq!(
        kiln_onnx::inspect::InspectReport::new(&loaded).unsupported[0].op,
        "org.example:MyOp"
    );
}
