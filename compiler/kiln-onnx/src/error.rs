//! The one error type of the ONNX frontend.
//!
//! Invariant: every message starts with the model file (or `<memory>`) and
//! names the node, value or tensor involved, so that a user can find the
//! culprit without a debugger. [`OnnxError::kind`] is the only thing the CLI
//! looks at to choose an exit code.

use std::path::PathBuf;

/// The broad class of a failure, mapped by the CLI to exit codes 2/3/4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file is not a well-formed ONNX model (exit code 2).
    InvalidInput,
    /// A well-formed model uses something Kiln does not support (exit code 3).
    Unsupported,
    /// The model exceeds a size limit (exit code 4).
    ResourceLimit,
}

/// An error while loading or checking an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The model file itself could not be read or mapped.
    #[error("{file}: cannot read model file: {source}")]
    Io {
        /// The model file.
        file: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid `ModelProto`.
    #[error("{file}: not a valid ONNX protobuf: {source}")]
    Decode {
        /// The model file.
        file: String,
        /// The underlying error.
        #[source]
        source: prost::DecodeError,
    },
    /// The model file is larger than protobuf's 2 GiB message limit.
    #[error("{file}: model file is {size} bytes, over the 2 GiB protobuf limit (store weights as external data)")]
    TooLarge {
        /// The model file.
        file: String,
        /// Its size in bytes.
        size: u64,
    },
    /// The model's IR version is outside the supported range.
    #[error("{file}: unsupported ONNX IR version {version} (supported: {min}..={max})")]
    IrVersion {
        /// The model file.
        file: String,
        /// The version found.
        version: i64,
        /// Lowest supported version.
        min: i64,
        /// Highest supported version.
        max: i64,
    },
    /// The default-domain opset is outside the supported range.
    #[error("{file}: unsupported opset version {version} for domain 'ai.onnx' (supported: {min}..={max})")]
    OpsetVersion {
        /// The model file.
        file: String,
        /// The version found.
        version: i64,
        /// Lowest supported version.
        min: i64,
        /// Highest supported version.
        max: i64,
    },
    /// A node uses an operator domain Kiln does not implement.
    #[error("{file}: {context}: unsupported operator domain '{domain}'")]
    Domain {
        /// The model file.
        file: String,
        /// The node using the domain.
        context: String,
        /// The domain.
        domain: String,
    },
    /// An external-data file could not be opened or mapped.
    #[error("{file}: {context}: cannot read external data '{}': {source}", location.display())]
    ExternalIo {
        /// The model file.
        file: String,
        /// The tensor whose data is external.
        context: String,
        /// The resolved path.
        location: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A malformed model: the message says what and where.
    #[error("{file}: {context}: {message}")]
    Invalid {
        /// The model file.
        file: String,
        /// The node, value or tensor involved.
        context: String,
        /// What is wrong.
        message: String,
    },
    /// A well-formed model using a feature Kiln does not support.
    #[error("{file}: {context}: {message}")]
    Unsupported {
        /// The model file.
        file: String,
        /// The node, value or tensor involved.
        context: String,
        /// What is not supported.
        message: String,
    },
    /// Control flow whose trip count, condition or branch depends on the
    /// values of graph inputs. Kiln expands control flow at compile time,
    /// so such a model compiles once those inputs are given
    /// ([`crate::import::ImportOptions::input_values`]).
    #[error(
        "{file}: {context}: {what} is not known at compile time: it depends on the value{} of graph input{} {}; \
         freeze {} with kiln compile --freeze-input NAME=PATH (kiln run does this with the inputs it is given)",
        plural(inputs), plural(inputs), quoted(inputs), if inputs.len() == 1 { "it" } else { "them" }
    )]
    NeedsInputValues {
        /// The model file.
        file: String,
        /// The control-flow node.
        context: String,
        /// What must be known, e.g. "the trip count".
        what: String,
        /// The graph inputs it depends on, in graph order.
        inputs: Vec<String>,
    },
    /// A well-formed model over one of Kiln's size limits.
    #[error("{file}: {context}: {message}")]
    Limit {
        /// The model file.
        file: String,
        /// The node, value or tensor involved.
        context: String,
        /// Which limit.
        message: String,
    },
}

impl OnnxError {
    /// The class of this error, for the CLI's exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            OnnxError::Io { .. }
            | OnnxError::Decode { .. }
            | OnnxError::ExternalIo { .. }
            | OnnxError::Invalid { .. } => ErrorKind::InvalidInput,
            OnnxError::IrVersion { .. }
            | OnnxError::OpsetVersion { .. }
            | OnnxError::Domain { .. }
            | OnnxError::Unsupported { .. }
            | OnnxError::NeedsInputValues { .. } => ErrorKind::Unsupported,
            OnnxError::TooLarge { .. } | OnnxError::Limit { .. } => ErrorKind::ResourceLimit,
        }
    }
}

fn plural(v: &[String]) -> &'static str {
    if v.len() == 1 {
        ""
    } else {
        "s"
    }
}

fn quoted(v: &[String]) -> String {
    v.iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds errors that all name one file; threaded through the loader so
/// that no message can forget it.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub(crate) file: String,
    /// Accept operator domains Kiln does not import (for `kiln inspect`,
    /// which lists their operators as unsupported instead of failing).
    pub(crate) foreign_domains: bool,
}

impl Ctx {
    pub(crate) fn invalid(
        &self,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> OnnxError {
        OnnxError::Invalid {
            file: self.file.clone(),
            context: context.into(),
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(
        &self,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> OnnxError {
        OnnxError::Unsupported {
            file: self.file.clone(),
            context: context.into(),
            message: message.into(),
        }
    }

    pub(crate) fn limit(
        &self,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> OnnxError {
        OnnxError::Limit {
            file: self.file.clone(),
            context: context.into(),
            message: message.into(),
        }
    }
}
