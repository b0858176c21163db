//! Compiling a graph into an artifact, or into any intermediate stage.
//!
//! Stages, each printable with [`Emit`]: graph pipeline (`kir`) → lowering
//! (`mlir`, linalg on tensors) → MLIR pipeline + LLVM (`llvm`, `asm`) →
//! objects (`obj`) → shared library (`lib`).
//!
//! Invariants:
//! - Weight bytes never go through MLIR or LLVM: the lowering references
//!   them by offset, and the blob is streamed ([`WeightsLayout::write_to`])
//!   into a file, which is memory-mapped into the weights object (embedded)
//!   or renamed next to the library (external). Compile time therefore
//!   scales with the number of ops, not with weight bytes.
//! - All outputs are built in a temporary directory next to the output and
//!   renamed into place only after every step succeeded, the main output
//!   (`-o`) last: a failed compile leaves nothing at `-o`, and no temporary
//!   files behind.
//! - Dynamic input shapes are refused with a message naming the inputs and
//!   the `--input-shape` flag that fixes them.

use crate::artifact::{self, Descriptor, WeightsRef, WEIGHTS_SYMBOL};
use crate::error::{DriverError, Result};
use crate::load::dynamic_inputs;
use kiln_codegen::lower::{lower_graph, LowerOptions, LoweredModule};
use kiln_codegen::{Arch, OptLevel, Target};
use kiln_ir::Graph;
use kiln_passes::{ManagerOptions, PassManager, Pipeline};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The `kiln.h` this driver generates code against (the runtime's ABI).
pub const KILN_H: &str = include_str!("../../../runtime/include/kiln.h");

/// File name of the runtime's static library.
pub const RUNTIME_ARCHIVE: &str = "libkiln_runtime.a";

/// What [`compile`] produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Emit {
    /// Kiln IR text after the graph pipeline.
    Kir,
    /// MLIR text from the lowering (linalg/tensor, before the MLIR pipeline).
    Mlir,
    /// Optimized LLVM IR of the model code.
    Llvm,
    /// Target assembly of the model code.
    Asm,
    /// One relocatable object (model code, descriptor, embedded weights),
    /// plus `model.h`, `kiln.h` and the runtime's static library next to it.
    Obj,
    /// A shared library plus `model.h`.
    Lib,
}

impl Emit {
    /// Parses `kir|mlir|llvm|asm|obj|lib`.
    pub fn parse(s: &str) -> Result<Emit> {
        Ok(match s {
            "kir" => Emit::Kir,
            "mlir" => Emit::Mlir,
            "llvm" | "ll" => Emit::Llvm,
            "asm" | "s" => Emit::Asm,
            "obj" | "o" => Emit::Obj,
            "lib" | "so" => Emit::Lib,
            _ => {
                return Err(DriverError::Invalid(format!(
                    "unknown --emit '{s}' (expected kir, mlir, llvm, asm, obj or lib)"
                )))
            }
        })
    }

    /// Whether the stage is text (printed to stdout when no output is given).
    pub fn is_text(self) -> bool {
        matches!(self, Emit::Kir | Emit::Mlir | Emit::Llvm | Emit::Asm)
    }
}

/// Where the weights of an artifact live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeightsMode {
    /// In a 64-byte aligned read-only section of the artifact.
    #[default]
    Embedded,
    /// In `<output>.weights` next to the artifact, memory-mapped at load.
    External,
}

/// Compilation settings.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The machine to generate code for.
    pub target: Target,
    /// LLVM optimisation level.
    pub opt_level: OptLevel,
    /// Which stage to produce.
    pub emit: Emit,
    /// Where the weights go (artifacts only).
    pub weights: WeightsMode,
    /// The output file; required for `obj` and `lib`, text stages are
    /// returned in [`Artifacts::text`] when absent.
    pub output: Option<PathBuf>,
    /// The graph pipeline (default: `default`).
    pub pipeline: Pipeline,
    /// Directory holding `libkiln_runtime.a` (for `--emit=obj`); searched
    /// for when absent (see [`find_runtime_archive`]).
    pub runtime_dir: Option<PathBuf>,
}

impl CompileOptions {
    /// Defaults: host CPU, `-O3`, a shared library with embedded weights.
    pub fn new(target: Target, output: Option<PathBuf>) -> CompileOptions {
        CompileOptions {
            target,
            opt_level: OptLevel::O3,
            emit: Emit::Lib,
            weights: WeightsMode::Embedded,
            output,
            pipeline: Pipeline::default_pipeline(),
            runtime_dir: None,
        }
    }
}

/// Builds a target from `--target` and `--cpu`.
///
/// No target means this machine; no CPU means `native` on this machine and
/// the target's default CPU otherwise. `--cpu=native` needs a target of this
/// machine's architecture.
pub fn target_from_args(target: Option<&str>, cpu: Option<&str>) -> Result<Target> {
    let base = match target {
        None | Some("host" | "native") => Target::host()?,
        Some(t) => Target::parse(t)?,
    };
    match cpu {
        None => Ok(base),
        Some("native") => {
            if Arch::of_host() == Some(base.arch()) {
                Ok(Target::host()?)
            } else {
                Err(DriverError::Invalid(format!(
                    "--cpu=native needs a target of this machine's architecture, not {}",
                    base.arch().name()
                )))
            }
        }
        Some(cpu) => Ok(Target::parse(&format!("{}:{cpu}", base.arch().name()))?),
    }
}

/// What a compile produced.
#[derive(Debug, Default)]
pub struct Artifacts {
    /// Files written, main output first.
    pub files: Vec<PathBuf>,
    /// The text of a text stage when no output file was given.
    pub text: Option<Vec<u8>>,
    /// Wall time of each stage, in order.
    pub timings: Vec<(&'static str, Duration)>,
}

impl Artifacts {
    /// A table of stage timings, one per line, plus the total.
    pub fn timing_table(&self) -> String {
        let mut s = String::new();
        for (stage, d) in &self.timings {
            s.push_str(&format!(
                "  {stage:<12} {:>10.3} ms\n",
                d.as_secs_f64() * 1e3
            ));
        }
        let total: Duration = self.timings.iter().map(|(_, d)| *d).sum();
        s.push_str(&format!(
            "  {:<12} {:>10.3} ms\n",
            "total",
            total.as_secs_f64() * 1e3
        ));
        s
    }
}

fn timed<T>(
    timings: &mut Vec<(&'static str, Duration)>,
    stage: &'static str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let start = Instant::now();
    let r = f();
    timings.push((stage, start.elapsed()));
    r
}

/// Runs the graph pipeline on `graph` (in place).
pub fn optimize(graph: &mut Graph, pipeline: &Pipeline) -> Result<()> {
    PassManager::new(pipeline.clone(), ManagerOptions::default()).run(graph)?;
    Ok(())
}

/// Compiles `graph` to the stage and outputs `opts` asks for.
pub fn compile(mut graph: Graph, opts: &CompileOptions) -> Result<Artifacts> {
    let mut art = Artifacts::default();
    timed(&mut art.timings, "passes", || {
        optimize(&mut graph, &opts.pipeline)
    })?;
    if opts.emit == Emit::Kir {
        let text = kiln_ir::text::print(&graph);
        return finish_text(art, opts, text.into_bytes());
    }
    if let Some(list) = dynamic_inputs(&graph) {
        // An example flag for the first dynamic input: its static extents
        // kept, every other extent shown as 1.
        let example = graph
            .inputs
            .iter()
            .map(|&v| graph.value(v))
            .find(|i| !i.ty.is_static())
            .map(|i| {
                let dims: Vec<String> =
                    i.ty.dims
                        .iter()
                        .map(|d| d.as_static().unwrap_or(1).to_string())
                        .collect();
                format!("{}={}", i.name, dims.join("x"))
            })
            .unwrap_or_default();
        return Err(DriverError::Unsupported(format!(
            "the model has inputs with dynamic shapes ({list}); Kiln compiles static shapes \
             only: fix them with --input-shape NAME=DIMS, e.g. --input-shape {example}"
        )));
    }
    let lowered = timed(&mut art.timings, "lower", || {
        Ok(lower_graph(&graph, &LowerOptions::default())?)
    })?;
    for sig in lowered.inputs.iter().chain(&lowered.outputs) {
        if sig.name.contains('\0') {
            return Err(DriverError::Invalid(format!(
                "tensor name {:?} contains a NUL byte",
                sig.name
            )));
        }
    }
    let codegen = |emit| {
        kiln_codegen::emit_with_pipeline(
            &lowered.mlir,
            &opts.target,
            lowered.pipeline_hint,
            opts.opt_level,
            emit,
        )
    };
    match opts.emit {
        Emit::Kir => unreachable_stage(),
        Emit::Mlir => finish_text(art, opts, lowered.mlir.clone().into_bytes()),
        Emit::Llvm => {
            let text = timed(&mut art.timings, "codegen", || {
                Ok(codegen(kiln_codegen::Emit::Llvm)?)
            })?;
            finish_text(art, opts, text)
        }
        Emit::Asm => {
            let text = timed(&mut art.timings, "codegen", || {
                Ok(codegen(kiln_codegen::Emit::Asm)?)
            })?;
            finish_text(art, opts, text)
        }
        Emit::Obj | Emit::Lib => {
            let output = opts.output.as_deref().ok_or_else(|| {
                DriverError::Invalid(
                    "an output file (-o) is needed for --emit=obj and --emit=lib".into(),
                )
            })?;
            if opts.target.arch().is_gpu() {
                return Err(DriverError::Unsupported(format!(
                    "artifacts for GPU target {} are not supported yet",
                    opts.target
                )));
            }
            build_artifact(&graph, &lowered, opts, output, &mut art)?;
            Ok(art)
        }
    }
}

/// `Emit::Kir` returns before lowering; kept as a function so the match on
/// [`Emit`] stays exhaustive without a panic.
fn unreachable_stage() -> Result<Artifacts> {
    Err(DriverError::Internal(
        "the kir stage ends before lowering".into(),
    ))
}

fn finish_text(mut art: Artifacts, opts: &CompileOptions, text: Vec<u8>) -> Result<Artifacts> {
    match &opts.output {
        Some(path) if path.as_os_str() != "-" => {
            let stage = Staging::new(path)?;
            let staged = stage.path("out");
            write_file(&staged, &text)?;
            stage.commit(&[(staged, path.clone())])?;
            art.files.push(path.clone());
        }
        _ => art.text = Some(text),
    }
    Ok(art)
}

/// A temporary directory next to the outputs; dropped (with its files) on
/// error.
struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    fn new(output: &Path) -> Result<Staging> {
        let parent = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = tempfile::Builder::new()
            .prefix(".kiln-build-")
            .tempdir_in(parent)
            .map_err(|e| DriverError::io("create a temporary directory in", parent, e))?;
        Ok(Staging { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Renames each staged file to its final path, in order (the main
    /// output last). On failure, files already moved are removed again.
    fn commit(self, moves: &[(PathBuf, PathBuf)]) -> Result<()> {
        let mut done: Vec<&Path> = Vec::new();
        for (from, to) in moves {
            if let Err(e) = std::fs::rename(from, to) {
                for d in done {
                    let _ = std::fs::remove_file(d);
                }
                return Err(DriverError::io("rename a temporary file to", to, e));
            }
            done.push(to);
        }
        Ok(())
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| DriverError::io("write", path, e))
}

/// Streams the weights blob into `path`.
fn write_weights(graph: &Graph, lowered: &LoweredModule, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| DriverError::io("create", path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let n = lowered
        .weights
        .write_to(graph, &mut out)
        .map_err(|e| DriverError::io("write weights to", path, e))?;
    out.flush()
        .map_err(|e| DriverError::io("write weights to", path, e))?;
    if n != lowered.weights.total_bytes {
        return Err(DriverError::Internal(format!(
            "wrote {n} weight bytes, the layout has {}",
            lowered.weights.total_bytes
        )));
    }
    Ok(())
}

/// The final path of a companion file: `<output>` with `suffix` appended
/// (`model.so` → `model.so.weights`) or its extension replaced.
fn companion(output: &Path, ext: &str, append: bool) -> PathBuf {
    if append {
        let mut s = output.as_os_str().to_owned();
        s.push(".");
        s.push(ext);
        PathBuf::from(s)
    } else {
        output.with_extension(ext)
    }
}

fn build_artifact(
    graph: &Graph,
    lowered: &LoweredModule,
    opts: &CompileOptions,
    output: &Path,
    art: &mut Artifacts,
) -> Result<()> {
    // The runtime archive is built for this machine: it ships only with
    // objects for this machine's architecture.
    let runtime_archive = match opts.emit {
        Emit::Obj if Arch::of_host() == Some(opts.target.arch()) => {
            Some(find_runtime_archive(opts.runtime_dir.as_deref())?)
        }
        _ => None,
    };
    let stage = Staging::new(output)?;
    let target = &opts.target;
    let kernel_o = stage.path("kernel.o");
    let glue_o = stage.path("glue.o");
    let weights_o = stage.path("weights.o");
    let blob_path = stage.path("weights.bin");

    // The kernel library (when the module calls kernels) compiles on its own thread, beside
    // the model code: both are independent LLVM modules, and this is most of the compile time
    // of a kernel-heavy model.
    let kernels_o = stage.path("kernels.o");
    let (object, kernels) = std::thread::scope(|scope| {
        let kernels = (!lowered.kernels.is_empty()).then(|| {
            scope.spawn(|| {
                let start = Instant::now();
                let names: Vec<&str> = lowered.kernels.iter().map(String::as_str).collect();
                let obj = kiln_codegen::kernels::compile_kernels(target, opts.opt_level, &names);
                (obj, start.elapsed())
            })
        });
        let object = timed(&mut art.timings, "codegen", || {
            Ok(kiln_codegen::emit_with_pipeline(
                &lowered.mlir,
                target,
                lowered.pipeline_hint,
                opts.opt_level,
                kiln_codegen::Emit::Obj,
            )?)
        });
        let kernels = kernels.map(|handle| {
            handle.join().unwrap_or_else(|_| {
                (
                    Err(kiln_codegen::CodegenError::KernelBitcode(
                        "the kernel compile thread panicked".into(),
                    )),
                    Duration::ZERO,
                )
            })
        });
        (object, kernels)
    });
    let object = object?;
    write_file(&kernel_o, &object)?;
    drop(object);

    let total = lowered.weights.total_bytes;
    let weights_name = companion(output, "weights", true);
    let weights_ref = match (total, opts.weights) {
        (0, _) => WeightsRef::None,
        (size, WeightsMode::Embedded) => WeightsRef::Embedded { size },
        (size, WeightsMode::External) => WeightsRef::External {
            file: weights_name
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    DriverError::Invalid(format!("bad output path {}", output.display()))
                })?,
            size,
        },
    };
    let model_name = if graph.name.is_empty() {
        output
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
    } else {
        graph.name.clone()
    };
    let producer = format!("kiln {}", env!("CARGO_PKG_VERSION"));
    let descriptor = Descriptor {
        model_name: &model_name.replace('\0', " "),
        producer: &producer,
        inputs: &lowered.inputs,
        outputs: &lowered.outputs,
        weights: weights_ref.clone(),
    };
    let glue = artifact::glue_module(&descriptor);
    let glue_obj = timed(&mut art.timings, "descriptor", || {
        Ok(kiln_codegen::emit_with_pipeline(
            &glue,
            target,
            "",
            opts.opt_level,
            kiln_codegen::Emit::Obj,
        )?)
    })?;
    write_file(&glue_o, &glue_obj)?;

    let mut objects = vec![kernel_o.clone(), glue_o.clone()];
    if let Some((obj, elapsed)) = kernels {
        art.timings.push(("kernels", elapsed));
        write_file(&kernels_o, &obj?)?;
        objects.push(kernels_o.clone());
    }
    timed(&mut art.timings, "weights", || {
        if total == 0 {
            return Ok(());
        }
        write_weights(graph, lowered, &blob_path)?;
        if opts.weights == WeightsMode::Embedded {
            let file = std::fs::File::open(&blob_path)
                .map_err(|e| DriverError::io("open", &blob_path, e))?;
            // SAFETY: the file is private to this compile (in the staging
            // directory) and not modified while mapped.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .map_err(|e| DriverError::io("map", &blob_path, e))?;
            kiln_codegen::write_data_object(&weights_o, target, WEIGHTS_SYMBOL, &map)?;
            drop(map);
            std::fs::remove_file(&blob_path)
                .map_err(|e| DriverError::io("remove", &blob_path, e))?;
            objects.push(weights_o.clone());
        }
        Ok(())
    })?;

    let header_name = companion(output, "h", false);
    let header = artifact::model_header(
        &descriptor,
        &header_name
            .file_name()
            .map_or_else(|| "model.h".into(), |n| n.to_string_lossy().into_owned()),
    );
    write_file(&stage.path("model.h"), header.as_bytes())?;

    // Staged file → final path, the main output last.
    let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    if matches!(weights_ref, WeightsRef::External { .. }) {
        moves.push((blob_path.clone(), weights_name));
    }
    moves.push((stage.path("model.h"), header_name));
    let main = stage.path("out");
    match opts.emit {
        Emit::Lib => {
            let mut inputs: Vec<PathBuf> = objects.clone();
            if let Some(builtins) = find_compiler_builtins(target) {
                inputs.push(builtins);
            }
            if let Some(libm) = find_libm(target) {
                inputs.push(libm);
            }
            let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
            timed(&mut art.timings, "link", || {
                Ok(kiln_codegen::link_shared_library(&refs, &main)?)
            })?;
        }
        Emit::Obj => {
            let refs: Vec<&Path> = objects.iter().map(PathBuf::as_path).collect();
            timed(&mut art.timings, "link", || relocatable_link(&refs, &main))?;
            let dir = output
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            write_file(&stage.path("kiln.h"), KILN_H.as_bytes())?;
            moves.push((stage.path("kiln.h"), dir.join("kiln.h")));
            if let Some(archive) = runtime_archive {
                let staged = stage.path(RUNTIME_ARCHIVE);
                std::fs::copy(&archive, &staged)
                    .map_err(|e| DriverError::io("copy", &archive, e))?;
                moves.push((staged, dir.join(RUNTIME_ARCHIVE)));
            }
        }
        _ => return Err(DriverError::Internal("not an artifact stage".into())),
    }
    moves.push((main, output.to_path_buf()));
    art.files = moves.iter().rev().map(|(_, to)| to.clone()).collect();
    stage.commit(&moves)
}

/// Combines objects into one relocatable object with `ld.lld -r`.
fn relocatable_link(objects: &[&Path], output: &Path) -> Result<()> {
    let linker = kiln_codegen::Linker::find()?;
    if linker.kind() != kiln_codegen::LinkerKind::Lld {
        return Err(DriverError::Unsupported(
            "--emit=obj needs ld.lld (LLVM 22's linker) to combine objects".into(),
        ));
    }
    let result = std::process::Command::new(linker.program())
        .arg("-r")
        .arg("-o")
        .arg(output)
        .args(objects)
        .output()
        .map_err(|e| DriverError::io("run", linker.program(), e))?;
    if !result.status.success() {
        return Err(DriverError::Internal(format!(
            "{} -r failed with {}:\n{}",
            linker.program().display(),
            result.status,
            String::from_utf8_lossy(&result.stderr)
        )));
    }
    Ok(())
}

/// The target's C math library, passed to the linker so that the library
/// records it as needed (the lowering calls libm for `erf`, `tanh`, ...).
/// `None` when this machine has no libm for the target (cross compiles):
/// the math symbols then stay undefined in the library, and the loading
/// program must have libm loaded (a Rust or C++ program usually has).
fn find_libm(target: &Target) -> Option<PathBuf> {
    let multiarch = match target.arch() {
        Arch::X86_64 => "x86_64-linux-gnu",
        Arch::Aarch64 => "aarch64-linux-gnu",
        _ => return None,
    };
    [
        format!("/lib/{multiarch}/libm.so.6"),
        format!("/usr/lib/{multiarch}/libm.so.6"),
        format!("/usr/{multiarch}/lib/libm.so.6"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// LLVM's compiler-rt builtins archive for the target: the code generator
/// calls its soft-float helpers (`__truncdfbf2` for f64 → bf16, ...) where
/// the CPU has no instruction, and the linker pulls in only the members
/// used. `None` when LLVM 22's builtins for the target are not installed;
/// a library needing them then fails to load, naming the symbol.
fn find_compiler_builtins(target: &Target) -> Option<PathBuf> {
    let arch = match target.arch() {
        Arch::X86_64 => "x86_64",
        Arch::Aarch64 => "aarch64",
        _ => return None,
    };
    // The LLVM that kiln-codegen was built against (`.cargo/config.toml`),
    // else Debian's LLVM 22 location.
    let prefix = option_env!("LLVM_SYS_221_PREFIX").unwrap_or("/usr/lib/llvm-22");
    let clang = Path::new(prefix).join("lib/clang");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(clang)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    // The newest resource directory first (`22`, or `22.1.0` on some
    // installs).
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join(format!("lib/linux/libclang_rt.builtins-{arch}.a")))
        .find(|p| p.is_file())
}

/// Finds `libkiln_runtime.a`: in `dir` when given, else in
/// `$KILN_RUNTIME_DIR`, else next to the running program (`<exe dir>`,
/// `<exe dir>/../lib`, `<exe dir>/kiln-c/lib`, `<exe dir>/../kiln-c/lib`, the
/// last two being where `runtime/scripts/build-c-lib.sh` puts it in a
/// cargo target directory).
pub fn find_runtime_archive(dir: Option<&Path>) -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = dir {
        candidates.push(dir.join(RUNTIME_ARCHIVE));
    } else {
        if let Some(dir) = std::env::var_os("KILN_RUNTIME_DIR") {
            candidates.push(PathBuf::from(dir).join(RUNTIME_ARCHIVE));
        }
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            for rel in [
                ".",
                "../lib",
                "kiln-c/lib",
                "../kiln-c/lib",
                "../../kiln-c/lib",
            ] {
                candidates.push(exe_dir.join(rel).join(RUNTIME_ARCHIVE));
            }
        }
    }
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        DriverError::Invalid(format!(
            "{RUNTIME_ARCHIVE} not found (looked at {}); build it with runtime/scripts/build-c-lib.sh \
             and set KILN_RUNTIME_DIR to its lib/ directory",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_codegen::kernels::{Kernel, Variant};

    /// The names `llvm-nm-22` lists in `path`, with their type letters.
    fn symbols(path: &Path) -> String {
        let out = std::process::Command::new("llvm-nm-22")
            .arg(path)
            .output()
            .expect("LLVM 22 tools are installed");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The kernels the lowering asks for are compiled for the target and linked into both
    /// artifact forms, with hidden (local) visibility; other kernels are not.
    #[test]
    fn artifacts_link_the_kernels_the_lowering_calls() {
        let src = "graph @g(%x: tensor<4xf32>) -> (tensor<4xf32>) {\n  \
                   %y = nn.relu %x : tensor<4xf32>\n  return %y\n}\n";
        let graph = kiln_ir::text::parse(src, "g.kir", None).unwrap().graph;
        let mut lowered = lower_graph(&graph, &LowerOptions::default()).unwrap();
        assert!(
            lowered.kernels.is_empty(),
            "the lowering calls no kernel yet"
        );
        let used = Kernel::Softmax.symbol(Variant::W8R16);
        lowered.kernels.push(used.clone());
        let dir = tempfile::tempdir().unwrap();
        // --emit=obj copies the runtime archive next to the object; any file stands in.
        std::fs::write(dir.path().join(RUNTIME_ARCHIVE), b"!<arch>\n").unwrap();
        let target = Target::parse("x86-64-v3").unwrap();
        for emit in [Emit::Lib, Emit::Obj] {
            let output = dir
                .path()
                .join(if emit == Emit::Lib { "m.so" } else { "m.o" });
            let mut opts = CompileOptions::new(target.clone(), Some(output.clone()));
            opts.emit = emit;
            opts.runtime_dir = Some(dir.path().to_path_buf());
            let mut art = Artifacts::default();
            build_artifact(&graph, &lowered, &opts, &output, &mut art).unwrap();
            let syms = symbols(&output);
            let line = syms
                .lines()
                .find(|l| l.ends_with(&format!(" {used}")))
                .unwrap_or_else(|| panic!("{used} missing from {emit:?}:\n{syms}"));
            // Hidden: local in a shared library, hidden-global in a relocatable object.
            if emit == Emit::Lib {
                assert!(line.contains(" t "), "{line}");
            }
            assert!(!syms.contains("kiln_k_gemm"), "unused kernels were linked");
            assert!(art.timings.iter().any(|(stage, _)| *stage == "kernels"));
        }
    }
}
