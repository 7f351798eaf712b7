//! The pages a browser sees.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::app::forms::LinkState;

/// `GET /forms/{token}`.
pub(super) async fn open(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    match app.open_form_link(&token).await {
        Ok(_) => "opened".into_response(),
        Err(LinkState::Invalid) => (StatusCode::NOT_FOUND, "invalid").into_response(),
        Err(state) => (StatusCode::GONE, format!("{state:?}")).into_response(),
    }
}
