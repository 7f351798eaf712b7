//! What operators' tools read over plain HTTP: `/metrics` (Prometheus text
//! format 0.0.4), `/healthz` (the process answers) and `/readyz` (store open,
//! plugins loaded, not shutting down) for load balancers that do not speak
//! gRPC health. None of them needs a token: they carry no tenant data.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::health::Health;
use crate::metrics::{CONTENT_TYPE, Metrics};

/// What the routes read.
#[derive(Clone)]
struct Ops {
    metrics: Option<Arc<Metrics>>,
    health: Health,
}

/// `/metrics` (404 when metrics are off), `/healthz` and `/readyz`.
pub fn routes(metrics: Option<Arc<Metrics>>, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Ops { metrics, health })
}

async fn scrape(State(ops): State<Ops>) -> Response {
    match ops.metrics {
        Some(metrics) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            metrics.encode(),
        )
            .into_response(),
        None => text(StatusCode::NOT_FOUND, "metrics are off (metrics = false)\n"),
    }
}

async fn healthz() -> Response {
    text(StatusCode::OK, "ok\n")
}

async fn readyz(State(ops): State<Ops>) -> Response {
    if ops.health.ready() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
