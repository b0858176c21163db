//! `kiln bench`: median and p90 latency of an artifact or model over N timed
//! runs after a warm-up, printed as one JSON line per thread count with the
//! keys of `scripts/bench_ort.py` (`"engine":"kiln"`), so the two compare.
//!
//! Inputs: `--input`/`--input-dir`, else the model's
//! `test_data_set_0/input_<i>.pb` when it exists (its outputs are then
//! checked first and reported as `outputs_match`), else zeros. A model file
//! is compiled specialized to the given inputs, as `kiln run` does (zeros
//! specialize nothing: they say nothing about the intended shapes).

use crate::cmd::compile::{driver_error, TargetArgs};
use crate::cmd::import::InputShapeArgs;
use crate::cmd::run::{open_session, prepare, read_input_dir, InputArgs};
use crate::error::{CliError, ExitClass};
use clap::Args;
use kiln_driver::session::zero_inputs;
use kiln_driver::tensors::{max_relative_error, read_test_set};
use kiln_driver::{BenchOptions, HostTensor, Prepared};
use std::path::{Path, PathBuf};

/// Arguments of `kiln bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// An artifact (.so) or a model (.onnx, .kir).
    pub model: PathBuf,

    /// Timed runs.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,

    /// Untimed runs first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,

    /// Runtime thread counts, one JSON line each.
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
    let set = args
        .model
        .parent()
        .unwrap_or(Path::new("."))
        .join("test_data_set_0");
    if set.join("input_0.pb").is_file() {
        if let Ok(inputs) = read_input_dir(&set, &names) {
            return Ok((Some(inputs), expected_in(&set)?));
        }
    }
    Ok((None, Vec::new()))
}

/// Runs `kiln bench`.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    if args.runs == 0 || args.threads.contains(&0) {
        return Err(CliError::new(
            ExitClass::Invalid,
            "--runs and --threads must be >= 1",
        ));
    }
    let prepared = prepare(&args.model, args.interpret, &args.target, &args.shapes)?;
    let (inputs, expected) = inputs(&args, &prepared)?;
    let session = open_session(prepared, inputs.as_deref())?;
    let inputs = match inputs {
        Some(inputs) => inputs,
        None => zero_inputs(&session).map_err(driver_error)?,
    };
    let outputs_match = if expected.is_empty() {
        serde_json::Value::Null
    } else {
        let got = session.run(&inputs).map_err(driver_error)?;
        let ok = got.len() == expected.len()
            && expected
                .iter()
                .zip(&got)
                .all(|(e, g)| max_relative_error(e, g, 1e-2).is_ok_and(|err| err <= 1e-3));
        serde_json::Value::Bool(ok)
    };
    let name = model_name(&args.model);
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
        println!("{line}");
    }
    Ok(())
}
