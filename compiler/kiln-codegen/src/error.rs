//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while lowering MLIR to machine code, writing objects or linking.
///
/// Messages carry MLIR/LLVM diagnostics verbatim so that a caller can show them to the user.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// A target description string did not name a known target.
    #[error("unknown target '{0}' (expected host, native, x86-64[-vN], x86_64[:CPU], aarch64[-linux-gnu][:CPU], aarch64-apple-darwin, cuda[:sm_NN], rocm[:gfxNNN], vulkan or metal; see `kiln compile --print-targets`)")]
    UnknownTarget(String),
    /// LLVM knows no such CPU for the architecture.
    #[error("unknown CPU '{cpu}' for {arch} (list them with `kiln compile --print-cpus --target={arch}`)")]
    UnknownCpu {
        /// The architecture's name.
        arch: &'static str,
        /// The CPU asked for.
        cpu: String,
    },
    /// The operation is not available for this target (for example a host data object for a GPU).
    #[error("{operation} is not supported for target {target}")]
    UnsupportedTarget {
        /// What was asked for.
        operation: &'static str,
        /// The target's display name.
        target: String,
    },
    /// MLIR text did not parse or verify.
    #[error("invalid MLIR module:\n{0}")]
    MlirParse(String),
    /// A pass pipeline string did not parse (unknown pass, bad option, ...).
    #[error("invalid pass pipeline '{pipeline}': {message}")]
    PassPipelineParse {
        /// The pipeline text as given.
        pipeline: String,
        /// MLIR's explanation.
        message: String,
    },
    /// A pass of the pipeline failed.
    #[error("pass pipeline '{pipeline}' failed:\n{diagnostics}")]
    PassFailed {
        /// The pipeline text as given.
        pipeline: String,
        /// Diagnostics emitted while running.
        diagnostics: String,
    },
    /// The module could not be translated from the MLIR LLVM dialect to LLVM IR
    /// (usually because some operations were not lowered to the `llvm` dialect).
    #[error("translation of MLIR to LLVM IR failed:\n{0}")]
    LlvmTranslation(String),
    /// LLVM rejected the target triple or CPU.
    #[error("cannot create an LLVM target machine for {triple} (cpu '{cpu}'): {message}")]
    TargetMachine {
        /// The triple asked for.
        triple: String,
        /// The CPU asked for.
        cpu: String,
        /// LLVM's explanation.
        message: String,
    },
    /// The LLVM IR verifier rejected the translated module.
    #[error("invalid LLVM IR after translation: {0}")]
    LlvmVerify(String),
    /// The LLVM optimisation pipeline failed.
    #[error("LLVM pass pipeline '{pipeline}' failed: {message}")]
    LlvmPasses {
        /// The pipeline text, e.g. `default<O3>`.
        pipeline: String,
        /// LLVM's explanation.
        message: String,
    },
    /// The LLVM back end could not emit code.
    #[error("LLVM code emission failed: {0}")]
    Emission(String),
    /// Building an object file with the `object` crate failed.
    #[error("cannot build object file: {0}")]
    Object(#[from] object::write::Error),
    /// A symbol name is not usable (empty, or contains a NUL byte).
    #[error("invalid symbol name {0:?}")]
    InvalidSymbol(String),
    /// No linker was found.
    #[error("no linker found (tried {tried})")]
    LinkerNotFound {
        /// The linkers looked for.
        tried: String,
    },
    /// The linker ran and failed.
    #[error("linker {linker} failed with {status}:\n{stderr}")]
    LinkFailed {
        /// The linker program.
        linker: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed.
        stderr: String,
    },
    /// The GPU lowering met something it cannot handle (messages starting with `internal:`
    /// are Kiln bugs).
    #[error("GPU lowering: {0}")]
    Gpu(String),

    /// A tool device code generation needs (ptxas, spirv-cross) failed.
    #[error("{tool} failed: {message}")]
    DeviceTool {
        /// The tool.
        tool: String,
        /// Its diagnostics.
        message: String,
    },
    /// A kernel name that the CPU kernel library does not define.
    #[error("unknown CPU kernel '{0}'")]
    UnknownKernel(String),
    /// The embedded kernel bitcode could not be read (a build problem, never user input).
    #[error("cannot load the CPU kernel library's bitcode: {0}")]
    KernelBitcode(String),
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("write", "create temporary file in", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result type of this crate.
pub type Result<T, E = CodegenError> = std::result::Result<T, E>;
