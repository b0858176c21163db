//! The error type at the CLI edge: a message plus the exit-code class it
//! maps to. Library errors are converted into it where their class is known
//! (parse errors are invalid input, pass verification failures internal).

use std::fmt;

/// Exit-code classes; see the crate docs for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitClass {
    /// 1: a bug in Kiln, an I/O failure, or a diagnostics mismatch.
    Internal,
    /// 2: invalid input or usage.
    Invalid,
    /// 3: a feature Kiln does not support.
    Unsupported,
    /// 4: a resource limit.
    Resource,
}

impl ExitClass {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitClass::Internal => 1,
            ExitClass::Invalid => 2,
            ExitClass::Unsupported => 3,
            ExitClass::Resource => 4,
        }
    }
}

/// A failed command.
#[derive(Debug)]
pub struct CliError {
    class: ExitClass,
    /// `None` when the details were already printed (diagnostics).
    message: Option<String>,
}

impl CliError {
    /// An error with a message still to be printed.
    pub fn new(class: ExitClass, message: impl Into<String>) -> CliError {
        CliError {
            class,
            message: Some(message.into()),
        }
    }

    /// An error whose details were already printed to stderr.
    pub fn reported(class: ExitClass) -> CliError {
        CliError {
            class,
            message: None,
        }
    }

    /// The exit-code class.
    pub fn class(&self) -> ExitClass {
        self.class
    }

    /// Whether the details were already printed.
    pub fn already_reported(&self) -> bool {
        self.message.is_none()
    }

    /// An I/O error while doing `what`, classed by its kind.
    pub fn io(what: impl fmt::Display, e: &std::io::Error) -> CliError {
        use std::io::ErrorKind;
        let class = match e.kind() {
            ErrorKind::OutOfMemory
            | ErrorKind::StorageFull
            | ErrorKind::QuotaExceeded
            | ErrorKind::FileTooLarge => ExitClass::Resource,
            _ => ExitClass::Internal,
        };
        CliError::new(class, format!("{what}: {e}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or("failed"))
    }
}

impl std::error::Error for CliError {}
