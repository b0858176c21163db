//! Where diagnostics go: human text (the default) or, with
//! `--message-format=json`, one JSON object per diagnostic and per log
//! record, one per line, on stderr.
//!
//! Invariants:
//! - The format is chosen once, before anything is printed (even before
//!   the arguments are parsed, so that a bad flag is reported as JSON too).
//! - In JSON mode nothing but JSON lines goes to stderr: diagnostics
//!   (`"type": "diagnostic"`, see [`crate::error::Diag::to_json`]) and log
//!   records (`tracing`'s JSON format, which has `"target"` and no
//!   `"type"`). Progress bars are off.
//! - stdout carries only the command's output in either format.

use crate::error::{CliError, Diag};
use std::io::Write;
use std::sync::OnceLock;

/// `--message-format` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MessageFormat {
    /// `kiln: error: ...` lines (with source lines and carets where known).
    #[default]
    Human,
    /// One JSON object per diagnostic on stderr.
    Json,
}

static FORMAT: OnceLock<MessageFormat> = OnceLock::new();

/// Sets the format; only the first call counts.
pub fn set_format(format: MessageFormat) {
    let _ = FORMAT.set(format);
}

/// Whether diagnostics are JSON.
pub fn json() -> bool {
    FORMAT.get().copied().unwrap_or_default() == MessageFormat::Json
}

/// The format asked for on the command line, found before clap parses it
/// (clap's own errors must honour it): `--message-format=json` or
/// `--message-format json`, before any `--`.
pub fn format_from_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> MessageFormat {
    let mut format = MessageFormat::Human;
    let mut args = args.into_iter().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy();
        let value = match a.as_ref() {
            "--" => break,
            "--message-format" => args.next().map(|v| v.to_string_lossy().into_owned()),
            _ => a.strip_prefix("--message-format=").map(str::to_owned),
        };
        match value.as_deref() {
            Some("json") => format = MessageFormat::Json,
            Some("human") => format = MessageFormat::Human,
            _ => {}
        }
    }
    format
}

/// Prints one diagnostic as a JSON line.
fn print_json(d: &Diag) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", d.to_json());
}

/// Reports a failed command.
pub fn error(e: &CliError) {
    if json() {
        for d in e.diags() {
            print_json(d);
        }
    } else if let Some(m) = e.message() {
        eprintln!("kiln: error: {m}");
    }
}

/// Reports a diagnostic whose human form is `human` (already rendered,
/// e.g. with a source line and caret).
pub fn diag(d: &Diag, human: &str) {
    if json() {
        print_json(d);
    } else {
        eprintln!("{human}");
    }
}

/// Reports a warning; the command goes on.
pub fn warning(message: &str) {
    diag(
        &Diag::warning(message),
        &format!("kiln: warning: {message}"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> MessageFormat {
        format_from_args(
            std::iter::once("kiln")
                .chain(args.iter().copied())
                .map(Into::into),
        )
    }

    #[test]
    fn the_format_is_found_before_clap_runs() {
        assert_eq!(parse(&["opt", "x.kir"]), MessageFormat::Human);
        assert_eq!(
            parse(&["--message-format=json", "opt"]),
            MessageFormat::Json
        );
        assert_eq!(
            parse(&["opt", "--message-format", "json", "--bogus"]),
            MessageFormat::Json
        );
        assert_eq!(
            parse(&["opt", "--", "--message-format=json"]),
            MessageFormat::Human
        );
    }
}
