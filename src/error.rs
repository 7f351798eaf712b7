//! The service's errors and their one mapping to gRPC statuses (AIP-193).

use std::sync::Arc;

use connvault_plugin_host::CallError;
use connvault_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field path (`connection.config.port`).
    pub field: String,
    /// What is wrong, safe to show.
    pub description: String,
}

/// Everything a request can fail with. Messages are safe to show to the
/// caller: they never carry a secret or an internal detail.
///
/// Cloneable so that one outcome can answer several callers (the discovery
/// single flight hands one plugin call's result to every waiter); the two
/// errors from other crates are shared behind an `Arc` for that.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The request is malformed; every bad field is listed.
    #[error("invalid request")]
    InvalidArgument(Vec<Violation>),
    /// The resource does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The resource (or its unique name) exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The etag does not match, or a concurrent write won.
    #[error("{0}")]
    Aborted(String),
    /// The operation is not allowed in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller stopped waiting: the work did not finish in the time it allowed.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A dependency the request needs (the audit log, a plugin) cannot take it now;
    /// the caller may retry.
    #[error("{0}")]
    Unavailable(String),
    /// The request carries no valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this here.
    #[error("{0}")]
    PermissionDenied(String),
    /// A stored record cannot be read back (corrupt or not ours).
    #[error("{0}")]
    DataLoss(String),
    /// A plugin failed or is unavailable.
    #[error(transparent)]
    Plugin(Arc<CallError>),
    /// The store refused or failed; details go to the log only.
    #[error("storage failure")]
    Store(#[source] Arc<StoreError>),
    /// A bug or an unexpected condition; details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl ServiceError {
    /// INVALID_ARGUMENT for one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![Violation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// Names `resource` in a NOT_FOUND; any other error passes through. The
    /// store only knows that *a* record is missing; the caller knows which.
    pub fn naming_missing(self, resource: &str) -> Self {
        match self {
            Self::NotFound(_) => Self::NotFound(resource.to_owned()),
            other => other,
        }
    }

    /// The store's own error, when the store refused or failed (callers map
    /// the refusals they expect, such as a taken unique name, to their own words).
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(error) => Some(error),
            _ => None,
        }
    }
}

impl From<CallError> for ServiceError {
    fn from(error: CallError) -> Self {
        Self::Plugin(Arc::new(error))
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound("resource".into()),
            StoreError::TenantNotFound => Self::NotFound("tenant".into()),
            StoreError::Conflict => {
                Self::Aborted("the resource changed concurrently; read it again and retry".into())
            }
            // Damage the store itself noticed (a record or a page that does
            // not decode): the caller learns that data is lost, the log why.
            StoreError::Corrupt(detail) => {
                tracing::error!(%detail, "the store cannot read a stored record");
                Self::DataLoss("a stored record cannot be read back".into())
            }
            other => Self::Store(Arc::new(other)),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Status {
        match error {
            ServiceError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for violation in &violations {
                    details.add_bad_request_violation(&violation.field, &violation.description);
                }
                let summary = violations
                    .iter()
                    .map(|violation| format!("{}: {}", violation.field, violation.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                Status::with_error_details(Code::InvalidArgument, summary, details)
            }
            ServiceError::NotFound(what) => Status::not_found(format!("{what} not found")),
            ServiceError::AlreadyExists(message) => Status::already_exists(message),
            ServiceError::Aborted(message) => Status::aborted(message),
            ServiceError::FailedPrecondition(message) => Status::failed_precondition(message),
            ServiceError::DeadlineExceeded(message) => Status::deadline_exceeded(message),
            ServiceError::Unavailable(message) => Status::unavailable(message),
            ServiceError::Unauthenticated(message) => Status::unauthenticated(message),
            ServiceError::PermissionDenied(message) => Status::permission_denied(message),
            ServiceError::DataLoss(message) => Status::data_loss(message),
            ServiceError::Plugin(error) => plugin_status(&error),
            // Internal-class errors: the detail goes to the log, inside the
            // request's span (request id, method); the client gets a generic message.
            ServiceError::Store(error) => {
                tracing::error!(%error, "store failure");
                Status::internal("internal storage error")
            }
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal(INTERNAL)
            }
        }
    }
}

/// What a client is told about an internal failure: the detail is in the log.
const INTERNAL: &str = "internal error";

/// A plugin's failure as a status. An application error's message is the
/// plugin's answer to the caller (a refused login, a bad host); anything of
/// the INTERNAL class (a panic, a malformed answer, an internal return code)
/// describes the server's insides, so it is logged and replaced.
fn plugin_status(error: &CallError) -> Status {
    let code = Code::from_i32(error.grpc_code());
    match (code, error.field()) {
        (Code::InvalidArgument, Some(field)) => {
            let field = format!("connection.{field}");
            let mut details = ErrorDetails::new();
            details.add_bad_request_violation(&field, error.to_string());
            Status::with_error_details(code, format!("{field}: {error}"), details)
        }
        (Code::Internal, _) => {
            tracing::error!(%error, "plugin failure");
            Status::internal(INTERNAL)
        }
        _ => Status::new(code, error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn internal_plugin_failures_do_not_reach_the_client() {
        let panicked = ServiceError::from(CallError::Panicked {
            plugin: "secret-plugin".into(),
            method: "test",
        });
        let status = Status::from(panicked);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), INTERNAL);
        // A plugin's answer of another class is the caller's to read.
        let late = ServiceError::from(CallError::DeadlineExceeded {
            plugin: "p".into(),
            method: "test",
            deadline: Duration::from_secs(1),
        });
        let message = late.to_string();
        let status = Status::from(late);
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(status.message(), message);
    }

    #[test]
    fn naming_missing_names_only_a_not_found() {
        let named = ServiceError::NotFound("resource".into()).naming_missing("tenants/a");
        assert_eq!(named.to_string(), "tenants/a not found");
        let other = ServiceError::Aborted("raced".into()).naming_missing("tenants/a");
        assert!(matches!(other, ServiceError::Aborted(message) if message == "raced"));
    }

    #[test]
    fn damage_the_store_noticed_is_data_loss() {
        let status = Status::from(ServiceError::from(StoreError::Corrupt(
            "connection record envelope".into(),
        )));
        assert_eq!(status.code(), Code::DataLoss);
        assert!(!status.message().contains("envelope"), "{status:?}");
    }

    #[test]
    fn clones_keep_their_status() {
        let original = ServiceError::from(StoreError::AlreadyExists);
        let copy = original.clone();
        assert!(matches!(
            copy.store_error(),
            Some(StoreError::AlreadyExists)
        ));
        assert_eq!(Status::from(copy).code(), Status::from(original).code());
        let status = Status::from(ServiceError::DeadlineExceeded("late".into()));
        assert_eq!(
            (status.code(), status.message()),
            (Code::DeadlineExceeded, "late")
        );
    }
}
