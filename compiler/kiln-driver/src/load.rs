//! Loading a model file (`.onnx` or `.kir`) into a verified Kiln graph.
//!
//! Invariants:
//! - The format is told by content, never by the file extension
//!   ([`detect`]): an ELF file is an artifact, UTF-8 text is Kiln IR, a
//!   protobuf is an ONNX model; anything else is refused with a message
//!   saying what was expected.
//! - `--input-shape` overrides apply to both formats: ONNX through the
//!   importer (which substitutes bound symbols everywhere), `.kir` by fixing
//!   the input types before the pipeline's shape inference runs. An
//!   override naming no graph input, or changing a static extent or the
//!   rank, is an error rather than silently ignored.
//! - Input values ([`LoadOptions::input_values`]) turn inputs into
//!   constants for both formats: ONNX while importing (so control flow that
//!   depends on them can be expanded), `.kir` right after parsing. Either
//!   way the input is gone from the graph's input list.

use crate::error::{DriverError, Result};
use crate::tensors::HostTensor;
use kiln_ir::{Dim, Graph, TensorType};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Static shapes for graph inputs, by input name (`--input-shape`).
    pub input_shapes: BTreeMap<String, Vec<u64>>,
    /// Values of graph inputs to compile in as constants
    /// (`--freeze-input`, and `kiln run` for inputs that decide control
    /// flow or shapes).
    pub input_values: Vec<HostTensor>,
}

/// Parses one `--input-shape` argument, `NAME=1x3x224x224` (`NAME=` alone
/// is a scalar). The name may itself contain `=`; the last one separates.
pub fn parse_input_shape(spec: &str) -> Result<(String, Vec<u64>)> {
    let bad = |why: &str| {
        DriverError::Invalid(format!(
            "bad --input-shape '{spec}': {why} (expected NAME=DIMS, e.g. x=1x3x224x224)"
        ))
    };
    let (name, dims) = spec.rsplit_once('=').ok_or_else(|| bad("no '='"))?;
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    let dims = if dims.is_empty() {
        Vec::new()
    } else {
        dims.split(['x', 'X', ','])
            .map(|d| {
                d.trim()
                    .parse::<u64>()
                    .map_err(|_| bad("dims must be integers"))
            })
            .collect::<Result<Vec<u64>>>()?
    };
    Ok((name.to_owned(), dims))
}

/// Loads `.onnx` or `.kir` into a verified graph, applying
/// [`LoadOptions::input_shapes`].
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Graph> {
    Ok(load_with_deps(path, opts)?.0)
}

/// Like [`load`], also returning every file the graph was read from: the
/// model, its ONNX external-data files or its `.kir` weight side files (what
/// a build system's depfile lists).
pub fn load_with_deps(path: &Path, opts: &LoadOptions) -> Result<(Graph, Vec<PathBuf>)> {
    let mut deps = vec![path.to_path_buf()];
    let graph = load_inner(path, opts, &mut deps)?;
    deps.dedup();
    Ok((graph, deps))
}

/// What a model or artifact file holds, by its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A compiled artifact (an ELF shared library; the runtime checks its
    /// integrity record).
    Artifact,
    /// An ONNX `ModelProto`.
    Onnx,
    /// Kiln IR text.
    Kir,
}

/// How many leading bytes [`detect`] looks at.
const SNIFF_BYTES: usize = 4096;

/// Tells an artifact, an ONNX model and Kiln IR text apart by content:
/// the ELF magic; UTF-8 text without control characters (other than tab,
/// newline, carriage return and form feed); or a first byte that is a
/// protobuf field key with a wire type `ModelProto` uses.
pub fn detect(path: &Path) -> Result<FileKind> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| DriverError::io("open", path, e))?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    file.take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| DriverError::io("read", path, e))?;
    detect_bytes(&head).ok_or_else(|| {
        let what = if head.is_empty() {
            "an empty file".to_owned()
        } else {
            let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("a file starting with bytes {}", shown.join(" "))
        };
        DriverError::Invalid(format!(
            "{}: unknown file format: {what}, not a Kiln artifact (ELF), an ONNX model              (protobuf) or Kiln IR text",
            path.display()
        ))
    })
}

/// [`detect`] on the first bytes of a file.
pub fn detect_bytes(head: &[u8]) -> Option<FileKind> {
    const ELF_MAGIC: &[u8] = b"\x7fELF";
    if head.starts_with(ELF_MAGIC) {
        return Some(FileKind::Artifact);
    }
    let &first = head.first()?;
    // A cut in the middle of a multi-byte character is still text.
    let text = match std::str::from_utf8(head) {
        Ok(s) => Some(s),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    if text.is_some_and(|t| {
        t.chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
    }) {
        return Some(FileKind::Kir);
    }
    // A protobuf starts with a field key: (field << 3) | wire type. Every
    // ModelProto field is a varint (0) or length-delimited (2); keys of
    // fields above 15 take two bytes (high bit set).
    let (field, wire) = (first >> 3, first & 7);
    ((first & 0x80 != 0 || field >= 1) && matches!(wire, 0 | 2)).then_some(FileKind::Onnx)
}

fn load_inner(path: &Path, opts: &LoadOptions, deps: &mut Vec<PathBuf>) -> Result<Graph> {
    match detect(path)? {
        FileKind::Onnx => {
            let model = kiln_onnx::load_model(path)?;
            let mut input_values = BTreeMap::new();
            for t in &opts.input_values {
                let value = kiln_onnx::import::InputValue {
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    data: kiln_ir::Blob::from_vec(t.data.as_ref().to_vec()),
                };
                if input_values.insert(t.name.clone(), value).is_some() {
                    return Err(DriverError::Invalid(format!(
                        "input '{}' is frozen twice",
                        t.name
                    )));
                }
            }
            let import = kiln_onnx::import::ImportOptions {
                input_shapes: opts.input_shapes.clone(),
                input_values,
                ..Default::default()
            };
            let names: Vec<&str> = model
                .graph
                .runtime_inputs()
                .map(|i| i.name.as_str())
                .collect();
            check_names(path, &opts.input_shapes, &names)?;
            deps.extend(model.external_files.iter().cloned());
            Ok(kiln_onnx::import::import_model(&model, &import)?)
        }
        FileKind::Kir => {
            let mut g = kiln_ir::text::parse_file(path)
                .map_err(DriverError::Parse)?
                .graph;
            let base = path.parent().unwrap_or(Path::new(""));
            let mut side: Vec<PathBuf> = g
                .weights()
                .iter()
                .filter_map(|w| w.source.as_ref().map(|s| base.join(&s.file)))
                .collect();
            side.sort();
            side.dedup();
            deps.extend(side);
            fix_kir_inputs(path, &mut g, &opts.input_shapes)?;
            crate::specialize::freeze_inputs(&mut g, &opts.input_values)?;
            Ok(g)
        }
        FileKind::Artifact => Err(DriverError::Invalid(format!(
            "{}: a compiled artifact, not a model (expected an ONNX model or Kiln IR text)",
            path.display()
        ))),
    }
}

fn check_names(path: &Path, shapes: &BTreeMap<String, Vec<u64>>, names: &[&str]) -> Result<()> {
    for name in shapes.keys() {
        if !names.contains(&name.as_str()) {
            return Err(DriverError::Invalid(format!(
                "{}: --input-shape names '{name}', which is not a graph input (inputs: {})",
                path.display(),
                names.join(", ")
            )));
        }
    }
    Ok(())
}

/// Gives `.kir` inputs the requested static shapes; symbols bound in one
/// input are substituted in every other input.
fn fix_kir_inputs(path: &Path, g: &mut Graph, shapes: &BTreeMap<String, Vec<u64>>) -> Result<()> {
    if shapes.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = g.inputs.iter().map(|&v| g.value(v).name.clone()).collect();
    check_names(
        path,
        shapes,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let mut symbols: BTreeMap<String, u64> = BTreeMap::new();
    for &v in &g.inputs {
        let info = g.value(v);
        let Some(dims) = shapes.get(&info.name) else {
            continue;
        };
        let ty = &info.ty;
        if ty.dims.len() != dims.len() {
            return Err(DriverError::Invalid(format!(
                "{}: --input-shape gives input '{}' rank {}, but its type {ty} has rank {}",
                path.display(),
                info.name,
                dims.len(),
                ty.dims.len()
            )));
        }
        for (d, &n) in ty.dims.iter().zip(dims) {
            match d {
                Dim::Static(s) if *s != n => {
                    return Err(DriverError::Invalid(format!(
                        "{}: --input-shape gives input '{}' extent {n} where its type {ty} has {s}",
                        path.display(),
                        info.name
                    )))
                }
                Dim::Sym(s) => {
                    if let Some(old) = symbols.insert(s.to_string(), n) {
                        if old != n {
                            return Err(DriverError::Invalid(format!(
                                "{}: --input-shape binds symbol '{s}' to both {old} and {n}",
                                path.display()
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for v in g.inputs.clone() {
        if let Some(dims) = shapes.get(&g.value(v).name) {
            let dt = g.value(v).ty.dtype;
            *g.value_ty_mut(v) = TensorType::fixed(dt, dims);
        }
    }
    crate::specialize::substitute_symbols(g, &symbols);
    Ok(())
}

/// Names the graph inputs whose types are not static, with their types, or
/// `None` when every input is static.
pub fn dynamic_inputs(g: &Graph) -> Option<String> {
    let list: Vec<String> = g
        .inputs
        .iter()
        .map(|&v| g.value(v))
        .filter(|info| !info.ty.is_static())
        .map(|info| format!("'{}' {}", info.name, info.ty))
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}
