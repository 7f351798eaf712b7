//! The service's errors and their one mapping to gRPC statuses (AIP-193).

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
#[derive(Debug, thiserror::Error)]
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
    /// A stored record cannot be read back (corrupt or not ours).
    #[error("{0}")]
    DataLoss(String),
    /// A plugin failed or is unavailable.
    #[error(transparent)]
    Plugin(#[from] CallError),
    /// The store refused or failed; details go to the log only.
    #[error("storage failure")]
    Store(#[source] StoreError),
    /// A bug or an unexpected condition; details go to the log only.
    #[error("internal error")]
    Internal(String),
    /// No valid bearer token; every cause gets the same message.
    #[error("{}", crate::auth::UNAUTHENTICATED)]
    Unauthenticated,
    /// The caller may not do this here.
    #[error("{0}")]
    PermissionDenied(String),
    /// A dependency the request needs (the audit log) cannot be used now.
    #[error("{0}")]
    Unavailable(String),
}

impl ServiceError {
    /// INVALID_ARGUMENT for one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![Violation {
            field: field.into(),
            description: description.into(),
        }])
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
            other => Self::Store(other),
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
            ServiceError::DataLoss(message) => Status::data_loss(message),
            ServiceError::Plugin(error) => plugin_status(&error),
            ServiceError::Store(error) => {
                tracing::error!(%error, "store failure");
                Status::internal("internal storage error")
            }
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error")
            }
            ServiceError::Unauthenticated => Status::unauthenticated(crate::auth::UNAUTHENTICATED),
            ServiceError::PermissionDenied(message) => Status::permission_denied(message),
            ServiceError::Unavailable(message) => Status::unavailable(message),
        }
    }
}

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
            Status::internal(error.to_string())
        }
        _ => Status::new(code, error.to_string()),
    }
}
