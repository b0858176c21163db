//! `kiln config`: where the runtime is and how to build against it, like
//! `llvm-config` (`--cflags`, `--libs`, `--static`, `--libdir`,
//! `--includedir`, `--prefix`). The runtime is found as `kiln compile
//! --emit=obj` finds it (`$KILN_RUNTIME_DIR`, an installed prefix next to
//! the `kiln` binary, or a cargo target directory where
//! `runtime/scripts/build-c-lib.sh` built it); `kiln.h` is in the sibling
//! `include/` folder.

use crate::error::{driver_error, CliError, Code};
use clap::Args;
use std::path::{Path, PathBuf};

/// Arguments of `kiln config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Compiler flags: -I<includedir>.
    #[arg(long)]
    pub cflags: bool,
    /// Linker flags: the runtime and the system libraries it needs.
    #[arg(long)]
    pub libs: bool,
    /// With --libs: link the static library (libkiln_runtime.a).
    #[arg(long = "static")]
    pub static_: bool,
    /// The folder holding libkiln_runtime.{a,so}.
    #[arg(long)]
    pub libdir: bool,
    /// The folder holding kiln.h.
    #[arg(long)]
    pub includedir: bool,
    /// The installation prefix (the parent of libdir).
    #[arg(long)]
    pub prefix: bool,
    /// List the KILN_* environment variables: name, who reads it, value, meaning.
    #[arg(long, exclusive = true)]
    pub env: bool,
    /// List the stable error codes: code, exit code, meaning.
    #[arg(long, exclusive = true)]
    pub error_codes: bool,
}

/// `--env`: one line per variable.
fn env_table() -> String {
    use crate::env::{Reader, VARIABLES};
    let mut s = String::new();
    for v in VARIABLES {
        let reader = match v.reader {
            Reader::Cli => "kiln",
            Reader::Runtime => "runtime",
            Reader::Build => "kiln-build",
            Reader::Tests => "tests",
        };
        let value =
            crate::env::get(v.name).map_or_else(|| "(unset)".to_owned(), |x| format!("{x:?}"));
        s.push_str(&format!(
            "{:<22} {reader:<10} {value:<12} {}\n",
            v.name, v.meaning
        ));
    }
    s
}

/// `--error-codes`: one line per code.
fn error_codes() -> String {
    crate::error::Code::ALL
        .iter()
        .map(|c| format!("{}  exit {}  {}\n", c.id(), c.class().code(), c.meaning()))
        .collect()
}

/// System libraries every program using the runtime links.
pub const SYSTEM_LIBS: &str = "-lpthread -ldl -lm";

fn shell_word(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Runs `kiln config`.
pub fn run(args: ConfigArgs) -> Result<(), CliError> {
    if args.env || args.error_codes {
        let text = if args.env { env_table() } else { error_codes() };
        return crate::io::write_output(None, text.as_bytes());
    }
    let lib = kiln_driver::compile::find_runtime_dir().map_err(driver_error)?;
    let prefix = lib.parent().map_or_else(|| lib.clone(), Path::to_path_buf);
    let include: PathBuf = prefix.join("include");
    if !include.join("kiln.h").is_file() {
        return Err(CliError::new(
            Code::File,
            format!(
                "kiln.h not found in {} (next to the runtime in {})",
                include.display(),
                lib.display()
            ),
        ));
    }
    let mut words: Vec<String> = Vec::new();
    if args.prefix {
        words.push(shell_word(&prefix));
    }
    if args.libdir {
        words.push(shell_word(&lib));
    }
    if args.includedir {
        words.push(shell_word(&include));
    }
    if args.cflags {
        words.push(format!("-I{}", shell_word(&include)));
    }
    if args.libs {
        if args.static_ {
            words.push(shell_word(&lib.join("libkiln_runtime.a")));
        } else {
            let l = shell_word(&lib);
            words.push(format!("-L{l} -Wl,-rpath,{l} -lkiln_runtime"));
        }
        words.push(SYSTEM_LIBS.to_owned());
    }
    if words.is_empty() {
        return Err(CliError::new(
            Code::Usage,
            "say what to print: --cflags, --libs [--static], --libdir, --includedir, --prefix, \
             --env or --error-codes",
        ));
    }
    crate::io::write_output(None, format!("{}\n", words.join(" ")).as_bytes())
}
