//! Checks what a plugin says it serves: plugin output is untrusted input.

use std::collections::HashSet;

use connvault_plugin_abi::pb;
use prost::Message;

use crate::error::LoadError;

const MAX_DATA_SOURCES: usize = 64;
const MAX_ALIASES: usize = 32;
const MAX_FIELDS: usize = 128;
const MAX_TEXT: usize = 2048;

fn is_id(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// A plugin's `describe` answer as the host keeps it: decoded, named after
/// the descriptor (`name`, `version`), checked ([`check`]) and its schema
/// linted. Whatever the bytes, the answer is an error, never a panic.
pub(crate) fn decode(
    bytes: &[u8],
    name: &str,
    version: &str,
) -> Result<pb::DescribeResponse, LoadError> {
    let mut describe = pb::DescribeResponse::decode(bytes)
        .map_err(|_| LoadError::Describe("malformed response".into()))?;
    describe.name = name.to_owned();
    describe.version = version.to_owned();
    check(&describe).map_err(LoadError::Describe)?;
    crate::schema::lint::lint(&describe).map_err(LoadError::Schema)?;
    Ok(describe)
}

/// Returns a description of the first problem found.
pub fn check(describe: &pb::DescribeResponse) -> Result<(), String> {
    if describe.data_sources.is_empty() {
        return Err("serves no data source".into());
    }
    if describe.data_sources.len() > MAX_DATA_SOURCES {
        return Err(format!("serves more than {MAX_DATA_SOURCES} data sources"));
    }
    let mut names = HashSet::new();
    for source in &describe.data_sources {
        let mut own = HashSet::new();
        let id = &source.id;
        if !is_id(id, 64) || id.bytes().any(|byte| byte.is_ascii_uppercase()) {
            return Err(format!("data source id {id:?} is not 1-64 of [a-z0-9_-]"));
        }
        if source.display_name.is_empty() || source.display_name.len() > 200 {
            return Err(format!(
                "data source {id}: display name must be 1-200 bytes"
            ));
        }
        if source.description.len() > MAX_TEXT {
            return Err(format!("data source {id}: description is too long"));
        }
        if source.aliases.len() > MAX_ALIASES {
            return Err(format!("data source {id}: more than {MAX_ALIASES} aliases"));
        }
        for name in std::iter::once(id).chain(&source.aliases) {
            if !is_id(name, 64) {
                return Err(format!(
                    "data source {id}: alias {name:?} is not 1-64 of [A-Za-z0-9_-]"
                ));
            }
            let lower = name.to_ascii_lowercase();
            // An alias may repeat its own id in another case ("POSTGRESQL").
            if own.insert(lower.clone()) && !names.insert(lower) {
                return Err(format!("data source name {name:?} appears twice"));
            }
        }
        if source.fields.len() > MAX_FIELDS {
            return Err(format!("data source {id}: more than {MAX_FIELDS} fields"));
        }
        let mut fields = HashSet::new();
        for field in &source.fields {
            let name = &field.name;
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(format!(
                    "data source {id}: field name {name:?} is not [a-z][a-z0-9_]{{0,63}}"
                ));
            }
            if !fields.insert(name.as_str()) {
                return Err(format!("data source {id}: field {name} appears twice"));
            }
            if pb::FieldType::try_from(field.r#type).is_err() {
                return Err(format!(
                    "data source {id}: field {name} has an unknown type"
                ));
            }
            if field.description.len() > MAX_TEXT
                || field.label.len() > 200
                || field.pattern.len() > 512
                || field.pattern_message.len() > 200
                || field.allowed_values.len() > 256
            {
                return Err(format!("data source {id}: field {name} is oversized"));
            }
        }
        for bound in &source.secret_bound_fields {
            if !fields.contains(bound.as_str()) {
                return Err(format!(
                    "data source {id}: secret-bound field {bound} is not a field"
                ));
            }
        }
    }
    Ok(())
}
