//! `fuse-epilogue`: a contraction — `nn.conv` or `nn.gemm` with constant
//! weights, or any `nn.matmul` — followed by a chain of ops the kernels
//! apply to an output tile while it is in registers becomes one
//! `nn.fused {kind = "epilogue"}` node: its body is the contraction, then
//! the chain.
//!
//! The chain grows from the contraction's result one user at a time while
//! - the running value has exactly one use (the next step) and is no graph
//!   output, so nothing outside needs an intermediate;
//! - the user is an epilogue step (`kiln_ir::ops::fused::epilogue_step`,
//!   the one list, matching docs/middle-end.md §4: bias add, scale,
//!   residual add, relu, clip/relu6 with constant bounds, leaky relu,
//!   sigmoid, tanh, both GELUs, SiLU, hard sigmoid, hard swish, ...);
//! - a unary step reads the running value as its first operand, a binary
//!   step as either operand, and the other operand is a value from outside
//!   the chain that does not enlarge the result (a scalar, a per-column
//!   or per-row vector, or a full residual);
//! - the chain is at most [`crate::TargetFacts::epilogue_max_ops`] steps.
//!
//! `quant.matmul_integer` heads a chain too when its int32 result is only
//! cast to f32: the cast is the chain's first step (the int8 kernel writes
//! f32 and applies the rest: the dequantizing scale, bias, ...).
//!
//! Only ops *after* the contraction are fused: a producer of a
//! contraction's operand is never put inside it (that would recompute it
//! for every step of the reduction — the BERT GELU of issue 10).
//!
//! Deciding is [`plan`]; rewriting is [`crate::rewrite::apply_recipe`].
//! Preconditions: a verified graph. Graph outputs keep their names and
//! types; the fused node runs the same ops in the same order (the
//! interpreter runs its body), so results are bit-identical.

use crate::fusion;
use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::pattern::Matcher;
use crate::registry::PassInfo;
use crate::rewrite::{sweep, Direction, Recipe};
use kiln_ir::ops::fused::{epilogue_step, EpilogueStep, FusedKind};
use kiln_ir::{DType, Graph, OpKind, ValueId};

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "fuse-epilogue",
    summary: "Fuses a Conv/Gemm with constant weights, or a MatMul, and the bias, activation, scale and residual ops after it into one epilogue node",
    create: || Box::new(FuseEpilogue::default()),
};

/// Options of `fuse-epilogue`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Fuse after convolutions.
    pub conv: bool,
    /// Fuse after MatMul and Gemm.
    pub matmul: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            conv: true,
            matmul: true,
        }
    }
}

/// The epilogue fusion pass.
#[derive(Clone, Debug, Default)]
pub struct FuseEpilogue {
    /// Options.
    pub options: Options,
}

impl Pass for FuseEpilogue {
    pass_info!();
    fn run(&self, g: &mut Graph, opts: &PassOptions) -> Result<PassStats, PassError> {
        let max = opts.target.epilogue_max_ops;
        let rewrites = sweep(g, Direction::Forward, |m, n| plan(m, n, &self.options, max));
        if rewrites > 0 {
            fusion::topo_sort(g);
            crate::passes::dce::eliminate(g);
        }
        Ok(PassStats { rewrites })
    }
}

/// Whether `op` is a contraction the options let start an epilogue, with
/// the weights it needs constant.
fn is_head(m: &Matcher<'_>, n: usize, opts: &Options) -> bool {
    let node = &m.g.nodes[n];
    let weight = || {
        node.inputs
            .get(1)
            .copied()
            .flatten()
            .and_then(|w| m.weight(w))
    };
    match node.op {
        OpKind::Conv | OpKind::QConv => opts.conv && weight().is_some(),
        OpKind::Gemm => opts.matmul && weight().is_some(),
        OpKind::MatMul | OpKind::QMatMulInteger => opts.matmul,
        _ => false,
    }
}

/// Whether `other` may be the second operand of a binary step on a value
/// of the output's type: never larger than the output.
fn fits(m: &Matcher<'_>, other: ValueId, out: ValueId) -> bool {
    let (o, t) = (m.ty(other), m.ty(out));
    o.dtype == t.dtype && o.rank() <= t.rank()
}

/// The epilogue chain after contraction node `n`: the node indices of the
/// steps, in order.
pub fn chain(m: &Matcher<'_>, n: usize, max: usize) -> Vec<usize> {
    let head = &m.g.nodes[n];
    let Some(&start) = head.outputs.first() else {
        return Vec::new();
    };
    let mut cur = start;
    let mut steps = Vec::new();
    // An integer product's chain starts with its conversion to f32 (the kernel writes f32).
    if head.op == OpKind::QMatMulInteger {
        if !m.single_use(cur) {
            return steps;
        }
        let u = m.users(cur)[0];
        let node = &m.g.nodes[u];
        match node.outputs.as_slice() {
            [y] if node.op == OpKind::Cast
                && node.inputs.first() == Some(&Some(cur))
                && m.ty(*y).dtype == DType::F32 =>
            {
                steps.push(u);
                cur = *y;
            }
            _ => return steps,
        }
    }
    let out_ty = m.ty(cur);
    while steps.len() < max && m.single_use(cur) {
        let u = m.users(cur)[0];
        let node = &m.g.nodes[u];
        let [y] = node.outputs.as_slice() else { break };
        if m.ty(*y) != out_ty {
            break;
        }
        let ok = match epilogue_step(node) {
            Some(EpilogueStep::Unary) => {
                node.inputs.first() == Some(&Some(cur))
                    && (node.op != OpKind::Clip
                        || node.inputs[1..]
                            .iter()
                            .flatten()
                            .all(|b| m.splat(*b).is_some() && m.ty(*b).numel() == Some(1)))
            }
            Some(EpilogueStep::Binary) => match node.inputs.as_slice() {
                [Some(a), Some(b)] if *a == cur && *b != cur => fits(m, *b, *y),
                [Some(a), Some(b)] if *b == cur && *a != cur => fits(m, *a, *y),
                _ => false,
            },
            None => false,
        };
        if !ok {
            break;
        }
        steps.push(u);
        cur = *y;
    }
    steps
}

/// Decides whether contraction node `n` and the chain after it fuse.
pub fn plan(m: &Matcher<'_>, n: usize, opts: &Options, max: usize) -> Option<Recipe> {
    if !is_head(m, n, opts) || m.g.nodes[n].outputs.len() != 1 {
        return None;
    }
    let steps = chain(m, n, max);
    if steps.is_empty() {
        return None;
    }
    // The other operands of the steps come from outside the chain; one that
    // depends on the chain (x * f(x) with x inside) would make a cycle.
    let mut members = vec![n];
    members.extend(&steps);
    let group = members.iter().copied().collect();
    let inside: std::collections::HashSet<ValueId> = members
        .iter()
        .flat_map(|&i| m.g.nodes[i].outputs.iter().copied())
        .collect();
    for &s in &steps {
        for v in m.g.nodes[s].operands() {
            if !inside.contains(&v) && fusion::depends_on(m, v, &group, n) {
                return None;
            }
        }
    }
    Some(fusion::fuse(m, &members, FusedKind::Epilogue))
}

#[cfg(test)]
#[path = "fuse_epilogue_tests.rs"]
mod tests;
