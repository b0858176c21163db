//! `kiln run`: run an artifact or a model (ONNX or Kiln IR, compiled into a
//! temporary directory first, or interpreted with `--interpret`; told apart
//! by content, not by name) on tensors from `.npy`/`.pb` files, writing the
//! outputs into a directory and, with `--expected DIR`, checking them
//! against the files there (exit 5 naming the output and the first
//! mismatching index, as `iree-run-module --expected_output` does).
//!
//! The temporary artifact is specialized to the given values of
//! shape-defining inputs (those feeding Reshape's shape, a reduction's axes,
//! TopK's k, ...: the ops' `static_operands`) and to the given shapes of
//! dynamic inputs; `-v` logs which inputs were specialized. A deployed
//! artifact built with `kiln compile` keeps them as inputs unless
//! `--freeze-input` is given.

use crate::cmd::compile::{load_options, QuantizeArgs, TargetArgs};
use crate::cmd::import::InputShapeArgs;
use crate::error::{driver_error, CliError, Code, Diag};
use clap::{Args, ValueEnum};
use kiln_driver::tensors::{
    compare, read_tensor, read_test_set, sanitize_file_name, write_outputs, Tolerance,
};
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
                        Code::Usage,
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
            Code::BadInputs,
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
    /// An artifact or a model (ONNX or Kiln IR), told apart by content.
    pub model: PathBuf,

    #[command(flatten)]
    pub inputs: InputArgs,

    /// Directory for the outputs (created if needed).
    #[arg(long, value_name = "DIR")]
    pub output_dir: PathBuf,

    /// Check the outputs against DIR/<output name>.npy (or DIR/output_<i>.pb,
    /// the ONNX test-set layout); exit 5 naming the first mismatch.
    #[arg(long, value_name = "DIR")]
    pub expected: Option<PathBuf>,

    #[command(flatten)]
    pub tolerance: ToleranceArgs,

    /// Output file format.
    #[arg(long, value_enum, default_value = "npy")]
    pub output_format: FormatArg,

    /// Run the reference interpreter instead of compiled code.
    #[arg(long)]
    pub interpret: bool,

    #[command(flatten)]
    pub device: DeviceArgs,

    /// Runtime threads (0 = KILN_NUM_THREADS or all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub shapes: InputShapeArgs,

    /// Weight quantization of a model file, as `kiln compile --quantize`
    /// (with --interpret the interpreter runs the quantized weights).
    #[command(flatten)]
    pub quantize: QuantizeArgs,
}

/// `--rtol`/`--atol`, shared by `run --expected` and `verify`.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ToleranceArgs {
    /// Relative tolerance for floats: |got - expected| <= atol + rtol * |expected|
    /// (default by dtype: f32 1e-4, f16 1e-2, bf16 2e-2, f64 1e-9).
    #[arg(long, value_name = "X")]
    pub rtol: Option<f64>,

    /// Absolute tolerance for floats (default by dtype: f32 1e-5, f16 1e-3,
    /// bf16 1e-2, f64 1e-12). Integers and bools must match exactly; NaN
    /// matches only NaN.
    #[arg(long, value_name = "X")]
    pub atol: Option<f64>,
}

impl ToleranceArgs {
    /// Negative or NaN values are usage errors.
    pub fn check(&self) -> Result<(), CliError> {
        for (flag, v) in [("--rtol", self.rtol), ("--atol", self.atol)] {
            if v.is_some_and(|v| v.is_nan() || v < 0.0) {
                return Err(CliError::new(
                    Code::Usage,
                    format!("{flag} must be a non-negative number"),
                ));
            }
        }
        Ok(())
    }

    /// The tolerance for `dtype`: the dtype's default with the given parts
    /// replaced.
    pub fn for_dtype(&self, dtype: kiln_ir::DType) -> Tolerance {
        Tolerance::for_dtype(dtype).with(self.rtol, self.atol)
    }
}

/// The device a GPU artifact runs on, for `run` and `bench`.
#[derive(Debug, Args, Default)]
pub struct DeviceArgs {
    /// Run a GPU artifact on device N of its driver (CUDA ordinal, HIP device, Vulkan
    /// physical device index); default: KILN_DEVICE, else the driver's first device (for
    /// Vulkan the first discrete GPU). CPU artifacts ignore it.
    #[arg(long = "device", value_name = "N")]
    pub index: Option<u32>,
}

/// Session options from the target, shape, device and quantization flags.
pub fn session_options(
    interpret: bool,
    target: &TargetArgs,
    shapes: &InputShapeArgs,
    device: &DeviceArgs,
    quantize: &QuantizeArgs,
) -> Result<SessionOptions, CliError> {
    if quantize.quant_report.is_some() {
        return Err(CliError::new(
            Code::Usage,
            "--quant-report is an option of kiln compile (it reports on the compiled weights)",
        ));
    }
    Ok(SessionOptions {
        interpret,
        load: load_options(shapes)?,
        target: Some(target.target()?),
        opt_level: target.opt_level(),
        on_stage: None,
        device: device.index,
        quantize: quantize.options()?,
    })
}

/// Loads an artifact or model for `run`/`bench` (compiled when
/// [`open_session`] gets the inputs).
pub fn prepare(
    model: &Path,
    interpret: bool,
    target: &TargetArgs,
    shapes: &InputShapeArgs,
    device: &DeviceArgs,
    quantize: &QuantizeArgs,
) -> Result<Prepared, CliError> {
    let opts = session_options(interpret, target, shapes, device, quantize)?;
    Prepared::open(model, &opts).map_err(|e| driver_error(e).in_file(model))
}

/// Opens the session, compiling a model specialized to `inputs` when they
/// are given (with a progress display on a terminal), and logs what was
/// specialized.
pub fn open_session(
    model: &Path,
    mut prepared: Prepared,
    inputs: Option<&[HostTensor]>,
) -> Result<Session, CliError> {
    let progress = prepared
        .needs_compile()
        .then(|| crate::progress::Progress::start("compiling the model"));
    if let Some(p) = &progress {
        prepared.set_stage_hook(p.hook());
    }
    let session = prepared.into_session(inputs);
    drop(progress);
    let session = session.map_err(|e| driver_error(e).in_file(model))?;
    if let Some(cpu) = session.cpu() {
        tracing::info!(cpu, "loaded the build for this CPU");
    }
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
            Code::Usage,
            "give the inputs with --input NAME=PATH or --input-dir DIR",
        ));
    }
    args.tolerance.check()?;
    let prepared = prepare(
        &args.model,
        args.interpret,
        &args.target,
        &args.shapes,
        &args.device,
        &args.quantize,
    )?;
    let inputs = args.inputs.read(&prepared.input_names())?;
    // Read before running: a missing expected file fails fast.
    let expected = match &args.expected {
        Some(dir) => Some(read_expected(dir, &prepared.output_names())?),
        None => None,
    };
    let session = open_session(&args.model, prepared, Some(&inputs))?;
    session
        .set_num_threads(args.threads)
        .map_err(driver_error)?;
    let outputs = session.run(&inputs).map_err(driver_error)?;
    let format = match args.output_format {
        FormatArg::Npy => OutputFormat::Npy,
        FormatArg::Pb => OutputFormat::Pb,
    };
    let files = write_outputs(&args.output_dir, &outputs, format).map_err(driver_error)?;
    for f in files {
        tracing::info!(file = %f.display(), "wrote");
    }
    match expected {
        Some(expected) => check_expected(&expected, &outputs, &args.tolerance),
        None => Ok(()),
    }
}

/// The expected value of each output, with the file it came from:
/// `DIR/<sanitized output name>.npy`, else `DIR/output_<i>.pb`.
fn read_expected(dir: &Path, names: &[String]) -> Result<Vec<(PathBuf, HostTensor)>, CliError> {
    if !dir.is_dir() {
        return Err(CliError::at_file(
            Code::File,
            format!("--expected {} is not a folder", dir.display()),
            dir,
        ));
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let npy = dir.join(format!("{}.npy", sanitize_file_name(name)));
            let pb = dir.join(format!("output_{i}.pb"));
            let path = [npy.clone(), pb.clone()]
                .into_iter()
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    CliError::at_file(
                        Code::File,
                        format!(
                            "no expected value for output '{name}': neither {} nor {} exists",
                            npy.display(),
                            pb.display()
                        ),
                        dir,
                    )
                })?;
            let t = read_tensor(&path, name).map_err(driver_error)?;
            Ok((path, t))
        })
        .collect()
}

/// Compares every output with its expected value; one diagnostic per
/// mismatching output, naming it and its first mismatching elements.
fn check_expected(
    expected: &[(PathBuf, HostTensor)],
    outputs: &[HostTensor],
    tol: &ToleranceArgs,
) -> Result<(), CliError> {
    let mut diags = Vec::new();
    for ((path, want), got) in expected.iter().zip(outputs) {
        let t = tol.for_dtype(want.dtype);
        if let Some(diff) = compare(want, got, Some(t), 3) {
            let message = format!(
                "output '{}' differs from {} (rtol {:e}, atol {:e}): {diff}",
                got.name,
                path.display(),
                t.rtol,
                t.atol
            );
            diags.push(
                Diag::error(Code::OutputMismatch, message)
                    .file(path.display().to_string())
                    .node(got.name.clone()),
            );
        }
    }
    if diags.is_empty() {
        tracing::info!(
            outputs = expected.len(),
            "every output matches the expected values"
        );
        return Ok(());
    }
    let message = diags
        .iter()
        .map(|d| d.message.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    Err(CliError::with_diags(Code::OutputMismatch, message, diags))
}
