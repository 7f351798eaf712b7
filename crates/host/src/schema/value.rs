//! Whether one value fits its field: shared by the lint (a field's default)
//! and the answer check (a normalised config). Problems never quote the value.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use connvault_plugin_abi::pb::{self, FieldType, value::Kind};

/// Longest string accepted when a field sets no `max_length` (the SDK's default too).
pub(crate) const DEFAULT_MAX_STRING: usize = 4096;
/// Longest text (PEM) accepted when a field sets no `max_length` (the SDK's default too).
pub(crate) const DEFAULT_MAX_TEXT: usize = 64 * 1024;
/// Most entries in a string list (the SDK's limit too).
pub(crate) const MAX_LIST_ENTRIES: usize = 256;
/// Compiled-program cap for one pattern: a schema cannot make the host build a huge automaton.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The field's type; an unknown number (refused at load) reads as a string.
pub(crate) fn field_type(field: &pb::Field) -> FieldType {
    FieldType::try_from(field.r#type).unwrap_or(FieldType::String)
}

/// Compiles `pattern` anchored to the whole value, as the SDK applies it.
pub(crate) fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Whether `text` matches the whole of `pattern`; `None` if it does not compile.
/// Compiled patterns are kept: they come only from loaded schemas, a bounded set.
fn matches(pattern: &str, text: &str) -> Option<bool> {
    static COMPILED: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let mut cache = COMPILED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| compile(pattern).ok())
        .as_ref()
        .map(|regex| regex.is_match(text))
}

/// The longest string or text the field accepts.
pub(crate) fn max_length(field: &pb::Field) -> usize {
    match (field.max_length, field_type(field)) {
        (0, FieldType::Text) => DEFAULT_MAX_TEXT,
        (0, _) => DEFAULT_MAX_STRING,
        (max, _) => max as usize,
    }
}

/// Whether `number` is within the field's inclusive bounds.
pub(crate) fn check_range(field: &pb::Field, number: i64) -> Result<(), String> {
    match (field.min, field.max) {
        (Some(min), _) if number < min => Err(format!("is below the minimum {min}")),
        (_, Some(max)) if number > max => Err(format!("is above the maximum {max}")),
        _ => Ok(()),
    }
}

/// Length, line and pattern rules of one string (a string, a text or a list entry).
pub(crate) fn check_string(field: &pb::Field, text: &str) -> Result<(), String> {
    let max = max_length(field);
    if text.len() > max {
        return Err(format!("is longer than {max} bytes"));
    }
    if field_type(field) != FieldType::Text && text.contains(['\n', '\r', '\0']) {
        return Err("is not a single line".into());
    }
    if !field.pattern.is_empty() {
        match matches(&field.pattern, text) {
            Some(true) => {}
            Some(false) => return Err("does not match the field's pattern".into()),
            None => return Err("has a pattern that does not compile".into()),
        }
    }
    Ok(())
}

/// Whether a normalised value has the field's type and fits its rules.
pub(crate) fn check_value(field: &pb::Field, value: &pb::Value) -> Result<(), String> {
    let Some(kind) = &value.kind else {
        return Err("has no value".into());
    };
    match (field_type(field), kind) {
        (FieldType::Int, Kind::IntValue(number)) => check_range(field, *number),
        (FieldType::Int, _) => Err("is not an integer".into()),
        (FieldType::Bool, Kind::BoolValue(_)) => Ok(()),
        (FieldType::Bool, _) => Err("is not a boolean".into()),
        (FieldType::Enum, Kind::StringValue(text)) => {
            if field.allowed_values.iter().any(|allowed| allowed == text) {
                Ok(())
            } else {
                Err("is not one of the allowed values".into())
            }
        }
        (FieldType::Enum, _) => Err("is not a string from the allowed values".into()),
        (FieldType::StringList, Kind::ListValue(list)) => {
            if list.values.len() > MAX_LIST_ENTRIES {
                return Err(format!("has more than {MAX_LIST_ENTRIES} entries"));
            }
            list.values
                .iter()
                .try_for_each(|entry| check_string(field, entry))
        }
        (FieldType::StringList, _) => Err("is not a list of strings".into()),
        // An empty string is "unset" (the SDK drops it); the required check sees it so.
        (_, Kind::StringValue(text)) if text.is_empty() => Ok(()),
        (_, Kind::StringValue(text)) => check_string(field, text),
        (_, _) => Err("is not a string".into()),
    }
}

/// Whether a value counts as set: the SDK drops empty strings as "unset".
pub(crate) fn is_set(value: &pb::Value) -> bool {
    match &value.kind {
        None => false,
        Some(Kind::StringValue(text)) => !text.is_empty(),
        Some(_) => true,
    }
}
