//! The environment variables the runtime and compiled artifacts read,
//! parsed strictly.
//!
//! Invariants:
//! - A set but malformed variable is an [`Error::InvalidEnvironment`] naming
//!   it, never silently ignored: [`check`] runs when a model is loaded and
//!   when the thread count is reset to its default, before any compiled
//!   code runs.
//! - An empty value means unset (as a shell's `KILN_NUM_THREADS= cmd`).
//! - `KILN_PARALLEL_MIN_US` is read by the parallel shim inside every
//!   artifact; the range accepted here is exactly the one the shim uses, so
//!   a value the runtime accepts is never ignored there.

use crate::sys;
use crate::Error;
use alloc::string::{String, ToString};
use core::ffi::CStr;

/// Threads of the runtime pool (a positive integer).
pub const NUM_THREADS: &CStr = c"KILN_NUM_THREADS";
/// Serial time in microseconds from which a loop runs on the pool.
pub const PARALLEL_MIN_US: &CStr = c"KILN_PARALLEL_MIN_US";
/// Largest `KILN_PARALLEL_MIN_US` the shim accepts (exclusive).
pub const PARALLEL_MIN_US_LIMIT: u64 = 1_000_000_000;

/// The value of `name` when set and non-empty; a value that is not UTF-8
/// is an error.
fn read(name: &CStr) -> Result<Option<String>, Error> {
    match sys::env_bytes(name) {
        None => Ok(None),
        Some(bytes) if bytes.is_empty() => Ok(None),
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(invalid(
                name,
                &String::from_utf8_lossy(e.as_bytes()),
                "UTF-8 text",
            )),
        },
    }
}

fn invalid(name: &CStr, value: &str, expected: &str) -> Error {
    Error::InvalidEnvironment {
        name: name.to_str().unwrap_or_default().to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Parses an unsigned decimal integer: digits only (no sign, no spaces).
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a `KILN_NUM_THREADS` value; `Err` says what a valid one is.
pub fn parse_num_threads(v: &str) -> Result<u32, &'static str> {
    match parse_u64(v).and_then(|n| u32::try_from(n).ok()) {
        Some(n) if n > 0 => Ok(n),
        _ => Err("a positive integer"),
    }
}

/// Parses a `KILN_PARALLEL_MIN_US` value; `Err` says what a valid one is.
pub fn parse_parallel_min_us(v: &str) -> Result<u64, &'static str> {
    match parse_u64(v) {
        Some(n) if n < PARALLEL_MIN_US_LIMIT => Ok(n),
        _ => Err("an integer from 0 to 999999999 (microseconds)"),
    }
}

/// `KILN_NUM_THREADS`: `None` when unset.
pub fn num_threads() -> Result<Option<u32>, Error> {
    let Some(v) = read(NUM_THREADS)? else {
        return Ok(None);
    };
    parse_num_threads(&v)
        .map(Some)
        .map_err(|expected| invalid(NUM_THREADS, &v, expected))
}

/// `KILN_PARALLEL_MIN_US`: `None` when unset.
pub fn parallel_min_us() -> Result<Option<u64>, Error> {
    let Some(v) = read(PARALLEL_MIN_US)? else {
        return Ok(None);
    };
    parse_parallel_min_us(&v)
        .map(Some)
        .map_err(|expected| invalid(PARALLEL_MIN_US, &v, expected))
}

/// The GPU a device artifact runs on (an index among the API's devices).
pub const DEVICE: &CStr = c"KILN_DEVICE";

/// `KILN_DEVICE`: `None` when unset.
pub fn device() -> Result<Option<u32>, Error> {
    let Some(v) = read(DEVICE)? else {
        return Ok(None);
    };
    parse_u64(&v)
        .filter(|&n| n < 1 << 16)
        .map(|n| Some(n as u32))
        .ok_or_else(|| invalid(DEVICE, &v, "a device index (0, 1, ...)"))
}

/// Checks every variable the runtime and artifacts read.
pub fn check() -> Result<(), Error> {
    num_threads()?;
    parallel_min_us()?;
    device()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_digits_only() {
        assert_eq!(parse_u64("12"), Some(12));
        assert_eq!(parse_u64("0"), Some(0));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "abc",
            "1e3",
            "0x10",
            "99999999999999999999",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
    }
}
