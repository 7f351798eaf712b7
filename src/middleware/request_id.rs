//! Gives each request an id (the caller's `x-request-id`, or a new UUID), a
//! tracing span carrying it and the method, and one log line when it ends.

use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::text::clip;

/// Adds request ids and spans.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service [`RequestIdLayer`] wraps around.
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

fn request_id<B>(request: &http::Request<B>) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 128
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

impl<S, B, RB> Service<http::Request<B>> for RequestIdService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let id = request_id(&request);
        let header = http::HeaderValue::from_str(&id).ok();
        if let Some(value) = &header {
            request.headers_mut().insert("x-request-id", value.clone());
        }
        // The path is the caller's (an unknown one reaches here too): bounded in the log.
        let span =
            tracing::info_span!("rpc", request_id = %id, method = %clip(request.uri().path(), 128));
        // Take the service that was driven to readiness; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(
            async move {
                let started = Instant::now();
                let mut result = inner.call(request).await;
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let status = match &result {
                        Ok(response) => response
                            .headers()
                            .get("grpc-status")
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or("0"),
                        Err(_) => "transport-error",
                    };
                    tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, grpc_status = %status, "request finished");
                }
                if let (Ok(response), Some(value)) = (&mut result, header) {
                    response.headers_mut().insert("x-request-id", value);
                }
                result
            }
            .instrument(span),
        )
    }
}
