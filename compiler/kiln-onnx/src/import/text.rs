//! `TfIdfVectorizer` over integer token ids, imported as a composition of
//! compares, logical ands and sums: the pool of n-grams is an attribute, so
//! every (n-gram, skip distance) pair becomes a fixed pattern matched
//! against shifted slices of the static-length input.
//!
//! Counting follows ONNX's reference implementation: an n-gram of length
//! `n` in `[min_gram_length, max_gram_length]` is counted once per start
//! position and per skip distance `d` in `1..=max_skip_count + 1` whose
//! elements `x[s], x[s + d], ..., x[s + (n - 1)·d]` all lie in the row;
//! unigrams are counted for `d = 1` only. String pools are refused.

use super::NodeCtx;
use crate::error::OnnxError;
use kiln_ir::{Attr, DType, Dim, OpKind, ValueId};

type R = Result<Vec<Option<ValueId>>, OnnxError>;

/// Most match patterns (n-gram × skip distance) one node may expand to.
const MAX_PATTERNS: usize = 1 << 14;

/// TfIdfVectorizer-9.
pub(super) fn tfidf_vectorizer(c: &mut NodeCtx<'_, '_>) -> R {
    if c.attr("pool_strings").is_some() {
        return Err(c.unsupported("pool_strings is not supported (Kiln has no string tensors)"));
    }
    c.check_attrs(&[
        "max_gram_length",
        "max_skip_count",
        "min_gram_length",
        "mode",
        "ngram_counts",
        "ngram_indexes",
        "pool_int64s",
        "weights",
    ])?;
    let x = c.input(0)?;
    let xt = c.ty(x).clone();
    if !matches!(xt.dtype, DType::I32 | DType::I64) {
        return Err(c.unsupported(format!(
            "input of type {} (Kiln supports int32 and int64 token ids)",
            xt.dtype.name()
        )));
    }
    let len = match (xt.rank(), xt.dims.last()) {
        (1 | 2, Some(Dim::Static(t))) => *t as i64,
        (1 | 2, _) => return Err(c.unsupported("the token axis must have a static length")),
        (r, _) => return Err(c.invalid(format!("input must be [C] or [N, C], got rank {r}"))),
    };
    let min_n = c.attr_int("min_gram_length", 0)?;
    let max_n = c.attr_int("max_gram_length", 0)?;
    let max_skip = c.attr_int("max_skip_count", 0)?;
    if min_n < 1 || max_n < min_n || max_skip < 0 {
        return Err(c.invalid(format!(
            "gram lengths {min_n}..={max_n} and max_skip_count {max_skip} are out of range"
        )));
    }
    if c.attr("mode").is_none() {
        return Err(c.invalid("attribute 'mode' is required"));
    }
    let mode = c.attr_str("mode", "TF")?;
    if !matches!(mode.as_str(), "TF" | "IDF" | "TFIDF") {
        return Err(c.invalid(format!("mode '{mode}' is not one of TF, IDF, TFIDF")));
    }
    let pool = c.attr_ints("pool_int64s")?.ok_or_else(|| {
        c.unsupported("TfIdfVectorizer needs pool_int64s (string pools are not supported)")
    })?;
    let counts = c
        .attr_ints("ngram_counts")?
        .ok_or_else(|| c.invalid("attribute 'ngram_counts' is required"))?;
    let indexes = c
        .attr_ints("ngram_indexes")?
        .ok_or_else(|| c.invalid("attribute 'ngram_indexes' is required"))?;
    let weights: Option<Vec<f64>> = match c.attr("weights") {
        None => None,
        Some(a) => Some(
            a.as_floats()
                .ok_or_else(|| c.invalid("attribute 'weights' must be FLOATS"))?
                .iter()
                .map(|&w| f64::from(w))
                .collect(),
        ),
    };
    // The pool's n-grams in order: ngram_counts[i] is where the (i+1)-grams start.
    let mut grams: Vec<&[i64]> = Vec::new();
    for (i, &start) in counts.iter().enumerate() {
        let n = i + 1;
        let end = counts.get(i + 1).copied().unwrap_or(pool.len() as i64);
        if start < 0
            || end < start
            || end as usize > pool.len()
            || !((end - start) as usize).is_multiple_of(n)
        {
            return Err(c.invalid(format!(
                "ngram_counts {counts:?} does not split the pool of {} ids into whole n-grams",
                pool.len()
            )));
        }
        grams.extend(pool[start as usize..end as usize].chunks(n));
    }
    if indexes.len() != grams.len() || indexes.iter().any(|&i| i < 0) {
        return Err(c.invalid(format!(
            "ngram_indexes has {} entries for {} n-grams",
            indexes.len(),
            grams.len()
        )));
    }
    let size = indexes.iter().max().map_or(0, |&m| m.saturating_add(1)) as usize;
    if weights.as_ref().is_some_and(|w| w.len() < size) {
        return Err(c.invalid("weights has fewer entries than the output"));
    }
    let patterns: usize = grams.len() * (max_skip as usize + 1) * max_n as usize;
    if patterns > MAX_PATTERNS {
        return Err(c.unsupported(format!(
            "{patterns} n-gram patterns are over Kiln's limit of {MAX_PATTERNS}"
        )));
    }
    if size == 0 {
        return Err(c.invalid("ngram_indexes is empty: the output would have no entries"));
    }
    if size > MAX_PATTERNS {
        return Err(c.unsupported(format!(
            "an output of {size} entries is over Kiln's limit of {MAX_PATTERNS}"
        )));
    }
    let f = DType::F32;
    let batch = xt.rank() == 2;
    let zero_shape = if batch {
        vec![xt.dims[0]
            .as_static()
            .ok_or_else(|| c.unsupported("the batch extent must be static"))?]
    } else {
        Vec::new()
    };
    let zero = c.zeros(f, &zero_shape)?;
    let mut per_slot: Vec<Option<ValueId>> = vec![None; size];
    for (g, &slot) in grams.iter().zip(&indexes) {
        let n = g.len() as i64;
        if n < min_n || n > max_n {
            continue;
        }
        let skips = if n == 1 { 1 } else { max_skip + 1 };
        let mut total: Option<ValueId> = None;
        for d in 1..=skips {
            let span = len - (n - 1) * d;
            if span <= 0 {
                continue;
            }
            let mut hit: Option<ValueId> = None;
            for (j, &id) in g.iter().enumerate() {
                let off = j as i64 * d;
                let part = c.slice(x, -1, off, off + span)?;
                let want = c.const_scalar(xt.dtype, id as f64)?;
                let eq = c.op(OpKind::Equal, &[part, want])?;
                hit = Some(match hit {
                    Some(h) => c.op(OpKind::And, &[h, eq])?,
                    None => eq,
                });
            }
            let Some(hit) = hit else { continue };
            let hit = c.cast(hit, f)?;
            let axis = c.const_i64(&[-1], false);
            let sum = c.op_with(
                OpKind::ReduceSum,
                &[hit, axis],
                &[("keepdims", Attr::Bool(false))],
            )?;
            total = Some(match total {
                Some(t) => c.op(OpKind::Add, &[t, sum])?,
                None => sum,
            });
        }
        if let Some(t) = total {
            let slot = slot as usize;
            per_slot[slot] = Some(match per_slot[slot] {
                Some(prev) => c.op(OpKind::Add, &[prev, t])?,
                None => t,
            });
        }
    }
    let mut columns = Vec::with_capacity(size);
    for (i, s) in per_slot.into_iter().enumerate() {
        let count = s.unwrap_or(zero);
        let w = weights.as_ref().map_or(1.0, |w| w[i]);
        let value = match mode.as_str() {
            "TF" => count,
            "IDF" => {
                let one = c.const_scalar(f, 1.0)?;
                let seen = c.op(OpKind::Min, &[count, one])?;
                let wv = c.const_scalar(f, w)?;
                c.op(OpKind::Mul, &[seen, wv])?
            }
            _ => {
                let wv = c.const_scalar(f, w)?;
                c.op(OpKind::Mul, &[count, wv])?
            }
        };
        columns.push(value);
    }
    let axis = if batch { 1 } else { 0 };
    Ok(vec![Some(c.stack(&columns, axis)?)])
}
