//! The routes of the HTTP listener and the bounds every request meets.
//!
//! [`router`] is the composition point: each area (the hosted forms,
//! metrics, health, a REST gateway) contributes an `axum::Router` from its
//! own module and is merged here, under the same bounds.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::Limited;

use super::HttpConfig;
use crate::api::Guard;
use crate::app::App;
use crate::audit::AuditLog;

/// What HTTP routes may use: the same rules, audit log and guard the gRPC
/// services use, so an HTTP route is never a second implementation.
#[derive(Clone)]
pub struct HttpContext {
    /// The application rules.
    pub app: Arc<App>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// Admission, rate limits and auditing of API callers.
    pub guard: Arc<Guard>,
}

/// The bounds applied to every request, whatever its route.
#[derive(Clone, Copy)]
struct Bounds {
    max_body_bytes: usize,
    request_timeout: Duration,
}

/// Every route the listener serves, under the request bounds of `config`.
pub fn router(context: &HttpContext, config: &HttpConfig) -> Router {
    // Each area merges its own router here, one line each.
    let _ = context;
    let routes = Router::new();
    let bounds = Bounds {
        max_body_bytes: config.max_body_bytes,
        request_timeout: config.request_timeout(),
    };
    routes
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(bounds, bounded))
}

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

/// A short plain-text answer (the listener's own refusals).
fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// Refuses a declared body above the limit before reading it, caps an
/// undeclared (chunked) one as it is read, bounds the time to the response,
/// and adds the headers every response carries.
async fn bounded(State(bounds): State<Bounds>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let mut response = if declared.is_some_and(|length| length > bounds.max_body_bytes as u64) {
        plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
    } else {
        let request = request.map(|body| Body::new(Limited::new(body, bounds.max_body_bytes)));
        match tokio::time::timeout(bounds.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_elapsed) => plain(StatusCode::SERVICE_UNAVAILABLE, "request took too long\n"),
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Routes that want caching or a referrer say so; by default nothing is
    // kept and no URL (which may carry a link's token) leaks onward.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    response
}
