//! Matching helpers shared by the recognition, sinking and fusion passes: a
//! read-only view of a graph with producers, users and constant values, so
//! that a pattern is a pure function of the graph.
//!
//! Nothing here changes the graph; rewrites go through [`crate::rewrite`].

use kiln_interp::Tensor;
use kiln_ir::attr::AttrEnum;
use kiln_ir::ops::infer::ConstOperand;
use kiln_ir::ops::{AttrDefault, InferCtx};
use kiln_ir::{Attr, Attrs, DType, Def, Dim, Graph, Node, OpKind, TensorType, ValueId, Weight};
use std::collections::{HashMap, HashSet};

/// Constants with more elements than this are never decoded by a pattern
/// (a pattern reads masks and scalars, not weight matrices).
pub const MAX_DECODED_ELEMENTS: u64 = 1 << 22;

/// A graph with its def-use information. Uses count only nodes that are
/// live (some graph output depends on them): a rewrite leaves the nodes it
/// replaced behind for dce, and they must not keep values "in use".
pub struct Matcher<'g> {
    /// The graph.
    pub g: &'g Graph,
    defs: HashMap<ValueId, Def>,
    users: HashMap<ValueId, Vec<usize>>,
    outputs: HashSet<ValueId>,
    live: Vec<bool>,
}

impl<'g> Matcher<'g> {
    /// Indexes `g`.
    pub fn new(g: &'g Graph) -> Matcher<'g> {
        let outputs: HashSet<ValueId> = g.outputs.iter().copied().collect();
        let mut live_values: HashSet<ValueId> = outputs.clone();
        let mut live = vec![false; g.nodes.len()];
        for (i, n) in g.nodes.iter().enumerate().rev() {
            if n.outputs.iter().any(|v| live_values.contains(v)) {
                live[i] = true;
                live_values.extend(n.operands());
            }
        }
        let mut users: HashMap<ValueId, Vec<usize>> = HashMap::new();
        for (i, n) in g.nodes.iter().enumerate().filter(|&(i, _)| live[i]) {
            for v in n.operands() {
                let u = users.entry(v).or_default();
                if u.last() != Some(&i) {
                    u.push(i);
                }
            }
        }
        Matcher {
            g,
            defs: g.defs(),
            users,
            outputs,
            live,
        }
    }

    /// Whether node `n` is live (a graph output depends on it).
    pub fn is_live(&self, n: usize) -> bool {
        self.live.get(n).copied().unwrap_or(false)
    }

    /// The producer map.
    pub fn defs(&self) -> &HashMap<ValueId, Def> {
        &self.defs
    }

    /// A value's type.
    pub fn ty(&self, v: ValueId) -> &'g TensorType {
        &self.g.value(v).ty
    }

    /// Index of the node producing `v`.
    pub fn node_of(&self, v: ValueId) -> Option<usize> {
        match self.defs.get(&v)? {
            Def::Node { node, .. } => Some(*node),
            Def::Input(_) => None,
        }
    }

    /// The node producing `v` as its only result, if its op is `op`.
    pub fn def(&self, v: ValueId, op: OpKind) -> Option<(usize, &'g Node)> {
        let i = self.node_of(v)?;
        let n = &self.g.nodes[i];
        (n.op == op && n.outputs.len() == 1).then_some((i, n))
    }

    /// The two operands of `v`'s producer if it is the binary op `op`.
    pub fn binary(&self, v: ValueId, op: OpKind) -> Option<(usize, ValueId, ValueId)> {
        let (i, n) = self.def(v, op)?;
        match n.inputs.as_slice() {
            [Some(a), Some(b)] => Some((i, *a, *b)),
            _ => None,
        }
    }

    /// The operand of `v`'s producer if it is the unary op `op`.
    pub fn unary(&self, v: ValueId, op: OpKind) -> Option<(usize, ValueId)> {
        let (i, n) = self.def(v, op)?;
        match n.inputs.as_slice() {
            [Some(a)] => Some((i, *a)),
            _ => None,
        }
    }

    /// Nodes using `v` (each once, in graph order).
    pub fn users(&self, v: ValueId) -> &[usize] {
        self.users.get(&v).map_or(&[], Vec::as_slice)
    }

    /// Whether `v` is a graph output.
    pub fn is_output(&self, v: ValueId) -> bool {
        self.outputs.contains(&v)
    }

    /// Whether `v` is used by exactly one node, once, and is not a graph
    /// output: it may disappear when that node is rewritten.
    pub fn single_use(&self, v: ValueId) -> bool {
        match self.users(v) {
            [u] => {
                !self.is_output(v) && self.g.nodes[*u].operands().filter(|&o| o == v).count() == 1
            }
            _ => false,
        }
    }

    /// Whether every result of the nodes in `interior` is used only by
    /// nodes in `set` and is no graph output: the nodes may all disappear
    /// when `set` is replaced.
    pub fn contained(&self, interior: &[usize], set: &HashSet<usize>) -> bool {
        interior.iter().all(|&n| {
            self.g.nodes[n]
                .outputs
                .iter()
                .all(|&v| !self.is_output(v) && self.users(v).iter().all(|u| set.contains(u)))
        })
    }

    /// The weight behind a `nn.constant` value.
    pub fn weight(&self, v: ValueId) -> Option<&'g Weight> {
        Some(self.g.weight(self.g.constant_weight(&self.defs, v)?))
    }

    /// The data of a constant of at most [`MAX_DECODED_ELEMENTS`] elements.
    pub fn const_tensor(&self, v: ValueId) -> Option<Tensor> {
        let w = self.weight(v)?;
        if w.ty.numel()? > MAX_DECODED_ELEMENTS {
            return None;
        }
        Tensor::from_weight(w).ok()
    }

    /// The value of `v` if it is computed from constants alone by at most
    /// `depth` levels of nodes (a mask built by `nn.trilu` of a filled
    /// tensor, a slice of a constant table), evaluated by the reference
    /// interpreter; every operand and result is at most
    /// [`MAX_DECODED_ELEMENTS`] elements.
    pub fn eval_const(&self, v: ValueId, depth: usize) -> Option<Tensor> {
        if let Some(t) = self.const_tensor(v) {
            return Some(t);
        }
        let i = self.node_of(v)?;
        let node = &self.g.nodes[i];
        if depth == 0 || node.op == OpKind::Constant || node.outputs.len() != 1 {
            return None;
        }
        let operands = node
            .inputs
            .iter()
            .map(|o| match o {
                None => Some(None),
                Some(o) => self.eval_const(*o, depth - 1).map(Some),
            })
            .collect::<Option<Vec<Option<Tensor>>>>()?;
        let refs: Vec<Option<&Tensor>> = operands.iter().map(Option::as_ref).collect();
        let limits = kiln_interp::Limits {
            max_elements: MAX_DECODED_ELEMENTS,
        };
        kiln_interp::eval_node(self.g.weights(), node, &refs, &limits)
            .ok()?
            .into_iter()
            .next()
    }

    /// The value of a constant all of whose (at least one) elements are
    /// equal (bools and integers convert to f64).
    pub fn splat(&self, v: ValueId) -> Option<f64> {
        let t = self.eval_const(v, 2)?;
        let vals = t.to_f64_vec();
        let first = *vals.first()?;
        vals.iter()
            .all(|x| x.to_bits() == first.to_bits())
            .then_some(first)
    }

    /// The value of a constant splat that cannot broadcast `other` (the
    /// other operand of an elementwise op producing `result`) to a larger
    /// shape: the result has `other`'s exact type.
    pub fn scalar_operand(&self, c: ValueId, other: ValueId, result: ValueId) -> Option<f64> {
        if self.ty(result) != self.ty(other) || self.ty(c).rank() > self.ty(other).rank() {
            return None;
        }
        self.splat(c)
    }

    /// The elements of a small integer constant.
    pub fn const_ints(&self, v: ValueId) -> Option<Vec<i64>> {
        let t = self.const_tensor(v)?;
        t.ints()?.iter().map(|&x| i64::try_from(x).ok()).collect()
    }
}

/// `a` and `b` agree to a relative tolerance `rel`.
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(a.abs())
}

/// Whether two dims denote the same extent for certain (equal static
/// extents or the same symbol; unknown dims never match).
pub fn same_dim(a: &Dim, b: &Dim) -> bool {
    match (a, b) {
        (Dim::Static(x), Dim::Static(y)) => x == y,
        (Dim::Sym(x), Dim::Sym(y)) => x == y,
        _ => false,
    }
}

/// Whether two types are equal with every dim known ([`same_dim`]).
pub fn same_type(a: &TensorType, b: &TensorType) -> bool {
    a.dtype == b.dtype
        && a.rank() == b.rank()
        && a.dims.iter().zip(&b.dims).all(|(x, y)| same_dim(x, y))
}

/// Result types of a hypothetical `op` node over operands of the given
/// types (no constant operands), or `None` when inference refuses.
pub fn infer(
    op: OpKind,
    attrs: &Attrs,
    inputs: &[Option<&TensorType>],
    num_outputs: usize,
) -> Option<Vec<TensorType>> {
    let consts: Vec<Option<ConstOperand<'_>>> = vec![None; inputs.len()];
    let ctx = InferCtx {
        def: op.def(),
        inputs,
        attrs,
        consts: &consts,
        num_outputs,
        weight_ty: None,
        body: None,
    };
    (op.def().infer)(&ctx).ok()
}

/// An attribute of `node`, or its schema default.
pub fn attr_or_default(node: &Node, name: &str) -> Option<Attr> {
    if let Some(a) = node.attrs.get(name) {
        return Some(a.clone());
    }
    Some(match node.op.def().attr_spec(name)?.default {
        AttrDefault::Int(v) => Attr::Int(v),
        AttrDefault::Float(v) => Attr::Float(v),
        AttrDefault::Bool(v) => Attr::Bool(v),
        AttrDefault::Str(v) => Attr::Str(v.to_string()),
        AttrDefault::Ints(v) => Attr::Ints(v.to_vec()),
        AttrDefault::Required | AttrDefault::Absent => return None,
    })
}

/// An integer attribute of `node`, or its schema default.
pub fn int_attr(node: &Node, name: &str) -> Option<i64> {
    match attr_or_default(node, name)? {
        Attr::Int(v) => Some(v),
        _ => None,
    }
}

/// A bool attribute of `node`, or its schema default.
pub fn bool_attr(node: &Node, name: &str) -> Option<bool> {
    match attr_or_default(node, name)? {
        Attr::Bool(v) => Some(v),
        _ => None,
    }
}

/// A float attribute of `node` (an integer widens), or its schema default.
pub fn float_attr(node: &Node, name: &str) -> Option<f64> {
    match attr_or_default(node, name)? {
        Attr::Float(v) => Some(v),
        Attr::Int(v) => Some(v as f64),
        _ => None,
    }
}

/// A closed-set string attribute of `node` (or its schema default) as its
/// [`AttrEnum`]; `None` when absent or not one of the spellings.
pub fn enum_attr<T: AttrEnum>(node: &Node, name: &str) -> Option<T> {
    attr_or_default(node, name)?.as_enum()
}

/// A transpose's permutation (absent means reversing the dims).
pub fn perm_of(node: &Node, rank: usize) -> Option<Vec<usize>> {
    match node.attrs.get("perm") {
        None => Some((0..rank).rev().collect()),
        Some(Attr::Ints(p)) if p.len() == rank => {
            let p: Vec<usize> = p
                .iter()
                .map(|&i| usize::try_from(i).ok().filter(|&i| i < rank))
                .collect::<Option<_>>()?;
            let mut seen = vec![false; rank];
            for &i in &p {
                if std::mem::replace(&mut seen[i], true) {
                    return None;
                }
            }
            Some(p)
        }
        _ => None,
    }
}

/// `perm` applied to `dims`: result dim `i` is `dims[perm[i]]`.
pub fn permute<T: Clone>(dims: &[T], perm: &[usize]) -> Vec<T> {
    perm.iter().map(|&p| dims[p].clone()).collect()
}

/// The inverse permutation.
pub fn invert(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// Whether `perm` is the identity.
pub fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| i == p)
}

/// `perm` as an attribute.
pub fn perm_attrs(perm: &[usize]) -> Attrs {
    let mut a = Attrs::new();
    a.insert(
        "perm".into(),
        Attr::Ints(perm.iter().map(|&p| p as i64).collect()),
    );
    a
}

/// Normalizes reduction axes against `rank` (negative axes count from the
/// end), sorted; `None` if out of range or repeated.
pub fn norm_axes(axes: &[i64], rank: usize) -> Option<Vec<usize>> {
    let r = i64::try_from(rank).ok()?;
    let mut out: Vec<usize> = axes
        .iter()
        .map(|&a| {
            let a = if a < 0 { a + r } else { a };
            (0..r).contains(&a).then_some(a as usize)
        })
        .collect::<Option<_>>()?;
    out.sort_unstable();
    let n = out.len();
    out.dedup();
    (out.len() == n).then_some(out)
}

/// Whether `dt` is a float dtype the recognized ops compute in.
pub fn is_compute_float(dt: DType) -> bool {
    matches!(dt, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}
