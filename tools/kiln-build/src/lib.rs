//! `kiln-build`: compiles Kiln models from a `build.rs`, in the pattern of
//! `prost-build`.
//!
//! ```no_run
//! // build.rs, inside `fn main()`:
//! kiln_build::Config::new()
//!     .model("models/mlp.onnx", "mlp")
//!     .compile()
//!     .unwrap();
//! // src/main.rs
//! // mod mlp { include!(concat!(env!("OUT_DIR"), "/mlp.rs")); }
//! // let model = mlp::Model::new()?;
//! // let out = model.run(&mlp::Inputs { x: &[0.0; 4] })?;   // out.y: [f32; 3]
//! ```
//!
//! For each model it runs `kiln compile MODEL --emit=obj --name NAME
//! --no-runtime --depfile` into `OUT_DIR`, archives the object as
//! `libkiln_model_NAME.a` and tells cargo to link it statically, prints
//! `cargo:rerun-if-changed` for every file of the depfile (the model, its
//! external data, `.kir` weight files), and writes `OUT_DIR/NAME.rs`: a
//! module with the model's inputs and outputs as named, shaped fields
//! (`&[f32; 784]` in, `[f32; 10]` out) and a `Model` running it through the
//! `kiln-runtime` crate, which the using crate depends on.
//!
//! Invariants:
//! - The `kiln` program is `$KILN` when set, else `kiln` on `PATH`; it is
//!   never built or downloaded here. A failure names the model and carries
//!   kiln's own message.
//! - The generated module comes from the model header `kiln` writes
//!   (`NAME.h`: one `#define NAME_INPUT_i_…` line per fact), a format kiln
//!   generates and this crate reads back; no other knowledge of the model.
//! - Each model's object keeps only `NAME_artifact` global, so any number of
//!   models (and kiln's kernels inside each) link into one program.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What went wrong; the message names the model and the step.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

/// One model to compile.
#[derive(Debug, Clone)]
struct ModelSpec {
    path: PathBuf,
    name: String,
    args: Vec<String>,
}

/// The build-time configuration: models, the `kiln` program, the target.
#[derive(Debug, Clone, Default)]
pub struct Config {
    models: Vec<ModelSpec>,
    kiln: Option<PathBuf>,
    cpu: Option<String>,
    out_dir: Option<PathBuf>,
    emit_cargo: bool,
}

impl Config {
    /// No models yet; `kiln` from `$KILN` or `PATH`; output into `$OUT_DIR`.
    pub fn new() -> Config {
        Config {
            emit_cargo: true,
            ..Config::default()
        }
    }

    /// Adds a model (`.onnx` or `.kir`) compiled under `name` (a C
    /// identifier: the symbol prefix and the generated module's file name).
    pub fn model(mut self, path: impl AsRef<Path>, name: &str) -> Config {
        self.models.push(ModelSpec {
            path: path.as_ref().to_path_buf(),
            name: name.to_owned(),
            args: Vec::new(),
        });
        self
    }

    /// Extra `kiln compile` arguments for the last model added (for example
    /// `["--input-shape", "x=1x3x224x224"]`).
    pub fn args<I, S>(mut self, args: I) -> Config
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let Some(m) = self.models.last_mut() {
            m.args.extend(args.into_iter().map(Into::into));
        }
        self
    }

    /// The `kiln` program to run (default: `$KILN`, else `kiln` on `PATH`).
    pub fn kiln(mut self, path: impl AsRef<Path>) -> Config {
        self.kiln = Some(path.as_ref().to_path_buf());
        self
    }

    /// The CPU to generate code for (`kiln compile --cpu`; default: kiln's
    /// portable default, `x86-64-v3` on x86-64).
    pub fn cpu(mut self, cpu: &str) -> Config {
        self.cpu = Some(cpu.to_owned());
        self
    }

    /// Where outputs go (default: `$OUT_DIR`).
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Config {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Whether to print `cargo:` instructions (default: on; off is for
    /// using this crate outside a build script).
    pub fn emit_cargo_instructions(mut self, on: bool) -> Config {
        self.emit_cargo = on;
        self
    }

    fn kiln_program(&self) -> PathBuf {
        self.kiln
            .clone()
            .or_else(|| std::env::var_os("KILN").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("kiln"))
    }

    /// Compiles every model, writes the archives and Rust modules, and
    /// prints the cargo instructions.
    pub fn compile(&self) -> Result<(), Error> {
        let out_dir =
            match &self.out_dir {
                Some(d) => d.clone(),
                None => PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| {
                    err("OUT_DIR is not set (call from build.rs, or set out_dir)")
                })?),
            };
        let kiln = self.kiln_program();
        if self.emit_cargo {
            println!("cargo:rerun-if-env-changed=KILN");
            println!("cargo:rustc-link-search=native={}", out_dir.display());
        }
        for m in &self.models {
            self.compile_one(&kiln, &out_dir, m)?;
        }
        if self.emit_cargo && !self.models.is_empty() {
            // Generated code calls libm (expf, tanhf, ...).
            println!("cargo:rustc-link-lib=m");
        }
        Ok(())
    }

    fn compile_one(&self, kiln: &Path, out_dir: &Path, m: &ModelSpec) -> Result<(), Error> {
        let what = format!("kiln-build: model '{}' ({})", m.name, m.path.display());
        let obj = out_dir.join(format!("{}.o", m.name));
        let depfile = out_dir.join(format!("{}.d", m.name));
        let mut cmd = Command::new(kiln);
        cmd.arg("compile")
            .arg(&m.path)
            .args(["--emit=obj", "--no-runtime", "--name", &m.name])
            .arg("--depfile")
            .arg(&depfile)
            .arg("-o")
            .arg(&obj);
        if let Some(cpu) = &self.cpu {
            cmd.arg(format!("--cpu={cpu}"));
        }
        cmd.args(&m.args);
        let out = cmd.output().map_err(|e| {
            err(format!(
                "{what}: cannot run {} ({e}); install kiln or set KILN to its path",
                kiln.display()
            ))
        })?;
        if !out.status.success() {
            return Err(err(format!(
                "{what}: kiln compile failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let deps = std::fs::read_to_string(&depfile)
            .map_err(|e| err(format!("{what}: read {}: {e}", depfile.display())))?;
        if self.emit_cargo {
            for d in parse_depfile(&deps) {
                println!("cargo:rerun-if-changed={d}");
            }
        }
        let lib = format!("kiln_model_{}", m.name);
        write_archive(&obj, &out_dir.join(format!("lib{lib}.a")))
            .map_err(|e| err(format!("{what}: archive: {e}")))?;
        if self.emit_cargo {
            println!("cargo:rustc-link-lib=static={lib}");
        }
        let header = out_dir.join(format!("{}.h", m.name));
        let text = std::fs::read_to_string(&header)
            .map_err(|e| err(format!("{what}: read {}: {e}", header.display())))?;
        let sig =
            Signature::from_header(&m.name, &text).map_err(|e| err(format!("{what}: {e}")))?;
        let module = sig.rust_module(&m.path);
        std::fs::write(out_dir.join(format!("{}.rs", m.name)), module)
            .map_err(|e| err(format!("{what}: write the module: {e}")))?;
        Ok(())
    }
}

/// The prerequisites of a Make-syntax depfile (escapes undone).
pub fn parse_depfile(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    let Some((_, deps)) = joined.split_once(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some(' ' | '#' | '\\')) => {
                cur.extend(chars.next());
            }
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
                cur.push('$');
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `ar` archive holding one object (what `rustc-link-lib=static` needs).
fn write_archive(obj: &Path, archive: &Path) -> std::io::Result<()> {
    let data = std::fs::read(obj)?;
    let name = obj
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.o".into());
    let tmp = archive.with_extension("a.tmp");
    {
        let file = std::fs::File::create(&tmp)?;
        let mut builder = ar::Builder::new(file);
        let header = ar::Header::new(name.into_bytes(), data.len() as u64);
        builder.append(&header, &data[..])?;
    }
    std::fs::rename(tmp, archive)
}

/// One input or output, read from the model header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSig {
    /// The model's name for it.
    pub name: String,
    /// `F32`, `I64`, ... (kiln.h's `KILN_DTYPE_*` suffix).
    pub dtype: String,
    /// Static shape.
    pub shape: Vec<u64>,
}

/// A model's signature as its header declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The `--name`.
    pub name: String,
    pub inputs: Vec<TensorSig>,
    pub outputs: Vec<TensorSig>,
}

/// Undoes the C string escapes kiln writes in headers (octal, `\"`, `\\`, `\?`).
fn c_unescape(lit: &str) -> Option<String> {
    let inner = lit.strip_prefix('"')?.strip_suffix('"')?;
    let mut bytes = Vec::new();
    let mut it = inner.bytes().peekable();
    while let Some(b) = it.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match it.next()? {
            d @ b'0'..=b'7' => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    match it.peek() {
                        Some(&o @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(o - b'0');
                            it.next();
                        }
                        _ => break,
                    }
                }
                bytes.push(u8::try_from(v).ok()?);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

impl Signature {
    /// Reads `#define NAME_INPUT_0_NAME "x"`, `..._DTYPE KILN_DTYPE_F32`,
    /// `..._SHAPE {1, 4}` lines (the prefix is the upper-case name).
    pub fn from_header(name: &str, header: &str) -> Result<Signature, String> {
        let prefix = name.to_ascii_uppercase();
        let mut sig = Signature {
            name: name.to_owned(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        for line in header.lines() {
            let Some(rest) = line.strip_prefix("#define ") else {
                continue;
            };
            let Some((key, value)) = rest.split_once(' ') else {
                continue;
            };
            let Some(key) = key.strip_prefix(&prefix).and_then(|k| k.strip_prefix('_')) else {
                continue;
            };
            let (list, key) = if let Some(k) = key.strip_prefix("INPUT_") {
                (&mut sig.inputs, k)
            } else if let Some(k) = key.strip_prefix("OUTPUT_") {
                (&mut sig.outputs, k)
            } else {
                continue;
            };
            let Some((index, field)) = key.split_once('_') else {
                continue;
            };
            let index: usize = index
                .parse()
                .map_err(|_| format!("bad header line: {line}"))?;
            while list.len() <= index {
                list.push(TensorSig {
                    name: String::new(),
                    dtype: String::new(),
                    shape: Vec::new(),
                });
            }
            let t = &mut list[index];
            match field {
                "NAME" => {
                    t.name = c_unescape(value).ok_or_else(|| format!("bad name in: {line}"))?
                }
                "DTYPE" => {
                    t.dtype = value
                        .strip_prefix("KILN_DTYPE_")
                        .ok_or_else(|| format!("bad dtype in: {line}"))?
                        .to_owned()
                }
                "SHAPE" => {
                    t.shape = value
                        .trim_matches(|c| c == '{' || c == '}')
                        .split(',')
                        .map(|d| d.trim().parse::<u64>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| format!("bad shape in: {line}"))?
                }
                _ => {}
            }
        }
        if sig
            .inputs
            .iter()
            .chain(&sig.outputs)
            .any(|t| t.name.is_empty() || t.dtype.is_empty())
        {
            return Err(format!(
                "the header of '{name}' misses a tensor's name or dtype"
            ));
        }
        Ok(sig)
    }

    /// The generated Rust module (see the crate docs).
    pub fn rust_module(&self, source: &Path) -> String {
        let mut s = String::new();
        let sym = format!("{}_artifact", self.name);
        let _ = writeln!(
            s,
            "// Generated by kiln-build from {:?}. Do not edit.\n\
             #[allow(dead_code)]\n\
             extern \"C\" {{\n    fn {sym}() -> *const kiln_runtime::abi::ArtifactV1;\n}}\n",
            source.display().to_string()
        );
        let fields = |list: &[TensorSig]| -> Vec<String> { unique_idents(list) };
        let (ins, outs) = (fields(&self.inputs), fields(&self.outputs));
        for (side, list, idents) in [
            ("INPUT", &self.inputs, &ins),
            ("OUTPUT", &self.outputs, &outs),
        ] {
            for (t, id) in list.iter().zip(idents) {
                let dims: Vec<String> = t.shape.iter().map(u64::to_string).collect();
                let _ = writeln!(
                    s,
                    "/// Shape of {} `{}` ({}).\npub const {side}_{}_SHAPE: [i64; {}] = [{}];",
                    side.to_lowercase(),
                    t.name.replace('`', "'"),
                    t.dtype.to_lowercase(),
                    id.trim_start_matches("r#").to_ascii_uppercase(),
                    t.shape.len(),
                    dims.join(", ")
                );
            }
        }
        let _ = writeln!(
            s,
            "\n/// The model's inputs, by name.\npub struct Inputs<'a> {{"
        );
        for (t, id) in self.inputs.iter().zip(&ins) {
            let (ty, n) = rust_elem(t);
            let _ = writeln!(
                s,
                "    /// `{}`: {} {:?}\n    pub {id}: &'a [{ty}; {n}],",
                t.name.replace('`', "'"),
                t.dtype.to_lowercase(),
                t.shape
            );
        }
        if self.inputs.is_empty() {
            let _ = writeln!(s, "    _marker: std::marker::PhantomData<&'a ()>,");
        }
        let _ = writeln!(
            s,
            "}}\n\n/// The model's outputs, by name.\npub struct Outputs {{"
        );
        for (t, id) in self.outputs.iter().zip(&outs) {
            let (ty, n) = rust_elem(t);
            let _ = writeln!(
                s,
                "    /// `{}`: {} {:?}\n    pub {id}: [{ty}; {n}],",
                t.name.replace('`', "'"),
                t.dtype.to_lowercase(),
                t.shape
            );
        }
        let _ = writeln!(s, "}}\n");
        let _ = writeln!(
            s,
            "/// The model, statically linked into this program.\npub struct Model(kiln_runtime::Model);\n\n\
             impl Model {{\n    /// Wraps the linked artifact (checks its descriptor and this CPU).\n    \
             pub fn new() -> Result<Model, kiln_runtime::Error> {{\n        \
             // SAFETY: `{sym}` is the descriptor function of the object kiln-build linked; the\n        \
             // descriptor and its weights are static data of this program.\n        \
             unsafe {{ kiln_runtime::Model::from_artifact({sym}(), None) }}.map(Model)\n    }}\n\n    \
             /// The runtime model (thread count, signature queries).\n    \
             pub fn runtime(&self) -> &kiln_runtime::Model {{\n        &self.0\n    }}\n\n    \
             /// Runs the model; the outputs are boxed (they may be large).\n    \
             pub fn run(&self, inputs: &Inputs<'_>) -> Result<Box<Outputs>, kiln_runtime::Error> {{"
        );
        let _ = writeln!(s, "        let mut out = Box::new(Outputs {{");
        for (t, id) in self.outputs.iter().zip(&outs) {
            let (ty, n) = rust_elem(t);
            let zero = if ty.starts_with('f') { "0.0" } else { "0" };
            let _ = writeln!(s, "            {id}: [{zero} as {ty}; {n}],");
        }
        let _ = writeln!(s, "        }});");
        let _ = writeln!(s, "        let ins = [");
        for (t, id) in self.inputs.iter().zip(&ins) {
            let _ = writeln!(
                s,
                "            kiln_runtime::TensorRef {{ dtype: kiln_runtime::DType::{}, ..kiln_runtime::TensorRef::from_slice(&INPUT_{}_SHAPE, &inputs.{id}[..]) }},",
                runtime_dtype(&t.dtype),
                id.trim_start_matches("r#").to_ascii_uppercase()
            );
        }
        let _ = writeln!(s, "        ];\n        let mut outs = [");
        for (t, id) in self.outputs.iter().zip(&outs) {
            let _ = writeln!(
                s,
                "            {{ let mut t = kiln_runtime::TensorMut::from_slice(&OUTPUT_{}_SHAPE, &mut out.{id}[..]); t.dtype = kiln_runtime::DType::{}; t }},",
                id.trim_start_matches("r#").to_ascii_uppercase(),
                runtime_dtype(&t.dtype)
            );
        }
        let _ = writeln!(
            s,
            "        ];\n        self.0.run(&ins, &mut outs)?;\n        drop(outs);\n        Ok(out)\n    }}\n}}"
        );
        // A program need not use every item of the module.
        s.replace("\npub const ", "\n#[allow(dead_code)]\npub const ")
            .replace("\npub struct ", "\n#[allow(dead_code)]\npub struct ")
            .replace("\nimpl Model", "\n#[allow(dead_code)]\nimpl Model")
    }
}

/// The Rust element type and element count of a tensor's storage: numbers
/// as themselves, f16/bf16 as their `u16` bits, bool and f8 as `u8`, 4-bit
/// types as packed `u8` pairs, 2-bit types as packed `u8` quads.
fn rust_elem(t: &TensorSig) -> (&'static str, u64) {
    let n: u64 = t.shape.iter().product();
    match t.dtype.as_str() {
        "F64" => ("f64", n),
        "F32" => ("f32", n),
        "I64" => ("i64", n),
        "I32" => ("i32", n),
        "I16" => ("i16", n),
        "I8" => ("i8", n),
        "U64" => ("u64", n),
        "U32" => ("u32", n),
        "U16" | "F16" | "BF16" => ("u16", n),
        "NF4" | "I4" | "U4" | "F4E2M1" => ("u8", n.div_ceil(2)),
        "I2" | "U2" => ("u8", n.div_ceil(4)),
        _ => ("u8", n),
    }
}

/// kiln-runtime's `DType` variant for a header dtype name.
fn runtime_dtype(d: &str) -> String {
    match d {
        "BOOL" => "Bool".into(),
        other => other.to_owned(),
    }
}

/// Rust field names for tensor names: snake case of the alphanumerics,
/// a leading `_` before a digit, `r#` for keywords, `_2`, `_3` for repeats.
fn unique_idents(list: &[TensorSig]) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn",
        "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
        "return", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
        "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
        "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    let mut seen: Vec<String> = Vec::new();
    list.iter()
        .map(|t| {
            let mut id: String = t
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) || id == "_" {
                id.insert(0, 't');
            }
            if matches!(id.as_str(), "self" | "super" | "crate" | "Self") {
                id.push('_');
            }
            let base = id.clone();
            let mut k = 2;
            while seen.contains(&id) {
                id = format!("{base}_{k}");
                k += 1;
            }
            seen.push(id.clone());
            if KEYWORDS.contains(&id.as_str()) {
                format!("r#{id}")
            } else {
                id
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depfiles_unescape() {
        let deps = parse_depfile("out/m.o: \\\n  a\\ b.onnx \\\n  c$$d.bin e\\#f\n");
        assert_eq!(deps, ["a b.onnx", "c$d.bin", "e#f"]);
    }

    #[test]
    fn header_signatures_round_trip_names_and_shapes() {
        let h = "#define MLP_NAME \"m\"\n#define MLP_INPUT_0_NAME \"in\\\"put\\077\"\n\
                 #define MLP_INPUT_0_DTYPE KILN_DTYPE_F32\n#define MLP_INPUT_0_SHAPE {1, 4}\n\
                 #define MLP_OUTPUT_0_NAME \"type\"\n#define MLP_OUTPUT_0_DTYPE KILN_DTYPE_BOOL\n\
                 #define MLP_OUTPUT_0_RANK 0u\n";
        let sig = Signature::from_header("mlp", h).unwrap();
        assert_eq!(sig.inputs[0].name, "in\"put?");
        assert_eq!(sig.inputs[0].shape, [1, 4]);
        assert_eq!(
            (sig.outputs[0].dtype.as_str(), sig.outputs[0].shape.len()),
            ("BOOL", 0)
        );
        let idents = unique_idents(&[sig.outputs[0].clone(), sig.outputs[0].clone()]);
        assert_eq!(idents, ["r#type", "type_2"]);
        let m = sig.rust_module(Path::new("m.onnx"));
        assert!(m.contains("pub in_put_: &'a [f32; 4]"), "{m}");
        assert!(m.contains("pub r#type: [u8; 1]"), "{m}");
        assert!(m.contains("fn mlp_artifact()"), "{m}");
    }
}
