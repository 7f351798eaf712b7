//! From a data source's field schema to the form's inputs, and from a
//! submitted form back to a connection. Input names: `f.<field>` for config
//! and secret fields, `tls.<setting>`, `display_name`.

use std::collections::{BTreeMap, HashMap};

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

use crate::pb::v1;
use crate::pb::v1::FieldType;

/// One input of the form.
#[derive(Debug, Clone)]
pub struct Field {
    /// The schema field.
    pub schema: v1::FieldSchema,
    /// The value to show (never a secret's).
    pub value: String,
    /// Why the submitted value was refused, if it was.
    pub error: Option<String>,
    /// For a secret: a value is already kept (stored or staged).
    pub secret_set: bool,
}

impl Field {
    /// The input's name.
    pub fn input_name(&self) -> String {
        format!("f.{}", self.schema.name)
    }

    /// The input's id (also what its label and messages point at).
    pub fn id(&self) -> String {
        let safe: String = self
            .schema
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("field-{safe}")
    }

    /// The label: the schema's, else the name made readable.
    pub fn label(&self) -> String {
        if !self.schema.label.is_empty() {
            return self.schema.label.clone();
        }
        let mut label = self.schema.name.replace(['_', '.'], " ");
        if let Some(first) = label.get(..1) {
            label = first.to_uppercase() + &label[1..];
        }
        label
    }

    /// The schema's type.
    pub fn kind(&self) -> FieldType {
        FieldType::try_from(self.schema.r#type).unwrap_or(FieldType::String)
    }
}

/// The schema's fields in display order: by group (first appearance of the
/// group in `order`), then `order`, then name.
pub fn ordered(schema: &[v1::FieldSchema]) -> Vec<(String, Vec<v1::FieldSchema>)> {
    let mut fields = schema.to_vec();
    fields.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
    let mut groups: Vec<(String, Vec<v1::FieldSchema>)> = Vec::new();
    for field in fields {
        match groups.iter_mut().find(|(group, _)| *group == field.group) {
            Some((_, members)) => members.push(field),
            None => groups.push((field.group.clone(), vec![field])),
        }
    }
    groups
}

/// Text of a config value as an input shows it.
pub fn value_text(value: &Value) -> String {
    match &value.kind {
        Some(Kind::StringValue(text)) => text.clone(),
        Some(Kind::NumberValue(number)) => {
            if number.fract() == 0.0 && number.abs() < 9.0e15 {
                format!("{}", *number as i64)
            } else {
                number.to_string()
            }
        }
        Some(Kind::BoolValue(flag)) => flag.to_string(),
        Some(Kind::ListValue(list)) => list
            .values
            .iter()
            .map(value_text)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A submitted form: each input's last value.
pub type Submitted = HashMap<String, String>;

/// What a submission says of the connection.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The config to send.
    pub config: Struct,
    /// The secrets typed (non-empty only).
    pub secrets: BTreeMap<String, String>,
    /// Errors found before asking the plugin (a number that is not one).
    pub errors: BTreeMap<String, String>,
    /// Every non-secret input as typed, to show again.
    pub shown: BTreeMap<String, String>,
}

/// Reads the schema's inputs from a submission.
pub fn parse(schema: &[v1::FieldSchema], form: &Submitted) -> Parsed {
    let mut parsed = Parsed::default();
    for field in schema {
        let input = form
            .get(&format!("f.{}", field.name))
            .map(|text| text.trim_end_matches(['\r', '\n']))
            .unwrap_or_default();
        if field.secret {
            if !input.is_empty() {
                parsed.secrets.insert(field.name.clone(), input.to_owned());
            }
            continue;
        }
        parsed.shown.insert(field.name.clone(), input.to_owned());
        let kind = FieldType::try_from(field.r#type).unwrap_or(FieldType::String);
        let value = match kind {
            FieldType::Bool => Some(Kind::BoolValue(input == "true")),
            _ if input.trim().is_empty() => None,
            FieldType::Int => match input.trim().parse::<i64>() {
                Ok(number) => Some(Kind::NumberValue(number as f64)),
                Err(_) => {
                    parsed
                        .errors
                        .insert(field.name.clone(), "Enter a whole number.".into());
                    None
                }
            },
            FieldType::StringList => Some(Kind::ListValue(ListValue {
                values: input
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(|line| Value {
                        kind: Some(Kind::StringValue(line.to_owned())),
                    })
                    .collect(),
            })),
            FieldType::Text => Some(Kind::StringValue(input.replace("\r\n", "\n"))),
            _ => Some(Kind::StringValue(input.trim().to_owned())),
        };
        if let Some(kind) = value {
            parsed
                .config
                .fields
                .insert(field.name.clone(), Value { kind: Some(kind) });
        }
    }
    parsed
}

/// The TLS settings a submission names (`None` when the data source has none).
pub fn parse_tls(form: &Submitted) -> v1::TlsConfig {
    let text = |name: &str| {
        form.get(name)
            .cloned()
            .unwrap_or_default()
            .replace("\r\n", "\n")
    };
    let mode = match form.get("tls.mode").map(String::as_str) {
        Some("disable") => v1::TlsMode::Disable,
        Some("require") => v1::TlsMode::Require,
        Some("verify_ca") => v1::TlsMode::VerifyCa,
        Some("verify_full") => v1::TlsMode::VerifyFull,
        _ => v1::TlsMode::Prefer,
    };
    v1::TlsConfig {
        mode: mode as i32,
        ca_pem: text("tls.ca_pem").trim().to_owned(),
        client_cert_pem: text("tls.client_cert_pem").trim().to_owned(),
        client_key_pem: text("tls.client_key_pem").trim().to_owned(),
        server_name: text("tls.server_name").trim().to_owned(),
        client_key_set: false,
    }
}

/// The TLS modes in the order the page offers them, with their words.
pub const TLS_MODES: &[(&str, v1::TlsMode, &str)] = &[
    (
        "prefer",
        v1::TlsMode::Prefer,
        "Use TLS when the server offers it",
    ),
    (
        "require",
        v1::TlsMode::Require,
        "Require TLS (any certificate)",
    ),
    (
        "verify_ca",
        v1::TlsMode::VerifyCa,
        "Require TLS with a trusted certificate",
    ),
    (
        "verify_full",
        v1::TlsMode::VerifyFull,
        "Require TLS with a trusted certificate for this host name",
    ),
    ("disable", v1::TlsMode::Disable, "Do not use TLS"),
];

/// A canonical text of what a test covers (config and TLS), for the
/// `require_test` digest.
pub fn canonical(connection: &v1::Connection) -> String {
    let mut text = String::new();
    if let Some(config) = &connection.config {
        let mut keys: Vec<&String> = config.fields.keys().collect();
        keys.sort();
        for key in keys {
            text.push_str(key);
            text.push('=');
            text.push_str(&value_text(&config.fields[key]));
            text.push('\n');
        }
    }
    if let Some(tls) = &connection.tls {
        text.push_str(&format!(
            "tls={}|{}|{}|{}|{}\n",
            tls.mode, tls.ca_pem, tls.client_cert_pem, tls.client_key_pem, tls.server_name
        ));
    }
    text.push_str(&connection.data_source);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(name: &str, kind: FieldType, secret: bool) -> v1::FieldSchema {
        v1::FieldSchema {
            name: name.into(),
            r#type: kind as i32,
            secret,
            ..Default::default()
        }
    }

    #[test]
    fn a_submission_becomes_typed_config_and_secrets() {
        let fields = [
            schema("host", FieldType::String, false),
            schema("port", FieldType::Int, false),
            schema("ssl", FieldType::Bool, false),
            schema("hosts", FieldType::StringList, false),
            schema("password", FieldType::String, true),
            schema("empty", FieldType::String, false),
        ];
        let form: Submitted = [
            ("f.host", " db.example.com "),
            ("f.port", "x5432"),
            ("f.ssl", "true"),
            ("f.hosts", "a\r\nb\r\n\r\n"),
            ("f.password", "s3cret"),
            ("f.empty", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let parsed = parse(&fields, &form);
        assert_eq!(value_text(&parsed.config.fields["host"]), "db.example.com");
        assert!(!parsed.config.fields.contains_key("port"));
        assert_eq!(parsed.errors["port"], "Enter a whole number.");
        assert_eq!(value_text(&parsed.config.fields["ssl"]), "true");
        assert_eq!(value_text(&parsed.config.fields["hosts"]), "a\nb");
        assert!(!parsed.config.fields.contains_key("empty"));
        assert_eq!(parsed.secrets["password"], "s3cret");
        assert!(!parsed.shown.contains_key("password"));
    }
}
