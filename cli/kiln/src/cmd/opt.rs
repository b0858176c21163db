//! `kiln opt`: parse a `.kir` file, run a pass pipeline, print the result.
//!
//! With `--split-input-file` each `// -----` chunk is processed on its own
//! and the outputs are joined with the same marker. With
//! `--verify-diagnostics` errors are compared against `expected-error`
//! comments instead of failing the run (see [`crate::diagnostics`]).
//! Nothing is written unless every chunk succeeded. An ONNX input (told by
//! content, like every model file) is
//! imported first (`--input-shape` fixes its input shapes).

use crate::diagnostics::{self, Chunk, Diagnostic};
use crate::error::{driver_error, onnx_error, CliError, Code, Diag};
use crate::io;
use clap::Args;
use kiln_ir::text::{parse, print_with, ParseError, PrintOptions};
use kiln_passes::pipeline::NAMED;
use kiln_passes::{ManagerOptions, PassError, PassManager, Pipeline, TargetFacts, PASSES};
use std::path::PathBuf;

/// Arguments of `kiln opt`.
#[derive(Debug, Args)]
pub struct OptArgs {
    /// Input .kir file, or `-` for stdin.
    #[arg(required_unless_present = "list_passes")]
    pub input: Option<PathBuf>,

    /// Comma-separated passes or named pipelines (see --list-passes).
    #[arg(long, value_name = "PIPELINE", default_value = "")]
    pub passes: String,

    /// Output file (written atomically); stdout when absent or `-`.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print the IR to stderr after every pass.
    #[arg(long)]
    pub print_after_all: bool,

    /// Print per-pass timing to stderr.
    #[arg(long)]
    pub pass_timing: bool,

    /// Print weights of at most this many bytes inline; larger ones are
    /// printed as file references or elided summaries.
    #[arg(long, value_name = "BYTES", default_value_t = PrintOptions::default().inline_limit)]
    pub inline_weights: usize,

    /// Check errors against `// expected-error {{...}}` comments; exit 0
    /// when they match exactly, 1 otherwise.
    #[arg(long)]
    pub verify_diagnostics: bool,

    /// Process each `// -----`-separated chunk of the input on its own.
    #[arg(long)]
    pub split_input_file: bool,

    /// Run the verifier on the input and after every pass (default: on in
    /// debug builds, off in release builds).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub verify_each: Option<bool>,

    /// List the available passes and pipelines, then exit.
    #[arg(long)]
    pub list_passes: bool,

    /// Input shapes for an `.onnx` input.
    #[command(flatten)]
    pub shapes: crate::cmd::import::InputShapeArgs,

    /// Give the passes the facts of this target's kernels (conv layout,
    /// panel width), as `kiln compile` does: host, x86-64[-vN],
    /// x86_64[:CPU], aarch64-linux-gnu[:CPU]. Without it, the layout and
    /// packing passes leave the graph alone.
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,

    /// LLVM CPU of --target (native, x86-64-v3, skylake, ...).
    #[arg(long, value_name = "CPU", requires = "target")]
    pub cpu: Option<String>,

    /// Options of `quantize-weights` (it does nothing without --quantize;
    /// with it, a pipeline without quantize-weights gets one, as in `kiln
    /// compile`).
    #[command(flatten)]
    pub quantize: crate::cmd::compile::QuantizeArgs,
}

/// Why one chunk failed.
struct ChunkFailure {
    code: Code,
    diags: Vec<Diagnostic>,
}

impl ChunkFailure {
    /// Prints the diagnostics (text with source lines, or JSON).
    fn report(&self, file: &str) {
        for d in &self.diags {
            let json = Diag::error(self.code, d.message.clone())
                .file(file)
                .at(d.line, d.col);
            crate::report::diag(&json, &d.render(file));
        }
    }
}

fn list_passes() -> String {
    let mut s = String::from("Passes:\n");
    for p in PASSES {
        s.push_str(&format!("  {:<18} {}\n", p.name, p.summary));
    }
    s.push_str("Pipelines:\n");
    for p in NAMED {
        s.push_str(&format!(
            "  {:<18} {}\n  {:<18} = {}\n",
            p.name,
            p.summary,
            "",
            p.passes.join(",")
        ));
    }
    s
}

fn parse_diag(e: &ParseError, chunk: &Chunk) -> Diagnostic {
    Diagnostic {
        line: e.line + chunk.line_offset,
        col: e.col,
        message: e.message.clone(),
        source_line: e.source_line.clone(),
    }
}

/// Parses and optimizes one chunk; returns the optimized graph.
fn process_chunk(
    args: &OptArgs,
    chunk: &Chunk,
    input: &io::Input,
    pipeline: &Pipeline,
    facts: &TargetFacts,
    print_opts: &PrintOptions,
) -> Result<kiln_ir::Graph, ChunkFailure> {
    let parsed =
        parse(&chunk.text, &input.name, Some(&input.base_dir)).map_err(|errs| ChunkFailure {
            code: Code::KirSyntax,
            diags: errs.iter().map(|e| parse_diag(e, chunk)).collect(),
        })?;
    optimize(args, parsed.graph, pipeline, facts, print_opts)
}

/// A failure without a source location.
fn unlocated(code: Code, message: String) -> ChunkFailure {
    ChunkFailure {
        code,
        diags: vec![Diagnostic {
            line: 0,
            col: 0,
            message,
            source_line: String::new(),
        }],
    }
}

/// Runs the pipeline on a parsed or imported graph.
fn optimize(
    args: &OptArgs,
    mut g: kiln_ir::Graph,
    pipeline: &Pipeline,
    facts: &TargetFacts,
    print_opts: &PrintOptions,
) -> Result<kiln_ir::Graph, ChunkFailure> {
    let mut options = ManagerOptions::default();
    if let Some(v) = args.verify_each {
        options.verify_each = v;
    }
    options.pass.target = facts.clone();
    options.pass.quantize = args
        .quantize
        .options()
        .map_err(|e| unlocated(Code::Usage, e.to_string()))?;
    let mut pm = PassManager::new(pipeline.clone(), options);
    if args.print_after_all {
        pm = pm.after_each_pass(|name, g| {
            eprint!(
                "// -----// IR Dump After {name} //----- //\n{}",
                print_with(g, print_opts)
            );
        });
    }
    let report = pm.run(&mut g).map_err(|e| {
        let code = match e {
            PassError::Unsupported { .. } => Code::Unsupported,
            PassError::Verify { .. } => Code::Internal,
        };
        // Pass errors have no source location: node indices no longer
        // match the text once a pass ran.
        unlocated(code, e.to_string())
    })?;
    if args.pass_timing {
        eprint!("{}", report.timing_table());
    }
    Ok(g)
}

/// Writes the result: a file gets its weights beside it (so that the `.kir`
/// compiles again from any folder), stdout gets the text alone.
fn emit(
    args: &OptArgs,
    graphs: &[kiln_ir::Graph],
    print_opts: &PrintOptions,
) -> Result<(), CliError> {
    match args
        .output
        .as_deref()
        .filter(|p| *p != std::path::Path::new("-"))
    {
        Some(path) if graphs.len() == 1 => {
            kiln_driver::write_kir(&graphs[0], path, print_opts.inline_limit)
                .map_err(driver_error)?;
            Ok(())
        }
        out => {
            let texts: Vec<String> = graphs.iter().map(|g| print_with(g, print_opts)).collect();
            let text = texts.join(&format!("{}\n", diagnostics::SPLIT_MARKER));
            io::write_output(out, text.as_bytes())
        }
    }
}

/// Runs `kiln opt`.
pub fn run(args: OptArgs) -> Result<(), CliError> {
    if args.list_passes {
        return io::write_output(None, list_passes().as_bytes());
    }
    let mut pipeline =
        Pipeline::parse(&args.passes).map_err(|e| CliError::new(Code::Usage, e.to_string()))?;
    let Some(path) = &args.input else {
        return Err(CliError::new(Code::Usage, "no input file"));
    };
    // A bad --quantize is a usage error before any chunk is read; a scheme
    // puts quantize-weights into a pipeline that lacks it (as `kiln
    // compile` does), so `--quantize` never passes silently.
    if args.quantize.options()?.scheme.is_some() {
        pipeline = pipeline.with_quantization();
    }
    let facts = match &args.target {
        Some(t) => kiln_driver::target_facts(
            &kiln_driver::target_from_args(Some(t), args.cpu.as_deref()).map_err(driver_error)?,
        ),
        None => TargetFacts::default(),
    };
    let print_opts = PrintOptions {
        inline_limit: args.inline_weights,
    };
    let kind = if path == std::path::Path::new("-") {
        kiln_driver::load::FileKind::Kir
    } else {
        match kiln_driver::load::detect(path) {
            Ok(kind) => kind,
            // Reading it again below reports the problem with the file.
            Err(kiln_driver::DriverError::Io { .. }) => kiln_driver::load::FileKind::Kir,
            Err(e) => return Err(driver_error(e)),
        }
    };
    if kind == kiln_driver::load::FileKind::Artifact {
        return Err(CliError::at_file(
            Code::Invalid,
            format!(
                "{}: a compiled artifact, not Kiln IR or an ONNX model",
                path.display()
            ),
            path,
        ));
    }
    if kind == kiln_driver::load::FileKind::Onnx {
        // An ONNX model is imported (whole; --split-input-file does not apply).
        let opts = args.shapes.import_options()?;
        let g = kiln_onnx::import_file(path, &opts).map_err(onnx_error)?;
        let g = optimize(&args, g, &pipeline, &facts, &print_opts).map_err(|f| {
            f.report(&path.display().to_string());
            CliError::reported(f.code)
        })?;
        return emit(&args, &[g], &print_opts);
    }
    let input = io::read_input(path)?;
    tracing::info!(input = %input.name, pipeline = %pipeline, "opt");

    let mut outputs = Vec::new();
    let mut failure: Option<Code> = None;
    let mut problems = Vec::new();
    for chunk in diagnostics::split_chunks(&input.text, args.split_input_file) {
        let result = process_chunk(&args, &chunk, &input, &pipeline, &facts, &print_opts);
        if args.verify_diagnostics {
            let expected = diagnostics::parse_expectations(&chunk)
                .map_err(|m| CliError::new(Code::Invalid, format!("{}: {m}", input.name)))?;
            let diags = match result {
                Ok(text) => {
                    outputs.push(text);
                    Vec::new()
                }
                Err(f) => f.diags,
            };
            problems.extend(diagnostics::check(&input.name, &diags, &expected));
        } else {
            match result {
                Ok(text) => outputs.push(text),
                Err(f) => {
                    f.report(&input.name);
                    // The most severe class wins: internal over the rest.
                    failure = Some(match failure {
                        Some(Code::Internal) => Code::Internal,
                        _ => f.code,
                    });
                }
            }
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            let d = Diag::error(Code::DiagnosticsMismatch, p.clone()).file(input.name.clone());
            crate::report::diag(&d, p);
        }
        return Err(CliError::reported(Code::DiagnosticsMismatch));
    }
    if let Some(code) = failure {
        return Err(CliError::reported(code));
    }
    emit(&args, &outputs, &print_opts)
}
