//! `kiln compile`: compile a model (`.onnx` or `.kir`) into an artifact
//! (`model.so` + `model.h`), a relocatable object, or any intermediate
//! stage's text (`--emit`).
//!
//! Outputs are written atomically by the driver: a failed compile leaves
//! nothing at `-o`.
//!
//! `--freeze-input NAME=PATH` turns a graph input into a constant holding
//! the tensor in PATH (`.npy` or `.pb`) before the graph pipeline, so that
//! constant folding and shape inference can make what it decides static
//! (a Reshape's target shape, a reduction's axes). Without it, inputs stay
//! inputs: unlike `kiln run` on a model file, `kiln compile` never
//! specializes an artifact to values it was not given.

use crate::cmd::import::InputShapeArgs;
use crate::error::{CliError, ExitClass};
use clap::{Args, ValueEnum};
use kiln_driver::{CompileOptions, DriverError, Emit, ErrorKind, LoadOptions, WeightsMode};
use std::io::Write;
use std::path::PathBuf;

/// `--emit` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EmitArg {
    /// Kiln IR after the graph pipeline.
    Kir,
    /// Graphviz picture of the graph after the pipeline (fused kernels as clusters).
    Dot,
    /// MLIR from the lowering (linalg on tensors).
    Mlir,
    /// Optimized LLVM IR.
    Llvm,
    /// Target assembly.
    Asm,
    /// One relocatable object + model.h, kiln.h, libkiln_runtime.a.
    Obj,
    /// A shared library + model.h.
    Lib,
}

impl From<EmitArg> for Emit {
    fn from(e: EmitArg) -> Emit {
        match e {
            EmitArg::Kir => Emit::Kir,
            EmitArg::Dot => Emit::Dot,
            EmitArg::Mlir => Emit::Mlir,
            EmitArg::Llvm => Emit::Llvm,
            EmitArg::Asm => Emit::Asm,
            EmitArg::Obj => Emit::Obj,
            EmitArg::Lib => Emit::Lib,
        }
    }
}

/// `--weights` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WeightsArg {
    /// In a read-only section of the artifact.
    Embedded,
    /// In `<OUTPUT>.weights` next to the artifact.
    External,
}

/// Target selection shared by `compile`, `run` and `bench`.
#[derive(Debug, Args, Clone, Default)]
pub struct TargetArgs {
    /// Target: host (default), x86-64[-vN], x86_64[:CPU], aarch64-linux-gnu[:CPU].
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,

    /// LLVM CPU: native (default on the host), x86-64-v3, skylake, ...
    #[arg(long, value_name = "CPU")]
    pub cpu: Option<String>,

    /// LLVM optimisation level (0-3).
    #[arg(short = 'O', long = "opt-level", value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(0..=3))]
    pub opt_level: u8,
}

impl TargetArgs {
    /// The code generation target.
    pub fn target(&self) -> Result<kiln_driver::Target, CliError> {
        kiln_driver::target_from_args(self.target.as_deref(), self.cpu.as_deref())
            .map_err(driver_error)
    }

    /// The LLVM optimisation level.
    pub fn opt_level(&self) -> kiln_driver::OptLevel {
        use kiln_driver::OptLevel;
        match self.opt_level {
            0 => OptLevel::O0,
            1 => OptLevel::O1,
            2 => OptLevel::O2,
            _ => OptLevel::O3,
        }
    }
}

/// Arguments of `kiln compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The model (.onnx or .kir).
    pub model: PathBuf,

    /// Output file (required for obj and lib; text stages go to stdout
    /// when absent or `-`).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// What to produce.
    #[arg(long, value_enum, default_value = "lib")]
    pub emit: EmitArg,

    /// Where the weights go.
    #[arg(long, value_enum, default_value = "embedded")]
    pub weights: WeightsArg,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub shapes: InputShapeArgs,

    /// Directory holding libkiln_runtime.a for --emit=obj (default:
    /// $KILN_RUNTIME_DIR, then next to the kiln binary).
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// Compile a graph input in as a constant holding the tensor in PATH
    /// (.npy or .pb), e.g. a Reshape's shape or a reduction's axes
    /// (repeatable). The artifact then no longer has that input.
    #[arg(long = "freeze-input", value_name = "NAME=PATH")]
    pub freeze_inputs: Vec<String>,

    /// Print the time of each stage to stderr.
    #[arg(long)]
    pub time: bool,
}

/// Reads the tensors named by `--freeze-input NAME=PATH` arguments.
fn read_frozen(specs: &[String]) -> Result<Vec<kiln_driver::HostTensor>, CliError> {
    specs
        .iter()
        .map(|spec| {
            let (name, path) = spec
                .split_once('=')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .ok_or_else(|| {
                    CliError::new(
                        ExitClass::Invalid,
                        format!("bad --freeze-input '{spec}' (expected NAME=PATH)"),
                    )
                })?;
            kiln_driver::tensors::read_tensor(std::path::Path::new(path), name)
                .map_err(driver_error)
        })
        .collect()
}

/// Maps a driver error to the CLI's exit classes.
pub fn driver_error(e: DriverError) -> CliError {
    let class = match e.kind() {
        ErrorKind::Internal => ExitClass::Internal,
        ErrorKind::InvalidInput => ExitClass::Invalid,
        ErrorKind::Unsupported => ExitClass::Unsupported,
        ErrorKind::ResourceLimit => ExitClass::Resource,
    };
    CliError::new(class, e.to_string())
}

/// Load options from `--input-shape`.
pub fn load_options(shapes: &InputShapeArgs) -> Result<LoadOptions, CliError> {
    Ok(LoadOptions {
        input_shapes: shapes.import_options()?.input_shapes,
        input_values: Vec::new(),
    })
}

/// Runs `kiln compile`.
pub fn run(args: CompileArgs) -> Result<(), CliError> {
    let emit = Emit::from(args.emit);
    let output = args.output.filter(|o| o.as_os_str() != "-");
    if output.is_none() && !emit.is_text() {
        return Err(CliError::new(
            ExitClass::Invalid,
            "-o FILE is required for --emit=obj and --emit=lib",
        ));
    }
    let target = args.target.target()?;
    let frozen = read_frozen(&args.freeze_inputs)?;
    let mut load = load_options(&args.shapes)?;
    // Frozen inputs are given to the loader so that ONNX control flow
    // depending on them is expanded while importing.
    load.input_values = frozen.clone();
    let graph = kiln_driver::load(&args.model, &load).map_err(driver_error)?;
    if !frozen.is_empty() {
        let names: Vec<&str> = frozen.iter().map(|t| t.name.as_str()).collect();
        tracing::info!(inputs = %names.join(", "), "froze inputs into constants");
    }
    let mut opts = CompileOptions::new(target, output);
    opts.emit = emit;
    opts.opt_level = args.target.opt_level();
    opts.runtime_dir = args.runtime_dir;
    opts.weights = match args.weights {
        WeightsArg::Embedded => WeightsMode::Embedded,
        WeightsArg::External => WeightsMode::External,
    };
    tracing::info!(model = %args.model.display(), target = %opts.target, "compile");
    let artifacts = kiln_driver::compile(graph, &opts).map_err(driver_error)?;
    if args.time {
        eprint!("{}", artifacts.timing_table());
    }
    if let Some(text) = artifacts.text {
        let mut out = std::io::stdout().lock();
        out.write_all(&text)
            .and_then(|()| out.flush())
            .map_err(|e| CliError::io("write to stdout", &e))?;
    }
    for f in &artifacts.files {
        tracing::info!(file = %f.display(), "wrote");
    }
    Ok(())
}
