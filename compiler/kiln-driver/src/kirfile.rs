//! Writing a graph as a `.kir` file that compiles again: weights larger
//! than the inline limit go to `<file>.weights` beside it (64-byte aligned,
//! `kiln_onnx::weights_file`), and the text names them relative to the new
//! file, so the pair can be moved together and `kiln compile` of the written
//! `.kir` produces the same artifact as compiling the original model.
//!
//! Invariant: both files are staged next to their destinations and renamed
//! only after both were written, weights first, so a `.kir` never points at
//! a missing or partial side file and a failure leaves neither.

use crate::error::{DriverError, Result};
use kiln_ir::text::{print_with, PrintOptions};
use kiln_ir::Graph;
use kiln_onnx::weights_file;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The side file of `kir`: its file name plus `.weights`.
pub fn side_file(kir: &Path) -> Result<PathBuf> {
    let name = kir
        .file_name()
        .ok_or_else(|| DriverError::Invalid(format!("{}: not a file name", kir.display())))?;
    let mut s = name.to_os_string();
    s.push(".weights");
    Ok(kir.with_file_name(s))
}

/// A temporary file beside `dest` (mode 0644 less the umask).
fn staged(dest: &Path) -> Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".kiln-tmp-")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| DriverError::io("create a file in", dir, e))
}

fn fill(
    tmp: &mut tempfile::NamedTempFile,
    dest: &Path,
    f: impl FnOnce(&mut BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
    f(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| DriverError::io("write", dest, e))?;
    drop(w);
    tmp.as_file()
        .sync_all()
        .map_err(|e| DriverError::io("write", dest, e))
}

/// Writes `graph` to `path` (and its large weights to [`side_file`]);
/// returns the files written, the `.kir` first.
pub fn write_kir(graph: &Graph, path: &Path, inline_limit: usize) -> Result<Vec<PathBuf>> {
    let side = side_file(path)?;
    let side_name = PathBuf::from(side.file_name().unwrap_or_default());
    let layout = weights_file::plan(graph, inline_limit);
    let with_sources;
    let graph = if layout.is_empty() {
        graph
    } else {
        with_sources = weights_file::with_sources(graph, &layout, &side_name);
        &with_sources
    };
    let text = print_with(graph, &PrintOptions { inline_limit });
    let mut kir = staged(path)?;
    fill(&mut kir, path, |w| w.write_all(text.as_bytes()))?;
    let mut files = vec![path.to_path_buf()];
    if !layout.is_empty() {
        let mut weights = staged(&side)?;
        fill(&mut weights, &side, |w| {
            weights_file::write(graph, &layout, w).map(|_| ())
        })?;
        weights
            .persist(&side)
            .map_err(|e| DriverError::io("write", &side, e.error))?;
        files.push(side);
    }
    kir.persist(path)
        .map_err(|e| DriverError::io("write", path, e.error))?;
    Ok(files)
}
