//! Typed runtime errors and their stable C status codes.
//!
//! Invariants:
//! - Every [`Error`] maps to exactly one [`Status`], and status codes never
//!   change meaning (they are part of `kiln.h`).
//! - The message of an error (its `Display`) is the one both front ends show:
//!   `kiln_last_error()` in C and `to_string()` in Rust.
//!
//! `Display` is written by hand rather than derived with `thiserror`: this
//! crate must not link `std`, and the workspace enables thiserror's `std`
//! feature for other crates.

use crate::DType;
use alloc::string::String;
use core::ffi::CStr;
use core::fmt;

/// `kiln_status` codes (see `kiln.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    InvalidArgument = 1,
    DtypeMismatch = 2,
    ShapeMismatch = 3,
    BufferTooSmall = 4,
    Misaligned = 5,
    BufferOverlap = 6,
    LoadFailed = 7,
    AbiMismatch = 8,
    OutOfMemory = 9,
    ExecutionFailed = 10,
    Internal = 11,
    CorruptArtifact = 12,
    UnsupportedCpu = 13,
    InvalidEnvironment = 14,
    DeviceUnavailable = 15,
    DeviceFailed = 16,
}

impl Status {
    /// The C value of this status.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// A short constant description of a C status value, as in
    /// `kiln_status_string`; "unknown status" for values outside the enum.
    pub fn c_description(code: i32) -> &'static CStr {
        match code {
            0 => c"ok",
            1 => c"invalid argument",
            2 => c"dtype mismatch",
            3 => c"shape mismatch",
            4 => c"buffer too small",
            5 => c"misaligned buffer",
            6 => c"overlapping buffers",
            7 => c"load failed",
            8 => c"ABI version mismatch",
            9 => c"out of memory",
            10 => c"execution failed",
            11 => c"internal error",
            12 => c"corrupt artifact",
            13 => c"unsupported CPU",
            14 => c"invalid environment variable",
            15 => c"device unavailable",
            16 => c"device failed",
            _ => c"unknown status",
        }
    }
}

/// Which side of the model a tensor belongs to; used in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Input,
    Output,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Input => "input",
            Role::Output => "output",
        })
    }
}

/// Names one tensor of a model in error messages: `input 0 ('x')`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorName {
    pub role: Role,
    pub index: usize,
    pub name: String,
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ('{}')", self.role, self.index, self.name)
    }
}

/// Everything that can go wrong in the runtime.
#[derive(Debug)]
pub enum Error {
    InvalidArgument(String),
    DtypeMismatch {
        tensor: TensorName,
        expected: DType,
        /// The dtype name, or the raw code when it is unknown.
        got: String,
    },
    ShapeMismatch {
        tensor: TensorName,
        detail: String,
    },
    BufferTooSmall {
        tensor: TensorName,
        required: u64,
        got: u64,
    },
    Misaligned {
        tensor: TensorName,
        dtype: DType,
        align: usize,
        address: usize,
    },
    BufferOverlap {
        first: TensorName,
        second: TensorName,
    },
    LoadFailed(String),
    AbiMismatch {
        found: u32,
        expected: u32,
    },
    OutOfMemory(String),
    ExecutionFailed(i32),
    Internal(String),
    /// The file is truncated, altered or not a sealed Kiln artifact.
    CorruptArtifact(String),
    /// This CPU cannot run the artifact (another architecture, or missing
    /// features, named in the message).
    UnsupportedCpu(String),
    /// A GPU artifact's driver library or device is absent: the message
    /// names the API ("CUDA driver not found: ...").
    DeviceUnavailable(String),
    /// The device reported an error while loading code or running.
    DeviceFailed(String),
    /// A `KILN_*` environment variable the runtime reads is malformed.
    InvalidEnvironment {
        name: String,
        value: String,
        /// What a valid value looks like.
        expected: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::DtypeMismatch {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "{tensor}: dtype mismatch: expected {expected}, got {got}"
            ),
            Error::ShapeMismatch { tensor, detail } => {
                write!(f, "{tensor}: shape mismatch: {detail}")
            }
            Error::BufferTooSmall {
                tensor,
                required,
                got,
            } => write!(
                f,
                "{tensor}: buffer too small: needs {required} bytes, got {got}"
            ),
            Error::Misaligned {
                tensor,
                dtype,
                align,
                address,
            } => write!(
                f,
                "{tensor}: misaligned data pointer {address:#x}: {dtype} needs {align}-byte alignment"
            ),
            Error::BufferOverlap { first, second } => {
                write!(f, "overlapping buffers: {first} and {second} share memory")
            }
            Error::LoadFailed(m) => write!(f, "load failed: {m}"),
            Error::AbiMismatch { found, expected } => write!(
                f,
                "ABI mismatch: artifact has ABI version {found}, runtime supports {expected}"
            ),
            Error::OutOfMemory(m) => write!(f, "out of memory: {m}"),
            Error::ExecutionFailed(rc) => {
                write!(f, "execution failed: compiled entry returned {rc}")
            }
            Error::Internal(m) => write!(f, "internal error: {m}"),
            Error::CorruptArtifact(m) => write!(f, "corrupt artifact: {m}"),
            Error::UnsupportedCpu(m) => write!(f, "unsupported CPU: {m}"),
            Error::DeviceUnavailable(m) => write!(f, "device unavailable: {m}"),
            Error::DeviceFailed(m) => write!(f, "device error: {m}"),
            Error::InvalidEnvironment {
                name,
                value,
                expected,
            } => write!(
                f,
                "invalid environment variable {name}={value:?}: expected {expected}"
            ),
        }
    }
}

impl core::error::Error for Error {}

impl Error {
    /// The C status code for this error.
    pub fn status(&self) -> Status {
        match self {
            Error::InvalidArgument(_) => Status::InvalidArgument,
            Error::DtypeMismatch { .. } => Status::DtypeMismatch,
            Error::ShapeMismatch { .. } => Status::ShapeMismatch,
            Error::BufferTooSmall { .. } => Status::BufferTooSmall,
            Error::Misaligned { .. } => Status::Misaligned,
            Error::BufferOverlap { .. } => Status::BufferOverlap,
            Error::LoadFailed(_) => Status::LoadFailed,
            Error::AbiMismatch { .. } => Status::AbiMismatch,
            Error::OutOfMemory(_) => Status::OutOfMemory,
            Error::ExecutionFailed(_) => Status::ExecutionFailed,
            Error::Internal(_) => Status::Internal,
            Error::CorruptArtifact(_) => Status::CorruptArtifact,
            Error::UnsupportedCpu(_) => Status::UnsupportedCpu,
            Error::DeviceUnavailable(_) => Status::DeviceUnavailable,
            Error::DeviceFailed(_) => Status::DeviceFailed,
            Error::InvalidEnvironment { .. } => Status::InvalidEnvironment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn messages_name_the_tensor_and_the_problem() {
        let tensor = TensorName {
            role: Role::Output,
            index: 0,
            name: "y".into(),
        };
        let err = Error::BufferTooSmall {
            tensor,
            required: 24,
            got: 23,
        };
        assert_eq!(
            err.to_string(),
            "output 0 ('y'): buffer too small: needs 24 bytes, got 23"
        );
        assert_eq!(err.status(), Status::BufferTooSmall);
        assert_eq!(Status::c_description(5), c"misaligned buffer");
        assert_eq!(Status::c_description(-1), c"unknown status");
    }
}
