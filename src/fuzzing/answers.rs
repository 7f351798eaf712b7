//! What a plugin answers, held to the host's and the server's rules.

use std::collections::BTreeMap;

use connvault_crypto::SecretMap;
use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::CallError;
use prost::Message;
use secrecy::SecretString;
use tonic::Code;

use super::segment;
use crate::error::ServiceError;
use crate::pb::v1;
use crate::plugin_messages;

/// A schema with a field of every type and rule, for answers to a plugin
/// whose own `describe` did not pass.
pub fn sample_source() -> plugin::DataSource {
    use plugin::FieldType;
    let field = |name: &str, kind: FieldType| plugin::Field {
        name: name.into(),
        r#type: kind as i32,
        ..Default::default()
    };
    plugin::DataSource {
        id: "sample".into(),
        display_name: "Sample".into(),
        fields: vec![
            plugin::Field {
                required: true,
                pattern: "[A-Za-z0-9.-]+".into(),
                ..field("host", FieldType::String)
            },
            plugin::Field {
                min: Some(1),
                max: Some(65535),
                default_value: Some("5432".into()),
                ..field("port", FieldType::Int)
            },
            field("ssl", FieldType::Bool),
            plugin::Field {
                allowed_values: vec!["disable".into(), "require".into()],
                ..field("mode", FieldType::Enum)
            },
            plugin::Field {
                max_length: 64,
                ..field("ca", FieldType::Text)
            },
            field("hosts", FieldType::StringList),
            plugin::Field {
                required: true,
                secret: true,
                ..field("password", FieldType::String)
            },
        ],
        supports_tls: true,
        secret_bound_fields: vec!["host".into(), "port".into()],
        ..Default::default()
    }
}

/// A validate answer for `source`: accepted only if every config key is a
/// declared non-secret field and every required one is there.
fn check_validate(source: &plugin::DataSource, answer: &[u8], request: &[u8]) {
    let Ok(answer) = plugin::ValidateResponse::decode(answer) else {
        return;
    };
    let spec = plugin::ConnectionSpec::decode(request).unwrap_or_default();
    let mut secrets = SecretMap::new();
    for (name, value) in spec.secrets {
        secrets.insert(name, SecretString::from(value));
    }
    let normalized = &answer.normalized_config;
    let checked = crate::app::fuzzing::check_validate_answer(
        "fuzz",
        source,
        &spec.config,
        normalized,
        &secrets,
    );
    match checked {
        Ok(()) => {
            let fields: BTreeMap<&str, &plugin::Field> = source
                .fields
                .iter()
                .map(|field| (field.name.as_str(), field))
                .collect();
            for key in normalized.keys() {
                let field = fields
                    .get(key.as_str())
                    .expect("an undeclared field was accepted");
                assert!(!field.secret, "a secret in the config was accepted");
            }
            for field in source.fields.iter().filter(|f| f.required && !f.secret) {
                assert!(
                    normalized.contains_key(&field.name),
                    "a required field was missing"
                );
            }
        }
        Err(ServiceError::FailedPrecondition(_) | ServiceError::InvalidArgument(_)) => {}
        Err(other) => panic!("a validate answer was refused as {other:?}"),
    }
}

/// A discover answer held to the request's limits.
fn check_discover(answer: &[u8], request: &[u8]) {
    let (Ok(answer), Ok(request)) = (
        plugin::DiscoverResponse::decode(answer),
        v1::DiscoverMetadataRequest::decode(request),
    ) else {
        return;
    };
    let Ok(catalog) = crate::app::fuzzing::discover_catalog(&request, answer) else {
        return;
    };
    let bound = |asked: u32, default: u32, cap: u32| match asked {
        0 => default as usize,
        n => n.min(cap) as usize,
    };
    assert!(catalog.schemas.len() <= bound(request.max_schemas, 100, 1000));
    let tables: usize = catalog.schemas.iter().map(|s| s.tables.len()).sum();
    assert!(tables <= bound(request.max_tables, 1000, 10_000));
    for table in catalog.schemas.iter().flat_map(|s| &s.tables) {
        assert!(table.columns.len() <= bound(request.max_columns_per_table, 1000, 1000));
        assert!(request.include_columns || table.columns.is_empty());
    }
    let entry = crate::app::fuzzing::encode_cache_entry(&catalog);
    let cached =
        crate::app::fuzzing::decode_cache_entry(&entry, std::time::Duration::from_secs(3600))
            .expect("a fresh entry reads");
    assert_eq!(cached.schemas, catalog.schemas);
}

/// An application error: never OK, and an INTERNAL one says nothing of the plugin's text.
fn check_application_error(answer: &[u8]) {
    let Some(error) = connvault_plugin_host::fuzzing::application_error(answer) else {
        return;
    };
    let status = tonic::Status::from(ServiceError::from(CallError::Application {
        plugin: "fuzz".into(),
        error,
    }));
    assert_ne!(status.code(), Code::Ok, "a plugin error answered OK");
    if status.code() == Code::Internal {
        assert_eq!(status.message(), "internal error");
    }
}

/// Everything a plugin answers: `describe` (kept or refused as at load; the
/// data sources it keeps are served as the API shows them), then one answer
/// read as `validate` (against the described schema, or a sample one),
/// `test`, `discover` and an application error.
pub fn check_plugin_answer(bytes: &[u8]) {
    let mut rest = bytes;
    let describe = segment(&mut rest);
    let answer = segment(&mut rest);
    let request = rest;
    let sources = match connvault_plugin_host::fuzzing::describe(describe, "fuzz", "1.0") {
        Ok(kept) => {
            for source in &kept.data_sources {
                let shown = plugin_messages::data_source("fuzz", "1.0", source);
                assert_eq!(shown.id, source.id);
            }
            kept.data_sources
        }
        Err(_) => vec![sample_source()],
    };
    for source in sources.iter().take(4) {
        check_validate(source, answer, request);
    }
    if let Ok(test) = plugin::TestResponse::decode(answer) {
        let shown = plugin_messages::test_response(test);
        assert!(shown.test_time.is_some());
    }
    check_discover(answer, request);
    check_application_error(answer);
}
