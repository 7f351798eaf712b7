//! Schema-driven validation and typed access to a connection's settings.

use std::collections::BTreeMap;

use crate::pb::{self, FieldType, value::Kind};

/// Longest string value accepted when a field sets no `max_length`.
pub const DEFAULT_MAX_STRING: usize = 4096;
/// Longest text (PEM) value accepted when a field sets no `max_length`.
pub const DEFAULT_MAX_TEXT: usize = 64 * 1024;
/// Most entries accepted in a string list.
pub const MAX_LIST_ENTRIES: usize = 256;

/// Field violations collected during validation: every bad field is reported at once.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Violations(pub Vec<pb::FieldViolation>);

impl Violations {
    /// Records that `field` (a path such as `config.port`) is wrong.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(pb::FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Whether nothing was found wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A connection whose config has been checked against its data source's schema,
/// with defaults applied: what `test`, `discover` and `render` receive.
#[derive(Debug)]
pub struct Connection<'a> {
    /// The data source this connection is for.
    pub data_source: &'a pb::DataSource,
    /// Config with defaults applied and values normalised to the schema's types.
    pub config: BTreeMap<String, pb::Value>,
    secrets: BTreeMap<String, String>,
    /// TLS settings (mode unspecified means "disable").
    pub tls: pb::Tls,
    /// Where this call may connect (unrestricted unless the host sent a grant).
    pub egress: crate::egress::Egress,
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for value in self.secrets.values_mut() {
            value.zeroize();
        }
        self.tls.client_key_pem.zeroize();
    }
}

impl Connection<'_> {
    /// A config string (or the string form of an enum); `""` when unset.
    pub fn str(&self, name: &str) -> &str {
        match self.config.get(name).and_then(|value| value.kind.as_ref()) {
            Some(Kind::StringValue(value)) => value,
            _ => "",
        }
    }

    /// A config integer; `None` when unset.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.config.get(name).and_then(|value| value.kind.as_ref()) {
            Some(Kind::IntValue(value)) => Some(*value),
            _ => None,
        }
    }

    /// A config boolean; `false` when unset.
    pub fn bool(&self, name: &str) -> bool {
        matches!(
            self.config.get(name).and_then(|value| value.kind.as_ref()),
            Some(Kind::BoolValue(true))
        )
    }

    /// A config string list; empty when unset.
    pub fn list(&self, name: &str) -> &[String] {
        match self.config.get(name).and_then(|value| value.kind.as_ref()) {
            Some(Kind::ListValue(list)) => &list.values,
            _ => &[],
        }
    }

    /// A secret's value. Never log it, never put it in an error.
    pub fn secret(&self, name: &str) -> Option<&str> {
        self.secrets.get(name).map(String::as_str)
    }

    /// The TLS mode, with "unspecified" read as "disable".
    pub fn tls_mode(&self) -> pb::TlsMode {
        match pb::TlsMode::try_from(self.tls.mode) {
            Ok(pb::TlsMode::Unspecified) | Err(_) => pb::TlsMode::Disable,
            Ok(mode) => mode,
        }
    }
}

/// The conventional destination of a network data source: its `host`
/// config field on its `port` config field, when the schema has both and
/// both are set (`None` otherwise).
pub fn host_and_port(connection: &Connection) -> Option<Vec<pb::NetworkTarget>> {
    let declared = |name: &str| {
        connection
            .data_source
            .fields
            .iter()
            .any(|field| field.name == name && !field.secret)
    };
    if !declared("host") || !declared("port") {
        return None;
    }
    let host = connection.str("host");
    let port = connection
        .int("port")
        .and_then(|port| u16::try_from(port).ok())
        .filter(|port| *port > 0)?;
    if host.is_empty() {
        return None;
    }
    Some(vec![pb::NetworkTarget {
        field: "config.host".to_owned(),
        host: host.to_owned(),
        port: u32::from(port),
    }])
}

/// Checks `spec` against `source`'s schema; returns the normalised connection or every violation.
///
/// Checks: unknown fields, secrets sent in config, missing required fields,
/// types, ranges, allowed values, patterns, lengths and TLS material.
/// `secrets_present` lists secrets that are set but not sent (an update keeping
/// stored secrets): they count as present for the required check.
pub fn check<'a>(
    source: &'a pb::DataSource,
    spec: pb::ConnectionSpec,
    secrets_present: &[String],
) -> Result<Connection<'a>, Violations> {
    let mut violations = Violations::default();
    let fields: BTreeMap<&str, &pb::Field> = source
        .fields
        .iter()
        .map(|field| (field.name.as_str(), field))
        .collect();
    let pb::ConnectionSpec {
        config: raw_config,
        mut secrets,
        tls,
        ..
    } = spec;
    let mut config = BTreeMap::new();
    // Fields already reported bad are not reported again as missing.
    let mut reported: Vec<String> = Vec::new();

    for (name, value) in raw_config {
        let path = format!("config.{name}");
        match fields.get(name.as_str()) {
            None => violations.add(path, "unknown field"),
            Some(field) if field.secret => violations.add(
                path,
                "is a secret field: send it in `secrets`, not in `config`",
            ),
            Some(field) => match normalise(field, value) {
                Ok(Some(value)) => {
                    config.insert(name, value);
                }
                Ok(None) => {}
                Err(problem) => {
                    violations.add(path, problem);
                    reported.push(name);
                }
            },
        }
    }
    for (name, value) in &secrets {
        let path = format!("secrets.{name}");
        match fields.get(name.as_str()) {
            None => violations.add(path, "unknown field"),
            Some(field) if !field.secret => {
                violations.add(path, "is not a secret field: send it in `config`")
            }
            Some(field) => {
                let max = effective_max(field);
                if value.len() > max {
                    violations.add(path, format!("must be at most {max} bytes"));
                }
            }
        }
    }
    for field in &source.fields {
        if field.secret {
            let present = secrets.get(&field.name).is_some_and(|v| !v.is_empty())
                || secrets_present.contains(&field.name);
            if field.required && !present {
                violations.add(format!("secrets.{}", field.name), "is required");
            }
            continue;
        }
        if config.contains_key(&field.name) || reported.contains(&field.name) {
            continue;
        }
        if let Some(default) = &field.default_value {
            let value = pb::Value {
                kind: Some(Kind::StringValue(default.clone())),
            };
            if let Ok(Some(value)) = normalise(field, value) {
                config.insert(field.name.clone(), value);
                continue;
            }
        }
        if field.required {
            violations.add(format!("config.{}", field.name), "is required");
        }
    }
    check_tls(source, &tls, &mut violations);

    if violations.is_empty() {
        Ok(Connection {
            data_source: source,
            config,
            secrets: std::mem::take(&mut secrets),
            tls: tls.unwrap_or_default(),
            egress: crate::egress::Egress::default(),
        })
    } else {
        use zeroize::Zeroize;
        for value in secrets.values_mut() {
            value.zeroize();
        }
        Err(violations)
    }
}

fn effective_max(field: &pb::Field) -> usize {
    match (field.max_length, FieldType::try_from(field.r#type)) {
        (0, Ok(FieldType::Text)) => DEFAULT_MAX_TEXT,
        (0, _) => DEFAULT_MAX_STRING,
        (max, _) => max as usize,
    }
}

/// Converts a value to the field's type; `Ok(None)` means "unset" (an empty string).
fn normalise(field: &pb::Field, value: pb::Value) -> Result<Option<pb::Value>, String> {
    let field_type = FieldType::try_from(field.r#type).unwrap_or(FieldType::String);
    let kind = match value.kind {
        None => return Ok(None),
        Some(kind) => kind,
    };
    let normalised = match (field_type, kind) {
        (FieldType::Int, Kind::IntValue(number)) => Kind::IntValue(check_range(field, number)?),
        (FieldType::Int, Kind::StringValue(text)) => {
            let number = text
                .trim()
                .parse::<i64>()
                .map_err(|_| "must be an integer".to_owned())?;
            Kind::IntValue(check_range(field, number)?)
        }
        (FieldType::Bool, Kind::BoolValue(flag)) => Kind::BoolValue(flag),
        (FieldType::Bool, Kind::StringValue(text)) => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Kind::BoolValue(true),
            "false" | "0" | "no" => Kind::BoolValue(false),
            _ => return Err("must be true or false".to_owned()),
        },
        (FieldType::Enum, Kind::StringValue(text)) => {
            let found = field
                .allowed_values
                .iter()
                .find(|allowed| allowed.eq_ignore_ascii_case(&text));
            match found {
                Some(allowed) => Kind::StringValue(allowed.clone()),
                None => {
                    return Err(format!(
                        "must be one of: {}",
                        field.allowed_values.join(", ")
                    ));
                }
            }
        }
        (FieldType::StringList, Kind::ListValue(list)) => {
            if list.values.len() > MAX_LIST_ENTRIES {
                return Err(format!("must have at most {MAX_LIST_ENTRIES} entries"));
            }
            for entry in &list.values {
                check_string(field, entry)?;
            }
            Kind::ListValue(list)
        }
        (FieldType::String | FieldType::Text | FieldType::Unspecified, Kind::StringValue(text)) => {
            if text.is_empty() {
                return Ok(None);
            }
            check_string(field, &text)?;
            Kind::StringValue(text)
        }
        (FieldType::String | FieldType::Text, Kind::IntValue(number)) => {
            Kind::StringValue(number.to_string())
        }
        (expected, _) => return Err(format!("must be {}", type_name(expected))),
    };
    Ok(Some(pb::Value {
        kind: Some(normalised),
    }))
}

fn type_name(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Int => "an integer",
        FieldType::Bool => "a boolean",
        FieldType::Enum => "one of the allowed values",
        FieldType::StringList => "a list of strings",
        _ => "a string",
    }
}

fn check_range(field: &pb::Field, number: i64) -> Result<i64, String> {
    match (field.min, field.max) {
        (Some(min), Some(max)) if !(min..=max).contains(&number) => {
            Err(format!("must be between {min} and {max}"))
        }
        (Some(min), None) if number < min => Err(format!("must be at least {min}")),
        (None, Some(max)) if number > max => Err(format!("must be at most {max}")),
        _ => Ok(number),
    }
}

fn check_string(field: &pb::Field, text: &str) -> Result<(), String> {
    let max = effective_max(field);
    if text.len() > max {
        return Err(format!("must be at most {max} bytes"));
    }
    if FieldType::try_from(field.r#type) != Ok(FieldType::Text) && text.contains(['\n', '\r', '\0'])
    {
        return Err("must be a single line".to_owned());
    }
    if !field.pattern.is_empty() {
        match matches_pattern(&field.pattern, text) {
            Some(true) => {}
            // The user sees the schema's words, never the regex.
            Some(false) if field.pattern_message.is_empty() => {
                return Err("is not in the expected form".to_owned());
            }
            Some(false) => return Err(field.pattern_message.clone()),
            None => return Err("has a pattern the provider got wrong".to_owned()),
        }
    }
    Ok(())
}

/// Whether `text` matches the whole of `pattern`; `None` if the pattern is invalid.
/// Compiled patterns are kept: a schema has a handful and validation is hot.
fn matches_pattern(pattern: &str, text: &str) -> Option<bool> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static COMPILED: OnceLock<Mutex<HashMap<String, Option<regex_lite::Regex>>>> = OnceLock::new();
    let mut cache = COMPILED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let regex = cache
        .entry(pattern.to_owned())
        .or_insert_with(|| regex_lite::Regex::new(&format!("^(?:{pattern})$")).ok());
    regex.as_ref().map(|regex| regex.is_match(text))
}

fn check_tls(source: &pb::DataSource, tls: &Option<pb::Tls>, violations: &mut Violations) {
    let Some(tls) = tls else { return };
    let mode = pb::TlsMode::try_from(tls.mode).unwrap_or(pb::TlsMode::Unspecified);
    let uses_tls = !matches!(mode, pb::TlsMode::Unspecified | pb::TlsMode::Disable);
    if uses_tls && !source.supports_tls {
        violations.add("tls.mode", "this data source does not support TLS");
    }
    for (path, pem, marker) in [
        ("tls.ca_pem", &tls.ca_pem, "CERTIFICATE"),
        ("tls.client_cert_pem", &tls.client_cert_pem, "CERTIFICATE"),
        ("tls.client_key_pem", &tls.client_key_pem, "PRIVATE KEY"),
    ] {
        if pem.is_empty() {
            continue;
        }
        if pem.len() > DEFAULT_MAX_TEXT {
            violations.add(path, format!("must be at most {DEFAULT_MAX_TEXT} bytes"));
        } else if !pem.contains("-----BEGIN ") || !pem.contains(marker) {
            violations.add(path, format!("must be a PEM block ({marker})"));
        }
    }
    if tls.client_cert_pem.is_empty() != tls.client_key_pem.is_empty() {
        violations.add(
            "tls.client_key_pem",
            "a client certificate and its key must be set together",
        );
    }
}
