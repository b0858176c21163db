//! Test data shared by the integration tests: the project venv's Python,
//! the `onnx` package's own test data, and the ONNX node tests, generated
//! into `.cache/onnx-node-tests` on first use by whichever test needs them.

#![allow(dead_code)]

use kiln_interp::{run_graph, Tensor};
use kiln_onnx::import::{import_model, ImportOptions, InputValue};
use kiln_onnx::{load_model, load_tensor_pb, ErrorKind, OnnxError, OnnxTensor};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The project venv's Python (scripts/setup.sh creates it).
pub fn python() -> PathBuf {
    let p = repo().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh first",
        p.display()
    );
    p
}

/// `onnx/backend/test/data` of the installed onnx package.
pub fn onnx_data_dir() -> PathBuf {
    let out = Command::new(python())
        .args([
            "-c",
            "import onnx, os; print(os.path.dirname(onnx.__file__))",
        ])
        .output()
        .expect("run python");
    assert!(out.status.success(), "python cannot import onnx");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("backend/test/data")
}

/// The regenerated ONNX node tests (generated if missing).
pub fn node_tests_dir() -> PathBuf {
    let dir = std::env::var_os("KILN_ONNX_NODE_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/onnx-node-tests"));
    if !dir.join("index.json").exists() {
        let st = Command::new(python())
            .arg(repo().join("testdata/onnx_node_tests.py"))
            .arg(&dir)
            .status()
            .expect("run the node-test generator");
        assert!(st.success(), "testdata/onnx_node_tests.py failed");
    }
    dir
}

/// A `.pb` tensor file as an interpreter tensor.
pub fn tensor(path: &Path) -> Tensor {
    let t = load_tensor_pb(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Tensor::from_bytes(t.dtype, &t.dims, t.data.bytes()).unwrap()
}

/// Imports `dir/model.onnx` (an ONNX test-set folder) with the inputs
/// named in `freeze` given as values, runs the other inputs of
/// `test_data_set_0` through the reference interpreter and compares every
/// output with the stored one: dtype and shape exactly, values within `tol`
/// relative (0 for exact); NaN only matches NaN.
pub fn check_test_set(dir: &Path, freeze: &[&str], tol: f64) {
    let name = dir.display().to_string();
    let set = dir.join("test_data_set_0");
    let model = load_model(dir.join("model.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"));
    let given: Vec<OnnxTensor> = (0..)
        .map(|i| set.join(format!("input_{i}.pb")))
        .take_while(|p| p.exists())
        .map(|p| load_tensor_pb(p).unwrap())
        .collect();
    let mut opts = ImportOptions::default();
    for t in given.iter().filter(|t| freeze.contains(&t.name.as_str())) {
        let value = InputValue {
            dtype: t.dtype,
            shape: t.dims.clone(),
            data: t.data.clone(),
        };
        opts.input_values.insert(t.name.clone(), value);
    }
    let g = import_model(&model, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    kiln_ir::verify(&g).unwrap_or_else(|e| panic!("{name}: {}", e[0]));
    assert_eq!(
        g.inputs.len(),
        given.len() - freeze.len(),
        "{name}: frozen inputs must leave the input list"
    );
    // Inputs by name where the files carry names, else by position.
    let inputs: Vec<Tensor> = g
        .inputs
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let n = &g.value(v).name;
            let t = given
                .iter()
                .find(|t| &t.name == n)
                .or_else(|| given.get(i).filter(|t| t.name.is_empty()))
                .unwrap_or_else(|| panic!("{name}: no data for input {n}"));
            Tensor::from_bytes(t.dtype, &t.dims, t.data.bytes()).unwrap()
        })
        .collect();
    let outputs = run_graph(&g, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(outputs.len(), g.outputs.len(), "{name}: output count");
    for (i, got) in outputs.iter().enumerate() {
        let want = tensor(&set.join(format!("output_{i}.pb")));
        assert_eq!(got.dtype, want.dtype, "{name}: output {i} dtype");
        assert_eq!(got.shape, want.shape, "{name}: output {i} shape");
        for k in 0..want.numel() {
            let (a, b) = (got.get_f64(k), want.get_f64(k));
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

/// Builds a one-node model with `onnx.helper` (unchecked) from a Python
/// node expression and typed inputs, imports it and returns the error.
pub fn import_error(node: &str, inputs: &str, outputs: &str, opset: u32) -> OnnxError {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.onnx");
    let script = format!(
        "import onnx, sys\n\
         from onnx import helper as h, TensorProto as T\n\
         n = {node}\n\
         g = h.make_graph([n], 'g', [{inputs}], [{outputs}])\n\
         m = h.make_model(g, opset_imports=[h.make_opsetid('', {opset})])\n\
         onnx.save(m, sys.argv[1])\n"
    );
    let st = Command::new(python())
        .args(["-c", &script])
        .arg(&path)
        .status()
        .expect("run python");
    assert!(st.success(), "model generation failed for {node}");
    let model = load_model(&path).unwrap_or_else(|e| panic!("{e}"));
    match import_model(&model, &ImportOptions::default()) {
        Ok(_) => panic!("{node} imported but must be refused"),
        Err(e) => e,
    }
}

pub fn expect(err: OnnxError, kind: ErrorKind, contains: &str) {
    let msg = err.to_string();
    assert_eq!(err.kind(), kind, "wrong kind for: {msg}");
    assert!(msg.contains(contains), "message lacks {contains:?}: {msg}");
}
