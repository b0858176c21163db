//! `kiln inspect` and `kiln import` on the malformed-model suite
//! (`testdata/malformed/cases/cases.json`): every case exits with its
//! kind's code (2 invalid, 3 unsupported, 4 resource limit), names the
//! problem on stderr, and writes nothing. Plus the resource-limit case
//! (a sparse file over 2 GiB) and an import round trip through the side
//! weights file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_LOG", "error")
        .output()
        .expect("kiln runs")
}

fn code_for(kind: &str) -> i32 {
    match kind {
        "InvalidInput" => 2,
        "Unsupported" => 3,
        "ResourceLimit" => 4,
        other => panic!("unknown kind {other} in cases.json"),
    }
}

/// The symlink-escape layout of the frontend's own test:
/// `<tmp>/model/link.bin -> ../outside.bin`.
fn symlink_setup(tmp: &Path, model_file: &Path) -> PathBuf {
    let model_dir = tmp.join("model");
    std::fs::create_dir(&model_dir).unwrap();
    std::fs::write(tmp.join("outside.bin"), [0u8; 16]).unwrap();
    std::os::unix::fs::symlink("../outside.bin", model_dir.join("link.bin")).unwrap();
    let dest = model_dir.join(model_file.file_name().unwrap());
    std::fs::copy(model_file, &dest).unwrap();
    dest
}

fn assert_fails(o: &Output, code: i32, contains: &[&str], what: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{what}: stderr: {stderr}");
    assert!(o.stdout.is_empty(), "{what}: printed a report on failure");
    assert!(stderr.starts_with("kiln: error: "), "{what}: {stderr}");
    for s in contains {
        assert!(stderr.contains(s), "{what}: stderr lacks {s:?}: {stderr}");
    }
}

#[test]
fn every_malformed_case_exits_with_its_code_and_names_the_problem() {
    let dir = repo().join("testdata/malformed/cases");
    let json = std::fs::read_to_string(dir.join("cases.json")).expect("cases.json");
    let cases: serde_json::Value = serde_json::from_str(&json).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 30, "suite shrank to {}", cases.len());
    let mut codes = std::collections::BTreeSet::new();
    for c in cases {
        let file = c["file"].as_str().unwrap();
        let code = code_for(c["kind"].as_str().unwrap());
        codes.insert(code);
        let contains: Vec<&str> = c["contains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        let path = match c.get("setup").and_then(|s| s.as_str()) {
            Some("symlink") => symlink_setup(tmp.path(), &dir.join(file)),
            Some(other) => panic!("unknown setup {other}"),
            None => dir.join(file),
        };
        let p = path.to_str().unwrap();
        for format in ["text", "json"] {
            let o = kiln(&["inspect", p, "--format", format]);
            match c.get("inspect_lists").and_then(|s| s.as_str()) {
                // Loads; the operator is listed as unsupported.
                Some(op) => {
                    let out = String::from_utf8_lossy(&o.stdout);
                    assert!(
                        o.status.success() && out.contains(op),
                        "inspect {file} ({format}) must list {op}: {out}{}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
                None => assert_fails(&o, code, &contains, &format!("inspect {file} ({format})")),
            }
        }
        let out = tmp.path().join("out.kir");
        let o = kiln(&["import", p, "-o", out.to_str().unwrap()]);
        assert_fails(&o, code, &contains, &format!("import {file}"));
        assert!(!out.exists(), "import {file} wrote {}", out.display());
        assert!(!tmp.path().join("out.kir.weights").exists());
    }
    assert_eq!(codes.into_iter().collect::<Vec<_>>(), vec![2, 3]);
}

#[test]
fn model_over_two_gib_is_a_resource_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("huge.onnx");
    // Sparse: no disk space is used.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len((2 << 30) + 1).unwrap();
    let o = kiln(&["inspect", path.to_str().unwrap()]);
    assert_fails(&o, 4, &["huge.onnx", "2 GiB"], "inspect huge.onnx");
}

#[test]
fn import_writes_aligned_side_weights_that_round_trip() {
    let model = repo().join("testdata/models/cnn/model.onnx");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cnn.kir");
    let o = kiln(&[
        "import",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--inline-weights",
        "32",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let side = tmp.path().join("cnn.kir.weights");
    let side_bytes = std::fs::read(&side).unwrap();

    let parsed = kiln_ir::text::parse_file(&out).unwrap_or_else(|e| panic!("{}", e[0]));
    kiln_ir::verify(&parsed.graph).unwrap_or_else(|e| panic!("{}", e[0]));
    // Independent reference: the initializers as the ONNX loader decodes them.
    let onnx = kiln_onnx::load_model(&model).unwrap();
    let mut out_of_line = 0;
    for w in parsed.graph.weights() {
        let bytes = w.bytes().expect("weights are not elided").bytes();
        let init = onnx
            .graph
            .initializer(&w.name)
            .unwrap_or_else(|| panic!("weight {} is not an initializer", w.name));
        assert_eq!(bytes, init.data.bytes(), "weight {}", w.name);
        match &w.source {
            Some(src) => {
                out_of_line += 1;
                assert!(bytes.len() > 32, "{} should be inline", w.name);
                assert_eq!(src.file, Path::new("cnn.kir.weights"));
                assert_eq!(src.offset % 64, 0, "{} is not 64-byte aligned", w.name);
                let o = src.offset as usize;
                assert_eq!(&side_bytes[o..o + bytes.len()], bytes);
            }
            None => assert!(bytes.len() <= 32, "{} is inline but large", w.name),
        }
    }
    assert!(out_of_line >= 2, "expected several out-of-line weights");
}
