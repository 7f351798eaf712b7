//! Errors as AIP-193 describes them for HTTP+JSON: the HTTP status the
//! gRPC code maps to, and `{"error": {code, message, status, details}}`
//! with the `google.rpc` details (field violations...) as JSON.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::{ErrorDetail, StatusExt};

/// The HTTP status AIP-193 (google.rpc.Code) assigns to a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The `google.rpc.Code` enum name of a code (`NOT_FOUND`).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

const TYPE_PREFIX: &str = "type.googleapis.com/google.rpc.";

/// A detail as the proto3 JSON mapping writes an `Any` of it; details this
/// server never sends are left out.
fn detail(detail: ErrorDetail) -> Option<Value> {
    Some(match detail {
        ErrorDetail::BadRequest(bad) => json!({
            "@type": format!("{TYPE_PREFIX}BadRequest"),
            "fieldViolations": bad.field_violations.iter().map(|v| json!({
                "field": v.field,
                "description": v.description,
            })).collect::<Vec<_>>(),
        }),
        ErrorDetail::ErrorInfo(info) => json!({
            "@type": format!("{TYPE_PREFIX}ErrorInfo"),
            "reason": info.reason,
            "domain": info.domain,
            "metadata": info.metadata,
        }),
        ErrorDetail::QuotaFailure(quota) => json!({
            "@type": format!("{TYPE_PREFIX}QuotaFailure"),
            "violations": quota.violations.iter().map(|v| json!({
                "subject": v.subject,
                "description": v.description,
            })).collect::<Vec<_>>(),
        }),
        ErrorDetail::PreconditionFailure(failure) => json!({
            "@type": format!("{TYPE_PREFIX}PreconditionFailure"),
            "violations": failure.violations.iter().map(|v| json!({
                "type": v.r#type,
                "subject": v.subject,
                "description": v.description,
            })).collect::<Vec<_>>(),
        }),
        ErrorDetail::ResourceInfo(info) => json!({
            "@type": format!("{TYPE_PREFIX}ResourceInfo"),
            "resourceType": info.resource_type,
            "resourceName": info.resource_name,
            "owner": info.owner,
            "description": info.description,
        }),
        ErrorDetail::RetryInfo(retry) => json!({
            "@type": format!("{TYPE_PREFIX}RetryInfo"),
            "retryDelay": retry
                .retry_delay
                .map(|delay| format!("{}.{:09}s", delay.as_secs(), delay.subsec_nanos())),
        }),
        _ => return None,
    })
}

/// The HTTP response for a gRPC status (never OK).
pub fn error_response(status: &Status) -> Response {
    let http = http_status(status.code());
    let details: Vec<Value> = status
        .get_error_details_vec()
        .into_iter()
        .filter_map(detail)
        .collect();
    let body = json!({
        "error": {
            "code": http.as_u16(),
            "message": status.message(),
            "status": code_name(status.code()),
            "details": details,
        }
    });
    let mut response = (http, axum::Json(body)).into_response();
    if status.code() == Code::Unauthenticated {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// 405: the path exists, with other HTTP methods.
pub fn method_not_allowed(method: &axum::http::Method) -> Response {
    let http = StatusCode::METHOD_NOT_ALLOWED;
    let body = json!({
        "error": {
            "code": http.as_u16(),
            "message": format!("{method} is not served at this path"),
            "status": code_name(Code::Unimplemented),
            "details": [],
        }
    });
    (http, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_aip_193_statuses() {
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::Aborted), StatusCode::CONFLICT);
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }
}
