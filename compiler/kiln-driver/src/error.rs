//! The one error type of the driver, and its exit-code class.
//!
//! Invariant: every error knows its [`ErrorKind`], the only thing the CLI
//! looks at to choose an exit code; messages name the file, tensor or node
//! involved.

use std::path::PathBuf;

/// The broad class of a failure (the CLI's exit code in brackets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A bug in Kiln or an environment problem (1).
    Internal,
    /// Malformed input or bad usage (2).
    InvalidInput,
    /// A well-formed input using something Kiln does not support (3).
    Unsupported,
    /// A size or memory limit (4).
    ResourceLimit,
}

impl ErrorKind {
    /// The process exit code of this class.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Internal => 1,
            ErrorKind::InvalidInput => 2,
            ErrorKind::Unsupported => 3,
            ErrorKind::ResourceLimit => 4,
        }
    }
}

impl From<kiln_onnx::ErrorKind> for ErrorKind {
    fn from(kind: kiln_onnx::ErrorKind) -> ErrorKind {
        match kind {
            kiln_onnx::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            kiln_onnx::ErrorKind::Unsupported => ErrorKind::Unsupported,
            kiln_onnx::ErrorKind::ResourceLimit => ErrorKind::ResourceLimit,
        }
    }
}

/// Everything that can go wrong in the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The ONNX frontend refused the model.
    #[error(transparent)]
    Onnx(#[from] kiln_onnx::OnnxError),
    /// A `.kir` file did not parse or verify (every error, one per line).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Parse(Vec<kiln_ir::text::ParseError>),
    /// A graph pass failed.
    #[error("graph pipeline failed: {0}")]
    Pass(#[from] kiln_passes::PassError),
    /// Lowering to MLIR refused some nodes.
    #[error(transparent)]
    Lower(#[from] kiln_codegen::lower::LowerError),
    /// MLIR/LLVM compilation, object writing or linking failed.
    #[error(transparent)]
    Codegen(#[from] kiln_codegen::CodegenError),
    /// The runtime refused or failed to run the artifact.
    #[error("runtime: {0}")]
    Runtime(#[from] kiln_runtime::Error),
    /// The reference interpreter failed.
    #[error("interpreter: {0}")]
    Interp(#[from] kiln_interp::InterpError),
    /// Bad input or usage; the message says what and where.
    #[error("{0}")]
    Invalid(String),
    /// Something Kiln does not support; the message says what.
    #[error("{0}")]
    Unsupported(String),
    /// A size limit.
    #[error("{0}")]
    Limit(String),
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
    /// A tensor file (`.npy`, `.pb`) is malformed or of an unsupported kind.
    #[error("{}: {message}", path.display())]
    TensorFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl DriverError {
    /// The exit-code class.
    pub fn kind(&self) -> ErrorKind {
        use kiln_codegen::CodegenError as C;
        match self {
            DriverError::Onnx(e) => e.kind().into(),
            DriverError::Parse(_) | DriverError::Invalid(_) | DriverError::TensorFile { .. } => {
                ErrorKind::InvalidInput
            }
            DriverError::Pass(kiln_passes::PassError::Unsupported { .. }) => ErrorKind::Unsupported,
            DriverError::Pass(kiln_passes::PassError::Verify { .. }) => ErrorKind::Internal,
            DriverError::Lower(e) if e.is_internal() => ErrorKind::Internal,
            DriverError::Lower(_) | DriverError::Unsupported(_) => ErrorKind::Unsupported,
            DriverError::Codegen(e) => match e {
                C::UnknownTarget(_) | C::UnknownCpu { .. } => ErrorKind::InvalidInput,
                C::UnsupportedTarget { .. } => ErrorKind::Unsupported,
                // The GPU lowering cannot handle a construct (host code that reads
                // device memory, an argument type); `internal:` marks Kiln bugs.
                C::Gpu(m) if !m.starts_with("internal:") => ErrorKind::Unsupported,
                // LLVM refuses a triple or CPU the user named (--cpu).
                C::TargetMachine { .. } => ErrorKind::InvalidInput,
                C::Io { source, .. } => io_kind(source),
                _ => ErrorKind::Internal,
            },
            DriverError::Runtime(e) => match e.status() {
                // This machine cannot run the artifact: a limit of the
                // machine, like memory (exit 4).
                // So is a GPU artifact without its driver or device ("CUDA driver not
                // found").
                kiln_runtime::Status::OutOfMemory
                | kiln_runtime::Status::UnsupportedCpu
                | kiln_runtime::Status::DeviceUnavailable => ErrorKind::ResourceLimit,
                kiln_runtime::Status::ExecutionFailed
                | kiln_runtime::Status::Internal
                | kiln_runtime::Status::DeviceFailed => ErrorKind::Internal,
                _ => ErrorKind::InvalidInput,
            },
            DriverError::Interp(e) => interp_kind(e),
            DriverError::Limit(_) => ErrorKind::ResourceLimit,
            DriverError::Internal(_) => ErrorKind::Internal,
            DriverError::Io { source, .. } => io_kind(source),
        }
    }

    /// A malformed tensor file.
    pub fn tensor_file(path: &std::path::Path, message: impl Into<String>) -> Self {
        DriverError::TensorFile {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// An I/O error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DriverError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The class of an interpreter error, looking through the node that
/// failed to the reason.
fn interp_kind(e: &kiln_interp::InterpError) -> ErrorKind {
    use kiln_interp::InterpError as I;
    match e {
        I::Node { source, .. } => interp_kind(source),
        I::Unsupported(_) => ErrorKind::Unsupported,
        I::TooLarge { .. } => ErrorKind::ResourceLimit,
        // A graph that verified but that the interpreter finds malformed, or
        // a result disagreeing with shape inference, is Kiln's bug.
        I::Graph(_) | I::Internal(_) => ErrorKind::Internal,
        I::Invalid(_) | I::Elided(_) | I::BadData(_) | I::Input { .. } => ErrorKind::InvalidInput,
    }
}

/// Disk-full and out-of-memory are resource limits; a path the user gave
/// that is missing, unreadable, unwritable or of the wrong kind (a file
/// where a folder is needed, or the reverse) is the user's input (exit 2);
/// anything else is the environment's fault.
pub fn io_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::OutOfMemory | K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
            ErrorKind::ResourceLimit
        }
        K::NotFound
        | K::PermissionDenied
        | K::InvalidData
        | K::IsADirectory
        | K::NotADirectory
        | K::AlreadyExists
        | K::ReadOnlyFilesystem
        | K::InvalidFilename
        | K::DirectoryNotEmpty
        | K::InvalidInput => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    }
}

/// Result type of this crate.
pub type Result<T, E = DriverError> = std::result::Result<T, E>;
