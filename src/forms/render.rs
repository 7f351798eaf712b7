//! The HTML of the form pages, with maud: every value inserted is escaped
//! by construction. One inline style sheet (allowed by its hash in the
//! Content-Security-Policy), no script, no external asset of any kind.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::fields::{Field, TLS_MODES, ordered};
use crate::pb::v1;

/// The page's look; `ACCENT` is replaced by the tenant's validated colour.
const STYLE: &str = "\
:root{--accent:ACCENT}\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1a1a1a;background:#f4f5f7}\
main{max-width:40rem;margin:2rem auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.15)}\
header{border-bottom:4px solid var(--accent);margin-bottom:1.5rem}\
header p{margin:0;color:#444}\
h1{font-size:1.5rem;margin:.25rem 0 .75rem}\
fieldset{border:1px solid #ccc;border-radius:6px;margin:0 0 1rem;padding:1rem}\
legend{font-weight:600;padding:0 .25rem}\
.field{margin-bottom:1rem}\
label{display:block;font-weight:600}\
.hint{display:block;color:#444;font-size:.9rem}\
.req{color:#8a1c1c;font-weight:400}\
input[type=text],input[type=number],input[type=password],select,textarea{width:100%;padding:.5rem;border:1px solid #767676;border-radius:4px;font:inherit}\
textarea{min-height:6rem;font-family:ui-monospace,monospace;font-size:.85rem}\
input:focus,select:focus,textarea:focus,button:focus{outline:3px solid var(--accent);outline-offset:2px}\
.error{color:#8a1c1c;font-weight:600;display:block}\
.invalid{border-color:#8a1c1c!important}\
.summary{border:2px solid #8a1c1c;border-radius:6px;padding:.75rem 1rem;margin-bottom:1rem}\
.result{border-radius:6px;padding:.75rem 1rem;margin-bottom:1rem;border:2px solid #1e6b34}\
.result.failed{border-color:#8a1c1c}\
.result ol{margin:.5rem 0 0;padding-left:1.25rem}\
.actions{display:flex;gap:.75rem;flex-wrap:wrap;margin-top:1.5rem}\
button{font:inherit;padding:.6rem 1.2rem;border-radius:4px;border:2px solid var(--accent);background:#fff;color:#1a1a1a;cursor:pointer}\
button.primary{background:var(--accent);color:#fff}\
.secondary{border-color:#767676}";

/// The default accent colour.
const DEFAULT_ACCENT: &str = "#0b57d0";

/// The style sheet for `accent` (validated `#rrggbb`, else the default).
pub fn style(accent: &str) -> String {
    let accent = if crate::app::forms::valid_colour(accent) {
        accent
    } else {
        DEFAULT_ACCENT
    };
    STYLE.replace("ACCENT", accent)
}

/// The tenant's branding.
pub struct Branding {
    /// Shown above the title.
    pub display_name: String,
    /// The style sheet (with the accent colour).
    pub style: String,
}

fn page(branding: &Branding, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (PreEscaped(&branding.style)) }
            }
            body {
                main {
                    header {
                        @if !branding.display_name.is_empty() {
                            p { (branding.display_name) }
                        }
                        h1 { (title) }
                    }
                    (body)
                }
            }
        }
    }
}

/// A page that only says something (a used, expired, revoked or invalid link).
pub fn message_page(branding: &Branding, title: &str, text: &str) -> Markup {
    page(branding, title, html! { p { (text) } })
}

/// The outcome of a test, for the page.
pub struct TestView {
    /// Whether every stage passed.
    pub success: bool,
    /// The headline.
    pub headline: String,
    /// Each stage: its name, whether it passed (None: skipped), its words.
    pub stages: Vec<(String, Option<bool>, String)>,
}

/// Everything the form page shows.
pub struct FormView<'a> {
    /// Branding.
    pub branding: &'a Branding,
    /// The title.
    pub title: String,
    /// The CSRF token.
    pub csrf: &'a str,
    /// The data source (its fields, name and TLS support).
    pub source: &'a v1::DataSource,
    /// Whether the user picked the data source (a hidden input keeps it).
    pub picked: bool,
    /// The display name input, when the user may name the connection.
    pub display_name: Option<String>,
    /// The display name's error.
    pub display_name_error: Option<String>,
    /// The inputs by schema field name.
    pub fields: Vec<Field>,
    /// The TLS settings shown.
    pub tls: v1::TlsConfig,
    /// Whether a TLS client key is kept.
    pub tls_key_set: bool,
    /// TLS errors by input name.
    pub tls_errors: Vec<(String, String)>,
    /// Errors not tied to one field.
    pub general_errors: Vec<String>,
    /// The last test's outcome.
    pub test: Option<TestView>,
    /// Save only after a passing test.
    pub require_test: bool,
    /// An edit (else a create).
    pub edit: bool,
}

fn error_for<'a>(errors: &'a [(String, String)], name: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, text)| text.as_str())
}

fn field_input(field: &Field) -> Markup {
    let id = field.id();
    let hint_id = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let described = match (
        &field.error,
        field.schema.description.is_empty() && !field.schema.secret,
    ) {
        (Some(_), true) => error_id.clone(),
        (Some(_), false) => format!("{hint_id} {error_id}"),
        (None, true) => String::new(),
        (None, false) => hint_id.clone(),
    };
    let class = if field.error.is_some() { "invalid" } else { "" };
    let required = field.schema.required && !field.secret_set;
    let name = field.input_name();
    let kind = field.kind();
    html! {
        div.field {
            label for=(id) {
                (field.label())
                @if required { " " span.req { "(required)" } }
            }
            @if !field.schema.description.is_empty() || field.schema.secret {
                span.hint id=(hint_id) {
                    (field.schema.description)
                    @if field.schema.secret && field.secret_set {
                        " A value is set. Leave this empty to keep it."
                    }
                }
            }
            @if let Some(error) = &field.error {
                span.error id=(error_id) { (error) }
            }
            @if field.schema.secret {
                input type="password" id=(id) name=(name) class=(class) autocomplete="new-password"
                    aria-required=[required.then_some("true")]
                    aria-invalid=[field.error.as_ref().map(|_| "true")]
                    aria-describedby=[(!described.is_empty()).then_some(&described)];
            } @else if kind == v1::FieldType::Enum {
                select id=(id) name=(name) class=(class)
                    aria-required=[required.then_some("true")]
                    aria-invalid=[field.error.as_ref().map(|_| "true")]
                    aria-describedby=[(!described.is_empty()).then_some(&described)] {
                    @if !field.schema.required {
                        option value="" selected[field.value.is_empty()] { "(none)" }
                    }
                    @for choice in &field.schema.allowed_values {
                        option value=(choice) selected[*choice == field.value] { (choice) }
                    }
                }
            } @else if kind == v1::FieldType::Bool {
                input type="checkbox" id=(id) name=(name) value="true" checked[field.value == "true"]
                    aria-describedby=[(!described.is_empty()).then_some(&described)];
            } @else if kind == v1::FieldType::Text || kind == v1::FieldType::StringList {
                textarea id=(id) name=(name) class=(class) spellcheck="false"
                    aria-required=[required.then_some("true")]
                    aria-invalid=[field.error.as_ref().map(|_| "true")]
                    aria-describedby=[(!described.is_empty()).then_some(&described)] { (field.value) }
            } @else if kind == v1::FieldType::Int {
                input type="number" id=(id) name=(name) class=(class) value=(field.value)
                    min=[field.schema.min] max=[field.schema.max] step="1"
                    aria-required=[required.then_some("true")]
                    aria-invalid=[field.error.as_ref().map(|_| "true")]
                    aria-describedby=[(!described.is_empty()).then_some(&described)];
            } @else {
                input type="text" id=(id) name=(name) class=(class) value=(field.value)
                    maxlength=[(field.schema.max_length > 0).then_some(field.schema.max_length)]
                    autocomplete="off" spellcheck="false"
                    aria-required=[required.then_some("true")]
                    aria-invalid=[field.error.as_ref().map(|_| "true")]
                    aria-describedby=[(!described.is_empty()).then_some(&described)];
            }
        }
    }
}

fn tls_section(view: &FormView<'_>) -> Markup {
    let mode = view.tls.mode;
    let text_area = |name: &str, id: &str, label: &str, value: &str, hint: &str| {
        let error = error_for(&view.tls_errors, name);
        html! {
            div.field {
                label for=(id) { (label) }
                span.hint id={(id) "-hint"} { (hint) }
                @if let Some(error) = error { span.error id={(id) "-error"} { (error) } }
                textarea id=(id) name=(name) spellcheck="false" class=[error.map(|_| "invalid")]
                    aria-invalid=[error.map(|_| "true")]
                    aria-describedby={(id) "-hint" @if error.is_some() { " " (id) "-error" }} { (value) }
            }
        }
    };
    html! {
        fieldset {
            legend { "Secure connection (TLS)" }
            div.field {
                label for="tls-mode" { "TLS" }
                select id="tls-mode" name="tls.mode" {
                    @for (value, tls_mode, words) in TLS_MODES {
                        option value=(value) selected[*tls_mode as i32 == mode] { (words) }
                    }
                }
            }
            (text_area("tls.ca_pem", "tls-ca", "CA certificate (PEM)", &view.tls.ca_pem,
                "The certificate authority to trust, if not a public one."))
            (text_area("tls.client_cert_pem", "tls-cert", "Client certificate (PEM)", &view.tls.client_cert_pem,
                "Only if the server asks for a client certificate."))
            div.field {
                label for="tls-key" { "Client key (PEM)" }
                span.hint id="tls-key-hint" {
                    "The client certificate's private key."
                    @if view.tls_key_set { " A key is set. Leave this empty to keep it." }
                }
                textarea id="tls-key" name="tls.client_key_pem" spellcheck="false" autocomplete="off"
                    aria-describedby="tls-key-hint" {}
            }
            div.field {
                label for="tls-name" { "Server name" }
                span.hint id="tls-name-hint" { "The name on the server's certificate, if not the host." }
                input type="text" id="tls-name" name="tls.server_name" value=(view.tls.server_name)
                    aria-describedby="tls-name-hint" autocomplete="off";
            }
        }
    }
}

fn test_result(test: &TestView) -> Markup {
    html! {
        section.result.failed[!test.success] role="status" aria-labelledby="test-title" {
            h2 id="test-title" { (test.headline) }
            ol {
                @for (stage, passed, words) in &test.stages {
                    li {
                        strong { (stage) ": " }
                        @match passed {
                            Some(true) => "passed",
                            Some(false) => "failed",
                            None => "skipped",
                        }
                        @if !words.is_empty() { " — " (words) }
                    }
                }
            }
        }
    }
}

/// The form.
pub fn form_page(view: &FormView<'_>) -> Markup {
    let errors: Vec<(String, String)> = view
        .fields
        .iter()
        .filter_map(|field| {
            field
                .error
                .clone()
                .map(|error| (field.id(), format!("{}: {error}", field.label())))
        })
        .chain(
            view.display_name_error
                .iter()
                .map(|error| ("display-name".to_owned(), format!("Name: {error}"))),
        )
        .chain(
            view.tls_errors
                .iter()
                .map(|(_, error)| ("tls-mode".to_owned(), format!("TLS: {error}"))),
        )
        .collect();
    let body = html! {
        @if !errors.is_empty() || !view.general_errors.is_empty() {
            section.summary role="alert" aria-labelledby="summary-title" {
                h2 id="summary-title" { "Please check the form" }
                ul {
                    @for error in &view.general_errors { li { (error) } }
                    @for (id, error) in &errors { li { a href={"#" (id)} { (error) } } }
                }
            }
        }
        @if let Some(test) = &view.test { (test_result(test)) }
        p { (view.source.description) }
        form method="post" action="/forms/session" novalidate {
            input type="hidden" name="csrf" value=(view.csrf);
            @if view.picked { input type="hidden" name="data_source" value=(view.source.id); }
            @if let Some(name) = &view.display_name {
                div.field {
                    label for="display-name" { "Name for this connection" " " span.req { "(required)" } }
                    @if let Some(error) = &view.display_name_error { span.error id="display-name-error" { (error) } }
                    input type="text" id="display-name" name="display_name" value=(name) maxlength="100"
                        aria-required="true" autocomplete="off"
                        aria-invalid=[view.display_name_error.as_ref().map(|_| "true")]
                        aria-describedby=[view.display_name_error.as_ref().map(|_| "display-name-error")];
                }
            }
            @for (group, members) in ordered(&view.fields.iter().map(|f| f.schema.clone()).collect::<Vec<_>>()) {
                fieldset {
                    legend { @if group.is_empty() { "Connection" } @else { (group) } }
                    @for schema in &members {
                        @if let Some(field) = view.fields.iter().find(|f| f.schema.name == schema.name) {
                            (field_input(field))
                        }
                    }
                }
            }
            @if view.source.supports_tls { (tls_section(view)) }
            @if view.require_test {
                p { "Test the connection before saving: Save works once a test passes." }
            }
            div.actions {
                button.secondary type="submit" name="action" value="test" { "Test connection" }
                button.primary type="submit" name="action" value="save" {
                    @if view.edit { "Save changes" } @else { "Save connection" }
                }
                button.secondary type="submit" name="action" value="cancel" formnovalidate { "Cancel" }
            }
        }
    };
    page(view.branding, &view.title, body)
}

/// The picker of data sources (a create link without one).
pub fn picker_page(branding: &Branding, csrf: &str, sources: &[v1::DataSource]) -> Markup {
    let body = html! {
        form method="post" action="/forms/session" {
            input type="hidden" name="csrf" value=(csrf);
            div.field {
                label for="data-source" { "What do you want to connect?" }
                select id="data-source" name="data_source" {
                    @for source in sources {
                        option value=(source.id) { (source.display_name) }
                    }
                }
            }
            div.actions {
                button.primary type="submit" name="action" value="choose" { "Continue" }
                button.secondary type="submit" name="action" value="cancel" { "Cancel" }
            }
        }
    };
    page(branding, "Choose a data source", body)
}
