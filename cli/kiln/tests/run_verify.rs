//! `kiln run`/`bench`/`verify` as a user drives them: artifacts and models
//! told apart by content, `.npy` f16 and bf16 checked against NumPy and
//! `ml_dtypes`, `run --expected` (NaN only equal to NaN), the bench table
//! and JSON, `kiln verify` finding an injected fault (interpreter and ONNX
//! Runtime references), the compile progress display, and `KILN_*`
//! variables.
//!
//! Expected values come from NumPy (run through the project venv), ONNX
//! Runtime's test sets (`testdata/models/*/test_data_set_0`) or formulas
//! in the test, never from an earlier Kiln run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_LOG", "error")
        .env_remove("KILN_NUM_THREADS")
        .env_remove("KILN_PARALLEL_MIN_US");
    c
}

fn model(name: &str) -> PathBuf {
    repo().join("testdata/models").join(name).join("model.onnx")
}

fn test_set(name: &str) -> PathBuf {
    repo()
        .join("testdata/models")
        .join(name)
        .join("test_data_set_0")
}

fn out(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", out(&o));
    o
}

fn code(o: &Output) -> i32 {
    o.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {}", out(o)))
}

/// Runs Python from the project venv (numpy, ml_dtypes, onnx,
/// onnxruntime); panics with its output on failure.
fn python(script: &str, args: &[&Path]) -> String {
    let o = Command::new(repo().join(".venv/bin/python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("the project venv's python runs (scripts/setup.sh)");
    assert!(o.status.success(), "python failed: {}", out(&o));
    stdout(&o)
}

/// The JSON diagnostics on stderr (every line must parse).
fn json_diags(o: &Output) -> Vec<serde_json::Value> {
    stderr(o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// `kiln run MODEL --input x=X --output-dir OUT EXTRA...`.
fn run_x(model: &Path, x: &Path, outdir: &Path, extra: &[&str]) -> Output {
    kiln()
        .arg("run")
        .arg(model)
        .arg("--input")
        .arg(format!("x={}", x.display()))
        .arg("--output-dir")
        .arg(outdir)
        .args(extra)
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn run_and_bench_tell_artifacts_and_models_apart_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let so = d.join("mlp.so");
    ok(kiln()
        .args(["compile"])
        .arg(model("mlp"))
        .arg("-o")
        .arg(&so)
        .output()
        .unwrap());
    // Renamed so that no extension gives them away.
    let artifact = d.join("artifact.bin");
    std::fs::copy(&so, &artifact).unwrap();
    let onnx = d.join("model.data");
    std::fs::copy(model("mlp"), &onnx).unwrap();
    let kir = d.join("model.txt");
    ok(kiln()
        .args(["import"])
        .arg(model("mlp"))
        .arg("-o")
        .arg(&kir)
        .output()
        .unwrap());
    // `kiln run` of a file on the mlp's test set.
    let run = |m: &Path, extra: &[&Path]| {
        kiln()
            .arg("run")
            .arg(m)
            .arg("--input-dir")
            .arg(test_set("mlp"))
            .arg("--output-dir")
            .arg(d.join("out"))
            .args(extra)
            .output()
            .unwrap()
    };
    for m in [&artifact, &onnx, &kir] {
        let o = run(m, &[Path::new("--expected"), &test_set("mlp")]);
        assert_eq!(code(&o), 0, "{}: {}", m.display(), out(&o));
    }
    let o = ok(kiln()
        .arg("bench")
        .arg(&artifact)
        .args(["--runs", "3", "--warmup", "1", "--format", "json"])
        .output()
        .unwrap());
    let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["engine"], "kiln");

    // Anything else is refused, saying what was expected.
    let png = d.join("picture.so");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let empty = d.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    for (bad, what) in [
        (&png, "starting with bytes 89 50 4e 47"),
        (&empty, "an empty file"),
    ] {
        let o = run(bad, &[]);
        assert_eq!(code(&o), 2, "{}", out(&o));
        let e = stderr(&o);
        assert!(e.contains("unknown file format") && e.contains(what), "{e}");
        assert!(
            e.contains("not a Kiln artifact (ELF), an ONNX model"),
            "{e}"
        );
    }
    // A compiled artifact where a model is needed.
    let o = kiln()
        .arg("compile")
        .arg(&artifact)
        .arg("-o")
        .arg(d.join("again.so"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", out(&o));
    assert!(stderr(&o).contains("a compiled artifact, not a model"));
}

/// `x + x` and `x * 3` on f16 and bf16 tensors written by NumPy and
/// ml_dtypes; the outputs are read back by NumPy and compared with NumPy's
/// own arithmetic in the same precision.
#[test]
fn npy_f16_and_bf16_round_trip_with_numpy_and_ml_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for dtype in ["f16", "bf16"] {
        // 7 elements: not a multiple of any vector width.
        let kir = write(
            d,
            &format!("{dtype}.kir"),
            &format!(
                "graph @g(%x: tensor<7x{dtype}>) -> (tensor<7x{dtype}>, tensor<7x{dtype}>) {{\n  \
                 %y = nn.add %x, %x : tensor<7x{dtype}>\n  \
                 %z = nn.mul %x, %x : tensor<7x{dtype}>\n  return %y, %z\n}}\n"
            ),
        );
        let input = d.join(format!("{dtype}_x.npy"));
        let np_type = if dtype == "f16" {
            "np.float16"
        } else {
            "ml_dtypes.bfloat16"
        };
        python(
            &format!(
                "import sys, numpy as np, ml_dtypes\n\
                 x = np.array([1.5, -2.25, 0.0, 3.140625, 65.0, -0.0078125, 7.0], dtype={np_type})\n\
                 np.save(sys.argv[1], x)"
            ),
            &[&input],
        );
        for mode in [&[][..], &["--interpret"][..]] {
            let outdir = d.join(format!("{dtype}-out{}", mode.len()));
            ok(run_x(&kir, &input, &outdir, mode));
            let report = python(
                &format!(
                    "import sys, numpy as np, ml_dtypes\n\
                     t = {np_type}\n\
                     x = np.load(sys.argv[1])\n\
                     x = x if x.dtype == t else x.view(t)\n\
                     y, z = np.load(sys.argv[2]), np.load(sys.argv[3])\n\
                     print(y.dtype.str, z.dtype.str)\n\
                     y = y if y.dtype == t else y.view(t)\n\
                     z = z if z.dtype == t else z.view(t)\n\
                     want_y = (x.astype(np.float32) * 2).astype(t)\n\
                     want_z = (x.astype(np.float32) * x.astype(np.float32)).astype(t)\n\
                     assert y.shape == (7,) and z.shape == (7,)\n\
                     assert np.array_equal(y.astype(np.float32), want_y.astype(np.float32)), (y, want_y)\n\
                     assert np.array_equal(z.astype(np.float32), want_z.astype(np.float32)), (z, want_z)\n\
                     print('ok')"
                ),
                &[&input, &outdir.join("y.npy"), &outdir.join("z.npy")],
            );
            // f16 is NumPy's <f2; bf16 is written as ml_dtypes writes it.
            let want_descr = if dtype == "f16" { "<f2 <f2" } else { "|V2 |V2" };
            assert_eq!(report.lines().collect::<Vec<_>>(), [want_descr, "ok"]);
        }
    }
    // ml_dtypes writes `<V2` exactly; so does Kiln (byte-compare headers).
    let bf16_out = std::fs::read(d.join("bf16-out0/y.npy")).unwrap();
    assert!(
        String::from_utf8_lossy(&bf16_out[..64]).contains("'descr': '<V2'"),
        "{:?}",
        String::from_utf8_lossy(&bf16_out[..64])
    );
}

/// A failed write leaves no file (not even an empty one): f8 has no NumPy
/// type, so `.npy` output fails; the `.pb` format carries it.
#[test]
fn an_output_npy_cannot_hold_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let kir = write(
        d,
        "f8.kir",
        "graph @g(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf8e4m3fn>) {\n  \
         %y = nn.relu %x : tensor<3xf32>\n  \
         %z = nn.cast %x {to = f8e4m3fn} : tensor<3xf8e4m3fn>\n  return %y, %z\n}\n",
    );
    let x = d.join("x.npy");
    python(
        "import sys, numpy as np\nnp.save(sys.argv[1], np.array([1.0, -2.0, 0.5], np.float32))",
        &[&x],
    );
    let outdir = d.join("out");
    let o = run_x(&kir, &x, &outdir, &["--interpret"]);
    assert_eq!(code(&o), 3, "{}", out(&o));
    assert!(stderr(&o).contains("output 'z': f8e4m3fn tensors cannot be written as .npy"));
    // Nothing at all: not y.npy (written first), not an empty z.npy.
    let left: Vec<_> = std::fs::read_dir(&outdir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    ok(run_x(
        &kir,
        &x,
        &outdir,
        &["--interpret", "--output-format", "pb"],
    ));
    assert!(outdir.join("output_1.pb").is_file());
}

#[test]
fn run_expected_names_the_output_and_first_mismatching_index() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // sqrt of negative numbers is NaN: NaN must match NaN and nothing else.
    let kir = write(
        d,
        "sqrt.kir",
        "graph @g(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>) {\n  \
         %y = nn.sqrt %x : tensor<2x3xf32>\n  return %y\n}\n",
    );
    let x = d.join("x.npy");
    let good = d.join("good");
    let off = d.join("off");
    let nan = d.join("nan");
    python(
        "import sys, os, numpy as np\n\
         x = np.array([[4.0, -1.0, 2.0], [9.0, 0.25, 1e-8]], np.float32)\n\
         np.save(sys.argv[1], x)\n\
         with np.errstate(invalid='ignore'):\n    y = np.sqrt(x)\n\
         for d in sys.argv[2:]: os.makedirs(d)\n\
         np.save(os.path.join(sys.argv[2], 'y.npy'), y)\n\
         bad = y.copy(); bad[1, 1] += 1e-3; np.save(os.path.join(sys.argv[3], 'y.npy'), bad)\n\
         nan = y.copy(); nan[0, 1] = 0.0; np.save(os.path.join(sys.argv[4], 'y.npy'), nan)",
        &[&x, &good, &off, &nan],
    );
    let run = |expected: &Path, extra: &[&str]| {
        let mut args = vec!["--expected", expected.to_str().unwrap()];
        args.extend(extra);
        run_x(&kir, &x, &d.join("out"), &args)
    };
    assert_eq!(code(&run(&good, &[])), 0);
    let o = run(&off, &[]);
    assert_eq!(code(&o), 5, "{}", out(&o));
    let e = stderr(&o);
    assert!(
        e.contains("output 'y' differs") && e.contains("1 of 6 elements differ"),
        "{e}"
    );
    assert!(e.contains("at [1, 1]: got 0.5, expected 0.501"), "{e}");
    // A looser tolerance accepts it.
    assert_eq!(code(&run(&off, &["--atol", "2e-3"])), 0);
    // NaN against a number fails at its index, in JSON too.
    let o = run(&nan, &["--message-format=json"]);
    assert_eq!(code(&o), 5, "{}", out(&o));
    let diags = json_diags(&o);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["code"], "E5001");
    assert_eq!(diags[0]["node"], "y");
    let msg = diags[0]["message"].as_str().unwrap();
    assert!(msg.contains("at [0, 1]: got NaN, expected 0"), "{msg}");
    // A missing expected file names the output.
    let o = run(d, &[]);
    assert_eq!(code(&o), 2, "{}", out(&o));
    assert!(stderr(&o).contains("no expected value for output 'y'"));
    assert_eq!(code(&run(&good, &["--rtol", "-1"])), 2);
}

#[test]
fn bench_prints_a_table_or_json_lines() {
    let so_dir = tempfile::tempdir().unwrap();
    let so = so_dir.path().join("m.so");
    ok(kiln()
        .arg("compile")
        .arg(model("mlp"))
        .arg("-o")
        .arg(&so)
        .output()
        .unwrap());
    let bench = |format: &[&str]| {
        ok(kiln()
            .arg("bench")
            .arg(&so)
            .arg("--input-dir")
            .arg(test_set("mlp"))
            .args(["--runs", "5", "--warmup", "1", "--threads", "1", "2"])
            .args(format)
            .output()
            .unwrap())
    };
    let table = stdout(&bench(&[]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for col in ["model", "threads", "median ms", "p90 ms", "outputs"] {
        assert!(lines[0].contains(col), "{table}");
    }
    assert!(
        lines[1].starts_with("m ") && lines[1].ends_with("match"),
        "{table}"
    );
    let json = stdout(&bench(&["--format", "json"]));
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    // The keys scripts/bench_ort.py prints, so scripts/bench.py compares them.
    for (r, threads) in rows.iter().zip([1, 2]) {
        assert_eq!(r["threads"], threads);
        assert_eq!(r["outputs_match"], true);
        for k in [
            "engine",
            "model",
            "median_ms",
            "p90_ms",
            "min_ms",
            "mean_ms",
            "runs",
        ] {
            assert!(!r[k].is_null(), "{k}: {r}");
        }
    }
}

/// Whether a divergence in a verify JSON report is the ONNX node described
/// as `nn.op "name"` with result `value`: that node, a fused node holding
/// it (the optimizer decides which ops fuse), or the node computing
/// `value` (a rewritten node may have lost its ONNX name).
fn names_node(divergence: &serde_json::Value, described: &str, value: &str) -> bool {
    divergence["node"] == described
        || divergence["value"] == value
        || divergence["body"]
            .as_array()
            .is_some_and(|b| b.iter().any(|n| n == described))
}

#[test]
fn verify_names_the_node_whose_compiled_result_is_wrong() {
    let mlp = model("mlp");
    let verify = |extra: &[&str]| kiln().arg("verify").arg(&mlp).args(extra).output().unwrap();
    let o = verify(&["--format", "json"]);
    assert_eq!(code(&o), 0, "{}", out(&o));
    let report: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(report["passed"], true);
    // Every node but constants was compared (6 ONNX nodes, some fused).
    let nodes = report["nodes"].as_u64().unwrap();
    assert!((1..=6).contains(&nodes), "{report}");
    assert_eq!(report["nodes_checked"], nodes, "{report}");
    // On the model's own test input too, at another level.
    let o = verify(&["--input-dir", test_set("mlp").to_str().unwrap(), "-O1"]);
    assert_eq!(code(&o), 0, "{}", out(&o));
    assert!(stdout(&o).contains("verify: OK"));

    // A fault in one node: that node (or the fused node holding it) is
    // named, and only it: the nodes after it are checked on the compiled,
    // wrong operands and agree.
    // (result name, as the ONNX node is described).
    for (value, described) in [
        ("fc1", "nn.gemm \"fc1\""),
        ("relu1", "nn.relu \"relu1\""),
        ("fc2", "nn.gemm \"fc2\""),
        ("logits", "nn.gemm \"fc3\""),
    ] {
        let o = verify(&["--inject-fault", value, "--format", "json"]);
        assert_eq!(code(&o), 5, "{}", out(&o));
        let report: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(report["passed"], false);
        let divergences = report["divergences"].as_array().unwrap();
        assert_eq!(divergences.len(), 1, "{report}");
        assert!(
            names_node(&divergences[0], described, value),
            "{value}: {report}"
        );
        let elements = divergences[0]["difference"]["elements"].as_array().unwrap();
        assert_eq!(elements.len(), 5);
        assert_eq!(elements[0]["index"], serde_json::json!([0, 0]));
        // The fault is exp(): compiled = exp(reference) at every element.
        for e in elements {
            let c: f64 = e["compiled"].as_str().unwrap().parse().unwrap();
            let r: f64 = e["reference"].as_str().unwrap().parse().unwrap();
            assert!((c - r.exp()).abs() <= 1e-5 * c.abs().max(1.0), "{e}");
        }
        // The outputs differ from the unoptimized model as well.
        assert_eq!(report["output_differences"][0]["output"], "probs");
        // The error on stderr names the node too.
        let e = stderr(&o);
        assert!(
            e.contains("diverges from the reference first at node #"),
            "{e}"
        );
        assert!(e.contains(divergences[0]["node"].as_str().unwrap()), "{e}");
    }
    // The text report and a JSON diagnostic naming the node.
    let o = verify(&["--inject-fault", "logits", "--message-format=json"]);
    assert_eq!(code(&o), 5);
    let text = stdout(&o);
    assert!(text.contains("first diverging node: #"), "{text}");
    assert!(text.contains("(result 'logits'"), "{text}");
    assert!(
        text.contains("compiled") && text.contains("reference"),
        "{text}"
    );
    let diags = json_diags(&o);
    assert_eq!(diags[0]["code"], "E5002");
    assert_eq!(diags[0]["exit_code"], 5);
    assert!(diags[0]["file"].as_str().unwrap().ends_with("model.onnx"));
    assert!(diags[0]["node"].as_str().unwrap().starts_with("nn."));
    // An unknown node is a usage error.
    assert_eq!(code(&verify(&["--inject-fault", "nope"])), 2);
}

#[test]
fn verify_lists_the_ops_of_a_fused_node() {
    let dir = tempfile::tempdir().unwrap();
    let kir = write(
        dir.path(),
        "fused.kir",
        "weight @w : tensor<2x3xf32> = dense<[1.0, -2.0, 3.0, 4.0, 5.0, -6.0]>\n\
         graph @g(%x: tensor<5x2xf32>) -> (tensor<5x3xf32>) {\n  \
         %c = nn.constant {value = @w} : tensor<2x3xf32>\n  \
         %y = nn.fused %x, %c {kind = \"epilogue\"} : tensor<5x3xf32> {\n    \
         ^(%a: tensor<5x2xf32>, %b: tensor<2x3xf32>):\n    \
         %m = nn.matmul %a, %b : tensor<5x3xf32>\n    \
         %r = nn.relu %m : tensor<5x3xf32>\n    return %r\n  }\n  \
         %z = nn.sigmoid %y : tensor<5x3xf32>\n  return %z\n}\n",
    );
    let o = kiln().arg("verify").arg(&kir).output().unwrap();
    assert_eq!(code(&o), 0, "{}", out(&o));
    let o = kiln()
        .arg("verify")
        .arg(&kir)
        .args(["--inject-fault", "y", "--seed", "7"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 5, "{}", out(&o));
    let s = stdout(&o);
    assert!(s.contains("first diverging node: #"), "{s}");
    assert!(s.contains(" nn.fused (result 'y'"), "{s}");
    assert!(s.contains("fused body: nn.matmul, nn.relu"), "{s}");
}

#[test]
fn verify_against_onnx_runtime() {
    let python = repo().join(".venv/bin/python");
    let verify = |name: &str, extra: &[&str]| {
        kiln()
            .env("KILN_PYTHON", &python)
            .arg("verify")
            .arg(model(name))
            .args(["--reference", "ort", "--format", "json"])
            .args(extra)
            .output()
            .unwrap()
    };
    for name in ["mlp", "cnn"] {
        let o = verify(name, &[]);
        assert_eq!(code(&o), 0, "{}", out(&o));
        let report: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(report["reference"], "ONNX Runtime, by value name");
        // Values are matched by ONNX name: at least the graph output.
        assert!(report["values_checked"].as_u64().unwrap() >= 1, "{report}");
    }
    let o = verify("mlp", &["--inject-fault", "fc2"]);
    assert_eq!(code(&o), 5, "{}", out(&o));
    let report: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(
        names_node(&report["divergences"][0], "nn.gemm \"fc2\"", "fc2"),
        "{report}"
    );
    // A Python that cannot run is a clear error (exit 3) naming the knob.
    let o = kiln()
        .env("KILN_PYTHON", "/nonexistent/python")
        .arg("verify")
        .arg(model("mlp"))
        .args(["--reference", "ort"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 3, "{}", out(&o));
    assert!(stderr(&o).contains("KILN_PYTHON"));
}

/// The spinner appears on a terminal once a compile runs longer than a
/// second, and never when stderr is not a terminal.
#[test]
fn progress_shows_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let transformer = model("transformer");
    // stderr is a pipe here: nothing at all on a successful compile.
    let o = ok(kiln()
        .arg("compile")
        .arg(&transformer)
        .arg("-o")
        .arg(dir.path().join("a.so"))
        .output()
        .unwrap());
    assert!(o.stderr.is_empty(), "{}", out(&o));
    // Under a pseudo-terminal (`script`): the stage is shown when the
    // compile took clearly longer than the delay, never when it was faster.
    let cmd = format!(
        "{} compile {} -o {}",
        env!("CARGO_BIN_EXE_kiln"),
        transformer.display(),
        dir.path().join("b.so").display()
    );
    let start = Instant::now();
    let o = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("KILN_LOG", "error")
        .output()
        .expect("script (util-linux) runs");
    let took = start.elapsed();
    assert!(o.status.success(), "{}", out(&o));
    let shown = stdout(&o);
    if took > Duration::from_millis(1500) {
        assert!(
            shown.contains("compiling model.onnx: "),
            "{took:?}: {shown:?}"
        );
        // Cleared at the end: the last frame is followed by an erase.
        let last = shown.rfind("compiling").unwrap();
        assert!(shown[last..].contains("\u{1b}[2K"), "{shown:?}");
    } else if took < Duration::from_millis(900) {
        assert!(shown.is_empty(), "{took:?}: {shown:?}");
    }
}

#[test]
fn malformed_kiln_variables_are_refused_by_name() {
    let ok_kir = repo().join("lit-tests/cli/Inputs/ok.kir");
    for (var, value, expected) in [
        ("KILN_NUM_THREADS", "abc", "a positive integer"),
        ("KILN_NUM_THREADS", "0", "a positive integer"),
        ("KILN_NUM_THREADS", "-2", "a positive integer"),
        (
            "KILN_PARALLEL_MIN_US",
            "-1",
            "an integer from 0 to 999999999",
        ),
        (
            "KILN_PARALLEL_MIN_US",
            "1e3",
            "an integer from 0 to 999999999",
        ),
        ("KILN_LOG", "garbage", "a level"),
        ("KILN_LOG", "kiln=loud", "a level"),
        ("KILN_RUNTIME_DIR", "/nonexistent/dir", "an existing folder"),
    ] {
        let o = kiln()
            .env(var, value)
            .arg("opt")
            .arg(&ok_kir)
            .output()
            .unwrap();
        assert_eq!(code(&o), 2, "{var}={value}: {}", out(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!("invalid environment variable {var}={value:?}"))
                && e.contains(expected),
            "{e}"
        );
        assert!(o.stdout.is_empty(), "nothing ran: {}", out(&o));
    }
    // Empty means unset; valid values pass.
    for (var, value) in [
        ("KILN_NUM_THREADS", ""),
        ("KILN_NUM_THREADS", "3"),
        ("KILN_PARALLEL_MIN_US", "0"),
        ("KILN_LOG", "kiln_passes=debug,warn"),
    ] {
        ok(kiln()
            .env(var, value)
            .arg("opt")
            .arg(&ok_kir)
            .output()
            .unwrap());
    }
    // `kiln config --env` lists every variable with its value.
    let o = ok(kiln()
        .env("KILN_NUM_THREADS", "3")
        .args(["config", "--env"])
        .output()
        .unwrap());
    let s = stdout(&o);
    assert!(s.contains("KILN_NUM_THREADS") && s.contains("\"3\""), "{s}");
    assert!(
        s.contains("KILN_PARALLEL_MIN_US") && s.contains("(unset)"),
        "{s}"
    );
}
