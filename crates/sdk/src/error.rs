//! The error a provider returns: a gRPC code, a message and the offending field.

use crate::pb;

/// gRPC status codes a provider uses (values of `google.rpc.Code`).
pub mod code {
    /// The request was wrong: bad config, unknown field.
    pub const INVALID_ARGUMENT: i32 = 3;
    /// The deadline passed before the work finished.
    pub const DEADLINE_EXCEEDED: i32 = 4;
    /// The data source refused the credentials' rights.
    pub const PERMISSION_DENIED: i32 = 7;
    /// The operation is not valid in the current state.
    pub const FAILED_PRECONDITION: i32 = 9;
    /// The provider does not implement this.
    pub const UNIMPLEMENTED: i32 = 12;
    /// A bug or an unexpected condition in the provider.
    pub const INTERNAL: i32 = 13;
    /// The data source could not be reached; retrying may help.
    pub const UNAVAILABLE: i32 = 14;
    /// The credentials were refused.
    pub const UNAUTHENTICATED: i32 = 16;
}

/// An application error from a provider; the host maps it to a gRPC status.
///
/// Its message reaches API clients: it must never contain a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginError(pub pb::Error);

impl PluginError {
    /// An error with a gRPC code and a message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self(pb::Error {
            code,
            message: message.into(),
            field: String::new(),
            retryable: false,
        })
    }

    /// INVALID_ARGUMENT naming the offending field (`config.port`).
    pub fn invalid_argument(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut error = Self::new(code::INVALID_ARGUMENT, message);
        error.0.field = field.into();
        error
    }

    /// UNAVAILABLE, marked retryable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut error = Self::new(code::UNAVAILABLE, message);
        error.0.retryable = true;
        error
    }

    /// DEADLINE_EXCEEDED, marked retryable.
    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        let mut error = Self::new(code::DEADLINE_EXCEEDED, message);
        error.0.retryable = true;
        error
    }

    /// INTERNAL.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(code::INTERNAL, message)
    }

    /// UNIMPLEMENTED for a method the provider does not offer.
    pub fn unimplemented(method: &str) -> Self {
        Self::new(
            code::UNIMPLEMENTED,
            format!("this provider does not implement {method}"),
        )
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.field.is_empty() {
            write!(f, "{}", self.0.message)
        } else {
            write!(f, "{}: {}", self.0.field, self.0.message)
        }
    }
}

impl std::error::Error for PluginError {}
