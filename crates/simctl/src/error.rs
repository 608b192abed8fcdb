//! What can go wrong, and the exit code a script sees for it (docs/simctl.md, "Exit codes").

use std::fmt;

use serde_json::Value;

/// Exit codes: stable, documented, what scripts branch on.
pub mod exit {
    pub const OK: i32 = 0;
    /// Bad arguments, configuration, credentials or input files: nothing was sent.
    pub const USAGE: i32 = 1;
    /// The API refused the request (a 4xx answer).
    pub const REFUSED: i32 = 2;
    /// The API or NATS could not be reached, timed out, or answered 5xx.
    pub const UNAVAILABLE: i32 = 3;
    /// A bulk job ended with items refused, failed or cancelled.
    pub const PARTIAL: i32 = 4;
    /// `audit verify` found a problem (listed on stdout).
    pub const VERIFICATION: i32 = 5;
}

/// An error answer of the API, in the contract's shape (`{"error": {code, message, details,
/// request_id}}`).
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Value,
    pub request_id: Option<String>,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {}): {}", self.code, self.status, self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        if self.details.as_object().is_some_and(|d| !d.is_empty()) {
            write!(f, "\n  details: {}", self.details)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Arguments, profile, credentials, files: the user's to fix.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Api(ApiFailure),
    /// Network, timeouts, NATS, an answer that is not the contract's.
    #[error("{0}")]
    Unavailable(String),
    /// A bulk job whose items did not all apply (its outcomes were printed).
    #[error("{0}")]
    Partial(String),
    /// `audit verify` found problems (they were printed).
    #[error("{0}")]
    Verification(String),
    /// stdout was closed by its reader (`simctl … | head`): not worth a message.
    #[error("stdout closed")]
    Closed,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => exit::USAGE,
            Self::Api(failure) if failure.status < 500 => exit::REFUSED,
            Self::Api(_) | Self::Unavailable(_) => exit::UNAVAILABLE,
            Self::Partial(_) => exit::PARTIAL,
            Self::Verification(_) => exit::VERIFICATION,
            Self::Closed => exit::OK,
        }
    }
}

impl From<reqwest::Error> for CliError {
    fn from(error: reqwest::Error) -> Self {
        // reqwest's own text is terse ("error sending request"); its sources say why.
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Unavailable(text)
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return Self::Closed;
        }
        Self::Usage(format!("I/O: {error}"))
    }
}

impl From<csv::Error> for CliError {
    fn from(error: csv::Error) -> Self {
        Self::Usage(format!("CSV: {error}"))
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;
