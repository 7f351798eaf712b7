//! The tower layer that counts and times every RPC by service, method and
//! status code. The code of an answer that streams (every successful one)
//! arrives in its trailers, so the answer's body is wrapped and the RPC is
//! recorded when the trailers pass, or when the body is dropped unfinished
//! (the client went away: `CANCELLED`).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Frame, SizeHint};
use tonic::body::Body;
use tonic::codegen::{Bytes, http};
use tower::{Layer, Service};

use super::Metrics;

/// Counts and times RPCs into [`Metrics`]; passes everything through when
/// metrics are off.
#[derive(Debug, Clone, Default)]
pub struct MetricsLayer {
    metrics: Option<Arc<Metrics>>,
}

impl MetricsLayer {
    /// A layer recording into `metrics` (`None`: metrics are off).
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`MetricsLayer`] wraps around.
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
}

/// `(service, method)` of every RPC the server implements, by request path;
/// names are leaked once, so labels are `&'static str` and bounded by this set.
fn known_methods() -> &'static HashMap<String, (&'static str, &'static str)> {
    static KNOWN: OnceLock<HashMap<String, (&'static str, &'static str)>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut known = HashMap::new();
        let mut add = |service: &str, method: &str| {
            let service: &'static str = Box::leak(service.to_owned().into_boxed_str());
            let method: &'static str = Box::leak(method.to_owned().into_boxed_str());
            known.insert(format!("/{service}/{method}"), (service, method));
        };
        if let Ok(pool) = prost_reflect::DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET) {
            for service in pool.services() {
                for method in service.methods() {
                    add(service.full_name(), method.name());
                }
            }
        }
        add("grpc.health.v1.Health", "Check");
        add("grpc.health.v1.Health", "Watch");
        for reflection in [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ] {
            add(reflection, "ServerReflectionInfo");
        }
        known
    })
}

/// The label pair of a request path; `unknown` for paths the server does
/// not implement, so a caller cannot mint label values.
pub(crate) fn method_of(path: &str) -> (&'static str, &'static str) {
    known_methods()
        .get(path)
        .copied()
        .unwrap_or(("unknown", "unknown"))
}

/// The name of a `grpc-status` value, as the gRPC spec spells it.
pub(crate) fn code_name(status: &[u8]) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    std::str::from_utf8(status)
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .and_then(|code| NAMES.get(code).copied())
        .unwrap_or("UNKNOWN")
}

/// One RPC in flight: recorded once, when its code is known.
struct Pending {
    metrics: Arc<Metrics>,
    service: &'static str,
    method: &'static str,
    started: Instant,
}

impl Pending {
    fn finish(self, code: &'static str) {
        self.metrics
            .rpc(self.service, self.method, code, self.started.elapsed());
    }
}

impl<S, B> Service<http::Request<B>> for MetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Take the service that was driven to readiness; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(metrics) = self.metrics.clone() else {
            return Box::pin(inner.call(request));
        };
        let (service, method) = method_of(request.uri().path());
        let pending = Pending {
            metrics,
            service,
            method,
            started: Instant::now(),
        };
        Box::pin(async move {
            let response = match inner.call(request).await {
                Ok(response) => response,
                Err(error) => {
                    pending.finish("UNKNOWN");
                    return Err(error);
                }
            };
            // A trailers-only answer (every error) carries its code in the headers.
            if let Some(status) = response.headers().get("grpc-status") {
                pending.finish(code_name(status.as_bytes()));
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(Recorded {
                    inner: body,
                    pending: Some(pending),
                })
            }))
        })
    }
}

/// An answer body that records its RPC when the trailers pass.
struct Recorded {
    inner: Body,
    pending: Option<Pending>,
}

impl http_body::Body for Recorded {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(pending) = self.pending.take()
                {
                    let code = trailers
                        .get("grpc-status")
                        .map_or("UNKNOWN", |status| code_name(status.as_bytes()));
                    pending.finish(code);
                }
            }
            Some(Err(_)) => {
                if let Some(pending) = self.pending.take() {
                    pending.finish("INTERNAL");
                }
            }
            None => {
                if let Some(pending) = self.pending.take() {
                    pending.finish("UNKNOWN");
                }
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        // Dropped before its trailers: the client stopped listening.
        if let Some(pending) = self.pending.take() {
            pending.finish("CANCELLED");
        }
    }
}
