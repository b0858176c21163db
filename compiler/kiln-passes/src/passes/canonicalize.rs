//! `canonicalize`: local algebraic simplifications, applied until nothing
//! matches, then removal of the nodes they left dead.
//!
//! Each pattern is a pure function `(graph, node) -> Option<Replacement>`
//! that decides (matching, shape and dtype checks, the output-name policy of
//! [`crate::rewrite`]); rewriting is [`rewrite::apply`], which cannot fail.
//! Patterns, in the order they are tried on each node:
//!
//! - `identity`: `nn.identity x` -> `x`;
//! - `same-dtype-cast`: `nn.cast x {to = dtype(x)}` -> `x`;
//! - `neutral-element`: `x + c`, `c + x`, `x - c`, `x * c`, `c * x`, `x / c`
//!   -> `x` when `c` is a constant splat of the operation's neutral element
//!   that cannot broadcast `x` to a larger shape (every dim of `c` is 1 or
//!   provably equal to `x`'s). Floats follow IEEE exactly: the neutral
//!   element of `+` is -0.0 (`-0.0 + +0.0 = +0.0`, so `x + 0.0` is *not*
//!   `x`), that of `-` is +0.0, of `*` and `/` 1.0;
//! - `double-negation`: `nn.neg (nn.neg x)` -> `x`;
//! - `idempotent`: `f(f(x))` -> `f(x)` for ops with `Traits::idempotent`
//!   and equal attributes (`relu`, `floor`, `ceil`, `round`, `sign`);
//! - `inverse-transposes`: `transpose(transpose(x))` -> `x` when the two
//!   permutations cancel.
//!
//! Not yet: composing non-cancelling transposes into one, reshape of
//! reshape, and dropout removal need a rewrite that edits a node rather
//! than replacing a value; they come with a `Rewrite::Update` variant.
//!
//! Precondition: a verified graph. Graph outputs keep their names and types
//! (see [`crate::rewrite`]).

use crate::pass::{Pass, PassError, PassOptions, PassStats};
use crate::passes::dce;
use crate::registry::PassInfo;
use crate::rewrite::{self, plan_replace, Replacement};
use kiln_ir::{Attr, DType, Def, Dim, Graph, Node, OpKind, ValueId};
use std::collections::HashMap;

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "canonicalize",
    summary: "Simplifies identities, neutral elements, double negation and repeated idempotent ops",
    create: || Box::new(Canonicalize),
};

/// The canonicalization pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Canonicalize;

/// What a pattern sees: the graph and the producer of every value.
struct Ctx<'g> {
    g: &'g Graph,
    defs: &'g HashMap<ValueId, Def>,
}

impl<'g> Ctx<'g> {
    /// The node producing `v`, if a node does.
    fn producer(&self, v: ValueId) -> Option<&'g Node> {
        match self.defs.get(&v)? {
            Def::Node { node, .. } => self.g.nodes.get(*node),
            Def::Input(_) => None,
        }
    }

    /// The single present operand and the single result of node `n`.
    fn unary(&self, n: usize) -> Option<(ValueId, ValueId)> {
        let node = &self.g.nodes[n];
        match (node.inputs.as_slice(), node.outputs.as_slice()) {
            ([Some(x)], [y]) => Some((*x, *y)),
            _ => None,
        }
    }
}

type Pattern = fn(&Ctx<'_>, usize) -> Option<Replacement>;

/// Every pattern with its name (used in debug logs), in the order tried.
const PATTERNS: &[(&str, Pattern)] = &[
    ("identity", identity),
    ("same-dtype-cast", same_dtype_cast),
    ("neutral-element", neutral_element),
    ("double-negation", double_negation),
    ("idempotent", idempotent),
    ("inverse-transposes", inverse_transposes),
];

fn identity(cx: &Ctx<'_>, n: usize) -> Option<Replacement> {
    if cx.g.nodes[n].op != OpKind::Identity {
        return None;
    }
    let (x, y) = cx.unary(n)?;
    plan_replace(cx.g, n, y, x)
}

fn same_dtype_cast(cx: &Ctx<'_>, n: usize) -> Option<Replacement> {
    let node = &cx.g.nodes[n];
    if node.op != OpKind::Cast {
        return None;
    }
    let (x, y) = cx.unary(n)?;
    match node.attrs.get("to") {
        Some(Attr::DType(d)) if *d == cx.g.value(x).ty.dtype => plan_replace(cx.g, n, y, x),
        _ => None,
    }
}

fn double_negation(cx: &Ctx<'_>, n: usize) -> Option<Replacement> {
    if cx.g.nodes[n].op != OpKind::Neg {
        return None;
    }
    let (a, y) = cx.unary(n)?;
    let inner = cx.producer(a)?;
    match (inner.op, inner.inputs.as_slice()) {
        (OpKind::Neg, [Some(x)]) => plan_replace(cx.g, n, y, *x),
        _ => None,
    }
}

fn idempotent(cx: &Ctx<'_>, n: usize) -> Option<Replacement> {
    let node = &cx.g.nodes[n];
    if !node.op.def().traits.idempotent {
        return None;
    }
    let (a, y) = cx.unary(n)?;
    let inner = cx.producer(a)?;
    if inner.op == node.op && inner.attrs == node.attrs {
        plan_replace(cx.g, n, y, a)
    } else {
        None
    }
}

/// A transpose's permutation (absent means reversing the dims).
fn perm_of(node: &Node, rank: usize) -> Option<Vec<usize>> {
    match node.attrs.get("perm") {
        None => Some((0..rank).rev().collect()),
        Some(Attr::Ints(p)) if p.len() == rank => p
            .iter()
            .map(|&i| usize::try_from(i).ok().filter(|&i| i < rank))
            .collect(),
        _ => None,
    }
}

fn inverse_transposes(cx: &Ctx<'_>, n: usize) -> Option<Replacement> {
    let outer = &cx.g.nodes[n];
    if outer.op != OpKind::Transpose {
        return None;
    }
    let (a, y) = cx.unary(n)?;
    let inner = cx.producer(a)?;
    let (OpKind::Transpose, [Some(x)]) = (inner.op, inner.inputs.as_slice()) else {
        return None;
    };
    let rank = cx.g.value(*x).ty.rank();
    let (p1, p2) = (perm_of(inner, rank)?, perm_of(outer, rank)?);
    // Result dim i of the pair is input dim p1[p2[i]].
    if (0..rank).all(|i| p1[p2[i]] == i) {
        plan_replace(cx.g, n, y, *x)
    } else {
        None
    }
}

/// The neutral element a constant must repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Neutral {
    /// Additive identity: -0.0 for floats, 0 for integers.
    AddZero,
    /// Right identity of subtraction: +0.0 for floats, 0 for integers.
    SubZero,
    /// Multiplicative identity.
    One,
}

/// The little-endian bytes of `neutral` in `dtype`, for the dtypes whose
/// encoding is one whole number of bytes per element.
fn neutral_bytes(dtype: DType, neutral: Neutral) -> Option<Vec<u8>> {
    use Neutral::*;
    let float = |neg_zero: u64, one: u64, bytes: usize| -> Vec<u8> {
        let bits = match neutral {
            AddZero => neg_zero,
            SubZero => 0,
            One => one,
        };
        bits.to_le_bytes()[..bytes].to_vec()
    };
    let int = |bytes: usize| -> Vec<u8> {
        let v: u64 = if neutral == One { 1 } else { 0 };
        v.to_le_bytes()[..bytes].to_vec()
    };
    Some(match dtype {
        DType::F64 => float(1 << 63, 1.0f64.to_bits(), 8),
        DType::F32 => float(1 << 31, u64::from(1.0f32.to_bits()), 4),
        DType::F16 => float(0x8000, 0x3C00, 2),
        DType::BF16 => float(0x8000, 0x3F80, 2),
        DType::I64 | DType::U64 => int(8),
        DType::I32 | DType::U32 => int(4),
        DType::I16 | DType::U16 => int(2),
        DType::I8 | DType::U8 => int(1),
        _ => return None,
    })
}

/// Whether constant `c` is a splat of `neutral` whose shape cannot grow
/// `x`'s shape under broadcasting.
fn is_neutral_for(cx: &Ctx<'_>, c: ValueId, x: ValueId, neutral: Neutral) -> bool {
    let Some(w) = cx.g.constant_weight(cx.defs, c) else {
        return false;
    };
    let w = cx.g.weight(w);
    let Some(bytes) = w.bytes() else { return false };
    let x_ty = &cx.g.value(x).ty;
    if w.ty.dtype != x_ty.dtype || w.ty.rank() > x_ty.rank() {
        return false;
    }
    let off = x_ty.rank() - w.ty.rank();
    let shape_ok =
        w.ty.dims
            .iter()
            .zip(&x_ty.dims[off..])
            .all(|(cd, xd)| match (cd, xd) {
                (Dim::Static(1), _) => true,
                (Dim::Static(a), Dim::Static(b)) => a == b,
                _ => false,
            });
    let Some(pattern) = neutral_bytes(w.ty.dtype, neutral) else {
        return false;
    };
    shape_ok
        && bytes
            .bytes()
            .chunks(pattern.len())
            .all(|e| e == pattern.as_slice())
}

fn neutral_element(cx: &Ctx<'_>, n: usize) -> Option<Replacement> {
    let node = &cx.g.nodes[n];
    // (constant operand index, neutral element) pairs to try.
    let tries: &[(usize, Neutral)] = match node.op {
        OpKind::Add => &[(1, Neutral::AddZero), (0, Neutral::AddZero)],
        OpKind::Sub => &[(1, Neutral::SubZero)],
        OpKind::Mul => &[(1, Neutral::One), (0, Neutral::One)],
        OpKind::Div => &[(1, Neutral::One)],
        _ => return None,
    };
    let ([Some(a), Some(b)], [y]) = (node.inputs.as_slice(), node.outputs.as_slice()) else {
        return None;
    };
    tries.iter().find_map(|&(ci, neutral)| {
        let (c, x) = if ci == 1 { (*b, *a) } else { (*a, *b) };
        if is_neutral_for(cx, c, x, neutral) {
            plan_replace(cx.g, n, *y, x)
        } else {
            None
        }
    })
}

impl Pass for Canonicalize {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn summary(&self) -> &'static str {
        INFO.summary
    }
    fn run(&self, g: &mut Graph, opts: &PassOptions) -> Result<PassStats, PassError> {
        let mut rewrites = 0;
        for _ in 0..opts.max_iterations.max(1) {
            // Rewrites neither add, remove nor reorder nodes, so the
            // producer map stays valid for the whole sweep.
            let defs = g.defs();
            let mut changed = false;
            for n in 0..g.nodes.len() {
                let found = {
                    let cx = Ctx { g, defs: &defs };
                    PATTERNS
                        .iter()
                        .find_map(|(name, p)| p(&cx, n).map(|r| (*name, r)))
                };
                if let Some((name, r)) = found {
                    tracing::trace!(pattern = name, node = n, "canonicalize");
                    rewrite::apply(g, r);
                    rewrites += 1;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
            // Replaced nodes are dead now; removing them before the next
            // sweep keeps patterns from matching them again.
            dce::remove_dead_nodes(g);
        }
        if rewrites > 0 {
            dce::eliminate(g);
        }
        Ok(PassStats { rewrites })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::run;

    fn canon(body: &str) -> String {
        run(&Canonicalize, body).0
    }

    #[test]
    fn repeated_idempotent_ops_collapse_and_the_output_keeps_its_name() {
        let (out, stats) = run(
            &Canonicalize,
            "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  \
               %a = nn.relu %x : tensor<2xf32>\n  \
               %b = nn.relu %a : tensor<2xf32>\n  \
               %c = nn.relu %b : tensor<2xf32>\n  \
               return %c\n}\n",
        );
        assert_eq!(
            out,
            "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %c = nn.relu %x : tensor<2xf32>\n  return %c\n}\n"
        );
        // One rewrite per collapsed relu, and no rewrites of dead nodes.
        assert_eq!(stats.rewrites, 2);
    }

    #[test]
    fn cancelling_transposes_vanish_and_others_stay() {
        let out = canon(
            "graph @main(%x: tensor<2x3x4xf32>) -> (tensor<2x3x4xf32>, tensor<4x2x3xf32>) {\n  \
               %a = nn.transpose %x {perm = [1, 2, 0]} : tensor<3x4x2xf32>\n  \
               %b = nn.transpose %a {perm = [2, 0, 1]} : tensor<2x3x4xf32>\n  \
               %c = nn.exp %b : tensor<2x3x4xf32>\n  \
               %d = nn.transpose %x : tensor<4x3x2xf32>\n  \
               %e = nn.transpose %d {perm = [0, 2, 1]} : tensor<4x2x3xf32>\n  \
               return %c, %e\n}\n",
        );
        assert!(out.contains("%c = nn.exp %x"), "{out}");
        assert!(
            out.contains("%e = nn.transpose %d {perm = [0, 2, 1]}"),
            "{out}"
        );
    }

    #[test]
    fn idempotence_needs_equal_attributes() {
        let src = "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  \
                   %a = nn.exp %x : tensor<2xf32>\n  \
                   %b = nn.exp %a : tensor<2xf32>\n  \
                   return %b\n}\n";
        // exp is not idempotent.
        assert_eq!(canon(src), src);
    }

    #[test]
    fn identity_of_an_input_returned_stays() {
        // Removing it would rename the output to %x.
        let src = "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %y = nn.identity %x : tensor<2xf32>\n  return %y\n}\n";
        assert_eq!(canon(src), src);
    }

    #[test]
    fn identities_and_same_dtype_casts_vanish() {
        let out = canon(
            "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  \
               %a = nn.identity %x : tensor<2xf32>\n  \
               %b = nn.cast %a {to = f32} : tensor<2xf32>\n  \
               %c = nn.exp %b : tensor<2xf32>\n  \
               return %c\n}\n",
        );
        assert_eq!(
            out,
            "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  %c = nn.exp %x : tensor<2xf32>\n  return %c\n}\n"
        );
    }

    #[test]
    fn double_negation_of_an_input_becomes_an_identity() {
        let out = canon(
            "graph @main(%x: tensor<2xi32>) -> (tensor<2xi32>) {\n  \
               %a = nn.neg %x : tensor<2xi32>\n  \
               %b = nn.neg %a : tensor<2xi32>\n  \
               return %b\n}\n",
        );
        assert_eq!(
            out,
            "graph @main(%x: tensor<2xi32>) -> (tensor<2xi32>) {\n  %b = nn.identity %x : tensor<2xi32>\n  return %b\n}\n"
        );
    }

    const NEUTRALS: &str = "weight @nz : tensor<3xf32> = dense<[-0.0, -0.0, -0.0]>\n\
        weight @pz : tensor<1xf32> = dense<[0.0]>\n\
        weight @one : tensor<1x3xf32> = dense<[1.0, 1.0, 1.0]>\n\
        weight @big : tensor<2x2x3xf32> = dense<\"0x\
        0000803F0000803F0000803F0000803F0000803F0000803F\
        0000803F0000803F0000803F0000803F0000803F0000803F\">\n";

    #[test]
    fn neutral_elements_fold_when_shapes_cannot_grow() {
        let out = canon(&format!(
            "{NEUTRALS}graph @main(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x2x3xf32>) {{\n  \
               %nz = nn.constant {{value = @nz}} : tensor<3xf32>\n  \
               %pz = nn.constant {{value = @pz}} : tensor<1xf32>\n  \
               %one = nn.constant {{value = @one}} : tensor<1x3xf32>\n  \
               %big = nn.constant {{value = @big}} : tensor<2x2x3xf32>\n  \
               %a = nn.add %nz, %x : tensor<2x3xf32>\n  \
               %b = nn.sub %a, %pz : tensor<2x3xf32>\n  \
               %c = nn.mul %b, %one : tensor<2x3xf32>\n  \
               %d = nn.div %c, %one : tensor<2x3xf32>\n  \
               %e = nn.exp %d : tensor<2x3xf32>\n  \
               %f = nn.mul %e, %big : tensor<2x2x3xf32>\n  \
               return %e, %f\n}}\n"
        ));
        assert!(out.contains("%e = nn.exp %x"), "{out}");
        // Multiplying by the larger ones broadcasts, so it stays.
        assert!(out.contains("%f = nn.mul %e, %big"), "{out}");
        assert!(!out.contains("@nz") && !out.contains("@pz"), "{out}");
    }

    #[test]
    fn signed_zeros_are_respected() {
        // x + 0.0 turns -0.0 into +0.0, x - (-0.0) likewise: neither folds.
        let src = "weight @pz : tensor<f32> = dense<[0.0]>\n\
                   weight @nz : tensor<f32> = dense<[-0.0]>\n\
                   graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n  \
                   %pz = nn.constant {value = @pz} : tensor<f32>\n  \
                   %nz = nn.constant {value = @nz} : tensor<f32>\n  \
                   %a = nn.add %x, %pz : tensor<2xf32>\n  \
                   %b = nn.sub %a, %nz : tensor<2xf32>\n  \
                   %c = nn.div %nz, %b : tensor<2xf32>\n  \
                   return %c\n}\n";
        assert_eq!(canon(src), src);
    }

    #[test]
    fn integer_zero_folds_and_other_values_do_not() {
        let out = canon(
            "weight @z : tensor<i64> = dense<[0]>\n\
             weight @two : tensor<i64> = dense<[2]>\n\
             graph @main(%x: tensor<4xi64>) -> (tensor<4xi64>) {\n  \
               %z = nn.constant {value = @z} : tensor<i64>\n  \
               %two = nn.constant {value = @two} : tensor<i64>\n  \
               %a = nn.add %x, %z : tensor<4xi64>\n  \
               %b = nn.mul %a, %two : tensor<4xi64>\n  \
               return %b\n}\n",
        );
        assert!(out.contains("%b = nn.mul %x, %two"), "{out}");
        assert!(!out.contains("@z "), "{out}");
    }

    #[test]
    fn unknown_dims_block_the_neutral_fold() {
        // %one could broadcast %x's unknown leading dim from 1 to 3.
        let src = "weight @one : tensor<3x1xf32> = dense<[1.0, 1.0, 1.0]>\n\
                   graph @main(%x: tensor<?x1xf32>) -> (tensor<3x1xf32>) {\n  \
                   %one = nn.constant {value = @one} : tensor<3x1xf32>\n  \
                   %y = nn.mul %x, %one : tensor<3x1xf32>\n  \
                   return %y\n}\n";
        assert_eq!(canon(src), src);
    }
}
