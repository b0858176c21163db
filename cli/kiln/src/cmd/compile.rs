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
use crate::error::{driver_error, CliError, Code};
use clap::{Args, ValueEnum};
use kiln_driver::{CompileOptions, Emit, LoadOptions, WeightsMode};
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
    /// GPU (vulkan, metal): the kernels' SPIR-V, as text.
    Spirv,
    /// GPU (metal): the kernels' Metal Shading Language.
    Msl,
    /// GPU: the device images (.ptx, .cubin, .hsaco, .spv, .metal) into the folder -o names.
    Device,
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
            EmitArg::Spirv => Emit::Spirv,
            EmitArg::Msl => Emit::Msl,
            EmitArg::Device => Emit::Device,
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
    /// Target: host (default), x86-64[-vN], x86_64[:CPU], aarch64-linux-gnu[:CPU],
    /// cuda[:sm_NN], rocm[:gfxNNN], vulkan, metal (list: kiln compile --print-targets).
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,

    /// LLVM CPU (list: kiln compile --print-cpus). `kiln compile` defaults to the
    /// portable x86-64-v3 (AVX2/FMA) on x86-64; `run`/`bench` of a model file to
    /// native. `native` is this machine's exact CPU. `kiln compile --cpu=A,B`
    /// builds one library per CPU (A is <output>, B <output>.B) and the runtime
    /// loads the last one this CPU can run.
    #[arg(long, value_name = "CPU")]
    pub cpu: Option<String>,

    /// Optimisation level (0-3): the graph pipeline `o<N>` (`kiln opt
    /// --list-passes` shows them) and LLVM's level of the same number. -O0 is
    /// the unoptimized reference path; -O1 and up lower into a memory plan.
    #[arg(short = 'O', long = "opt-level", value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(0..=3))]
    pub opt_level: u8,
}

impl TargetArgs {
    /// The code generation target for running on this machine.
    pub fn target(&self) -> Result<kiln_driver::Target, CliError> {
        if self.cpu.as_deref().is_some_and(|c| c.contains(',')) {
            return Err(CliError::new(
                Code::Usage,
                "several CPUs (--cpu=A,B) are for kiln compile; give one CPU here",
            ));
        }
        kiln_driver::target_from_args(self.target.as_deref(), self.cpu.as_deref())
            .map_err(driver_error)
    }

    /// The code generation targets of a deployed artifact (portable default
    /// CPU): the first CPU of `--cpu=A,B,...` and the further ones.
    pub fn deploy_targets(
        &self,
    ) -> Result<(kiln_driver::Target, Vec<kiln_driver::Target>), CliError> {
        let target = self.target.as_deref();
        let mut cpus = self.cpu.as_deref().map(|c| c.split(',').map(str::trim));
        let first = cpus.as_mut().and_then(Iterator::next);
        if first == Some("") {
            return Err(CliError::new(Code::Usage, "--cpu names no CPU"));
        }
        let main = kiln_driver::deploy_target_from_args(target, first).map_err(driver_error)?;
        let more = cpus
            .into_iter()
            .flatten()
            .map(|c| kiln_driver::target_from_args(target, Some(c)).map_err(driver_error))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((main, more))
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

/// Weight quantization, shared by `compile` and `opt` (the
/// `quantize-weights` pass).
#[derive(Debug, Args, Clone, Default)]
pub struct QuantizeArgs {
    /// Quantize MatMul/Gemm weights (weight-only): nf4, fp8-e4m3, fp8-e5m2,
    /// int4, int8, int7 (int8 bytes holding 7-bit values), int2, uint4, uint8, uint2,
    /// mxfp4, nvfp4. Weights are stored packed in the artifact and dequantized where the
    /// product reads them.
    #[arg(long, value_name = "SCHEME")]
    pub quantize: Option<String>,

    /// Values per quantization block along K (default: the scheme's: nf4 64,
    /// int4 32, int8/int7/fp8 0 = one scale per output channel; mxfp4 is 32).
    #[arg(long, value_name = "N", requires = "quantize")]
    pub block_size: Option<usize>,

    /// Node names (ONNX names, result or weight names) to leave in f32.
    #[arg(
        long,
        value_name = "NODE,...",
        value_delimiter = ',',
        requires = "quantize"
    )]
    pub exclude: Vec<String>,

    /// Which contractions to quantize (MatMul, Gemm, Conv; default
    /// MatMul,Gemm). Conv weights are quantized weight-only (`quant.conv`,
    /// all schemes but nvfp4) or, with `--quantize=int8
    /// --quantize-activations=dynamic`, as ConvInteger.
    #[arg(
        long,
        value_name = "OP,...",
        value_delimiter = ',',
        requires = "quantize"
    )]
    pub quantize_ops: Vec<String>,

    /// Double-quantize NF4 block scales (8-bit, as bitsandbytes stores them).
    #[arg(long, requires = "quantize")]
    pub double_quant: bool,

    /// Weights with fewer values stay f32.
    #[arg(long, value_name = "N", requires = "quantize")]
    pub quantize_min_elements: Option<u64>,

    /// With --quantize=int8 (or int7): quantize each product's activations too,
    /// at run time (`dynamic`: uint8 per tensor, as ONNX's DynamicQuantizeLinear
    /// and ONNX Runtime's quantize_dynamic), so the products run as int8 dot
    /// products (VNNI where the CPU has them). On x86 CPUs with AVX2 but no VNNI
    /// the MatMul/Gemm weights get 7 bits (int7), which AVX2's pmaddubsw
    /// multiplies exactly, as ONNX Runtime's reduce_range does.
    #[arg(long, value_name = "MODE", value_parser = ["dynamic"], requires = "quantize")]
    pub quantize_activations: Option<String>,

    /// With --quantize=int8 --quantize-activations=dynamic: give the MatMul/Gemm
    /// weights 7 bits (`on`), keep 8 (`off`), or decide by the target CPU
    /// (`auto`: 7 where its exact int8 products are AVX2's pmaddubsw pairs,
    /// i.e. x86 without VNNI; 8-bit weights there run the slower int16 path).
    #[arg(long, value_name = "WHEN", value_parser = ["auto", "on", "off"],
          default_value = "auto", requires = "quantize_activations")]
    pub reduce_range: String,

    /// `kiln compile`: print, per quantized weight, its relative RMS and
    /// largest error against the f32 weight and its stored size (text table
    /// or JSON, on stderr).
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, default_missing_value = "text",
          value_parser = ["text", "json"], requires = "quantize")]
    pub quant_report: Option<String>,

    /// With --quant-report: an ONNX test-set folder (`input_0.pb`, ...) on
    /// which the reference interpreter runs the f32 and the quantized graph,
    /// to report each output's end-to-end error. Default: the model's
    /// `test_data_set_0` when it has one.
    #[arg(long, value_name = "DIR", requires = "quant_report")]
    pub quant_report_inputs: Option<PathBuf>,
}

impl QuantizeArgs {
    /// The pass options (no scheme: quantization off).
    pub fn options(&self) -> Result<kiln_passes::QuantizeOptions, CliError> {
        use kiln_ir::codec::block::Scheme;
        let mut o = kiln_passes::QuantizeOptions::default();
        let Some(name) = &self.quantize else {
            return Ok(o);
        };
        let Some(scheme) = Scheme::parse(name) else {
            return Err(CliError::new(
                Code::Usage,
                format!(
                    "--quantize={name}: unknown scheme (one of {})",
                    Scheme::NAMES.join(", ")
                ),
            ));
        };
        o.scheme = Some(scheme);
        o.block_size = self.block_size;
        o.exclude = self.exclude.clone();
        o.double_quant = self.double_quant;
        o.dynamic_activations = self.quantize_activations.is_some();
        o.reduce_range = match self.reduce_range.as_str() {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        };
        if let Some(n) = self.quantize_min_elements {
            o.min_elements = n;
        }
        if !self.quantize_ops.is_empty() {
            o.ops = self
                .quantize_ops
                .iter()
                .map(|op| match op.to_ascii_lowercase().as_str() {
                    "matmul" => Ok(kiln_ir::OpKind::MatMul),
                    "gemm" => Ok(kiln_ir::OpKind::Gemm),
                    "conv" => Ok(kiln_ir::OpKind::Conv),
                    _ => Err(CliError::new(
                        Code::Usage,
                        format!("--quantize-ops: {op} is not quantized (MatMul, Gemm, Conv)"),
                    )),
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(o)
    }
}

/// The `--quant-report` text or JSON.
fn quant_report(
    format: &str,
    r: &[kiln_driver::quant_report::LayerReport],
    outputs: &[kiln_driver::quant_report::OutputError],
) -> String {
    if format != "json" {
        let mut s = kiln_driver::quant_report::to_text(r);
        if !outputs.is_empty() {
            s.push_str(&kiln_driver::quant_report::outputs_to_text(outputs));
        }
        return s;
    }
    let layers: Vec<serde_json::Value> = r
        .iter()
        .map(|l| {
            serde_json::json!({
                "weight": l.weight,
                "shape": l.shape,
                "scheme": l.scheme,
                "block": l.block,
                "f32_bytes": l.f32_bytes,
                "stored_bytes": l.stored_bytes,
                "rel_rms": l.rel_rms,
                "max_abs": l.max_abs,
            })
        })
        .collect();
    let outputs: Vec<serde_json::Value> = outputs
        .iter()
        .map(|e| {
            serde_json::json!({
                "output": e.output,
                "rel_rms": e.rel_rms,
                "max_abs": e.max_abs,
                "max_ref": e.max_ref,
                "nan_mismatches": e.nan_mismatches,
            })
        })
        .collect();
    format!(
        "{}\n",
        serde_json::json!({ "layers": layers, "outputs": outputs })
    )
}

/// Arguments of `kiln compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The model (.onnx or .kir).
    #[arg(required_unless_present_any = ["print_targets", "print_cpus", "print_pipeline"])]
    pub model: Option<PathBuf>,

    /// Print the pipelines `-O` and the target select (graph passes, the
    /// MLIR pipeline, the LLVM pipeline, the CPU kernel variant), then exit.
    #[arg(long)]
    pub print_pipeline: bool,

    /// List the targets (architectures, triples, default CPUs), then exit.
    #[arg(long)]
    pub print_targets: bool,

    /// List the CPU names LLVM accepts for --target (default: this
    /// machine's architecture), then exit.
    #[arg(long)]
    pub print_cpus: bool,

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
    pub quantize: QuantizeArgs,

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

    /// With --emit=obj: do not put kiln.h and libkiln_runtime.a next to the
    /// object (the program links an installed runtime, see `kiln config`).
    #[arg(long)]
    pub no_runtime: bool,

    /// Write a Make-syntax depfile: the output depends on the model, its
    /// external-data or .kir weight files and --freeze-input files (for
    /// Ninja, CMake's DEPFILE, cargo:rerun-if-changed).
    #[arg(long, value_name = "FILE")]
    pub depfile: Option<PathBuf>,

    /// Symbol prefix and header name: the artifact defines NAME_artifact()
    /// and its header is NAME.h, so several models link into one program.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// CUDA targets: also embed SASS for this architecture (sm_NN; repeatable),
    /// besides the target's chip, when ptxas is found. Every artifact has PTX,
    /// which the driver compiles for any other GPU.
    #[arg(long = "cuda-arch", value_name = "SM")]
    pub cuda_archs: Vec<String>,
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
                        Code::Usage,
                        format!("bad --freeze-input '{spec}' (expected NAME=PATH)"),
                    )
                })?;
            kiln_driver::tensors::read_tensor(std::path::Path::new(path), name)
                .map_err(driver_error)
        })
        .collect()
}

/// Load options from `--input-shape`.
pub fn load_options(shapes: &InputShapeArgs) -> Result<LoadOptions, CliError> {
    Ok(LoadOptions {
        input_shapes: shapes.import_options()?.input_shapes,
        input_values: Vec::new(),
    })
}

/// `--print-targets`: one line per architecture, and the chips of GPUs.
fn print_targets() -> String {
    let mut s = String::from("Targets (--target):\n");
    for arch in kiln_driver::Arch::ALL {
        let generic = kiln_driver::Target::generic(arch);
        let deploy = kiln_driver::Target::deploy(arch);
        let kind = match arch.device_api() {
            Some(api) => format!("GPU, {} runtime", api.name()),
            None => "CPU".to_owned(),
        };
        let default = if arch.is_gpu() { "chip" } else { "--cpu" };
        s.push_str(&format!(
            "  {:<14} {:<26} default {default:<5} {:<10} ({kind}){}\n",
            arch.name(),
            generic.triple(),
            deploy.cpu(),
            if kiln_driver::Arch::of_host() == Some(arch) {
                ", this machine"
            } else {
                ""
            }
        ));
        for chip in arch.chips() {
            s.push_str(&format!(
                "      {}:{:<9} {}\n",
                arch.name(),
                chip.name,
                chip.description
            ));
        }
    }
    s.push_str(
        "Also: host/native (this machine's exact CPU), x86-64, x86-64-v2, x86-64-v3, x86-64-v4;\n\
         GPU targets accept any chip LLVM knows (cuda:sm_NN, rocm:gfxNNN).\n",
    );
    s
}

/// `--print-cpus`: the CPU names of the chosen architecture.
fn print_cpus(target: &TargetArgs) -> Result<String, CliError> {
    let t = match target.target.as_deref() {
        None | Some("host" | "native") => {
            kiln_driver::Target::host().map_err(|e| driver_error(e.into()))?
        }
        Some(t) => kiln_driver::Target::parse(t).map_err(|e| driver_error(e.into()))?,
    };
    let names = kiln_driver::cpu_names(&t).map_err(|e| driver_error(e.into()))?;
    let mut s = format!(
        "CPUs for {} (--cpu):\n  native (this machine",
        t.arch().name()
    );
    if kiln_driver::Arch::of_host() == Some(t.arch()) {
        s.push_str(&format!(
            ": {}",
            kiln_driver::Target::host()
                .map_err(|e| driver_error(e.into()))?
                .cpu()
        ));
    }
    s.push_str(")\n");
    for n in names {
        s.push_str(&format!("  {n}\n"));
    }
    Ok(s)
}

/// Escapes a path for a Make rule (GNU make and Ninja read the same).
fn make_escape(p: &std::path::Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        match c {
            ' ' | '#' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

/// `target: dep dep ...` in Make syntax, one dependency per line.
pub fn make_depfile(target: &std::path::Path, deps: &[PathBuf]) -> String {
    let mut s = format!("{}:", make_escape(target));
    for d in deps {
        s.push_str(" \\\n  ");
        s.push_str(&make_escape(d));
    }
    s.push('\n');
    s
}

/// Runs `kiln compile`.
pub fn run(args: CompileArgs) -> Result<(), CliError> {
    if args.print_targets || args.print_cpus {
        let text = if args.print_targets {
            print_targets()
        } else {
            print_cpus(&args.target)?
        };
        return crate::io::write_output(None, text.as_bytes());
    }
    if args.print_pipeline {
        let (target, _) = args.target.deploy_targets()?;
        let mut opts = CompileOptions::new(target, None);
        opts.set_level(args.target.opt_level());
        opts.set_quantize(args.quantize.options()?);
        return crate::io::write_output(None, opts.describe_pipeline().as_bytes());
    }
    let Some(model) = args.model.clone() else {
        return Err(CliError::new(Code::Usage, "no model file given"));
    };
    let emit = Emit::from(args.emit);
    let output = args.output.filter(|o| o.as_os_str() != "-");
    if output.is_none() && !emit.is_text() {
        return Err(CliError::new(
            Code::Usage,
            "-o FILE is required for --emit=obj, --emit=lib and --emit=device",
        ));
    }
    let (target, variants) = args.target.deploy_targets()?;
    let frozen = read_frozen(&args.freeze_inputs)?;
    let mut load = load_options(&args.shapes)?;
    // Frozen inputs are given to the loader so that ONNX control flow
    // depending on them is expanded while importing.
    load.input_values = frozen.clone();
    let (graph, mut deps) =
        kiln_driver::load_with_deps(&model, &load).map_err(|e| driver_error(e).in_file(&model))?;
    deps.extend(
        args.freeze_inputs
            .iter()
            .filter_map(|s| s.split_once('=').map(|(_, p)| PathBuf::from(p))),
    );
    if !frozen.is_empty() {
        let names: Vec<&str> = frozen.iter().map(|t| t.name.as_str()).collect();
        tracing::info!(inputs = %names.join(", "), "froze inputs into constants");
    }
    let mut opts = CompileOptions::new(target, output);
    opts.emit = emit;
    opts.set_level(args.target.opt_level());
    opts.set_quantize(args.quantize.options()?);
    opts.quant_report = args.quantize.quant_report.is_some();
    if opts.quant_report {
        opts.quant_report_inputs = args
            .quantize
            .quant_report_inputs
            .clone()
            .or_else(|| crate::io::bundled_test_set(&model));
    }
    opts.runtime_dir = args.runtime_dir;
    opts.name = args.name;
    opts.copy_runtime = !args.no_runtime;
    opts.extra_gpu_archs = args.cuda_archs;
    opts.variants = variants;
    opts.weights = match args.weights {
        WeightsArg::Embedded => WeightsMode::Embedded,
        WeightsArg::External => WeightsMode::External,
    };
    tracing::info!(model = %model.display(), target = %opts.target, "compile");
    let main_output = opts.output.clone();
    let progress = crate::progress::Progress::start(&format!(
        "compiling {}",
        model.file_name().map_or_else(
            || model.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        )
    ));
    opts.on_stage = Some(progress.hook());
    let artifacts = kiln_driver::compile(graph, &opts);
    drop(progress);
    let artifacts = artifacts.map_err(|e| driver_error(e).in_file(&model))?;
    if let Some(depfile) = &args.depfile {
        let Some(target) = main_output else {
            return Err(CliError::new(
                Code::Usage,
                "--depfile needs an output file (-o)",
            ));
        };
        crate::io::write_output(Some(depfile), make_depfile(&target, &deps).as_bytes())?;
    }
    if args.time {
        eprint!("{}", artifacts.timing_table());
    }
    if let Some(format) = &args.quantize.quant_report {
        eprint!(
            "{}",
            quant_report(format, &artifacts.quant_report, &artifacts.quant_outputs)
        );
    }
    for w in &artifacts.warnings {
        crate::report::warning(w);
    }
    if let Some(text) = artifacts.text {
        // A reader that stops early (`| head`) is not an error.
        crate::io::write_output(None, &text)?;
    }
    for f in &artifacts.files {
        tracing::info!(file = %f.display(), "wrote");
    }
    Ok(())
}
