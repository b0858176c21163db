//! Reading inputs (a path or `-` for stdin) and writing outputs atomically.
//!
//! Invariant: an output file is either fully written or untouched. Data goes
//! to a temporary file in the destination's folder (so the final rename
//! does not cross file systems) and is renamed over the destination only
//! after every byte was written and flushed; on any failure the temporary
//! file is removed and the destination is left as it was.

use crate::error::{CliError, Code};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// An input's text plus how to name it and where `file<...>` weights
/// resolve.
pub struct Input {
    /// The text.
    pub text: String,
    /// The name shown in diagnostics.
    pub name: String,
    /// The folder relative weight files resolve against.
    pub base_dir: PathBuf,
}

/// Reads `path`, or stdin for `-`.
pub fn read_input(path: &Path) -> Result<Input, CliError> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::new(Code::Io, format!("cannot read stdin: {e}")))?;
        return Ok(Input {
            text,
            name: "<stdin>".into(),
            base_dir: PathBuf::from("."),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| {
        // Any failure to read a file the user named is about that file,
        // except running out of memory.
        let code = match crate::error::io_code(&e) {
            Code::ResourceLimit => Code::ResourceLimit,
            _ => Code::File,
        };
        CliError::at_file(code, format!("cannot read {}: {e}", path.display()), path)
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        CliError::at_file(
            Code::File,
            format!("{} is not UTF-8 text: {e}", path.display()),
            path,
        )
    })?;
    Ok(Input {
        text,
        name: path.display().to_string(),
        base_dir: path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    })
}

/// Writes `data` to `path` atomically, or to stdout when `path` is `None`
/// or `-`.
pub fn write_output(path: Option<&Path>, data: &[u8]) -> Result<(), CliError> {
    let Some(path) = path.filter(|p| *p != Path::new("-")) else {
        let mut out = std::io::stdout().lock();
        return match out.write_all(data).and_then(|()| out.flush()) {
            // The reader went away (`kiln opt x | head`): not our failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|e| CliError::io("cannot write to stdout", &e)),
        };
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |e: &std::io::Error| {
        CliError::at_file(
            crate::error::io_code(e),
            format!("cannot write {}: {e}", path.display()),
            path,
        )
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-tmp-")
        .tempfile_in(dir)
        .map_err(|e| fail(&e))?;
    tmp.write_all(data)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| fail(&e))?;
    tmp.persist(path).map_err(|e| fail(&e.error))?;
    Ok(())
}

/// The ONNX test set bundled beside a model (`test_data_set_0` holding
/// `input_0.pb` in the model's folder), if it has one.
pub fn bundled_test_set(model: &Path) -> Option<PathBuf> {
    let set = model
        .parent()
        .unwrap_or(Path::new("."))
        .join("test_data_set_0");
    set.join("input_0.pb").is_file().then_some(set)
}
