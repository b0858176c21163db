//! `kiln`: the command-line front of the Kiln compiler.
//!
//! This crate is the only place that knows about argument parsing, process
//! exit codes and terminal output. `main.rs` parses arguments, sets up
//! logging and maps errors to exit codes; each subcommand is one module
//! under `cmd/` (add `import`, `inspect`, `compile`, `run`, `bench` there as
//! further modules and one variant of [`Command`]).
//!
//! Exit codes (stable; scripts may rely on them), each the class of a
//! stable error code (`E<exit code>NNN`, table in `docs/errors.md`, mapping
//! in [`error`]):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | internal error (a bug in Kiln, an environment failure, or `--verify-diagnostics` found a mismatch) |
//! | 2 | invalid input or usage (bad arguments, unreadable or malformed input, bad `KILN_*` variables) |
//! | 3 | the input uses a feature Kiln does not support |
//! | 4 | a resource limit was hit (out of memory, disk full, a CPU without the artifact's features) |
//! | 5 | results differ from the expected or reference values (`run --expected`, `verify`) |
//!
//! Diagnostics go to stderr as text, or with `--message-format=json` (any
//! subcommand) as one JSON object per line ([`report`]). Logging goes to
//! stderr through `tracing`: `-v` shows info, `-vv` debug, `-vvv` trace;
//! the `KILN_LOG` environment variable (an `EnvFilter` directive such as
//! `kiln_passes=debug`) overrides the verbosity flags. Every `KILN_*`
//! variable is checked before a command runs ([`env`]).

mod cmd;
mod diagnostics;
mod env;
mod error;
mod io;
mod progress;
mod report;
mod version;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use error::{CliError, Code};
use report::MessageFormat;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Examples:
  kiln inspect model.onnx                    # inputs/outputs, ops, parameters, unsupported ops
  kiln compile model.onnx -o model.so        # shared library + model.h
  kiln compile model.onnx --emit=mlir -o -   # stop after a stage: kir, dot, mlir, llvm, asm, obj
  kiln run model.so --input-dir test_data_set_0 --output-dir out/
  kiln bench model.so --threads 2           # a table; --format json for JSON lines
  kiln run model.so --input-dir in/ --output-dir out/ --expected ref/   # check outputs
  kiln verify model.onnx                     # first node whose compiled output diverges
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
  4  resource limit (or a CPU without the artifact's features)
  5  results differ (run --expected, verify)
Every error has a stable code E<exit code>NNN (kiln config --error-codes, docs/errors.md);
--message-format=json prints each diagnostic as one JSON object on stderr.

Environment (checked before any command runs):
  KILN_LOG              log filter (e.g. `debug`, `kiln_passes=trace`); overrides -v
  KILN_NUM_THREADS      runtime threads (a positive integer)
  KILN_PARALLEL_MIN_US  serial µs from which a loop runs on the pool (0-999999999)
  KILN_RUNTIME_DIR      folder of libkiln_runtime.a for --emit=obj and kiln config";

/// Kiln: an ahead-of-time compiler for ML models.
#[derive(Debug, Parser)]
#[command(name = "kiln", about, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Diagnostics on stderr as text, or as one JSON object per line
    /// (level, code, exit_code, message, file, node, line, column).
    #[arg(long, value_enum, global = true, default_value_t = MessageFormat::Human)]
    message_format: MessageFormat,

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
    /// Measure latency (a table, or JSON lines comparable with scripts/bench_ort.py).
    Bench(cmd::bench::BenchArgs),
    /// Compare the compiled model with a reference, node by node; name the first that diverges.
    Verify(cmd::verify::VerifyArgs),
    /// Print how to build against the runtime (--cflags, --libs, ...).
    Config(cmd::config::ConfigArgs),
}

/// Logging to stderr: text, or JSON lines with `--message-format=json`.
/// `KILN_LOG` was checked by [`env::check`] already.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = env::get("KILN_LOG")
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // Colours only on a terminal: logs piped to a file or a test stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(true)
        .without_time();
    if report::json() {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Parses the arguments. A usage error is reported in the chosen message
/// format with code E2001 (exit 2); `--help` and `--version` print and exit 0.
fn parse_args() -> Result<Cli, CliError> {
    let command = Cli::command()
        .version(version::short())
        .long_version(version::long());
    let matches = command.try_get_matches();
    let parsed = matches.and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => Ok(cli),
        Err(e) => {
            use clap::error::ErrorKind as K;
            let informational = matches!(e.kind(), K::DisplayHelp | K::DisplayVersion);
            if informational || !report::json() {
                e.exit();
            }
            // clap's message without its "error: " prefix and usage lines.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            Err(CliError::new(Code::Usage, first.to_owned()))
        }
    }
}

fn run() -> Result<(), CliError> {
    let cli = parse_args()?;
    env::check()?;
    init_logging(cli.verbose);
    match cli.command {
        Command::Opt(args) => cmd::opt::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Import(args) => cmd::import::run(args),
        Command::Compile(args) => cmd::compile::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Config(args) => cmd::config::run(args),
    }
}

fn main() -> ExitCode {
    report::set_format(report::format_from_args(std::env::args_os()));
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report::error(&e);
            ExitCode::from(e.class().code())
        }
    }
}
