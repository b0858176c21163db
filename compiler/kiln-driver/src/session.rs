//! Running a model: a compiled artifact through the runtime, a model file
//! compiled into a temporary directory first, or (`--interpret`) the
//! reference interpreter; plus latency benchmarking.
//!
//! Opening takes two steps so that inputs can be read between them:
//! [`Prepared::open`] loads an artifact or a model file and knows the input
//! names; [`Prepared::into_session`] compiles (for a model file) and returns
//! the [`Session`].
//!
//! Invariants:
//! - Inputs are matched to graph inputs by name; every input must be given
//!   exactly once and unknown names are errors. Dtype and shape are checked
//!   by the runtime (or the interpreter), never trusted.
//! - A model compiled on the fly lives in a temporary directory owned by the
//!   [`Session`] and removed with it.
//! - When the inputs are known at open time, the temporary artifact is
//!   specialized to the given values of shape-defining inputs (those
//!   feeding an op's `static_operands`: Reshape's shape, a reduction's
//!   axes, TopK's k, ...; see [`crate::specialize`]) and to the given
//!   shapes of dynamic inputs. Such a session checks on every run that a
//!   specialized input still holds the value it was compiled for. A
//!   deployed artifact built with `kiln compile` keeps them as inputs
//!   unless `--freeze-input` is given.
//! - Benchmark statistics use the nearest-rank method, like
//!   `scripts/bench_ort.py`, so numbers compare.

use crate::compile::{compile, Artifacts, CompileOptions, Emit};
use crate::error::{DriverError, Result};
use crate::load::{load, LoadOptions};
use crate::specialize::{bind_input_shapes, freeze_inputs, shape_defining_inputs};
use crate::tensors::HostTensor;
use kiln_codegen::{OptLevel, Target};
use kiln_ir::{DType, Graph};
use kiln_runtime::{TensorMut, TensorRef};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A model input or output as the session sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// The name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Static shape, or `None` when the interpreter runs a dynamic graph.
    pub shape: Option<Vec<u64>>,
}

/// How to open a session.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Use the reference interpreter instead of compiling.
    pub interpret: bool,
    /// Loading options for model files.
    pub load: LoadOptions,
    /// Target for compiling model files (must be this machine).
    pub target: Option<Target>,
    /// Optimisation level for compiling model files.
    pub opt_level: OptLevel,
    /// Told each compile stage of a model file as it starts.
    pub on_stage: Option<crate::compile::StageHook>,
    /// The device a GPU artifact runs on (an index among its driver's devices; `None`:
    /// `KILN_DEVICE`, else the driver's default). CPU artifacts ignore it.
    pub device: Option<u32>,
    /// Weight quantization of a model file (`quantize-weights`, as `kiln compile --quantize`):
    /// added to the compile pipeline, or run alone before the interpreter. No scheme: none.
    /// An artifact with a scheme is refused (it was compiled already).
    pub quantize: kiln_passes::QuantizeOptions,
}

/// The runtime's loading options for a session's artifact.
fn runtime_options(opts: &SessionOptions) -> kiln_runtime::LoadOptions {
    kiln_runtime::LoadOptions {
        device: opts.device,
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            interpret: false,
            load: LoadOptions::default(),
            target: None,
            opt_level: OptLevel::O3,
            on_stage: None,
            device: None,
            quantize: kiln_passes::QuantizeOptions::default(),
        }
    }
}

enum Engine {
    Compiled {
        /// Boxed: a model is much larger than the interpreter's variant.
        model: Box<kiln_runtime::Model>,
        /// Keeps an on-the-fly artifact alive (dropped after `model`).
        _dir: Option<tempfile::TempDir>,
    },
    Interpreted(Box<Graph>),
}

/// A loaded model ready to run.
pub struct Session {
    engine: Engine,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    /// Inputs compiled into the artifact as constants, with their values.
    specialized: Vec<HostTensor>,
    /// Outputs computed at compile time (see [`Artifacts::constant_outputs`]).
    constant_outputs: Vec<String>,
}

fn runtime_dtype(d: kiln_runtime::DType) -> Result<DType> {
    DType::from_abi_code(d.code())
        .ok_or_else(|| DriverError::Internal(format!("runtime dtype code {}", d.code())))
}

enum Loaded {
    Artifact(Box<kiln_runtime::Model>),
    Graph(Box<Graph>),
    /// An ONNX model whose control flow depends on the values of these
    /// inputs: it is imported once they are given.
    NeedsValues(PathBuf, Vec<String>),
}

/// An artifact or model file, loaded but not yet compiled.
pub struct Prepared {
    loaded: Loaded,
    opts: SessionOptions,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

fn graph_specs(graph: &Graph, values: &[kiln_ir::ValueId]) -> Vec<TensorSpec> {
    values
        .iter()
        .map(|&v| {
            let info = graph.value(v);
            TensorSpec {
                name: info.name.clone(),
                dtype: info.ty.dtype,
                shape: info.ty.static_shape(),
            }
        })
        .collect()
}

fn model_specs(model: &kiln_runtime::Model) -> Result<(Vec<TensorSpec>, Vec<TensorSpec>)> {
    let spec = |i: &kiln_runtime::TensorInfo| -> Result<TensorSpec> {
        Ok(TensorSpec {
            name: i.name().to_owned(),
            dtype: runtime_dtype(i.dtype())?,
            shape: Some(i.shape().iter().map(|&d| d as u64).collect()),
        })
    };
    let inputs = model.inputs().iter().map(spec).collect::<Result<_>>()?;
    let outputs = model.outputs().iter().map(spec).collect::<Result<_>>()?;
    Ok((inputs, outputs))
}

impl Prepared {
    /// Loads an artifact or a model file (ONNX or Kiln IR), told apart by
    /// content ([`crate::load::detect`]), whatever the file is called.
    pub fn open(path: &Path, opts: &SessionOptions) -> Result<Prepared> {
        let is_artifact = crate::load::detect(path)? == crate::load::FileKind::Artifact;
        let (loaded, inputs, outputs) = if is_artifact {
            if opts.interpret {
                return Err(DriverError::Invalid(format!(
                    "{}: --interpret needs a model file (ONNX or Kiln IR), not a compiled artifact",
                    path.display()
                )));
            }
            if opts.quantize.scheme.is_some() {
                return Err(DriverError::Invalid(format!(
                    "{}: --quantize needs a model file (ONNX or Kiln IR); a compiled artifact \
                     keeps the weights it was compiled with",
                    path.display()
                )));
            }
            let model = kiln_runtime::Model::load_with(path, &runtime_options(opts))?;
            let (inputs, outputs) = model_specs(&model)?;
            (Loaded::Artifact(Box::new(model)), inputs, outputs)
        } else {
            match load(path, &opts.load) {
                Ok(graph) => {
                    let inputs = graph_specs(&graph, &graph.inputs);
                    let outputs = graph_specs(&graph, &graph.outputs);
                    (Loaded::Graph(Box::new(graph)), inputs, outputs)
                }
                Err(DriverError::Onnx(kiln_onnx::OnnxError::NeedsInputValues {
                    inputs: needed,
                    ..
                })) => {
                    let (inputs, outputs) = onnx_specs(path)?;
                    (
                        Loaded::NeedsValues(path.to_path_buf(), needed),
                        inputs,
                        outputs,
                    )
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Prepared {
            loaded,
            opts: opts.clone(),
            inputs,
            outputs,
        })
    }

    /// Whether [`Prepared::into_session`] compiles (a model file, not
    /// interpreted).
    pub fn needs_compile(&self) -> bool {
        !self.opts.interpret && !matches!(self.loaded, Loaded::Artifact(_))
    }

    /// Sets the hook told each compile stage (a progress display).
    pub fn set_stage_hook(&mut self, hook: crate::compile::StageHook) {
        self.opts.on_stage = Some(hook);
    }

    /// Every input of the artifact or model, in order.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// Names of the inputs, in order.
    pub fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|s| s.name.clone()).collect()
    }

    /// Names of the outputs, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|s| s.name.clone()).collect()
    }

    /// The inputs a compile for given inputs would specialize to their
    /// values (none for an artifact or the interpreter).
    pub fn shape_defining_inputs(&self) -> Vec<String> {
        match &self.loaded {
            Loaded::Graph(g) if !self.opts.interpret => shape_defining_inputs(g),
            Loaded::NeedsValues(_, needed) => needed.clone(),
            _ => Vec::new(),
        }
    }

    /// Opens the session. For a model file to be compiled, `given` (the
    /// inputs it will run on, when known) specializes the temporary
    /// artifact: shape-defining inputs become constants and dynamic input
    /// extents take the given shapes.
    pub fn into_session(self, given: Option<&[HostTensor]>) -> Result<Session> {
        let Prepared {
            loaded,
            opts,
            inputs,
            outputs,
        } = self;
        let (mut graph, mut specialized, inputs) = match loaded {
            Loaded::Artifact(model) => return Session::from_model(*model, None, Vec::new()),
            Loaded::Graph(graph) => (graph, Vec::new(), inputs),
            Loaded::NeedsValues(path, needed) => {
                let (graph, known) = load_with_values(&path, &opts.load, needed, given)?;
                let inputs = graph_specs(&graph, &graph.inputs);
                (Box::new(graph), known, inputs)
            }
        };
        if opts.interpret {
            if opts.quantize.scheme.is_some() {
                quantize_for_interpreter(&mut graph, &opts.quantize)?;
            }
            return Ok(Session {
                engine: Engine::Interpreted(graph),
                inputs,
                outputs,
                specialized,
                constant_outputs: Vec::new(),
            });
        }
        let mut frozen = Vec::new();
        if let Some(given) = given {
            frozen = specialize(&mut graph, given, &mut specialized)?;
        }
        compile_session(*graph, &opts, None, specialized, frozen)
    }

    /// The graph a compile for `given` would start from: loaded (ONNX
    /// control flow expanded with the given values) and specialized as
    /// [`Prepared::into_session`] does; the tensors compiled in as
    /// constants come with it. An artifact has no graph (an error).
    pub fn into_graph(self, given: &[HostTensor]) -> Result<(Graph, Vec<HostTensor>)> {
        let (mut graph, mut specialized) = match self.loaded {
            Loaded::Artifact(_) => {
                return Err(DriverError::Invalid(
                    "a compiled artifact has no graph; give a model file (ONNX or Kiln IR)".into(),
                ))
            }
            Loaded::Graph(graph) => (*graph, Vec::new()),
            Loaded::NeedsValues(path, needed) => {
                load_with_values(&path, &self.opts.load, needed, Some(given))?
            }
        };
        specialize(&mut graph, given, &mut specialized)?;
        Ok((graph, specialized))
    }
}

/// Runs `quantize-weights` alone on a graph the interpreter will run (what
/// `kiln opt --passes=quantize-weights --quantize=...` writes), so that it
/// computes with the quantized weights a compiled session would use.
pub(crate) fn quantize_for_interpreter(
    graph: &mut Graph,
    q: &kiln_passes::QuantizeOptions,
) -> Result<()> {
    let pipeline = kiln_passes::Pipeline::parse("quantize-weights")
        .map_err(|e| DriverError::Invalid(format!("internal: {e}")))?;
    let pass = kiln_passes::PassOptions {
        quantize: q.clone(),
        ..kiln_passes::PassOptions::default()
    };
    crate::compile::optimize_with(graph, &pipeline, &pass)
}

/// Freezes the given values of shape-defining inputs (adding them to
/// `specialized`) and binds dynamic input extents to the given shapes.
fn specialize(
    graph: &mut Graph,
    given: &[HostTensor],
    specialized: &mut Vec<HostTensor>,
) -> Result<Vec<String>> {
    let wanted = shape_defining_inputs(graph);
    let frozen: Vec<HostTensor> = given
        .iter()
        .filter(|t| wanted.contains(&t.name))
        .cloned()
        .collect();
    let weights = freeze_inputs(graph, &frozen)?;
    specialized.extend(frozen);
    bind_input_shapes(graph, given)?;
    Ok(weights)
}

/// Compiles `graph` into a temporary artifact (with `pipeline` instead of
/// the level's pipeline when given) and opens it.
pub(crate) fn compile_session(
    graph: Graph,
    opts: &SessionOptions,
    pipeline: Option<kiln_passes::Pipeline>,
    specialized: Vec<HostTensor>,
    frozen_weights: Vec<String>,
) -> Result<Session> {
    let dir = tempfile::Builder::new()
        .prefix("kiln-run-")
        .tempdir()
        .map_err(|e| DriverError::io("create a temporary directory in", std::env::temp_dir(), e))?;
    let so = dir.path().join("model.so");
    let target = match &opts.target {
        Some(t) => t.clone(),
        None => Target::host()?,
    };
    let mut copts = CompileOptions::new(target, Some(so.clone()));
    copts.emit = Emit::Lib;
    copts.set_level(opts.opt_level);
    if let Some(p) = pipeline {
        copts.pipeline = p;
    }
    copts.set_quantize(opts.quantize.clone());
    copts.on_stage = opts.on_stage.clone();
    // Inputs frozen only to fix shapes: the data path they feed stays
    // generated code (see kiln_passes' fold-constants).
    copts.pass_options.specialized_inputs = frozen_weights.into_iter().collect();
    let Artifacts {
        constant_outputs, ..
    } = compile(graph, &copts)?;
    let model = kiln_runtime::Model::load_with(&so, &runtime_options(opts))?;
    let mut session = Session::from_model(model, Some(dir), specialized)?;
    session.constant_outputs = constant_outputs;
    Ok(session)
}

/// The declared inputs and outputs of an ONNX model, for a model that
/// cannot be imported before some input values are known.
fn onnx_specs(path: &Path) -> Result<(Vec<TensorSpec>, Vec<TensorSpec>)> {
    let model = kiln_onnx::load_model(path)?;
    let spec = |v: &kiln_onnx::OnnxValueInfo| TensorSpec {
        name: v.name.clone(),
        dtype: v.dtype.unwrap_or(DType::F32),
        shape: v.tensor_type().and_then(|t| t.static_shape()),
    };
    let inputs = model.graph.runtime_inputs().map(spec).collect();
    let outputs = model.graph.outputs.iter().map(spec).collect();
    Ok((inputs, outputs))
}

/// Imports a model whose control flow needs the values of `needed`, taking
/// them from `given`. Expanding one loop can reveal another that needs
/// more inputs, so this repeats while the importer asks for values that
/// are given and not yet known. Returns the graph and the inputs compiled
/// in as constants.
fn load_with_values(
    path: &Path,
    opts: &LoadOptions,
    mut needed: Vec<String>,
    given: Option<&[HostTensor]>,
) -> Result<(Graph, Vec<HostTensor>)> {
    let mut opts = opts.clone();
    let given = given.unwrap_or_default();
    loop {
        opts.input_values = given
            .iter()
            .filter(|t| needed.contains(&t.name))
            .cloned()
            .collect();
        match load(path, &opts) {
            Ok(graph) => return Ok((graph, opts.input_values)),
            Err(DriverError::Onnx(kiln_onnx::OnnxError::NeedsInputValues { inputs, .. }))
                if inputs
                    .iter()
                    .any(|n| !needed.contains(n) && given.iter().any(|t| &t.name == n)) =>
            {
                needed.extend(inputs);
                needed.sort();
                needed.dedup();
            }
            Err(e) => return Err(e),
        }
    }
}

impl Session {
    /// Opens an artifact (`.so`) or a model file (`.onnx`, `.kir`) without
    /// knowing its inputs (no specialization; see [`Prepared`]).
    pub fn open(path: &Path, opts: &SessionOptions) -> Result<Session> {
        Prepared::open(path, opts)?.into_session(None)
    }

    fn from_model(
        model: kiln_runtime::Model,
        dir: Option<tempfile::TempDir>,
        specialized: Vec<HostTensor>,
    ) -> Result<Session> {
        let (inputs, outputs) = model_specs(&model)?;
        Ok(Session {
            engine: Engine::Compiled {
                model: Box::new(model),
                _dir: dir,
            },
            inputs,
            outputs,
            specialized,
            constant_outputs: Vec::new(),
        })
    }

    /// Names of the outputs of a model compiled on the fly that are
    /// constants after the graph pipeline: computed at compile time, so no
    /// generated code computes them. Empty for artifacts and the
    /// interpreter.
    pub fn constant_outputs(&self) -> &[String] {
        &self.constant_outputs
    }

    /// Names of the inputs compiled in as constants (see the module doc);
    /// [`Session::run`] accepts them and checks their values.
    pub fn specialized_inputs(&self) -> Vec<String> {
        self.specialized.iter().map(|t| t.name.clone()).collect()
    }

    /// The model's inputs, in order.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// The model's outputs, in order.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// The CPU the loaded artifact was built for (for a multi-versioned
    /// one, the build chosen for this machine); `None` when interpreting.
    pub fn cpu(&self) -> Option<&str> {
        match &self.engine {
            Engine::Compiled { model, .. } => Some(model.cpu()),
            Engine::Interpreted(_) => None,
        }
    }

    /// Whether the session runs compiled code (not the interpreter).
    pub fn is_compiled(&self) -> bool {
        matches!(self.engine, Engine::Compiled { .. })
    }

    /// Sets the runtime's thread count (0 = default: `KILN_NUM_THREADS`,
    /// else every core; a malformed value is an error); no effect when
    /// interpreting.
    pub fn set_num_threads(&self, n: u32) -> Result<()> {
        if let Engine::Compiled { model, .. } = &self.engine {
            model.set_num_threads(n)?;
        }
        Ok(())
    }

    /// Puts `inputs` (any order, matched by name) into graph-input order.
    /// Specialized inputs may be given too; they must hold the values the
    /// session was compiled for, and are left out of the result.
    pub fn order_inputs<'a>(&self, inputs: &'a [HostTensor]) -> Result<Vec<&'a HostTensor>> {
        for t in inputs {
            if let Some(fixed) = self.specialized.iter().find(|s| s.name == t.name) {
                if fixed != t {
                    return Err(DriverError::Invalid(format!(
                        "input '{}' was compiled in as a constant when the session was opened \
                         (it decides shapes), and now has another value",
                        t.name
                    )));
                }
                continue;
            }
            if !self.inputs.iter().any(|s| s.name == t.name) {
                return Err(DriverError::Invalid(format!(
                    "'{}' is not a model input (inputs: {})",
                    t.name,
                    self.input_names().join(", ")
                )));
            }
        }
        self.inputs
            .iter()
            .map(|s| {
                let mut found = inputs.iter().filter(|t| t.name == s.name);
                match (found.next(), found.next()) {
                    (Some(t), None) => Ok(t),
                    (None, _) => Err(DriverError::Invalid(format!(
                        "input '{}' ({} {:?}) is missing",
                        s.name,
                        s.dtype.name(),
                        s.shape
                    ))),
                    (Some(_), Some(_)) => Err(DriverError::Invalid(format!(
                        "input '{}' is given twice",
                        s.name
                    ))),
                }
            })
            .collect()
    }

    /// Names of the inputs, in order.
    pub fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|s| s.name.clone()).collect()
    }

    /// Names of the outputs, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|s| s.name.clone()).collect()
    }

    /// Zero-filled output buffers for a compiled model.
    pub fn output_buffers(&self) -> Result<Vec<HostTensor>> {
        self.outputs
            .iter()
            .map(|s| HostTensor::zeros(&s.name, s.dtype, s.shape.as_deref().unwrap_or(&[])))
            .collect()
    }

    /// Runs the model; inputs are matched by name.
    pub fn run(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
        let ordered = self.order_inputs(inputs)?;
        match &self.engine {
            Engine::Compiled { .. } => {
                let mut outputs = self.output_buffers()?;
                self.run_into(&ordered, &mut outputs)?;
                Ok(outputs)
            }
            Engine::Interpreted(graph) => {
                let ins = ordered
                    .iter()
                    .map(|t| t.to_interp())
                    .collect::<Result<Vec<_>>>()?;
                let outs = kiln_interp::run_graph(graph, &ins)?;
                Ok(outs
                    .iter()
                    .zip(&self.outputs)
                    .map(|(t, s)| HostTensor::from_interp(&s.name, t))
                    .collect())
            }
        }
    }

    /// Runs a compiled model into preallocated outputs (graph order on both
    /// sides); for the interpreter it allocates and copies.
    pub fn run_into(&self, inputs: &[&HostTensor], outputs: &mut [HostTensor]) -> Result<()> {
        match &self.engine {
            Engine::Compiled { model, .. } => {
                let in_shapes: Vec<Vec<i64>> = inputs
                    .iter()
                    .map(|t| t.shape.iter().map(|&d| d as i64).collect())
                    .collect();
                let out_shapes: Vec<Vec<i64>> = outputs
                    .iter()
                    .map(|t| t.shape.iter().map(|&d| d as i64).collect())
                    .collect();
                let ins: Vec<TensorRef<'_>> = inputs
                    .iter()
                    .zip(&in_shapes)
                    .map(|(t, s)| Ok(TensorRef::new(rt_dtype(t.dtype)?, s, t.data.as_ref())))
                    .collect::<Result<_>>()?;
                let mut outs: Vec<TensorMut<'_>> = Vec::with_capacity(outputs.len());
                for (t, s) in outputs.iter_mut().zip(&out_shapes) {
                    let dtype = rt_dtype(t.dtype)?;
                    outs.push(TensorMut::new(dtype, s, AsMut::<[u8]>::as_mut(&mut t.data)));
                }
                model.run(&ins, &mut outs)?;
                Ok(())
            }
            Engine::Interpreted(_) => {
                let owned: Vec<HostTensor> = inputs.iter().map(|t| (*t).clone()).collect();
                let result = self.run(&owned)?;
                for (o, r) in outputs.iter_mut().zip(result) {
                    *o = r;
                }
                Ok(())
            }
        }
    }
}

fn rt_dtype(d: DType) -> Result<kiln_runtime::DType> {
    kiln_runtime::DType::from_code(d.abi_code()).ok_or_else(|| {
        DriverError::Unsupported(format!("dtype {} is not known to the runtime", d.name()))
    })
}

/// Benchmark settings.
#[derive(Clone, Copy, Debug)]
pub struct BenchOptions {
    /// Untimed runs first.
    pub warmup: usize,
    /// Timed runs.
    pub runs: usize,
    /// Runtime threads (0 = default).
    pub threads: u32,
}

/// Latency statistics in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// Median (nearest rank).
    pub median_ms: f64,
    /// 90th percentile (nearest rank).
    pub p90_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// The q-quantile (0 < q <= 1) of sorted values by the nearest-rank method.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Times `runs` runs after `warmup` untimed ones, each run timed alone.
pub fn bench(session: &Session, inputs: &[HostTensor], opts: &BenchOptions) -> Result<BenchResult> {
    if opts.runs == 0 {
        return Err(DriverError::Invalid("--runs must be at least 1".into()));
    }
    session.set_num_threads(opts.threads)?;
    let ordered = session.order_inputs(inputs)?;
    let mut outputs = session.output_buffers()?;
    for _ in 0..opts.warmup {
        session.run_into(&ordered, &mut outputs)?;
    }
    let mut times = Vec::with_capacity(opts.runs);
    for _ in 0..opts.runs {
        let t0 = Instant::now();
        session.run_into(&ordered, &mut outputs)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(BenchResult {
        median_ms: nearest_rank(&times, 0.5),
        p90_ms: nearest_rank(&times, 0.9),
        min_ms: times[0],
        mean_ms: times.iter().sum::<f64>() / times.len() as f64,
    })
}

/// Zero-filled inputs for every (static) model input, their memory written
/// ([`AlignedBytes::make_resident`](crate::tensors::AlignedBytes::make_resident)).
pub fn zero_inputs(session: &Session) -> Result<Vec<HostTensor>> {
    session
        .inputs()
        .iter()
        .map(|s| match &s.shape {
            Some(shape) => {
                let mut t = HostTensor::zeros(&s.name, s.dtype, shape)?;
                t.data.make_resident();
                Ok(t)
            }
            None => Err(DriverError::Invalid(format!(
                "input '{}' has a dynamic shape; give its data with --input",
                s.name
            ))),
        })
        .collect()
}
