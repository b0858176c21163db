//! `kiln verify MODEL`: compile the model, run it next to a reference on
//! the same inputs, and name the first node whose result diverges beyond
//! the tolerance, with a few of its elements (index, compiled, reference).
//!
//! The reference is the interpreter, node by node on the operands the
//! compiled code produced (so the culprit is isolated; see
//! `kiln_driver::verify`), or ONNX Runtime (`--reference ort`, through a
//! Python with `onnxruntime`: `KILN_PYTHON`, else `.venv/bin/python` in the
//! current folder or above, else `python3`), compared by value name.
//! Inputs are given (`--input`, `--input-dir`) or drawn from a seeded
//! generator (`--seed`).
//!
//! Exit 0 when everything agrees, 5 (`E5002`) when a node or an output
//! diverges. The report goes to stdout (text, or one JSON object with
//! `--format json`).

use crate::cmd::compile::QuantizeArgs;
use crate::cmd::compile::TargetArgs;
use crate::cmd::import::InputShapeArgs;
use crate::cmd::inspect::Format;
use crate::cmd::run::{prepare, session_options, DeviceArgs, InputArgs, ToleranceArgs};
use crate::error::{driver_error, CliError, Code, Diag};
use clap::{Args, ValueEnum};
use kiln_driver::tensors::{format_value, read_npy, write_npy, Difference, HostTensor};
use kiln_driver::verify::{random_inputs, Reference, VerifyOptions, VerifyReport};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `--reference` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ReferenceArg {
    /// Kiln's reference interpreter, node by node.
    #[default]
    Interpreter,
    /// ONNX Runtime (an ONNX model and a Python with onnxruntime).
    Ort,
}

/// Arguments of `kiln verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The model (ONNX or Kiln IR).
    pub model: PathBuf,

    #[command(flatten)]
    pub inputs: InputArgs,

    /// Seed of the generated inputs (when no inputs are given): floats in
    /// [-1, 1), integers in [0, 3).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// What the compiled results are compared with.
    #[arg(long, value_enum, default_value_t = ReferenceArg::Interpreter)]
    pub reference: ReferenceArg,

    #[command(flatten)]
    pub tolerance: ToleranceArgs,

    /// Elements shown for a diverging result.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub show: usize,

    /// Report format (stdout).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Debugging aid for testing verify itself: the compiled code computes a
    /// wrong first result for NODE (its ONNX name or its result's name).
    #[arg(long, value_name = "NODE")]
    pub inject_fault: Option<String>,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub shapes: InputShapeArgs,

    /// Weight quantization, as `kiln compile --quantize`: the compiled model
    /// is the quantized one, and the reference the interpreter on the graph
    /// quantize-weights writes (so what is checked is the compile of the
    /// quantized model, not the quantization error).
    #[command(flatten)]
    pub quantize: QuantizeArgs,
}

/// Runs `kiln verify`.
pub fn run(args: VerifyArgs) -> Result<(), CliError> {
    args.tolerance.check()?;
    if args.quantize.options()?.scheme.is_some() && args.reference == ReferenceArg::Ort {
        return Err(CliError::new(
            Code::Usage,
            "--quantize with --reference ort: ONNX Runtime runs the f32 model, whose outputs a \
             quantized model does not match; verify a quantized model against the interpreter",
        ));
    }
    let prepared = prepare(
        &args.model,
        false,
        &args.target,
        &args.shapes,
        &DeviceArgs::default(),
        &QuantizeArgs::default(),
    )?;
    if !prepared.needs_compile() {
        return Err(CliError::at_file(
            Code::Invalid,
            format!(
                "{}: a compiled artifact; kiln verify needs the model (ONNX or Kiln IR)",
                args.model.display()
            ),
            &args.model,
        ));
    }
    let given = !args.inputs.is_empty();
    let inputs = if given {
        args.inputs.read(&prepared.input_names())?
    } else {
        let fixed = prepared.shape_defining_inputs();
        if let Some(name) = fixed.first() {
            return Err(CliError::new(
                Code::BadInputs,
                format!(
                    "input '{name}' decides shapes (or control flow), so it cannot be random; \
                     give the inputs with --input NAME=PATH or --input-dir DIR"
                ),
            ));
        }
        random_inputs(prepared.inputs(), args.seed).map_err(driver_error)?
    };
    let reference = match args.reference {
        ReferenceArg::Interpreter => Reference::Interpreter,
        ReferenceArg::Ort => Reference::Values(ort_values(&args.model, &inputs)?),
    };
    let (graph, _) = prepared
        .into_graph(&inputs)
        .map_err(|e| driver_error(e).in_file(&args.model))?;
    let progress = crate::progress::Progress::start("compiling the instrumented model");
    let opts = VerifyOptions {
        session: kiln_driver::SessionOptions {
            on_stage: Some(progress.hook()),
            ..session_options(
                false,
                &args.target,
                &args.shapes,
                &DeviceArgs::default(),
                &args.quantize,
            )?
        },
        reference,
        rtol: args.tolerance.rtol,
        atol: args.tolerance.atol,
        show: args.show.max(1),
        fault: args.inject_fault.clone(),
    };
    let report = kiln_driver::verify::verify(graph, &inputs, &opts);
    drop(progress);
    let report = report.map_err(|e| driver_error(e).in_file(&args.model))?;
    let source = if given {
        "the given inputs".to_owned()
    } else {
        format!("random inputs (seed {})", args.seed)
    };
    let text = match args.format {
        Format::Text => text_report(&args, &report, &source),
        Format::Json => format!("{}\n", json_report(&args, &report, &source)),
    };
    crate::io::write_output(None, text.as_bytes())?;
    failure(&report).map_err(|e| e.in_file(&args.model))
}

fn reference_name(args: &VerifyArgs) -> &'static str {
    match args.reference {
        ReferenceArg::Interpreter => "interpreter, node by node on the compiled operands",
        ReferenceArg::Ort => "ONNX Runtime, by value name",
    }
}

/// A diverging result's elements, one line each.
fn elements(d: &Difference) -> Vec<String> {
    d.lines("compiled", "reference")
}

fn text_report(args: &VerifyArgs, r: &VerifyReport, source: &str) -> String {
    let weights = match &args.quantize.quantize {
        Some(scheme) => format!(" with {scheme} weights"),
        None => String::new(),
    };
    let mut s = format!(
        "kiln verify {} at -O{}{weights} on {source}; reference: {}\n",
        args.model.display(),
        args.target.opt_level,
        reference_name(args)
    );
    s.push_str(&format!(
        "checked {} of {} nodes ({} results): {} diverge\n",
        r.nodes_checked,
        r.nodes,
        r.values_checked,
        r.divergences.len()
    ));
    if let Some(first) = r.divergences.first() {
        s.push_str(&format!(
            "first diverging node: #{} {} (result '{}', rtol {:e}, atol {:e})\n",
            first.index, first.node, first.value, first.tolerance.rtol, first.tolerance.atol
        ));
        if !first.body.is_empty() {
            s.push_str(&format!("  fused body: {}\n", first.body.join(", ")));
        }
        for line in elements(&first.difference) {
            s.push_str(&format!("  {line}\n"));
        }
        for d in r.divergences.iter().skip(1).take(10) {
            s.push_str(&format!(
                "also diverging: #{} {} (result '{}')\n",
                d.index, d.node, d.value
            ));
        }
    }
    if r.output_differences.is_empty() {
        s.push_str("outputs: match the interpreter on the unoptimized model\n");
    }
    for (name, d) in &r.output_differences {
        s.push_str(&format!(
            "output '{name}' differs from the interpreter on the unoptimized model:\n"
        ));
        for line in elements(d) {
            s.push_str(&format!("  {line}\n"));
        }
    }
    s.push_str(if r.passed() {
        "verify: OK\n"
    } else {
        "verify: FAILED\n"
    });
    s
}

fn difference_json(d: &Difference) -> serde_json::Value {
    match d {
        Difference::Type(m) => serde_json::json!({ "type_mismatch": m }),
        Difference::Values {
            dtype,
            first,
            count,
            total,
            max_abs,
        } => serde_json::json!({
            "count": count,
            "total": total,
            "max_abs": if max_abs.is_finite() { serde_json::json!(max_abs) } else { serde_json::json!(max_abs.to_string()) },
            // Strings, so that NaN and infinities survive JSON.
            "elements": first.iter().map(|e| serde_json::json!({
                "index": e.index,
                "compiled": format_value(e.got, *dtype),
                "reference": format_value(e.expected, *dtype),
            })).collect::<Vec<_>>(),
        }),
    }
}

fn json_report(args: &VerifyArgs, r: &VerifyReport, source: &str) -> serde_json::Value {
    serde_json::json!({
        "model": args.model.display().to_string(),
        "opt_level": args.target.opt_level,
        "quantize": args.quantize.quantize,
        "inputs": source,
        "reference": reference_name(args),
        "nodes": r.nodes,
        "nodes_checked": r.nodes_checked,
        "values_checked": r.values_checked,
        "passed": r.passed(),
        "divergences": r.divergences.iter().map(|d| serde_json::json!({
            "index": d.index,
            "node": d.node,
            "body": d.body,
            "value": d.value,
            "rtol": d.tolerance.rtol,
            "atol": d.tolerance.atol,
            "difference": difference_json(&d.difference),
        })).collect::<Vec<_>>(),
        "output_differences": r.output_differences.iter().map(|(n, d)| serde_json::json!({
            "output": n,
            "difference": difference_json(d),
        })).collect::<Vec<_>>(),
    })
}

/// Exit 5 naming the first diverging node (or output).
fn failure(r: &VerifyReport) -> Result<(), CliError> {
    if let Some(first) = r.divergences.first() {
        let mut message = format!(
            "the compiled model diverges from the reference first at node #{} {} (result '{}')",
            first.index, first.node, first.value
        );
        if !first.body.is_empty() {
            message.push_str(&format!(" [fused: {}]", first.body.join(", ")));
        }
        // The summary and the first element; stdout has the rest.
        for line in elements(&first.difference).iter().take(2) {
            message.push_str(&format!("; {line}"));
        }
        let d = Diag::error(Code::Diverged, message.clone()).node(first.node.clone());
        return Err(CliError::with_diags(Code::Diverged, message, vec![d]));
    }
    if let Some((name, _)) = r.output_differences.first() {
        return Err(CliError::new(
            Code::Diverged,
            format!(
                "output '{name}' differs from the interpreter on the unoptimized model although \
                 no node diverges: a graph pass changed the result, or rounding accumulated \
                 beyond the tolerance (see --rtol/--atol)"
            ),
        ));
    }
    Ok(())
}

/// The Python that runs ONNX Runtime: `KILN_PYTHON`, else a
/// `.venv/bin/python` in the current folder or above, else `python3`.
fn python() -> PathBuf {
    if let Some(p) = crate::env::get("KILN_PYTHON") {
        return PathBuf::from(p);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors()
        .map(|d| d.join(".venv/bin/python"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Runs ONNX Runtime on `model` with `inputs`; every intermediate value of
/// the ONNX graph, by name.
fn ort_values(
    model: &Path,
    inputs: &[HostTensor],
) -> Result<HashMap<String, HostTensor>, CliError> {
    if kiln_driver::load::detect(model).map_err(driver_error)? != kiln_driver::load::FileKind::Onnx
    {
        return Err(CliError::new(
            Code::Usage,
            "--reference ort needs an ONNX model",
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("kiln-verify-")
        .tempdir()
        .map_err(|e| CliError::io("cannot create a temporary folder", &e))?;
    let mut feeds = serde_json::Map::new();
    for (i, t) in inputs.iter().enumerate() {
        let path = tmp.path().join(format!("input_{i}.npy"));
        write_npy(&path, t).map_err(driver_error)?;
        feeds.insert(t.name.clone(), path.display().to_string().into());
    }
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir)
        .map_err(|e| CliError::io("cannot create a temporary folder", &e))?;
    let spec = serde_json::json!({
        "model": model.display().to_string(),
        "inputs": feeds,
        "out_dir": out_dir.display().to_string(),
    });
    let spec_path = tmp.path().join("spec.json");
    let script = tmp.path().join("ort_reference.py");
    std::fs::write(&spec_path, spec.to_string())
        .and_then(|()| std::fs::write(&script, include_str!("ort_reference.py")))
        .map_err(|e| CliError::io("cannot write a temporary file", &e))?;
    let python = python();
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&spec_path)
        .output()
        .map_err(|e| {
            CliError::new(
                Code::Unsupported,
                format!(
                    "--reference ort needs Python with onnxruntime; cannot run {}: {e} (set KILN_PYTHON)",
                    python.display()
                ),
            )
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(3) => {
            return Err(CliError::new(
                Code::Unsupported,
                format!(
                    "--reference ort needs onnx and onnxruntime in {} ({}); set KILN_PYTHON",
                    python.display(),
                    stderr.trim()
                ),
            ))
        }
        _ => {
            return Err(CliError::new(
                Code::Reference,
                format!(
                    "ONNX Runtime failed on {}:\n{}",
                    model.display(),
                    stderr.trim()
                ),
            ))
        }
    }
    let index: HashMap<String, String> = std::fs::read_to_string(out_dir.join("index.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .ok_or_else(|| CliError::new(Code::Reference, "ONNX Runtime wrote no results"))?;
    index
        .into_iter()
        .map(|(name, file)| {
            let t = read_npy(&out_dir.join(file), &name).map_err(driver_error)?;
            Ok((name, t))
        })
        .collect()
}
