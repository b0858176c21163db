//! Text format: exact round-trip, error locations, and a property test over
//! random graphs.

use kiln_ir::text::{parse, print, print_with, PrintOptions};
use kiln_ir::{Attr, Attrs, Blob, DType, Dim, Graph, OpKind, TensorType, Weight, WeightData};
use proptest::prelude::*;

const SAMPLE: &str = r#"weight @w : tensor<2x3xf32> = dense<[1.0, -2.5, 3e-5, 0.0, -0.0, inf]>
weight @big : tensor<4x32xf32> = elided<bytes = 512, fnv = 0x0123456789abcdef>
weight @"odd name" : tensor<2xi64> = dense<[-1, 9223372036854775807]>
weight @h : tensor<2xf16> = dense<"0x003C0040">
weight @m : tensor<3xbool> = dense<[true, false, true]>
graph @main(%x: tensor<{batch}x2xf32>, %"in/put:1": tensor<?x3xf32>) -> (tensor<{batch}x3xf32>, tensor<2x3xf32>) {
  %c = nn.constant {value = @w} : tensor<2x3xf32>
  %y = nn.matmul %x, %c : tensor<{batch}x3xf32> loc("MatMul_0")
  %z = nn.gelu %y {approximate = "tanh"} : tensor<{batch}x3xf32>
  %k = nn.clip %c, none, none : tensor<2x3xf32>
  return %z, %k
}
"#;

#[test]
fn sample_round_trips_exactly() {
    let parsed = parse(SAMPLE, "sample.kir", None).unwrap_or_else(|e| panic!("{}", e[0]));
    let printed = print(&parsed.graph);
    assert_eq!(printed, SAMPLE);
}

#[test]
fn large_weights_are_summarized_not_printed() {
    let mut g = Graph::new("main");
    let bytes: Vec<u8> = (0..4096u32)
        .flat_map(|i| (i as f32).to_le_bytes())
        .collect();
    let c = g.add_constant(
        "c",
        Weight {
            name: "w".into(),
            ty: TensorType::fixed(DType::F32, &[4096]),
            data: WeightData::Bytes(Blob::from_vec(bytes)),
            source: None,
        },
    );
    g.outputs.push(c);
    let text = print(&g);
    assert!(text.contains("elided<bytes = 16384, fnv = 0x"), "{text}");
    assert!(
        text.len() < 400,
        "weights leaked into the text: {} bytes",
        text.len()
    );
    let inline = print_with(
        &g,
        &PrintOptions {
            inline_limit: 1 << 20,
        },
    );
    assert!(inline.contains("dense<[0.0, 1.0, 2.0"));
    // Both forms re-parse to the same printed text.
    let again = parse(&inline, "t.kir", None).unwrap();
    assert_eq!(
        print_with(
            &again.graph,
            &PrintOptions {
                inline_limit: 1 << 20
            }
        ),
        inline
    );
}

fn err_of(src: &str) -> String {
    match parse(src, "bad.kir", None) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e[0].to_string(),
    }
}

#[test]
fn parse_errors_point_at_the_token() {
    let e = err_of("graph @g(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %y = nn.bogus %x : tensor<2xf32>\n  return %y\n}\n");
    assert!(
        e.starts_with("bad.kir:2:8: error: unknown op 'nn.bogus'"),
        "{e}"
    );
    assert!(
        e.contains("\n    %y = nn.bogus %x : tensor<2xf32>\n         ^"),
        "{e}"
    );

    let e = err_of("graph @g(%x: tensor<2xq9>) -> () {\n  return\n}\n");
    assert!(
        e.starts_with("bad.kir:1:23: error: unknown element type 'q9'"),
        "{e}"
    );

    let e = err_of("graph @g(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %y = nn.relu %nope : tensor<2xf32>\n  return %y\n}\n");
    assert!(
        e.contains("2:16: error: use of undefined value %nope"),
        "{e}"
    );
}

#[test]
fn verifier_errors_carry_the_node_line() {
    let e = err_of("graph @g(%x: tensor<2xf32>, %b: tensor<3xf32>) -> (tensor<2xf32>) {\n  %y = nn.add %x, %b : tensor<2xf32>\n  return %y\n}\n");
    assert!(
        e.starts_with("bad.kir:2:3: error: nn.add: dimensions 2 and 3 do not broadcast"),
        "{e}"
    );
}

// ---- property test -------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Unary(usize, u8),
    Binary(usize, usize, u8),
    Const(Vec<f32>),
    LeakyRelu(usize, f64),
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9_]{0,6}", "[a-z/:. \\-\"\\\\]{1,8}"]
}

fn arb_dim() -> impl Strategy<Value = Dim> {
    prop_oneof![
        (1u64..5).prop_map(Dim::Static),
        Just(Dim::Unknown),
        "[a-z]{1,3}( [a-z]{1,2})?".prop_map(|s| Dim::sym(&s)),
    ]
}

fn build(names: Vec<String>, dims: Vec<Dim>, steps: Vec<Step>) -> Graph {
    let mut g = Graph::new("prop");
    let ty = TensorType::new(DType::F32, dims);
    let mut vals = vec![g.add_input(&names[0], ty.clone())];
    let unary = [
        OpKind::Relu,
        OpKind::Exp,
        OpKind::Tanh,
        OpKind::Neg,
        OpKind::Sigmoid,
    ];
    let binary = [
        OpKind::Add,
        OpKind::Mul,
        OpKind::Sub,
        OpKind::Div,
        OpKind::Max,
    ];
    for (i, s) in steps.into_iter().enumerate() {
        let name = names[(i + 1) % names.len()].clone();
        let v = match s {
            Step::Unary(a, k) => {
                let a = vals[a % vals.len()];
                let t = g.value(a).ty.clone();
                g.add_node(
                    unary[k as usize % unary.len()],
                    vec![Some(a)],
                    Attrs::new(),
                    vec![(name, t)],
                )[0]
            }
            Step::Binary(a, b, k) => {
                let (a, b) = (vals[a % vals.len()], vals[b % vals.len()]);
                let (ta, tb) = (g.value(a).ty.clone(), g.value(b).ty.clone());
                let Ok(dims) =
                    kiln_ir::ops::infer::broadcast_shapes([ta.dims.as_slice(), tb.dims.as_slice()])
                else {
                    continue;
                };
                let t = TensorType::new(DType::F32, dims);
                g.add_node(
                    binary[k as usize % binary.len()],
                    vec![Some(a), Some(b)],
                    Attrs::new(),
                    vec![(name, t)],
                )[0]
            }
            Step::Const(data) => {
                let bytes: Vec<u8> = data.iter().flat_map(|f| f.to_le_bytes()).collect();
                g.add_constant(
                    &name,
                    Weight {
                        name: format!("w{i}"),
                        ty: TensorType::fixed(DType::F32, &[data.len() as u64]),
                        data: WeightData::Bytes(Blob::from_vec(bytes)),
                        source: None,
                    },
                )
            }
            Step::LeakyRelu(a, alpha) => {
                let a = vals[a % vals.len()];
                let t = g.value(a).ty.clone();
                let mut attrs = Attrs::new();
                attrs.insert("alpha".into(), Attr::Float(alpha));
                g.add_node(OpKind::LeakyRelu, vec![Some(a)], attrs, vec![(name, t)])[0]
            }
        };
        vals.push(v);
    }
    g.outputs.push(*vals.last().unwrap());
    g
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, k)| Step::Unary(a, k)),
        (any::<usize>(), any::<usize>(), any::<u8>()).prop_map(|(a, b, k)| Step::Binary(a, b, k)),
        prop::collection::vec(any::<f32>().prop_filter("no NaN", |f| !f.is_nan()), 1..4)
            .prop_map(Step::Const),
        (
            any::<usize>(),
            any::<f64>().prop_filter("finite", |f| f.is_finite())
        )
            .prop_map(|(a, f)| Step::LeakyRelu(a, f)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_graphs_round_trip(
        names in prop::collection::vec(arb_name(), 1..6),
        dims in prop::collection::vec(arb_dim(), 0..3),
        steps in prop::collection::vec(arb_step(), 1..12),
        inline in prop_oneof![Just(0usize), Just(64usize)],
    ) {
        let g = build(names, dims, steps);
        let opts = PrintOptions { inline_limit: inline };
        let text = print_with(&g, &opts);
        let parsed = parse(&text, "prop.kir", None).map_err(|e| TestCaseError::fail(format!("{}\n{text}", e[0])))?;
        prop_assert_eq!(print_with(&parsed.graph, &opts), text);
    }
}
