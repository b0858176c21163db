//! Test data shared by the integration tests: the project venv's Python,
//! the `onnx` package's own test data, and the ONNX node tests, generated
//! into `.cache/onnx-node-tests` on first use by whichever test needs them.

#![allow(dead_code)]

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
