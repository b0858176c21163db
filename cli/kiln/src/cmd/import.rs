//! `kiln import`: convert an ONNX model to Kiln IR text plus a weights side
//! file.
//!
//! ```text
//! kiln import model.onnx -o model.kir [--input-shape x=1x3x224x224]... [--inline-weights 64]
//! ```
//!
//! Weights of at most `--inline-weights` bytes are printed inline; every
//! larger one is streamed from the model's memory map into
//! `model.kir.weights` (next to `-o`) at a 64-byte aligned offset, and the
//! text refers to it as `file<"model.kir.weights", offset = N>`, so
//! `kiln opt model.kir` reads it back without copying.
//!
//! Invariant: both files are written to temporary files in the output's
//! folder and renamed only when everything succeeded; a failure leaves
//! neither behind (and the outputs of an earlier run untouched).
//!
//! Also home of what other subcommands share for `.onnx` inputs: the
//! `--input-shape` option ([`InputShapeArgs`]).

use crate::error::{driver_error, onnx_error, CliError, Code};
use clap::Args;
use kiln_ir::text::PrintOptions;
use kiln_onnx::import::ImportOptions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `--input-shape NAME=DIMS`, repeatable; shared by every subcommand that
/// reads `.onnx` files.
#[derive(Debug, Args, Clone, Default)]
pub struct InputShapeArgs {
    /// Fix an input's shape, e.g. `x=1x3x224x224` (repeatable). Symbolic
    /// extents it binds (such as `batch`) are substituted in every input.
    #[arg(long = "input-shape", value_name = "NAME=DIMS", value_parser = kiln_onnx::parse_input_shape)]
    pub input_shapes: Vec<(String, Vec<u64>)>,
}

impl InputShapeArgs {
    /// Import options with these shapes; a name given twice is a usage error.
    pub fn import_options(&self) -> Result<ImportOptions, CliError> {
        let mut shapes = BTreeMap::new();
        for (name, dims) in &self.input_shapes {
            if shapes.insert(name.clone(), dims.clone()).is_some() {
                return Err(CliError::new(
                    Code::Usage,
                    format!("--input-shape given twice for input '{name}'"),
                ));
            }
        }
        Ok(ImportOptions {
            input_shapes: shapes,
            ..ImportOptions::default()
        })
    }
}

/// Arguments of `kiln import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The ONNX model.
    pub model: PathBuf,

    /// Output .kir file; large weights go to `<OUTPUT>.weights` beside it.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    #[command(flatten)]
    pub shapes: InputShapeArgs,

    /// Print weights of at most this many bytes inline; larger ones go to
    /// the weights side file.
    #[arg(long, value_name = "BYTES", default_value_t = PrintOptions::default().inline_limit)]
    pub inline_weights: usize,
}

/// Runs `kiln import`.
pub fn run(args: ImportArgs) -> Result<(), CliError> {
    let opts = args.shapes.import_options()?;
    if args.output == Path::new("-") {
        return Err(CliError::new(
            Code::Usage,
            "-o must name a file: the weights side file is written next to it",
        ));
    }
    tracing::info!(model = %args.model.display(), output = %args.output.display(), "import");
    let graph = kiln_onnx::import_file(&args.model, &opts).map_err(onnx_error)?;
    if let Err(errs) = kiln_ir::verify(&graph) {
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        return Err(CliError::new(
            Code::Internal,
            format!(
                "{}: the imported graph does not verify (a bug in Kiln's importer):\n{}",
                args.model.display(),
                msgs.join("\n")
            ),
        ));
    }
    // The side file is staged and renamed before the .kir, so a .kir never
    // points at a missing or partial weights file.
    let files =
        kiln_driver::write_kir(&graph, &args.output, args.inline_weights).map_err(driver_error)?;
    for f in files {
        tracing::info!(file = %f.display(), "wrote");
    }
    Ok(())
}
