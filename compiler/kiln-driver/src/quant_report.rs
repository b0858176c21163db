//! `kiln compile --quant-report`: per quantized weight, how far its
//! dequantized values are from the f32 weight it was derived from, and what
//! it costs to store. Computed from the optimized graph: every derived
//! `quant.quantize_weight {part = "codes"}` weight is quantized again with
//! `kiln_ir::codec::block` (the same definition the artifact's weights come
//! from), dequantized, and compared with its source. With inputs, it also
//! reports the end-to-end error of every graph output: the reference
//! interpreter runs the f32 graph and the optimized, quantized graph on the
//! same inputs ([`end_to_end`]).

use crate::error::Result;
use kiln_interp::Limits;
use kiln_ir::codec::block::{quantize, weight_rows, Scheme};
use kiln_ir::ops::QuantPart;
use kiln_ir::{Attr, Graph, OpKind};
use std::fmt::Write;

/// One quantized weight.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerReport {
    /// The f32 weight that was quantized.
    pub weight: String,
    /// Its shape.
    pub shape: Vec<u64>,
    /// The scheme (`nf4`, `int4`, ...).
    pub scheme: String,
    /// Values per block along K (0: one per output channel).
    pub block: usize,
    /// Bytes of the f32 weight.
    pub f32_bytes: u64,
    /// Bytes of everything stored for it (codes, scales, zero points, ...).
    pub stored_bytes: u64,
    /// `||w' - w|| / ||w||` over the weight.
    pub rel_rms: f64,
    /// Largest `|w' - w|`.
    pub max_abs: f64,
}

/// The report for every quantized weight of `g`, in weight order.
pub fn quant_report(g: &Graph) -> Result<Vec<LayerReport>> {
    let mut out = Vec::new();
    for w in g.weights() {
        let Some(d) = w.derivation() else { continue };
        let int_attr = |name: &str| match d.attrs.get(name) {
            Some(Attr::Int(v)) => *v,
            _ => 0,
        };
        let part = d.attrs.get("part").and_then(Attr::as_enum::<QuantPart>);
        if d.op != OpKind::QuantizeWeight || part != Some(QuantPart::Codes) {
            continue;
        }
        let (Some(scheme), Some(&src)) = (
            d.attrs.get("scheme").and_then(Attr::as_enum::<Scheme>),
            d.inputs.first(),
        ) else {
            continue;
        };
        let source = g.weight(src);
        let Some(shape) = source.ty.static_shape() else {
            continue;
        };
        // Kiln quantizes f32 weights; a hand-written .kir may derive from others.
        if source.ty.dtype != kiln_ir::DType::F32 || shape.len() != 2 {
            continue;
        }
        let bytes = kiln_interp::weight_bytes(g.weights(), src, &Limits::default())?;
        let vals: Vec<f32> = bytes
            .bytes()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (block, axis) = (int_attr("block_size") as usize, int_attr("axis") as usize);
        let (rows, k, rowmajor) = weight_rows(vals, shape[0] as usize, shape[1] as usize, axis);
        let deq = quantize(&rowmajor, rows, k, scheme, block).dequantize(scheme);
        let (mut num, mut den, mut max_abs) = (0f64, 0f64, 0f64);
        for (a, b) in rowmajor.iter().zip(&deq) {
            let e = f64::from(b - a);
            num += e * e;
            den += f64::from(*a) * f64::from(*a);
            max_abs = max_abs.max(e.abs());
        }
        // Everything derived from the same source by quant.quantize_weight.
        let stored_bytes = g
            .weights()
            .iter()
            .filter(|x| {
                x.derivation().is_some_and(|e| {
                    e.op == OpKind::QuantizeWeight && e.inputs.first() == Some(&src)
                })
            })
            .filter_map(|x| x.ty.numel().and_then(|n| x.ty.dtype.storage_bytes(n)))
            .sum();
        // A convolution's weight is quantized as its flattened rows
        // (`nn.flatten` of the 4-D weight, after an `nn.transpose` to window
        // order for `quant.conv`): report the weight itself.
        let mut shown = source;
        while let Some(e) = shown.derivation() {
            if !matches!(e.op, OpKind::Flatten | OpKind::Transpose) || e.inputs.len() != 1 {
                break;
            }
            shown = g.weight(e.inputs[0]);
        }
        out.push(LayerReport {
            weight: shown.name.clone(),
            shape: shown.ty.static_shape().unwrap_or(shape),
            scheme: scheme.name().into(),
            block,
            f32_bytes: source.ty.numel().unwrap_or(0) * 4,
            stored_bytes,
            rel_rms: if den > 0.0 { (num / den).sqrt() } else { 0.0 },
            max_abs,
        });
    }
    Ok(out)
}

/// The end-to-end error of one graph output: the quantized model against
/// the f32 model on the same inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputError {
    /// The graph output.
    pub output: String,
    /// `||q - f|| / ||f||` over the output.
    pub rel_rms: f64,
    /// Largest `|q - f|`.
    pub max_abs: f64,
    /// Largest `|f|` (to read `max_abs` against).
    pub max_ref: f64,
    /// Elements where exactly one of the two is NaN (a NaN never hides in
    /// the error figures: they count here).
    pub nan_mismatches: u64,
}

/// Runs `reference` (the f32 graph) and `quantized` (the optimized one) in
/// the reference interpreter on `inputs` and compares their outputs.
pub fn end_to_end(
    reference: &Graph,
    quantized: &Graph,
    inputs: &[kiln_interp::Tensor],
) -> Result<Vec<OutputError>> {
    let want = kiln_interp::run_graph(reference, inputs)?;
    let got = kiln_interp::run_graph(quantized, inputs)?;
    let mut out = Vec::with_capacity(want.len());
    for (i, (w, q)) in want.iter().zip(&got).enumerate() {
        let output = reference
            .outputs
            .get(i)
            .map(|&v| reference.value(v).name.clone())
            .unwrap_or_default();
        if w.shape != q.shape {
            return Err(crate::error::DriverError::Internal(format!(
                "--quant-report: output {output} has shape {:?} quantized, {:?} in f32",
                q.shape, w.shape
            )));
        }
        let (w, q) = (w.to_f64_vec(), q.to_f64_vec());
        let mut e = OutputError {
            output,
            rel_rms: 0.0,
            max_abs: 0.0,
            max_ref: 0.0,
            nan_mismatches: 0,
        };
        let (mut num, mut den) = (0f64, 0f64);
        for (&a, &b) in w.iter().zip(&q) {
            if a.is_nan() != b.is_nan() {
                e.nan_mismatches += 1;
                continue;
            }
            if a.is_finite() {
                den += a * a;
                e.max_ref = e.max_ref.max(a.abs());
            }
            if !a.is_nan() && a != b {
                let d = b - a;
                num += d * d;
                e.max_abs = e.max_abs.max(d.abs());
            }
        }
        e.rel_rms = if den > 0.0 {
            (num / den).sqrt()
        } else {
            num.sqrt()
        };
        out.push(e);
    }
    Ok(out)
}

/// The end-to-end table (text).
pub fn outputs_to_text(r: &[OutputError]) -> String {
    let mut s = format!(
        "{:<32} {:>10} {:>10} {:>10} {:>6}\n",
        "output (vs f32)", "rel rms", "max abs", "max |f32|", "NaN≠"
    );
    for e in r {
        let _ = writeln!(
            s,
            "{:<32} {:>10.5} {:>10.5} {:>10.5} {:>6}",
            e.output, e.rel_rms, e.max_abs, e.max_ref, e.nan_mismatches
        );
    }
    s
}

/// The report as a text table.
pub fn to_text(r: &[LayerReport]) -> String {
    let mut s = format!(
        "{:<32} {:>12} {:>9} {:>6} {:>12} {:>12} {:>10} {:>10}\n",
        "weight", "shape", "scheme", "block", "f32 bytes", "stored", "rel rms", "max abs"
    );
    for l in r {
        let shape: Vec<String> = l.shape.iter().map(u64::to_string).collect();
        let _ = writeln!(
            s,
            "{:<32} {:>12} {:>9} {:>6} {:>12} {:>12} {:>10.5} {:>10.5}",
            l.weight,
            shape.join("x"),
            l.scheme,
            l.block,
            l.f32_bytes,
            l.stored_bytes,
            l.rel_rms,
            l.max_abs
        );
    }
    let (f, q): (u64, u64) = r
        .iter()
        .fold((0, 0), |(f, q), l| (f + l.f32_bytes, q + l.stored_bytes));
    let _ = writeln!(
        s,
        "{} weight(s): {q} of {f} bytes ({:.3})",
        r.len(),
        if f > 0 { q as f64 / f as f64 } else { 0.0 }
    );
    s
}
