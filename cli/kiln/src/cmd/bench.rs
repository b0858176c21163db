//! `kiln bench`: median and p90 latency of an artifact or model over N timed
//! runs after a warm-up, printed as a table (one row per thread count) or,
//! with `--format json`, as one JSON line per thread count with the keys of
//! `scripts/bench_ort.py` (`"engine":"kiln"`), so the two compare
//! (`scripts/bench.py` reads the JSON).
//!
//! Inputs: `--input`/`--input-dir`, else the model's
//! `test_data_set_0/input_<i>.pb` when it exists (its outputs are then
//! checked first and reported as `outputs_match`), else zeros. A model file
//! is compiled specialized to the given inputs, as `kiln run` does (zeros
//! specialize nothing: they say nothing about the intended shapes).

use crate::cmd::compile::TargetArgs;
use crate::cmd::import::InputShapeArgs;
use crate::cmd::run::{open_session, prepare, read_input_dir, DeviceArgs, InputArgs};
use crate::error::{driver_error, CliError, Code};
use clap::{Args, ValueEnum};
use kiln_driver::session::zero_inputs;
use kiln_driver::tensors::{compare, max_relative_error, read_test_set, Tolerance};
use kiln_driver::{BenchOptions, HostTensor, Prepared};
use std::path::{Path, PathBuf};

/// `--format` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    #[default]
    Table,
    /// One JSON object per thread count (the keys of scripts/bench_ort.py).
    Json,
}

/// Arguments of `kiln bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// An artifact or a model (ONNX or Kiln IR), told apart by content.
    pub model: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Timed runs.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,

    /// Untimed runs first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,

    /// Runtime thread counts, one row (or JSON line) each.
    #[arg(long, num_args = 1.., default_values_t = [1u32])]
    pub threads: Vec<u32>,

    /// Benchmark the reference interpreter instead.
    #[arg(long)]
    pub interpret: bool,

    #[command(flatten)]
    pub inputs: InputArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub shapes: InputShapeArgs,

    #[command(flatten)]
    pub device: DeviceArgs,

    /// Weight quantization of a model file, as `kiln compile --quantize`.
    #[command(flatten)]
    pub quantize: crate::cmd::compile::QuantizeArgs,

    /// Tolerances of the outputs check against the expected outputs (a
    /// test set's): given, the outputs are compared as `kiln run --expected`
    /// does (so a quantized model can be held to its error); else within a
    /// relative error of 1e-3.
    #[command(flatten)]
    pub tolerance: crate::cmd::run::ToleranceArgs,
}

/// The model's name as `bench_ort.py` prints it: the directory of a
/// `model.onnx`, otherwise the file stem.
fn model_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    match stem.as_deref() {
        Some("model") | None => path
            .parent()
            .and_then(Path::file_name)
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned()),
        Some(s) => s.to_owned(),
    }
}

/// Inputs and, when known, expected outputs; `None` inputs mean zeros (read
/// once the session knows the static input shapes).
#[allow(clippy::type_complexity)]
fn inputs(
    args: &BenchArgs,
    prepared: &Prepared,
) -> Result<(Option<Vec<HostTensor>>, Vec<HostTensor>), CliError> {
    let names = prepared.input_names();
    let expected_in =
        |dir: &Path| read_test_set(dir, "output", &prepared.output_names()).map_err(driver_error);
    if let Some(dir) = &args.inputs.input_dir {
        return Ok((Some(read_input_dir(dir, &names)?), expected_in(dir)?));
    }
    if !args.inputs.inputs.is_empty() {
        return Ok((Some(args.inputs.read(&names)?), Vec::new()));
    }
    if let Some(set) = crate::io::bundled_test_set(&args.model) {
        if let Ok(inputs) = read_input_dir(&set, &names) {
            return Ok((Some(inputs), expected_in(&set)?));
        }
    }
    Ok((None, Vec::new()))
}

/// Runs `kiln bench`.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    args.tolerance.check()?;
    if args.runs == 0 || args.threads.contains(&0) {
        return Err(CliError::new(
            Code::Usage,
            "--runs and --threads must be >= 1",
        ));
    }
    let prepared = prepare(
        &args.model,
        args.interpret,
        &args.target,
        &args.shapes,
        &args.device,
        &args.quantize,
    )?;
    let (inputs, expected) = inputs(&args, &prepared)?;
    let session = open_session(&args.model, prepared, inputs.as_deref())?;
    let inputs = match inputs {
        Some(inputs) => inputs,
        None => zero_inputs(&session).map_err(driver_error)?,
    };
    let outputs_match = if expected.is_empty() {
        serde_json::Value::Null
    } else {
        let got = session.run(&inputs).map_err(driver_error)?;
        let tol = &args.tolerance;
        let within = |e: &HostTensor, g: &HostTensor| {
            if tol.rtol.is_none() && tol.atol.is_none() {
                max_relative_error(e, g, 1e-2).is_ok_and(|err| err <= 1e-3)
            } else {
                let t = Tolerance::for_dtype(e.dtype).with(tol.rtol, tol.atol);
                compare(e, g, Some(t), 0).is_none()
            }
        };
        let ok =
            got.len() == expected.len() && expected.iter().zip(&got).all(|(e, g)| within(e, g));
        serde_json::Value::Bool(ok)
    };
    let name = model_name(&args.model);
    let mut rows = Vec::new();
    for &threads in &args.threads {
        let opts = BenchOptions {
            warmup: args.warmup,
            runs: args.runs,
            threads,
        };
        let r = kiln_driver::bench(&session, &inputs, &opts).map_err(driver_error)?;
        let round = |x: f64| (x * 1e6).round() / 1e6;
        let line = serde_json::json!({
            "engine": if session.is_compiled() { "kiln" } else { "kiln-interpret" },
            "model": name,
            "threads": threads,
            "median_ms": round(r.median_ms),
            "p90_ms": round(r.p90_ms),
            "min_ms": round(r.min_ms),
            "mean_ms": round(r.mean_ms),
            "runs": args.runs,
            "warmup": args.warmup,
            "opt_level": format!("O{}", args.target.opt_level),
            "outputs_match": outputs_match,
            "kiln_version": env!("CARGO_PKG_VERSION"),
            "machine": std::env::consts::ARCH,
            "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        });
        if args.format == Format::Json {
            // One line as soon as it is measured, for scripts that stream.
            crate::io::write_output(None, format!("{line}\n").as_bytes())?;
        }
        rows.push(line);
    }
    if args.format == Format::Table {
        crate::io::write_output(None, table(&rows).as_bytes())?;
    }
    Ok(())
}

/// The rows as an aligned table: model, engine, threads, latencies in ms,
/// runs and whether the outputs matched the test set.
fn table(rows: &[serde_json::Value]) -> String {
    const HEAD: [&str; 9] = [
        "model",
        "engine",
        "threads",
        "median ms",
        "p90 ms",
        "min ms",
        "mean ms",
        "runs",
        "outputs",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| match &r[k] {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let ms = |k: &str| {
                r[k].as_f64()
                    .map_or_else(|| "-".into(), |v| format!("{v:.4}"))
            };
            let outputs = match r["outputs_match"].as_bool() {
                Some(true) => "match",
                Some(false) => "DIFFER",
                None => "-",
            };
            vec![
                s("model"),
                s("engine"),
                s("threads"),
                ms("median_ms"),
                ms("p90_ms"),
                ms("min_ms"),
                ms("mean_ms"),
                s("runs"),
                outputs.into(),
            ]
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].len())
            .chain([HEAD[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..HEAD.len()).map(width).collect();
    let line = |c: &[String]| {
        let parts: Vec<String> = c
            .iter()
            .zip(&widths)
            .enumerate()
            // Text left-aligned, numbers right-aligned.
            .map(|(i, (v, &w))| {
                if i < 2 {
                    format!("{v:<w$}")
                } else {
                    format!("{v:>w$}")
                }
            })
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(&HEAD.map(String::from));
    for c in &cells {
        out.push_str(&line(c));
    }
    out
}
