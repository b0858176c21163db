//! Linear-algebra operators composed from Kiln ops: `Det`, by Gaussian
//! elimination with partial pivoting unrolled over the (static) matrix
//! size, and `DeformConv`, as GridSample at the offset taps followed by a
//! per-group matmul. Row swaps are data dependent, so they are written as one-hot
//! blends rather than gathers: every step stays a fixed dataflow graph
//! that both the interpreter and the code generator run as is.
//!
//! Invariants: the elimination runs in f64 whatever the input type (the
//! result is rounded once at the end); a zero pivot column gives a zero
//! determinant, never a NaN from dividing by it.

use super::NodeCtx;
use crate::error::OnnxError;
use kiln_ir::ops::resample::{GridMode, GridPadding};
use kiln_ir::{Attr, DType, Dim, OpKind, ValueId};

type R = Result<Vec<Option<ValueId>>, OnnxError>;
type V = Result<ValueId, OnnxError>;

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

/// DeformConv-19/22 on images (4-D X): the convolution samples X at its
/// kernel taps moved by the runtime `offset` (bilinear, zero outside the
/// image, as the reference does through GridSample with `align_corners`),
/// scales the samples by `mask`, and contracts them with W per group as a
/// matmul. Each offset group samples its own slice of the channels.
pub(super) fn deform_conv(c: &mut NodeCtx<'_, '_>) -> R {
    c.check_attrs(&[
        "dilations",
        "group",
        "kernel_shape",
        "offset_group",
        "pads",
        "strides",
    ])?;
    let x = c.input(0)?;
    let w = c.input(1)?;
    let offset = c.input(2)?;
    let bias = c.opt_input(3);
    let mask = c.opt_input(4);
    let shape = |c: &NodeCtx<'_, '_>, v: ValueId, what: &str| {
        c.ty(v)
            .static_shape()
            .ok_or_else(|| c.unsupported(format!("{what} must have a static shape")))
    };
    let (xs, ws, os) = (
        shape(c, x, "X")?,
        shape(c, w, "W")?,
        shape(c, offset, "offset")?,
    );
    let dt = c.ty(x).dtype;
    if xs.len() != 4 || ws.len() != 4 || os.len() != 4 || !dt.is_float() {
        return Err(c.unsupported(format!(
            "DeformConv on {} (Kiln supports float 2-D images: X (N, C, H, W))",
            c.ty(x)
        )));
    }
    let (n, ch, ih, iw) = (xs[0], xs[1], xs[2], xs[3]);
    let (m, cpg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let group = c.attr_int("group", 1)?;
    let og = c.attr_int("offset_group", 1)?;
    if group <= 0
        || og <= 0
        || cpg == 0
        || ch != cpg * group as u64
        || m % group as u64 != 0
        || ch % og as u64 != 0
    {
        return Err(c.invalid(format!(
            "X {xs:?}, W {ws:?}, group {group} and offset_group {og} do not fit"
        )));
    }
    if ih < 2 || iw < 2 {
        return Err(c.unsupported("DeformConv needs an image of at least 2x2"));
    }
    let list =
        |c: &NodeCtx<'_, '_>, name: &str, len: usize, default: i64| match c.attr_ints(name)? {
            None => Ok(vec![default; len]),
            Some(v) if v.len() == len => Ok(v),
            Some(v) => Err(c.invalid(format!("attribute '{name}' has {} entries", v.len()))),
        };
    let strides = list(c, "strides", 2, 1)?;
    let dil = list(c, "dilations", 2, 1)?;
    let pads = list(c, "pads", 4, 0)?;
    if let Some(k) = c.attr_ints("kernel_shape")? {
        if k != [kh as i64, kw as i64] {
            return Err(c.invalid(format!("kernel_shape {k:?} does not match W {ws:?}")));
        }
    }
    let (oh, ow) = (os[2], os[3]);
    let taps = kh * kw;
    let og_u = og as u64;
    if os[0] != n || os[1] != og_u * taps * 2 || oh == 0 || ow == 0 {
        return Err(c.invalid(format!(
            "offset {os:?} must be (N, offset_group·kH·kW·2, oH, oW)"
        )));
    }
    let count = n
        .checked_mul(ch)
        .and_then(|v| v.checked_mul(taps))
        .and_then(|v| v.checked_mul(oh * ow));
    if count.is_none_or(|v| v > 1 << 26) || strides.iter().chain(&dil).any(|&v| v <= 0) {
        return Err(c.unsupported("DeformConv of this size or stride is out of Kiln's range"));
    }
    // Where each tap of each output position reads before the offsets, in
    // GridSample's normalized coordinates (align_corners): (tap, oh, ow).
    let mut base_y = Vec::with_capacity((taps * oh * ow) as usize);
    let mut base_x = Vec::with_capacity((taps * oh * ow) as usize);
    for a in 0..kh as i64 {
        for b in 0..kw as i64 {
            for i in 0..oh as i64 {
                for j in 0..ow as i64 {
                    base_y.push((-pads[0] + strides[0] * i + a * dil[0]) as f64);
                    base_x.push((-pads[1] + strides[1] * j + b * dil[1]) as f64);
                }
            }
        }
    }
    let (ni, ogi, ki, ohi, owi) = (n as i64, og, taps as i64, oh as i64, ow as i64);
    let plane = [1, 1, taps, oh, ow];
    let base_y = c.const_f64(dt, &plane, base_y)?;
    let base_x = c.const_f64(dt, &plane, base_x)?;
    let off = c.reshape(offset, &[ni, ogi, ki, 2, ohi, owi])?;
    let off_y = c.take(off, 3, 0)?;
    let off_x = c.take(off, 3, 1)?;
    let norm = |c: &mut NodeCtx<'_, '_>, base: ValueId, off: ValueId, extent: u64| -> V {
        let p = c.op(OpKind::Add, &[base, off])?;
        let s = c.const_scalar(dt, 2.0 / (extent - 1) as f64)?;
        let one = c.const_scalar(dt, 1.0)?;
        let p = c.op(OpKind::Mul, &[p, s])?;
        c.op(OpKind::Sub, &[p, one])
    };
    let gy = norm(c, base_y, off_y, ih)?;
    let gx = norm(c, base_x, off_x, iw)?;
    let grid = c.stack(&[gx, gy], 5)?; // (N, og, taps, oH, oW, 2), x first
    let mask = match mask {
        Some(mk) => Some(c.reshape(mk, &[ni, ogi, ki, ohi, owi])?),
        None => None,
    };
    let cpo = (ch / og_u) as i64;
    let mut sampled = Vec::with_capacity(og as usize);
    for g in 0..og {
        let grid_g = c.take(grid, 1, g as u64)?;
        let grid_g = c.reshape(grid_g, &[ni, ki * ohi, owi, 2])?;
        let xg = c.slice(x, 1, g * cpo, (g + 1) * cpo)?;
        let s = c.op_with(
            OpKind::GridSample,
            &[xg, grid_g],
            &[
                ("align_corners", Attr::Bool(true)),
                ("mode", Attr::of_enum(GridMode::Linear)),
                ("padding_mode", Attr::of_enum(GridPadding::Zeros)),
            ],
        )?; // (N, cpo, taps·oH, oW)
        let s = c.reshape(s, &[ni, cpo, ki, ohi, owi])?;
        sampled.push(match mask {
            Some(mk) => {
                let mg = c.take(mk, 1, g as u64)?;
                let mg = c.unsqueeze(mg, &[1])?;
                c.op(OpKind::Mul, &[s, mg])?
            }
            None => s,
        });
    }
    let sampled = c.concat(&sampled, 1)?; // (N, C, taps, oH, oW)
    let opg = (m / group as u64) as i64;
    let cpg_i = cpg as i64;
    let mut outs = Vec::with_capacity(group as usize);
    for g in 0..group {
        let cols = c.slice(sampled, 1, g * cpg_i, (g + 1) * cpg_i)?;
        let cols = c.reshape(cols, &[ni, cpg_i * ki, ohi * owi])?;
        let wg = c.slice(w, 0, g * opg, (g + 1) * opg)?;
        let wg = c.reshape(wg, &[opg, cpg_i * ki])?;
        outs.push(c.op(OpKind::MatMul, &[wg, cols])?); // (N, opg, oH·oW)
    }
    let y = c.concat(&outs, 1)?;
    let mut y = c.reshape(y, &[ni, m as i64, ohi, owi])?;
    if let Some(b) = bias {
        let b = c.reshape(b, &[1, m as i64, 1, 1])?;
        y = c.op(OpKind::Add, &[y, b])?;
    }
    Ok(vec![Some(y)])
}
