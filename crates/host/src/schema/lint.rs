//! The schema lint run at load: a schema that contradicts itself (a default
//! its own field would refuse, a pattern that does not compile, an enum with
//! nothing to choose) would fail every connection, or worse, make the server
//! store what the plugin never meant to accept. Such a plugin is refused.

use connvault_plugin_abi::pb::{self, FieldType};

use super::value::{check_range, check_string, compile, field_type};

/// Returns the first problem found in any field of any data source, naming both.
pub(crate) fn lint(describe: &pb::DescribeResponse) -> Result<(), String> {
    for source in &describe.data_sources {
        for field in &source.fields {
            lint_field(field).map_err(|problem| {
                format!("data source {}: field {}: {problem}", source.id, field.name)
            })?;
        }
    }
    Ok(())
}

/// The lint rules for one field. Names and duplicates are checked with the
/// rest of the description (`describe::check`).
pub(crate) fn lint_field(field: &pb::Field) -> Result<(), String> {
    let kind = field_type(field);
    if kind == FieldType::Enum && field.allowed_values.is_empty() {
        return Err("is an enum with no allowed values".into());
    }
    if let (Some(min), Some(max)) = (field.min, field.max) {
        if min > max {
            return Err(format!("minimum {min} is above its maximum {max}"));
        }
    }
    if field.pattern.is_empty() && !field.pattern_message.is_empty() {
        return Err("has a pattern message but no pattern".into());
    }
    if !field.pattern.is_empty() {
        compile(&field.pattern).map_err(|error| {
            // The regex error's last line says what is wrong; the rest draws the pattern.
            let detail = error.to_string();
            let reason = detail.lines().last().unwrap_or_default().trim().to_owned();
            format!("pattern does not compile ({reason})")
        })?;
    }
    if let Some(default) = &field.default_value {
        if field.secret {
            return Err("is a secret and has a default; secrets cannot have one".into());
        }
        check_default(field, kind, default).map_err(|problem| format!("default {problem}"))?;
    }
    Ok(())
}

/// Whether a default (always sent as a string) converts to the field's type
/// and fits its rules, the way the SDK converts it when applying it.
fn check_default(field: &pb::Field, kind: FieldType, text: &str) -> Result<(), String> {
    match kind {
        FieldType::Int => {
            let number = text
                .trim()
                .parse::<i64>()
                .map_err(|_| "is not an integer".to_owned())?;
            check_range(field, number)
        }
        FieldType::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "false" | "0" | "no" => Ok(()),
            _ => Err("is not a boolean".into()),
        },
        FieldType::Enum => {
            if field
                .allowed_values
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(text))
            {
                Ok(())
            } else {
                Err("is not one of the allowed values".into())
            }
        }
        FieldType::StringList => Err("is set on a string list, which takes none".into()),
        FieldType::String | FieldType::Text | FieldType::Unspecified => {
            if text.is_empty() {
                Ok(())
            } else {
                check_string(field, text)
            }
        }
    }
}
