//! Runs the built `kiln` binary: exit codes and atomic output.

use std::path::Path;
use std::process::{Command, Output};

const GOOD: &str = "graph @g(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %a = nn.relu %x : tensor<2xf32>\n  %b = nn.relu %a : tensor<2xf32>\n  return %b\n}\n";
const BAD: &str = "graph @g(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %y = nn.bogus %x : tensor<2xf32>\n  return %y\n}\n";

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_LOG", "error")
        .output()
        .expect("kiln runs")
}

/// The commit this test was built from as `kiln --version` shows it: 12
/// hex digits from git, or "unknown" outside a git checkout.
fn git_head() -> String {
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// LLVM's version as llvm-config reports it (an independent source).
fn llvm_version() -> String {
    let o = Command::new("llvm-config-22")
        .arg("--version")
        .output()
        .or_else(|_| {
            Command::new("/usr/lib/llvm-22/bin/llvm-config")
                .arg("--version")
                .output()
        })
        .expect("llvm-config runs");
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn success_exits_0_and_writes_the_optimized_graph() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.kir", GOOD);
    let out = dir.path().join("out.kir");
    let o = kiln(&[
        "opt",
        &input,
        "--passes=canonicalize",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "graph @g(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %b = nn.relu %x : tensor<2xf32>\n  return %b\n}\n"
    );
    // Only the output remains next to the input: no temporary files.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["in.kir", "out.kir"]);
}

#[test]
fn invalid_input_and_usage_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.kir", BAD);
    let o = kiln(&["opt", &bad]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.kir:2:8: error: unknown op 'nn.bogus'"),
        "{err}"
    );

    let missing = dir.path().join("missing.kir");
    assert_eq!(
        kiln(&["opt", missing.to_str().unwrap()]).status.code(),
        Some(2)
    );
    assert_eq!(kiln(&["opt", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(kiln(&[]).status.code(), Some(2));
    let good = write(dir.path(), "good.kir", GOOD);
    let o = kiln(&["opt", &good, "--passes=nope"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown pass 'nope'; available passes: ") && err.contains("canonicalize"),
        "{err}"
    );
}

#[test]
fn a_failed_run_leaves_the_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.kir", BAD);
    let out = dir.path().join("out.kir");
    // No file appears...
    assert_eq!(
        kiln(&["opt", &bad, "-o", out.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    assert!(!out.exists());
    // ...and an existing one keeps its contents.
    std::fs::write(&out, "previous").unwrap();
    assert_eq!(
        kiln(&["opt", &bad, "-o", out.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn verify_diagnostics_exits_0_on_match_and_1_on_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let matched = BAD.replace(
        "  %y = nn.bogus",
        "  // expected-error @+1 {{unknown op}}\n  %y = nn.bogus",
    );
    let f = write(dir.path(), "m.kir", &matched);
    assert_eq!(
        kiln(&["opt", &f, "--verify-diagnostics"]).status.code(),
        Some(0)
    );
    let f = write(dir.path(), "u.kir", BAD);
    assert_eq!(
        kiln(&["opt", &f, "--verify-diagnostics"]).status.code(),
        Some(1)
    );
}

#[test]
fn version_and_help_exit_0() {
    // -V: the version and the git commit (from build.rs).
    let o = kiln(&["-V"]);
    assert_eq!(o.status.code(), Some(0));
    let short = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let head = git_head();
    assert_eq!(
        short,
        format!("kiln {} (git {head})", env!("CARGO_PKG_VERSION"))
    );
    // --version: also LLVM/MLIR, the runtime ABI and the targets.
    let o = kiln(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    let long = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = long.lines().collect();
    assert_eq!(lines[0], short, "{long}");
    let llvm = llvm_version();
    assert!(
        lines[1].starts_with(&format!("LLVM {llvm} ")) && lines[1].contains("MLIR"),
        "{long}"
    );
    assert_eq!(lines[2], "runtime ABI 1", "{long}");
    assert!(
        lines[3].starts_with("targets: x86_64") && lines[3].contains("aarch64"),
        "{long}"
    );
    // Subcommands show the same.
    let o = kiln(&["compile", "--version"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&head));
    let o = kiln(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Exit codes:"));
}
