//! The server's check of a plugin's validate answer against the schema the
//! plugin itself described. The server stores the answer's
//! `normalized_config` and seals the request's secrets, so a plugin that
//! answers an empty or foreign config, or waves through a secret its schema
//! does not declare, would lose or invent data silently. Such an answer is
//! refused and nothing is stored.
//!
//! - A config that breaks the schema is the plugin's fault:
//!   FAILED_PRECONDITION (retrying cannot help until the plugin is fixed),
//!   with a message naming the plugin, the fields and the problems, never a
//!   value; the same detail is logged as an error.
//! - A secret the schema does not declare, or a required one missing, is the
//!   request's fault that the plugin failed to catch: INVALID_ARGUMENT on
//!   `connection.secrets.<name>`, naming the plugin, logged as a warning.

use std::collections::BTreeMap;

use connvault_crypto::SecretMap;
use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::{Mismatch, check_normalized_config, check_secret_names};

#[cfg(test)]
use super::secrets::TLS_KEY_SECRET;
use super::secrets::is_reserved;
use crate::error::{ServiceError, Violation};

/// How many problems a message lists: a broken answer may break every field,
/// and a status must stay well under what a client can read.
const LISTED: usize = 8;

/// The problems as one line, the first [`LISTED`] of them.
fn summary(mismatches: &[Mismatch]) -> String {
    let mut listed: Vec<String> = mismatches
        .iter()
        .take(LISTED)
        .map(Mismatch::to_string)
        .collect();
    if mismatches.len() > LISTED {
        listed.push(format!("and {} more", mismatches.len() - LISTED));
    }
    listed.join("; ")
}

/// Refuses a validate answer whose `normalized` config, or the `secrets`
/// about to be sealed beside it, break `source`'s schema. `sent` is the
/// config the request gave the plugin, to notice fields the answer dropped.
pub(in crate::app) fn conform(
    plugin_name: &str,
    source: &plugin::DataSource,
    sent: &BTreeMap<String, plugin::Value>,
    normalized: &BTreeMap<String, plugin::Value>,
    secrets: &SecretMap,
) -> Result<(), ServiceError> {
    let broken = check_normalized_config(source, sent, normalized);
    if !broken.is_empty() {
        let summary = summary(&broken);
        tracing::error!(
            plugin = plugin_name,
            data_source = %source.id,
            problems = %summary,
            "plugin answered validate with a config its own schema refuses; nothing stored"
        );
        return Err(ServiceError::FailedPrecondition(format!(
            "plugin {plugin_name} answered validate with a config that breaks its own schema \
             for data source {} ({summary}); nothing was stored",
            source.id
        )));
    }
    let names = secrets.keys().filter(|name| !is_reserved(name));
    let unfit = check_secret_names(source, names);
    if !unfit.is_empty() {
        tracing::warn!(
            plugin = plugin_name,
            data_source = %source.id,
            problems = %summary(&unfit),
            "plugin accepted secrets its own schema refuses; nothing stored"
        );
        return Err(ServiceError::InvalidArgument(
            unfit
                .into_iter()
                .take(LISTED)
                .map(|mismatch| Violation {
                    field: format!("connection.{}", mismatch.field),
                    description: format!(
                        "{} (data source {}; plugin {plugin_name} did not refuse it)",
                        mismatch.problem, source.id
                    ),
                })
                .collect(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use tonic::{Code, Status};

    use super::*;

    fn source() -> plugin::DataSource {
        let field = |name: &str, secret: bool| plugin::Field {
            name: name.into(),
            r#type: plugin::FieldType::String as i32,
            required: true,
            secret,
            ..Default::default()
        };
        plugin::DataSource {
            id: "c_minimal".into(),
            fields: vec![field("host", false), field("password", true)],
            ..Default::default()
        }
    }

    fn host(value: &str) -> BTreeMap<String, plugin::Value> {
        BTreeMap::from([(
            "host".to_owned(),
            plugin::Value {
                kind: Some(plugin::value::Kind::StringValue(value.into())),
            },
        )])
    }

    fn secrets(pairs: &[(&str, &str)]) -> SecretMap {
        let mut map = SecretMap::new();
        for (name, value) in pairs {
            map.insert(*name, SecretString::from(*value));
        }
        map
    }

    #[test]
    fn a_fitting_answer_passes() {
        let with_key = secrets(&[("password", "pw"), (TLS_KEY_SECRET, "key")]);
        let checked = conform("c-minimal", &source(), &host("db"), &host("db"), &with_key);
        assert!(checked.is_ok(), "{checked:?}");
    }

    #[test]
    fn a_lost_config_is_failed_precondition_naming_the_plugin_and_field() {
        let status = Status::from(
            conform(
                "c-minimal",
                &source(),
                &host("db.internal"),
                &BTreeMap::new(),
                &secrets(&[("password", "hunter2")]),
            )
            .unwrap_err(),
        );
        assert_eq!(status.code(), Code::FailedPrecondition);
        let message = status.message();
        assert!(message.contains("plugin c-minimal"), "{message}");
        assert!(
            message.contains("config.host: is required but missing from the answer"),
            "{message}"
        );
        assert!(!message.contains("db.internal") && !message.contains("hunter2"));
    }

    #[test]
    fn an_undeclared_or_missing_secret_is_invalid_argument() {
        let error = conform(
            "c-minimal",
            &source(),
            &host("db"),
            &host("db"),
            &secrets(&[("api_key", "k-123")]),
        )
        .unwrap_err();
        let ServiceError::InvalidArgument(violations) = &error else {
            panic!("{error:?}");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["connection.secrets.api_key", "connection.secrets.password"]
        );
        assert!(violations[0].description.contains("plugin c-minimal"));
        assert!(!format!("{violations:?}").contains("k-123"));
    }

    #[test]
    fn a_long_list_of_problems_is_cut() {
        let many: Vec<Mismatch> = (0..20)
            .map(|n| Mismatch {
                field: format!("config.f{n}"),
                problem: "is not a field of the data source".into(),
            })
            .collect();
        let line = summary(&many);
        assert!(
            line.contains("config.f7") && !line.contains("config.f8"),
            "{line}"
        );
        assert!(line.ends_with("and 12 more"), "{line}");
    }
}
