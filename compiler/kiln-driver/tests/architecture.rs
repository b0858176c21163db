//! Enforces the dependency directions documented in ARCHITECTURE.md.
//!
//! Reads `cargo metadata` and fails on any edge between workspace crates that
//! the table below does not allow, and on LLVM/MLIR reaching crates that must
//! build without them.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Allowed direct dependencies between workspace crates.
const ALLOWED: &[(&str, &[&str])] = &[
    ("kiln-ir", &[]),
    ("kiln-interp", &["kiln-ir"]),
    ("kiln-passes", &["kiln-ir", "kiln-interp"]),
    ("kiln-onnx", &["kiln-ir", "kiln-interp", "kiln-passes"]),
    ("kiln-codegen", &["kiln-ir"]),
    (
        "kiln-driver",
        &[
            "kiln-ir",
            "kiln-interp",
            "kiln-passes",
            "kiln-onnx",
            "kiln-codegen",
            "kiln-runtime",
        ],
    ),
    ("kiln-runtime-core", &[]),
    ("kiln-runtime", &["kiln-runtime-core"]),
    ("kiln-runtime-c", &["kiln-runtime-core"]),
    (
        "kiln",
        &[
            "kiln-ir",
            "kiln-interp",
            "kiln-passes",
            "kiln-onnx",
            "kiln-driver",
            "kiln-runtime",
        ],
    ),
    // Runs the `kiln` program from build scripts; links no compiler crate.
    ("kiln-build", &[]),
];

/// Crates that must build and test without LLVM or MLIR.
const NO_LLVM: &[&str] = &[
    "kiln-ir",
    "kiln-interp",
    "kiln-passes",
    "kiln-onnx",
    "kiln-runtime",
    "kiln-build",
];

/// External crates that pull in LLVM or MLIR.
const LLVM_CRATES: &[&str] = &[
    "melior",
    "inkwell",
    "mlir-sys",
    "llvm-sys",
    "melior-macro",
    "tblgen",
];

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

/// Package id -> (name, normal/build dependency ids).
fn graph(meta: &Value) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let names = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let deps = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let ds = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null() || k["kind"] == "build")
                })
                .map(|d| d["pkg"].as_str().unwrap().to_string())
                .collect();
            (n["id"].as_str().unwrap().to_string(), ds)
        })
        .collect();
    (names, deps)
}

#[test]
fn workspace_edges_follow_the_architecture() {
    let meta = metadata();
    let (names, deps) = graph(&meta);
    let members: BTreeSet<String> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| names[m.as_str().unwrap()].clone())
        .collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut bad = Vec::new();
    for (id, ds) in &deps {
        let from = &names[id];
        if !members.contains(from) {
            continue;
        }
        let Some(ok) = allowed.get(from.as_str()) else {
            bad.push(format!("{from} is not in the architecture table"));
            continue;
        };
        for d in ds {
            let to = &names[d];
            if members.contains(to) && !ok.contains(&to.as_str()) {
                bad.push(format!("{from} -> {to} is not an allowed edge"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "forbidden dependencies:\n{}",
        bad.join("\n")
    );
}

#[test]
fn core_crates_build_without_llvm() {
    let meta = metadata();
    let (names, deps) = graph(&meta);
    let by_name: BTreeMap<&str, &str> = names
        .iter()
        .map(|(id, n)| (n.as_str(), id.as_str()))
        .collect();
    let mut bad = Vec::new();
    for krate in NO_LLVM {
        let Some(start) = by_name.get(krate) else {
            continue;
        };
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.to_string()];
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let n = &names[&id];
            if LLVM_CRATES.contains(&n.as_str()) || n == "kiln-codegen" {
                bad.push(format!("{krate} reaches {n}"));
            }
            stack.extend(deps.get(&id).cloned().unwrap_or_default());
        }
    }
    assert!(
        bad.is_empty(),
        "crates that must build without LLVM/MLIR do not:\n{}",
        bad.join("\n")
    );
}

#[test]
fn runtime_depends_on_no_compiler_crate() {
    let meta = metadata();
    let (names, deps) = graph(&meta);
    for krate in ["kiln-runtime-core", "kiln-runtime", "kiln-runtime-c"] {
        let id = names
            .iter()
            .find(|(_, n)| *n == krate)
            .map(|(id, _)| id.clone())
            .unwrap();
        for d in &deps[&id] {
            let to = &names[d];
            assert!(
                !to.starts_with("kiln") || to.starts_with("kiln-runtime"),
                "{krate} depends on the compiler crate {to}"
            );
        }
    }
}
