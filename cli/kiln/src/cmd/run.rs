//! `kiln run`: run an artifact (`.so`) or a model (`.onnx`/`.kir`, compiled
//! into a temporary directory first, or interpreted with `--interpret`) on
//! tensors from `.npy`/`.pb` files, writing the outputs into a directory.

use crate::cmd::compile::{driver_error, load_options, TargetArgs};
use crate::cmd::import::InputShapeArgs;
use crate::error::{CliError, ExitClass};
use clap::{Args, ValueEnum};
use kiln_driver::tensors::{read_tensor, read_test_set, write_outputs};
use kiln_driver::{HostTensor, OutputFormat, Session, SessionOptions};
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

    /// Reads the inputs for `session`.
    pub fn read(&self, session: &Session) -> Result<Vec<HostTensor>, CliError> {
        if let Some(dir) = &self.input_dir {
            return read_input_dir(dir, session);
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

/// Reads `DIR/input_<i>.pb` for every model input.
pub fn read_input_dir(dir: &Path, session: &Session) -> Result<Vec<HostTensor>, CliError> {
    let names = session.input_names();
    let inputs = read_test_set(dir, "input", &names).map_err(driver_error)?;
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

/// Arguments of `kiln run`.
#[derive(Debug, Args)]
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

/// Opens a session for `run`/`bench`.
pub fn open(
    model: &Path,
    interpret: bool,
    target: &TargetArgs,
    shapes: &InputShapeArgs,
) -> Result<Session, CliError> {
    let opts = SessionOptions {
        interpret,
        load: load_options(shapes)?,
        target: Some(target.target()?),
        opt_level: target.opt_level(),
    };
    Session::open(model, &opts).map_err(driver_error)
}

/// Runs `kiln run`.
pub fn run(args: RunArgs) -> Result<(), CliError> {
    if args.inputs.is_empty() {
        return Err(CliError::new(
            ExitClass::Invalid,
            "give the inputs with --input NAME=PATH or --input-dir DIR",
        ));
    }
    let session = open(&args.model, args.interpret, &args.target, &args.shapes)?;
    session.set_num_threads(args.threads);
    let inputs = args.inputs.read(&session)?;
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
