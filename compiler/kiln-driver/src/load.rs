//! Loading a model file (`.onnx` or `.kir`) into a verified Kiln graph.
//!
//! Invariants:
//! - The format is chosen by the file extension, never by sniffing content.
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

fn load_inner(path: &Path, opts: &LoadOptions, deps: &mut Vec<PathBuf>) -> Result<Graph> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => {
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
        Some("kir") => {
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
        _ => Err(DriverError::Invalid(format!(
            "{}: unknown model format (expected a .onnx or .kir file)",
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
