//! What a form submission does: show the form, pick a data source, test,
//! save or cancel. The rules are the API's own (`App::create_connection`,
//! `App::update_connection` with its redirect rule, `App::test_connection`):
//! the form only turns their answers into words next to the fields.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;
use connvault_crypto::SecretMap;
use secrecy::{ExposeSecret as _, SecretString};

use super::Forms;
use super::fields::{Field, canonical, parse, parse_tls, value_text};
use super::outcome::{Errors, redirect, tls_changes};
use super::pages::{audit, page_response, redirect_origin, refusal_page, tenant_view};
use super::render::{self, FormView};
use super::session::Session;
use super::words::test_view;
use crate::app::forms::LinkState;
use crate::error::ServiceError;
use crate::names::tenant_name;
use crate::pb::storage::FormLinkRecord;
use crate::pb::v1;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Show the form as it starts.
    Show,
    /// A data source was picked.
    Choose,
    /// Test the connection.
    Test,
    /// Save it.
    Save,
    /// Go back without saving.
    Cancel,
}

/// Runs `action` for the open link `record`.
pub(super) async fn act(
    forms: &Forms,
    session: &Session,
    record: &FormLinkRecord,
    action: Action,
    form: &HashMap<String, String>,
    cookie: Option<String>,
) -> Response {
    let (settings, branding) = tenant_view(forms, &record.tenant_id).await;
    let origin = redirect_origin(record);
    let respond = |status: StatusCode, markup| {
        page_response(
            status,
            markup,
            &branding,
            origin.as_deref(),
            &settings.frame_ancestors,
            cookie.clone(),
        )
    };
    if action == Action::Cancel {
        let connection = if record.edit {
            record.connection.clone()
        } else {
            String::new()
        };
        return match forms
            .app
            .complete_form_link(&record.tenant_id, &record.link_id, "")
            .await
        {
            Ok(done) => {
                audit(forms, &done, "FormCancelled", "OK").await;
                redirect(forms, &done, &connection, "cancelled")
            }
            Err(_) => refusal_page(LinkState::Used),
        };
    }
    let existing = if record.edit {
        match forms.app.get_connection(&record.connection).await {
            Ok(connection) => Some(connection),
            Err(_) => return refusal_page(LinkState::Invalid),
        }
    } else {
        None
    };
    let allowed = |id: &str| {
        settings
            .allowed_data_sources
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(id))
    };
    let (source_id, picked) = match (&existing, record.data_source.as_str()) {
        (Some(connection), _) => (connection.data_source.clone(), false),
        (None, "") => match form.get("data_source") {
            Some(id) if allowed(id) => (id.clone(), true),
            _ => {
                let sources: Vec<v1::DataSource> = settings
                    .allowed_data_sources
                    .iter()
                    .filter_map(|id| forms.app.get_data_source(&format!("dataSources/{id}")).ok())
                    .collect();
                return respond(
                    StatusCode::OK,
                    render::picker_page(&branding, &session.csrf, &sources),
                );
            }
        },
        (None, fixed) => (fixed.to_owned(), false),
    };
    let Ok(source) = forms
        .app
        .get_data_source(&format!("dataSources/{source_id}"))
    else {
        return refusal_page(LinkState::Invalid);
    };
    let staged = forms.app.staged_secrets(record);
    let stored_secrets: Vec<String> = existing
        .as_ref()
        .map(|connection| connection.secret_fields.clone())
        .unwrap_or_default();
    let secret_set = |name: &str| {
        staged.contains_key(name) || stored_secrets.iter().any(|stored| stored == name)
    };
    let may_name = existing.is_some() || record.editable_name;
    let title = match (&existing, record.edit) {
        (Some(_), _) | (None, true) => format!("Update your {} connection", source.display_name),
        _ => format!("Connect {}", source.display_name),
    };

    // The form as it starts: stored values (edit) or the schema's defaults.
    if matches!(action, Action::Show | Action::Choose) {
        let config = existing
            .as_ref()
            .and_then(|connection| connection.config.clone())
            .unwrap_or_default();
        let fields = source
            .fields
            .iter()
            .map(|schema| Field {
                value: if schema.secret {
                    String::new()
                } else {
                    config
                        .fields
                        .get(&schema.name)
                        .map(value_text)
                        .or_else(|| schema.default_value.clone())
                        .unwrap_or_default()
                },
                secret_set: schema.secret && secret_set(&schema.name),
                schema: schema.clone(),
                error: None,
            })
            .collect();
        let tls = existing
            .as_ref()
            .and_then(|connection| connection.tls.clone())
            .unwrap_or(v1::TlsConfig {
                mode: v1::TlsMode::Prefer as i32,
                ..Default::default()
            });
        let view = FormView {
            branding: &branding,
            title,
            csrf: &session.csrf,
            source: &source,
            picked,
            display_name: may_name.then(|| {
                existing
                    .as_ref()
                    .map(|connection| connection.display_name.clone())
                    .unwrap_or_else(|| record.display_name.clone())
            }),
            display_name_error: None,
            tls_key_set: tls.client_key_set,
            tls,
            fields,
            tls_errors: Vec::new(),
            general_errors: Vec::new(),
            test: None,
            require_test: record.require_test,
            edit: record.edit,
        };
        return respond(StatusCode::OK, render::form_page(&view));
    }

    // A test or a save: the connection the form describes.
    let parsed = parse(&source.fields, form);
    let mut errors = Errors::default();
    for (name, error) in &parsed.errors {
        errors.fields.insert(name.clone(), error.clone());
    }
    let display_name = if may_name {
        form.get("display_name")
            .map(|name| name.trim().to_owned())
            .unwrap_or_default()
    } else {
        record.display_name.clone()
    };
    if may_name && display_name.is_empty() {
        errors.display_name = Some("Enter a name for this connection.".into());
    }
    let mut secrets = SecretMap::new();
    for (name, value) in staged.iter() {
        secrets.insert(name, value.clone());
    }
    for (name, value) in &parsed.secrets {
        secrets.insert(name.clone(), SecretString::from(value.clone()));
    }
    let tls = source.supports_tls.then(|| parse_tls(form));
    let tls_key_typed = tls
        .as_ref()
        .is_some_and(|tls| !tls.client_key_pem.is_empty());
    let connection = v1::Connection {
        name: record.connection.clone(),
        display_name: display_name.clone(),
        data_source: source.id.clone(),
        config: Some(parsed.config.clone()),
        secrets: secrets
            .iter()
            .map(|(name, value)| (name.to_owned(), value.expose_secret().to_owned()))
            .collect(),
        tls: tls.clone(),
        labels: if record.edit {
            HashMap::new()
        } else {
            record.labels.clone()
        },
        product: record.product.clone(),
        ..Default::default()
    };
    let digest = forms
        .app
        .form_digest(&record.link_id, &canonical(&connection), &secrets);

    let mut test = None;
    if errors.is_empty() {
        match action {
            Action::Test => {
                let missing: Vec<&String> = stored_secrets
                    .iter()
                    .filter(|name| !secrets.contains_key(name) && *name != "tls.client_key")
                    .collect();
                if !missing.is_empty() {
                    for name in missing {
                        errors.fields.insert(
                            name.clone(),
                            "Enter it to test the connection: it is kept, but never shown.".into(),
                        );
                    }
                } else {
                    let request = v1::TestConnectionRequest {
                        target: Some(v1::test_connection_request::Target::Connection(
                            connection.clone(),
                        )),
                        parent: tenant_name(&record.tenant_id),
                        timeout_ms: 0,
                    };
                    match forms.app.test_connection(request).await {
                        Ok(result) => {
                            let passed = result.success.then(|| digest.clone());
                            if let Err(error) = forms
                                .app
                                .stage_on_link(&record.tenant_id, &record.link_id, &secrets, passed)
                                .await
                            {
                                tracing::warn!(%error, "could not stage a form's secrets");
                            }
                            audit(forms, record, "FormTested", if result.success { "OK" } else { "FAILED" }).await;
                            test = Some(test_view(&result));
                        }
                        Err(ServiceError::InvalidArgument(violations)) => errors.add_violations(violations),
                        Err(ServiceError::PermissionDenied(_)) => errors.general.push(
                            "This server may not be reached from here. Ask the app that sent you for help.".into(),
                        ),
                        Err(error) => {
                            tracing::warn!(%error, "a form's test could not run");
                            errors.general.push("The test could not run. Try again in a moment.".into());
                        }
                    }
                }
            }
            Action::Save => {
                if record.require_test && record.tested_digest != digest {
                    errors.general.push(
                        "Test the connection first: Save works once a test passes with these settings.".into(),
                    );
                } else {
                    let saved = match &existing {
                        None => forms
                            .app
                            .create_connection(
                                &tenant_name(&record.tenant_id),
                                Some(connection.clone()),
                                false,
                            )
                            .await
                            .map(|saved| (saved, "created")),
                        Some(_) => {
                            let mut paths = vec!["display_name".to_owned(), "config".to_owned()];
                            if let Some(next) = &tls {
                                // Only the TLS settings the user changed: an
                                // unchanged one must not count as a change of
                                // how the secrets are protected.
                                paths.extend(tls_changes(
                                    existing.as_ref().and_then(|c| c.tls.as_ref()),
                                    next,
                                ));
                                if tls_key_typed {
                                    paths.push("tls.client_key_pem".into());
                                }
                            }
                            paths.extend(secrets.keys().map(|name| format!("secrets.{name}")));
                            forms
                                .app
                                .update_connection(v1::UpdateConnectionRequest {
                                    connection: Some(connection.clone()),
                                    update_mask: Some(prost_types::FieldMask { paths }),
                                    etag: String::new(),
                                })
                                .await
                                .map(|saved| (saved, "updated"))
                        }
                    };
                    match saved {
                        Ok((saved, outcome)) => {
                            return match forms
                                .app
                                .complete_form_link(&record.tenant_id, &record.link_id, &saved.name)
                                .await
                            {
                                Ok(done) => {
                                    audit(forms, &done, "FormSaved", "OK").await;
                                    redirect(forms, &done, &saved.name, outcome)
                                }
                                Err(_) => refusal_page(LinkState::Used),
                            };
                        }
                        Err(ServiceError::InvalidArgument(violations)) => {
                            errors.add_violations(violations)
                        }
                        Err(ServiceError::AlreadyExists(_)) => {
                            errors.display_name = Some(
                                "A connection with this name exists already. Choose another name."
                                    .into(),
                            )
                        }
                        Err(ServiceError::FailedPrecondition(_)) if existing.is_some() => {
                            // The API's redirect rule: a change to where the
                            // secrets go needs them again.
                            for name in &stored_secrets {
                                if !parsed.secrets.contains_key(name) && name != "tls.client_key" {
                                    errors.fields.insert(
                                        name.clone(),
                                        "You changed where this is sent: enter it again to save."
                                            .into(),
                                    );
                                }
                            }
                            if errors.fields.is_empty() {
                                errors.general.push(
                                    "You changed where your credentials are sent: enter them again to save.".into(),
                                );
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "a form's save failed");
                            errors
                                .general
                                .push("Saving failed. Try again in a moment.".into());
                        }
                    }
                    if !parsed.secrets.is_empty()
                        && let Err(error) = forms
                            .app
                            .stage_on_link(&record.tenant_id, &record.link_id, &secrets, None)
                            .await
                    {
                        tracing::warn!(%error, "could not stage a form's secrets");
                    }
                }
            }
            _ => {}
        }
    }
    let fields = source
        .fields
        .iter()
        .map(|schema| Field {
            value: parsed.shown.get(&schema.name).cloned().unwrap_or_default(),
            error: errors.fields.get(&schema.name).cloned(),
            secret_set: schema.secret
                && (secrets.contains_key(&schema.name) || secret_set(&schema.name)),
            schema: schema.clone(),
        })
        .collect();
    let mut shown_tls = tls.unwrap_or_default();
    shown_tls.client_key_pem.clear();
    let view = FormView {
        branding: &branding,
        title,
        csrf: &session.csrf,
        source: &source,
        picked,
        display_name: may_name.then_some(display_name),
        display_name_error: errors.display_name.clone(),
        tls_key_set: tls_key_typed
            || existing
                .as_ref()
                .and_then(|connection| connection.tls.as_ref())
                .is_some_and(|tls| tls.client_key_set),
        tls: shown_tls,
        fields,
        tls_errors: errors.tls.clone(),
        general_errors: errors.general.clone(),
        test,
        require_test: record.require_test,
        edit: record.edit,
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    respond(status, render::form_page(&view))
}
