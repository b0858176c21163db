//! The `KILN_*` environment variables, in one table, checked before any
//! command runs.
//!
//! Invariants:
//! - Every variable Kiln's programs read is a row of [`VARIABLES`], and the
//!   README lists every row (a unit test checks it).
//! - A set but malformed value is an error naming the variable (code
//!   `E2009`, exit 2), never silently ignored. An empty value means unset.
//! - The variables the runtime reads are parsed by the runtime's own
//!   functions (`kiln_runtime::env`), so a value the CLI lets through never
//!   fails later at load.

use crate::error::{CliError, Code};

/// Who reads a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// The `kiln` program.
    Cli,
    /// The runtime (`libkiln_runtime`, the `kiln-runtime` crate) or the
    /// code in an artifact; `kiln run`/`bench`/`verify` load artifacts, so
    /// the CLI checks these too.
    Runtime,
    /// `kiln-build` (build scripts).
    Build,
    /// Kiln's own test and benchmark scripts.
    Tests,
}

/// Checks a (non-empty) value; `Err` says what a valid one looks like.
pub type Check = fn(&str) -> Result<(), String>;

/// One environment variable.
#[derive(Clone, Copy, Debug)]
pub struct Variable {
    /// Its name.
    pub name: &'static str,
    /// Who reads it.
    pub reader: Reader,
    /// What it does.
    pub meaning: &'static str,
    /// How a set value is checked (none: any value).
    pub check: Option<Check>,
}

/// Every `KILN_*` variable (and `KILN`).
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "KILN_LOG",
        reader: Reader::Cli,
        meaning: "log filter: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or \
                  comma-separated `kiln_CRATE[=LEVEL]` directives; overrides -v",
        check: Some(check_log),
    },
    Variable {
        name: "KILN_NUM_THREADS",
        reader: Reader::Runtime,
        meaning: "threads of the runtime pool when a program asks for the default (0); a positive integer",
        check: Some(check_num_threads),
    },
    Variable {
        name: "KILN_PARALLEL_MIN_US",
        reader: Reader::Runtime,
        meaning: "serial time in µs from which a parallel loop runs on the pool (default 5; 0 = always); 0 to 999999999",
        check: Some(check_parallel_min_us),
    },
    Variable {
        name: "KILN_DEVICE",
        reader: Reader::Runtime,
        meaning: "the GPU a device artifact runs on, an index among the driver's devices (default 0)",
        check: Some(check_device),
    },
    Variable {
        name: "KILN_PTXAS",
        reader: Reader::Cli,
        meaning: "NVIDIA's `ptxas` for CUDA targets (SASS beside the PTX; default: `$CUDA_HOME/bin`, `PATH`, /usr/local/cuda)",
        check: Some(check_file),
    },
    Variable {
        name: "KILN_LIBDEVICE",
        reader: Reader::Cli,
        meaning: "NVIDIA's `libdevice.10.bc` for CUDA targets' math (default: under `$CUDA_HOME` or beside `ptxas`)",
        check: Some(check_file),
    },
    Variable {
        name: "KILN_RUNTIME_DIR",
        reader: Reader::Cli,
        meaning: "folder holding libkiln_runtime.a for `--emit=obj` and `kiln config`; an existing folder",
        check: Some(check_dir),
    },
    Variable {
        name: "KILN_PYTHON",
        reader: Reader::Cli,
        meaning: "the Python with `onnxruntime` that `kiln verify --reference ort` runs (default: `.venv/bin/python` above the current folder, then `python3`)",
        check: None,
    },
    Variable {
        name: "KILN",
        reader: Reader::Build,
        meaning: "the `kiln` program `kiln-build` and `scripts/conformance.py` run (default: `kiln` on PATH)",
        check: None,
    },
    Variable {
        name: "KILN_BIN",
        reader: Reader::Tests,
        meaning: "the `kiln` binary the lit tests run (default: target/debug/kiln)",
        check: None,
    },
    Variable {
        name: "KILN_ONNX_NODE_TESTS",
        reader: Reader::Tests,
        meaning: "folder of the generated ONNX node tests the integration tests read",
        check: None,
    },
    Variable {
        name: "KILN_FUZZ_SANITIZER",
        reader: Reader::Tests,
        meaning: "`scripts/fuzz.sh`: the sanitizer (`address`, or `none`)",
        check: None,
    },
    Variable {
        name: "KILN_RUN_OUT",
        reader: Reader::Tests,
        meaning: "`scripts/run.sh`: the output folder (default target/kiln-run)",
        check: None,
    },
];

fn check_log(v: &str) -> Result<(), String> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    let expected = || {
        "a level (error, warn, info, debug, trace, off) or comma-separated kiln_CRATE[=LEVEL] \
         directives, e.g. kiln_passes=debug"
            .to_owned()
    };
    tracing_subscriber::EnvFilter::try_new(v).map_err(|e| format!("{} ({e})", expected()))?;
    // EnvFilter takes any word as a target; a directive naming a target
    // that is not one of Kiln's crates would silently filter nothing.
    for directive in v.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let target = directive
            .split(['=', '[', '{'])
            .next()
            .unwrap_or_default()
            .trim();
        let level_only =
            !directive.contains('=') && LEVELS.contains(&target.to_ascii_lowercase().as_str());
        if !level_only && !target.is_empty() && !target.starts_with("kiln") {
            return Err(expected());
        }
    }
    Ok(())
}

fn check_device(v: &str) -> Result<(), String> {
    if !v.is_empty()
        && v.len() < 6
        && v.bytes().all(|b| b.is_ascii_digit())
        && v.parse::<u32>().is_ok_and(|n| n < 1 << 16)
    {
        Ok(())
    } else {
        Err("a device index (0, 1, ...)".into())
    }
}

fn check_file(v: &str) -> Result<(), String> {
    if std::path::Path::new(v).is_file() {
        Ok(())
    } else {
        Err("an existing file".into())
    }
}

/// The runtime's own parser, so both accept the same values.
fn check_num_threads(v: &str) -> Result<(), String> {
    kiln_driver::runtime_env::parse_num_threads(v)
        .map(drop)
        .map_err(str::to_owned)
}

/// The runtime's own parser, so both accept the same values.
fn check_parallel_min_us(v: &str) -> Result<(), String> {
    kiln_driver::runtime_env::parse_parallel_min_us(v)
        .map(drop)
        .map_err(str::to_owned)
}

fn check_dir(v: &str) -> Result<(), String> {
    if std::path::Path::new(v).is_dir() {
        Ok(())
    } else {
        Err("an existing folder".to_owned())
    }
}

/// The value of `name` when set and non-empty.
pub fn get(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Checks every variable with a check; the first malformed one is an error
/// naming it, its value and what a valid value looks like.
pub fn check() -> Result<(), CliError> {
    for var in VARIABLES {
        let Some(check) = var.check else { continue };
        let value = match std::env::var(var.name) {
            Ok(v) if v.is_empty() => continue,
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => continue,
            Err(std::env::VarError::NotUnicode(v)) => {
                return Err(env_error(var.name, &v.to_string_lossy(), "UTF-8 text"))
            }
        };
        if let Err(expected) = check(&value) {
            return Err(env_error(var.name, &value, &expected));
        }
    }
    Ok(())
}

fn env_error(name: &str, value: &str, expected: &str) -> CliError {
    let message = format!("invalid environment variable {name}={value:?}: expected {expected}");
    CliError::new(Code::Environment, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_strictly() {
        assert!(check_num_threads("4").is_ok());
        for bad in ["0", "-1", "abc", " 2", "2.0", "99999999999"] {
            assert!(check_num_threads(bad).is_err(), "{bad:?}");
        }
        assert!(check_parallel_min_us("0").is_ok());
        assert!(check_parallel_min_us("999999999").is_ok());
        for bad in ["-1", "1000000000", "30us", ""] {
            assert!(check_parallel_min_us(bad).is_err(), "{bad:?}");
        }
        for good in [
            "debug",
            "WARN",
            "kiln_passes=debug",
            "kiln=info,kiln_codegen=trace",
            "off",
        ] {
            assert!(check_log(good).is_ok(), "{good:?}");
        }
        for bad in [
            "garbage",
            "kiln=loud",
            "debug,nonsense=trace",
            "kiln_passes=debug=x",
        ] {
            assert!(check_log(bad).is_err(), "{bad:?}");
        }
    }

    /// The README lists every variable.
    #[test]
    fn readme_lists_every_variable() {
        let readme = include_str!("../../../README.md");
        for var in VARIABLES {
            assert!(
                readme.contains(&format!("`{}`", var.name)),
                "README.md does not list {}",
                var.name
            );
        }
    }
}
