//! The error type at the CLI edge and the one place where every typed error
//! of the libraries gets its stable error code.
//!
//! Invariants:
//! - Every failure the CLI reports has a [`Code`]; the code decides the
//!   exit status ([`Code::class`]), so two errors with one code never exit
//!   differently. The table in `docs/errors.md` is [`Code::ALL`] (a unit
//!   test compares them).
//! - The mapping from library errors ([`DriverError`], [`OnnxError`] and
//!   what they wrap) matches on every variant without a catch-all arm, so a
//!   new variant does not compile until it has a code here.
//! - A [`CliError`] keeps the human message (printed as `kiln: error:
//!   MESSAGE`, the default) and the structured diagnostics behind it (one
//!   JSON object each with `--message-format=json`): file, node, line and
//!   column where the library error knows them.

use kiln_driver::DriverError;
use kiln_onnx::OnnxError;
use std::fmt;

/// Exit-code classes; see the crate docs for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitClass {
    /// 1: a bug in Kiln, an environment failure, or a diagnostics mismatch.
    Internal,
    /// 2: invalid input or usage.
    Invalid,
    /// 3: a feature Kiln does not support.
    Unsupported,
    /// 4: a resource limit.
    Resource,
    /// 5: results differ from the expected or reference values.
    Mismatch,
}

impl ExitClass {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitClass::Internal => 1,
            ExitClass::Invalid => 2,
            ExitClass::Unsupported => 3,
            ExitClass::Resource => 4,
            ExitClass::Mismatch => 5,
        }
    }
}

/// Defines [`Code`] with its identifier, exit class and meaning in one
/// table, so that none of them can be forgotten for a new code.
macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $id:literal, $class:ident, $meaning:literal;)*) => {
        /// Stable error codes (`E<exit code><number>`); documented in
        /// `docs/errors.md` and the README. A code never changes meaning.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $name,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The stable identifier, e.g. `E2003`.
            pub fn id(self) -> &'static str {
                match self { $(Code::$name => $id,)* }
            }

            /// The exit-code class.
            pub fn class(self) -> ExitClass {
                match self { $(Code::$name => ExitClass::$class,)* }
            }

            /// What the code means, for the documentation.
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$name => $meaning,)* }
            }
        }
    };
}

codes! {
    /// A bug in Kiln.
    Internal = "E1001", Internal,
        "internal error: a bug in Kiln (a pass broke the graph, the interpreter disagrees with shape inference, ...)";
    /// MLIR or LLVM failed on a graph Kiln lowered.
    Codegen = "E1002", Internal, "code generation failed in MLIR or LLVM";
    /// The linker is missing or failed.
    Link = "E1003", Internal, "no linker was found, or linking failed";
    /// An I/O failure that is not about a path the user named.
    Io = "E1004", Internal, "an I/O failure of the environment (temporary files, pipes)";
    /// The compiled code reported a failure.
    Execution = "E1005", Internal, "the compiled code failed while running";
    /// `kiln opt --verify-diagnostics` found a mismatch.
    DiagnosticsMismatch = "E1006", Internal, "`kiln opt --verify-diagnostics`: the diagnostics differ from the expected-error comments";
    /// The reference engine of `kiln verify` failed.
    Reference = "E1007", Internal, "`kiln verify --reference ort`: ONNX Runtime failed to run the model";
    /// Other invalid input.
    Invalid = "E2000", Invalid, "invalid input (the message says what and where)";
    /// Bad command-line arguments.
    Usage = "E2001", Invalid, "bad command-line usage: unknown flag, missing or malformed argument";
    /// A path the user named cannot be used.
    File = "E2002", Invalid, "a file or folder the user named is missing, unreadable, unwritable or of the wrong kind";
    /// Kiln IR text does not parse or verify.
    KirSyntax = "E2003", Invalid, "a `.kir` file does not parse or verify (file, line and column given)";
    /// A malformed ONNX model.
    OnnxModel = "E2004", Invalid, "a malformed ONNX model (file and node given)";
    /// A malformed tensor file.
    TensorFile = "E2005", Invalid, "a malformed or unsupported tensor file (`.npy`, `.pb`)";
    /// Run inputs that do not fit the model.
    BadInputs = "E2006", Invalid, "inputs that do not match the model: missing, unknown, wrong dtype or shape";
    /// Not a usable artifact.
    CorruptArtifact = "E2007", Invalid, "not a usable Kiln artifact: truncated, altered, of another ABI version, or not an artifact at all";
    /// An unknown target or CPU.
    Target = "E2008", Invalid, "an unknown or invalid `--target` or `--cpu`";
    /// A bad `KILN_*` environment variable.
    Environment = "E2009", Invalid, "an invalid `KILN_*` environment variable (the variable is named)";
    /// A node that cannot be compiled.
    UnsupportedOp = "E3001", Unsupported, "a node Kiln cannot compile (the node is named)";
    /// An ONNX feature Kiln does not support.
    UnsupportedOnnx = "E3002", Unsupported, "an ONNX feature Kiln does not support: IR version, opset, domain, operator, input-dependent control flow";
    /// Another unsupported feature.
    Unsupported = "E3003", Unsupported, "another unsupported feature: a dtype, a target, dynamic shapes, ...";
    /// A size or memory limit.
    ResourceLimit = "E4001", Resource, "a size or memory limit, or a full disk";
    /// The CPU lacks features the artifact needs.
    UnsupportedCpu = "E4002", Resource, "this CPU cannot run the artifact (the missing features are named)";
    /// A GPU artifact's driver library or device is absent.
    DeviceUnavailable = "E4003", Resource, "a GPU artifact's driver or device is absent (\"CUDA driver not found\", no Vulkan device, ...)";
    /// Outputs differ from `kiln run --expected`.
    OutputMismatch = "E5001", Mismatch, "`kiln run --expected`: an output differs from the expected values (output and first index named)";
    /// `kiln verify` found a diverging node.
    Diverged = "E5002", Mismatch, "`kiln verify`: the compiled model diverges from the reference (first node named)";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The severity of a diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// The command failed.
    Error,
    /// Something the user should know; the command went on.
    Warning,
}

impl Level {
    /// The name in JSON and text.
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// One structured diagnostic (one JSON object with
/// `--message-format=json`).
#[derive(Clone, Debug, PartialEq)]
pub struct Diag {
    /// Severity.
    pub level: Level,
    /// Stable code; `None` for a warning without one.
    pub code: Option<Code>,
    /// The message.
    pub message: String,
    /// The file concerned, when known.
    pub file: Option<String>,
    /// The node (or tensor) concerned, when known.
    pub node: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
}

impl Diag {
    /// An error with only a message.
    pub fn error(code: Code, message: impl Into<String>) -> Diag {
        Diag {
            level: Level::Error,
            code: Some(code),
            message: message.into(),
            file: None,
            node: None,
            line: None,
            column: None,
        }
    }

    /// A warning.
    pub fn warning(message: impl Into<String>) -> Diag {
        Diag {
            level: Level::Warning,
            code: None,
            ..Diag::error(Code::Invalid, message)
        }
    }

    /// With the file concerned.
    pub fn file(mut self, file: impl Into<String>) -> Diag {
        self.file = Some(file.into());
        self
    }

    /// With the node concerned.
    pub fn node(mut self, node: impl Into<String>) -> Diag {
        self.node = Some(node.into());
        self
    }

    /// With a 1-based line and column (0 means unknown).
    pub fn at(mut self, line: usize, column: usize) -> Diag {
        self.line = (line > 0).then_some(line);
        self.column = (column > 0).then_some(column);
        self
    }

    /// The JSON object of this diagnostic (keys always present; unknown
    /// values are `null`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "diagnostic",
            "level": self.level.name(),
            "code": self.code.map(Code::id),
            "exit_code": self.code.map(|c| c.class().code()),
            "message": self.message,
            "file": self.file,
            "node": self.node,
            "line": self.line,
            "column": self.column,
        })
    }
}

/// A failed command: its code, the human message and the diagnostics.
#[derive(Debug)]
pub struct CliError {
    code: Code,
    /// The human-readable message; `None` when the diagnostics were
    /// already printed.
    message: Option<String>,
    /// The structured diagnostics (at least one unless already printed).
    diags: Vec<Diag>,
}

impl CliError {
    /// An error with a message and no further location.
    pub fn new(code: Code, message: impl Into<String>) -> CliError {
        let message = message.into();
        CliError {
            code,
            diags: vec![Diag::error(code, message.clone())],
            message: Some(message),
        }
    }

    /// An error with its structured diagnostics; `message` is the human text.
    pub fn with_diags(code: Code, message: impl Into<String>, diags: Vec<Diag>) -> CliError {
        CliError {
            code,
            message: Some(message.into()),
            diags,
        }
    }

    /// An error whose details were already printed.
    pub fn reported(code: Code) -> CliError {
        CliError {
            code,
            message: None,
            diags: Vec::new(),
        }
    }

    /// The exit-code class.
    pub fn class(&self) -> ExitClass {
        self.code.class()
    }

    /// The human message, `None` when already printed.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The structured diagnostics.
    pub fn diags(&self) -> &[Diag] {
        &self.diags
    }

    /// Names `path` as the file of every diagnostic that names none (the
    /// model a lowering or pass error is about).
    pub fn in_file(mut self, path: &std::path::Path) -> CliError {
        for d in &mut self.diags {
            if d.file.is_none() {
                d.file = Some(path.display().to_string());
            }
        }
        self
    }

    /// An I/O error while doing `what`, coded by its kind as [`io_code`]
    /// does.
    pub fn io(what: impl fmt::Display, e: &std::io::Error) -> CliError {
        CliError::new(io_code(e), format!("{what}: {e}"))
    }

    /// An error about one file (named in the diagnostic's `file`).
    pub fn at_file(code: Code, message: impl Into<String>, path: &std::path::Path) -> CliError {
        let message = message.into();
        let d = Diag::error(code, message.clone()).file(path.display().to_string());
        CliError::with_diags(code, message, vec![d])
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or("failed"))
    }
}

impl std::error::Error for CliError {}

/// The code of an I/O error on a path the user named, by the driver's
/// classification ([`kiln_driver::io_kind`]): disk full and out of memory
/// are limits; a missing, unreadable, unwritable or wrong-kind path is the
/// user's (exit 2); anything else is the environment's.
pub fn io_code(e: &std::io::Error) -> Code {
    match kiln_driver::io_kind(e) {
        kiln_driver::ErrorKind::ResourceLimit => Code::ResourceLimit,
        kiln_driver::ErrorKind::InvalidInput => Code::File,
        kiln_driver::ErrorKind::Internal | kiln_driver::ErrorKind::Unsupported => Code::Io,
    }
}

/// Maps a driver error to its code and diagnostics.
pub fn driver_error(e: DriverError) -> CliError {
    let mut diags = Vec::new();
    let code = driver_diags(&e, &mut diags);
    CliError::with_diags(code, e.to_string(), diags)
}

/// Maps a frontend error to its code and diagnostic.
pub fn onnx_error(e: OnnxError) -> CliError {
    let d = onnx_diag(&e);
    let code = d.code.unwrap_or(Code::Internal);
    CliError::with_diags(code, e.to_string(), vec![d])
}

/// The code of `e`; pushes its diagnostics (one per located problem).
fn driver_diags(e: &DriverError, out: &mut Vec<Diag>) -> Code {
    let message = e.to_string();
    let simple = |out: &mut Vec<Diag>, code: Code| {
        out.push(Diag::error(code, message.clone()));
        code
    };
    match e {
        DriverError::Onnx(e) => {
            let d = onnx_diag(e);
            let code = d.code.unwrap_or(Code::Internal);
            out.push(d);
            code
        }
        DriverError::Parse(errs) => {
            for p in errs {
                out.push(
                    Diag::error(Code::KirSyntax, p.message.clone())
                        .file(p.file.clone())
                        .at(p.line, p.col),
                );
            }
            Code::KirSyntax
        }
        DriverError::Pass(kiln_passes::PassError::Unsupported { .. }) => {
            simple(out, Code::Unsupported)
        }
        DriverError::Pass(kiln_passes::PassError::Verify { .. }) => simple(out, Code::Internal),
        DriverError::Lower(l) => {
            // A reason starting with "internal:" is Kiln's bug, not an
            // unsupported op (as the driver's ErrorKind says).
            let code_of = |reason: &str| {
                if reason.starts_with("internal:") {
                    Code::Internal
                } else {
                    Code::UnsupportedOp
                }
            };
            for n in l.nodes() {
                let code = code_of(&n.reason);
                out.push(Diag::error(code, format!("cannot lower {n}")).node(n.node));
            }
            if l.is_internal() {
                Code::Internal
            } else {
                Code::UnsupportedOp
            }
        }
        DriverError::Codegen(c) => {
            let code = codegen_code(c);
            let d = Diag::error(code, message.clone());
            out.push(match c {
                kiln_driver::CodegenError::Io { path, .. } => d.file(path.display().to_string()),
                _ => d,
            });
            code
        }
        DriverError::Runtime(r) => simple(out, runtime_code(r.status())),
        DriverError::Interp(i) => {
            let (code, node) = interp_code(i);
            let d = Diag::error(code, message.clone());
            out.push(match node {
                Some(n) => d.node(n),
                None => d,
            });
            code
        }
        DriverError::Invalid(_) => simple(out, Code::Invalid),
        DriverError::Unsupported(_) => simple(out, Code::Unsupported),
        DriverError::Limit(_) => simple(out, Code::ResourceLimit),
        DriverError::Internal(_) => simple(out, Code::Internal),
        DriverError::Io { path, source, .. } => {
            let code = io_code(source);
            out.push(Diag::error(code, message.clone()).file(path.display().to_string()));
            code
        }
        DriverError::TensorFile { path, .. } => {
            out.push(
                Diag::error(Code::TensorFile, message.clone()).file(path.display().to_string()),
            );
            Code::TensorFile
        }
    }
}

/// The code of a code generation error.
fn codegen_code(e: &kiln_driver::CodegenError) -> Code {
    use kiln_driver::CodegenError as C;
    match e {
        C::UnknownTarget(_) | C::UnknownCpu { .. } | C::TargetMachine { .. } => Code::Target,
        C::UnsupportedTarget { .. } => Code::Unsupported,
        C::MlirParse(_)
        | C::PassPipelineParse { .. }
        | C::PassFailed { .. }
        | C::LlvmTranslation(_)
        | C::LlvmVerify(_)
        | C::LlvmPasses { .. }
        | C::Emission(_)
        | C::Object(_)
        | C::UnknownKernel(_)
        | C::KernelBitcode(_)
        | C::Gpu(_)
        | C::DeviceTool { .. } => Code::Codegen,
        C::InvalidSymbol(_) => Code::Invalid,
        C::LinkerNotFound { .. } | C::LinkFailed { .. } => Code::Link,
        C::Io { source, .. } => io_code(source),
    }
}

/// The code of a runtime status.
fn runtime_code(s: kiln_driver::RuntimeStatus) -> Code {
    use kiln_driver::RuntimeStatus as S;
    match s {
        S::Ok | S::Internal => Code::Internal,
        S::InvalidArgument
        | S::DtypeMismatch
        | S::ShapeMismatch
        | S::BufferTooSmall
        | S::Misaligned
        | S::BufferOverlap => Code::BadInputs,
        S::LoadFailed | S::AbiMismatch | S::CorruptArtifact => Code::CorruptArtifact,
        S::OutOfMemory => Code::ResourceLimit,
        S::ExecutionFailed => Code::Execution,
        S::UnsupportedCpu => Code::UnsupportedCpu,
        S::InvalidEnvironment => Code::Environment,
        S::DeviceUnavailable => Code::DeviceUnavailable,
        S::DeviceFailed => Code::Execution,
    }
}

/// The code of an interpreter error and the node it happened in.
fn interp_code(e: &kiln_driver::InterpError) -> (Code, Option<String>) {
    use kiln_driver::InterpError as I;
    match e {
        I::Node { node, source } => {
            let (code, inner) = interp_code(source);
            (code, inner.or_else(|| Some(node.clone())))
        }
        I::Unsupported(_) => (Code::Unsupported, None),
        I::TooLarge { .. } => (Code::ResourceLimit, None),
        I::Graph(_) | I::Internal(_) => (Code::Internal, None),
        I::Invalid(_) | I::Elided(_) | I::BadData(_) => (Code::Invalid, None),
        I::Input { name, .. } => (Code::BadInputs, Some(name.clone())),
    }
}

/// The diagnostic of a frontend error: its file, and the node, value or
/// tensor it names.
fn onnx_diag(e: &OnnxError) -> Diag {
    use OnnxError as O;
    let message = e.to_string();
    let (code, file, node) = match e {
        O::Io { file, .. } => (Code::File, file, None),
        O::Decode { file, .. } => (Code::OnnxModel, file, None),
        O::TooLarge { file, .. } => (Code::ResourceLimit, file, None),
        O::IrVersion { file, .. } | O::OpsetVersion { file, .. } => {
            (Code::UnsupportedOnnx, file, None)
        }
        O::Domain { file, context, .. }
        | O::Unsupported { file, context, .. }
        | O::NeedsInputValues { file, context, .. } => (Code::UnsupportedOnnx, file, Some(context)),
        O::ExternalIo { file, context, .. } => (Code::File, file, Some(context)),
        O::Invalid { file, context, .. } => (Code::OnnxModel, file, Some(context)),
        O::Limit { file, context, .. } => (Code::ResourceLimit, file, Some(context)),
    };
    let d = Diag::error(code, message).file(file.clone());
    match node {
        Some(n) => d.node(n.clone()),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_start_with_their_exit_code() {
        let mut ids: Vec<&str> = Code::ALL.iter().map(|c| c.id()).collect();
        for c in Code::ALL {
            let digit = c.id().as_bytes()[1] - b'0';
            assert_eq!(digit, c.class().code(), "{c}");
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Code::ALL.len());
    }

    /// The documented table is the code table, row for row.
    #[test]
    fn docs_list_every_code() {
        let doc = include_str!("../../../docs/errors.md");
        for c in Code::ALL {
            let row = format!("| {} | {} | {} |", c.id(), c.class().code(), c.meaning());
            assert!(doc.contains(&row), "docs/errors.md lacks the row\n{row}");
        }
        let readme = include_str!("../../../README.md");
        for c in Code::ALL {
            assert!(readme.contains(c.id()), "README.md does not mention {c}");
        }
    }

    /// Every driver error exits with the class its `ErrorKind` names.
    #[test]
    fn codes_agree_with_the_driver_error_kinds() {
        let io = |k| DriverError::io("read", "x", std::io::Error::from(k));
        let cases = [
            DriverError::Invalid("x".into()),
            DriverError::Unsupported("x".into()),
            DriverError::Limit("x".into()),
            DriverError::Internal("x".into()),
            io(std::io::ErrorKind::NotFound),
            io(std::io::ErrorKind::PermissionDenied),
            io(std::io::ErrorKind::StorageFull),
            io(std::io::ErrorKind::Interrupted),
            DriverError::Runtime(kiln_driver::RuntimeError::CorruptArtifact("x".into())),
            DriverError::Runtime(kiln_driver::RuntimeError::UnsupportedCpu("x".into())),
            DriverError::Runtime(kiln_driver::RuntimeError::ExecutionFailed(1)),
            DriverError::Runtime(kiln_driver::RuntimeError::InvalidEnvironment {
                name: "KILN_NUM_THREADS".into(),
                value: "x".into(),
                expected: "a positive integer".into(),
            }),
            DriverError::Interp(kiln_driver::InterpError::Unsupported("x".into())),
            DriverError::Codegen(kiln_driver::CodegenError::UnknownTarget("x".into())),
            DriverError::TensorFile {
                path: "x.npy".into(),
                message: "bad".into(),
            },
        ];
        for e in cases {
            let want = e.kind().exit_code();
            let got = driver_error(e);
            assert_eq!(got.class().code(), want, "{got}");
        }
    }
}
