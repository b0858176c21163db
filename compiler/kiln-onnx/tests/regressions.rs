//! Replays every fuzzer-found input in `tests/regressions/` (kept by
//! `scripts/fuzz.sh`, renamed after what broke) through the same checks as
//! the fuzz target: no panic, and an imported graph verifies.

use std::path::Path;

#[test]
fn fuzz_regressions_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/regressions exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no regression inputs in {}",
        dir.display()
    );
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if let Err(bug) = kiln_onnx::fuzz_import_bytes(&data) {
            panic!("{}: {bug}", f.display());
        }
    }
}

/// The first fuzzer find: a node whose type was mutated from `Add` to `Abs`
/// kept two operands, and the importer emitted `nn.abs` with both; it must
/// be refused as invalid input, naming the node.
#[test]
fn abs_with_two_operands_is_invalid_input() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions/abs-with-two-operands.onnx");
    let model = kiln_onnx::load_model(&path).unwrap();
    let err = kiln_onnx::import::import_model(&model, &Default::default()).unwrap_err();
    assert_eq!(err.kind(), kiln_onnx::ErrorKind::InvalidInput, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("(Abs)") && msg.contains("expects 1 operands, got 2"),
        "{msg}"
    );
}
