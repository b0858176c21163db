//! Lowering of a verified, fully static Kiln graph to MLIR text in upstream
//! dialects (`func`, `linalg`, `tensor`, `arith`, `math`, `memref`,
//! `bufferization`), ready for a CPU pipeline such as [`CPU_PIPELINE`].
//!
//! The generated module has one function with static memref arguments and no
//! results, called with the bare-pointer convention:
//!
//! ```text
//! func.func @kiln_main(%in0: memref<..>, .., %out0: memref<..>, .., %weights: memref<Nxi8>)
//! ```
//!
//! Invariants:
//! - Weight bytes never enter the MLIR text: each constant is a
//!   `memref.view` of `%weights` at the 64-byte-aligned offset recorded in
//!   [`WeightsLayout`], and [`WeightsLayout::write_to`] streams the blob.
//! - Inputs enter tensor land with `bufferization.to_tensor .. restrict` and
//!   results leave with `bufferization.materialize_in_destination .. restrict
//!   writable`, which copies whenever a result aliases an input, a weight or
//!   another result.
//! - An argument with a zero extent is declared `memref<0xT>` (see
//!   `arg_ty`): it keeps its pointer in the ABI but is never accessed.
//! - Every unsupported node is reported (not only the first), each named by
//!   [`kiln_ir::Node::describe`].
//! - Each op family has one emitter module; elementwise ops share one
//!   table-driven broadcasting emitter ([`elementwise`]).
//!
//! Storage type vs compute type ([`storage`]): the storage-only dtypes
//! (`f8e4m3fn`, `f8e5m2`, and the packed `i4`, `u4`, `nf4`) have no
//! arithmetic of their own here. Inside the function their values live in a
//! wider compute type (`f32` holding the exact float8 value, `i8` holding
//! the 4-bit value or NF4 code); the arguments and weights keep the storage
//! layout (`memref<..xi8>` of the float8 shape, `memref<ceil(N/2)xi8>` for
//! `N` packed elements), decoded right after they enter tensor land and
//! encoded right before results are written. Only `nn.cast`, the `quant`
//! ops and exact data movement ([`moves_only`]) take or produce values of
//! these dtypes; each producer rounds to the float8 grid (`nn.cast` to
//! float8 means "round to the nearest float8 value, saturating or not, and
//! keep it as `f32`") or wraps to 4 bits, so casts *from* these dtypes are
//! exact. Any other op on them is reported unsupported.

mod attention;
mod ctx;
mod elementwise;
mod grid;
mod index;
mod kernels;
mod layout;
mod linalg;
mod norm;
mod planned;
mod pool;
mod quant;
mod reduce;
mod resize;
mod shape;
mod signal;
mod storage;

#[cfg(test)]
mod tests;

use ctx::{elem, memref_ty, Builder, Res, Val};
use kiln_ir::ops::infer::{ConstOperand, InferCtx};
use kiln_ir::{Attr, DType, Graph, Node, OpKind, TensorType, WeightId};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use thiserror::Error;

/// The CPU pipeline validated on the modules this lowering produces; defined
/// once, in [`crate::targets`], and re-exported here.
pub use crate::targets::CPU_PIPELINE;

/// Placeholder for the blob length in `memref.view` source types.
const WEIGHTS_BYTES: &str = "@WEIGHTS_BYTES@";

/// Options for [`lower_graph`].
#[derive(Clone, Debug)]
pub struct LowerOptions {
    /// Name of the generated function.
    pub func_name: String,
    /// Alignment of each weight's offset in the blob (a power of two).
    pub weight_align: u64,
    /// The kernel-library variant the target calls (planned modules lower
    /// contractions, norms, pools, attention and elementwise chains to
    /// kernel calls), or `None` for no kernel calls.
    pub kernels: Option<crate::kernels::Variant>,
    /// The target CPU has the 8-bit dot products of `CpuConfig::int8_dot` (the VNNI
    /// `igemmv` kernel may be called).
    pub int8_dot: bool,
    /// The target CPU multiplies u8 by i8 pairs (`CpuConfig::int8_pairs`: the `igemmp` kernel
    /// may be called on `int8_gemm_b_narrow` weights).
    pub int8_pairs: bool,
    /// 3x3 stride-1 convolutions with enough output tiles run Winograd F(2x2, 3x3)
    /// (`CpuConfig::winograd`).
    pub winograd: bool,
    /// Reductions of more than this many elements per result run in two stages: partial
    /// results over chunks of the reduced elements (in parallel), then those combined
    /// (`GpuConfig::split_reductions_above`; `None`, the CPU targets: one stage).
    pub split_reductions_above: Option<u64>,
}

impl Default for LowerOptions {
    fn default() -> LowerOptions {
        LowerOptions {
            func_name: "kiln_main".into(),
            weight_align: 64,
            kernels: None,
            int8_dot: false,
            int8_pairs: false,
            winograd: false,
            split_reductions_above: None,
        }
    }
}

/// The name and static type of a function argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSig {
    /// The Kiln value name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Static shape.
    pub shape: Vec<u64>,
}

/// One weight's place in the blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightSlot {
    /// The weight in the graph.
    pub weight: WeightId,
    /// Its name.
    pub name: String,
    /// Byte offset in the blob (a multiple of [`WeightsLayout::align`]).
    pub offset: u64,
    /// Byte length.
    pub bytes: u64,
}

/// Where each weight lives in the concatenated blob passed as `%weights`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeightsLayout {
    /// Slots in offset order.
    pub slots: Vec<WeightSlot>,
    /// Total blob length (the `N` of `memref<Nxi8>`), padded to `align`.
    pub total_bytes: u64,
    /// Offset alignment.
    pub align: u64,
}

impl WeightsLayout {
    fn place(&mut self, g: &Graph, w: WeightId) -> Result<u64, String> {
        if let Some(s) = self.slots.iter().find(|s| s.weight == w) {
            return Ok(s.offset);
        }
        let weight = g.weight(w);
        let expect = weight.ty.storage_bytes();
        let bytes = match (&weight.data, expect) {
            (kiln_ir::WeightData::Elided { .. }, _) => {
                return Err(format!("weight '{}' has no data (elided)", weight.name))
            }
            (kiln_ir::WeightData::Bytes(blob), Some(n)) if blob.len() as u64 == n => n,
            // A derived weight's bytes are computed while the blob is written.
            (kiln_ir::WeightData::Derived(_), Some(n)) => n,
            (_, _) => {
                return Err(format!(
                    "weight '{}' does not hold the {expect:?} bytes its type {} needs",
                    weight.name, weight.ty
                ))
            }
        };
        let offset = self.total_bytes;
        self.slots.push(WeightSlot {
            weight: w,
            name: weight.name.clone(),
            offset,
            bytes,
        });
        self.total_bytes = (offset + bytes).next_multiple_of(self.align);
        Ok(offset)
    }

    /// Streams the blob of a graph without derived weights (see
    /// [`WeightsLayout::write_with`]).
    pub fn write_to(&self, g: &Graph, out: impl Write) -> io::Result<u64> {
        self.write_with(g, out, &|w| {
            let weight = g.weight(w);
            weight.bytes().cloned().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("weight '{}' has no bytes of its own", weight.name),
                )
            })
        })
    }

    /// Streams the blob: each weight's bytes (from `bytes_of`, which computes
    /// derived weights one at a time) at its offset, zero padding between.
    /// Returns the number of bytes written (`total_bytes`).
    pub fn write_with(
        &self,
        g: &Graph,
        mut out: impl Write,
        bytes_of: &dyn Fn(WeightId) -> io::Result<kiln_ir::Blob>,
    ) -> io::Result<u64> {
        let zeros = [0u8; 4096];
        let mut pos = 0u64;
        let pad = |out: &mut dyn Write, pos: &mut u64, to: u64| -> io::Result<()> {
            while *pos < to {
                let n = (to - *pos).min(zeros.len() as u64) as usize;
                out.write_all(&zeros[..n])?;
                *pos += n as u64;
            }
            Ok(())
        };
        for s in &self.slots {
            pad(&mut out, &mut pos, s.offset)?;
            if s.weight.0 as usize >= g.weights().len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("weight '{}' is not in the graph", s.name),
                ));
            }
            let blob = bytes_of(s.weight)?;
            if blob.len() as u64 != s.bytes {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("weight '{}' does not match the layout", s.name),
                ));
            }
            blob.write_streaming(&mut out)?;
            pos += s.bytes;
        }
        pad(&mut out, &mut pos, self.total_bytes)?;
        Ok(pos)
    }
}

/// The result of [`lower_graph`].
#[derive(Clone, Debug)]
pub struct LoweredModule {
    /// MLIR text of the module.
    pub mlir: String,
    /// Graph inputs, in argument order (`%in0`, `%in1`, ...).
    pub inputs: Vec<TensorSig>,
    /// Graph outputs, in argument order after the inputs.
    pub outputs: Vec<TensorSig>,
    /// Layout of the last argument, `%weights`.
    pub weights: WeightsLayout,
    /// A CPU pipeline validated on this module ([`CPU_PIPELINE`], or
    /// [`crate::targets::CPU_PLANNED_PIPELINE`] for planned modules).
    pub pipeline_hint: &'static str,
    /// Bytes of the arena a planned module takes as its last argument
    /// (`%workspace`); `None` for a module without that argument.
    pub workspace_bytes: Option<u64>,
    /// Symbols of the kernel library the module calls.
    pub kernels: Vec<String>,
}

/// A node the lowering cannot handle, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedNode {
    /// The node as `nn.op "onnx-name"` (or `input "x"` for graph inputs).
    pub node: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for UnsupportedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.reason)
    }
}

/// Why lowering failed.
#[derive(Debug, Error)]
pub enum LowerError {
    /// Some nodes cannot be lowered; `node`/`reason` is the first, `more` the rest.
    #[error("cannot lower {node}: {reason}{}", more.iter().map(|m| format!("\ncannot lower {m}")).collect::<String>())]
    Unsupported {
        /// The first unsupported node.
        node: String,
        /// Why.
        reason: String,
        /// Every further unsupported node, in graph order.
        more: Vec<UnsupportedNode>,
    },
}

impl LowerError {
    /// Whether the failure is a bug in Kiln rather than something the
    /// lowering does not support: an emitter's reason starting with
    /// `internal:` (a result of the wrong type, a missing value) says so.
    pub fn is_internal(&self) -> bool {
        self.nodes()
            .iter()
            .any(|n| n.reason.starts_with("internal:"))
    }

    /// Every unsupported node, first included.
    pub fn nodes(&self) -> Vec<UnsupportedNode> {
        match self {
            LowerError::Unsupported { node, reason, more } => {
                let mut v = vec![UnsupportedNode {
                    node: node.clone(),
                    reason: reason.clone(),
                }];
                v.extend(more.iter().cloned());
                v
            }
        }
    }
}

/// What an emitter sees of its node: present operands as lowered values, the
/// attribute/constant-operand accessor, and the declared result types.
pub(crate) struct NodeIn<'a> {
    pub node: &'a Node,
    pub a: &'a InferCtx<'a>,
    pub ins: Vec<Option<Val>>,
    pub outs: Vec<(DType, Vec<u64>)>,
}

impl NodeIn<'_> {
    /// Operand `i`, which must be present.
    pub fn input(&self, i: usize) -> Res<&Val> {
        self.ins
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("operand #{i} is required"))
    }

    /// Operand `i` if present.
    pub fn opt(&self, i: usize) -> Option<&Val> {
        self.ins.get(i).and_then(Option::as_ref)
    }

    /// Result `i`'s dtype and shape.
    pub fn out(&self, i: usize) -> Res<(DType, &[u64])> {
        self.outs
            .get(i)
            .map(|(d, s)| (*d, s.as_slice()))
            .ok_or_else(|| format!("result #{i} is missing"))
    }
}

/// Maps an attribute error to a reason.
pub(crate) fn attr_err(e: kiln_ir::ops::InferError) -> String {
    e.0
}

/// Lowers a verified graph whose value types are all static: node by node
/// into the homes of its memory plan when it has one (`planned`), else as
/// one tensor program.
pub fn lower_graph(g: &Graph, opts: &LowerOptions) -> Result<LoweredModule, LowerError> {
    if let Some(plan) = &g.memory_plan {
        return planned::lower_planned(g, plan, opts);
    }
    let mut bad: Vec<UnsupportedNode> = Vec::new();
    let mut b = Builder::for_options(opts);
    let mut vals: HashMap<kiln_ir::ValueId, Val> = HashMap::new();
    let mut layout = WeightsLayout {
        align: opts.weight_align.max(1).next_power_of_two(),
        ..WeightsLayout::default()
    };
    let defs = g.defs();
    let sig = |v: kiln_ir::ValueId| -> Result<TensorSig, String> {
        let info = g.value(v);
        elem(info.ty.dtype)?;
        let shape = info
            .ty
            .static_shape()
            .ok_or_else(|| format!("type {} is not static", info.ty))?;
        Ok(TensorSig {
            name: info.name.clone(),
            dtype: info.ty.dtype,
            shape,
        })
    };
    let mut inputs = Vec::new();
    for (i, &v) in g.inputs.iter().enumerate() {
        match sig(v) {
            Ok(s) => {
                let val = if s.shape.contains(&0) {
                    // Nothing to read (see `arg_ty`).
                    b.empty(s.dtype, &s.shape)
                } else {
                    let (rd, rs) = storage::raw(s.dtype, &s.shape);
                    let ssa = b.op(format!(
                        "bufferization.to_tensor %in{i} restrict : {} to {}",
                        memref_ty(rd, &rs),
                        ctx::tensor_ty(rd, &rs)
                    ));
                    boundary_in(&mut b, ssa, s.dtype, &s.shape)
                };
                match val {
                    Ok(val) => {
                        vals.insert(v, val);
                        inputs.push(s);
                    }
                    Err(reason) => bad.push(UnsupportedNode {
                        node: format!("input \"{}\"", g.value(v).name),
                        reason,
                    }),
                }
            }
            Err(reason) => bad.push(UnsupportedNode {
                node: format!("input \"{}\"", g.value(v).name),
                reason,
            }),
        }
    }
    let mut outputs = Vec::new();
    for &v in &g.outputs {
        match sig(v) {
            Ok(s) => outputs.push(s),
            Err(reason) => bad.push(UnsupportedNode {
                node: format!("output \"{}\"", g.value(v).name),
                reason,
            }),
        }
    }
    for node in &g.nodes {
        let result = lower_node(g, &defs, node, &mut b, &mut vals, &mut layout);
        if let Err(reason) = result {
            bad.push(UnsupportedNode {
                node: node.describe(),
                reason,
            });
            // Placeholders let later nodes still be checked.
            for &o in &node.outputs {
                let ty = &g.value(o).ty;
                vals.insert(
                    o,
                    Val {
                        ssa: "%unsupported".into(),
                        dtype: ty.dtype,
                        shape: ty.static_shape().unwrap_or_default(),
                    },
                );
            }
        }
    }
    if let Some(first) = bad.first().cloned() {
        return Err(LowerError::Unsupported {
            node: first.node,
            reason: first.reason,
            more: bad.into_iter().skip(1).collect(),
        });
    }
    for (j, &v) in g.outputs.iter().enumerate() {
        let t = &vals[&v];
        if t.shape.contains(&0) {
            continue; // nothing to write
        }
        let t = if storage::is_storage_only(t.dtype) {
            match storage::encode(&mut b, t) {
                Ok(raw) => raw,
                Err(reason) => {
                    return Err(LowerError::Unsupported {
                        node: format!("output \"{}\"", g.value(v).name),
                        reason,
                        more: Vec::new(),
                    })
                }
            }
        } else {
            t.clone()
        };
        b.line(format!(
            "bufferization.materialize_in_destination {} in restrict writable %out{j} : ({}, {}) -> ()",
            t.ssa,
            t.ty(),
            memref_ty(t.dtype, &t.shape)
        ));
    }
    b.line("return");
    let mut args: Vec<String> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| format!("%in{i}: {}", arg_ty(s)))
        .collect();
    args.extend(
        outputs
            .iter()
            .enumerate()
            .map(|(i, s)| format!("%out{i}: {}", arg_ty(s))),
    );
    args.push(format!("%weights: memref<{}xi8>", layout.total_bytes));
    let mlir = format!(
        "// Kiln graph \"{}\" lowered by kiln-codegen::lower.\nmodule {{\nfunc.func @{}({}) {{\n{}}}\n}}\n",
        g.name.replace(['\n', '\r'], " "),
        opts.func_name,
        args.join(", "),
        b.into_text()
            .replace(WEIGHTS_BYTES, &layout.total_bytes.to_string())
    );
    Ok(LoweredModule {
        mlir,
        inputs,
        outputs,
        weights: layout,
        pipeline_hint: CPU_PIPELINE,
        workspace_bytes: None,
        kernels: Vec::new(),
    })
}

/// The memref type of a function argument. An argument without elements
/// is declared `memref<0xT>`: `convert-func-to-llvm` with bare pointers
/// rejects multi-dimensional memrefs with a zero extent (their canonical
/// strides are not those of an identity layout), and such an argument is
/// never read or written (inputs become `tensor.empty`, outputs are
/// skipped), so only its pointer, as the ABI wants, is kept.
///
/// Storage-only dtypes are declared in their storage layout
/// ([`storage::raw`]): `i8` elements, packed ones as one flat byte array.
fn arg_ty(s: &TensorSig) -> String {
    let (rd, rs) = storage::raw(s.dtype, &s.shape);
    if s.shape.contains(&0) {
        memref_ty(rd, &[0])
    } else {
        memref_ty(rd, &rs)
    }
}

/// The compute-type tensor of a boundary value (an input or a weight) whose
/// bytes are the tensor `ssa` in the storage layout of `dtype`.
fn boundary_in(b: &mut Builder, ssa: String, dtype: DType, shape: &[u64]) -> Res<Val> {
    let (rd, rs) = storage::raw(dtype, shape);
    let raw = Val {
        ssa,
        dtype: rd,
        shape: rs,
    };
    if storage::is_storage_only(dtype) && !shape.contains(&0) {
        storage::decode(b, &raw, dtype, shape)
    } else if storage::is_storage_only(dtype) {
        b.empty(dtype, shape)
    } else {
        Ok(raw)
    }
}

/// Ops that only move, copy or describe elements, so they are exact on the
/// compute type of a storage-only dtype and may take such values.
fn moves_only(op: OpKind) -> bool {
    use OpKind as K;
    matches!(
        op,
        K::Identity
            | K::Reshape
            | K::Flatten
            | K::Squeeze
            | K::Unsqueeze
            | K::Expand
            | K::Transpose
            | K::Gather
            | K::Concat
            | K::Slice
            | K::Split
            | K::Tile
            | K::DepthToSpace
            | K::SpaceToDepth
            | K::GatherElements
            | K::Shape
            | K::Size
    )
}

/// Whether an op's emitter handles storage-only dtypes itself.
fn converts_storage(op: OpKind) -> bool {
    matches!(
        op,
        OpKind::Cast
            | OpKind::BitCast
            | OpKind::QuantizeLinear
            | OpKind::DequantizeLinear
            | OpKind::Nf4Dequantize
            | OpKind::QMatMul
            | OpKind::QConv
    )
}

fn lower_node(
    g: &Graph,
    defs: &HashMap<kiln_ir::ValueId, kiln_ir::Def>,
    node: &Node,
    b: &mut Builder,
    vals: &mut HashMap<kiln_ir::ValueId, Val>,
    layout: &mut WeightsLayout,
) -> Res<()> {
    let outs = result_types(g, node)?;
    if node.op == OpKind::Constant {
        let Some(Attr::Weight(w)) = node.attrs.get("value") else {
            return Err("nn.constant without a weight".into());
        };
        let (dtype, shape) = outs
            .first()
            .cloned()
            .ok_or("nn.constant without a result")?;
        let weight_ty = &g.weight(*w).ty;
        if weight_ty.static_shape().as_deref() != Some(shape.as_slice()) || weight_ty.dtype != dtype
        {
            return Err(format!(
                "weight type {weight_ty} differs from the result type"
            ));
        }
        let offset = layout.place(g, *w)?;
        let c = b.index(offset);
        let (rd, rs) = storage::raw(dtype, &shape);
        // The blob size is only known once every constant is placed, so the
        // source type names a placeholder that `lower_graph` fills in.
        let m = b.op(format!(
            "memref.view %weights[{c}][] : memref<{WEIGHTS_BYTES}xi8> to {}",
            memref_ty(rd, &rs)
        ));
        let ssa = b.op(format!(
            "bufferization.to_tensor {m} restrict : {} to {}",
            memref_ty(rd, &rs),
            ctx::tensor_ty(rd, &rs)
        ));
        let v = boundary_in(b, ssa, dtype, &shape)?;
        vals.insert(node.outputs[0], v);
        return Ok(());
    }
    let mut ins = Vec::new();
    for i in &node.inputs {
        match i {
            None => ins.push(None),
            Some(v) => {
                let val = vals
                    .get(v)
                    .cloned()
                    .ok_or_else(|| format!("operand {} is not lowered", g.value(*v).name))?;
                ins.push(Some(val));
            }
        }
    }
    let results = emit_node(g, defs, node, b, ins, outs)?;
    for (&o, r) in node.outputs.iter().zip(results) {
        vals.insert(o, r);
    }
    Ok(())
}

/// The result types of a node (static), checked to have an MLIR element type.
fn result_types(g: &Graph, node: &Node) -> Res<Vec<(DType, Vec<u64>)>> {
    node.outputs
        .iter()
        .map(|&o| {
            let ty = &g.value(o).ty;
            elem(ty.dtype)?;
            let shape = ty
                .static_shape()
                .ok_or_else(|| format!("result type {ty} is not static"))?;
            Ok((ty.dtype, shape))
        })
        .collect()
}

/// Emits tensor code for one node (not a constant) on lowered operands and
/// returns its results, checked against the declared types.
fn emit_node(
    g: &Graph,
    defs: &HashMap<kiln_ir::ValueId, kiln_ir::Def>,
    node: &Node,
    b: &mut Builder,
    ins: Vec<Option<Val>>,
    outs: Vec<(DType, Vec<u64>)>,
) -> Res<Vec<Val>> {
    let tys: Vec<Option<&TensorType>> = node
        .inputs
        .iter()
        .map(|i| i.map(|v| &g.value(v).ty))
        .collect();
    let consts: Vec<Option<ConstOperand<'_>>> = node
        .inputs
        .iter()
        .map(|i| {
            let v = (*i)?;
            let w = g.constant_weight(defs, v)?;
            let weight = g.weight(w);
            Some(ConstOperand {
                ty: &weight.ty,
                data: weight.bytes()?,
            })
        })
        .collect();
    let a = InferCtx {
        def: node.op.def(),
        inputs: &tys,
        attrs: &node.attrs,
        consts: &consts,
        num_outputs: node.outputs.len(),
        weight_ty: None,
        body: node.body.as_deref(),
    };
    // Storage-only values may only be converted or moved. A fused node's
    // body is lowered node by node when it holds one (`elementwise::fused`
    // takes none), and each of its nodes is checked there: an epilogue's
    // quant.conv head reads the codes, its elementwise steps do not.
    if node.body.is_none() && !moves_only(node.op) && !converts_storage(node.op) {
        let dts = ins.iter().flatten().map(|v| v.dtype);
        if let Some(d) = dts
            .chain(outs.iter().map(|(d, _)| *d))
            .find(|&d| storage::is_storage_only(d))
        {
            return Err(format!(
                "{} on {d} values is not supported: storage-only dtypes are only converted (nn.cast, quant ops) or moved",
                node.op.name()
            ));
        }
    }
    let n = NodeIn {
        node,
        a: &a,
        ins,
        outs,
    };
    let results = match &node.body {
        Some(body) => {
            let args: Vec<Val> = n.ins.iter().flatten().cloned().collect();
            match elementwise::fused(b, body, &args, &n.outs) {
                Some(r) => r?,
                None => lower_body(body, args, b)?,
            }
        }
        None => emit(b, &n)?,
    };
    if results.len() != node.outputs.len() {
        return Err(format!(
            "internal: the emitter produced {} results for {}",
            results.len(),
            node.outputs.len()
        ));
    }
    for (r, (dt, shape)) in results.iter().zip(&n.outs) {
        if r.dtype != *dt || &r.shape != shape {
            return Err(format!(
                "internal: lowered result {} differs from the declared type",
                r.ty()
            ));
        }
    }
    Ok(results)
}

/// Lowers a fused node's body in place of the node: its inputs bound to
/// `args`, its outputs returned.
fn lower_body(body: &Graph, args: Vec<Val>, b: &mut Builder) -> Res<Vec<Val>> {
    if args.len() != body.inputs.len() {
        return Err(format!(
            "the body takes {} values but the node has {} operands",
            body.inputs.len(),
            args.len()
        ));
    }
    let defs = body.defs();
    let mut vals: HashMap<kiln_ir::ValueId, Val> = body.inputs.iter().copied().zip(args).collect();
    // A body has no weights of its own: nothing is placed in this layout.
    let mut no_weights = WeightsLayout::default();
    for node in &body.nodes {
        lower_node(body, &defs, node, b, &mut vals, &mut no_weights)
            .map_err(|e| format!("in the body, {}: {e}", node.describe()))?;
    }
    body.outputs
        .iter()
        .map(|v| {
            vals.get(v)
                .cloned()
                .ok_or_else(|| format!("body output {} is not lowered", body.value(*v).name))
        })
        .collect()
}

/// Runs an NCHW emitter for an op whose operand 0 and results are in the
/// node's `layout`: operand 0 is transposed to NCHW, results of its rank
/// transposed back.
fn in_layout(
    b: &mut Builder,
    n: &NodeIn<'_>,
    nchw: impl FnOnce(&mut Builder, &NodeIn<'_>) -> Res<Vec<Val>>,
) -> Res<Vec<Val>> {
    use kiln_ir::ops::layout::DataLayout;
    let dl = DataLayout::read(n.a).map_err(attr_err)?;
    if dl == DataLayout::Nchw {
        return nchw(b, n);
    }
    let x = n.input(0)?;
    let r = x.rank();
    let to = dl.to_nchw_perm(r);
    let xt = shape::permute(b, x, &to)?;
    let mut ins = n.ins.clone();
    ins[0] = Some(xt);
    let outs = n
        .outs
        .iter()
        .map(|(d, s)| {
            let s = if s.len() == r {
                to.iter().map(|&p| s[p]).collect()
            } else {
                s.clone()
            };
            (*d, s)
        })
        .collect();
    let inner = NodeIn {
        node: n.node,
        a: n.a,
        ins,
        outs,
    };
    let ys = nchw(b, &inner)?;
    let back = dl.from_nchw_perm(r);
    ys.into_iter()
        .map(|y| {
            if y.rank() == r {
                shape::permute(b, &y, &back)
            } else {
                Ok(y)
            }
        })
        .collect()
}

/// The lowering decision for every op: one arm per family.
fn emit(b: &mut Builder, n: &NodeIn<'_>) -> Res<Vec<Val>> {
    use OpKind as K;
    match n.node.op {
        K::Constant => Err("internal: constants are lowered by the driver".into()),
        K::Identity => Ok(vec![n.input(0)?.clone()]),
        K::Cast => elementwise::cast(b, n).map(|v| vec![v]),
        K::BitCast => elementwise::bit_cast(b, n).map(|v| vec![v]),
        K::Abs
        | K::Acos
        | K::Acosh
        | K::Asin
        | K::Asinh
        | K::Atan
        | K::Atanh
        | K::BitwiseAnd
        | K::BitwiseNot
        | K::BitwiseOr
        | K::BitwiseXor
        | K::Celu
        | K::Shrink
        | K::Ceil
        | K::Clip
        | K::Cos
        | K::Cosh
        | K::Elu
        | K::Erf
        | K::Exp
        | K::Floor
        | K::Gelu
        | K::HardSigmoid
        | K::HardSwish
        | K::IsInf
        | K::IsNan
        | K::LeakyRelu
        | K::Log
        | K::Mish
        | K::Neg
        | K::Not
        | K::Reciprocal
        | K::Relu
        | K::Round
        | K::Selu
        | K::Sigmoid
        | K::Sign
        | K::Sin
        | K::Sinh
        | K::Softplus
        | K::Softsign
        | K::Sqrt
        | K::Swish
        | K::Tan
        | K::Tanh
        | K::ThresholdedRelu
        | K::Add
        | K::And
        | K::BitShift
        | K::Div
        | K::Equal
        | K::Greater
        | K::GreaterOrEqual
        | K::Less
        | K::LessOrEqual
        | K::Max
        | K::Mean
        | K::Min
        | K::Mod
        | K::Mul
        | K::Or
        | K::Pow
        | K::PRelu
        | K::Sub
        | K::Sum
        | K::Where
        | K::Xor => elementwise::emit(b, n).map(|v| vec![v]),
        K::MatMul => linalg::matmul(b, n).map(|v| vec![v]),
        K::Gemm => linalg::gemm(b, n).map(|v| vec![v]),
        K::Conv => in_layout(b, n, |b, n| linalg::conv(b, n).map(|v| vec![v])),
        K::ConvTranspose => linalg::conv_transpose(b, n).map(|v| vec![v]),
        K::MaxPool => in_layout(b, n, pool::max_pool),
        K::AveragePool => in_layout(b, n, |b, n| pool::pool(b, n, false).map(|v| vec![v])),
        K::LpPool => pool::lp_pool(b, n).map(|v| vec![v]),
        K::Lrn => pool::lrn(b, n).map(|v| vec![v]),
        K::GlobalAveragePool => {
            in_layout(b, n, |b, n| norm::global_pool(b, n, false).map(|v| vec![v]))
        }
        K::GlobalMaxPool => in_layout(b, n, |b, n| norm::global_pool(b, n, true).map(|v| vec![v])),
        K::Pack => layout::pack(b, n).map(|v| vec![v]),
        K::Unpack => layout::unpack(b, n).map(|v| vec![v]),
        K::Fused => Err("internal: fused nodes are lowered through their body".into()),
        K::GlobalLpPool => norm::global_lp_pool(b, n).map(|v| vec![v]),
        K::LpNormalization => norm::lp_normalization(b, n).map(|v| vec![v]),
        K::ReduceL1
        | K::ReduceL2
        | K::ReduceLogSum
        | K::ReduceLogSumExp
        | K::ReduceMax
        | K::ReduceMean
        | K::ReduceMin
        | K::ReduceProd
        | K::ReduceSum
        | K::ReduceSumSquare => norm::reduce_op(b, n).map(|v| vec![v]),
        K::Softmax => norm::softmax(b, n, false).map(|v| vec![v]),
        K::LogSoftmax => norm::softmax(b, n, true).map(|v| vec![v]),
        K::LayerNorm => norm::layer_norm(b, n, false),
        K::RmsNorm => norm::layer_norm(b, n, true),
        K::InstanceNorm => norm::instance_norm(b, n).map(|v| vec![v]),
        K::MeanVarianceNormalization => norm::mvn(b, n).map(|v| vec![v]),
        K::BatchNorm => norm::batch_norm(b, n).map(|v| vec![v]),
        K::Reshape | K::Flatten | K::Squeeze | K::Unsqueeze => {
            shape::reshape(b, n).map(|v| vec![v])
        }
        K::Expand => shape::expand(b, n).map(|v| vec![v]),
        K::Transpose => shape::transpose(b, n).map(|v| vec![v]),
        K::Gather => shape::gather(b, n).map(|v| vec![v]),
        K::Concat => shape::concat(b, n).map(|v| vec![v]),
        K::Slice => shape::slice(b, n).map(|v| vec![v]),
        K::Dropout => shape::dropout(b, n),
        K::Shape => shape::shape_of(b, n, false).map(|v| vec![v]),
        K::Size => shape::shape_of(b, n, true).map(|v| vec![v]),
        K::Einsum => linalg::einsum(b, n).map(|v| vec![v]),
        K::ArgMax => reduce::arg(b, n, true).map(|v| vec![v]),
        K::ArgMin => reduce::arg(b, n, false).map(|v| vec![v]),
        K::CumSum => reduce::cumsum(b, n).map(|v| vec![v]),
        K::CumProd => reduce::cumprod(b, n).map(|v| vec![v]),
        K::TopK => reduce::top_k(b, n),
        K::Hardmax => reduce::hardmax(b, n).map(|v| vec![v]),
        K::ConstantOfShape => shape::constant_of_shape(b, n).map(|v| vec![v]),
        K::DepthToSpace => shape::depth_to_space(b, n).map(|v| vec![v]),
        K::SpaceToDepth => shape::space_to_depth(b, n).map(|v| vec![v]),
        K::EyeLike => shape::eye_like(b, n).map(|v| vec![v]),
        K::GatherElements => shape::gather_elements(b, n).map(|v| vec![v]),
        K::OneHot => shape::one_hot(b, n).map(|v| vec![v]),
        K::Range => shape::range(b, n).map(|v| vec![v]),
        K::Split => shape::split(b, n),
        K::Tile => shape::tile(b, n).map(|v| vec![v]),
        K::Trilu => shape::trilu(b, n).map(|v| vec![v]),
        K::Resize => resize::resize(b, n).map(|v| vec![v]),
        K::GridSample => grid::grid_sample(b, n).map(|v| vec![v]),
        K::Dft => signal::dft(b, n).map(|v| vec![v]),
        K::Stft => signal::stft(b, n).map(|v| vec![v]),
        K::RotaryEmbedding => attention::rotary_embedding(b, n).map(|v| vec![v]),
        K::Attention => attention::attention(b, n),
        K::QuantizeLinear => quant::quantize_linear(b, n).map(|v| vec![v]),
        K::DequantizeLinear => quant::dequantize_linear(b, n).map(|v| vec![v]),
        K::GatherNd => index::gather_nd(b, n).map(|v| vec![v]),
        K::Pad => index::pad(b, n).map(|v| vec![v]),
        K::ScatterElements => index::scatter_elements(b, n).map(|v| vec![v]),
        K::ScatterNd => index::scatter_nd(b, n).map(|v| vec![v]),
        K::NonZero => Err(
            "nn.non_zero has a data-dependent result shape, which the static CPU lowering cannot express"
                .into(),
        ),
        K::Nf4Dequantize => quant::nf4_dequantize(b, n).map(|v| vec![v]),
        K::QMatMul => quant::qmatmul(b, n).map(|v| vec![v]),
        K::QMatMulInteger => quant::qmatmul_integer(b, n).map(|v| vec![v]),
        K::QConvInteger => in_layout(b, n, |b, n| quant::qconv_integer(b, n).map(|v| vec![v])),
        K::QConv => in_layout(b, n, |b, n| quant::qconv(b, n).map(|v| vec![v])),
        K::QuantizeWeight => quant::quantize_weight_node(),
    }
}
