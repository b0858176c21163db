//! Index arithmetic shared by the op families: row-major strides, NumPy
//! broadcasting, multi-index iteration.

use crate::InterpError;

/// Row-major strides (in elements) of `shape`.
pub fn strides(shape: &[u64]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as usize;
    }
    s
}

/// Broadcasts shapes under NumPy rules.
pub fn broadcast_shapes(shapes: &[&[u64]]) -> Result<Vec<u64>, InterpError> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1u64; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(InterpError::Invalid(format!(
                    "shapes {shapes:?} do not broadcast"
                )));
            }
        }
    }
    Ok(out)
}

/// For each element of `out` (row-major), the flat index of the element of
/// a tensor of shape `input` that broadcasts to it. `input` must broadcast
/// to `out`.
pub fn broadcast_map(out: &[u64], input: &[u64]) -> Vec<usize> {
    let n: u64 = out.iter().product();
    let off = out.len() - input.len();
    let in_strides = strides(input);
    // Per output axis: the input stride, or 0 where the input broadcasts.
    let step: Vec<usize> = (0..out.len())
        .map(|a| {
            if a < off || input[a - off] == 1 {
                0
            } else {
                in_strides[a - off]
            }
        })
        .collect();
    let mut map = Vec::with_capacity(n as usize);
    let mut idx = vec![0u64; out.len()];
    let mut flat = 0usize;
    for _ in 0..n {
        map.push(flat);
        // Increment the multi-index, updating the input offset.
        for a in (0..out.len()).rev() {
            idx[a] += 1;
            flat += step[a];
            if idx[a] < out[a] {
                break;
            }
            flat -= step[a] * idx[a] as usize;
            idx[a] = 0;
        }
    }
    map
}

/// Iterates over all multi-indices of `shape` in row-major order.
pub fn for_each_index(shape: &[u64], mut f: impl FnMut(&[u64])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0u64; shape.len()];
    loop {
        f(&idx);
        let mut a = shape.len();
        loop {
            if a == 0 {
                return;
            }
            a -= 1;
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

/// Normalizes a possibly negative axis.
pub fn axis(a: i64, rank: usize) -> Result<usize, InterpError> {
    kiln_ir::ops::infer::norm_axis(a, rank).map_err(InterpError::from)
}

/// Converts an i128 holding an index or extent to usize, or reports why not.
pub fn to_usize(v: i128, what: &str) -> Result<usize, InterpError> {
    usize::try_from(v).map_err(|_| InterpError::Invalid(format!("{what} {v} is out of range")))
}
