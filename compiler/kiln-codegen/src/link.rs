//! Linking objects into a shared library.
//!
//! Invariants:
//! - The output appears complete or not at all: the linker writes a temporary file in the output
//!   directory, which is renamed over the output only after the linker succeeded.
//! - `ld.lld-22` is preferred: it links every architecture Kiln targets (cross-linking AArch64 on
//!   an x86-64 machine) and its output is deterministic. The system `cc` is a fallback for the host.
//! - Libraries are linked without libc on the command line: symbols such as `memcpy` that
//!   generated code may call stay undefined and are bound by the dynamic loader at `dlopen` time.

use crate::error::{CodegenError, Result};
use crate::fsutil::{new_temp_file, persist};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Linkers looked for, in order of preference. Bare names are searched on `PATH`.
const CANDIDATES: [(&str, LinkerKind); 4] = [
    ("ld.lld-22", LinkerKind::Lld),
    ("/usr/lib/llvm-22/bin/ld.lld", LinkerKind::Lld),
    ("ld.lld", LinkerKind::Lld),
    ("cc", LinkerKind::CcDriver),
];

/// How a linker is invoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkerKind {
    /// LLVM's linker, called directly.
    Lld,
    /// A C compiler driver (`cc`), which calls the system linker.
    CcDriver,
}

/// A linker program found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linker {
    program: PathBuf,
    kind: LinkerKind,
}

impl Linker {
    /// Finds the preferred linker (see the module documentation).
    pub fn find() -> Result<Self> {
        CANDIDATES
            .iter()
            .find_map(|&(name, kind)| find_program(name).map(|program| Linker { program, kind }))
            .ok_or_else(|| CodegenError::LinkerNotFound {
                tried: CANDIDATES.map(|(name, _)| name).join(", "),
            })
    }

    /// A specific linker program.
    pub fn new(program: impl Into<PathBuf>, kind: LinkerKind) -> Self {
        Self {
            program: program.into(),
            kind,
        }
    }

    /// The program that is run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// How it is invoked.
    pub fn kind(&self) -> LinkerKind {
        self.kind
    }

    /// Links `objects` into the shared library `output` (written atomically, mode 0755).
    pub fn link_shared(&self, objects: &[&Path], output: &Path) -> Result<()> {
        let temp = new_temp_file(output)?.into_temp_path();
        let mut command = Command::new(&self.program);
        command
            .args(self.flags())
            .arg("-o")
            .arg(&temp)
            .args(objects);
        let result = command.output().map_err(|source| CodegenError::Io {
            action: "run linker",
            path: self.program.clone(),
            source,
        })?;
        if !result.status.success() {
            return Err(CodegenError::LinkFailed {
                linker: self.program.display().to_string(),
                status: result.status,
                stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
            });
        }
        persist(temp, output, 0o755)
    }

    fn flags(&self) -> Vec<OsString> {
        let flags: &[&str] = match self.kind {
            // Hardened, deterministic defaults: no executable stack, read-only relocations after
            // load, eager binding (startup cost is small, and missing symbols fail at dlopen).
            LinkerKind::Lld => &[
                "-shared",
                "--eh-frame-hdr",
                "-z",
                "noexecstack",
                "-z",
                "relro",
                "-z",
                "now",
            ],
            LinkerKind::CcDriver => &[
                "-shared",
                "-nostartfiles",
                "-Wl,-z,noexecstack,-z,relro,-z,now",
            ],
        };
        flags.iter().map(OsString::from).collect()
    }
}

/// Links `objects` into the shared library `output` with the preferred linker.
pub fn link_shared_library(objects: &[&Path], output: &Path) -> Result<()> {
    Linker::find()?.link_shared(objects, output)
}

/// Resolves a program name like a shell would: paths are taken as they are, bare names are
/// searched on `PATH`. Returns `None` if no executable file is found.
fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path_var = std::env::var_os("PATH")?;
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lld_first() {
        let linker = Linker::find().unwrap();
        assert_eq!(
            linker.kind(),
            LinkerKind::Lld,
            "ld.lld-22 is installed by scripts/setup.sh"
        );
    }

    #[test]
    fn failed_link_leaves_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.o");
        std::fs::write(&bad, b"not an object").unwrap();
        let out = dir.path().join("lib.so");
        let error = link_shared_library(&[&bad], &out).unwrap_err();
        assert!(matches!(error, CodegenError::LinkFailed { .. }), "{error}");
        // Neither the output nor the temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("bad.o")]);
    }

    #[test]
    fn missing_program_is_not_found() {
        assert_eq!(find_program("kiln-no-such-linker"), None);
        assert_eq!(find_program("/nonexistent/ld"), None);
    }
}
