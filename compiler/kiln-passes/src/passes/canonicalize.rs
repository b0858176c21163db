//! `canonicalize`: local algebraic simplifications, applied until nothing
//! matches, then removal of the nodes they left dead.
//!
//! Each pattern is a pure function `(graph, node) -> Option<Rewrite>` that
//! decides (matching, shape and dtype checks, the output-name policy of
//! [`crate::rewrite`]); rewriting is [`apply`], which cannot fail.
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
//!   permutations cancel;
//! - `compose-transposes`: `transpose(transpose(x, p1), p2)` ->
//!   `transpose(x, p)` with `p[i] = p1[p2[i]]` (tried after
//!   `inverse-transposes`, so `p` is never the identity);
//! - `reshape-of-reshape`: `reshape(reshape(x, s1), s2)` -> `reshape(x, s2)`
//!   when `s2` is a constant that does not copy dims of the inner result
//!   (no 0 entry, or `allowzero` set) and inference on `x` agrees with the
//!   declared result; otherwise, when the result type is fully static,
//!   `reshape(x, c)` with a new constant `c` of the static extents. A `-1`
//!   in `s2` infers the same extent from `x` as from the inner result, since
//!   both have the same element count;
//! - `inference-dropout`: `nn.dropout` without `training_mode`, or with a
//!   constant false one, becomes `nn.identity` of its data (which the
//!   `identity` pattern then removes); a used mask result becomes a new
//!   all-true constant, which needs its shape static (otherwise the dropout
//!   stays).
//!
//! Patterns that add a constant append it during a sweep (the producer map
//! and node indices stay valid) and the sweep moves it to the front of the
//! graph when it ends; constants have no operands, so the front is always a
//! valid position.
//!
//! Precondition: a verified graph. Graph outputs keep their names and types
//! (see [`crate::rewrite`]).

use crate::pass::{pass_info, Pass, PassError, PassOptions, PassStats};
use crate::passes::dce;
use crate::pattern::perm_of;
use crate::registry::PassInfo;
use crate::rewrite::{self, plan_replace, How, Replacement};
use kiln_ir::{
    Attr, Attrs, Blob, DType, Def, Dim, Graph, Node, OpKind, TensorType, ValueId, Weight,
    WeightData,
};
use std::collections::HashMap;

/// Registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "canonicalize",
    summary: "Simplifies identities, neutral elements, double negation, idempotent ops, transpose and reshape chains, inference dropout",
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

/// A decided rewrite.
#[derive(Clone, Debug, PartialEq)]
enum Rewrite {
    /// Replace a value (the [`crate::rewrite`] policy).
    Replace(Replacement),
    /// Node `node` gets new operands and attributes; its op and results
    /// stay.
    Update {
        /// The node.
        node: usize,
        /// Its new operands.
        inputs: Vec<Option<ValueId>>,
        /// Its new attributes.
        attrs: Attrs,
    },
    /// Reshape `node` reads `data` with a new constant shape of `dims`.
    StaticReshape {
        /// The outer reshape.
        node: usize,
        /// What it reshapes now.
        data: ValueId,
        /// The static target extents.
        dims: Vec<u64>,
    },
    /// Dropout `node` becomes `nn.identity` of its data, keeping only its
    /// first result; its mask, if used, becomes an all-true constant.
    InferenceDropout {
        /// The dropout.
        node: usize,
        /// What it passes through.
        data: ValueId,
        /// The used mask, its static type and how it is replaced
        /// ([`How::Uses`], or [`How::TakeName`] for a graph output).
        mask: Option<(ValueId, TensorType, How)>,
    },
}

type Pattern = fn(&Ctx<'_>, usize) -> Option<Rewrite>;

/// Every pattern with its name (used in debug logs), in the order tried.
const PATTERNS: &[(&str, Pattern)] = &[
    ("identity", identity),
    ("same-dtype-cast", same_dtype_cast),
    ("neutral-element", neutral_element),
    ("double-negation", double_negation),
    ("idempotent", idempotent),
    ("inverse-transposes", inverse_transposes),
    ("compose-transposes", compose_transposes),
    ("reshape-of-reshape", reshape_of_reshape),
    ("inference-dropout", inference_dropout),
];

/// Plans replacing `old` (a result of node `n`) by `new`.
fn replace(cx: &Ctx<'_>, n: usize, old: ValueId, new: ValueId) -> Option<Rewrite> {
    plan_replace(cx.g, n, old, new).map(Rewrite::Replace)
}

fn identity(cx: &Ctx<'_>, n: usize) -> Option<Rewrite> {
    if cx.g.nodes[n].op != OpKind::Identity {
        return None;
    }
    let (x, y) = cx.unary(n)?;
    replace(cx, n, y, x)
}

fn same_dtype_cast(cx: &Ctx<'_>, n: usize) -> Option<Rewrite> {
    let node = &cx.g.nodes[n];
    if node.op != OpKind::Cast {
        return None;
    }
    let (x, y) = cx.unary(n)?;
    match node.attrs.get("to") {
        Some(Attr::DType(d)) if *d == cx.g.value(x).ty.dtype => replace(cx, n, y, x),
        _ => None,
    }
}

fn double_negation(cx: &Ctx<'_>, n: usize) -> Option<Rewrite> {
    if cx.g.nodes[n].op != OpKind::Neg {
        return None;
    }
    let (a, y) = cx.unary(n)?;
    let inner = cx.producer(a)?;
    match (inner.op, inner.inputs.as_slice()) {
        (OpKind::Neg, [Some(x)]) => replace(cx, n, y, *x),
        _ => None,
    }
}

fn idempotent(cx: &Ctx<'_>, n: usize) -> Option<Rewrite> {
    let node = &cx.g.nodes[n];
    if !node.op.def().traits.idempotent {
        return None;
    }
    let (a, y) = cx.unary(n)?;
    let inner = cx.producer(a)?;
    if inner.op == node.op && inner.attrs == node.attrs {
        replace(cx, n, y, a)
    } else {
        None
    }
}

fn inverse_transposes(cx: &Ctx<'_>, n: usize) -> Option<Rewrite> {
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
        replace(cx, n, y, *x)
    } else {
        None
    }
}

fn compose_transposes(cx: &Ctx<'_>, n: usize) -> Option<Rewrite> {
    let outer = &cx.g.nodes[n];
    if outer.op != OpKind::Transpose {
        return None;
    }
    let (a, _) = cx.unary(n)?;
    let inner = cx.producer(a)?;
    let (OpKind::Transpose, [Some(x)]) = (inner.op, inner.inputs.as_slice()) else {
        return None;
    };
    let rank = cx.g.value(*x).ty.rank();
    let (p1, p2) = (perm_of(inner, rank)?, perm_of(outer, rank)?);
    // Result dim i of the pair is input dim p1[p2[i]].
    let perm = p2
        .iter()
        .map(|&i| i64::try_from(p1[i]).ok())
        .collect::<Option<Vec<i64>>>()?;
    let mut attrs = outer.attrs.clone();
    attrs.insert("perm".into(), Attr::Ints(perm));
    Some(Rewrite::Update {
        node: n,
        inputs: vec![Some(*x)],
        attrs,
    })
}

/// The elements of an i64 constant.
fn const_i64s(cx: &Ctx<'_>, v: ValueId) -> Option<Vec<i64>> {
    let w = cx.g.weight(cx.g.constant_weight(cx.defs, v)?);
    if w.ty.dtype != DType::I64 {
        return None;
    }
    w.bytes()?
        .bytes()
        .chunks_exact(8)
        .map(|c| c.try_into().ok().map(i64::from_le_bytes))
        .collect()
}

fn reshape_of_reshape(cx: &Ctx<'_>, n: usize) -> Option<Rewrite> {
    let outer = &cx.g.nodes[n];
    if outer.op != OpKind::Reshape {
        return None;
    }
    let ([Some(a), Some(s2)], [y]) = (outer.inputs.as_slice(), outer.outputs.as_slice()) else {
        return None;
    };
    let inner = cx.producer(*a)?;
    let (OpKind::Reshape, [Some(x), _]) = (inner.op, inner.inputs.as_slice()) else {
        return None;
    };
    // `allowzero` defaults to false in the op's schema.
    let allow_zero = matches!(outer.attrs.get("allowzero"), Some(Attr::Bool(true)));
    // The outer shape applies to `x` unchanged unless one of its 0 entries
    // copies an extent of the inner result.
    if let Some(shape) = const_i64s(cx, *s2) {
        if allow_zero || !shape.contains(&0) {
            let candidate = Node {
                inputs: vec![Some(*x), Some(*s2)],
                ..outer.clone()
            };
            let agrees = kiln_ir::verify::infer_node(cx.g, &candidate, cx.defs).is_ok_and(|t| {
                t.first()
                    .is_some_and(|t| cx.g.value(*y).ty.is_compatible(t))
            });
            if agrees {
                return Some(Rewrite::Update {
                    node: n,
                    inputs: candidate.inputs,
                    attrs: candidate.attrs,
                });
            }
        }
    }
    let y_ty = &cx.g.value(*y).ty;
    let dims = y_ty.static_shape()?;
    let x_count = cx.g.value(*x).ty.numel();
    if dims.iter().any(|&d| i64::try_from(d).is_err())
        || x_count.is_some_and(|c| Some(c) != y_ty.numel())
    {
        return None;
    }
    Some(Rewrite::StaticReshape {
        node: n,
        data: *x,
        dims,
    })
}

/// Whether `v` is used by a node or is a graph output.
fn is_used(g: &Graph, v: ValueId) -> bool {
    g.outputs.contains(&v) || g.nodes.iter().any(|n| n.operands().any(|o| o == v))
}

fn inference_dropout(cx: &Ctx<'_>, n: usize) -> Option<Rewrite> {
    let node = &cx.g.nodes[n];
    if node.op != OpKind::Dropout {
        return None;
    }
    let Some(Some(data)) = node.inputs.first() else {
        return None;
    };
    if let Some(mode) = node.inputs.get(2).copied().flatten() {
        // Only a constant false training_mode proves inference.
        let w = cx.g.weight(cx.g.constant_weight(cx.defs, mode)?);
        let false_ = w.ty.dtype == DType::Bool && w.bytes()?.bytes().iter().all(|&b| b == 0);
        if !false_ {
            return None;
        }
    }
    let mask = match node.outputs.get(1) {
        Some(&m) if is_used(cx.g, m) => {
            let declared = &cx.g.value(m).ty;
            let shape = declared
                .static_shape()
                .or_else(|| cx.g.value(*data).ty.static_shape())?;
            let ty = TensorType::fixed(DType::Bool, &shape);
            let how = if !cx.g.outputs.contains(&m) {
                How::Uses
            } else if *declared == ty {
                How::TakeName
            } else {
                // A graph output must keep its exact type.
                return None;
            };
            Some((m, ty, how))
        }
        _ => None,
    };
    Some(Rewrite::InferenceDropout {
        node: n,
        data: *data,
        mask,
    })
}

/// Appends an `nn.constant` of `ty` holding `bytes`, named after `name`.
fn append_constant(g: &mut Graph, name: &str, ty: TensorType, bytes: Vec<u8>) -> ValueId {
    let weight = Weight {
        name: name.to_string(),
        ty,
        data: WeightData::Bytes(Blob::from_vec(bytes)),
        source: None,
    };
    g.add_constant(name, weight)
}

/// Carries out a decided rewrite. New constants are appended; the sweep
/// moves them to the front.
fn apply(g: &mut Graph, r: Rewrite) {
    match r {
        Rewrite::Replace(r) => rewrite::apply(g, r),
        Rewrite::Update {
            node,
            inputs,
            attrs,
        } => {
            let n = &mut g.nodes[node];
            n.inputs = inputs;
            n.attrs = attrs;
        }
        Rewrite::StaticReshape { node, data, dims } => {
            let name = format!("{}_shape", g.value(g.nodes[node].outputs[0]).name);
            // Extents were checked to fit an i64.
            let bytes = dims
                .iter()
                .flat_map(|&d| (d as i64).to_le_bytes())
                .collect();
            let ty = TensorType::fixed(DType::I64, &[dims.len() as u64]);
            let shape = append_constant(g, &name, ty, bytes);
            let n = &mut g.nodes[node];
            n.inputs = vec![Some(data), Some(shape)];
            if dims.contains(&0) {
                // A 0 extent is literal only with allowzero.
                n.attrs.insert("allowzero".into(), Attr::Bool(true));
            } else {
                n.attrs.remove("allowzero");
            }
        }
        Rewrite::InferenceDropout { node, data, mask } => {
            if let Some((m, ty, how)) = mask {
                let count = ty.numel().unwrap_or(0) as usize;
                let name = g.value(m).name.clone();
                let c = append_constant(g, &name, ty, vec![1u8; count]);
                rewrite::apply(
                    g,
                    Replacement {
                        old: m,
                        new: c,
                        how,
                    },
                );
                if how == How::Uses {
                    // The mask is dead now; the constant takes its name.
                    g.swap_value_names(m, c);
                }
            }
            let n = &mut g.nodes[node];
            n.op = OpKind::Identity;
            n.inputs = vec![Some(data)];
            n.attrs = Attrs::new();
            n.outputs.truncate(1);
        }
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

fn neutral_element(cx: &Ctx<'_>, n: usize) -> Option<Rewrite> {
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
            replace(cx, n, *y, x)
        } else {
            None
        }
    })
}

impl Pass for Canonicalize {
    pass_info!();
    fn run(&self, g: &mut Graph, opts: &PassOptions) -> Result<PassStats, PassError> {
        Ok(PassStats {
            rewrites: sweep(g, opts, PATTERNS),
        })
    }
}

/// The patterns that cancel and merge chains of layout changes (used by
/// `sink-transposes` once it has brought transposes together).
const LAYOUT_PATTERNS: &[(&str, Pattern)] = &[
    ("identity", identity),
    ("inverse-transposes", inverse_transposes),
    ("compose-transposes", compose_transposes),
    ("reshape-of-reshape", reshape_of_reshape),
];

/// Cancels inverse transposes, composes transpose chains and merges
/// reshape chains until nothing matches; returns the number of rewrites.
pub fn cancel_layout_chains(g: &mut Graph, opts: &PassOptions) -> usize {
    sweep(g, opts, LAYOUT_PATTERNS)
}

/// Applies `patterns` until nothing matches (or `max_iterations` sweeps),
/// then removes what they left dead.
fn sweep(g: &mut Graph, opts: &PassOptions, patterns: &[(&str, Pattern)]) -> usize {
    let mut rewrites = 0;
    for _ in 0..opts.max_iterations.max(1) {
        // Rewrites neither remove nor reorder nodes and only append
        // constants, so the producer map and node indices stay valid
        // for the whole sweep.
        let defs = g.defs();
        let swept = g.nodes.len();
        let mut changed = false;
        for n in 0..swept {
            let found = {
                let cx = Ctx { g, defs: &defs };
                patterns
                    .iter()
                    .find_map(|(name, p)| p(&cx, n).map(|r| (*name, r)))
            };
            if let Some((name, r)) = found {
                tracing::trace!(pattern = name, node = n, "canonicalize");
                apply(g, r);
                rewrites += 1;
                changed = true;
            }
        }
        if g.nodes.len() > swept {
            let added = g.nodes.split_off(swept);
            g.nodes.splice(0..0, added);
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
    rewrites
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::{graph, run};
    use kiln_ir::text::print;

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
    fn cancelling_transposes_vanish_and_others_compose() {
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
        // Result dim i is x dim p1[p2[i]]: [2, 1, 0] then [0, 2, 1] is
        // [2, 0, 1], and the reversing transpose %d is dead.
        assert!(
            out.contains("%e = nn.transpose %x {perm = [2, 0, 1]} : tensor<4x2x3xf32>"),
            "{out}"
        );
        assert!(!out.contains("%d ="), "{out}");
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

    #[test]
    fn reshape_of_reshape_reads_the_original_with_the_outer_shape() {
        let out = canon(
            "weight @s1 : tensor<1xi64> = dense<[-1]>\n\
             weight @s2 : tensor<2xi64> = dense<[-1, 4]>\n\
             graph @main(%x: tensor<?x2x4xf32>) -> (tensor<?x4xf32>, tensor<?xf32>) {\n  \
               %s1 = nn.constant {value = @s1} : tensor<1xi64>\n  \
               %s2 = nn.constant {value = @s2} : tensor<2xi64>\n  \
               %a = nn.reshape %x, %s1 : tensor<?xf32>\n  \
               %b = nn.reshape %a, %s2 : tensor<?x4xf32>\n  \
               return %b, %a\n}\n",
        );
        // %a has another use and stays; %b no longer goes through it.
        assert!(
            out.contains("%b = nn.reshape %x, %s2 : tensor<?x4xf32>"),
            "{out}"
        );
        assert!(out.contains("%a = nn.reshape %x, %s1"), "{out}");
    }

    #[test]
    fn reshape_copying_an_inner_dim_needs_a_static_result() {
        // The outer 0 copies dim 0 of the inner result (6), not of %x (2):
        // the outer shape cannot be reused. When the result type is static,
        // a new shape constant takes its place.
        let src = |x: &str, y: &str| {
            format!(
                "weight @s1 : tensor<2xi64> = dense<[6, -1]>\n\
                 weight @s2 : tensor<2xi64> = dense<[0, 4]>\n\
                 graph @main(%x: tensor<{x}x3x4xf32>) -> (tensor<{y}x4xf32>) {{\n  \
                   %s1 = nn.constant {{value = @s1}} : tensor<2xi64>\n  \
                   %s2 = nn.constant {{value = @s2}} : tensor<2xi64>\n  \
                   %a = nn.reshape %x, %s1 : tensor<6x?xf32>\n  \
                   %b = nn.reshape %a, %s2 : tensor<{y}x4xf32>\n  \
                   return %b\n}}\n"
            )
        };
        let out = canon(&src("2", "6"));
        assert!(
            out.contains("weight @b_shape : tensor<2xi64> = dense<[6, 4]>"),
            "{out}"
        );
        assert!(
            out.contains("%b = nn.reshape %x, %b_shape : tensor<6x4xf32>"),
            "{out}"
        );
        assert!(!out.contains("%a ="), "{out}");
        // A static result works for a dynamic %x too.
        assert!(canon(&src("?", "6")).contains("%b = nn.reshape %x, %b_shape"));
        // A dynamic result keeps both reshapes.
        let dynamic = src("?", "?");
        assert_eq!(canon(&dynamic), dynamic);
    }

    #[test]
    fn reshape_to_a_static_shape_with_zero_extents_sets_allowzero() {
        let out = canon(
            "weight @s1 : tensor<2xi64> = dense<[5, 0]>\n\
             weight @s2 : tensor<3xi64> = dense<[0, 0, 5]>\n\
             graph @main(%x: tensor<0x5xf32>) -> (tensor<0x0x5xf32>) {\n  \
               %s1 = nn.constant {value = @s1} : tensor<2xi64>\n  \
               %s2 = nn.constant {value = @s2} : tensor<3xi64>\n  \
               %a = nn.reshape %x, %s1 {allowzero = true} : tensor<5x0xf32>\n  \
               %b = nn.reshape %a, %s2 {allowzero = true} : tensor<0x0x5xf32>\n  \
               return %b\n}\n",
        );
        assert!(
            out.contains("%b = nn.reshape %x, %s2 {allowzero = true}"),
            "{out}"
        );
    }

    #[test]
    fn reshape_to_a_scalar_gets_an_empty_shape_constant() {
        let out = canon(
            "weight @s1 : tensor<1xi64> = dense<[1]>\n\
             graph @main(%x: tensor<1x1xf32>, %s2: tensor<0xi64>) -> (tensor<f32>) {\n  \
               %s1 = nn.constant {value = @s1} : tensor<1xi64>\n  \
               %a = nn.reshape %x, %s1 : tensor<1xf32>\n  \
               %b = nn.reshape %a, %s2 : tensor<f32>\n  \
               return %b\n}\n",
        );
        assert!(
            out.contains("%b = nn.reshape %x, %b_shape : tensor<f32>"),
            "{out}"
        );
        assert!(out.contains("tensor<0xi64>"), "{out}");
    }

    #[test]
    fn inference_dropout_vanishes() {
        let out = canon(
            "weight @no : tensor<bool> = dense<\"0x00\">\n\
             weight @half : tensor<f32> = dense<[0.5]>\n\
             graph @main(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xbool>) {\n  \
               %no = nn.constant {value = @no} : tensor<bool>\n  \
               %half = nn.constant {value = @half} : tensor<f32>\n  \
               %a = nn.exp %x : tensor<2x3xf32>\n  \
               %b = nn.dropout %a : tensor<2x3xf32>\n  \
               %c, %m = nn.dropout %b, %half, %no : tensor<2x3xf32>, tensor<2x3xbool>\n  \
               %d = nn.relu %c : tensor<2x3xf32>\n  \
               %e = nn.not %m : tensor<2x3xbool>\n  \
               return %d, %e\n}\n",
        );
        assert!(!out.contains("nn.dropout"), "{out}");
        assert!(out.contains("%d = nn.relu %a"), "{out}");
        // The used mask is an all-true constant under the mask's name.
        assert!(out.contains("%e = nn.not %m"), "{out}");
        assert!(out.contains("%m = nn.constant {value = @m}"), "{out}");
        assert!(
            out.contains(
                "weight @m : tensor<2x3xbool> = dense<[true, true, true, true, true, true]>"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_returned_mask_keeps_its_name() {
        let out = canon(
            "graph @main(%x: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xbool>) {\n  \
               %a = nn.exp %x : tensor<2xf32>\n  \
               %b, %m = nn.dropout %a : tensor<2xf32>, tensor<2xbool>\n  \
               return %b, %m\n}\n",
        );
        assert!(!out.contains("nn.dropout"), "{out}");
        assert!(out.contains("%b = nn.exp %x"), "{out}");
        assert!(out.contains("%m = nn.constant"), "{out}");
        assert!(out.contains("return %b, %m"), "{out}");
    }

    #[test]
    fn training_or_unknown_mode_dropout_and_dynamic_masks_stay() {
        let src = "weight @yes : tensor<bool> = dense<\"0x01\">\n\
                   graph @main(%x: tensor<2xf32>, %t: tensor<bool>, %y: tensor<?xf32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<?xbool>) {\n  \
                     %yes = nn.constant {value = @yes} : tensor<bool>\n  \
                     %a = nn.dropout %x, none, %yes : tensor<2xf32>\n  \
                     %b = nn.dropout %x, none, %t : tensor<2xf32>\n  \
                     %c, %m = nn.dropout %y : tensor<?xf32>, tensor<?xbool>\n  \
                     return %a, %b, %m\n}\n";
        let g = graph(src);
        let out = canon(src);
        // Nothing to do: %c is unused but its node makes the used mask.
        assert_eq!(out, print(&g));
    }
}
