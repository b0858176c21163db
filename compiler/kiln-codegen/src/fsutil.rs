//! Atomic file output: a reader never sees a half-written artifact.

use crate::error::{CodegenError, Result};
use std::fs::File;
use std::path::Path;

/// Creates a temporary file next to `path`, lets `write` fill it, then renames it over `path`.
///
/// On any error the temporary file is removed and `path` is left untouched. The temporary file
/// is in the same directory so that the rename stays on one file system (and is atomic).
pub(crate) fn write_atomically(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let mut temp = new_temp_file(path)?;
    write(temp.as_file_mut())?;
    persist(temp.into_temp_path(), path, mode)
}

/// A temporary file in the directory of `path`, deleted on drop unless persisted.
pub(crate) fn new_temp_file(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".kiln-tmp-")
        .tempfile_in(dir)
        .map_err(|source| CodegenError::Io {
            action: "create a temporary file in",
            path: dir.to_owned(),
            source,
        })
}

/// Gives a finished temporary file its final permissions and renames it to `path`.
///
/// Temporary files are created private (0600); artifacts get ordinary modes (0644, or 0755 for
/// shared libraries), subject to nothing else: the umask applies only at creation.
pub(crate) fn persist(temp: tempfile::TempPath, path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        CodegenError::Io {
            action: "set permissions of",
            path: temp.to_path_buf(),
            source,
        }
    })?;
    temp.persist(path).map_err(|error| CodegenError::Io {
        action: "rename a temporary file to",
        path: path.to_owned(),
        source: error.error,
    })
}
