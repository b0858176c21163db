//! `kiln import`: convert an ONNX model to Kiln IR text plus a weights side
//! file.
//!
//! ```text
//! kiln import model.onnx -o model.kir [--input-shape x=1x3x224x224]... [--inline-weights 64]
//! ```
//!
//! Weights of at most `--inline-weights` bytes are printed inline; every
//! larger one is streamed from the model's memory map into
//! `model.kir.weights` (next to `-o`) at a 64-byte aligned offset, and the
//! text refers to it as `file<"model.kir.weights", offset = N>`, so
//! `kiln opt model.kir` reads it back without copying.
//!
//! Invariant: both files are written to temporary files in the output's
//! folder and renamed only when everything succeeded; a failure leaves
//! neither behind (and the outputs of an earlier run untouched).
//!
//! Also home of what other subcommands share for `.onnx` inputs: the
//! `--input-shape` option ([`InputShapeArgs`]) and the mapping of frontend
//! errors to exit codes ([`onnx_error`]).

use crate::error::{CliError, ExitClass};
use clap::Args;
use kiln_ir::text::{print_with, PrintOptions};
use kiln_onnx::import::ImportOptions;
use kiln_onnx::{weights_file, ErrorKind, OnnxError};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// `--input-shape NAME=DIMS`, repeatable; shared by every subcommand that
/// reads `.onnx` files.
#[derive(Debug, Args, Clone, Default)]
pub struct InputShapeArgs {
    /// Fix an input's shape, e.g. `x=1x3x224x224` (repeatable). Symbolic
    /// extents it binds (such as `batch`) are substituted in every input.
    #[arg(long = "input-shape", value_name = "NAME=DIMS", value_parser = kiln_onnx::parse_input_shape)]
    pub input_shapes: Vec<(String, Vec<u64>)>,
}

impl InputShapeArgs {
    /// Import options with these shapes; a name given twice is a usage error.
    pub fn import_options(&self) -> Result<ImportOptions, CliError> {
        let mut shapes = BTreeMap::new();
        for (name, dims) in &self.input_shapes {
            if shapes.insert(name.clone(), dims.clone()).is_some() {
                return Err(CliError::new(
                    ExitClass::Invalid,
                    format!("--input-shape given twice for input '{name}'"),
                ));
            }
        }
        Ok(ImportOptions {
            input_shapes: shapes,
            ..ImportOptions::default()
        })
    }
}

/// A frontend error with its exit class (the message names file and node).
pub fn onnx_error(e: OnnxError) -> CliError {
    let class = match e.kind() {
        ErrorKind::InvalidInput => ExitClass::Invalid,
        ErrorKind::Unsupported => ExitClass::Unsupported,
        ErrorKind::ResourceLimit => ExitClass::Resource,
    };
    CliError::new(class, e.to_string())
}

/// Arguments of `kiln import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The ONNX model.
    pub model: PathBuf,

    /// Output .kir file; large weights go to `<OUTPUT>.weights` beside it.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    #[command(flatten)]
    pub shapes: InputShapeArgs,

    /// Print weights of at most this many bytes inline; larger ones go to
    /// the weights side file.
    #[arg(long, value_name = "BYTES", default_value_t = PrintOptions::default().inline_limit)]
    pub inline_weights: usize,
}

/// The side file's name: the output's file name plus `.weights`.
fn side_file_name(output: &Path) -> Result<PathBuf, CliError> {
    if output == Path::new("-") {
        return Err(CliError::new(
            ExitClass::Invalid,
            "-o must name a file: the weights side file is written next to it",
        ));
    }
    let name = output.file_name().ok_or_else(|| {
        CliError::new(
            ExitClass::Invalid,
            format!("-o {}: not a file name", output.display()),
        )
    })?;
    let mut s = name.to_os_string();
    s.push(".weights");
    Ok(PathBuf::from(s))
}

/// A temporary file beside `dest`, renamed over it by [`Staged::commit`]
/// and removed if dropped uncommitted.
struct Staged {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Staged {
    fn new(dest: &Path) -> Result<Staged, CliError> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Temporary files are created 0600; outputs get the usual 0644
        // (less the umask, which open(2) applies).
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::Builder::new()
            .prefix(".kiln-tmp-")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(dir)
            .map_err(|e| CliError::io(format!("cannot write {}", dest.display()), &e))?;
        Ok(Staged {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// Runs `f` on a buffered writer, then flushes and syncs.
    fn write_with(
        &mut self,
        f: impl FnOnce(&mut BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
    ) -> Result<(), CliError> {
        let what = || format!("cannot write {}", self.dest.display());
        let mut w = BufWriter::with_capacity(1 << 20, self.tmp.as_file_mut());
        f(&mut w)
            .and_then(|()| w.flush())
            .map_err(|e| CliError::io(what(), &e))?;
        drop(w);
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| CliError::io(what(), &e))
    }

    fn commit(self) -> Result<(), CliError> {
        let dest = self.dest;
        self.tmp
            .persist(&dest)
            .map_err(|e| CliError::io(format!("cannot write {}", dest.display()), &e.error))?;
        Ok(())
    }
}

/// Runs `kiln import`.
pub fn run(args: ImportArgs) -> Result<(), CliError> {
    let opts = args.shapes.import_options()?;
    let side_name = side_file_name(&args.output)?;
    tracing::info!(model = %args.model.display(), output = %args.output.display(), "import");
    let graph = kiln_onnx::import_file(&args.model, &opts).map_err(onnx_error)?;
    if let Err(errs) = kiln_ir::verify(&graph) {
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        return Err(CliError::new(
            ExitClass::Internal,
            format!(
                "{}: the imported graph does not verify (a bug in Kiln's importer):\n{}",
                args.model.display(),
                msgs.join("\n")
            ),
        ));
    }
    let layout = weights_file::plan(&graph, args.inline_weights);
    let graph = if layout.is_empty() {
        graph
    } else {
        weights_file::with_sources(&graph, &layout, &side_name)
    };
    let text = print_with(
        &graph,
        &PrintOptions {
            inline_limit: args.inline_weights,
        },
    );

    // Stage both files, then rename: weights first, so that a .kir never
    // points at a missing or partial weights file.
    let mut kir = Staged::new(&args.output)?;
    kir.write_with(|w| w.write_all(text.as_bytes()))?;
    if !layout.is_empty() {
        let side_path = args.output.with_file_name(&side_name);
        let mut weights = Staged::new(&side_path)?;
        let mut written = 0;
        weights.write_with(|w| {
            written = weights_file::write(&graph, &layout, w)?;
            Ok(())
        })?;
        tracing::info!(bytes = written, file = %side_path.display(), "wrote weights");
        weights.commit()?;
    }
    kir.commit()
}
