//! The `ai.onnx.ml` operators that classic (scikit-learn style) pipelines
//! export, imported as compositions of Kiln ops: `Binarizer`,
//! `ArrayFeatureExtractor`, `Scaler`, `Normalizer`, `LinearRegressor` and
//! `TreeEnsemble` (ml opset 5).
//!
//! Tree ensembles are attribute tables, so they are compiled, not
//! interpreted: every root-to-leaf path becomes the conjunction of its
//! branch conditions over the input columns, and each target sums its
//! leaves' weights masked by those conjunctions. Exactly one path per tree
//! is true for every row, so the sum is the tree's output. Branch tables
//! are untrusted: a path longer than the node table (a cycle) is refused.
//!
//! Operators of this domain that take or produce strings, maps or
//! sequences (`LabelEncoder`, `ZipMap`, `DictVectorizer`, ...) stay refused.
//!
//! `post_transform` codes follow the TreeEnsemble spec (SOFTMAX = 1,
//! LOGISTIC = 2); ONNX Runtime 1.32 numbers them the other way round.

use super::NodeCtx;
use crate::error::OnnxError;
use kiln_interp::Tensor;
use kiln_ir::{Attr, DType, OpKind, ValueId};
use std::collections::HashMap;

type R = Result<Vec<Option<ValueId>>, OnnxError>;
type V = Result<ValueId, OnnxError>;

/// One `ai.onnx.ml` importer: operator, oldest ml opset handled, builder.
pub struct MlImporter {
    /// Operator name.
    pub op_type: &'static str,
    /// Oldest `ai.onnx.ml` opset version this builder handles.
    pub since: i64,
    /// The builder.
    pub import: fn(&mut NodeCtx<'_, '_>) -> R,
}

/// Every supported operator of the `ai.onnx.ml` domain.
pub static ML_IMPORTERS: &[MlImporter] = &[
    MlImporter {
        op_type: "ArrayFeatureExtractor",
        since: 1,
        import: array_feature_extractor,
    },
    MlImporter {
        op_type: "Binarizer",
        since: 1,
        import: binarizer,
    },
    MlImporter {
        op_type: "LinearRegressor",
        since: 1,
        import: linear_regressor,
    },
    MlImporter {
        op_type: "Normalizer",
        since: 1,
        import: normalizer,
    },
    MlImporter {
        op_type: "Scaler",
        since: 1,
        import: scaler,
    },
    MlImporter {
        op_type: "TreeEnsemble",
        since: 5,
        import: tree_ensemble,
    },
];

/// The importer of `op_type`, if Kiln has one.
pub fn find(op_type: &str) -> Option<&'static MlImporter> {
    ML_IMPORTERS.iter().find(|i| i.op_type == op_type)
}

/// Most branch nodes a TreeEnsemble may have (each becomes a few ops).
const MAX_TREE_NODES: usize = 1 << 16;

fn float_input(c: &NodeCtx<'_, '_>, i: usize) -> V {
    let x = c.input(i)?;
    let dt = c.ty(x).dtype;
    if dt.is_float() || dt.is_int() {
        Ok(x)
    } else {
        Err(c.unsupported(format!("input of type {} is not supported", dt.name())))
    }
}

/// A float list attribute (`FLOATS`, or a `TENSOR` attribute `tensor_name`).
fn floats(c: &NodeCtx<'_, '_>, name: &str, tensor_name: &str) -> Result<Vec<f64>, OnnxError> {
    if let Some(a) = c.attr(tensor_name) {
        let t = a
            .as_tensor()
            .ok_or_else(|| c.invalid(format!("attribute '{tensor_name}' must be a TENSOR")))?;
        let t = Tensor::from_bytes(t.dtype, &t.dims, t.data.bytes())
            .map_err(|e| c.invalid(format!("attribute '{tensor_name}': {e}")))?;
        return Ok(t.to_f64_vec());
    }
    Ok(c.attr(name)
        .and_then(|a| a.as_floats())
        .map(|v| v.iter().map(|&x| f64::from(x)).collect())
        .unwrap_or_default())
}

fn ints(c: &NodeCtx<'_, '_>, name: &str) -> Result<Vec<i64>, OnnxError> {
    Ok(c.attr_ints(name)?.unwrap_or_default())
}

/// ArrayFeatureExtractor-1: the columns of `X` (last axis) named by `Y`.
fn array_feature_extractor(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&[])?;
    let x = c.input(0)?;
    let y = c.input(1)?;
    if c.ty(x).rank() == 0 {
        return Err(c.invalid("X must have at least one axis"));
    }
    let y = c.cast(y, DType::I64)?;
    let y = c.reshape(y, &[-1])?;
    let g = c.op_with(OpKind::Gather, &[x, y], &[("axis", Attr::Int(-1))])?;
    // A 1-D X gives one row, as ONNX Runtime does.
    Ok(vec![Some(if c.ty(x).rank() == 1 {
        c.unsqueeze(g, &[0])?
    } else {
        g
    })])
}

/// Binarizer-1: 1 where `X > threshold`, else 0, in X's type.
fn binarizer(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["threshold"])?;
    let x = float_input(c, 0)?;
    let dt = c.ty(x).dtype;
    let t = c.const_scalar(dt, f64::from(c.attr_float("threshold", 0.0)?))?;
    let above = c.op(OpKind::Greater, &[x, t])?;
    Ok(vec![Some(c.cast(above, dt)?)])
}

/// Scaler-1: `(X - offset) * scale` per column (or one value for all),
/// as f32.
fn scaler(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["offset", "scale"])?;
    let x = float_input(c, 0)?;
    let x = c.cast(x, DType::F32)?;
    let cols = c.ty(x).dims.last().and_then(|d| d.as_static()).unwrap_or(1);
    let mut y = x;
    for (name, op) in [("offset", OpKind::Sub), ("scale", OpKind::Mul)] {
        let v = floats(c, name, "")?;
        if v.is_empty() {
            continue;
        }
        if v.len() != 1 && v.len() as u64 != cols {
            return Err(c.invalid(format!(
                "attribute '{name}' has {} values for {cols} columns",
                v.len()
            )));
        }
        let k = c.const_f64(DType::F32, &[v.len() as u64], v)?;
        y = c.op(op, &[y, k])?;
    }
    Ok(vec![Some(y)])
}

/// Normalizer-1: each row divided by its MAX, L1 or L2 norm, as f32.
fn normalizer(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["norm"])?;
    let x = float_input(c, 0)?;
    let x = c.cast(x, DType::F32)?;
    let axis = c.const_i64(&[-1], false);
    let keep = [("keepdims", Attr::Bool(true))];
    let norm = match c.attr_str("norm", "MAX")?.as_str() {
        "MAX" => c.op_with(OpKind::ReduceMax, &[x, axis], &keep)?,
        "L1" => c.op_with(OpKind::ReduceL1, &[x, axis], &keep)?,
        "L2" => c.op_with(OpKind::ReduceL2, &[x, axis], &keep)?,
        other => return Err(c.invalid(format!("norm '{other}' is not MAX, L1 or L2"))),
    };
    Ok(vec![Some(c.op(OpKind::Div, &[x, norm])?)])
}

/// LinearRegressor-1: `X · Wᵀ + intercepts` for `targets` outputs, as f32.
fn linear_regressor(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&["coefficients", "intercepts", "post_transform", "targets"])?;
    if c.attr_str("post_transform", "NONE")? != "NONE" {
        return Err(c.unsupported("post_transform other than NONE is not supported"));
    }
    let x = float_input(c, 0)?;
    let x = c.cast(x, DType::F32)?;
    let targets = c.attr_int("targets", 1)?;
    let coef = floats(c, "coefficients", "")?;
    let cols = c.ty(x).dims.last().and_then(|d| d.as_static());
    let (Some(cols), true) = (cols, targets > 0) else {
        return Err(c.invalid("needs a positive target count and a static feature count"));
    };
    if coef.len() as u64 != targets as u64 * cols {
        return Err(c.invalid(format!(
            "{} coefficients for {targets} targets of {cols} features",
            coef.len()
        )));
    }
    let w = c.const_f64(DType::F32, &[targets as u64, cols], coef)?;
    let wt = c.transpose(w, &[1, 0])?;
    let mut y = c.op(OpKind::MatMul, &[x, wt])?;
    let b = floats(c, "intercepts", "")?;
    if !b.is_empty() {
        if b.len() as i64 != targets {
            return Err(c.invalid(format!("{} intercepts for {targets} targets", b.len())));
        }
        let b = c.const_f64(DType::F32, &[targets as u64], b)?;
        y = c.op(OpKind::Add, &[y, b])?;
    }
    Ok(vec![Some(y)])
}

/// TreeEnsemble-5 (ml opset 5): SUM or AVERAGE aggregation (MIN/MAX for a
/// single tree), post transforms NONE, SOFTMAX and LOGISTIC.
fn tree_ensemble(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&[
        "aggregate_function",
        "leaf_targetids",
        "leaf_weights",
        "membership_values",
        "n_targets",
        "nodes_falseleafs",
        "nodes_falsenodeids",
        "nodes_featureids",
        "nodes_missing_value_tracks_true",
        "nodes_modes",
        "nodes_splits",
        "nodes_trueleafs",
        "nodes_truenodeids",
        "post_transform",
        "tree_roots",
    ])?;
    let x = c.input(0)?;
    let xt = c.ty(x).clone();
    if !xt.dtype.is_float() || xt.rank() != 2 {
        return Err(c.invalid(format!("X must be a 2-D float tensor, got {xt}")));
    }
    let dt = xt.dtype;
    let features = xt.dims[1].as_static();
    let feat = ints(c, "nodes_featureids")?;
    let k = feat.len();
    if k == 0 || k > MAX_TREE_NODES {
        return Err(c.unsupported(format!(
            "{k} tree nodes (Kiln compiles 1 to {MAX_TREE_NODES})"
        )));
    }
    let splits = floats(c, "", "nodes_splits")?;
    let modes = floats(c, "", "nodes_modes")?;
    let true_ids = ints(c, "nodes_truenodeids")?;
    let true_leaf = ints(c, "nodes_trueleafs")?;
    let false_ids = ints(c, "nodes_falsenodeids")?;
    let false_leaf = ints(c, "nodes_falseleafs")?;
    let mut missing_true = ints(c, "nodes_missing_value_tracks_true")?;
    if missing_true.is_empty() {
        missing_true = vec![0; k];
    }
    let lens = [
        splits.len(),
        modes.len(),
        true_ids.len(),
        true_leaf.len(),
        false_ids.len(),
        false_leaf.len(),
        missing_true.len(),
    ];
    if lens.iter().any(|&l| l != k) {
        return Err(c.invalid(format!(
            "the node attributes have different lengths {lens:?} (expected {k})"
        )));
    }
    let leaf_target = ints(c, "leaf_targetids")?;
    let leaf_weight = floats(c, "", "leaf_weights")?;
    if leaf_target.len() != leaf_weight.len() || leaf_target.is_empty() {
        return Err(
            c.invalid("leaf_targetids and leaf_weights must have one equal, non-zero length")
        );
    }
    let n_targets = c.attr_int("n_targets", 0)?;
    if n_targets <= 0
        || n_targets as usize > MAX_TREE_NODES
        || leaf_target.iter().any(|&t| t < 0 || t >= n_targets)
    {
        return Err(c.invalid(format!(
            "n_targets {n_targets} does not cover the leaf targets"
        )));
    }
    let roots = ints(c, "tree_roots")?;
    if roots.is_empty() {
        return Err(c.invalid("tree_roots is empty"));
    }
    let aggregate = c.attr_int("aggregate_function", 1)?;
    let average = match aggregate {
        1 => false,
        0 => true,
        2 | 3 if roots.len() == 1 => false,
        _ => {
            return Err(c.unsupported(format!(
                "aggregate_function {aggregate} over {} trees (Kiln supports SUM and AVERAGE, and MIN/MAX of one tree)",
                roots.len()
            )))
        }
    };
    // MEMBER nodes take their sets, in node order, from membership_values
    // split at NaN.
    let members = floats(c, "", "membership_values")?;
    let mut sets = members.split(|v| v.is_nan()).map(<[f64]>::to_vec);
    let mut member_sets: HashMap<usize, Vec<f64>> = HashMap::new();
    for (i, &m) in modes.iter().enumerate() {
        if m == 6.0 {
            member_sets.insert(i, sets.next().unwrap_or_default());
        }
    }
    // Branch conditions, built once per node.
    let mut conds: HashMap<usize, ValueId> = HashMap::new();
    let mut cond = |c: &mut NodeCtx<'_, '_>, i: usize| -> V {
        if let Some(&v) = conds.get(&i) {
            return Ok(v);
        }
        let f = feat[i];
        if f < 0 || features.is_some_and(|n| f as u64 >= n) {
            return Err(c.invalid(format!("node {i} reads feature {f}, outside the input")));
        }
        let col = c.take(x, 1, f as u64)?;
        let s = c.const_scalar(dt, splits[i])?;
        let v = match modes[i] as i64 {
            0 => c.op(OpKind::LessOrEqual, &[col, s])?,
            1 => c.op(OpKind::Less, &[col, s])?,
            2 => c.op(OpKind::GreaterOrEqual, &[col, s])?,
            3 => c.op(OpKind::Greater, &[col, s])?,
            4 => c.op(OpKind::Equal, &[col, s])?,
            5 => {
                let e = c.op(OpKind::Equal, &[col, s])?;
                c.op(OpKind::Not, &[e])?
            }
            6 => {
                let set = member_sets.get(&i).cloned().unwrap_or_default();
                let mut any: Option<ValueId> = None;
                for m in set {
                    let mv = c.const_scalar(dt, m)?;
                    let e = c.op(OpKind::Equal, &[col, mv])?;
                    any = Some(match any {
                        Some(a) => c.op(OpKind::Or, &[a, e])?,
                        None => e,
                    });
                }
                match any {
                    Some(a) => a,
                    // An empty set holds nothing: always false.
                    None => {
                        let z = c.const_scalar(dt, f64::NAN)?;
                        c.op(OpKind::Equal, &[col, z])?
                    }
                }
            }
            m => return Err(c.invalid(format!("node {i} has unknown mode {m}"))),
        };
        let v = if missing_true[i] != 0 {
            let nan = c.op(OpKind::IsNan, &[col])?;
            c.op(OpKind::Or, &[v, nan])?
        } else {
            v
        };
        conds.insert(i, v);
        Ok(v)
    };
    // Walk every tree: (node, path condition so far, depth). Shared
    // subtrees would multiply the paths, so the walk has a budget.
    let mut per_target: Vec<Option<ValueId>> = vec![None; n_targets as usize];
    let mut visits = 0usize;
    for &root in &roots {
        if root < 0 || root as usize >= k {
            return Err(c.invalid(format!("tree root {root} is outside the node table")));
        }
        let mut stack: Vec<(usize, Option<ValueId>, usize)> = vec![(root as usize, None, 0)];
        while let Some((i, path, depth)) = stack.pop() {
            visits += 1;
            if depth > k || visits > 4 * MAX_TREE_NODES {
                return Err(c.invalid(
                    "the branch table is not a set of trees (a path repeats a node, or subtrees are shared beyond Kiln's budget)",
                ));
            }
            let here = cond(c, i)?;
            let not_here = c.op(OpKind::Not, &[here])?;
            for (branch, next, is_leaf) in [
                (here, true_ids[i], true_leaf[i] != 0),
                (not_here, false_ids[i], false_leaf[i] != 0),
            ] {
                let taken = match path {
                    Some(p) => c.op(OpKind::And, &[p, branch])?,
                    None => branch,
                };
                if !is_leaf {
                    if next < 0 || next as usize >= k {
                        return Err(c.invalid(format!(
                            "node {i} branches to {next}, outside the node table"
                        )));
                    }
                    stack.push((next as usize, Some(taken), depth + 1));
                    continue;
                }
                if next < 0 || next as usize >= leaf_target.len() {
                    return Err(c.invalid(format!(
                        "node {i} names leaf {next}, outside the leaf table"
                    )));
                }
                let leaf = next as usize;
                let mask = c.cast(taken, dt)?;
                let w = c.const_scalar(dt, leaf_weight[leaf])?;
                let term = c.op(OpKind::Mul, &[mask, w])?;
                let slot = &mut per_target[leaf_target[leaf] as usize];
                *slot = Some(match *slot {
                    Some(s) => c.op(OpKind::Add, &[s, term])?,
                    None => term,
                });
            }
        }
    }
    let rows = xt.dims[0]
        .as_static()
        .ok_or_else(|| c.unsupported("the row count must be static"))?;
    let mut columns = Vec::with_capacity(per_target.len());
    for s in per_target {
        columns.push(match s {
            Some(v) => v,
            None => c.zeros(dt, &[rows])?,
        });
    }
    let mut y = c.stack(&columns, 1)?;
    if average {
        let n = c.const_scalar(dt, roots.len() as f64)?;
        y = c.op(OpKind::Div, &[y, n])?;
    }
    let y = match c.attr_int("post_transform", 0)? {
        0 => y,
        1 => c.op_with(OpKind::Softmax, &[y], &[("axis", Attr::Int(-1))])?,
        2 => c.op(OpKind::Sigmoid, &[y])?,
        p => {
            return Err(c.unsupported(format!(
                "post_transform {p} (Kiln supports NONE, SOFTMAX and LOGISTIC)"
            )))
        }
    };
    Ok(vec![Some(y)])
}
