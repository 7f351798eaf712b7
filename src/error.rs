//! The service's errors and their one mapping to gRPC statuses (AIP-193).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use connvault_plugin_host::CallError;
use connvault_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::text::{clip, clip_owned};

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field path (`connection.config.port`).
    pub field: String,
    /// What is wrong, safe to show.
    pub description: String,
}

/// A destination the egress policy refuses: PERMISSION_DENIED with an
/// `ErrorInfo` (reason `EGRESS_DENIED`, metadata `field` and `rule`), so a
/// client tells it from a refused token or role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressDenial {
    /// The request path of the destination (`config.host`).
    pub field: String,
    /// The rule that refused it, with its origin.
    pub rule: String,
    /// The whole message, safe to show.
    pub message: String,
}

/// The `ErrorInfo` domain of connvault's own error reasons.
pub const ERROR_DOMAIN: &str = "connvault.v1";

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
    /// A limit on what `subject` may ask is used up for now; the caller may
    /// retry after `retry_after`.
    #[error("{message}")]
    ResourceExhausted {
        /// What the limit applies to (`tenants/acme`).
        subject: String,
        /// What was exceeded, safe to show.
        message: String,
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// The request carries no valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this here.
    #[error("{0}")]
    PermissionDenied(String),
    /// The egress policy refuses a destination the request would connect to.
    #[error("{}", .0.message)]
    EgressDenied(EgressDenial),
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
            ServiceError::InvalidArgument(violations) => invalid_argument(&violations),
            ServiceError::NotFound(what) => Status::not_found(said(format!("{what} not found"))),
            ServiceError::AlreadyExists(message) => Status::already_exists(said(message)),
            ServiceError::Aborted(message) => Status::aborted(said(message)),
            ServiceError::FailedPrecondition(message) => Status::failed_precondition(said(message)),
            ServiceError::DeadlineExceeded(message) => Status::deadline_exceeded(said(message)),
            ServiceError::Unavailable(message) => Status::unavailable(said(message)),
            ServiceError::ResourceExhausted {
                subject,
                message,
                retry_after,
            } => {
                let message = said(message);
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(retry_after));
                details.add_quota_failure_violation(subject, &message);
                Status::with_error_details(Code::ResourceExhausted, message, details)
            }
            ServiceError::Unauthenticated(message) => Status::unauthenticated(said(message)),
            ServiceError::PermissionDenied(message) => Status::permission_denied(said(message)),
            ServiceError::EgressDenied(denial) => {
                let metadata = HashMap::from([
                    ("field".to_owned(), denial.field),
                    ("rule".to_owned(), denial.rule),
                ]);
                let details =
                    ErrorDetails::with_error_info("EGRESS_DENIED", ERROR_DOMAIN, metadata);
                Status::with_error_details(Code::PermissionDenied, said(denial.message), details)
            }
            ServiceError::DataLoss(message) => Status::data_loss(said(message)),
            ServiceError::Plugin(error) => plugin_status(&error),
            // Internal-class errors: the detail goes to the log, inside the
            // request's span (request id, method); the client gets a generic message.
            ServiceError::Store(error) => {
                tracing::error!(%error, "store failure");
                Status::internal("internal storage error")
            }
            ServiceError::Internal(detail) => {
                tracing::error!(detail = %clip(&detail, MAX_MESSAGE_BYTES), "internal error");
                Status::internal(INTERNAL)
            }
        }
    }
}

/// The longest message a status carries. A client reads the message and the
/// details (which repeat it) from the response's trailers, within its header
/// limit (16 KiB in hyper, grpc-go and grpc-java): whatever a request held,
/// its error must stay well inside that, percent-encoding and base64 included.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// The most violations an INVALID_ARGUMENT lists; the message says how many
/// more there were, and an `ErrorInfo` (reason `VIOLATIONS_TRUNCATED`) counts them.
pub const MAX_VIOLATIONS_SHOWN: usize = 10;
/// The longest field path a violation shows.
pub const MAX_VIOLATION_FIELD_BYTES: usize = 160;
/// The longest description a violation shows.
pub const MAX_VIOLATION_DESCRIPTION_BYTES: usize = 240;

/// A message cut to [`MAX_MESSAGE_BYTES`].
fn said(message: String) -> String {
    clip_owned(message, MAX_MESSAGE_BYTES)
}

/// INVALID_ARGUMENT with the first [`MAX_VIOLATIONS_SHOWN`] violations, each
/// cut to its bound, as `BadRequest` details and as the message.
fn invalid_argument(violations: &[Violation]) -> Status {
    let shown = &violations[..violations.len().min(MAX_VIOLATIONS_SHOWN)];
    let hidden = violations.len() - shown.len();
    let mut details = ErrorDetails::new();
    let mut summary = String::new();
    for violation in shown {
        let field = clip(&violation.field, MAX_VIOLATION_FIELD_BYTES);
        let description = clip(&violation.description, MAX_VIOLATION_DESCRIPTION_BYTES);
        if !summary.is_empty() {
            summary.push_str("; ");
        }
        summary.push_str(&format!("{field}: {description}"));
        details.add_bad_request_violation(field, description);
    }
    // The count of the rest must survive the cut, so it goes on after.
    let mut message = clip_owned(summary, MAX_MESSAGE_BYTES - 64);
    if hidden > 0 {
        message.push_str(&format!(" (and {hidden} more violations)"));
        details.set_error_info(
            "VIOLATIONS_TRUNCATED",
            "connvault.v1",
            HashMap::from([
                ("shown".to_owned(), shown.len().to_string()),
                ("total".to_owned(), violations.len().to_string()),
            ]),
        );
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
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
        (Code::InvalidArgument, Some(field)) => invalid_argument(&[Violation {
            field: format!("connection.{field}"),
            description: error.to_string(),
        }]),
        (Code::Internal, _) => {
            tracing::error!(%error, "plugin failure");
            Status::internal(INTERNAL)
        }
        _ => Status::new(code, said(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
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
    fn an_exhausted_limit_says_when_to_retry() {
        let status = Status::from(ServiceError::ResourceExhausted {
            subject: "tenants/acme".into(),
            message: "too many requests".into(),
            retry_after: Duration::from_millis(250),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "too many requests");
        let retry = status.get_details_retry_info().unwrap();
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(250)));
        let quota = status.get_details_quota_failure().unwrap();
        assert_eq!(quota.violations[0].subject, "tenants/acme");
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

    /// The bytes HTTP/2 counts for a status's headers and trailers (RFC 7540
    /// §6.5.2: name, value and 32 per field), as the client receives them.
    fn header_list_size(status: Status) -> usize {
        let response = status.into_http::<()>();
        response
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum()
    }

    #[test]
    fn every_error_fits_a_clients_16_kib_header_limit_whatever_the_request_held() {
        let huge = "é\n%".repeat(300_000);
        let long = "é\n%".repeat(300);
        let many = ServiceError::InvalidArgument(
            (0..10_000)
                .map(|i| Violation {
                    field: format!(
                        "connection.labels.{i}{}",
                        if i == 0 { &huge } else { &long }
                    ),
                    description: if i == 1 { huge.clone() } else { long.clone() },
                })
                .collect(),
        );
        let status = Status::from(many);
        let bad = status
            .get_details_bad_request()
            .expect("BadRequest details");
        assert_eq!(bad.field_violations.len(), MAX_VIOLATIONS_SHOWN);
        assert!(
            bad.field_violations[0]
                .field
                .starts_with("connection.labels.0é")
        );
        let info = status.get_details_error_info().expect("ErrorInfo details");
        assert_eq!(info.reason, "VIOLATIONS_TRUNCATED");
        assert_eq!(info.metadata["total"], "10000");
        assert!(
            status.message().ends_with("(and 9990 more violations)"),
            "{}",
            status.message()
        );
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        let size = header_list_size(status);
        assert!(size < 12 * 1024, "{size} bytes of headers");

        let echoes = [
            ServiceError::NotFound(huge.clone()),
            ServiceError::AlreadyExists(huge.clone()),
            ServiceError::Aborted(huge.clone()),
            ServiceError::FailedPrecondition(huge.clone()),
            ServiceError::DeadlineExceeded(huge.clone()),
            ServiceError::Unavailable(huge.clone()),
            ServiceError::Unauthenticated(huge.clone()),
            ServiceError::PermissionDenied(huge.clone()),
            ServiceError::DataLoss(huge.clone()),
            ServiceError::Internal(huge.clone()),
            ServiceError::invalid(huge.clone(), huge.clone()),
        ];
        for error in echoes {
            let status = Status::from(error);
            assert!(status.message().len() <= MAX_MESSAGE_BYTES);
            let size = header_list_size(status);
            assert!(size < 8 * 1024, "{size} bytes of headers");
        }
    }
}
