//! The `.kir` text format: a printer and a parser with exact round-trip
//! (`print(parse(print(g))) == print(g)`).
//!
//! ```text
//! weight @w0 : tensor<64x10xf32> = file<"mlp.weights", offset = 0>
//! weight @shape : tensor<2xi64> = dense<[1, 640]>
//! graph @main(%x: tensor<{batch}x64xf32>) -> (tensor<{batch}x10xf32>) {
//!   %w = nn.constant {value = @w0} : tensor<64x10xf32>
//!   %y = nn.matmul %x, %w : tensor<{batch}x10xf32> loc("fc1")
//!   return %y
//! }
//! ```
//!
//! Invariants: weights are never printed in full unless they are at most
//! [`PrintOptions::inline_limit`] bytes; larger ones print as a reference to
//! the file they came from or as an `elided<...>` summary. Parse errors carry
//! file:line:col and render the offending line with a caret.

mod dot;
mod parse;
mod print;

pub use dot::print_dot;
pub use parse::{parse, parse_file, ParseError, Parsed};
pub use print::{print, print_with, PrintOptions};

/// Whether `s` can be printed without quotes after `%` or `@`.
pub(crate) fn is_bare_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$'))
}
