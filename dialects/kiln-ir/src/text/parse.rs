//! The `.kir` parser: a hand-written recursive-descent parser over a
//! character cursor (tensor types have their own compact lexical syntax, so
//! the parser drives the lexer rather than consuming a token stream).
//!
//! Invariants: never panics on any input; every error carries the 1-based
//! line and column of the offending token; a parsed graph has been verified.

use crate::attr::{Attr, Attrs};
use crate::blob::Blob;
use crate::dtype::DType;
use crate::graph::{Derivation, Graph, ValueId, Weight, WeightData, WeightSource};
use crate::ops::OpKind;
use crate::plan::{Home, MemoryPlan};
use crate::types::{Dim, TensorType};
use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// A parse or verification error located in the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file name shown in the message.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// The offending source line, for the caret display.
    pub source_line: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.col, self.message
        )?;
        writeln!(f, "  {}", self.source_line)?;
        write!(f, "  {}^", " ".repeat(self.col.saturating_sub(1)))
    }
}

impl std::error::Error for ParseError {}

/// A parsed graph plus the source position of each node, so that later
/// diagnostics (verifier, passes) can point back into the text.
#[derive(Debug)]
pub struct Parsed {
    /// The graph.
    pub graph: Graph,
    /// `(line, col)` of each node's first result, by node index.
    pub node_positions: Vec<(usize, usize)>,
}

/// Parses `.kir` text and verifies the result. `file` names the source in
/// messages; `file<...>` weights resolve relative to `base_dir`.
pub fn parse(src: &str, file: &str, base_dir: Option<&Path>) -> Result<Parsed, Vec<ParseError>> {
    let mut p = Parser {
        src,
        file,
        pos: 0,
        base_dir,
        mapped: HashMap::new(),
    };
    let parsed = p.module().map_err(|e| vec![e])?;
    match crate::verify::verify(&parsed.graph) {
        Ok(()) => Ok(parsed),
        Err(errs) => Err(errs
            .into_iter()
            .map(|e| {
                let (line, col) = e
                    .node
                    .and_then(|n| parsed.node_positions.get(n).copied())
                    .unwrap_or((1, 1));
                p.error_at_line(line, col, e.message)
            })
            .collect()),
    }
}

/// Reads and parses a `.kir` file.
pub fn parse_file(path: &Path) -> Result<Parsed, Vec<ParseError>> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        vec![ParseError {
            file: name.clone(),
            line: 1,
            col: 1,
            message: format!("cannot read file: {e}"),
            source_line: String::new(),
        }]
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&src, &name, Some(&dir))
}

type PResult<T> = Result<T, ParseError>;

struct Parser<'s> {
    src: &'s str,
    file: &'s str,
    pos: usize,
    base_dir: Option<&'s Path>,
    mapped: HashMap<PathBuf, Blob>,
}

impl<'s> Parser<'s> {
    // ---- positions and errors ------------------------------------------

    fn line_col(&self, pos: usize) -> (usize, usize) {
        let before = &self.src[..pos.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn error_at_line(&self, line: usize, col: usize, message: String) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line,
            col,
            message,
            source_line: self.src.lines().nth(line - 1).unwrap_or("").to_string(),
        }
    }

    fn err_at(&self, pos: usize, message: impl Into<String>) -> ParseError {
        let (line, col) = self.line_col(pos);
        self.error_at_line(line, col, message.into())
    }

    fn err(&mut self, message: impl Into<String>) -> ParseError {
        self.skip_ws();
        self.err_at(self.pos, message)
    }

    // ---- lexical helpers -----------------------------------------------

    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        loop {
            let r = self.rest();
            let trimmed = r.trim_start();
            self.pos += r.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else {
                return;
            }
        }
    }

    fn peek_char(&mut self) -> Option<char> {
        self.skip_ws();
        self.rest().chars().next()
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, s: &str) -> PResult<()> {
        if self.eat(s) {
            Ok(())
        } else {
            let found = self.describe_next();
            Err(self.err(format!("expected '{s}', found {found}")))
        }
    }

    fn describe_next(&mut self) -> String {
        self.skip_ws();
        match self.rest().chars().next() {
            None => "end of input".into(),
            Some(_) => {
                let tok: String = self
                    .rest()
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .take(20)
                    .collect();
                format!("'{tok}'")
            }
        }
    }

    /// A bare word: letters, digits, `_`, `.`, `$`.
    fn word(&mut self) -> Option<&'s str> {
        self.skip_ws();
        let r = self.rest();
        let n = r
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$')))
            .map_or(r.len(), |(i, _)| i);
        if n == 0 {
            return None;
        }
        self.pos += n;
        Some(&r[..n])
    }

    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.pos;
        match self.word() {
            Some(w) if w == kw => true,
            _ => {
                self.pos = save;
                false
            }
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> PResult<()> {
        if self.keyword(kw) {
            Ok(())
        } else {
            let found = self.describe_next();
            Err(self.err(format!("expected '{kw}', found {found}")))
        }
    }

    fn string_lit(&mut self) -> PResult<String> {
        self.skip_ws();
        let start = self.pos;
        if !self.eat("\"") {
            return Err(self.err("expected a string literal"));
        }
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        loop {
            let Some((i, c)) = chars.next() else {
                return Err(self.err_at(start, "unterminated string literal"));
            };
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((j, 'u')) => {
                        let body: String = self.rest()[j + 1..]
                            .chars()
                            .take_while(|&c| c != '}')
                            .collect();
                        let hex = body.strip_prefix('{').unwrap_or("");
                        let ch = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                        let Some(ch) = ch else {
                            return Err(self.err_at(self.pos + j, "invalid \\u{...} escape"));
                        };
                        out.push(ch);
                        for _ in 0..body.chars().count() + 1 {
                            chars.next();
                        }
                    }
                    _ => return Err(self.err_at(self.pos + i, "invalid escape in string literal")),
                },
                c => out.push(c),
            }
        }
    }

    /// `%name`, `@name`, `%"quoted"` or `@"quoted"`.
    fn sigil_name(&mut self, sigil: char) -> PResult<String> {
        self.skip_ws();
        if !self.rest().starts_with(sigil) {
            let found = self.describe_next();
            return Err(self.err(format!("expected a '{sigil}' name, found {found}")));
        }
        self.pos += 1;
        if self.rest().starts_with('"') {
            return self.string_lit();
        }
        let r = self.rest();
        let n = r
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$')))
            .map_or(r.len(), |(i, _)| i);
        if n == 0 {
            return Err(self.err(format!("expected a name after '{sigil}'")));
        }
        self.pos += n;
        Ok(r[..n].to_string())
    }

    fn number_text(&mut self) -> Option<(usize, &'s str)> {
        self.skip_ws();
        let start = self.pos;
        let r = self.rest();
        let mut n = 0;
        let b = r.as_bytes();
        if n < b.len() && (b[n] == b'-' || b[n] == b'+') {
            n += 1;
        }
        for kw in ["inf", "nan"] {
            if r[n..].starts_with(kw)
                && !r[n + 3..].starts_with(|c: char| c.is_ascii_alphanumeric())
            {
                self.pos += n + 3;
                return Some((start, &r[..n + 3]));
            }
        }
        let digits_start = n;
        while n < b.len()
            && (b[n].is_ascii_alphanumeric()
                || b[n] == b'.'
                || ((b[n] == b'-' || b[n] == b'+') && matches!(b[n - 1], b'e' | b'E')))
        {
            n += 1;
        }
        if n == digits_start || !b[digits_start].is_ascii_digit() {
            return None;
        }
        self.pos += n;
        Some((start, &r[..n]))
    }

    /// `key = <integer>`; returns the integer's position and value.
    fn keyed_int(&mut self, key: &str) -> PResult<(usize, i64)> {
        self.expect_keyword(key)?;
        self.expect("=")?;
        self.skip_ws();
        let at = self.pos;
        Ok((at, self.int_lit()?))
    }

    fn int_lit(&mut self) -> PResult<i64> {
        match self.number_text() {
            Some((at, t)) => t
                .parse::<i64>()
                .map_err(|_| self.err_at(at, format!("invalid integer '{t}'"))),
            None => Err(self.err("expected an integer")),
        }
    }

    // ---- types -----------------------------------------------------------

    fn tensor_type(&mut self) -> PResult<TensorType> {
        self.skip_ws();
        let start = self.pos;
        if !self.rest().starts_with("tensor<") {
            let found = self.describe_next();
            return Err(self.err(format!("expected a tensor type, found {found}")));
        }
        self.pos += "tensor<".len();
        let body_start = self.pos;
        let Some(end) = self.rest().find('>') else {
            return Err(self.err_at(start, "unterminated tensor type"));
        };
        let body = &self.src[body_start..body_start + end];
        self.pos = body_start + end + 1;
        let mut dims = Vec::new();
        let mut rest = body;
        let mut off = 0usize;
        loop {
            let at = body_start + off;
            if let Some(s) = rest.strip_prefix('{') {
                let Some(close) = s.find('}') else {
                    return Err(self.err_at(at, "unterminated symbolic dimension"));
                };
                let name = &s[..close];
                if name.is_empty() {
                    return Err(self.err_at(at, "empty symbolic dimension name"));
                }
                dims.push(Dim::sym(name));
                rest = &s[close + 1..];
                off += close + 2;
            } else if let Some(s) = rest.strip_prefix('?') {
                dims.push(Dim::Unknown);
                rest = s;
                off += 1;
            } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
                let n = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                let v: u64 = rest[..n].parse().map_err(|_| {
                    self.err_at(at, format!("dimension '{}' is too large", &rest[..n]))
                })?;
                dims.push(Dim::Static(v));
                rest = &rest[n..];
                off += n;
            } else {
                let name = rest.trim();
                return match DType::from_name(name) {
                    Some(d) => Ok(TensorType::new(d, dims)),
                    None => Err(self.err_at(at, format!("unknown element type '{name}'"))),
                };
            }
            match rest.strip_prefix('x') {
                Some(s) => {
                    rest = s;
                    off += 1;
                }
                None => return Err(self.err_at(body_start + off, "expected 'x' after a dimension")),
            }
        }
    }

    // ---- attributes --------------------------------------------------------

    fn attr_value(&mut self, g: &Graph) -> PResult<Attr> {
        self.skip_ws();
        let at = self.pos;
        match self.peek_char() {
            Some('"') => return Ok(Attr::Str(self.string_lit()?)),
            Some('@') => {
                let name = self.sigil_name('@')?;
                return match g.weight_by_name(&name) {
                    Some(w) => Ok(Attr::Weight(w)),
                    None => Err(self.err_at(at, format!("unknown weight @{name}"))),
                };
            }
            Some('[') => return self.attr_list(),
            _ => {}
        }
        if let Some((at, t)) = self.number_text() {
            return parse_number(t).ok_or_else(|| self.err_at(at, format!("invalid number '{t}'")));
        }
        match self.word() {
            Some("true") => Ok(Attr::Bool(true)),
            Some("false") => Ok(Attr::Bool(false)),
            Some(w) => match DType::from_name(w) {
                Some(d) => Ok(Attr::DType(d)),
                None => Err(self.err_at(at, format!("invalid attribute value '{w}'"))),
            },
            None => {
                let found = self.describe_next();
                Err(self.err(format!("expected an attribute value, found {found}")))
            }
        }
    }

    fn attr_list(&mut self) -> PResult<Attr> {
        self.expect("[")?;
        let mut items = Vec::new();
        if !self.eat("]") {
            loop {
                self.skip_ws();
                let at = self.pos;
                let v = if self.peek_char() == Some('"') {
                    Attr::Str(self.string_lit()?)
                } else {
                    match self.number_text() {
                        Some((at, t)) => parse_number(t)
                            .ok_or_else(|| self.err_at(at, format!("invalid number '{t}'")))?,
                        None => return Err(self.err_at(at, "expected a number or string in list")),
                    }
                };
                items.push((at, v));
                if self.eat("]") {
                    break;
                }
                self.expect(",")?;
            }
        }
        if items.iter().all(|(_, a)| matches!(a, Attr::Int(_))) {
            return Ok(Attr::Ints(
                items
                    .into_iter()
                    .map(|(_, a)| if let Attr::Int(v) = a { v } else { 0 })
                    .collect(),
            ));
        }
        if items
            .iter()
            .all(|(_, a)| matches!(a, Attr::Int(_) | Attr::Float(_)))
        {
            return Ok(Attr::Floats(
                items
                    .into_iter()
                    .map(|(_, a)| match a {
                        Attr::Int(v) => v as f64,
                        Attr::Float(v) => v,
                        _ => 0.0,
                    })
                    .collect(),
            ));
        }
        let mut strs = Vec::new();
        for (at, a) in items {
            match a {
                Attr::Str(s) => strs.push(s),
                _ => return Err(self.err_at(at, "a list mixes strings and numbers")),
            }
        }
        Ok(Attr::Strs(strs))
    }

    /// `[true, false, ...]` as one byte per element.
    fn bool_list(&mut self) -> PResult<Vec<u8>> {
        self.expect("[")?;
        let mut out = Vec::new();
        if self.eat("]") {
            return Ok(out);
        }
        loop {
            self.skip_ws();
            let at = self.pos;
            match self.word() {
                Some("true") => out.push(1),
                Some("false") => out.push(0),
                _ => return Err(self.err_at(at, "expected 'true' or 'false' in a bool list")),
            }
            if self.eat("]") {
                return Ok(out);
            }
            self.expect(",")?;
        }
    }

    // ---- weights -------------------------------------------------------------

    fn weight_decl(&mut self, g: &mut Graph) -> PResult<()> {
        self.skip_ws();
        let at = self.pos;
        let name = self.sigil_name('@')?;
        if g.weight_by_name(&name).is_some() {
            return Err(self.err_at(at, format!("weight @{name} is defined twice")));
        }
        self.expect(":")?;
        let tat = self.pos;
        let ty = self.tensor_type()?;
        let Some(nbytes) = ty.storage_bytes() else {
            return Err(self.err_at(tat, format!("weight type {ty} must be static")));
        };
        self.expect("=")?;
        self.skip_ws();
        let kat = self.pos;
        let (data, source) = match self.word() {
            Some("dense") => {
                self.expect("<")?;
                let bytes = if self.peek_char() == Some('"') {
                    let sat = self.pos;
                    let s = self.string_lit()?;
                    decode_hex(&s)
                        .ok_or_else(|| self.err_at(sat, "expected a \"0x...\" hex string"))?
                } else if ty.dtype == DType::Bool {
                    self.bool_list()?
                } else {
                    let lat = self.pos;
                    let list = self.attr_list()?;
                    encode_list(&ty, &list).map_err(|m| self.err_at(lat, m))?
                };
                self.expect(">")?;
                if bytes.len() as u64 != nbytes {
                    return Err(self.err_at(
                        kat,
                        format!(
                            "{ty} needs {nbytes} bytes but the literal has {}",
                            bytes.len()
                        ),
                    ));
                }
                (WeightData::Bytes(Blob::from_vec(bytes)), None)
            }
            Some("file") => {
                self.expect("<")?;
                let fat = self.pos;
                let file = self.string_lit()?;
                self.expect(",")?;
                self.expect_keyword("offset")?;
                self.expect("=")?;
                let oat = self.pos;
                let offset = self.int_lit()?;
                self.expect(">")?;
                if offset < 0 {
                    return Err(self.err_at(oat, "offset must be non-negative"));
                }
                let blob = self
                    .map_region(&file, offset as u64, nbytes)
                    .map_err(|m| self.err_at(fat, m))?;
                (
                    WeightData::Bytes(blob),
                    Some(WeightSource {
                        file: PathBuf::from(file),
                        offset: offset as u64,
                    }),
                )
            }
            Some("elided") => {
                self.expect("<")?;
                let (bat, bytes) = self.keyed_int("bytes")?;
                self.expect(",")?;
                self.expect_keyword("fnv")?;
                self.expect("=")?;
                let hat = self.pos;
                let h = self
                    .word()
                    .and_then(|w| w.strip_prefix("0x"))
                    .and_then(|h| u64::from_str_radix(h, 16).ok());
                let Some(fingerprint) = h else {
                    return Err(self.err_at(hat, "expected a 0x... fingerprint"));
                };
                self.expect(">")?;
                if bytes < 0 || bytes as u64 != nbytes {
                    return Err(self.err_at(bat, format!("{ty} needs {nbytes} bytes, not {bytes}")));
                }
                (
                    WeightData::Elided {
                        bytes: nbytes,
                        fingerprint,
                    },
                    None,
                )
            }
            Some("derived") => {
                self.expect("<")?;
                self.skip_ws();
                let oat = self.pos;
                let Some(opname) = self.word() else {
                    return Err(self.err("expected an op name"));
                };
                let Some(op) = OpKind::from_name(opname) else {
                    return Err(self.err_at(oat, format!("unknown op '{opname}'")));
                };
                let attrs = self.attr_dict(g)?;
                self.expect(">")?;
                self.expect("(")?;
                let mut inputs = Vec::new();
                if !self.eat(")") {
                    loop {
                        self.skip_ws();
                        let wat = self.pos;
                        let wname = self.sigil_name('@')?;
                        match g.weight_by_name(&wname) {
                            Some(w) => inputs.push(w),
                            None => {
                                return Err(self.err_at(
                                    wat,
                                    format!("unknown weight @{wname} (operands come first)"),
                                ))
                            }
                        }
                        if self.eat(")") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                (WeightData::Derived(Derivation { op, attrs, inputs }), None)
            }
            _ => return Err(self.err_at(kat, "expected 'dense', 'file', 'elided' or 'derived'")),
        };
        g.add_weight(Weight {
            name,
            ty,
            data,
            source,
        });
        Ok(())
    }

    /// Maps a region of a file next to the `.kir` file. The path must be
    /// relative and stay inside the base folder.
    fn map_region(&mut self, file: &str, offset: u64, len: u64) -> Result<Blob, String> {
        let Some(base) = self.base_dir else {
            return Err("file<...> weights need a base folder (parse from a file)".into());
        };
        let rel = Path::new(file);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!(
                "weight file \"{file}\" must be a plain relative path inside the model's folder"
            ));
        }
        let path = base.join(rel);
        let blob = match self.mapped.get(&path) {
            Some(b) => b.clone(),
            None => {
                let meta = std::fs::symlink_metadata(&path)
                    .map_err(|e| format!("cannot open \"{file}\": {e}"))?;
                if !meta.file_type().is_file() {
                    return Err(format!("weight file \"{file}\" is not a regular file"));
                }
                let f = std::fs::File::open(&path)
                    .map_err(|e| format!("cannot open \"{file}\": {e}"))?;
                // SAFETY: the map is read-only; Kiln does not modify weight files while
                // compiling and documents that changing them concurrently is unsupported.
                let map = unsafe { memmap2::Mmap::map(&f) }
                    .map_err(|e| format!("cannot map \"{file}\": {e}"))?;
                let b = Blob::from_owner(Arc::new(map));
                self.mapped.insert(path.clone(), b.clone());
                b
            }
        };
        let (Ok(o), Ok(l)) = (usize::try_from(offset), usize::try_from(len)) else {
            return Err("offset or length too large".into());
        };
        blob.slice(o, l).ok_or_else(|| {
            format!(
                "\"{file}\" has {} bytes; offset {offset} + {len} bytes is out of range",
                blob.len()
            )
        })
    }

    // ---- graph ------------------------------------------------------------------

    fn module(&mut self) -> PResult<Parsed> {
        let mut g = Graph::new("main");
        loop {
            self.skip_ws();
            if self.keyword("weight") {
                self.weight_decl(&mut g)?;
            } else {
                break;
            }
        }
        self.expect_keyword("graph")?;
        g.name = self.sigil_name('@')?;
        let mut names: HashMap<String, ValueId> = HashMap::new();
        self.expect("(")?;
        self.graph_inputs(&mut g, &mut names)?;
        self.expect("->")?;
        self.expect("(")?;
        let mut out_types = Vec::new();
        if !self.eat(")") {
            loop {
                self.skip_ws();
                out_types.push((self.pos, self.tensor_type()?));
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        self.expect("{")?;
        let mut positions = Vec::new();
        let outputs = self.block(&mut g, &mut names, Some(&mut positions))?;
        self.expect("}")?;
        if self.keyword("memory_plan") {
            g.memory_plan = Some(self.memory_plan(&g, &names)?);
        }
        self.skip_ws();
        if !self.rest().is_empty() {
            let found = self.describe_next();
            return Err(self.err(format!("unexpected {found} after the graph")));
        }
        if outputs.len() != out_types.len() {
            return Err(self.err_at(
                out_types.first().map_or(self.pos, |t| t.0),
                format!(
                    "the signature lists {} results but 'return' has {}",
                    out_types.len(),
                    outputs.len()
                ),
            ));
        }
        for ((tat, t), (_, v)) in out_types.iter().zip(&outputs) {
            if &g.value(*v).ty != t {
                return Err(self.err_at(
                    *tat,
                    format!(
                        "result type {t} differs from the returned value's type {}",
                        g.value(*v).ty
                    ),
                ));
            }
        }
        g.outputs = outputs.into_iter().map(|(_, v)| v).collect();
        Ok(Parsed {
            graph: g,
            node_positions: positions,
        })
    }

    /// Nodes up to and including `return` and its values. Records each
    /// node's position when `positions` is given (top-level graphs).
    fn block(
        &mut self,
        g: &mut Graph,
        names: &mut HashMap<String, ValueId>,
        mut positions: Option<&mut Vec<(usize, usize)>>,
    ) -> PResult<Vec<(usize, ValueId)>> {
        loop {
            self.skip_ws();
            let at = self.pos;
            if self.keyword("return") {
                break;
            }
            if self.rest().is_empty() {
                return Err(self.err("expected 'return' before the end of the graph"));
            }
            if let Some(p) = positions.as_deref_mut() {
                p.push(self.line_col(at));
            }
            self.node(g, names)?;
        }
        let mut outputs = Vec::new();
        if self.peek_char() == Some('%') {
            loop {
                self.skip_ws();
                let at = self.pos;
                let name = self.sigil_name('%')?;
                let Some(&v) = names.get(&name) else {
                    return Err(self.err_at(at, format!("use of undefined value %{name}")));
                };
                outputs.push((at, v));
                if !self.eat(",") {
                    break;
                }
            }
        }
        Ok(outputs)
    }

    /// `{k = v, ...}` when present (an empty map otherwise).
    fn attr_dict(&mut self, g: &Graph) -> PResult<Attrs> {
        let mut attrs = Attrs::new();
        if self.eat("{") && !self.eat("}") {
            loop {
                self.skip_ws();
                let kat = self.pos;
                let Some(key) = self.word() else {
                    return Err(self.err("expected an attribute name"));
                };
                self.expect("=")?;
                let v = self.attr_value(g)?;
                if attrs.insert(key.to_string(), v).is_some() {
                    return Err(self.err_at(kat, format!("attribute '{key}' is given twice")));
                }
                if self.eat("}") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok(attrs)
    }

    /// `%name: type, ...)` after an opening `(`: a graph's or a body's inputs.
    fn graph_inputs(&mut self, g: &mut Graph, names: &mut HashMap<String, ValueId>) -> PResult<()> {
        if self.eat(")") {
            return Ok(());
        }
        loop {
            self.skip_ws();
            let at = self.pos;
            let name = self.sigil_name('%')?;
            self.expect(":")?;
            let ty = self.tensor_type()?;
            if names.contains_key(&name) {
                return Err(self.err_at(at, format!("value %{name} is defined twice")));
            }
            let v = g.add_input(&name, ty);
            names.insert(name, v);
            if self.eat(")") {
                return Ok(());
            }
            self.expect(",")?;
        }
    }

    /// The region of a fused node, after its opening `{`:
    /// `^(%a: type, ...): nodes return %v, ... }`.
    fn body(&mut self) -> PResult<Graph> {
        let mut body = Graph::new("body");
        let mut names: HashMap<String, ValueId> = HashMap::new();
        self.expect("^")?;
        self.expect("(")?;
        self.graph_inputs(&mut body, &mut names)?;
        self.expect(":")?;
        let outputs = self.block(&mut body, &mut names, None)?;
        self.expect("}")?;
        body.outputs = outputs.into_iter().map(|(_, v)| v).collect();
        Ok(body)
    }

    /// `{arena = N, align = A} { %v = arena|output|input N | weight @w ... }`
    /// after the `memory_plan` keyword.
    fn memory_plan(&mut self, g: &Graph, names: &HashMap<String, ValueId>) -> PResult<MemoryPlan> {
        self.expect("{")?;
        let (aat, arena) = self.keyed_int("arena")?;
        self.expect(",")?;
        let (lat, align) = self.keyed_int("align")?;
        self.expect("}")?;
        let (Ok(arena_bytes), Ok(align)) = (u64::try_from(arena), u64::try_from(align)) else {
            return Err(self.err_at(aat.min(lat), "arena and align must be non-negative"));
        };
        let mut plan = MemoryPlan {
            arena_bytes,
            align,
            ..MemoryPlan::default()
        };
        self.expect("{")?;
        while !self.eat("}") {
            self.skip_ws();
            let at = self.pos;
            let name = self.sigil_name('%')?;
            let Some(&v) = names.get(&name) else {
                return Err(self.err_at(at, format!("use of undefined value %{name}")));
            };
            self.expect("=")?;
            self.skip_ws();
            let kat = self.pos;
            let home = match self.word() {
                Some("weight") => {
                    let wat = self.pos;
                    let w = self.sigil_name('@')?;
                    Home::Weight(
                        g.weight_by_name(&w)
                            .ok_or_else(|| self.err_at(wat, format!("unknown weight @{w}")))?,
                    )
                }
                Some(kind @ ("arena" | "output" | "input")) => {
                    let nat = self.pos;
                    let n = u64::try_from(self.int_lit()?)
                        .map_err(|_| self.err_at(nat, "expected a non-negative integer"))?;
                    match kind {
                        "arena" => Home::Arena(n),
                        "output" => Home::Output(n as usize),
                        _ => Home::Input(n as usize),
                    }
                }
                _ => {
                    return Err(self.err_at(kat, "expected 'arena', 'output', 'input' or 'weight'"))
                }
            };
            if plan.homes.insert(v, home).is_some() {
                return Err(self.err_at(at, format!("%{name} has two homes")));
            }
        }
        Ok(plan)
    }

    fn node(&mut self, g: &mut Graph, names: &mut HashMap<String, ValueId>) -> PResult<()> {
        let mut results = Vec::new();
        loop {
            self.skip_ws();
            let at = self.pos;
            let name = self.sigil_name('%')?;
            if names.contains_key(&name) || results.iter().any(|(_, n)| n == &name) {
                return Err(self.err_at(at, format!("value %{name} is defined twice")));
            }
            results.push((at, name));
            if !self.eat(",") {
                break;
            }
        }
        self.expect("=")?;
        self.skip_ws();
        let oat = self.pos;
        let Some(opname) = self.word() else {
            return Err(self.err("expected an op name"));
        };
        let Some(op) = OpKind::from_name(opname) else {
            return Err(self.err_at(oat, format!("unknown op '{opname}'")));
        };
        let mut inputs = Vec::new();
        if matches!(self.peek_char(), Some('%')) || self.rest().starts_with("none") {
            loop {
                self.skip_ws();
                let at = self.pos;
                if self.keyword("none") {
                    inputs.push(None);
                } else {
                    let name = self.sigil_name('%')?;
                    match names.get(&name) {
                        Some(&v) => inputs.push(Some(v)),
                        None => {
                            return Err(self.err_at(at, format!("use of undefined value %{name}")))
                        }
                    }
                }
                if !self.eat(",") {
                    break;
                }
            }
        }
        let attrs = self.attr_dict(g)?;
        self.expect(":")?;
        let mut types = Vec::new();
        loop {
            types.push(self.tensor_type()?);
            if !self.eat(",") {
                break;
            }
        }
        if types.len() != results.len() {
            return Err(self.err_at(
                results[0].0,
                format!("{} results but {} types", results.len(), types.len()),
            ));
        }
        let mut loc = None;
        if self.keyword("loc") {
            self.expect("(")?;
            loc = Some(self.string_lit()?);
            self.expect(")")?;
        }
        let body = if self.eat("{") {
            Some(Box::new(self.body()?))
        } else {
            None
        };
        let named: Vec<(String, TensorType)> =
            results.iter().map(|(_, n)| n.clone()).zip(types).collect();
        let outs = g.add_node(op, inputs, attrs, named);
        if let Some(n) = g.nodes.last_mut() {
            n.loc = loc;
            n.body = body;
        }
        for ((_, name), v) in results.into_iter().zip(outs) {
            names.insert(name, v);
        }
        Ok(())
    }
}

fn parse_number(t: &str) -> Option<Attr> {
    let body = t.trim_start_matches(['-', '+']);
    match body {
        "inf" => {
            return Some(Attr::Float(if t.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }))
        }
        "nan" => return Some(Attr::Float(f64::NAN)),
        _ => {}
    }
    if t.contains(['.', 'e', 'E']) {
        t.parse::<f64>().ok().map(Attr::Float)
    } else {
        t.parse::<i64>().ok().map(Attr::Int)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let h = s.strip_prefix("0x")?;
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Encodes a decimal `dense<[...]>` list in the storage layout of `ty`.
fn encode_list(ty: &TensorType, list: &Attr) -> Result<Vec<u8>, String> {
    let numel = ty.numel().ok_or("weight type must be static")?;
    let (ints, floats): (Vec<i64>, Vec<f64>) = match list {
        Attr::Ints(v) => (v.clone(), v.iter().map(|&x| x as f64).collect()),
        Attr::Floats(v) => (Vec::new(), v.clone()),
        _ => return Err("a dense list holds numbers".into()),
    };
    let n = floats.len() as u64;
    if n != numel {
        return Err(format!("{ty} has {numel} elements but the list has {n}"));
    }
    let need_ints = || {
        if ints.len() as u64 == numel {
            Ok(&ints)
        } else {
            Err(format!("{} elements need integer literals", ty.dtype))
        }
    };
    let mut out = Vec::new();
    macro_rules! put_int {
        ($t:ty) => {{
            for &v in need_ints()? {
                let x =
                    <$t>::try_from(v).map_err(|_| format!("{v} does not fit in {}", ty.dtype))?;
                out.extend_from_slice(&x.to_le_bytes());
            }
        }};
    }
    match ty.dtype {
        DType::F32 => floats
            .iter()
            .for_each(|&v| out.extend_from_slice(&(v as f32).to_le_bytes())),
        DType::F64 => floats
            .iter()
            .for_each(|&v| out.extend_from_slice(&v.to_le_bytes())),
        DType::I64 => put_int!(i64),
        DType::I32 => put_int!(i32),
        DType::I16 => put_int!(i16),
        DType::I8 => put_int!(i8),
        DType::U64 => put_int!(u64),
        DType::U32 => put_int!(u32),
        DType::U16 => put_int!(u16),
        DType::U8 => put_int!(u8),
        d => return Err(format!("{d} weights must be written as a hex string")),
    }
    Ok(out)
}
