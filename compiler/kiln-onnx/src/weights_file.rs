//! Writing an imported graph's large weights to a side file that the
//! printed `.kir` text refers to (`file<"model.kir.weights", offset = N>`).
//!
//! Invariants:
//! - Every weight whose data is larger than the inline limit goes to the
//!   side file, at an offset that is a multiple of [`WEIGHT_ALIGN`]; the gap
//!   before it is zero bytes. Smaller weights stay inline in the text.
//! - The layout is computed from byte lengths alone ([`plan`]); bytes are
//!   streamed from each weight's [`kiln_ir::Blob`] (a view into the mapped
//!   model or external-data file) straight to the writer, one weight at a
//!   time, never concatenated in memory; on Linux the source pages are
//!   released after each chunk is written (`MADV_PAGEOUT`), so peak RSS
//!   does not grow with the model.
//! - The graph handed to the printer is the imported graph with
//!   [`WeightSource`]s set ([`with_sources`]); nothing else changes, so
//!   value and weight ids stay valid.
//!
//! This module knows nothing about ONNX; it lives here because `kiln
//! import` is its only user.

use kiln_ir::{Graph, Weight, WeightData, WeightId, WeightSource};
use std::io::Write;
use std::path::Path;

/// Alignment of each weight in the side file, in bytes (a cache line, and
/// what the compiled artifact's weight section uses).
pub const WEIGHT_ALIGN: u64 = 64;

/// Where each out-of-line weight goes in the side file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// `(weight, offset, length)` in file order.
    pub entries: Vec<(WeightId, u64, u64)>,
    /// Total file size in bytes.
    pub total: u64,
}

impl Layout {
    /// Whether no weight goes to the side file.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Places every weight of more than `inline_limit` bytes at the next
/// [`WEIGHT_ALIGN`]-aligned offset. Elided weights (which an imported
/// graph never has) are skipped.
pub fn plan(g: &Graph, inline_limit: usize) -> Layout {
    let mut layout = Layout::default();
    for (i, w) in g.weights().iter().enumerate() {
        let WeightData::Bytes(b) = &w.data else {
            continue;
        };
        if b.len() <= inline_limit {
            continue;
        }
        let offset = layout.total.div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;
        let len = b.len() as u64;
        layout.entries.push((WeightId(i as u32), offset, len));
        layout.total = offset + len;
    }
    layout
}

/// A copy of `g` whose out-of-line weights name `file` (as written in the
/// text, relative to the `.kir` file) and their offsets. Weight bytes are
/// shared, not copied.
pub fn with_sources(g: &Graph, layout: &Layout, file: &Path) -> Graph {
    let mut sources: Vec<Option<WeightSource>> = vec![None; g.weights().len()];
    for &(w, offset, _) in &layout.entries {
        sources[w.0 as usize] = Some(WeightSource {
            file: file.to_path_buf(),
            offset,
        });
    }
    // kiln-ir has no mutable access to weights, so the graph is rebuilt:
    // values and weights are re-added in id order (their names are already
    // unique, so none is renamed and every id stays the same).
    let mut out = Graph::new(g.name.clone());
    for i in 0..g.num_values() {
        let v = g.value(kiln_ir::ValueId(i as u32));
        out.add_value(&v.name, v.ty.clone());
    }
    for (w, src) in g.weights().iter().zip(sources) {
        out.add_weight(Weight {
            source: src.or_else(|| w.source.clone()),
            ..w.clone()
        });
    }
    out.inputs = g.inputs.clone();
    out.outputs = g.outputs.clone();
    out.nodes = g.nodes.clone();
    // Value ids are unchanged, so a memory plan still describes the graph.
    out.memory_plan = g.memory_plan.clone();
    out
}

/// Streams the side file: zero padding up to each entry's offset, then the
/// weight's bytes. Returns the number of bytes written (`layout.total`).
pub fn write(g: &Graph, layout: &Layout, out: &mut impl Write) -> std::io::Result<u64> {
    const ZEROS: [u8; WEIGHT_ALIGN as usize] = [0; WEIGHT_ALIGN as usize];
    let mut pos = 0u64;
    for &(w, offset, len) in &layout.entries {
        let Some(blob) = g.weight(w).bytes() else {
            return Err(std::io::Error::other(format!(
                "weight '{}' has no data",
                g.weight(w).name
            )));
        };
        debug_assert_eq!(blob.len() as u64, len);
        let pad = (offset - pos) as usize;
        out.write_all(&ZEROS[..pad])?;
        // Streams in chunks and releases the mapped source pages, so that
        // resident memory stays near one chunk, not the model.
        blob.write_streaming(out)?;
        pos = offset + len;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{Blob, DType, TensorType};

    fn graph_with(sizes: &[usize]) -> Graph {
        let mut g = Graph::new("main");
        for (i, &n) in sizes.iter().enumerate() {
            let v = g.add_constant(
                &format!("c{i}"),
                Weight {
                    name: format!("w{i}"),
                    ty: TensorType::fixed(DType::U8, &[n as u64]),
                    data: WeightData::Bytes(Blob::from_vec(vec![i as u8 + 1; n])),
                    source: None,
                },
            );
            g.outputs.push(v);
        }
        g
    }

    #[test]
    fn layout_aligns_and_skips_small_weights() {
        let g = graph_with(&[100, 8, 70, 65]);
        let l = plan(&g, 16);
        assert_eq!(
            l.entries,
            vec![
                (WeightId(0), 0, 100),
                (WeightId(2), 128, 70),
                (WeightId(3), 256, 65)
            ]
        );
        assert_eq!(l.total, 321);
        let mut buf = Vec::new();
        assert_eq!(write(&g, &l, &mut buf).unwrap(), 321);
        assert_eq!(buf.len(), 321);
        assert!(buf[..100].iter().all(|&b| b == 1));
        assert!(buf[100..128].iter().all(|&b| b == 0));
        assert!(buf[128..198].iter().all(|&b| b == 3));
        assert!(buf[256..].iter().all(|&b| b == 4));
    }

    #[test]
    fn sources_keep_ids_and_print_as_file_references() {
        let g = graph_with(&[100, 8]);
        let l = plan(&g, 16);
        let g2 = with_sources(&g, &l, Path::new("m.kir.weights"));
        assert_eq!(g2.weights().len(), 2);
        assert_eq!(
            g2.weight(WeightId(0)).source,
            Some(WeightSource {
                file: "m.kir.weights".into(),
                offset: 0
            })
        );
        assert_eq!(g2.weight(WeightId(1)).source, None);
        let text =
            kiln_ir::text::print_with(&g2, &kiln_ir::text::PrintOptions { inline_limit: 16 });
        assert!(
            text.contains("file<\"m.kir.weights\", offset = 0>"),
            "{text}"
        );
        assert!(kiln_ir::verify(&g2).is_ok());
    }

    #[test]
    fn sources_keep_the_memory_plan() {
        let mut g = graph_with(&[100]);
        let x = g.add_value("x", TensorType::fixed(DType::F32, &[4]));
        g.inputs.push(x);
        let y = g.add_value("y", TensorType::fixed(DType::F32, &[4]));
        g.nodes.push(kiln_ir::Node {
            op: kiln_ir::OpKind::Relu,
            inputs: vec![Some(x)],
            outputs: vec![y],
            attrs: Default::default(),
            loc: None,
            body: None,
        });
        g.outputs.push(y);
        let mp = kiln_ir::MemoryPlan {
            arena_bytes: 0,
            align: 64,
            homes: [(y, kiln_ir::Home::Output(1))].into_iter().collect(),
        };
        g.memory_plan = Some(mp.clone());
        let g2 = with_sources(&g, &plan(&g, 16), Path::new("m.kir.weights"));
        assert_eq!(g2.memory_plan, Some(mp));
        let text =
            kiln_ir::text::print_with(&g2, &kiln_ir::text::PrintOptions { inline_limit: 16 });
        assert!(
            text.contains("memory_plan {arena = 0, align = 64}"),
            "{text}"
        );
    }
}
