//! `kiln verify`: run the compiled model next to a reference and name the
//! first node whose output diverges.
//!
//! Method:
//! 1. The graph is loaded and specialized to the inputs as `kiln run` does,
//!    then optimized with the level's pipeline except `plan-memory`: the
//!    nodes compared are the nodes the lowering sees (a fused region is one
//!    node; the report lists its body ops).
//! 2. An instrumented copy returns, besides its outputs, the result of
//!    every node (constants and weight packing aside: their bytes are the
//!    model's weights, which kernels may read without materializing them).
//!    It is planned (`plan-memory`, for -O1 and up) and compiled like any
//!    graph, once, and run on the inputs.
//! 3. Each node is checked on its own: the reference interpreter evaluates
//!    it on the operands the *compiled* code produced and the result is
//!    compared with the compiled result (tolerance by dtype). So a wrong
//!    node is found even when errors would otherwise accumulate, and the
//!    nodes after it are not blamed for its error. With precomputed
//!    reference values (ONNX Runtime, [`Reference::Values`]) node results
//!    are compared by value name instead.
//! 4. Separately, the compiled model's outputs are compared with the
//!    interpreter on the *unoptimized* graph: a difference there with no
//!    diverging node points at a graph pass.
//!
//! With weight quantization (`SessionOptions::quantize`), the graph
//! `quantize-weights` writes is the model in every step: the quantization
//! error is not what verify checks (`kiln compile --quant-report` reports it).
//!
//! Invariants: nothing here changes how `kiln compile` compiles; the
//! instrumented graph has more outputs, so its memory plan reuses less
//! (results are never written in place over an operand that is now an
//! output), which the report does not hide. `fault` (the `--inject-fault`
//! debugging option) only ever alters the instrumented copy.

use crate::error::{DriverError, Result};
use crate::session::{compile_session, SessionOptions};
use crate::tensors::{compare, Difference, HostTensor, Tolerance};
use kiln_ir::{Attrs, DTypeClass, Graph, Node, OpKind, ValueId};
use kiln_passes::Pipeline;
use std::collections::HashMap;

/// What the compiled results are compared with.
#[derive(Clone, Debug)]
pub enum Reference {
    /// The reference interpreter, node by node on the compiled operands.
    Interpreter,
    /// Values computed elsewhere (ONNX Runtime), by value name; values
    /// without an entry are not compared.
    Values(HashMap<String, HostTensor>),
}

/// How to verify.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Target, level and progress hook of the compile.
    pub session: SessionOptions,
    /// The reference.
    pub reference: Reference,
    /// `--rtol`, replacing the dtype's default ([`Tolerance::for_dtype`]).
    pub rtol: Option<f64>,
    /// `--atol`, replacing the dtype's default.
    pub atol: Option<f64>,
    /// Elements shown per diverging value.
    pub show: usize,
    /// Debugging aid for testing verify itself: the compiled copy computes
    /// a wrong first result for this node (named by its ONNX name, its
    /// first result's name, or `nn.op "name"`; a name inside a fused node
    /// selects the fused node).
    pub fault: Option<String>,
}

/// A node whose compiled result diverges from the reference.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// Position in the optimized graph's node list.
    pub index: usize,
    /// The node, `nn.op "onnx name"`.
    pub node: String,
    /// The nodes inside a fused node, in order, as `nn.op "onnx name"`
    /// (empty otherwise).
    pub body: Vec<String>,
    /// The result that diverges.
    pub value: String,
    /// The tolerance used.
    pub tolerance: Tolerance,
    /// How it diverges.
    pub difference: Difference,
}

/// The result of a verification.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Nodes whose results were compared.
    pub nodes_checked: usize,
    /// Results compared.
    pub values_checked: usize,
    /// Every diverging node, in graph order (the first is the culprit).
    pub divergences: Vec<Divergence>,
    /// The compiled model's outputs against the interpreter on the
    /// unoptimized graph: one entry per output that differs.
    pub output_differences: Vec<(String, Difference)>,
    /// Nodes in the optimized graph, constants aside.
    pub nodes: usize,
}

impl VerifyReport {
    /// Whether the compiled model agrees with the reference everywhere.
    pub fn passed(&self) -> bool {
        self.divergences.is_empty() && self.output_differences.is_empty()
    }
}

/// Nodes whose results are weight plumbing the compiled code may never
/// materialize (a kernel reads packed weights directly): the interpreter
/// evaluates them for the nodes that use them, and they are not compared
/// (their consumers are).
fn reference_only(op: OpKind) -> bool {
    matches!(op, OpKind::Constant | OpKind::Pack | OpKind::Unpack)
}

/// The graph passes of `pipeline` (everything but `plan-memory`) and the
/// planning passes that must run last.
fn split_pipeline(pipeline: &Pipeline) -> (Pipeline, Pipeline) {
    let (plan, passes): (Vec<_>, Vec<_>) = pipeline
        .passes
        .iter()
        .partition(|p| p.name == "plan-memory");
    (Pipeline { passes }, Pipeline { passes: plan })
}

/// Finds the node `name` names: its ONNX name, its first result's name or
/// its description; or the fused node whose body holds such a node (the
/// optimizer may have fused the op the user knows by name).
fn find_node(g: &Graph, name: &str) -> Option<usize> {
    let names = |g: &Graph, n: &Node| {
        n.loc.as_deref() == Some(name)
            || n.outputs.first().is_some_and(|&v| g.value(v).name == name)
            || n.describe() == name
    };
    g.nodes.iter().position(|n| names(g, n)).or_else(|| {
        g.nodes.iter().position(|n| {
            n.body
                .as_ref()
                .is_some_and(|b| b.nodes.iter().any(|inner| names(b, inner)))
        })
    })
}

/// Makes node `index` compute a wrong first result: the node now writes a
/// fresh value, and an inserted node computes the old value from it with
/// an op that changes every finite element (`exp` for floats, bitwise not
/// for integers, not for bools).
fn inject_fault(g: &mut Graph, name: &str) -> Result<()> {
    let index = find_node(g, name).ok_or_else(|| {
        DriverError::Invalid(format!(
            "--inject-fault {name}: no node of the optimized graph has that name"
        ))
    })?;
    let v = g.nodes[index].outputs[0];
    let ty = g.value(v).ty.clone();
    let op = match (ty.dtype.class(), ty.dtype.bits()) {
        (DTypeClass::Float, 16 | 32 | 64) => OpKind::Exp,
        (DTypeClass::SignedInt | DTypeClass::UnsignedInt, 8 | 16 | 32 | 64) => OpKind::BitwiseNot,
        (DTypeClass::Bool, _) => OpKind::Not,
        _ => {
            return Err(DriverError::Unsupported(format!(
                "--inject-fault {name}: cannot alter a {} result",
                ty.dtype.name()
            )))
        }
    };
    let raw = g.add_value(&format!("{}.before_fault", g.value(v).name), ty);
    g.nodes[index].outputs[0] = raw;
    g.nodes.insert(
        index + 1,
        Node {
            op,
            inputs: vec![Some(raw)],
            outputs: vec![v],
            attrs: Attrs::new(),
            loc: Some(format!("fault injected into {name}")),
            body: None,
        },
    );
    Ok(())
}

/// Verifies `graph` (loaded and specialized, not yet optimized) on
/// `inputs`.
pub fn verify(graph: Graph, inputs: &[HostTensor], opts: &VerifyOptions) -> Result<VerifyReport> {
    // With weight quantization, the graph quantize-weights writes is the model: both the
    // reference (node by node and end to end) and what is compiled (without quantizing again).
    let mut graph = graph;
    let mut session_opts = opts.session.clone();
    if session_opts.quantize.scheme.is_some() {
        crate::session::quantize_for_interpreter(&mut graph, &session_opts.quantize)?;
        session_opts.quantize = kiln_passes::QuantizeOptions::default();
    }
    let pipeline = Pipeline::for_level(opts.session.opt_level.number());
    let (passes, planning) = split_pipeline(&pipeline);
    let original = graph.clone();
    let mut optimized = graph;
    // The same target facts (layouts, packing, fusion limits) as a compile.
    let target = match &opts.session.target {
        Some(t) => t.clone(),
        None => kiln_codegen::Target::host()?,
    };
    let facts = crate::compile::target_facts(&target);
    crate::compile::optimize_for(&mut optimized, &passes, &facts)?;
    if let Some(list) = crate::load::dynamic_inputs(&optimized) {
        return Err(DriverError::Invalid(format!(
            "the model has inputs with dynamic shapes ({list}); give inputs (--input) or \
             --input-shape so that verify can generate inputs of the right shape"
        )));
    }

    // Every node result but constants becomes an output, in node order.
    let mut instrumented = optimized.clone();
    let mut slot: HashMap<ValueId, usize> = instrumented
        .outputs
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, i))
        .collect();
    for node in &optimized.nodes {
        if reference_only(node.op) {
            continue;
        }
        for &v in &node.outputs {
            if let std::collections::hash_map::Entry::Vacant(e) = slot.entry(v) {
                e.insert(instrumented.outputs.len());
                instrumented.outputs.push(v);
            }
        }
    }
    if let Some(name) = &opts.fault {
        inject_fault(&mut instrumented, name)?;
    }
    let session = compile_session(
        instrumented,
        &session_opts,
        Some(planning),
        Vec::new(),
        Vec::new(),
    )?;
    let results = session.run(inputs)?;
    let compiled = |v: ValueId| slot.get(&v).and_then(|&i| results.get(i));

    let mut report = VerifyReport {
        nodes: optimized
            .nodes
            .iter()
            .filter(|n| !reference_only(n.op))
            .count(),
        ..VerifyReport::default()
    };
    // Values the reference interpreter needs that were not compiled
    // outputs: graph inputs and constants.
    let mut env: HashMap<ValueId, kiln_interp::Tensor> = HashMap::new();
    for (&v, t) in optimized.inputs.iter().zip(session.order_inputs(inputs)?) {
        env.insert(v, t.to_interp()?);
    }
    let limits = kiln_interp::Limits {
        max_elements: u64::MAX,
    };
    for (index, node) in optimized.nodes.iter().enumerate() {
        // The interpreter's value of `node` on the compiled operands (or, for
        // operands the compiled run does not return, the interpreter's own).
        let evaluate = |env: &HashMap<ValueId, kiln_interp::Tensor>| -> Result<_> {
            let operands: Vec<Option<kiln_interp::Tensor>> = node
                .inputs
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(v) => match compiled(*v) {
                        Some(t) => t.to_interp().map(Some),
                        None => env.get(v).cloned().map(Some).ok_or_else(|| {
                            DriverError::Internal(format!(
                                "verify: operand '{}' of {} has no value",
                                optimized.value(*v).name,
                                node.describe()
                            ))
                        }),
                    },
                })
                .collect::<Result<_>>()?;
            let refs: Vec<Option<&kiln_interp::Tensor>> =
                operands.iter().map(Option::as_ref).collect();
            Ok(kiln_interp::eval_node(
                optimized.weights(),
                node,
                &refs,
                &limits,
            )?)
        };
        if reference_only(node.op) {
            let outs = evaluate(&env)?;
            env.extend(node.outputs.iter().copied().zip(outs));
            continue;
        }
        let reference: Vec<Option<HostTensor>> = match &opts.reference {
            Reference::Interpreter => {
                let outs = evaluate(&env)?;
                node.outputs
                    .iter()
                    .zip(&outs)
                    .map(|(&v, t)| Some(HostTensor::from_interp(&optimized.value(v).name, t)))
                    .collect()
            }
            Reference::Values(values) => node
                .outputs
                .iter()
                .map(|&v| values.get(&optimized.value(v).name).cloned())
                .collect(),
        };
        let mut checked = false;
        for (&v, want) in node.outputs.iter().zip(&reference) {
            let (Some(want), Some(got)) = (want, compiled(v)) else {
                continue;
            };
            checked = true;
            report.values_checked += 1;
            let tolerance = Tolerance::for_dtype(want.dtype).with(opts.rtol, opts.atol);
            if let Some(difference) = compare(want, got, Some(tolerance), opts.show) {
                report.divergences.push(Divergence {
                    index,
                    node: node.describe(),
                    body: node
                        .body
                        .as_ref()
                        .map(|b| b.nodes.iter().map(Node::describe).collect())
                        .unwrap_or_default(),
                    value: optimized.value(v).name.clone(),
                    tolerance,
                    difference,
                });
                // One divergence per node: its other results follow from it.
                break;
            }
        }
        report.nodes_checked += usize::from(checked);
    }

    // End to end: the compiled outputs against the unoptimized graph.
    let ordered = session.order_inputs(inputs)?;
    let ins = ordered
        .iter()
        .map(|t| t.to_interp())
        .collect::<Result<Vec<_>>>()?;
    let expected = kiln_interp::run_graph_with(&original, &ins, &limits)?;
    for ((t, &v), got) in expected.iter().zip(&original.outputs).zip(&results) {
        let want = HostTensor::from_interp(&original.value(v).name, t);
        let tolerance = Tolerance::for_dtype(want.dtype).with(opts.rtol, opts.atol);
        if let Some(d) = compare(&want, got, Some(tolerance), opts.show) {
            report.output_differences.push((want.name.clone(), d));
        }
    }
    Ok(report)
}

/// Seeded pseudo-random tensors for `specs` (static shapes): floats
/// uniform in [-1, 1), integers in [0, 3) (valid as small indices and
/// counts), bools either way. The same seed gives the same tensors on every
/// machine (xorshift, not the platform's generator).
pub fn random_inputs(specs: &[crate::TensorSpec], seed: u64) -> Result<Vec<HostTensor>> {
    use rand_core::{Rng, SeedableRng};
    let mut rng = rand_xorshift::XorShiftRng::seed_from_u64(seed);
    specs
        .iter()
        .map(|info| {
            let shape = info.shape.clone().ok_or_else(|| {
                DriverError::Invalid(format!(
                    "input '{}' has a dynamic shape; give it with --input or fix its shape \
                     with --input-shape",
                    info.name
                ))
            })?;
            let n: u64 = shape.iter().product();
            let n = usize::try_from(n)
                .map_err(|_| DriverError::Limit(format!("input '{}' is too large", info.name)))?;
            let t = if info.dtype.is_float() {
                let unit = |r: u64| (r >> 11) as f64 / (1u64 << 53) as f64;
                let values = (0..n).map(|_| unit(rng.next_u64()) * 2.0 - 1.0).collect();
                kiln_interp::Tensor::from_f64(info.dtype, shape, values)
            } else {
                let range = match info.dtype.class() {
                    DTypeClass::Bool => 2,
                    // Any 4-bit code of the NF4 code book.
                    DTypeClass::Quant => 16,
                    _ => 3,
                };
                let values = (0..n).map(|_| i128::from(rng.next_u64() % range)).collect();
                kiln_interp::Tensor::from_ints(info.dtype, shape, values)
            };
            Ok(HostTensor::from_interp(&info.name, &t))
        })
        .collect()
}
