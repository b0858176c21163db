//! `kiln run`: run an artifact (`.so`) or a model (`.onnx`/`.kir`, compiled
//! into a temporary directory first, or interpreted with `--interpret`) on
//! tensors from `.npy`/`.pb` files, writing the outputs into a directory.
//!
//! The temporary artifact is specialized to the given values of
//! shape-defining inputs (those feeding Reshape's shape, a reduction's axes,
//! TopK's k, ...: the ops' `static_operands`) and to the given shapes of
//! dynamic inputs; `-v` logs which inputs were specialized. A deployed
//! artifact built with `kiln compile` keeps them as inputs unless
//! `--freeze-input` is given.

use crate::cmd::compile::{driver_error, load_options, TargetArgs};
use crate::cmd::import::InputShapeArgs;
use crate::error::{CliError, ExitClass};
use clap::{Args, ValueEnum};
use kiln_driver::tensors::{read_tensor, read_test_set, write_outputs};
use kiln_driver::{HostTensor, OutputFormat, Prepared, Session, SessionOptions};
use std::path::{Path, PathBuf};

/// `--output-format` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// `OUT/<output name>.npy`.
    Npy,
    /// `OUT/output_<i>.pb` (ONNX test-set layout).
    Pb,
}

/// Where inputs come from; shared by `run` and `bench`.
#[derive(Debug, Args, Clone, Default)]
pub struct InputArgs {
    /// An input tensor file (.npy or .pb), repeatable.
    #[arg(long = "input", value_name = "NAME=PATH")]
    pub inputs: Vec<String>,

    /// A directory with input_0.pb, input_1.pb, ... in graph-input order
    /// (the ONNX test-set layout).
    #[arg(long, value_name = "DIR", conflicts_with = "inputs")]
    pub input_dir: Option<PathBuf>,
}

impl InputArgs {
    /// Whether any input was given.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.input_dir.is_none()
    }

    /// Reads the inputs of a model whose inputs are called `names` (in
    /// order; `--input-dir` needs them).
    pub fn read(&self, names: &[String]) -> Result<Vec<HostTensor>, CliError> {
        if let Some(dir) = &self.input_dir {
            return read_input_dir(dir, names);
        }
        self.inputs
            .iter()
            .map(|spec| {
                let (name, path) = spec.split_once('=').ok_or_else(|| {
                    CliError::new(
                        ExitClass::Invalid,
                        format!("bad --input '{spec}' (expected NAME=PATH)"),
                    )
                })?;
                read_tensor(Path::new(path), name).map_err(driver_error)
            })
            .collect()
    }
}

/// Reads `DIR/input_<i>.pb` for every model input (`names`, in order).
pub fn read_input_dir(dir: &Path, names: &[String]) -> Result<Vec<HostTensor>, CliError> {
    let inputs = read_test_set(dir, "input", names).map_err(driver_error)?;
    if inputs.len() != names.len() {
        return Err(CliError::new(
            ExitClass::Invalid,
            format!(
                "{}: the model has {} inputs, the directory has input_0.pb..input_{}.pb",
                dir.display(),
                names.len(),
                inputs.len() as i64 - 1
            ),
        ));
    }
    Ok(inputs)
}

/// How `kiln run` compiles a model file, shown below its options.
const SPECIALIZATION_HELP: &str = "\
A model file (not an artifact) is compiled into a temporary artifact specialized to the given
inputs: inputs whose values decide shapes (Reshape's shape, reduction axes, Slice's starts,
TopK's k, ...) are compiled in as constants, and dynamic input extents take the given shapes
(-v lists the specialized inputs). A deployed artifact built with `kiln compile` keeps them as
inputs unless --freeze-input NAME=PATH is given.";

/// Arguments of `kiln run`.
///
/// A model file (not an artifact) is compiled into a temporary artifact
/// specialized to the given inputs: inputs whose values decide shapes
/// (Reshape's shape, reduction axes, TopK's k, Slice's starts, ...) are
/// compiled in as constants and dynamic input extents take the given
/// shapes (`-v` lists the specialized inputs). `kiln compile` keeps such
/// inputs as inputs unless --freeze-input is given.
#[derive(Debug, Args)]
#[command(after_help = SPECIALIZATION_HELP)]
pub struct RunArgs {
    /// An artifact (.so) or a model (.onnx, .kir).
    pub model: PathBuf,

    #[command(flatten)]
    pub inputs: InputArgs,

    /// Directory for the outputs (created if needed).
    #[arg(long, value_name = "DIR")]
    pub output_dir: PathBuf,

    /// Output file format.
    #[arg(long, value_enum, default_value = "npy")]
    pub output_format: FormatArg,

    /// Run the reference interpreter instead of compiled code.
    #[arg(long)]
    pub interpret: bool,

    /// Runtime threads (0 = KILN_NUM_THREADS or all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub shapes: InputShapeArgs,
}

/// Loads an artifact or model for `run`/`bench` (compiled when
/// [`open_session`] gets the inputs).
pub fn prepare(
    model: &Path,
    interpret: bool,
    target: &TargetArgs,
    shapes: &InputShapeArgs,
) -> Result<Prepared, CliError> {
    let opts = SessionOptions {
        interpret,
        load: load_options(shapes)?,
        target: Some(target.target()?),
        opt_level: target.opt_level(),
    };
    Prepared::open(model, &opts).map_err(driver_error)
}

/// Opens the session, compiling a model specialized to `inputs` when they
/// are given, and logs what was specialized.
pub fn open_session(
    prepared: Prepared,
    inputs: Option<&[HostTensor]>,
) -> Result<Session, CliError> {
    let session = prepared.into_session(inputs).map_err(driver_error)?;
    let specialized = session.specialized_inputs();
    if !specialized.is_empty() {
        tracing::info!(
            inputs = %specialized.join(", "),
            "specialized the temporary artifact to the values of shape-defining inputs"
        );
    }
    let constant = session.constant_outputs();
    if !constant.is_empty() {
        // scripts/conformance.py reads this line (its "Kiln interface").
        tracing::info!(
            outputs = %constant.join(", "),
            "computed at compile time, not by generated code"
        );
    }
    Ok(session)
}

/// Runs `kiln run`.
pub fn run(args: RunArgs) -> Result<(), CliError> {
    if args.inputs.is_empty() {
        return Err(CliError::new(
            ExitClass::Invalid,
            "give the inputs with --input NAME=PATH or --input-dir DIR",
        ));
    }
    let prepared = prepare(&args.model, args.interpret, &args.target, &args.shapes)?;
    let inputs = args.inputs.read(&prepared.input_names())?;
    let session = open_session(prepared, Some(&inputs))?;
    session.set_num_threads(args.threads);
    let outputs = session.run(&inputs).map_err(driver_error)?;
    let format = match args.output_format {
        FormatArg::Npy => OutputFormat::Npy,
        FormatArg::Pb => OutputFormat::Pb,
    };
    let files = write_outputs(&args.output_dir, &outputs, format).map_err(driver_error)?;
    for f in files {
        tracing::info!(file = %f.display(), "wrote");
    }
    Ok(())
}
