//! Operators whose older versions the importer rewrites into the newest
//! form (Upsample → Resize, Softmax-1 → reshape + softmax, CastLike →
//! Cast, ...): the imported graph, run by the reference interpreter, must
//! reproduce the ONNX test data (an independent reference) of the node
//! tests in `.cache/onnx-node-tests` (generated on first use).

mod common;

use common::node_tests_dir;
use kiln_interp::{run_graph, Tensor};
use kiln_onnx::import::{import_model, ImportOptions};
use kiln_onnx::{load_model, load_tensor_pb};
use std::path::Path;

fn tensor(path: &Path) -> Tensor {
    let t = load_tensor_pb(path).unwrap_or_else(|e| panic!("{e}"));
    Tensor::from_bytes(t.dtype, &t.dims, t.data.bytes()).unwrap()
}

/// Imports `name`, runs test_data_set_0 and compares within `tol`.
fn check(name: &str, tol: f64) {
    let dir = node_tests_dir().join(name);
    let model = load_model(dir.join("model.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"));
    let g =
        import_model(&model, &ImportOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    kiln_ir::verify(&g).unwrap_or_else(|e| panic!("{name}: {}", e[0]));
    let set = dir.join("test_data_set_0");
    let inputs: Vec<Tensor> = (0..g.inputs.len())
        .map(|i| tensor(&set.join(format!("input_{i}.pb"))))
        .collect();
    let outputs = run_graph(&g, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(outputs.len(), g.outputs.len());
    for (i, got) in outputs.iter().enumerate() {
        let want = tensor(&set.join(format!("output_{i}.pb")));
        assert_eq!(got.shape, want.shape, "{name}: output {i} shape");
        let n: u64 = want.shape.iter().product();
        for k in 0..n as usize {
            let (a, b) = (got.get_f64(k), want.get_f64(k));
            // NaN must stay NaN (and never match a number); infinities must match exactly.
            let ok = if b.is_nan() {
                a.is_nan()
            } else if b.is_infinite() {
                a == b
            } else {
                !a.is_nan() && (a - b).abs() <= tol * (1.0 + b.abs())
            };
            assert!(ok, "{name}: output {i}[{k}] = {a}, expected {b}");
        }
    }
}

#[test]
fn legacy_versions_match_onnx_test_data() {
    check("test_upsample_nearest", 0.0);
    check("test_castlike_FLOAT_to_DOUBLE", 0.0);
    check("test_castlike_FLOAT16_to_FLOAT", 0.0);
}
