//! What a submission's outcome becomes: errors placed next to their
//! inputs, the signed redirect back to the partner, and the TLS settings an
//! edit really changes.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Forms;
use super::pages::refusal_page;
use super::session::COOKIE;
use crate::app::forms::{LinkState, link_name, redirect_message};
use crate::error::Violation;
use crate::pb::storage::FormLinkRecord;
use crate::pb::v1;

/// Errors to show, by where they go.
#[derive(Default)]
pub(super) struct Errors {
    pub(super) fields: BTreeMap<String, String>,
    pub(super) display_name: Option<String>,
    pub(super) tls: Vec<(String, String)>,
    pub(super) general: Vec<String>,
}

impl Errors {
    pub(super) fn is_empty(&self) -> bool {
        self.fields.is_empty()
            && self.display_name.is_none()
            && self.tls.is_empty()
            && self.general.is_empty()
    }

    /// Places the API's violations next to their inputs.
    pub(super) fn add_violations(&mut self, violations: Vec<Violation>) {
        for violation in violations {
            let field = violation
                .field
                .strip_prefix("connection.")
                .unwrap_or(&violation.field);
            let text = sentence(&violation.description);
            if let Some(name) = field
                .strip_prefix("config.")
                .or_else(|| field.strip_prefix("secrets."))
            {
                self.fields.entry(name.to_owned()).or_insert(text);
            } else if field == "display_name" {
                self.display_name = Some(text);
            } else if field.starts_with("tls") {
                self.tls.push((field.to_owned(), text));
            } else {
                self.general.push(text);
            }
        }
    }
}

/// A plugin's or the API's description as a sentence.
fn sentence(text: &str) -> String {
    let mut out = text.trim().to_owned();
    if let Some(first) = out.get(..1) {
        out = first.to_uppercase() + &out[1..];
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// The redirect back to the partner, signed, and the session's end.
pub(super) fn redirect(
    forms: &Forms,
    record: &FormLinkRecord,
    connection: &str,
    outcome: &str,
) -> Response {
    let link = link_name(&record.tenant_id, &record.link_id);
    let message = redirect_message(
        &record.redirect_url,
        &link,
        connection,
        outcome,
        &record.state,
    );
    let (Some(signature), Ok(mut url)) = (
        forms.app.sign_form_redirect(&message),
        url::Url::parse(&record.redirect_url),
    ) else {
        return refusal_page(LinkState::Invalid);
    };
    url.query_pairs_mut()
        .append_pair("connection", connection)
        .append_pair("outcome", outcome)
        .append_pair("state", &record.state)
        .append_pair("link", &link)
        .append_pair("signature", &signature);
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(clear) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/forms; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
    )) {
        headers.insert(header::SET_COOKIE, clear);
    }
    response
}

/// The `tls.*` mask paths whose value the form changes (an unset mode
/// reads as `prefer`, what the form shows for it).
pub(super) fn tls_changes(old: Option<&v1::TlsConfig>, next: &v1::TlsConfig) -> Vec<String> {
    let default = v1::TlsConfig::default();
    let old = old.unwrap_or(&default);
    let mode = |mode: i32| {
        if mode == v1::TlsMode::Unspecified as i32 {
            v1::TlsMode::Prefer as i32
        } else {
            mode
        }
    };
    let mut paths = Vec::new();
    if mode(old.mode) != mode(next.mode) {
        paths.push("tls.mode".to_owned());
    }
    for (path, before, after) in [
        ("tls.ca_pem", &old.ca_pem, &next.ca_pem),
        (
            "tls.client_cert_pem",
            &old.client_cert_pem,
            &next.client_cert_pem,
        ),
        ("tls.server_name", &old.server_name, &next.server_name),
    ] {
        if before != after {
            paths.push(path.to_owned());
        }
    }
    paths
}
