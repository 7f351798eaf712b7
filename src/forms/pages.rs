//! The form's requests: `GET /forms/{token}` opens a link and shows its
//! form (or the picker); `POST /forms/session` tests, saves, cancels or
//! picks, under the session cookie and its CSRF token.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::Markup;

use super::Forms;
use super::act::{Action, act};
use super::render::{self, Branding};
use super::session::Session;
use crate::app::forms::{LinkState, link_name, origin_of};
use crate::pb::storage::FormLinkRecord;
use crate::pb::v1;

/// The headers every form page carries: nothing cached, no referrer, the
/// policy that allows only the page's own style sheet, forms posted only
/// back here or (by the redirect after a save) to the partner, and framing
/// only by the tenant's allowed origins.
pub(super) fn page_response(
    status: StatusCode,
    markup: Markup,
    branding: &Branding,
    redirect_origin: Option<&str>,
    frame_ancestors: &[String],
    cookie: Option<String>,
) -> Response {
    use base64::Engine as _;
    use sha2::Digest as _;
    let style_hash = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(branding.style.as_bytes()));
    let frames = if frame_ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        frame_ancestors.join(" ")
    };
    let form_action = match redirect_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{style_hash}'; img-src 'none'; \
         form-action {form_action}; frame-ancestors {frames}; base-uri 'none'"
    );
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if frame_ancestors.is_empty() {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if let Some(cookie) = cookie.and_then(|cookie| HeaderValue::from_str(&cookie).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The words of each refusal.
fn refusal(state: LinkState) -> (StatusCode, &'static str, &'static str) {
    match state {
        LinkState::Used => (
            StatusCode::GONE,
            "This link has already been used",
            "Each link opens once. Go back to the app you came from and start again to get a new link.",
        ),
        LinkState::Expired => (
            StatusCode::GONE,
            "This link has expired",
            "Links work for a few minutes only. Go back to the app you came from and start again to get a new link.",
        ),
        LinkState::Revoked => (
            StatusCode::GONE,
            "This link is no longer valid",
            "It was withdrawn by the app that sent you here. Go back to it and start again.",
        ),
        LinkState::Invalid => (
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "Check that you opened the whole link, or go back to the app you came from and start again.",
        ),
    }
}

/// A page that only explains, in the default branding.
pub(super) fn refusal_page(state: LinkState) -> Response {
    let branding = Branding {
        display_name: String::new(),
        style: render::style(""),
    };
    let (status, title, text) = refusal(state);
    page_response(
        status,
        render::message_page(&branding, title, text),
        &branding,
        None,
        &[],
        None,
    )
}

/// The session ended or the form is not this session's.
fn session_page(title: &str, text: &str) -> Response {
    let branding = Branding {
        display_name: String::new(),
        style: render::style(""),
    };
    page_response(
        StatusCode::FORBIDDEN,
        render::message_page(&branding, title, text),
        &branding,
        None,
        &[],
        None,
    )
}

/// The tenant's settings and branding for a link.
pub(super) async fn tenant_view(forms: &Forms, tenant_id: &str) -> (v1::FormSettings, Branding) {
    let tenant = forms
        .app
        .get_tenant(&crate::names::tenant_name(tenant_id))
        .await
        .ok();
    let settings = tenant
        .as_ref()
        .and_then(|tenant| tenant.forms.clone())
        .unwrap_or_default();
    let display_name = if settings.branding_display_name.is_empty() {
        tenant.map(|tenant| tenant.display_name).unwrap_or_default()
    } else {
        settings.branding_display_name.clone()
    };
    let branding = Branding {
        display_name,
        style: render::style(&settings.accent_color),
    };
    (settings, branding)
}

/// Writes an audit event of the form's own (the browser has no token:
/// the link is the principal).
pub(super) async fn audit(forms: &Forms, record: &FormLinkRecord, method: &str, outcome: &str) {
    let event = v1::AuditEvent {
        principal: format!("form-link:{}", record.link_id),
        tenant: record.tenant_id.clone(),
        resource: link_name(&record.tenant_id, &record.link_id),
        method: method.to_owned(),
        outcome: outcome.to_owned(),
        ..v1::AuditEvent::default()
    };
    if let Err(error) = forms.audit.write(event, true).await {
        tracing::error!(%error, method, "could not audit a form step");
    }
}

/// `GET /forms/{token}`.
pub(super) async fn open(State(forms): State<Forms>, Path(token): Path<String>) -> Response {
    let opened = match forms.app.open_form_link(&token).await {
        Ok(opened) => opened,
        Err(state) => return refusal_page(state),
    };
    let record = opened.record;
    audit(&forms, &record, "FormOpened", "OK").await;
    let session = Session::new(&record.tenant_id, &record.link_id);
    let cookie = session.cookie(&forms.app.keyring());
    act(
        &forms,
        &session,
        &record,
        Action::Show,
        &HashMap::new(),
        cookie,
    )
    .await
}

/// `POST /forms/session`.
pub(super) async fn submit(
    State(forms): State<Forms>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| Session::from_cookie_header(&forms.app.keyring(), value));
    let Some(session) = session else {
        return session_page(
            "Your session has ended",
            "Forms stay open for 30 minutes. Go back to the app you came from and start again.",
        );
    };
    let form: HashMap<String, String> = pairs.into_iter().collect();
    if !form
        .get("csrf")
        .is_some_and(|token| session.csrf_matches(token))
    {
        return session_page(
            "This form cannot be sent",
            "It does not belong to your session. Reload the page from the link you were given.",
        );
    }
    let record = match forms
        .app
        .open_link_record(&session.tenant_id, &session.link_id)
        .await
    {
        Ok(record) => record,
        Err(state) => return refusal_page(state),
    };
    let action = match form.get("action").map(String::as_str) {
        Some("test") => Action::Test,
        Some("save") => Action::Save,
        Some("cancel") => Action::Cancel,
        Some("choose") => Action::Choose,
        _ => Action::Show,
    };
    act(&forms, &session, &record, action, &form, None).await
}

/// The origin of a record's redirect URL, for the policy's `form-action`.
pub(super) fn redirect_origin(record: &FormLinkRecord) -> Option<String> {
    origin_of(&record.redirect_url)
}
