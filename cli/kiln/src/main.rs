//! `kiln`: the command-line front of the Kiln compiler.
//!
//! This crate is the only place that knows about argument parsing, process
//! exit codes and terminal output. `main.rs` parses arguments, sets up
//! logging and maps errors to exit codes; each subcommand is one module
//! under `cmd/` (add `import`, `inspect`, `compile`, `run`, `bench` there as
//! further modules and one variant of [`Command`]).
//!
//! Exit codes (stable; scripts may rely on them):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | internal error (a bug in Kiln, an I/O failure, or `--verify-diagnostics` found a mismatch) |
//! | 2 | invalid input or usage (bad arguments, unreadable or malformed input) |
//! | 3 | the input uses a feature Kiln does not support |
//! | 4 | a resource limit was hit (out of memory, disk full) |
//!
//! Logging goes to stderr through `tracing`: `-v` shows info, `-vv` debug,
//! `-vvv` trace; the `KILN_LOG` environment variable (an `EnvFilter`
//! directive such as `kiln_passes=debug`) overrides the verbosity flags.

mod cmd;
mod diagnostics;
mod error;
mod io;

use clap::{Parser, Subcommand};
use error::CliError;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Examples:
  kiln inspect model.onnx                    # inputs/outputs, ops, parameters, unsupported ops
  kiln compile model.onnx -o model.so        # shared library + model.h
  kiln compile model.onnx --emit=mlir -o -   # stop after a stage: kir, dot, mlir, llvm, asm, obj
  kiln run model.so --input-dir test_data_set_0 --output-dir out/
  kiln bench model.so --threads 2
  kiln import model.onnx -o model.kir        # Kiln IR text + weights side file
  kiln opt model.kir --passes=default -o model.opt.kir
  kiln opt model.kir --passes=canonicalize,cse,dce --print-after-all
  kiln opt - < model.kir                     # read stdin, write stdout
  kiln opt tests.kir --verify-diagnostics --split-input-file
  kiln opt --list-passes

Exit codes:
  0  success
  1  internal error (or a --verify-diagnostics mismatch)
  2  invalid input or usage
  3  unsupported feature
  4  resource limit

Environment:
  KILN_LOG  log filter (e.g. `debug`, `kiln_passes=trace`); overrides -v";

/// Kiln: an ahead-of-time compiler for ML models.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a .kir or .onnx file, run graph passes, print Kiln IR.
    Opt(cmd::opt::OptArgs),
    /// Summarize an ONNX model: I/O, op histogram, parameters, unsupported ops.
    Inspect(cmd::inspect::InspectArgs),
    /// Convert an ONNX model to Kiln IR text plus a weights side file.
    Import(cmd::import::ImportArgs),
    /// Compile a model into model.so + model.h (or any stage with --emit).
    Compile(cmd::compile::CompileArgs),
    /// Run an artifact or model on tensor files.
    Run(cmd::run::RunArgs),
    /// Measure latency (JSON lines comparable with scripts/bench_ort.py).
    Bench(cmd::bench::BenchArgs),
    /// Print how to build against the runtime (--cflags, --libs, ...).
    Config(cmd::config::ConfigArgs),
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let (filter, bad_env) = match std::env::var("KILN_LOG") {
        Ok(spec) => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(default),
                Some(format!("ignoring KILN_LOG={spec:?}: {e}")),
            ),
        },
        Err(_) => (EnvFilter::new(default), None),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .without_time()
        .init();
    if let Some(msg) = bad_env {
        tracing::warn!("{msg}");
    }
}

fn main() -> ExitCode {
    // Usage errors exit with clap's code 2, `--help`/`--version` with 0.
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result: Result<(), CliError> = match cli.command {
        Command::Opt(args) => cmd::opt::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Import(args) => cmd::import::run(args),
        Command::Compile(args) => cmd::compile::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Config(args) => cmd::config::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.already_reported() {
                eprintln!("kiln: error: {e}");
            }
            ExitCode::from(e.class().code())
        }
    }
}
