//! The REST/JSON gateway: every public RPC also served as HTTP+JSON on the
//! HTTP listener, per the `google.api.http` rules in the protos (AIP-127).
//!
//! A REST call is transcoded at the edge and handed, in process, to the
//! very gRPC service stack the gRPC port serves (request id, authentication,
//! framing limits, then the services with their guard, audit and rate
//! limits): no rule exists twice. Only the shapes differ:
//!
//! - `rules.rs`: the rules and path templates, read from the descriptors;
//! - `request.rs`: path variables + query + body → the request message;
//! - `status.rs`: a gRPC status → AIP-193 JSON error and HTTP status;
//! - `openapi.rs`: the OpenAPI 3 document, generated from the same rules.

mod openapi;
mod request;
mod rules;
mod status;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::{BodyExt, Full};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tonic::Status;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

pub use openapi::document;
pub use rules::RuleError;

/// The gRPC service stack, callable in process: the same layers and
/// services the gRPC port serves.
pub type GrpcService = BoxCloneSyncService<
    axum::http::Request<tonic::body::Body>,
    axum::http::Response<tonic::body::Body>,
    Infallible,
>;

/// The gateway: the rules and the gRPC stack they call.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    bindings: Vec<rules::Binding>,
    grpc: GrpcService,
    openapi: Bytes,
}

/// The descriptor pool of the public API (with the `google.api` options).
fn pool() -> Result<DescriptorPool, RuleError> {
    Ok(DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET)?)
}

impl Gateway {
    /// Reads the rules and renders the document once.
    pub fn new(grpc: GrpcService) -> Result<Self, RuleError> {
        let pool = pool()?;
        let bindings = rules::bindings(&pool)?;
        let openapi = Bytes::from(openapi::render(&bindings));
        Ok(Self {
            inner: Arc::new(Inner {
                bindings,
                grpc,
                openapi,
            }),
        })
    }

    /// The routes: `/v1/...` and `/openapi.json`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/openapi.json", get(serve_openapi))
            .route("/v1/{*path}", any(transcode))
            .with_state(self.clone())
    }
}

async fn serve_openapi(State(gateway): State<Gateway>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        gateway.inner.openapi.clone(),
    )
        .into_response()
}

/// Headers passed on to the gRPC stack: the caller's credentials and
/// request id, nothing else (hop-by-hop and HTTP/1-only headers stay here).
const FORWARDED: [&str; 2] = ["authorization", "x-request-id"];

async fn transcode(
    State(gateway): State<Gateway>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let mut path_matched = false;
    let found = gateway.inner.bindings.iter().find_map(|binding| {
        let values = binding.template.matches(path)?;
        path_matched = true;
        (binding.method == method).then_some((binding, values))
    });
    let Some((binding, values)) = found else {
        return if path_matched {
            status::method_not_allowed(&method)
        } else {
            status::error_response(&Status::not_found("no such REST resource or method"))
        };
    };
    let message = match request::build(binding, values, uri.query(), &body) {
        Ok(message) => message,
        Err(violation) => {
            let mut details = tonic_types::ErrorDetails::new();
            details.add_bad_request_violation(&violation.field, &violation.description);
            let status = <Status as tonic_types::StatusExt>::with_error_details(
                tonic::Code::InvalidArgument,
                format!("invalid {}: {}", violation.field, violation.description),
                details,
            );
            return status::error_response(&status);
        }
    };
    call(&gateway.inner.grpc, binding, &message, &headers).await
}

/// Frames the message as a gRPC request, calls the stack in process and
/// turns its answer into JSON.
async fn call(
    grpc: &GrpcService,
    binding: &rules::Binding,
    message: &DynamicMessage,
    headers: &HeaderMap,
) -> Response {
    let encoded = message.encode_to_vec();
    let Ok(length) = u32::try_from(encoded.len()) else {
        return status::error_response(&Status::resource_exhausted("request too large"));
    };
    let mut frame = Vec::with_capacity(encoded.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&encoded);
    let mut request =
        axum::http::Request::new(tonic::body::Body::new(Full::new(Bytes::from(frame))));
    *request.method_mut() = Method::POST;
    match binding.grpc_path().parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return status::error_response(&Status::internal("bad method path")),
    }
    let grpc_headers = request.headers_mut();
    grpc_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    grpc_headers.insert(header::TE, HeaderValue::from_static("trailers"));
    for name in FORWARDED {
        if let Some(value) = headers.get(name) {
            grpc_headers.insert(name, value.clone());
        }
    }
    let Ok(response) = grpc.clone().oneshot(request).await;
    let (parts, body) = response.into_parts();
    let request_id = parts.headers.get("x-request-id").cloned();
    let mut answer = match body.collect().await {
        Err(status) => status::error_response(&status),
        Ok(collected) => {
            // A trailers-only answer carries the status in its headers.
            let status = Status::from_header_map(&parts.headers)
                .or_else(|| collected.trailers().and_then(Status::from_header_map));
            match status {
                Some(status) if status.code() != tonic::Code::Ok => status::error_response(&status),
                _ => decode_reply(binding, &collected.to_bytes()),
            }
        }
    };
    if let Some(id) = request_id {
        answer.headers_mut().insert("x-request-id", id);
    }
    answer
}

/// The reply message as proto3 JSON.
fn decode_reply(binding: &rules::Binding, data: &[u8]) -> Response {
    let internal = || status::error_response(&Status::internal("undecodable reply"));
    let Some((head, rest)) = data.split_first_chunk::<5>() else {
        return internal();
    };
    let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if head[0] != 0 || rest.len() < length {
        return internal();
    }
    let Ok(reply) = DynamicMessage::decode(binding.rpc.output(), &rest[..length]) else {
        return internal();
    };
    let mut json = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut json);
    if reply
        .serialize_with_options(&mut serializer, &SerializeOptions::new())
        .is_err()
    {
        return internal();
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response()
}
