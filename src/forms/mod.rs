//! The hosted forms' HTTP side, on the HTTP listener (`crate::http`):
//! - `GET /v1/forms/keys`: the public key form redirects are signed with,
//!   as a JWK set (`{"keys":[{"kty":"OKP","crv":"Ed25519",...}]}`);
//! - `GET /forms/{token}`: opens a link (see `crate::app::forms`) and shows its form;
//! - `POST /forms/session`: the form's test, save, cancel and data source pick.

mod act;
mod fields;
mod outcome;
mod pages;
mod render;
mod session;
mod words;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::App;
use crate::audit::AuditLog;
use crate::http::HttpContext;

/// What the form handlers share.
#[derive(Clone)]
struct Forms {
    app: Arc<App>,
    audit: Arc<AuditLog>,
}

/// The forms' routes, for `crate::http::router`.
pub fn routes(context: &HttpContext) -> Router {
    Router::new()
        .route("/v1/forms/keys", get(keys))
        .route("/forms/session", axum::routing::post(pages::submit))
        .route("/forms/{token}", get(pages::open))
        .with_state(Forms {
            app: Arc::clone(&context.app),
            audit: Arc::clone(&context.audit),
        })
}

async fn keys(State(forms): State<Forms>) -> Response {
    let app: &App = &forms.app;
    let Some(key) = app.form_public_key() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let body = serde_json::json!({ "keys": [key] }).to_string();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            // Partners may cache the key; it changes only with the master key.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}
