//! Linking objects into a shared library.
//!
//! Invariants:
//! - The output appears complete or not at all: the linker writes a temporary file in the output
//!   directory, which is renamed over the output only after the linker succeeded.
//! - `ld.lld-22` is preferred: it links every architecture Kiln targets (cross-linking AArch64 on
//!   an x86-64 machine) and its output is deterministic. The system `cc` is a fallback for the host.
//! - Libraries are linked without libc on the command line: symbols such as `memcpy` that
//!   generated code may call stay undefined and are bound by the dynamic loader at `dlopen` time.
//! - Every library records `NEEDED libm.so.6`: generated code calls libm (`erff`, `tanhf`, ...),
//!   and a library must not rely on its host process having loaded libm. The target's own
//!   `libm.so.6` is linked when it is installed (its symbol versions are then recorded); else,
//!   when cross-linking without a sysroot, an empty stub with that soname, built on the fly for
//!   the objects' architecture, supplies the entry.

use crate::error::{CodegenError, Result};
use crate::fsutil::{new_temp_file, persist};
use object::{Architecture, BinaryFormat, Endianness, Object as _};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The soname every Kiln library depends on.
const LIBM: &str = "libm.so.6";

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
    /// With `exports`, only those symbols are exported (a version script makes every
    /// other symbol local); with none, every default-visibility global is.
    pub fn link_shared(&self, objects: &[&Path], output: &Path, exports: &[&str]) -> Result<()> {
        let temp = new_temp_file(output)?.into_temp_path();
        // Holds the version script until the link is done.
        let script_dir = tempfile::tempdir().map_err(|source| CodegenError::Io {
            action: "create a temporary directory for",
            path: PathBuf::from("a version script"),
            source,
        })?;
        let mut export_args: Vec<OsString> = Vec::new();
        if !exports.is_empty() {
            let script = script_dir.path().join("exports.map");
            let text = format!("{{\n  global: {};\n  local: *;\n}};\n", exports.join("; "));
            std::fs::write(&script, text).map_err(|source| CodegenError::Io {
                action: "write",
                path: script.clone(),
                source,
            })?;
            let mut arg = OsString::from(match self.kind {
                LinkerKind::Lld => "--version-script=",
                LinkerKind::CcDriver => "-Wl,--version-script=",
            });
            arg.push(&script);
            export_args.push(arg);
        }
        // Holds a libm stub, when one is needed, until the link is done.
        let stub_dir;
        let libm: Vec<OsString> = match self.kind {
            LinkerKind::CcDriver => vec!["-lm".into()],
            LinkerKind::Lld => match objects_arch(objects) {
                None => Vec::new(),
                Some(arch) => {
                    let lib = match find_libm(arch) {
                        Some(lib) => lib,
                        None => {
                            stub_dir = tempfile::tempdir().map_err(|source| CodegenError::Io {
                                action: "create a temporary directory for",
                                path: PathBuf::from(LIBM),
                                source,
                            })?;
                            self.libm_stub(arch, stub_dir.path())?
                        }
                    };
                    // Recorded even if no symbol of it is referenced yet.
                    vec!["--no-as-needed".into(), lib.into_os_string()]
                }
            },
        };
        let mut command = Command::new(&self.program);
        command
            .args(self.flags())
            .arg("-o")
            .arg(&temp)
            .args(objects)
            .args(libm)
            .args(export_args);
        self.run(command)?;
        persist(temp, output, 0o755)
    }

    /// Runs a linker command, turning a failure into [`CodegenError::LinkFailed`].
    fn run(&self, mut command: Command) -> Result<()> {
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
        Ok(())
    }

    /// Builds, in `dir`, an empty shared library of architecture `arch` whose soname is
    /// `libm.so.6`: linking against it records the dependency without the target's libm.
    fn libm_stub(&self, arch: Architecture, dir: &Path) -> Result<PathBuf> {
        let obj = dir.join("empty.o");
        let bytes = object::write::Object::new(BinaryFormat::Elf, arch, Endianness::Little)
            .write()
            .map_err(|e| CodegenError::Io {
                action: "build",
                path: obj.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        std::fs::write(&obj, bytes).map_err(|source| CodegenError::Io {
            action: "write",
            path: obj.clone(),
            source,
        })?;
        let lib = dir.join(LIBM);
        let mut command = Command::new(&self.program);
        command
            .args(["-shared", "-soname", LIBM, "-o"])
            .arg(&lib)
            .arg(&obj);
        self.run(command)?;
        Ok(lib)
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

/// Links `objects` into the shared library `output` with the preferred linker, exporting
/// only `exports` (every global when empty).
pub fn link_shared_library(objects: &[&Path], output: &Path, exports: &[&str]) -> Result<()> {
    Linker::find()?.link_shared(objects, output, exports)
}

/// `ld64.lld` (LLVM's Mach-O linker) programs looked for, in order.
const LD64_CANDIDATES: [&str; 3] = ["ld64.lld-22", "/usr/lib/llvm-22/bin/ld64.lld", "ld64.lld"];

/// Links Mach-O objects for arm64 macOS into a dylib exporting only `export` (the host part
/// of Metal artifacts). Without an SDK on the build machine nothing is linked against
/// libSystem: undefined symbols (`memcpy`, ...) are bound when the dylib is loaded
/// (`-undefined dynamic_lookup`).
pub fn link_macho_dylib(objects: &[&Path], output: &Path, export: &str) -> Result<()> {
    let program = LD64_CANDIDATES
        .iter()
        .find_map(|name| find_program(name))
        .ok_or_else(|| CodegenError::LinkerNotFound {
            tried: LD64_CANDIDATES.join(", "),
        })?;
    let temp = new_temp_file(output)?.into_temp_path();
    let mut command = Command::new(&program);
    command
        .args([
            "-arch",
            "arm64",
            "-platform_version",
            "macos",
            "11.0.0",
            "11.0.0",
        ])
        .args(["-dylib", "-undefined", "dynamic_lookup"])
        .arg("-exported_symbol")
        .arg(format!("_{export}"))
        .arg("-o")
        .arg(&temp)
        .args(objects);
    Linker {
        program,
        kind: LinkerKind::Lld,
    }
    .run(command)?;
    persist(temp, output, 0o755)
}

/// `llvm-objcopy` programs looked for, in order.
const OBJCOPY_CANDIDATES: [&str; 3] = [
    "llvm-objcopy-22",
    "/usr/lib/llvm-22/bin/llvm-objcopy",
    "llvm-objcopy",
];

/// Makes every defined global symbol of the relocatable object `object` local except
/// `keep` (undefined references stay), in place: hidden and default-visibility
/// helpers alike (kernels, the OpenMP shim, `kiln_main`, the weights) can then
/// never clash with another model's object or with the program linking it.
pub fn localize_except(object: &Path, keep: &[&str]) -> Result<()> {
    let program = OBJCOPY_CANDIDATES
        .iter()
        .find_map(|name| find_program(name))
        .ok_or_else(|| CodegenError::LinkerNotFound {
            tried: OBJCOPY_CANDIDATES.join(", "),
        })?;
    let mut command = Command::new(&program);
    for sym in keep {
        command.arg(format!("--keep-global-symbol={sym}"));
    }
    command.arg(object);
    Linker::new(program, LinkerKind::Lld).run(command)
}

/// The architecture of the first input that parses as an object file.
fn objects_arch(objects: &[&Path]) -> Option<Architecture> {
    objects.iter().find_map(|path| {
        let data = std::fs::read(path).ok()?;
        let file = object::File::parse(&*data).ok()?;
        Some(file.architecture()).filter(|a| *a != Architecture::Unknown)
    })
}

/// The installed `libm.so.6` of `arch` (Debian multiarch paths, then a cross sysroot).
fn find_libm(arch: Architecture) -> Option<PathBuf> {
    let multiarch = match arch {
        Architecture::X86_64 => "x86_64-linux-gnu",
        Architecture::Aarch64 => "aarch64-linux-gnu",
        _ => return None,
    };
    [
        format!("/lib/{multiarch}/{LIBM}"),
        format!("/usr/lib/{multiarch}/{LIBM}"),
        format!("/usr/{multiarch}/lib/{LIBM}"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
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
        let error = link_shared_library(&[&bad], &out, &[]).unwrap_err();
        assert!(matches!(error, CodegenError::LinkFailed { .. }), "{error}");
        // Neither the output nor the temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("bad.o")]);
    }

    /// The `DT_NEEDED` entries of an ELF shared library.
    fn needed(path: &Path) -> Vec<String> {
        use object::read::elf::{Dyn as _, ElfFile64};
        let data = std::fs::read(path).unwrap();
        let elf = ElfFile64::<Endianness>::parse(&*data).unwrap();
        let endian = elf.endian();
        let sections = elf.elf_section_table();
        let (dyns, link) = sections
            .dynamic(endian, &*data)
            .unwrap()
            .expect("a dynamic section");
        let strings = sections.strings(endian, &*data, link).unwrap();
        dyns.iter()
            .filter(|d| d.tag32(endian) == Some(object::elf::DT_NEEDED))
            .map(|d| String::from_utf8(d.string(endian, strings).unwrap().to_vec()).unwrap())
            .collect()
    }

    /// An empty relocatable object for `arch`.
    fn empty_object(dir: &Path, arch: Architecture) -> PathBuf {
        let path = dir.join(format!("{arch:?}.o"));
        let bytes = object::write::Object::new(BinaryFormat::Elf, arch, Endianness::Little)
            .write()
            .unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn libraries_need_libm() {
        let dir = tempfile::tempdir().unwrap();
        // The host (the installed libm) and the other CPU target (installed, or a stub).
        for arch in [Architecture::X86_64, Architecture::Aarch64] {
            let obj = empty_object(dir.path(), arch);
            let out = dir.path().join(format!("{arch:?}.so"));
            link_shared_library(&[&obj], &out, &[]).unwrap();
            assert_eq!(needed(&out), vec![LIBM.to_string()], "{arch:?}");
        }
        // Only the outputs and inputs remain: the stub lived in its own directory.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["Aarch64.o", "Aarch64.so", "X86_64.o", "X86_64.so"]);
    }

    #[test]
    fn missing_program_is_not_found() {
        assert_eq!(find_program("kiln-no-such-linker"), None);
        assert_eq!(find_program("/nonexistent/ld"), None);
    }
}
