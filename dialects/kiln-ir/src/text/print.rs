//! The `.kir` printer.

use super::is_bare_name;
use crate::attr::{fmt_float, Attr};
use crate::dtype::DType;
use crate::graph::{fingerprint, Graph, Weight, WeightData};
use std::fmt::{self, Write};

/// Printer settings.
#[derive(Clone, Debug)]
pub struct PrintOptions {
    /// Weights of at most this many bytes are printed inline as `dense<...>`.
    pub inline_limit: usize,
}

impl Default for PrintOptions {
    fn default() -> Self {
        PrintOptions { inline_limit: 64 }
    }
}

/// Prints a graph with default options.
pub fn print(g: &Graph) -> String {
    print_with(g, &PrintOptions::default())
}

struct Name<'a>(char, &'a str);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        if is_bare_name(self.1) {
            f.write_str(self.1)
        } else {
            write!(f, "{}", Quoted(self.1))
        }
    }
}

pub(crate) struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::attr::fmt_str(f, self.0)
    }
}

struct F(f64);
impl fmt::Display for F {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_float(f, self.0)
    }
}

/// Renders weight bytes as a decimal list when every element re-parses to
/// the same bits, else `None` (the caller prints hex).
fn dense_list(w: &Weight, bytes: &[u8]) -> Option<String> {
    let mut out = String::from("[");
    macro_rules! ints {
        ($t:ty, $n:literal) => {{
            for (i, c) in bytes.chunks_exact($n).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}", <$t>::from_le_bytes(c.try_into().ok()?));
            }
        }};
    }
    match w.ty.dtype {
        DType::F32 => {
            for (i, c) in bytes.chunks_exact(4).enumerate() {
                let v = f32::from_le_bytes(c.try_into().ok()?);
                if v.is_nan() {
                    return None;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                // f32's shortest repr re-parses to the same f32.
                let s = format!("{v:?}");
                out.push_str(&s);
                if !s.contains(['.', 'e', 'n', 'i']) {
                    out.push_str(".0");
                }
            }
        }
        DType::F64 => {
            for (i, c) in bytes.chunks_exact(8).enumerate() {
                let v = f64::from_le_bytes(c.try_into().ok()?);
                if v.is_nan() {
                    return None;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}", F(v));
            }
        }
        DType::I64 => ints!(i64, 8),
        DType::I32 => ints!(i32, 4),
        DType::I16 => ints!(i16, 2),
        DType::I8 => ints!(i8, 1),
        DType::U64 => ints!(u64, 8),
        DType::U32 => ints!(u32, 4),
        DType::U16 => ints!(u16, 2),
        DType::U8 => ints!(u8, 1),
        DType::Bool => {
            for (i, &b) in bytes.iter().enumerate() {
                if b > 1 {
                    return None;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(if b == 1 { "true" } else { "false" });
            }
        }
        _ => return None,
    }
    out.push(']');
    Some(out)
}

fn print_weight(out: &mut String, g: &Graph, w: &Weight, opts: &PrintOptions) {
    let _ = write!(out, "weight {} : {} = ", Name('@', &w.name), w.ty);
    match &w.data {
        WeightData::Bytes(b) if b.len() <= opts.inline_limit => match dense_list(w, b.bytes()) {
            Some(list) => {
                let _ = write!(out, "dense<{list}>");
            }
            None => {
                out.push_str("dense<\"0x");
                for byte in b.bytes() {
                    let _ = write!(out, "{byte:02X}");
                }
                out.push_str("\">");
            }
        },
        WeightData::Bytes(b) => match &w.source {
            Some(src) => {
                let _ = write!(
                    out,
                    "file<{}, offset = {}>",
                    Quoted(&src.file.to_string_lossy()),
                    src.offset
                );
            }
            None => {
                let _ = write!(
                    out,
                    "elided<bytes = {}, fnv = 0x{:016x}>",
                    b.len(),
                    fingerprint(b.bytes())
                );
            }
        },
        WeightData::Elided { bytes, fingerprint } => {
            let _ = write!(out, "elided<bytes = {bytes}, fnv = 0x{fingerprint:016x}>");
        }
        WeightData::Derived(d) => {
            let _ = write!(out, "derived<{}", d.op.name());
            print_attrs(out, g, &d.attrs);
            out.push_str(">(");
            for (i, w) in d.inputs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match g.weights().get(w.0 as usize) {
                    Some(x) => {
                        let _ = write!(out, "{}", Name('@', &x.name));
                    }
                    None => {
                        let _ = write!(out, "@\"#{}\"", w.0);
                    }
                }
            }
            out.push(')');
        }
    }
    out.push('\n');
}

fn print_attr(out: &mut String, g: &Graph, a: &Attr) {
    match a {
        Attr::Weight(w) if (w.0 as usize) < g.weights().len() => {
            let _ = write!(out, "{}", Name('@', &g.weight(*w).name));
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// ` {k = v, ...}` when there are attributes, as the printer writes them.
pub(super) fn attrs_text(g: &Graph, attrs: &crate::attr::Attrs) -> String {
    let mut out = String::new();
    print_attrs(&mut out, g, attrs);
    out
}

/// Prints ` {k = v, ...}` when there are attributes.
fn print_attrs(out: &mut String, g: &Graph, attrs: &crate::attr::Attrs) {
    if attrs.is_empty() {
        return;
    }
    out.push_str(" {");
    for (i, (k, a)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{k} = ");
        print_attr(out, g, a);
    }
    out.push('}');
}

/// Prints a graph.
pub fn print_with(g: &Graph, opts: &PrintOptions) -> String {
    let mut out = String::new();
    for w in g.weights() {
        print_weight(&mut out, g, w, opts);
    }
    let v = |id| Name('%', &g.value(id).name);
    let _ = write!(out, "graph {}(", Name('@', &g.name));
    for (i, &id) in g.inputs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: {}", v(id), g.value(id).ty);
    }
    out.push_str(") -> (");
    for (i, &id) in g.outputs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}", g.value(id).ty);
    }
    out.push_str(") {\n");
    print_body(&mut out, g, 1);
    out.push_str("}\n");
    if let Some(plan) = &g.memory_plan {
        print_plan(&mut out, g, plan);
    }
    out
}

/// Prints a graph's nodes and its `return`, indented by `depth` levels.
fn print_body(out: &mut String, g: &Graph, depth: usize) {
    let pad = "  ".repeat(depth);
    let v = |id| Name('%', &g.value(id).name);
    for node in &g.nodes {
        out.push_str(&pad);
        for (i, &id) in node.outputs.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}", v(id));
        }
        let _ = write!(out, " = {}", node.op.name());
        for (i, inp) in node.inputs.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            match inp {
                Some(id) => {
                    let _ = write!(out, "{}", v(*id));
                }
                None => out.push_str("none"),
            }
        }
        print_attrs(out, g, &node.attrs);
        out.push_str(" : ");
        for (i, &id) in node.outputs.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}", g.value(id).ty);
        }
        if let Some(loc) = &node.loc {
            let _ = write!(out, " loc({})", Quoted(loc));
        }
        if let Some(body) = &node.body {
            let inner = "  ".repeat(depth + 1);
            let bv = |id| Name('%', &body.value(id).name);
            let _ = write!(out, " {{\n{inner}^(");
            for (i, &id) in body.inputs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}: {}", bv(id), body.value(id).ty);
            }
            out.push_str("):\n");
            print_body(out, body, depth + 1);
            let _ = write!(out, "{pad}}}");
        }
        out.push('\n');
    }
    let _ = write!(out, "{pad}return");
    for (i, &id) in g.outputs.iter().enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        let _ = write!(out, "{}", v(id));
    }
    out.push('\n');
}

/// Prints a memory plan: one line per node result with a home, in node
/// order (so that printing a parsed plan gives the same text).
fn print_plan(out: &mut String, g: &Graph, plan: &crate::plan::MemoryPlan) {
    use crate::plan::Home;
    let _ = writeln!(
        out,
        "memory_plan {{arena = {}, align = {}}} {{",
        plan.arena_bytes, plan.align
    );
    for node in &g.nodes {
        for &r in &node.outputs {
            let Some(home) = plan.homes.get(&r) else {
                continue;
            };
            let _ = write!(out, "  {} = ", Name('%', &g.value(r).name));
            let _ = match home {
                Home::Input(i) => writeln!(out, "input {i}"),
                Home::Output(j) => writeln!(out, "output {j}"),
                Home::Arena(o) => writeln!(out, "arena {o}"),
                Home::Weight(w) => match g.weights().get(w.0 as usize) {
                    Some(x) => writeln!(out, "weight {}", Name('@', &x.name)),
                    None => writeln!(out, "weight @\"#{}\"", w.0),
                },
            };
        }
    }
    out.push_str("}\n");
}
