//! Planned lowering: every value lives where the graph's memory plan says
//! (`kiln_ir::plan`), and every node is emitted on its own.
//!
//! The function is
//!
//! ```text
//! func.func @kiln_main(%in0: memref<Bxi8>, .., %out0: memref<Bxi8>, ..,
//!                      %weights: memref<Wxi8>, %workspace: memref<Axi8>)
//! ```
//!
//! with every buffer a byte array (the bare-pointer ABI is unchanged: one
//! pointer each); a value is a typed `memref.view` of its home: an input, an
//! output, a weight (at its offset in `%weights`) or the arena `%workspace`
//! at its planned offset. Graph-boundary homes hold the storage layout of
//! storage-only dtypes, the arena their compute dtype.
//!
//! Each node is either a kernel call ([`super::kernels`]) or a tensor island:
//! `bufferization.to_tensor` of its operands' views, the op's emitter, and
//! `bufferization.materialize_in_destination` of each result into its home.
//! Views (reshapes) and constants emit nothing. Islands never see each
//! other's tensors, so MLIR cannot fuse across nodes: what is fused is what
//! Kiln's passes fused.
//!
//! Invariant: an island that is more than one elementwise loop never writes
//! a result over an operand it still reads. The plan only places results in
//! place over dying operands; where such a node is lowered as an island, the
//! operand is copied first ([`needs_private_copy`]).

use super::ctx::{memref_ty, Builder, Res, Val};
use super::kernels::{ConcatSlot, Homes, Kernels, SLOTS};
use super::{
    boundary_in, emit_node, result_types, storage, LowerError, LowerOptions, LoweredModule,
    TensorSig, UnsupportedNode, WeightsLayout, WEIGHTS_BYTES,
};
use kiln_ir::ops::infer::InferCtx;
use kiln_ir::plan::{aliases_operand, arena_bytes, concat_in_place_operands, Home, MemoryPlan};
use kiln_ir::{DType, Graph, Node, OpKind, ValueId};
use std::collections::{HashMap, HashSet};

/// Placeholder for the workspace size in `memref.view` source types.
const WORKSPACE_BYTES: &str = "@WORKSPACE_BYTES@";

/// Where the bytes of a home start: the base buffer's SSA name and the
/// byte offset into it.
fn base_of(home: Home, layout: &mut WeightsLayout, g: &Graph) -> Res<(String, u64)> {
    Ok(match home {
        Home::Input(i) => (format!("%in{i}"), 0),
        Home::Output(j) => (format!("%out{j}"), 0),
        Home::Arena(o) => ("%workspace".into(), o),
        Home::Weight(w) => ("%weights".into(), layout.place(g, w)?),
    })
}

/// Emission state of one planned function.
struct Planned<'g> {
    g: &'g Graph,
    plan: &'g MemoryPlan,
    defs: std::rc::Rc<HashMap<ValueId, kiln_ir::Def>>,
    layout: WeightsLayout,
    /// Byte size of each base buffer's memref type.
    base_bytes: HashMap<String, String>,
    /// Kernel calls, when the target has a kernel library.
    kernels: Option<Kernels>,
    /// Nodes (by index) emitted only when an island reads their result:
    /// unpacked constants, which kernels read in their packed form.
    deferred: HashMap<ValueId, usize>,
    /// Deferred nodes already emitted.
    emitted: HashSet<usize>,
    /// Concat operands their producer may write straight into the concat.
    concat_slots: HashMap<ValueId, ConcatSlot>,
    /// Those a kernel did write in place (the concat skips them).
    in_place: HashSet<ValueId>,
}

impl Homes for Planned<'_> {
    fn home_of(&mut self, b: &mut Builder, v: ValueId) -> Res<Home> {
        self.ensure(b, v)?;
        self.home(v)
    }

    fn base(&mut self, home: Home) -> Res<(String, u64)> {
        base_of(home, &mut self.layout, self.g)
    }

    fn base_type(&self, base: &str) -> String {
        self.base_ty(base)
    }

    fn concat_slot(&self, v: ValueId) -> Option<ConcatSlot> {
        self.concat_slots.get(&v).copied()
    }

    fn wrote_in_place(&mut self, v: ValueId) {
        self.in_place.insert(v);
    }

    fn was_written_in_place(&self, v: ValueId) -> bool {
        self.in_place.contains(&v)
    }
}

impl Planned<'_> {
    fn home(&self, v: ValueId) -> Res<Home> {
        self.plan
            .home(self.g, &self.defs, v)
            .ok_or_else(|| format!("%{} has no home in the memory plan", self.g.value(v).name))
    }

    /// The memref type of a base buffer; the sizes of `%weights` and
    /// `%workspace` are known only at the end (weights are placed as they
    /// are used, kernel scratch grows the workspace), so they are
    /// placeholders until then.
    fn base_ty(&self, base: &str) -> String {
        let n = match base {
            "%weights" => WEIGHTS_BYTES.to_string(),
            "%workspace" => WORKSPACE_BYTES.to_string(),
            _ => self.base_bytes.get(base).cloned().unwrap_or_default(),
        };
        format!("memref<{n}xi8>")
    }

    /// A typed view of `home` holding `dtype`/`shape` in the representation
    /// the home uses.
    fn view(&mut self, b: &mut Builder, home: Home, dtype: DType, shape: &[u64]) -> Res<String> {
        let (base, offset) = base_of(home, &mut self.layout, self.g)?;
        let (rd, rs) = match home {
            Home::Arena(_) => (dtype, shape.to_vec()),
            _ => storage::raw(dtype, shape),
        };
        let off = b.index(offset);
        Ok(b.op(format!(
            "memref.view {base}[{off}][] : {} to {}",
            self.base_ty(&base),
            memref_ty(rd, &rs)
        )))
    }

    /// Emits the deferred node computing `v`, if it has not run yet.
    fn ensure(&mut self, b: &mut Builder, v: ValueId) -> Res<()> {
        if let Some(&n) = self.deferred.get(&v) {
            if self.emitted.insert(n) {
                let g = self.g;
                self.island(b, &g.nodes[n])?;
            }
        }
        Ok(())
    }

    /// Value `v` as a tensor in its compute type.
    fn read(&mut self, b: &mut Builder, v: ValueId) -> Res<Val> {
        self.ensure(b, v)?;
        let ty = &self.g.value(v).ty;
        let (dtype, shape) = (
            ty.dtype,
            ty.static_shape()
                .ok_or_else(|| format!("{ty} is not static"))?,
        );
        if shape.contains(&0) {
            return b.empty(dtype, &shape);
        }
        let home = self.home(v)?;
        let m = self.view(b, home, dtype, &shape)?;
        if let Home::Arena(_) = home {
            let ssa = b.op(format!(
                "bufferization.to_tensor {m} restrict : {} to {}",
                memref_ty(dtype, &shape),
                super::ctx::tensor_ty(dtype, &shape)
            ));
            return Ok(Val { ssa, dtype, shape });
        }
        let (rd, rs) = storage::raw(dtype, &shape);
        let ssa = b.op(format!(
            "bufferization.to_tensor {m} restrict : {} to {}",
            memref_ty(rd, &rs),
            super::ctx::tensor_ty(rd, &rs)
        ));
        boundary_in(b, ssa, dtype, &shape)
    }

    /// Writes `r` (a compute-type tensor) into `home`.
    fn write(&mut self, b: &mut Builder, r: &Val, home: Home) -> Res<()> {
        if r.shape.contains(&0) {
            return Ok(());
        }
        let t = match home {
            Home::Arena(_) => r.clone(),
            Home::Input(_) | Home::Weight(_) => {
                return Err("internal: a result is planned into a read-only buffer".into())
            }
            Home::Output(_) if storage::is_storage_only(r.dtype) => storage::encode(b, r)?,
            Home::Output(_) => r.clone(),
        };
        let m = self.view(b, home, r.dtype, &r.shape)?;
        b.line(format!(
            "bufferization.materialize_in_destination {} in restrict writable {m} : ({}, {}) -> ()",
            t.ssa,
            t.ty(),
            memref_ty(t.dtype, &t.shape)
        ));
        Ok(())
    }

    /// Emits one node (not a constant or a view): a kernel call where one
    /// applies, else a tensor island.
    fn node(&mut self, b: &mut Builder, node: &Node) -> Res<()> {
        if let Some(mut k) = self.kernels.take() {
            let g = self.g;
            let tys: Vec<Option<&kiln_ir::TensorType>> = node
                .inputs
                .iter()
                .map(|i| i.map(|v| &g.value(v).ty))
                .collect();
            let a = InferCtx {
                body: node.body.as_deref(),
                ..InferCtx::of_node(node, &tys)
            };
            let defs = std::rc::Rc::clone(&self.defs);
            let done = k.lower(b, self, g, &defs, node, &a);
            self.kernels = Some(k);
            if done? {
                return Ok(());
            }
        }
        self.island(b, node)
    }

    /// Emits a node as a tensor island.
    fn island(&mut self, b: &mut Builder, node: &Node) -> Res<()> {
        let outs = result_types(self.g, node)?;
        let result_homes: Vec<Home> = node
            .outputs
            .iter()
            .map(|&r| self.home(r))
            .collect::<Res<_>>()?;
        let mut ins = Vec::with_capacity(node.inputs.len());
        for v in &node.inputs {
            let Some(v) = *v else {
                ins.push(None);
                continue;
            };
            let mut val = self.read(b, v)?;
            if needs_private_copy(self.g, node, v, &outs) && result_homes.contains(&self.home(v)?) {
                val = b.copy(&val)?;
            }
            ins.push(Some(val));
        }
        let results = emit_node(self.g, &self.defs, node, b, ins, outs)?;
        for (r, home) in results.iter().zip(result_homes) {
            self.write(b, r, home)?;
        }
        Ok(())
    }
}

/// Whether a node lowered as a tensor island must read operand `v`, which
/// shares its result's home, through a private copy: every node but a plain
/// elementwise op, or a fused elementwise body lowered as one loop
/// ([`super::elementwise::fused_is_one_loop`]) where `v` has the result's
/// shape; each is one loop that reads each element of `v` before writing
/// the result element at the same place.
fn needs_private_copy(g: &Graph, node: &Node, v: ValueId, outs: &[(DType, Vec<u64>)]) -> bool {
    if node.op.def().traits.elementwise && node.body.is_none() {
        return false;
    }
    let (Some(body), true) = (&node.body, node.inputs.iter().all(Option::is_some)) else {
        return true;
    };
    let in_dtypes: Vec<DType> = node
        .inputs
        .iter()
        .flatten()
        .map(|&i| g.value(i).ty.dtype)
        .collect();
    let same_shape = g.value(v).ty.static_shape().as_ref() == outs.first().map(|(_, s)| s);
    !(same_shape && super::elementwise::fused_is_one_loop(body, &in_dtypes, outs))
}

/// The concat operands that may be written in place (see
/// `kiln_ir::plan::concat_in_place_operands`), for every concat whose
/// result's bytes no other value holds while its producers run: a graph
/// output, or arena bytes disjoint from every value live between the first
/// producer and the concat (which `plan-memory` arranges; checked here, so
/// another plan only costs the copies).
fn concat_slots(
    g: &Graph,
    plan: &MemoryPlan,
    defs: &HashMap<ValueId, kiln_ir::Def>,
) -> HashMap<ValueId, ConcatSlot> {
    let uses = g.use_counts();
    let mut out = HashMap::new();
    // Live span [definition, last use] of every node result.
    let end = g.nodes.len();
    let mut span: HashMap<ValueId, (usize, usize)> = HashMap::new();
    for (n, node) in g.nodes.iter().enumerate() {
        for &r in &node.outputs {
            span.insert(r, (n, n));
        }
        for v in node.operands() {
            if let Some(s) = span.get_mut(&v) {
                s.1 = s.1.max(n);
            }
        }
    }
    for &v in &g.outputs {
        if let Some(s) = span.get_mut(&v) {
            s.1 = end;
        }
    }
    let bytes_of = |v: ValueId| arena_bytes(&g.value(v).ty).unwrap_or(0);
    for (n, node) in g.nodes.iter().enumerate() {
        let ops = concat_in_place_operands(g, defs, &uses, n);
        if ops.is_empty() {
            continue;
        }
        let c = node.outputs[0];
        let first = ops
            .iter()
            .filter_map(|&i| match defs.get(&node.inputs[i]?)? {
                kiln_ir::Def::Node { node: p, .. } => Some(*p),
                kiln_ir::Def::Input(_) => None,
            })
            .min()
            .unwrap_or(n);
        let free = match plan.home(g, defs, c) {
            Some(Home::Output(_)) => true,
            Some(Home::Arena(oc)) => {
                let ec = oc + bytes_of(c);
                span.iter().all(|(&u, &(d, l))| {
                    u == c
                        || l < first
                        || d > n
                        || !matches!(plan.home(g, defs, u), Some(Home::Arena(ou))
                            if ou < ec && oc < ou + bytes_of(u))
                })
            }
            _ => false,
        };
        if !free {
            continue;
        }
        let total = g.value(c).ty.static_shape().map_or(0, |s| s[3]) as i64;
        let mut at = 0i64;
        for (i, v) in node.inputs.iter().enumerate() {
            let Some(v) = *v else { continue };
            let width = g.value(v).ty.static_shape().map_or(0, |s| s[3]) as i64;
            if ops.contains(&i) {
                out.insert(
                    v,
                    ConcatSlot {
                        concat: c,
                        offset: at,
                        channels: total,
                    },
                );
            }
            at += width;
        }
    }
    out
}

/// The signature entry of a graph input or output.
fn sig(g: &Graph, v: ValueId) -> Result<TensorSig, String> {
    let info = g.value(v);
    super::ctx::elem(info.ty.dtype)?;
    let shape = info
        .ty
        .static_shape()
        .ok_or_else(|| format!("type {} is not static", info.ty))?;
    Ok(TensorSig {
        name: info.name.clone(),
        dtype: info.ty.dtype,
        shape,
    })
}

/// Lowers a graph with a memory plan (see the module docs).
pub(crate) fn lower_planned(
    g: &Graph,
    plan: &MemoryPlan,
    opts: &LowerOptions,
) -> Result<LoweredModule, LowerError> {
    let unsupported = |node: String, reason: String| LowerError::Unsupported {
        node,
        reason,
        more: Vec::new(),
    };
    let mut bad: Vec<UnsupportedNode> = Vec::new();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut base_bytes = HashMap::new();
    for (side, list, sigs) in [
        ("in", &g.inputs, &mut inputs),
        ("out", &g.outputs, &mut outputs),
    ] {
        for (i, &v) in list.iter().enumerate() {
            let s = sig(g, v)
                .map_err(|r| unsupported(format!("{side}put \"{}\"", g.value(v).name), r))?;
            let bytes = s.dtype.storage_bytes(s.shape.iter().product()).unwrap_or(0);
            base_bytes.insert(format!("%{side}{i}"), bytes.to_string());
            sigs.push(s);
        }
    }
    let defs = g.defs();
    // Unpacked constants are emitted where an island reads them (kernels
    // read the packed constant instead).
    let deferred: HashMap<ValueId, usize> = g
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            n.op == OpKind::Unpack
                && n.inputs
                    .first()
                    .copied()
                    .flatten()
                    .is_some_and(|v| g.constant_weight(&defs, v).is_some())
        })
        .map(|(k, n)| (n.outputs[0], k))
        .collect();
    let scratch_offset = plan.arena_bytes.next_multiple_of(64);
    let mut st = Planned {
        g,
        plan,
        defs: std::rc::Rc::new(defs),
        layout: WeightsLayout {
            align: opts.weight_align.max(1).next_power_of_two(),
            ..WeightsLayout::default()
        },
        base_bytes,
        kernels: opts.kernels.map(|v| {
            let mut k = Kernels::new(v, scratch_offset);
            k.int8_dot = opts.int8_dot;
            k.int8_pairs = opts.int8_pairs;
            k.winograd = opts.winograd;
            k
        }),
        deferred,
        emitted: HashSet::new(),
        concat_slots: HashMap::new(),
        in_place: HashSet::new(),
    };
    if st.kernels.is_some() {
        st.concat_slots = concat_slots(g, plan, &st.defs);
    }
    let mut b = Builder::for_options(opts);
    for node in &g.nodes {
        if node.op == OpKind::Constant
            || aliases_operand(node.op).is_some()
            || node
                .outputs
                .first()
                .is_some_and(|v| st.deferred.contains_key(v))
        {
            continue;
        }
        if let Err(reason) = st.node(&mut b, node) {
            bad.push(UnsupportedNode {
                node: node.describe(),
                reason,
            });
        }
    }
    if let Some(first) = bad.first().cloned() {
        return Err(LowerError::Unsupported {
            node: first.node,
            reason: first.reason,
            more: bad.into_iter().skip(1).collect(),
        });
    }
    // Outputs not computed in place are copied into their buffers.
    for (j, &v) in g.outputs.iter().enumerate() {
        let home = st
            .home(v)
            .map_err(|r| unsupported(format!("output \"{}\"", g.value(v).name), r))?;
        if home == Home::Output(j) {
            continue;
        }
        let out = |r| unsupported(format!("output \"{}\"", g.value(v).name), r);
        let t = st.read(&mut b, v).map_err(out)?;
        // A fresh tensor, so the copy never aliases its source.
        let t = b.copy(&t).map_err(out)?;
        st.write(&mut b, &t, Home::Output(j)).map_err(out)?;
    }
    b.line("return");
    let mut args: Vec<String> = Vec::new();
    for (side, n) in [("in", inputs.len()), ("out", outputs.len())] {
        for i in 0..n {
            let name = format!("%{side}{i}");
            args.push(format!("{name}: {}", st.base_ty(&name)));
        }
    }
    let total = st.layout.total_bytes;
    let (symbols, slots, scratch) = match &st.kernels {
        Some(k) => (
            k.symbols.iter().cloned().collect::<Vec<_>>(),
            k.max_slots,
            k.scratch,
        ),
        None => (Vec::new(), 0, 0),
    };
    let workspace = if scratch > 0 {
        scratch_offset + scratch
    } else {
        plan.arena_bytes
    };
    args.push(format!("%weights: memref<{total}xi8>"));
    args.push(format!("%workspace: memref<{workspace}xi8>"));
    let slots = slots.max(1);
    let mut decls = String::new();
    let mut prologue = String::new();
    if !symbols.is_empty() {
        prologue = format!("  %kernel_args = memref.alloca() : memref<{slots}xi64>\n");
        for sym in &symbols {
            decls.push_str(&format!("func.func private @{sym}(memref<{slots}xi64>)\n"));
        }
    }
    let body = b
        .into_text()
        .replace(WEIGHTS_BYTES, &total.to_string())
        .replace(SLOTS, &slots.to_string())
        .replace(WORKSPACE_BYTES, &workspace.to_string());
    let mlir = format!(
        "// Kiln graph \"{}\" lowered by kiln-codegen::lower (planned).\nmodule {{\n{decls}func.func @{}({}) {{\n{prologue}{body}}}\n}}\n",
        g.name.replace(['\n', '\r'], " "),
        opts.func_name,
        args.join(", "),
    );
    Ok(LoweredModule {
        mlir,
        inputs,
        outputs,
        weights: st.layout,
        pipeline_hint: crate::targets::CPU_PLANNED_PIPELINE,
        workspace_bytes: Some(workspace),
        kernels: symbols,
    })
}
