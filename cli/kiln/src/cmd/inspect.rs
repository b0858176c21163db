//! `kiln inspect`: summarize an ONNX model without importing or compiling
//! it: inputs and outputs with symbolic extents, op histogram, parameter
//! count and bytes, IR version and opsets, and every unsupported operator.
//! With `--dot`, the model (`.onnx` or `.kir`) is loaded instead and its
//! graph printed as a Graphviz picture.
//!
//! A model Kiln cannot import still inspects successfully (exit 0): the
//! unsupported operators are part of the report. Files that do not load
//! exit 2 (invalid), 3 (unsupported IR version, opset or domain) or 4
//! (over a size limit). Weights stay in their memory maps: the report is
//! built from tensor headers alone.

use crate::error::onnx_error;
use crate::error::CliError;
use crate::io;
use clap::{Args, ValueEnum};
use kiln_onnx::inspect::InspectReport;
use std::path::PathBuf;

/// Output format of `kiln inspect`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// Arguments of `kiln inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ONNX model.
    pub model: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Print a Graphviz (dot) picture of the graph as imported instead of
    /// the summary (the model may also be a .kir file).
    #[arg(long)]
    pub dot: bool,

    /// Input shapes for --dot.
    #[command(flatten)]
    pub shapes: crate::cmd::import::InputShapeArgs,
}

/// Runs `kiln inspect`.
pub fn run(args: InspectArgs) -> Result<(), CliError> {
    if args.dot {
        let load = crate::cmd::compile::load_options(&args.shapes)?;
        let graph = kiln_driver::load(&args.model, &load).map_err(crate::error::driver_error)?;
        return io::write_output(None, kiln_ir::text::print_dot(&graph).as_bytes());
    }
    let model = kiln_onnx::load_model_for_inspection(&args.model).map_err(onnx_error)?;
    let report = InspectReport::new(&model);
    let out = match args.format {
        Format::Text => report.to_text(),
        Format::Json => report.to_json_string(),
    };
    io::write_output(None, out.as_bytes())
}
