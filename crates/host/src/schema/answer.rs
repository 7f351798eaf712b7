//! Checks what a plugin's validate answer would make the server store. The
//! server keeps the plugin's `normalized_config`, not the request's config, and
//! seals the request's secrets: a plugin that answers an empty or foreign
//! config, or accepts a secret its schema does not declare, would otherwise
//! lose data or seal what nothing reads, silently.

use std::collections::BTreeMap;
use std::fmt;

use connvault_plugin_abi::pb;

use super::value::{check_value, is_set};

/// One way an answer (or the secrets beside it) breaks its data source's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The path relative to the connection: `config.port`, `secrets.token`.
    pub field: String,
    /// What is wrong; never quotes a value.
    pub problem: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.field, self.problem)
    }
}

/// A key as it may appear in a message: keys come from the plugin or the
/// client, so one that is not a field name is not echoed.
fn shown(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if plain {
        format!("{prefix}.{key}")
    } else {
        format!("{prefix}.<a key that is not a field name>")
    }
}

fn mismatch(field: String, problem: impl Into<String>) -> Mismatch {
    Mismatch {
        field,
        problem: problem.into(),
    }
}

/// Checks a validate answer's `normalized_config` against `source`: every key
/// a declared non-secret field, every value of its field's type and within its
/// rules, every required field present, and every field the request set
/// (`sent`) still there. An empty result means the answer fits.
pub fn check_normalized_config(
    source: &pb::DataSource,
    sent: &BTreeMap<String, pb::Value>,
    normalized: &BTreeMap<String, pb::Value>,
) -> Vec<Mismatch> {
    let fields: BTreeMap<&str, &pb::Field> = source
        .fields
        .iter()
        .map(|field| (field.name.as_str(), field))
        .collect();
    let mut found = Vec::new();
    for (key, value) in normalized {
        match fields.get(key.as_str()) {
            None => found.push(mismatch(
                shown("config", key),
                "is not a field of the data source",
            )),
            Some(field) if field.secret => found.push(mismatch(
                shown("config", key),
                "is a secret field, returned in the config",
            )),
            Some(field) => {
                if let Err(problem) = check_value(field, value) {
                    found.push(mismatch(shown("config", key), problem));
                }
            }
        }
    }
    for field in source.fields.iter().filter(|field| !field.secret) {
        let answered = normalized.get(&field.name).is_some_and(is_set);
        if answered {
            continue;
        }
        let path = format!("config.{}", field.name);
        if field.required {
            found.push(mismatch(path, "is required but missing from the answer"));
        } else if sent.get(&field.name).is_some_and(is_set) {
            found.push(mismatch(
                path,
                "was set in the request but dropped from the answer",
            ));
        }
    }
    found
}

/// Checks the names of the secrets about to be sealed against `source`: each
/// a declared secret field, and every required secret field among them.
pub fn check_secret_names<'a>(
    source: &pb::DataSource,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<Mismatch> {
    let names: Vec<&str> = names.into_iter().collect();
    let mut found = Vec::new();
    for name in &names {
        let declared = source
            .fields
            .iter()
            .any(|field| field.secret && field.name == *name);
        if !declared {
            found.push(mismatch(
                shown("secrets", name),
                "is not a secret field of the data source",
            ));
        }
    }
    for field in &source.fields {
        if field.secret && field.required && !names.contains(&field.name.as_str()) {
            found.push(mismatch(format!("secrets.{}", field.name), "is required"));
        }
    }
    found
}
