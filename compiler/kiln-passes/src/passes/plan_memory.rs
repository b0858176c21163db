//! `plan-memory`: gives every value a home (`kiln_ir::plan`), so a run
//! needs one arena for all intermediates and allocates nothing.
//!
//! Decisions, in order:
//! 1. views (`aliases_operand`: reshape, flatten, squeeze, unsqueeze,
//!    identity) share their operand's home;
//! 2. a value returned as graph output `j` (through views too) is computed
//!    straight into output `j`'s buffer, unless its dtype is storage-only
//!    (graph outputs hold the storage layout, the arena the compute dtype)
//!    or another output already took it;
//! 3. a result may be written in place over an operand that dies at its
//!    node (`in_place_operands`: elementwise access, same bytes); a concat
//!    whose operands' producers may write into it as channel slices
//!    (`concat_in_place_operands`) gets its space at the first of those
//!    producers, so their writes touch no other live value;
//! 4. everything else gets arena space: nodes are visited in order, space of
//!    values whose last use is behind is returned to a free list, and each
//!    new value takes the smallest free gap that fits (best fit, gaps
//!    coalesced), else the top of the arena grows. Linear in the number of
//!    values times the number of free gaps, so huge unrolled graphs plan
//!    quickly.
//!
//! Preconditions: a verified, statically shaped graph. This pass must run
//! last: any later rewrite makes the plan stale, which the verifier reports.

use crate::pass::{Pass, PassError, PassOptions, PassStats};
use crate::registry::PassInfo;
use kiln_ir::plan::{
    aliases_operand, arena_bytes, concat_in_place_operands, in_place_operands, Home, MemoryPlan,
};
use kiln_ir::{Graph, OpKind, ValueId};
use std::collections::{BTreeMap, HashMap};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "plan-memory",
    summary: "Places every intermediate in one arena, reusing space by liveness and in place",
    create: || Box::new(PlanMemory::default()),
};

/// Options of `plan-memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanMemoryOptions {
    /// Alignment of every arena offset (a power of two; 64 is a cache line
    /// and the widest vector load).
    pub align: u64,
    /// Write results over dying operands where allowed.
    pub in_place: bool,
    /// Compute graph outputs straight into the caller's buffers.
    pub outputs_in_place: bool,
}

impl Default for PlanMemoryOptions {
    fn default() -> Self {
        PlanMemoryOptions {
            align: 64,
            in_place: true,
            outputs_in_place: true,
        }
    }
}

/// The memory planning pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanMemory {
    /// Its options.
    pub options: PlanMemoryOptions,
}

impl Pass for PlanMemory {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn summary(&self) -> &'static str {
        INFO.summary
    }
    fn run(&self, g: &mut Graph, _opts: &PassOptions) -> Result<PassStats, PassError> {
        g.memory_plan = None;
        // A graph with dynamic extents stays unplanned: it cannot be
        // compiled until its input shapes are fixed, and the driver says so.
        let dynamic = g
            .inputs
            .iter()
            .chain(g.nodes.iter().flat_map(|n| &n.outputs))
            .find(|&&v| arena_bytes(&g.value(v).ty).is_none());
        if let Some(v) = dynamic {
            tracing::debug!(
                value = %g.value(*v).name,
                ty = %g.value(*v).ty,
                "plan-memory: not planning a graph with dynamic types"
            );
            return Ok(PassStats::default());
        }
        let plan = plan(g, &self.options);
        let homes = plan.homes.len();
        g.memory_plan = Some(plan);
        Ok(PassStats { rewrites: homes })
    }
}

/// Free gaps of the arena, by offset.
#[derive(Default)]
struct Arena {
    free: BTreeMap<u64, u64>,
    top: u64,
}

impl Arena {
    /// Takes `size` bytes (a multiple of the alignment): the smallest gap
    /// that fits, else a gap ending at the top extended, else the top.
    fn take(&mut self, size: u64) -> u64 {
        if size == 0 {
            return 0;
        }
        let best = self
            .free
            .iter()
            .filter(|&(_, &s)| s >= size)
            .min_by_key(|&(&o, &s)| (s, o))
            .map(|(&o, &s)| (o, s));
        if let Some((o, s)) = best {
            self.free.remove(&o);
            if s > size {
                self.free.insert(o + size, s - size);
            }
            return o;
        }
        // A gap touching the top is extended rather than left behind.
        if let Some((&o, &s)) = self.free.iter().next_back() {
            if o + s == self.top {
                self.free.remove(&o);
                self.top = o + size;
                return o;
            }
        }
        let o = self.top;
        self.top += size;
        o
    }

    /// Returns `[offset, offset + size)`, merging it with adjacent gaps.
    fn give(&mut self, offset: u64, size: u64) {
        if size == 0 {
            return;
        }
        let (mut o, mut s) = (offset, size);
        if let Some((&p, &ps)) = self.free.range(..o).next_back() {
            if p + ps == o {
                self.free.remove(&p);
                o = p;
                s += ps;
            }
        }
        if let Some(&ns) = self.free.get(&(o + s)) {
            self.free.remove(&(o + s));
            s += ns;
        }
        self.free.insert(o, s);
    }
}

/// Computes the plan (see the module docs).
pub fn plan(g: &Graph, opts: &PlanMemoryOptions) -> MemoryPlan {
    let align = opts.align.max(1).next_power_of_two();
    let defs = g.defs();
    // Root of every value: views follow their operand.
    let mut root: HashMap<ValueId, ValueId> = HashMap::new();
    for &v in &g.inputs {
        root.insert(v, v);
    }
    for node in &g.nodes {
        let src = aliases_operand(node.op).and_then(|i| node.inputs.get(i).copied().flatten());
        for &r in &node.outputs {
            let to = src.and_then(|s| root.get(&s).copied()).unwrap_or(r);
            root.insert(r, to);
        }
    }
    let is_computed = |r: ValueId| matches!(defs.get(&r), Some(kiln_ir::Def::Node { node, .. }) if g.nodes[*node].op != OpKind::Constant && aliases_operand(g.nodes[*node].op).is_none());
    // Last use of each root's class (graph outputs live to the end).
    let end_of_run = g.nodes.len();
    let mut last: HashMap<ValueId, usize> = HashMap::new();
    for (n, node) in g.nodes.iter().enumerate() {
        for v in node.operands() {
            if let Some(&r) = root.get(&v) {
                let e = last.entry(r).or_insert(n);
                *e = (*e).max(n);
            }
        }
    }
    // Roots computed straight into an output buffer.
    let mut output_home: HashMap<ValueId, usize> = HashMap::new();
    for (j, &v) in g.outputs.iter().enumerate() {
        if let Some(&r) = root.get(&v) {
            last.insert(r, end_of_run);
            if opts.outputs_in_place
                && is_computed(r)
                && !g.value(r).ty.dtype.is_storage_only()
                && g.value(r).ty.dtype == g.value(v).ty.dtype
                && !output_home.contains_key(&r)
                && !output_home.values().any(|&k| k == j)
            {
                output_home.insert(r, j);
            }
        }
    }
    // Concat results whose operands' producers may write into them (see
    // `concat_in_place_operands`) take their space at the first such
    // producer, before its own result: the producers' writes then land in
    // bytes no other live value holds.
    let mut early: BTreeMap<usize, Vec<ValueId>> = BTreeMap::new();
    if opts.in_place {
        let uses = g.use_counts();
        for (n, node) in g.nodes.iter().enumerate() {
            let first = concat_in_place_operands(g, &defs, &uses, n)
                .into_iter()
                .filter_map(|i| match defs.get(&node.inputs[i]?)? {
                    kiln_ir::Def::Node { node: p, .. } => Some(*p),
                    kiln_ir::Def::Input(_) => None,
                })
                .min();
            if let Some(p) = first {
                if !output_home.contains_key(&node.outputs[0]) {
                    early.entry(p).or_default().push(node.outputs[0]);
                }
            }
        }
    }
    let bytes_of = |r: ValueId| {
        arena_bytes(&g.value(r).ty)
            .unwrap_or(0)
            .next_multiple_of(align)
    };
    let mut homes: BTreeMap<ValueId, Home> = BTreeMap::new();
    let mut arena = Arena::default();
    // Arena blocks of live roots: root -> (offset, bytes).
    let mut live: HashMap<ValueId, (u64, u64)> = HashMap::new();
    // Roots by the node after which they die.
    let mut dying: BTreeMap<usize, Vec<ValueId>> = BTreeMap::new();
    let home_of = |homes: &BTreeMap<ValueId, Home>, v: ValueId| -> Option<Home> {
        match defs.get(&v)? {
            kiln_ir::Def::Input(i) => Some(Home::Input(*i)),
            kiln_ir::Def::Node { .. } => g
                .constant_weight(&defs, v)
                .map(Home::Weight)
                .or_else(|| homes.get(&v).copied()),
        }
    };
    for (n, node) in g.nodes.iter().enumerate() {
        if node.op == OpKind::Constant {
            continue;
        }
        // Space of classes whose last use came before this node is free.
        let done: Vec<usize> = dying.range(..n).map(|(&k, _)| k).collect();
        for k in done {
            for r in dying.remove(&k).unwrap_or_default() {
                if let Some((o, s)) = live.remove(&r) {
                    arena.give(o, s);
                }
            }
        }
        for r in early.remove(&n).unwrap_or_default() {
            let bytes = bytes_of(r);
            let block = (arena.take(bytes), bytes);
            settle(
                r,
                block,
                last.get(&r).copied().unwrap_or(n),
                &mut homes,
                &mut live,
                &mut dying,
            );
        }
        if let Some(i) = aliases_operand(node.op) {
            let src = node.inputs.get(i).copied().flatten();
            let h = src.and_then(|s| home_of(&homes, s));
            for &r in &node.outputs {
                if let Some(h) = h {
                    homes.insert(r, h);
                }
            }
            continue;
        }
        let in_place = if opts.in_place {
            in_place_operands(g, node)
        } else {
            Vec::new()
        };
        for (j, &r) in node.outputs.iter().enumerate() {
            if homes.contains_key(&r) {
                continue; // placed early (a concat written in place)
            }
            if let Some(&out) = output_home.get(&r) {
                homes.insert(r, Home::Output(out));
                continue;
            }
            let bytes = bytes_of(r);
            // Reuse a dying operand's block when the node allows it.
            let reuse = in_place.iter().find_map(|&(i, jj)| {
                let v = node.inputs.get(i).copied().flatten()?;
                let rv = *root.get(&v)?;
                let (o, s) = *live.get(&rv)?;
                (jj == j && last.get(&rv) == Some(&n) && s == bytes).then_some((rv, o))
            });
            let offset = match reuse {
                Some((rv, o)) => {
                    // The operand's block passes to the result.
                    live.remove(&rv);
                    o
                }
                None => arena.take(bytes),
            };
            settle(
                r,
                (offset, bytes),
                last.get(&r).copied().unwrap_or(n),
                &mut homes,
                &mut live,
                &mut dying,
            );
        }
    }
    MemoryPlan {
        arena_bytes: arena.top,
        align,
        homes,
    }
}

/// Gives result `r` the arena block `(offset, bytes)` until node `end`.
fn settle(
    r: ValueId,
    (offset, bytes): (u64, u64),
    end: usize,
    homes: &mut BTreeMap<ValueId, Home>,
    live: &mut HashMap<ValueId, (u64, u64)>,
    dying: &mut BTreeMap<usize, Vec<ValueId>>,
) {
    homes.insert(r, Home::Arena(offset));
    live.insert(r, (offset, bytes));
    dying.entry(end).or_default().push(r);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::{graph, run};
    use kiln_ir::plan::{plan_summary, verify_plan};

    const CHAIN: &str = "graph @g(%x: tensor<256xf32>) -> (tensor<256xf32>) {
  %a = nn.exp %x : tensor<256xf32>
  %b = nn.tanh %a : tensor<256xf32>
  %c = nn.sin %b : tensor<256xf32>
  %d = nn.add %b, %c : tensor<256xf32>
  %e = nn.softmax %d : tensor<256xf32>
  return %e
}
";

    #[test]
    fn chains_reuse_space_and_write_outputs_directly() {
        let (out, _) = run(&PlanMemory::default(), CHAIN);
        let g = graph(&out);
        let plan = g.memory_plan.as_ref().expect("planned");
        verify_plan(&g, plan).expect("safe");
        // a -> b in place; c needs a second block; d in place over b or c;
        // e, the graph output, is computed into the output buffer.
        let (arena, total) = plan_summary(&g, plan);
        assert_eq!(arena, 2 * 1024, "{out}");
        assert_eq!(total, 4 * 1024);
        assert!(out.contains("%e = output 0"), "{out}");
        assert!(out.contains("%a = arena 0\n  %b = arena 0\n"), "{out}");
    }

    #[test]
    fn without_reuse_every_value_has_its_own_block() {
        let mut g = graph(CHAIN);
        let p = plan(
            &g,
            &PlanMemoryOptions {
                in_place: false,
                outputs_in_place: false,
                ..PlanMemoryOptions::default()
            },
        );
        g.memory_plan = Some(p.clone());
        verify_plan(&g, &p).expect("safe");
        // a, b live together (b = tanh a), then c with b, then d with b, c:
        // liveness alone gives 3 blocks at the peak (b, c, d), and e's.
        assert_eq!(p.arena_bytes, 3 * 1024);
        assert_eq!(
            p.homes
                .values()
                .filter(|h| matches!(h, Home::Output(_)))
                .count(),
            0
        );
    }

    #[test]
    fn views_share_homes_and_inputs_are_never_written() {
        let src = "weight @s : tensor<2xi64> = dense<[4, 4]>
graph @g(%x: tensor<16xf32>) -> (tensor<4x4xf32>, tensor<16xf32>) {
  %s = nn.constant {value = @s} : tensor<2xi64>
  %v = nn.reshape %x, %s : tensor<4x4xf32>
  %r = nn.relu %v : tensor<4x4xf32>
  %i = nn.identity %x : tensor<16xf32>
  return %r, %i
}
";
        let (out, _) = run(&PlanMemory::default(), src);
        assert!(out.contains("%v = input 0"), "{out}");
        assert!(out.contains("%r = output 0"), "{out}");
        // %i is the input itself: the lowering copies it into output 1.
        assert!(out.contains("%i = input 0"), "{out}");
    }

    #[test]
    fn values_used_after_a_node_are_not_overwritten_in_place() {
        // %a dies at %c, not at %b: %b cannot take %a's block.
        let src = "graph @g(%x: tensor<64xf32>) -> (tensor<64xf32>) {
  %a = nn.exp %x : tensor<64xf32>
  %b = nn.neg %a : tensor<64xf32>
  %c = nn.add %a, %b : tensor<64xf32>
  %d = nn.neg %c : tensor<64xf32>
  return %d
}
";
        let (out, _) = run(&PlanMemory::default(), src);
        let g = graph(&out);
        let plan = g.memory_plan.as_ref().unwrap();
        assert_ne!(
            plan.homes[&g.nodes[0].outputs[0]],
            plan.homes[&g.nodes[1].outputs[0]]
        );
    }

    #[test]
    fn graphs_with_dynamic_types_stay_unplanned() {
        let mut g = graph("graph @g(%x: tensor<?xf32>) -> (tensor<?xf32>) {\n  %y = nn.exp %x : tensor<?xf32>\n  return %y\n}\n");
        let stats = PlanMemory::default()
            .run(&mut g, &PassOptions::default())
            .unwrap();
        assert!(!stats.changed() && g.memory_plan.is_none());
    }
}
