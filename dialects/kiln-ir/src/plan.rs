//! Memory plans: where every value of a graph lives while it runs.
//!
//! `plan-memory` (kiln-passes) decides, the lowering obeys, and [`verify_plan`]
//! checks that a plan is safe, so a bad plan is an error at compile time and
//! never a wrong result at run time.
//!
//! Every node result has a [`Home`]: the buffer of a graph input or output, a
//! constant's weight, or an offset in one arena (the run's workspace).
//! Results of aliasing ops ([`aliases_operand`]: reshapes and identity) share
//! the home of their operand and are never copied. A node may write its
//! result over an operand that dies at that node when
//! [`in_place_operands`] allows it (elementwise access, same bytes).
//!
//! Invariants checked by [`verify_plan`]:
//! - every node result (of the top-level graph) has a home; aliases have
//!   their operand's home; other results live in the arena or in an output;
//! - arena offsets are multiples of the alignment and fit in the arena;
//! - two values whose homes overlap are never live at the same time, except a
//!   result written in place over an operand that dies at its node.
//!
//! Intermediates of storage-only dtypes (float8, packed 4-bit) are held in
//! their compute representation in the arena ([`arena_bytes`]).

use crate::graph::{Def, Graph, Node, ValueId, WeightId};
use crate::ops::OpKind;
use crate::types::TensorType;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Where a value's bytes live during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Home {
    /// The buffer of graph input `i`.
    Input(usize),
    /// The buffer of graph output `j`.
    Output(usize),
    /// A constant's weight (read-only).
    Weight(WeightId),
    /// `offset` bytes into the arena.
    Arena(u64),
}

/// A graph's memory plan (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Size of the arena in bytes (a multiple of `align`).
    pub arena_bytes: u64,
    /// Alignment of every arena offset (a power of two).
    pub align: u64,
    /// The home of every node result that is not an `nn.constant`.
    pub homes: BTreeMap<ValueId, Home>,
}

impl MemoryPlan {
    /// The home of `v`: graph inputs and constants have implicit homes.
    pub fn home(&self, g: &Graph, defs: &HashMap<ValueId, Def>, v: ValueId) -> Option<Home> {
        match defs.get(&v)? {
            Def::Input(i) => Some(Home::Input(*i)),
            Def::Node { .. } => {
                if let Some(w) = g.constant_weight(defs, v) {
                    return Some(Home::Weight(w));
                }
                self.homes.get(&v).copied()
            }
        }
    }
}

/// Bytes a value of type `ty` occupies in the arena: storage-only dtypes in
/// their compute representation (f32 for float8, one byte per 4-bit value).
/// `None` for a type that is not static or overflows.
pub fn arena_bytes(ty: &TensorType) -> Option<u64> {
    ty.dtype.compute_dtype().storage_bytes(ty.numel()?)
}

/// The operand whose bytes a node's (single) result is a view of, for ops
/// that only reinterpret their operand's shape.
pub fn aliases_operand(op: OpKind) -> Option<usize> {
    match op {
        OpKind::Reshape
        | OpKind::Flatten
        | OpKind::Squeeze
        | OpKind::Unsqueeze
        | OpKind::Identity => Some(0),
        _ => None,
    }
}

/// `(operand, result)` pairs a node may write in place: the result takes
/// exactly the operand's bytes, and every element of the result is computed
/// from the operand's element at the same index only (read before written).
/// Elementwise ops whose operand has the result's type qualify; so does a
/// fused node of elementwise ops only, for an operand that its body uses only
/// as a full-size operand.
pub fn in_place_operands(g: &Graph, node: &Node) -> Vec<(usize, usize)> {
    let same = |v: ValueId, r: ValueId| {
        let (a, b) = (&g.value(v).ty, &g.value(r).ty);
        a.is_static() && a == b
    };
    let mut out = Vec::new();
    if node.op.def().traits.elementwise {
        // One operand at most: the first of the result's type.
        if let Some(&r) = node.outputs.first() {
            if let Some(i) = node
                .inputs
                .iter()
                .position(|v| v.is_some_and(|v| same(v, r)))
            {
                out.push((i, 0));
            }
        }
        return out;
    }
    let Some(body) = &node.body else {
        return out;
    };
    // Only bodies of elementwise ops: a contraction's kernel may write
    // partial sums to its result before its epilogue reads a residual
    // operand there (a K-blocked GEMM does).
    if !body
        .nodes
        .iter()
        .all(|n| n.op.def().traits.elementwise || n.op == OpKind::Cast)
    {
        return out;
    }
    for (i, (outer, &inner)) in node.inputs.iter().zip(&body.inputs).enumerate() {
        let Some(outer) = *outer else {
            continue;
        };
        let only_elementwise = body.nodes.iter().all(|n| {
            !n.operands().any(|v| v == inner)
                || (n.op.def().traits.elementwise
                    && n.outputs.len() == 1
                    && body.value(n.outputs[0]).ty == body.value(inner).ty)
        }) && !body.outputs.contains(&inner);
        if !only_elementwise {
            continue;
        }
        let taken = |j: usize| out.iter().any(|&(_, k)| k == j);
        if let Some(j) =
            (0..node.outputs.len()).find(|&j| !taken(j) && same(outer, node.outputs[j]))
        {
            out.push((i, j));
        }
    }
    out
}

/// Operands (by index) of node `n`, a concat, that their producers may
/// write straight into the concat's result as channel slices: the concat
/// joins the last axis of rank-4 f32 tensors (NHWC channels), and the
/// operand is used by nothing else and is the one result of a convolution
/// (`nn.conv` or a fused node), whose kernel can store into a strided
/// destination. For these, `plan-memory` makes the concat's result live
/// from the first such producer on; the lowering checks that the result's
/// bytes are free over that span before it writes anything in place, and
/// copies every operand it did not write in place. `uses` is
/// [`Graph::use_counts`].
pub fn concat_in_place_operands(
    g: &Graph,
    defs: &HashMap<ValueId, Def>,
    uses: &HashMap<ValueId, usize>,
    n: usize,
) -> Vec<usize> {
    let node = &g.nodes[n];
    let [out] = node.outputs[..] else {
        return Vec::new();
    };
    let ty = &g.value(out).ty;
    if node.op != OpKind::Concat || ty.dtype != crate::DType::F32 || ty.rank() != 4 {
        return Vec::new();
    }
    let tys: Vec<Option<&TensorType>> = node
        .inputs
        .iter()
        .map(|i| i.map(|v| &g.value(v).ty))
        .collect();
    let axis = crate::ops::infer::InferCtx::of_node(node, &tys)
        .int("axis")
        .unwrap_or(0);
    if axis != 3 && axis != -1 {
        return Vec::new();
    }
    node.inputs
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let v = (*v)?;
            let Some(&Def::Node { node: p, result: 0 }) = defs.get(&v) else {
                return None;
            };
            let producer = &g.nodes[p];
            let ok = uses.get(&v) == Some(&1)
                && producer.outputs.len() == 1
                && matches!(producer.op, OpKind::Conv | OpKind::QConv | OpKind::Fused)
                && g.value(v).ty.dtype == crate::DType::F32
                && g.value(v).ty.rank() == 4;
            ok.then_some(i)
        })
        .collect()
}

/// Why a plan is unsafe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory plan: {}", self.0)
    }
}

impl std::error::Error for PlanError {}

/// One alias class: values sharing a root's bytes, live from the root's
/// definition to the last use of any member.
struct Class {
    home: Home,
    bytes: u64,
    start: usize,
    end: usize,
    /// The node that defines the root, and the class's name for messages.
    root: ValueId,
}

/// Checks that `plan` is safe for `g` (see the module docs).
pub fn verify_plan(g: &Graph, plan: &MemoryPlan) -> Result<(), Vec<PlanError>> {
    let mut errs = Vec::new();
    let name = |v: ValueId| format!("%{}", g.value(v).name);
    if plan.align == 0 || !plan.align.is_power_of_two() {
        errs.push(PlanError(format!(
            "alignment {} is not a power of two",
            plan.align
        )));
        return Err(errs);
    }
    let defs = g.defs();
    // Root of each value's alias class, and the classes.
    let mut root: HashMap<ValueId, ValueId> = HashMap::new();
    let mut classes: BTreeMap<ValueId, Class> = BTreeMap::new();
    let end_of_run = g.nodes.len();
    for (i, &v) in g.inputs.iter().enumerate() {
        root.insert(v, v);
        let bytes = arena_bytes(&g.value(v).ty).unwrap_or(0);
        classes.insert(
            v,
            Class {
                home: Home::Input(i),
                bytes,
                start: 0,
                end: 0,
                root: v,
            },
        );
    }
    for (n, node) in g.nodes.iter().enumerate() {
        if node.op == OpKind::Constant {
            for &r in &node.outputs {
                root.insert(r, r);
                if let Some(w) = g.constant_weight(&defs, r) {
                    classes.insert(
                        r,
                        Class {
                            home: Home::Weight(w),
                            bytes: 0,
                            start: n,
                            end: n,
                            root: r,
                        },
                    );
                }
            }
            continue;
        }
        // Operands extend their classes' lives.
        for v in node.operands() {
            if let Some(c) = root.get(&v).and_then(|r| classes.get_mut(r)) {
                c.end = c.end.max(n);
            }
        }
        let alias = aliases_operand(node.op).and_then(|i| node.inputs.get(i).copied().flatten());
        for &r in &node.outputs {
            let Some(&home) = plan.homes.get(&r) else {
                errs.push(PlanError(format!(
                    "{} (result of {}) has no home",
                    name(r),
                    node.describe()
                )));
                continue;
            };
            if let Some(src) = alias {
                let src_root = root.get(&src).copied().unwrap_or(src);
                let src_home = plan.home(g, &defs, src);
                if src_home != Some(home) {
                    errs.push(PlanError(format!(
                        "{} is a view of {} ({}) and must share its home",
                        name(r),
                        name(src),
                        node.describe()
                    )));
                }
                root.insert(r, src_root);
                continue;
            }
            let bytes = arena_bytes(&g.value(r).ty).unwrap_or(0);
            match home {
                Home::Input(_) | Home::Weight(_) => errs.push(PlanError(format!(
                    "{} is computed by {} but its home is read-only",
                    name(r),
                    node.describe()
                ))),
                Home::Arena(off) => {
                    if !off.is_multiple_of(plan.align) {
                        errs.push(PlanError(format!(
                            "{} at offset {off} is not aligned to {}",
                            name(r),
                            plan.align
                        )));
                    }
                    if off.checked_add(bytes).is_none_or(|e| e > plan.arena_bytes) {
                        errs.push(PlanError(format!(
                            "{} ({bytes} bytes at {off}) does not fit in the {}-byte arena",
                            name(r),
                            plan.arena_bytes
                        )));
                    }
                }
                Home::Output(j) => {
                    if j >= g.outputs.len() {
                        errs.push(PlanError(format!(
                            "{} lives in output {j}, which does not exist",
                            name(r)
                        )));
                    }
                }
            }
            root.insert(r, r);
            classes.insert(
                r,
                Class {
                    home,
                    bytes,
                    start: n,
                    end: n,
                    root: r,
                },
            );
        }
    }
    for &v in &g.outputs {
        if let Some(c) = root.get(&v).and_then(|r| classes.get_mut(r)) {
            c.end = end_of_run;
        }
    }
    // In-place pairs: (root of the operand's class, root of the result).
    let mut in_place: Vec<(ValueId, ValueId)> = Vec::new();
    for node in &g.nodes {
        for (i, j) in in_place_operands(g, node) {
            let (Some(Some(v)), Some(&r)) = (node.inputs.get(i), node.outputs.get(j)) else {
                continue;
            };
            if let Some(&rv) = root.get(v) {
                in_place.push((rv, r));
            }
        }
    }
    let list: Vec<&Class> = classes.values().collect();
    for (x, a) in list.iter().enumerate() {
        for b in &list[x + 1..] {
            let overlap = match (a.home, b.home) {
                (Home::Arena(p), Home::Arena(q)) => {
                    a.bytes > 0 && b.bytes > 0 && p < q + b.bytes && q < p + a.bytes
                }
                (Home::Output(p), Home::Output(q)) => p == q,
                _ => false,
            };
            if !overlap {
                continue;
            }
            // Ordered by definition: `first` is defined no later than `second`.
            let (first, second) = if (a.start, a.root) <= (b.start, b.root) {
                (a, b)
            } else {
                (b, a)
            };
            if first.end < second.start {
                continue;
            }
            let same_bytes = first.home == second.home && second.bytes <= first.bytes;
            if first.end == second.start
                && same_bytes
                && in_place.contains(&(first.root, second.root))
            {
                continue;
            }
            errs.push(PlanError(format!(
                "{} and {} share memory while both are live",
                name(first.root),
                name(second.root)
            )));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// `(arena bytes, sum of the bytes of every value computed into the arena)`:
/// the peak activation memory of a run next to what it would be without
/// reuse (what `kiln compile --time` reports).
pub fn plan_summary(g: &Graph, plan: &MemoryPlan) -> (u64, u64) {
    let mut total = 0u64;
    for node in g.nodes.iter().filter(|n| aliases_operand(n.op).is_none()) {
        for r in &node.outputs {
            if let Some(Home::Arena(_)) = plan.homes.get(r) {
                total = total.saturating_add(arena_bytes(&g.value(*r).ty).unwrap_or(0));
            }
        }
    }
    (plan.arena_bytes, total)
}
