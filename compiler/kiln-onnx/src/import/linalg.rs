//! Linear-algebra operators composed from Kiln ops: `Det`, by Gaussian
//! elimination with partial pivoting unrolled over the (static) matrix
//! size. Row swaps are data dependent, so they are written as one-hot
//! blends rather than gathers: every step stays a fixed dataflow graph
//! that both the interpreter and the code generator run as is.
//!
//! Invariants: the elimination runs in f64 whatever the input type (the
//! result is rounded once at the end); a zero pivot column gives a zero
//! determinant, never a NaN from dividing by it.

use super::NodeCtx;
use crate::error::OnnxError;
use kiln_ir::{Attr, DType, Dim, OpKind, ValueId};

type R = Result<Vec<Option<ValueId>>, OnnxError>;

/// Largest matrix Det unrolls (each step adds about 25 nodes).
const MAX_DET_SIZE: u64 = 64;

/// Det-11/22: the determinants of the trailing (n × n) matrices.
pub(super) fn det(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&[])?;
    let x = c.input(0)?;
    let ty = c.ty(x).clone();
    if !ty.dtype.is_float() {
        return Err(c.invalid(format!("Det needs a float tensor, got {}", ty.dtype.name())));
    }
    let r = ty.rank();
    if r < 2 {
        return Err(c.invalid(format!("Det needs rank >= 2, got {ty}")));
    }
    let n = match (&ty.dims[r - 2], &ty.dims[r - 1]) {
        (Dim::Static(a), Dim::Static(b)) if a == b => *a,
        (Dim::Static(a), Dim::Static(b)) => {
            return Err(c.invalid(format!("Det needs square matrices, got {a}x{b}")))
        }
        _ => return Err(c.unsupported("Det needs a static matrix size")),
    };
    if n == 0 || n > MAX_DET_SIZE {
        return Err(c.unsupported(format!(
            "Det of {n}x{n} matrices (Kiln unrolls 1 to {MAX_DET_SIZE})"
        )));
    }
    let f = DType::F64;
    let mut a = c.cast(x, f)?;
    let zero = c.const_scalar(f, 0.0)?;
    let one = c.const_scalar(f, 1.0)?;
    let two = c.const_scalar(f, 2.0)?;
    let mut det: Option<ValueId> = None;
    for m in (1..=n).rev() {
        let mi = m as i64;
        let pivot = if m == 1 {
            a
        } else {
            // The row with the largest magnitude in the first column.
            let col = c.slice(a, -1, 0, 1)?;
            let mag = c.op(OpKind::Abs, &[col])?;
            let p = c.op_with(
                OpKind::ArgMax,
                &[mag],
                &[("axis", Attr::Int(-2)), ("keepdims", Attr::Bool(true))],
            )?;
            let rows: Vec<i64> = (0..mi).collect();
            let rows = c.const_i64(&rows, false);
            let rows = c.reshape(rows, &[mi, 1])?;
            let hit = c.op(OpKind::Equal, &[rows, p])?;
            let onehot = c.cast(hit, f)?; // (..., m, 1)
            let mut first = vec![0.0; m as usize];
            first[0] = 1.0;
            let e0 = c.const_f64(f, &[m, 1], first)?;
            let axis = c.const_i64(&[-2], false);
            let picked = c.op(OpKind::Mul, &[onehot, a])?;
            let pivot_row = c.op_with(
                OpKind::ReduceSum,
                &[picked, axis],
                &[("keepdims", Attr::Bool(true))],
            )?; // (..., 1, m)
            let row0 = c.slice(a, -2, 0, 1)?;
            // Swap rows 0 and p: a + onehot·(row0 − pivot) + e0·(pivot − row0).
            let down = c.op(OpKind::Sub, &[row0, pivot_row])?;
            let up = c.op(OpKind::Sub, &[pivot_row, row0])?;
            let t1 = c.op(OpKind::Mul, &[onehot, down])?;
            let t2 = c.op(OpKind::Mul, &[e0, up])?;
            let a1 = c.op(OpKind::Add, &[a, t1])?;
            a = c.op(OpKind::Add, &[a1, t2])?;
            // A swap (p != 0) flips the sign: 1 − 2·(1 − onehot[0]).
            let stay = c.op(OpKind::Mul, &[onehot, e0])?;
            let stay = c.op_with(
                OpKind::ReduceSum,
                &[stay, axis],
                &[("keepdims", Attr::Bool(true))],
            )?; // (..., 1, 1)
            let moved = c.op(OpKind::Sub, &[one, stay])?;
            let flip = c.op(OpKind::Mul, &[two, moved])?;
            let sign = c.op(OpKind::Sub, &[one, flip])?;
            let piv = c.slice(pivot_row, -1, 0, 1)?; // (..., 1, 1)
                                                     // Eliminate the first column below the pivot.
            let is_zero = c.op(OpKind::Equal, &[piv, zero])?;
            let safe = c.op(OpKind::Where, &[is_zero, one, piv])?;
            let rest = c.slice(a, -2, 1, mi)?;
            let lead = c.slice(rest, -1, 0, 1)?;
            let factors = c.op(OpKind::Div, &[lead, safe])?;
            let sub = c.op(OpKind::Mul, &[factors, pivot_row])?;
            let rest = c.op(OpKind::Sub, &[rest, sub])?;
            a = c.slice(rest, -1, 1, mi)?;
            c.op(OpKind::Mul, &[piv, sign])?
        };
        det = Some(match det {
            Some(d) => c.op(OpKind::Mul, &[d, pivot])?,
            None => pivot,
        });
    }
    let det = det.expect("n >= 1");
    let det = c.squeeze(det, &[-2, -1])?;
    Ok(vec![Some(c.cast(det, ty.dtype)?)])
}
