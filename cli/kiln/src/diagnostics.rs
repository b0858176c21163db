//! Diagnostics with source lines, `--split-input-file` chunking, and
//! MLIR-style `--verify-diagnostics` checking.
//!
//! Expectations are comments in the input:
//!
//! ```text
//! // expected-error @+1 {{rank mismatch}}     the next line
//! // expected-error @-2 {{...}}               two lines up
//! %y = nn.add %x, %b : ...  // expected-error {{...}}   this line
//! ```
//!
//! Every diagnostic must match an unmatched expectation on its line (the
//! expectation's text is a substring of the message) and every expectation
//! must be matched. Lines are 1-based within the whole file, also when the
//! input is split into chunks.

use std::fmt::Write;

/// The separator line of `--split-input-file`.
pub const SPLIT_MARKER: &str = "// -----";

/// A part of the input processed on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk's text (its lines, each with its newline).
    pub text: String,
    /// Lines of the whole input before the chunk's first line.
    pub line_offset: usize,
}

/// Splits on lines that are exactly `// -----` (surrounding spaces
/// ignored). Without `split`, the whole input is one chunk.
pub fn split_chunks(text: &str, split: bool) -> Vec<Chunk> {
    if !split {
        return vec![Chunk {
            text: text.to_string(),
            line_offset: 0,
        }];
    }
    let mut chunks = Vec::new();
    let mut cur = Chunk {
        text: String::new(),
        line_offset: 0,
    };
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim() == SPLIT_MARKER {
            chunks.push(std::mem::replace(
                &mut cur,
                Chunk {
                    text: String::new(),
                    line_offset: i + 1,
                },
            ));
        } else {
            cur.text.push_str(line);
        }
    }
    chunks.push(cur);
    chunks
}

/// One error message located in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line in the whole input; 0 when the error has no location.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub col: usize,
    /// The message.
    pub message: String,
    /// The source line, for the caret display.
    pub source_line: String,
}

impl Diagnostic {
    /// Renders `file:line:col: error: message` with the source line and a
    /// caret under the column.
    pub fn render(&self, file: &str) -> String {
        let mut s = String::new();
        if self.line == 0 {
            let _ = write!(s, "{file}: error: {}", self.message);
            return s;
        }
        let _ = write!(
            s,
            "{file}:{}:{}: error: {}",
            self.line, self.col, self.message
        );
        if !self.source_line.is_empty() {
            let _ = write!(
                s,
                "\n  {}\n  {}^",
                self.source_line,
                " ".repeat(self.col.saturating_sub(1))
            );
        }
        s
    }
}

/// One `expected-error` comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The line the diagnostic must be on (1-based, whole input).
    pub line: usize,
    /// The line the comment is on.
    pub comment_line: usize,
    /// Substring the message must contain.
    pub text: String,
}

/// Collects the `expected-error` comments of a chunk. Errors describe a
/// malformed expectation.
pub fn parse_expectations(chunk: &Chunk) -> Result<Vec<Expectation>, String> {
    const KEY: &str = "expected-error";
    let mut out = Vec::new();
    for (i, line) in chunk.text.lines().enumerate() {
        let lineno = chunk.line_offset + i + 1;
        let Some(comment) = line.find("//").map(|p| &line[p..]) else {
            continue;
        };
        let Some(k) = comment.find(KEY) else { continue };
        let mut rest = comment[k + KEY.len()..].trim_start();
        let mut target = lineno as i64;
        if let Some(r) = rest.strip_prefix('@') {
            let end = r.find(char::is_whitespace).unwrap_or(r.len());
            let spec = &r[..end];
            let delta: i64 = match spec {
                "above" => -1,
                "below" => 1,
                _ => spec
                    .strip_prefix('+')
                    .unwrap_or(spec)
                    .parse()
                    .map_err(|_| format!("line {lineno}: bad line offset '@{spec}' (use @+N, @-N, @above or @below)"))?,
            };
            target += delta;
            rest = r[end..].trim_start();
        }
        let Some(body) = rest.strip_prefix("{{") else {
            return Err(format!(
                "line {lineno}: expected '{{{{' after expected-error"
            ));
        };
        let Some(close) = body.find("}}") else {
            return Err(format!(
                "line {lineno}: unterminated '{{{{' in expected-error"
            ));
        };
        if target < 1 {
            return Err(format!(
                "line {lineno}: expected-error points before the first line"
            ));
        }
        out.push(Expectation {
            line: target as usize,
            comment_line: lineno,
            text: body[..close].to_string(),
        });
    }
    Ok(out)
}

/// Matches diagnostics against expectations; returns the problems as
/// rendered messages (empty when everything matched).
pub fn check(file: &str, diags: &[Diagnostic], expected: &[Expectation]) -> Vec<String> {
    let mut used = vec![false; expected.len()];
    let mut problems = Vec::new();
    for d in diags {
        let hit = expected
            .iter()
            .enumerate()
            .find(|(i, e)| !used[*i] && e.line == d.line && d.message.contains(&e.text));
        match hit {
            Some((i, _)) => used[i] = true,
            None => {
                let mut unexpected = d.clone();
                unexpected.message = format!("unexpected error: {}", d.message);
                problems.push(unexpected.render(file));
            }
        }
    }
    for (e, used) in expected.iter().zip(used) {
        if !used {
            problems.push(format!(
                "{file}:{}: error: expected error \"{}\" (on line {}) was not produced",
                e.comment_line, e.text, e.line
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_their_line_offsets() {
        let c = split_chunks("a\n// -----\nb\nc\n  // -----  \nd", true);
        assert_eq!(c.len(), 3);
        assert_eq!((c[1].text.as_str(), c[1].line_offset), ("b\nc\n", 2));
        assert_eq!((c[2].text.as_str(), c[2].line_offset), ("d", 5));
        assert_eq!(split_chunks("a\n// -----\n", false).len(), 1);
    }

    #[test]
    fn expectations_resolve_relative_lines() {
        let chunk = Chunk {
            text: "x\n// expected-error @+1 {{one}}\ny // expected-error {{two}}\n// expected-error@-2 {{three}}\n".into(),
            line_offset: 10,
        };
        let e = parse_expectations(&chunk).unwrap();
        let lines: Vec<_> = e.iter().map(|e| (e.line, e.text.as_str())).collect();
        assert_eq!(lines, vec![(13, "one"), (13, "two"), (12, "three")]);
        let bad = Chunk {
            text: "// expected-error @+x {{a}}".into(),
            line_offset: 0,
        };
        assert!(parse_expectations(&bad).is_err());
    }

    #[test]
    fn check_reports_unexpected_and_missing() {
        let d = |line, m: &str| Diagnostic {
            line,
            col: 1,
            message: m.into(),
            source_line: String::new(),
        };
        let e = |line, t: &str| Expectation {
            line,
            comment_line: line - 1,
            text: t.into(),
        };
        assert!(check("f", &[d(2, "bad rank")], &[e(2, "rank")]).is_empty());
        let p = check(
            "f",
            &[d(2, "bad rank"), d(3, "other")],
            &[e(2, "rank"), e(2, "rank")],
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("unexpected error: other"));
        assert!(p[1].contains("expected error \"rank\""));
    }
}
