//! Compiling a graph into an artifact, or into any intermediate stage.
//!
//! Stages, each printable with [`Emit`]: graph pipeline (`kir`) → lowering
//! (`mlir`, linalg on tensors) → MLIR pipeline + LLVM (`llvm`, `asm`) →
//! objects (`obj`) → shared library (`lib`).
//!
//! Invariants:
//! - Weight bytes never go through MLIR or LLVM: the lowering references
//!   them by offset, and the blob is streamed ([`WeightsLayout::write_to`])
//!   into a file, which is memory-mapped into the weights object (embedded)
//!   or renamed next to the library (external). Compile time therefore
//!   scales with the number of ops, not with weight bytes.
//! - All outputs are built in a temporary directory next to the output and
//!   renamed into place only after every step succeeded, the main output
//!   (`-o`) last: a failed compile leaves nothing at `-o`, and no temporary
//!   files behind.
//! - Dynamic input shapes are refused with a message naming the inputs and
//!   the `--input-shape` flag that fixes them.

use crate::artifact::{self, Descriptor, WeightsRef, WEIGHTS_SYMBOL};
use crate::error::{DriverError, Result};
use crate::load::dynamic_inputs;
use kiln_codegen::lower::{lower_graph, LowerOptions, LoweredModule};
use kiln_codegen::{Arch, OptLevel, Target};
use kiln_ir::{DType, Graph};
use kiln_passes::{ManagerOptions, PassManager, PassOptions, Pipeline, TargetFacts};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The `kiln.h` this driver generates code against (the runtime's ABI).
pub const KILN_H: &str = include_str!("../../../runtime/include/kiln.h");

/// File name of the runtime's static library.
pub const RUNTIME_ARCHIVE: &str = "libkiln_runtime.a";

/// What [`compile`] produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Emit {
    /// Kiln IR text after the graph pipeline.
    Kir,
    /// A Graphviz picture of the graph after the graph pipeline, fused
    /// kernels drawn as clusters.
    Dot,
    /// MLIR text from the lowering (linalg/tensor, before the MLIR pipeline).
    Mlir,
    /// Optimized LLVM IR of the model code.
    Llvm,
    /// Target assembly of the model code.
    Asm,
    /// One relocatable object (model code, descriptor, embedded weights),
    /// plus `model.h`, `kiln.h` and the runtime's static library next to it.
    Obj,
    /// A shared library plus `model.h`.
    Lib,
    /// GPU targets: the SPIR-V of the kernels as text (MLIR `spirv` dialect).
    Spirv,
    /// GPU targets: the Metal Shading Language of every kernel.
    Msl,
    /// GPU targets: the device images (PTX, cubins, HSACO, SPIR-V, MSL) as files in the
    /// output folder.
    Device,
}

impl Emit {
    /// Parses `kir|dot|mlir|llvm|asm|obj|lib|spirv|msl|device`.
    pub fn parse(s: &str) -> Result<Emit> {
        Ok(match s {
            "kir" => Emit::Kir,
            "dot" => Emit::Dot,
            "mlir" => Emit::Mlir,
            "llvm" | "ll" => Emit::Llvm,
            "asm" | "s" => Emit::Asm,
            "obj" | "o" => Emit::Obj,
            "lib" | "so" => Emit::Lib,
            "spirv" => Emit::Spirv,
            "msl" => Emit::Msl,
            "device" => Emit::Device,
            _ => {
                return Err(DriverError::Invalid(format!(
                    "unknown --emit '{s}' (expected kir, dot, mlir, llvm, asm, obj, lib, spirv, \
                     msl or device)"
                )))
            }
        })
    }

    /// Whether the stage is text (printed to stdout when no output is given).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            Emit::Kir | Emit::Dot | Emit::Mlir | Emit::Llvm | Emit::Asm | Emit::Spirv | Emit::Msl
        )
    }
}

/// Where the weights of an artifact live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeightsMode {
    /// In a 64-byte aligned read-only section of the artifact.
    #[default]
    Embedded,
    /// In `<output>.weights` next to the artifact, memory-mapped at load.
    External,
}

/// Compilation settings.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The machine to generate code for.
    pub target: Target,
    /// LLVM optimisation level.
    pub opt_level: OptLevel,
    /// Which stage to produce.
    pub emit: Emit,
    /// Where the weights go (artifacts only).
    pub weights: WeightsMode,
    /// The output file; required for `obj` and `lib`, text stages are
    /// returned in [`Artifacts::text`] when absent.
    pub output: Option<PathBuf>,
    /// The graph pipeline (default: `default`).
    pub pipeline: Pipeline,
    /// Options handed to every pass of the pipeline.
    pub pass_options: PassOptions,
    /// Directory holding `libkiln_runtime.a` (for `--emit=obj`); searched
    /// for when absent (see [`find_runtime_archive`]).
    pub runtime_dir: Option<PathBuf>,
    /// Whether `--emit=obj` puts `kiln.h` and `libkiln_runtime.a` next to the
    /// object (off for build systems that link the installed runtime or the
    /// Rust runtime crate).
    pub copy_runtime: bool,
    /// Fill [`Artifacts::quant_report`] (`--quant-report`).
    pub quant_report: bool,
    /// With [`CompileOptions::quant_report`]: a folder of ONNX test-set
    /// inputs (`input_0.pb`, ...) on which to measure the end-to-end error
    /// of the quantized graph against the f32 one
    /// ([`Artifacts::quant_outputs`]).
    pub quant_report_inputs: Option<PathBuf>,
    /// `--name`: the symbol prefix (`<name>_artifact`) and header name
    /// (`<name>.h`); `None` keeps `kiln_artifact` and `<output stem>.h`.
    pub name: Option<String>,
    /// Called with each stage's name as it starts (a progress display).
    pub on_stage: Option<StageHook>,
    /// Further builds for other CPUs of the same architecture
    /// (`--cpu=A,B,...`: `target` is A), in increasing preference; shared
    /// libraries only. Each is written beside the output as
    /// `<output>.<cpu>` and recorded in the output's integrity record; the
    /// runtime loads the most preferred one the CPU can run.
    pub variants: Vec<Target>,
    /// CUDA targets: more `sm_NN` to build SASS for (when `ptxas` is found),
    /// beyond the target's chip.
    pub extra_gpu_archs: Vec<String>,
}

/// A callback told the name of each compile stage as it starts.
#[derive(Clone)]
pub struct StageHook(pub std::sync::Arc<dyn Fn(&'static str) + Send + Sync>);

impl std::fmt::Debug for StageHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageHook")
    }
}

impl CompileOptions {
    /// Defaults: host CPU, `-O3`, a shared library with embedded weights.
    pub fn new(target: Target, output: Option<PathBuf>) -> CompileOptions {
        CompileOptions {
            target,
            opt_level: OptLevel::O3,
            emit: Emit::Lib,
            weights: WeightsMode::Embedded,
            output,
            pipeline: Pipeline::for_level(3),
            pass_options: PassOptions::default(),
            runtime_dir: None,
            copy_runtime: true,
            name: None,
            extra_gpu_archs: Vec::new(),
            quant_report: false,
            quant_report_inputs: None,
            on_stage: None,
            variants: Vec::new(),
        }
    }

    /// The pipelines this compile runs, one per line: the graph passes, the
    /// lowering mode, the MLIR pass pipeline, the LLVM pipeline and the CPU
    /// kernel variant (`kiln compile --print-pipeline`).
    pub fn describe_pipeline(&self) -> String {
        let planned = self.pipeline.passes.iter().any(|p| p.name == "plan-memory");
        if let Some(c) = self.target.gpu_config() {
            let host = self
                .target
                .host_target()
                .map_or_else(|e| e.to_string(), |t| t.to_string());
            return format!(
                "target: {} (host code: {host})
graph: {}
lowering: {}
gpu: {:?}
mlir: builtin.module({})
device: {}
host mlir: {}
llvm: {}
",
                self.target,
                self.pipeline,
                if planned {
                    "planned (one node at a time, into the memory plan; each node's loops become kernels)"
                } else {
                    "one tensor program (its loops become kernels)"
                },
                c,
                kiln_codegen::gpu::shared_passes(&c),
                kiln_codegen::gpu::device_passes_text(&self.target)
                    .unwrap_or_else(|e| e.to_string()),
                kiln_codegen::gpu::HOST_PIPELINE,
                self.opt_level.llvm_pipeline(),
            );
        }
        let mlir = if planned {
            kiln_codegen::targets::CPU_PLANNED_PIPELINE
        } else {
            kiln_codegen::targets::CPU_PIPELINE
        };
        let kernels = match (planned, self.target.cpu_config()) {
            (true, Some(c)) => format!(
                "kiln_k_*_{} ({} lanes, GEMM tile {}x{})",
                c.variant.name(),
                c.variant.lanes(),
                c.variant.mr(),
                c.variant.nr()
            ),
            _ => "none".into(),
        };
        format!(
            "target: {}
graph: {}
lowering: {}
mlir: {mlir}
llvm: {}
kernels: {kernels}
",
            self.target,
            self.pipeline,
            if planned {
                "planned (one node at a time, into the memory plan)"
            } else {
                "one tensor program"
            },
            self.opt_level.llvm_pipeline(),
        )
    }

    /// Quantizes weights with `q` (`kiln compile --quantize`): hands the
    /// options to the passes and puts `quantize-weights` into the pipeline
    /// ([`Pipeline::with_quantization`]). Call after [`Self::set_level`].
    pub fn set_quantize(&mut self, q: kiln_passes::QuantizeOptions) {
        if q.scheme.is_some() {
            self.pipeline = self.pipeline.with_quantization();
        }
        self.pass_options.quantize = q;
    }

    /// Selects `-O<level>`: the graph pipeline `o<level>` and the LLVM
    /// optimisation level of the same number.
    pub fn set_level(&mut self, level: OptLevel) {
        self.opt_level = level;
        self.pipeline = Pipeline::for_level(level.number());
    }
}

/// Builds a target from `--target` and `--cpu`, for code that runs on this
/// machine (`kiln run`, `kiln bench`).
///
/// No target means this machine; no CPU means `native` on this machine and
/// the target's default CPU otherwise. `--cpu=native` needs a target of this
/// machine's architecture. The CPU name is checked with LLVM.
pub fn target_from_args(target: Option<&str>, cpu: Option<&str>) -> Result<Target> {
    let base = match target {
        None | Some("host" | "native") => Target::host()?,
        Some(t) => Target::parse(t)?,
    };
    let t = match cpu {
        None => base,
        Some("native") => {
            if Arch::of_host() == Some(base.arch()) {
                Target::host()?
            } else {
                return Err(DriverError::Invalid(format!(
                    "--cpu=native needs a target of this machine's architecture, not {}",
                    base.arch().name()
                )));
            }
        }
        Some(cpu) => Target::parse(&format!("{}:{cpu}", base.arch().name()))?,
    };
    t.validate()?;
    Ok(t)
}

/// Builds the target of a deployed artifact (`kiln compile`): like
/// [`target_from_args`], except that without `--cpu` (and without a CPU in
/// the target string) the code is generated for the architecture's portable
/// deployment CPU ([`Target::deploy`]: `x86-64-v3` on x86-64), not for this
/// machine, so the artifact runs on the machines it is shipped to. The
/// runtime refuses it, naming the missing features, on a CPU without them.
pub fn deploy_target_from_args(target: Option<&str>, cpu: Option<&str>) -> Result<Target> {
    let names_cpu = |t: &str| t.contains(':') || t.starts_with("x86-64");
    match (target, cpu) {
        (None | Some("host"), None) => {
            let arch = Arch::of_host().ok_or_else(|| {
                DriverError::Unsupported("this machine's architecture is not a Kiln target".into())
            })?;
            let t = Target::deploy(arch);
            t.validate()?;
            Ok(t)
        }
        (Some(t), None) if !names_cpu(t) && t != "native" => {
            let t = Target::deploy(Target::parse(t)?.arch());
            t.validate()?;
            Ok(t)
        }
        _ => target_from_args(target, cpu),
    }
}

/// Checks a `--name`: a C identifier (it prefixes the artifact's symbol and
/// names its header), at most 64 bytes.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(DriverError::Invalid(format!(
            "--name '{name}' must be a C identifier of at most 64 bytes ([A-Za-z_][A-Za-z0-9_]*)"
        )))
    }
}

/// What a compile produced.
#[derive(Debug, Default)]
pub struct Artifacts {
    /// Files written, main output first.
    pub files: Vec<PathBuf>,
    /// The text of a text stage when no output file was given.
    pub text: Option<Vec<u8>>,
    /// Wall time of each stage, in order.
    pub timings: Vec<(&'static str, Duration)>,
    /// Graph outputs that are constants after the graph pipeline: computed
    /// at compile time, so no generated code computes them (for example
    /// the shape of a static input).
    pub constant_outputs: Vec<String>,
    /// Things the user should know that did not stop the compile.
    pub warnings: Vec<String>,
    /// `(arena bytes, sum of the bytes of every intermediate)` of the memory
    /// plan, when the pipeline made one.
    pub memory: Option<(u64, u64)>,
    /// Nodes of the optimized graph that run code (not constants, views or
    /// unpacked weights): the kernels and loop nests one run executes.
    pub nodes: usize,
    /// Kernel symbols the artifact calls.
    pub kernels: Vec<String>,
    /// Per quantized weight: its error and size (when
    /// [`CompileOptions::quant_report`] is set).
    pub quant_report: Vec<crate::quant_report::LayerReport>,
    /// Per graph output: the quantized graph's error against the f32 graph
    /// on [`CompileOptions::quant_report_inputs`].
    pub quant_outputs: Vec<crate::quant_report::OutputError>,
    /// Told each stage as it starts.
    on_stage: Option<StageHook>,
}

impl Artifacts {
    /// A table of stage timings, one per line, plus the total.
    pub fn timing_table(&self) -> String {
        let mut s = String::new();
        for (stage, d) in &self.timings {
            s.push_str(&format!(
                "  {stage:<12} {:>10.3} ms\n",
                d.as_secs_f64() * 1e3
            ));
        }
        let total: Duration = self.timings.iter().map(|(_, d)| *d).sum();
        s.push_str(&format!(
            "  {:<12} {:>10.3} ms\n",
            "total",
            total.as_secs_f64() * 1e3
        ));
        s.push_str(&format!("  kernels run  {:>10}\n", self.nodes));
        if let Some((arena, sum)) = self.memory {
            s.push_str(&format!(
                "  activations  {:>10} bytes in one arena ({sum} bytes of intermediates without reuse)\n",
                arena
            ));
        }
        if !self.kernels.is_empty() {
            s.push_str(&format!("  library      {}\n", self.kernels.join(", ")));
        }
        s
    }
}

/// A thread joined when this is dropped (an early return does not leave it
/// writing into a staging folder that is being removed).
struct Joined<T>(Option<std::thread::JoinHandle<T>>);

impl<T> Joined<T> {
    fn take(mut self) -> Option<std::thread::JoinHandle<T>> {
        self.0.take()
    }
}

impl<T> Drop for Joined<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

fn timed<T>(art: &mut Artifacts, stage: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    if let Some(hook) = &art.on_stage {
        (hook.0)(stage);
    }
    let start = Instant::now();
    let r = f();
    art.timings.push((stage, start.elapsed()));
    r
}

/// Runs the graph pipeline on `graph` (in place), without target facts
/// (the layout and packing passes leave the graph alone).
pub fn optimize(graph: &mut Graph, pipeline: &Pipeline) -> Result<()> {
    optimize_for(graph, pipeline, &TargetFacts::default())
}

/// Runs the graph pipeline on `graph` (in place) for a target whose
/// kernels are described by `facts` ([`target_facts`]).
pub fn optimize_for(graph: &mut Graph, pipeline: &Pipeline, facts: &TargetFacts) -> Result<()> {
    let pass = PassOptions {
        target: facts.clone(),
        ..PassOptions::default()
    };
    optimize_with(graph, pipeline, &pass)
}

/// Runs the graph pipeline on `graph` (in place), handing `pass` to every
/// pass.
pub fn optimize_with(graph: &mut Graph, pipeline: &Pipeline, pass: &PassOptions) -> Result<()> {
    let options = ManagerOptions {
        pass: pass.clone(),
        ..ManagerOptions::default()
    };
    PassManager::new(pipeline.clone(), options).run(graph)?;
    Ok(())
}

/// Names of the graph outputs defined by `nn.constant`.
fn constant_outputs(graph: &Graph) -> Vec<String> {
    let defs = graph.defs();
    graph
        .outputs
        .iter()
        .filter(|&&v| graph.constant_weight(&defs, v).is_some())
        .map(|&v| graph.value(v).name.clone())
        .collect()
}

/// What the target-dependent graph passes need to know about the kernels
/// the lowering calls for `target`, from the target's CPU configuration
/// (`Target::cpu_config`, the one place these choices are made): the
/// layout convolution chains run in, the panel width of packed weights, the
/// epilogue length of `kiln_kernels.h`. Targets without one (GPUs) get the
/// default facts, which leave layouts and weights alone.
pub fn target_facts(target: &Target) -> TargetFacts {
    match target.cpu_config() {
        Some(c) => TargetFacts {
            conv_layout: if c.conv_nhwc {
                kiln_ir::ops::layout::DataLayout::Nhwc
            } else {
                kiln_ir::ops::layout::DataLayout::Nchw
            },
            gemm_nr: c.panel_width() as u64,
            pack_depthwise: c.conv_nhwc,
            epilogue_max_ops: kiln_codegen::kernels::abi::EPI_MAX_OPS,
            int8_dot: c.int8_dot,
            int8_pairs: c.int8_pairs,
            qgemv_panel: c.qgemv_panel() as u64,
        },
        None => TargetFacts::default(),
    }
}

/// Compiles `graph` to the stage and outputs `opts` asks for.
pub fn compile(graph: Graph, opts: &CompileOptions) -> Result<Artifacts> {
    if opts.variants.is_empty() {
        compile_one(graph, opts, &[])
    } else {
        compile_variants(graph, opts)
    }
}

/// A multi-versioned shared library: every variant is compiled into a
/// staging folder and moved beside the output, then the output itself is
/// compiled with an integrity record listing them (size and checksum), so
/// the runtime can pick one and refuse a swapped or damaged file. On error
/// the variants already moved are removed again.
fn compile_variants(graph: Graph, opts: &CompileOptions) -> Result<Artifacts> {
    let output = match (opts.emit, opts.output.as_deref()) {
        (Emit::Lib, Some(o)) => o,
        _ => {
            return Err(DriverError::Invalid(
                "several CPUs (--cpu=A,B) need a shared library (--emit=lib and -o)".into(),
            ))
        }
    };
    let file_name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| DriverError::Invalid(format!("bad output path {}", output.display())))?;
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let stage = Staging::new(output)?;
    let mut alternates = Vec::new();
    let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut timings = Vec::new();
    for t in &opts.variants {
        if t.arch() != opts.target.arch() || t.cpu() == opts.target.cpu() {
            return Err(DriverError::Invalid(format!(
                "--cpu lists {} for {}: every CPU must be of the target's architecture ({}) and \
                 listed once",
                t.cpu(),
                t.arch().name(),
                opts.target.arch().name()
            )));
        }
        let name = format!("{file_name}.{}", t.cpu());
        let staged = stage.path(&name);
        let mut variant = opts.clone();
        variant.target = t.clone();
        variant.variants = Vec::new();
        variant.output = Some(staged.clone());
        let built = compile_one(graph.clone(), &variant, &[])?;
        timings.extend(built.timings);
        let seal = hash_file(&staged)?;
        alternates.push(kiln_runtime::integrity::Alternate {
            file: name.clone(),
            cpu: t.cpu().to_owned(),
            features: kiln_codegen::enabled_features(t)?.join(","),
            size: seal.size,
            hash: seal.hash,
        });
        let weights = companion(&staged, "weights", true);
        if weights.is_file() {
            moves.push((weights, companion(&dir.join(&name), "weights", true)));
        }
        moves.push((staged, dir.join(&name)));
    }
    let placed: Vec<PathBuf> = moves.iter().map(|(_, to)| to.clone()).collect();
    stage.commit(&moves)?;
    match compile_one(graph, opts, &alternates) {
        Ok(mut art) => {
            art.timings.splice(0..0, timings);
            art.files.extend(placed);
            Ok(art)
        }
        Err(e) => {
            for p in placed {
                let _ = std::fs::remove_file(p);
            }
            Err(e)
        }
    }
}

/// Compiles one build; `alternates` go into a shared library's record.
fn compile_one(
    mut graph: Graph,
    opts: &CompileOptions,
    alternates: &[kiln_runtime::integrity::Alternate],
) -> Result<Artifacts> {
    let mut art = Artifacts {
        on_stage: opts.on_stage.clone(),
        ..Artifacts::default()
    };
    let facts = target_facts(&opts.target);
    let reference =
        (opts.quant_report && opts.quant_report_inputs.is_some()).then(|| graph.clone());
    timed(&mut art, "passes", || {
        let pass = PassOptions {
            target: facts.clone(),
            ..opts.pass_options.clone()
        };
        optimize_with(&mut graph, &opts.pipeline, &pass)
    })?;
    art.constant_outputs = constant_outputs(&graph);
    if opts.quant_report {
        art.quant_report = crate::quant_report::quant_report(&graph)?;
        if let (Some(reference), Some(dir)) = (&reference, &opts.quant_report_inputs) {
            let names: Vec<String> = reference
                .inputs
                .iter()
                .map(|&v| reference.value(v).name.clone())
                .collect();
            let found = crate::tensors::read_test_set(dir, "input", &names)?;
            if found.len() != names.len() {
                return Err(DriverError::Invalid(format!(
                    "--quant-report-inputs {}: found {} input_<i>.pb file(s), the model takes {}",
                    dir.display(),
                    found.len(),
                    names.len()
                )));
            }
            let inputs = found
                .iter()
                .map(crate::tensors::HostTensor::to_interp)
                .collect::<Result<Vec<_>>>()?;
            art.quant_outputs = timed(&mut art, "quant-report", || {
                crate::quant_report::end_to_end(reference, &graph, &inputs)
            })?;
        }
    }
    // Nodes that run code: not constants, views or unpacked weights (a
    // kernel reads the packed constant itself).
    art.nodes = graph
        .nodes
        .iter()
        .filter(|n| {
            !matches!(n.op, kiln_ir::OpKind::Constant | kiln_ir::OpKind::Unpack)
                && kiln_ir::plan::aliases_operand(n.op).is_none()
        })
        .count();
    art.memory = graph
        .memory_plan
        .as_ref()
        .map(|p| kiln_ir::plan::plan_summary(&graph, p));
    if opts.emit == Emit::Dot {
        return finish_text(art, opts, kiln_ir::text::print_dot(&graph).into_bytes());
    }
    if opts.emit == Emit::Kir {
        return match opts.output.as_deref().filter(|p| p.as_os_str() != "-") {
            // A file gets its weights beside it, so that it compiles again.
            Some(path) => {
                art.files = crate::kirfile::write_kir(
                    &graph,
                    path,
                    kiln_ir::text::PrintOptions::default().inline_limit,
                )?;
                Ok(art)
            }
            None => {
                let text = kiln_ir::text::print(&graph);
                finish_text(art, opts, text.into_bytes())
            }
        };
    }
    if let Some(list) = dynamic_inputs(&graph) {
        // An example flag for the first dynamic input: its static extents
        // kept, every other extent shown as 1.
        let example = graph
            .inputs
            .iter()
            .map(|&v| graph.value(v))
            .find(|i| !i.ty.is_static())
            .map(|i| {
                let dims: Vec<String> =
                    i.ty.dims
                        .iter()
                        .map(|d| d.as_static().unwrap_or(1).to_string())
                        .collect();
                format!("{}={}", i.name, dims.join("x"))
            })
            .unwrap_or_default();
        return Err(DriverError::Unsupported(format!(
            "the model has inputs with dynamic shapes ({list}); Kiln compiles static shapes \
             only: fix them with --input-shape NAME=DIMS, e.g. --input-shape {example}"
        )));
    }
    let lower_opts = LowerOptions {
        kernels: opts.target.cpu_config().map(|c| c.variant),
        int8_dot: opts.target.cpu_config().is_some_and(|c| c.int8_dot),
        int8_pairs: opts.target.cpu_config().is_some_and(|c| c.int8_pairs),
        winograd: opts.target.cpu_config().is_some_and(|c| c.winograd),
        split_reductions_above: opts.target.gpu_config().map(|c| c.split_reductions_above),
        ..LowerOptions::default()
    };
    let lowered = timed(&mut art, "lower", || Ok(lower_graph(&graph, &lower_opts)?))?;
    art.kernels = lowered.kernels.clone();
    for sig in lowered.inputs.iter().chain(&lowered.outputs) {
        if sig.name.contains('\0') {
            return Err(DriverError::Invalid(format!(
                "tensor name {:?} contains a NUL byte",
                sig.name
            )));
        }
    }
    if opts.target.arch().is_gpu() && opts.emit != Emit::Mlir {
        return compile_gpu(&graph, &lowered, opts, art);
    }
    if matches!(opts.emit, Emit::Spirv | Emit::Msl | Emit::Device) {
        return Err(DriverError::Invalid(format!(
            "--emit=spirv, msl and device are for GPU targets, not {}",
            opts.target
        )));
    }
    let codegen = |emit| {
        kiln_codegen::emit_with_pipeline(
            &lowered.mlir,
            &opts.target,
            lowered.pipeline_hint,
            opts.opt_level,
            emit,
        )
    };
    match opts.emit {
        Emit::Kir | Emit::Dot => unreachable_stage(),
        Emit::Mlir => finish_text(art, opts, lowered.mlir.clone().into_bytes()),
        Emit::Llvm => {
            let text = timed(&mut art, "codegen", || {
                Ok(codegen(kiln_codegen::Emit::Llvm)?)
            })?;
            finish_text(art, opts, text)
        }
        Emit::Asm => {
            let text = timed(&mut art, "codegen", || {
                Ok(codegen(kiln_codegen::Emit::Asm)?)
            })?;
            finish_text(art, opts, text)
        }
        Emit::Obj | Emit::Lib => {
            let output = opts.output.as_deref().ok_or_else(|| {
                DriverError::Invalid(
                    "an output file (-o) is needed for --emit=obj and --emit=lib".into(),
                )
            })?;
            build_artifact(&graph, &lowered, opts, output, alternates, &mut art, None)?;
            Ok(art)
        }
        Emit::Spirv | Emit::Msl | Emit::Device => unreachable_stage(),
    }
}

/// A device without double precision (Metal) computes f64 inside kernels in f32, but cannot
/// take or give f64 tensors: the model's f64 inputs, outputs and weights are refused, by name.
fn refuse_f64_edges(graph: &Graph, target: &Target) -> Result<()> {
    if target.gpu_config().is_none_or(|c| c.math.f64) {
        return Ok(());
    }
    let values = |role: &'static str, ids: &[kiln_ir::ValueId]| {
        ids.iter()
            .map(|&v| (role, graph.value(v).name.clone(), graph.value(v).ty.dtype))
            .collect::<Vec<_>>()
    };
    let weights = graph
        .weights()
        .iter()
        .map(|w| ("weight", w.name.clone(), w.ty.dtype));
    let wide: Vec<String> = values("input", &graph.inputs)
        .into_iter()
        .chain(values("output", &graph.outputs))
        .chain(weights)
        .filter(|(_, _, dt)| *dt == DType::F64)
        .map(|(role, name, _)| format!("{role} '{name}'"))
        .collect();
    if wide.is_empty() {
        return Ok(());
    }
    Err(DriverError::Unsupported(format!(
        "target {target} has no double precision: float64 model inputs, outputs and weights \
         are not supported ({}); cast them to float32 in the model",
        wide.join(", ")
    )))
}

/// The stages of a GPU target after lowering: text of a stage, the device
/// images, or an artifact whose host code launches them.
fn compile_gpu(
    graph: &Graph,
    lowered: &LoweredModule,
    opts: &CompileOptions,
    mut art: Artifacts,
) -> Result<Artifacts> {
    use kiln_codegen::gpu::{self, GpuEmit, GpuOutput};
    refuse_f64_edges(graph, &opts.target)?;
    let tools = crate::gpu::device_tools(&opts.extra_gpu_archs);
    let api = opts.target.arch().device_api();
    let run = |art: &mut Artifacts, emit| {
        timed(art, "codegen", || {
            Ok(gpu::compile(
                &lowered.mlir,
                &opts.target,
                opts.opt_level,
                &tools,
                emit,
            )?)
        })
    };
    let text = |out: GpuOutput| match out {
        GpuOutput::Text(t) => Ok(t),
        GpuOutput::Program { .. } => Err(DriverError::Internal("expected text".into())),
    };
    match opts.emit {
        Emit::Kir | Emit::Dot | Emit::Mlir => unreachable_stage(),
        Emit::Llvm => match run(&mut art, GpuEmit::HostLlvm)? {
            GpuOutput::Program { host, .. } => finish_text(art, opts, host),
            GpuOutput::Text(_) => Err(DriverError::Internal("expected a program".into())),
        },
        Emit::Asm => {
            let t = text(run(&mut art, GpuEmit::DeviceText)?)?;
            finish_text(art, opts, t)
        }
        Emit::Spirv => {
            let t = text(run(&mut art, GpuEmit::Spirv)?)?;
            finish_text(art, opts, t)
        }
        Emit::Msl => {
            if api != Some(kiln_codegen::DeviceApi::Metal) {
                return Err(DriverError::Invalid(format!(
                    "--emit=msl is for --target=metal, not {}",
                    opts.target
                )));
            }
            let t = text(run(&mut art, GpuEmit::DeviceText)?)?;
            finish_text(art, opts, t)
        }
        Emit::Device => {
            let dir = opts.output.as_deref().ok_or_else(|| {
                DriverError::Invalid("--emit=device needs an output folder (-o DIR)".into())
            })?;
            match run(&mut art, GpuEmit::HostObject)? {
                GpuOutput::Program { device, .. } => {
                    art.files = crate::gpu::write_images(&device, dir)?;
                    art.kernels = device.kernels.iter().map(|k| k.name.clone()).collect();
                    Ok(art)
                }
                GpuOutput::Text(_) => Err(DriverError::Internal("expected a program".into())),
            }
        }
        Emit::Obj | Emit::Lib => {
            let output = opts.output.as_deref().ok_or_else(|| {
                DriverError::Invalid(
                    "an output file (-o) is needed for --emit=obj and --emit=lib".into(),
                )
            })?;
            let (host, device) = match run(&mut art, GpuEmit::HostObject)? {
                GpuOutput::Program { host, device } => (host, device),
                GpuOutput::Text(_) => {
                    return Err(DriverError::Internal("expected a program".into()))
                }
            };
            art.kernels = device.kernels.iter().map(|k| k.name.clone()).collect();
            build_artifact(
                graph,
                lowered,
                opts,
                output,
                &[],
                &mut art,
                Some((host, device)),
            )?;
            Ok(art)
        }
    }
}

/// `Emit::Kir` and `Emit::Dot` return before lowering; kept as a function so the match on
/// [`Emit`] stays exhaustive without a panic.
fn unreachable_stage() -> Result<Artifacts> {
    Err(DriverError::Internal(
        "the kir stage ends before lowering".into(),
    ))
}

fn finish_text(mut art: Artifacts, opts: &CompileOptions, text: Vec<u8>) -> Result<Artifacts> {
    match &opts.output {
        Some(path) if path.as_os_str() != "-" => {
            let stage = Staging::new(path)?;
            let staged = stage.path("out");
            write_file(&staged, &text)?;
            stage.commit(&[(staged, path.clone())])?;
            art.files.push(path.clone());
        }
        _ => art.text = Some(text),
    }
    Ok(art)
}

/// A temporary directory next to the outputs; dropped (with its files) on
/// error.
struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    fn new(output: &Path) -> Result<Staging> {
        let parent = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // Checked first, so the message names the user's folder rather than
        // a temporary path.
        if !parent.is_dir() {
            return Err(DriverError::Invalid(format!(
                "cannot write {}: {} is not an existing folder",
                output.display(),
                parent.display()
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix(".kiln-build-")
            .tempdir_in(parent)
            .map_err(|e| {
                DriverError::io(
                    "create a temporary directory in",
                    parent,
                    std::io::Error::new(e.kind(), e.kind().to_string()),
                )
            })?;
        Ok(Staging { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Renames each staged file to its final path, in order (the main
    /// output last). On failure, files already moved are removed again.
    fn commit(self, moves: &[(PathBuf, PathBuf)]) -> Result<()> {
        let mut done: Vec<&Path> = Vec::new();
        for (from, to) in moves {
            if let Err(e) = std::fs::rename(from, to) {
                for d in done {
                    let _ = std::fs::remove_file(d);
                }
                return Err(DriverError::io("rename a temporary file to", to, e));
            }
            done.push(to);
        }
        Ok(())
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| DriverError::io("write", path, e))
}

/// Streams the weights blob into `path`.
fn write_weights(graph: &Graph, lowered: &LoweredModule, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| DriverError::io("create", path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let limits = kiln_interp::Limits {
        max_elements: u64::MAX,
    };
    let n = lowered
        .weights
        .write_with(graph, &mut out, &|w| {
            kiln_interp::weight_bytes(graph.weights(), w, &limits)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
        })
        .map_err(|e| DriverError::io("write weights to", path, e))?;
    out.flush()
        .map_err(|e| DriverError::io("write weights to", path, e))?;
    if n != lowered.weights.total_bytes {
        return Err(DriverError::Internal(format!(
            "wrote {n} weight bytes, the layout has {}",
            lowered.weights.total_bytes
        )));
    }
    Ok(())
}

/// The final path of a companion file: `<output>` with `suffix` appended
/// (`model.so` → `model.so.weights`) or its extension replaced.
fn companion(output: &Path, ext: &str, append: bool) -> PathBuf {
    if append {
        let mut s = output.as_os_str().to_owned();
        s.push(".");
        s.push(ext);
        PathBuf::from(s)
    } else {
        output.with_extension(ext)
    }
}

/// Builds an artifact. `gpu` holds a GPU target's host object and device
/// code (compiled already); the host code, glue and weights are then built
/// for the target's host CPU and the device images embedded.
fn build_artifact(
    graph: &Graph,
    lowered: &LoweredModule,
    opts: &CompileOptions,
    output: &Path,
    alternates: &[kiln_runtime::integrity::Alternate],
    art: &mut Artifacts,
    gpu: Option<(Vec<u8>, kiln_codegen::gpu::DeviceCode)>,
) -> Result<()> {
    let host_target;
    let target = match &gpu {
        Some(_) => {
            host_target = opts.target.host_target()?;
            &host_target
        }
        None => &opts.target,
    };
    let macho = target.object_format() == kiln_codegen::BinaryFormat::MachO;
    // The runtime archive is built for this machine: it ships only with
    // objects for this machine's architecture.
    let runtime_archive = match opts.emit {
        Emit::Obj if !opts.copy_runtime => None,
        Emit::Obj if Arch::of_host() == Some(target.arch()) => {
            Some(find_runtime_archive(opts.runtime_dir.as_deref())?)
        }
        Emit::Obj => {
            art.warnings.push(format!(
                "no {RUNTIME_ARCHIVE} was placed next to the object: the installed runtime is \
                 built for this machine, not for {arch}; build one for the target with \
                 `cargo build -p kiln-runtime-c --profile runtime-release --target {triple}`",
                arch = target.arch().name(),
                triple = target.triple()
            ));
            None
        }
        _ => None,
    };
    if macho && opts.emit == Emit::Obj {
        return Err(DriverError::Unsupported(format!(
            "--emit=obj for {}: Mach-O objects cannot be combined into one (ld64.lld has no -r); \
             use --emit=lib (a dylib)",
            opts.target
        )));
    }
    let stage = Staging::new(output)?;
    let kernel_o = stage.path("kernel.o");
    let glue_o = stage.path("glue.o");
    let weights_o = stage.path("weights.o");
    let blob_path = stage.path("weights.bin");

    // The kernels the model calls, compiled for this target's CPU. They are
    // always optimized (unless -O0): they are the hot loops. They compile on
    // threads of their own while this one writes the model's code and weights.
    let kernel_level = match opts.opt_level {
        OptLevel::O0 => OptLevel::O0,
        _ => OptLevel::O3,
    };
    let kernel_job = Joined((!lowered.kernels.is_empty()).then(|| {
        let (target, used, dir) = (
            target.clone(),
            lowered.kernels.clone(),
            stage.dir().to_path_buf(),
        );
        std::thread::spawn(move || {
            crate::kernel_cache::kernel_objects(&target, kernel_level, &used, &dir)
        })
    }));

    let (object, device) = match gpu {
        Some((host, device)) => (host, Some(device)),
        None => (
            timed(art, "codegen", || {
                Ok(kiln_codegen::emit_with_pipeline(
                    &lowered.mlir,
                    target,
                    lowered.pipeline_hint,
                    opts.opt_level,
                    kiln_codegen::Emit::Obj,
                )?)
            })?,
            None,
        ),
    };
    write_file(&kernel_o, &object)?;
    drop(object);

    // GPU artifacts append the lowering's constant tables to the weights.
    let tail: &[u8] = device.as_ref().map_or(&[], |d| &d.weights_tail[..]);
    let total = lowered.weights.total_bytes + tail.len() as u64;
    let weights_name = companion(output, "weights", true);
    let weights_ref = match (total, opts.weights) {
        (0, _) => WeightsRef::None,
        (size, WeightsMode::Embedded) => WeightsRef::Embedded { size },
        (size, WeightsMode::External) => WeightsRef::External {
            file: weights_name
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    DriverError::Invalid(format!("bad output path {}", output.display()))
                })?,
            size,
        },
    };
    let model_name = if graph.name.is_empty() {
        output
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
    } else {
        graph.name.clone()
    };
    let producer = format!("kiln {}", env!("CARGO_PKG_VERSION"));
    if let Some(name) = &opts.name {
        check_name(name)?;
    }
    let prefix = opts.name.as_deref().unwrap_or("kiln");
    let symbol = format!("{prefix}_artifact");
    let macro_prefix = opts
        .name
        .as_deref()
        .map_or_else(|| "KILN_MODEL".to_owned(), str::to_ascii_uppercase);
    let features = kiln_codegen::enabled_features(target)?.join(",");
    let descriptor = Descriptor {
        model_name: &model_name.replace('\0', " "),
        producer: &producer,
        inputs: &lowered.inputs,
        outputs: &lowered.outputs,
        weights: weights_ref.clone(),
        workspace: lowered.workspace_bytes,
        symbol: &symbol,
        macro_prefix: &macro_prefix,
        target: (target.arch().name(), target.cpu(), &features),
        device: device.as_ref(),
    };
    let glue = artifact::glue_module(&descriptor);
    let glue_obj = timed(art, "descriptor", || {
        Ok(kiln_codegen::emit_with_pipeline(
            &glue,
            target,
            "",
            opts.opt_level,
            kiln_codegen::Emit::Obj,
        )?)
    })?;
    write_file(&glue_o, &glue_obj)?;

    let mut objects = vec![kernel_o.clone(), glue_o.clone()];
    let shims = timed(art, "shims", || {
        artifact::shim_modules(device.is_some())
            .iter()
            .map(|(name, mlir)| {
                crate::kernel_cache::shim_object(target, opts.opt_level, name, mlir, stage.dir())
            })
            .collect::<Result<Vec<_>>>()
    })?;
    objects.extend(shims);
    if let Some(device) = &device {
        let images_o = stage.path("device.o");
        let blobs: Vec<(String, &[u8])> = device
            .images
            .iter()
            .enumerate()
            .map(|(i, im)| (artifact::device_image_symbol(i), &im.data[..]))
            .collect();
        write_file(&images_o, &kiln_codegen::blobs_object(target, &blobs)?)?;
        objects.push(images_o);
    }
    let embedded = timed(art, "weights", || {
        if total == 0 {
            return Ok(false);
        }
        write_weights(graph, lowered, &blob_path)?;
        if !tail.is_empty() {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&blob_path)
                .map_err(|e| DriverError::io("open", &blob_path, e))?;
            f.write_all(tail)
                .map_err(|e| DriverError::io("write weights to", &blob_path, e))?;
        }
        if opts.weights == WeightsMode::Embedded {
            let file = std::fs::File::open(&blob_path)
                .map_err(|e| DriverError::io("open", &blob_path, e))?;
            // SAFETY: the file is private to this compile (in the staging
            // directory) and not modified while mapped.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .map_err(|e| DriverError::io("map", &blob_path, e))?;
            kiln_codegen::write_data_object(&weights_o, target, WEIGHTS_SYMBOL, &map)?;
            drop(map);
            std::fs::remove_file(&blob_path)
                .map_err(|e| DriverError::io("remove", &blob_path, e))?;
            return Ok(true);
        }
        Ok(false)
    })?;
    if let Some(job) = kernel_job.take() {
        // The time waited for them after the work above.
        let kernels = timed(art, "kernels", || {
            job.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        objects.extend(kernels);
    }
    if embedded {
        objects.push(weights_o.clone());
    }

    let header_name = match &opts.name {
        Some(name) => output
            .parent()
            .unwrap_or(Path::new(""))
            .join(format!("{name}.h")),
        None => companion(output, "h", false),
    };
    if header_name.file_name().is_some_and(|n| n == "kiln.h") {
        return Err(DriverError::Invalid(format!(
            "the model header would be {}, the runtime's own header: choose another output \
             name or --name",
            header_name.display()
        )));
    }
    let header = artifact::model_header(
        &descriptor,
        &header_name
            .file_name()
            .map_or_else(|| "model.h".into(), |n| n.to_string_lossy().into_owned()),
    );
    write_file(&stage.path("model.h"), header.as_bytes())?;

    // Staged file → final path, the main output last.
    let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    if matches!(weights_ref, WeightsRef::External { .. }) {
        moves.push((blob_path.clone(), weights_name));
    }
    moves.push((stage.path("model.h"), header_name));
    let main = stage.path("out");
    match opts.emit {
        Emit::Lib => {
            let mut inputs: Vec<PathBuf> = objects.clone();
            if let Some(builtins) = find_compiler_builtins(target) {
                inputs.push(builtins);
            }
            if let Some(libm) = find_libm(target) {
                inputs.push(libm);
            }
            let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
            timed(art, "link", || {
                if macho {
                    Ok(kiln_codegen::link::link_macho_dylib(&refs, &main, &symbol)?)
                } else {
                    Ok(kiln_codegen::link_shared_library(&refs, &main, &[&symbol])?)
                }
            })?;
            let weights_seal = match &weights_ref {
                WeightsRef::External { .. } => Some(hash_file(&blob_path)?),
                _ => None,
            };
            let record = kiln_runtime::integrity::Record {
                abi_version: kiln_runtime::abi::ABI_VERSION,
                symbol: symbol.clone(),
                arch: target.arch().name().to_owned(),
                cpu: target.cpu().to_owned(),
                features: features.clone(),
                weights: weights_seal,
                alternates: alternates.to_vec(),
            };
            timed(art, "seal", || {
                kiln_runtime::seal_file(&main, &record)
                    .map_err(|e| DriverError::io("append the integrity record to", output, e))
            })?;
        }
        Emit::Obj => {
            let mut inputs: Vec<PathBuf> = objects.clone();
            // Soft-float helpers go into the object (as local copies), so the
            // program linking it needs no compiler-rt of LLVM's.
            if let Some(builtins) = find_compiler_builtins(target) {
                inputs.push(builtins);
            }
            let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
            timed(art, "link", || {
                relocatable_link(&refs, &main)?;
                // Only the descriptor function stays global: kiln_main, the
                // weights, the OpenMP shim and kernels become local, so any
                // number of models link into one program.
                Ok(kiln_codegen::link::localize_except(&main, &[&symbol])?)
            })?;
            let dir = output
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if opts.copy_runtime {
                write_file(&stage.path("kiln.h"), KILN_H.as_bytes())?;
                moves.push((stage.path("kiln.h"), dir.join("kiln.h")));
            }
            if let Some(archive) = runtime_archive {
                let staged = stage.path(RUNTIME_ARCHIVE);
                std::fs::copy(&archive, &staged)
                    .map_err(|e| DriverError::io("copy", &archive, e))?;
                moves.push((staged, dir.join(RUNTIME_ARCHIVE)));
            }
        }
        _ => return Err(DriverError::Internal("not an artifact stage".into())),
    }
    moves.push((main, output.to_path_buf()));
    art.files = moves.iter().rev().map(|(_, to)| to.clone()).collect();
    stage.commit(&moves)
}

/// Size and xxh3-64 checksum of a file (external weights).
fn hash_file(path: &Path) -> Result<kiln_runtime::integrity::WeightsSeal> {
    let file = std::fs::File::open(path).map_err(|e| DriverError::io("open", path, e))?;
    let size = file
        .metadata()
        .map_err(|e| DriverError::io("read", path, e))?
        .len();
    if size == 0 {
        return Ok(kiln_runtime::integrity::WeightsSeal {
            size,
            hash: kiln_runtime::integrity::hash(&[]),
        });
    }
    // SAFETY: a private file of this compile's staging directory, not
    // modified while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| DriverError::io("map", path, e))?;
    Ok(kiln_runtime::integrity::WeightsSeal {
        size,
        hash: kiln_runtime::integrity::hash(&map),
    })
}

/// Combines objects into one relocatable object with `ld.lld -r`.
fn relocatable_link(objects: &[&Path], output: &Path) -> Result<()> {
    let linker = kiln_codegen::Linker::find()?;
    if linker.kind() != kiln_codegen::LinkerKind::Lld {
        return Err(DriverError::Unsupported(
            "--emit=obj needs ld.lld (LLVM 22's linker) to combine objects".into(),
        ));
    }
    let result = std::process::Command::new(linker.program())
        .arg("-r")
        .arg("-o")
        .arg(output)
        .args(objects)
        .output()
        .map_err(|e| DriverError::io("run", linker.program(), e))?;
    if !result.status.success() {
        return Err(DriverError::Internal(format!(
            "{} -r failed with {}:\n{}",
            linker.program().display(),
            result.status,
            String::from_utf8_lossy(&result.stderr)
        )));
    }
    Ok(())
}

/// The target's C math library, passed to the linker so that the library
/// records it as needed (the lowering calls libm for `erf`, `tanh`, ...).
/// `None` when this machine has no libm for the target (cross compiles):
/// the math symbols then stay undefined in the library, and the loading
/// program must have libm loaded (a Rust or C++ program usually has).
fn find_libm(target: &Target) -> Option<PathBuf> {
    let multiarch = match target.arch() {
        Arch::X86_64 => "x86_64-linux-gnu",
        Arch::Aarch64 => "aarch64-linux-gnu",
        _ => return None,
    };
    [
        format!("/lib/{multiarch}/libm.so.6"),
        format!("/usr/lib/{multiarch}/libm.so.6"),
        format!("/usr/{multiarch}/lib/libm.so.6"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// LLVM's compiler-rt builtins archive for the target: the code generator
/// calls its soft-float helpers (`__truncdfbf2` for f64 → bf16, ...) where
/// the CPU has no instruction, and the linker pulls in only the members
/// used. `None` when LLVM 22's builtins for the target are not installed;
/// a library needing them then fails to load, naming the symbol.
fn find_compiler_builtins(target: &Target) -> Option<PathBuf> {
    let arch = match target.arch() {
        Arch::X86_64 => "x86_64",
        Arch::Aarch64 => "aarch64",
        _ => return None,
    };
    // The LLVM that kiln-codegen was built against (`.cargo/config.toml`),
    // else Debian's LLVM 22 location.
    let prefix = option_env!("LLVM_SYS_221_PREFIX").unwrap_or("/usr/lib/llvm-22");
    let clang = Path::new(prefix).join("lib/clang");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(clang)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    // The newest resource directory first (`22`, or `22.1.0` on some
    // installs).
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join(format!("lib/linux/libclang_rt.builtins-{arch}.a")))
        .find(|p| p.is_file())
}

/// The directories searched for the installed runtime (`libkiln_runtime.a`,
/// `libkiln_runtime.so`), in order: `$KILN_RUNTIME_DIR`, then next to the
/// running program: `<exe dir>/../lib` (an installed prefix, see
/// `scripts/install.sh`), `<exe dir>/../kiln-c/lib` and
/// `<exe dir>/kiln-c/lib` (where `runtime/scripts/build-c-lib.sh` puts it in
/// a cargo target directory), `<exe dir>/../../kiln-c/lib` (test binaries in
/// `deps/`), `<exe dir>`.
pub fn runtime_search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("KILN_RUNTIME_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        for rel in [
            "../lib",
            "../kiln-c/lib",
            "kiln-c/lib",
            "../../kiln-c/lib",
            ".",
        ] {
            dirs.push(exe_dir.join(rel));
        }
    }
    dirs
}

/// The first of [`runtime_search_dirs`] holding `libkiln_runtime.a`.
pub fn find_runtime_dir() -> Result<PathBuf> {
    let dirs = runtime_search_dirs();
    dirs.iter()
        .find(|d| d.join(RUNTIME_ARCHIVE).is_file())
        .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()))
        .ok_or_else(|| {
            DriverError::Invalid(format!(
                "{RUNTIME_ARCHIVE} not found (looked in {}); install Kiln with scripts/install.sh \
                 --prefix DIR, or build the runtime with runtime/scripts/build-c-lib.sh, or set \
                 KILN_RUNTIME_DIR to the folder holding it",
                dirs.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Finds `libkiln_runtime.a`: in `dir` when given, else in the first of
/// [`runtime_search_dirs`] that has it.
pub fn find_runtime_archive(dir: Option<&Path>) -> Result<PathBuf> {
    match dir {
        Some(dir) => {
            let p = dir.join(RUNTIME_ARCHIVE);
            if p.is_file() {
                Ok(p)
            } else {
                Err(DriverError::Invalid(format!(
                    "{RUNTIME_ARCHIVE} not found in --runtime-dir {}",
                    dir.display()
                )))
            }
        }
        None => Ok(find_runtime_dir()?.join(RUNTIME_ARCHIVE)),
    }
}
