//! tiberius errors as stage errors. Messages are connvault's own words plus
//! the server's error number: the server's text, like any bytes a remote
//! peer sends, is never copied into a message.

use connvault_plugin_sdk::StageError;
use connvault_plugin_sdk::pb::ErrorCategory;
use tiberius::error::{Error, IoErrorKind};

/// What a SQL Server error number means, and its category.
fn server_error(code: u32) -> (ErrorCategory, &'static str) {
    match code {
        18456 => (ErrorCategory::Auth, "login failed: wrong user or password"),
        18452 => (
            ErrorCategory::Auth,
            "the login is not a SQL Server login (Windows authentication only)",
        ),
        18470 => (ErrorCategory::Auth, "the login is disabled"),
        18486 => (ErrorCategory::Auth, "the login is locked out"),
        18487 | 18488 => (
            ErrorCategory::Auth,
            "the login's password has expired or must be changed",
        ),
        4060 => (
            ErrorCategory::Config,
            "the database cannot be opened: it does not exist or the login may not use it",
        ),
        40532 => (
            ErrorCategory::Config,
            "the server name in the login does not match this server",
        ),
        229 | 230 | 262 | 297 | 300 | 916 => (ErrorCategory::Permission, "permission denied"),
        208 => (ErrorCategory::Config, "an object does not exist"),
        17809 | 10928 | 10929 | 40613 | 40501 => (
            ErrorCategory::Unreachable,
            "the server is busy or not available now (too many connections, resource limits, failover)",
        ),
        _ => (ErrorCategory::Protocol, "the server refused the request"),
    }
}

/// Maps a tiberius error met while `doing` something to a stage error.
pub fn driver(error: &Error, doing: &str) -> StageError {
    match error {
        Error::Server(token) => {
            let (category, meaning) = server_error(token.code());
            StageError::new(
                category,
                format!(
                    "{doing} failed: {meaning} (SQL Server error {})",
                    token.code()
                ),
            )
        }
        Error::Io { kind, .. } => match kind {
            IoErrorKind::TimedOut => StageError::new(
                ErrorCategory::Timeout,
                format!("{doing} did not finish in time"),
            ),
            IoErrorKind::InvalidData => StageError::new(
                ErrorCategory::Protocol,
                format!("{doing} failed: the server sent something that is not TDS"),
            ),
            _ => StageError::new(
                ErrorCategory::Unreachable,
                format!("{doing} failed: the connection broke ({kind:?})"),
            ),
        },
        Error::Tls(_) => StageError::new(
            ErrorCategory::Tls,
            format!("{doing} failed: a TLS error in the driver"),
        ),
        Error::Routing { .. } => StageError::new(
            ErrorCategory::Protocol,
            format!(
                "{doing}: the server redirects the connection to another address (Azure SQL's redirect policy), which connvault does not follow; use the proxy policy"
            ),
        ),
        _ => StageError::new(
            ErrorCategory::Protocol,
            format!("{doing} failed: the server's answer is not valid TDS"),
        ),
    }
}
