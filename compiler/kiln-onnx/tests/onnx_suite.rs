//! Imports every model of the ONNX backend test data: the models shipped in
//! the `onnx` Python package (`light`, `pytorch-converted`,
//! `pytorch-operator`, `simple`) and the node tests regenerated from the
//! package's case generators. A model whose operators are all supported
//! must import and verify; the others must be refused with exit class
//! "unsupported" naming the operators; every light CNN must import. Prints
//! the counts. (The light CNNs are also compiled and run against ONNX
//! Runtime, by `compiler/kiln-driver/tests/driver/light_models.rs`.)
//!
//! The data comes from the project venv (`scripts/setup.sh`). The node
//! tests are generated into `.cache/onnx-node-tests` on first use.

mod common;

use common::{node_tests_dir, onnx_data_dir};
use kiln_onnx::import::{import_model, unsupported_ops, ImportOptions};
use kiln_onnx::{load_model, ErrorKind};
use std::path::{Path, PathBuf};

fn models_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            models_under(&p, out);
        } else if p.extension().is_some_and(|e| e == "onnx") {
            out.push(p);
        }
    }
}

#[derive(Default)]
struct Tally {
    imported: usize,
    refused: usize,
    failures: Vec<String>,
    /// Refused models by reason: one entry per unsupported operator (with
    /// the number of models using it), or the error's message without the
    /// file name when the refusal is not about an operator.
    reasons: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    /// Counts a refusal under `unsupported`'s operators (one line per op
    /// type, versions folded: `Celu-12` and `Celu-13` are both `Celu`), or
    /// under the error message when no operator is to blame.
    fn refuse(&mut self, e: &kiln_onnx::OnnxError, unsupported: &[kiln_onnx::import::Unsupported]) {
        self.refused += 1;
        if !unsupported.is_empty() {
            let mut ops: Vec<String> = unsupported
                .iter()
                .map(|u| {
                    let op = u.op.rsplit_once('-').map_or(u.op.as_str(), |(op, v)| {
                        if v.bytes().all(|b| b.is_ascii_digit()) {
                            op
                        } else {
                            u.op.as_str()
                        }
                    });
                    let reason = if u.reason.starts_with("version ") {
                        "older version not supported"
                    } else {
                        u.reason.as_str()
                    };
                    format!("{op}: {reason}")
                })
                .collect();
            ops.dedup();
            for op in ops {
                *self.reasons.entry(op).or_default() += 1;
            }
            return;
        }
        // Not an operator: the message without the file name, first line only.
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("");
        let rest = first
            .split_once(": ")
            .map_or(first, |(_, rest)| rest)
            .trim();
        // `node 'name' (Op): message` groups as `Op: message`.
        let key = match (rest.starts_with("node "), rest.find("): ")) {
            (true, Some(i)) => {
                let op = rest[..i].rsplit_once('(').map_or("?", |(_, op)| op);
                format!("{op}: {}", &rest[i + 3..])
            }
            // `graph input 'x': element type ...` groups without the value name.
            _ => match rest.split_once("': ") {
                Some((what, msg))
                    if what.starts_with("graph input '") || what.starts_with("graph output '") =>
                {
                    format!("{}: {msg}", what.split(" '").next().unwrap_or(what))
                }
                _ => rest.to_string(),
            },
        };
        *self.reasons.entry(key).or_default() += 1;
    }

    fn print_reasons(&self) {
        let mut v: Vec<_> = self.reasons.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        println!("refusals by reason (models):");
        for (r, n) in &v {
            println!("  {n:5}  {r}");
        }
    }
}

/// Imports one model into the tally; true when it imported and verified.
fn check(path: &Path, t: &mut Tally) -> bool {
    let model = match load_model(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            t.refuse(&e, &[]);
            return false;
        }
        Err(e) => {
            t.failures.push(format!("{}: load: {e}", path.display()));
            return false;
        }
    };
    let unsupported = unsupported_ops(&model);
    match import_model(&model, &ImportOptions::default()) {
        Ok(g) => {
            if !unsupported.is_empty() {
                t.failures.push(format!(
                    "{}: imported despite unsupported ops",
                    path.display()
                ));
            } else if let Err(e) = kiln_ir::verify(&g) {
                t.failures.push(format!(
                    "{}: imported graph does not verify: {}",
                    path.display(),
                    e[0]
                ));
            } else {
                t.imported += 1;
                return true;
            }
        }
        Err(e) if e.kind() == ErrorKind::Unsupported => t.refuse(&e, &unsupported),
        Err(e) => t.failures.push(format!("{}: {e}", path.display())),
    }
    false
}

#[test]
fn onnx_package_models_import() {
    let data = onnx_data_dir();
    let mut models = Vec::new();
    for sub in ["light", "pytorch-converted", "pytorch-operator", "simple"] {
        let before = models.len();
        models_under(&data.join(sub), &mut models);
        assert!(models.len() > before, "no models under {sub}");
    }
    let mut t = Tally::default();
    let mut light_refused = Vec::new();
    let mut light = 0;
    for m in &models {
        let imported = check(m, &mut t);
        if m.parent().is_some_and(|d| d.ends_with("light")) {
            light += 1;
            if !imported {
                light_refused.push(m.display().to_string());
            }
        }
    }
    println!(
        "onnx package models: {} total, {} imported, {} refused as unsupported, {} failed",
        models.len(),
        t.imported,
        t.refused,
        t.failures.len()
    );
    t.print_reasons();
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
    // The light models are real CNNs (nine in onnx 1.23); each must import.
    assert!(light >= 9, "only {light} light models found");
    assert!(
        light_refused.is_empty(),
        "light CNNs refused: {}",
        light_refused.join(", ")
    );
}

#[test]
fn onnx_node_test_models_import() {
    let dir = node_tests_dir();
    let mut models = Vec::new();
    models_under(&dir, &mut models);
    assert!(
        models.len() > 1000,
        "expected the ~1,900 node tests, found {}",
        models.len()
    );
    let mut t = Tally::default();
    for m in &models {
        check(m, &mut t);
    }
    println!(
        "onnx node tests: {} total, {} imported, {} refused as unsupported, {} failed",
        models.len(),
        t.imported,
        t.refused,
        t.failures.len()
    );
    t.print_reasons();
    assert!(
        t.failures.is_empty(),
        "{} failures:\n{}",
        t.failures.len(),
        t.failures.join("\n")
    );
}
