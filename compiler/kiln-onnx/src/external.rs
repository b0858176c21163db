//! External tensor data (`data_location = EXTERNAL`).
//!
//! Invariants:
//! - A `location` is a relative path that stays inside the model's folder:
//!   absolute paths, `..` components, symlinks anywhere below the folder and
//!   non-regular files are refused, and the canonical path must lie inside
//!   the canonical model folder (a second line of defence).
//! - Each external file is memory-mapped once and shared by every tensor in
//!   it; tensors get sub-[`Blob`]s of the map, so weights are never read
//!   into RAM by the loader.

use crate::error::{Ctx, OnnxError};
use kiln_ir::Blob;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Where external data may come from.
pub(crate) struct ExternalData {
    /// The model's folder; `None` when the model was loaded from memory, in
    /// which case external data is refused.
    base: Option<PathBuf>,
    /// Canonical base folder, computed on first use.
    canonical_base: Option<PathBuf>,
    /// One map per canonical file path.
    maps: HashMap<PathBuf, Blob>,
}

/// The parsed `external_data` entries of one tensor.
pub(crate) struct ExternalRef<'a> {
    pub(crate) location: &'a str,
    pub(crate) offset: u64,
    pub(crate) length: Option<u64>,
}

impl ExternalData {
    pub(crate) fn new(base: Option<PathBuf>) -> ExternalData {
        ExternalData {
            base,
            canonical_base: None,
            maps: HashMap::new(),
        }
    }

    /// The external-data files mapped so far (canonical paths, sorted).
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.maps.keys().cloned().collect();
        files.sort();
        files
    }

    /// Returns the `expected` bytes of `what`'s external data.
    pub(crate) fn fetch(
        &mut self,
        ctx: &Ctx,
        what: &str,
        r: &ExternalRef<'_>,
        expected: u64,
    ) -> Result<Blob, OnnxError> {
        let Some(base) = self.base.clone() else {
            return Err(ctx.unsupported(
                what,
                "external data is not available for a model loaded from memory",
            ));
        };
        let relative = checked_relative(ctx, what, r.location)?;
        let path = base.join(&relative);
        check_components(ctx, what, &base, &relative)?;

        let canonical_base = match &self.canonical_base {
            Some(b) => b.clone(),
            None => {
                let b = base
                    .canonicalize()
                    .map_err(|source| OnnxError::ExternalIo {
                        file: ctx.file.clone(),
                        context: what.to_string(),
                        location: base.clone(),
                        source,
                    })?;
                self.canonical_base = Some(b.clone());
                b
            }
        };
        let io_err = |source| OnnxError::ExternalIo {
            file: ctx.file.clone(),
            context: what.to_string(),
            location: path.clone(),
            source,
        };
        let canonical = path.canonicalize().map_err(io_err)?;
        if !canonical.starts_with(&canonical_base) {
            return Err(ctx.invalid(
                what,
                format!(
                    "external data location '{}' resolves outside the model folder",
                    r.location
                ),
            ));
        }

        let blob = match self.maps.get(&canonical) {
            Some(b) => b.clone(),
            None => {
                let b = map_file(ctx, what, r.location, &canonical).map_err(|e| match e {
                    MapError::Io(source) => OnnxError::ExternalIo {
                        file: ctx.file.clone(),
                        context: what.to_string(),
                        location: path.clone(),
                        source,
                    },
                    MapError::Other(e) => e,
                })?;
                self.maps.insert(canonical, b.clone());
                b
            }
        };

        let file_len = blob.len() as u64;
        if r.offset > file_len {
            return Err(ctx.invalid(
                what,
                format!(
                    "external data offset {} is past the end of '{}' ({} bytes)",
                    r.offset, r.location, file_len
                ),
            ));
        }
        let length = r.length.unwrap_or(file_len - r.offset);
        let end = r.offset.checked_add(length);
        if end.is_none_or(|end| end > file_len) {
            return Err(ctx.invalid(
                what,
                format!(
                    "external data range offset {} length {} is outside '{}' ({} bytes)",
                    r.offset, length, r.location, file_len
                ),
            ));
        }
        if length != expected {
            return Err(ctx.invalid(
                what,
                format!(
                    "external data length {length} does not match the {expected} bytes its type and shape need"
                ),
            ));
        }
        // Both fit in usize: they are bounded by the mapped length.
        blob.slice(r.offset as usize, length as usize)
            .ok_or_else(|| ctx.invalid(what, "external data range is outside the mapped file"))
    }
}

/// Validates the `location` string and returns it as a relative path.
fn checked_relative(ctx: &Ctx, what: &str, location: &str) -> Result<PathBuf, OnnxError> {
    if location.is_empty() {
        return Err(ctx.invalid(what, "external data has an empty location"));
    }
    if location.contains('\0') {
        return Err(ctx.invalid(what, "external data location contains a NUL byte"));
    }
    // Check both separators so that a Windows-style `..\\x` or `C:\\x` is
    // refused on every host, not only where `\\` is a separator.
    let looks_absolute = location.starts_with('/')
        || location.starts_with('\\')
        || location.as_bytes().get(1) == Some(&b':');
    if looks_absolute || Path::new(location).is_absolute() {
        return Err(ctx.invalid(
            what,
            format!("external data location '{location}' is an absolute path"),
        ));
    }
    if location.split(['/', '\\']).any(|c| c == "..") {
        return Err(ctx.invalid(
            what,
            format!("external data location '{location}' contains a '..' component"),
        ));
    }
    let mut out = PathBuf::new();
    for c in Path::new(location).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(ctx.invalid(
                    what,
                    format!("external data location '{location}' is not a plain relative path"),
                ))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(ctx.invalid(
            what,
            format!("external data location '{location}' names no file"),
        ));
    }
    Ok(out)
}

/// Refuses symlinks on every component below `base`, directories as the
/// final component, and anything that is not a regular file.
fn check_components(ctx: &Ctx, what: &str, base: &Path, relative: &Path) -> Result<(), OnnxError> {
    let mut cur = base.to_path_buf();
    let count = relative.components().count();
    for (i, c) in relative.components().enumerate() {
        cur.push(c);
        let meta = std::fs::symlink_metadata(&cur).map_err(|source| OnnxError::ExternalIo {
            file: ctx.file.clone(),
            context: what.to_string(),
            location: cur.clone(),
            source,
        })?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            return Err(ctx.invalid(
                what,
                format!(
                    "external data path '{}' goes through a symlink, which is not allowed",
                    cur.display()
                ),
            ));
        }
        let last = i + 1 == count;
        if last && !ft.is_file() {
            return Err(ctx.invalid(
                what,
                format!(
                    "external data location '{}' is not a regular file",
                    cur.display()
                ),
            ));
        }
        if !last && !ft.is_dir() {
            return Err(ctx.invalid(
                what,
                format!("external data path '{}' is not a directory", cur.display()),
            ));
        }
    }
    Ok(())
}

enum MapError {
    Io(std::io::Error),
    Other(OnnxError),
}

fn map_file(ctx: &Ctx, what: &str, location: &str, path: &Path) -> Result<Blob, MapError> {
    let file = File::open(path).map_err(MapError::Io)?;
    // Re-check on the open handle: the path checks above could race with a
    // rename, the handle cannot.
    let meta = file.metadata().map_err(MapError::Io)?;
    if !meta.is_file() {
        return Err(MapError::Other(ctx.invalid(
            what,
            format!("external data location '{location}' is not a regular file"),
        )));
    }
    if usize::try_from(meta.len()).is_err() {
        return Err(MapError::Other(ctx.limit(
            what,
            format!("external data file '{location}' does not fit in the address space"),
        )));
    }
    if meta.len() == 0 {
        return Ok(Blob::from_vec(Vec::new()));
    }
    // SAFETY: the map is read-only. Like every memory-mapping loader we rely
    // on the file not being truncated or rewritten while the model is in use;
    // that is documented for `load_model`.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(MapError::Io)?;
    Ok(Blob::from_owner(Arc::new(map)))
}
