//! Conversions between the public API's messages (`connvault.v1`) and the
//! plugin protocol's (`connvault.plugin.v1`): config values, TLS settings,
//! test results and data-source schemas.

use std::collections::BTreeMap;

use connvault_plugin_abi::pb as plugin;
use prost_types::{ListValue, Struct, Value, value::Kind};

use crate::clock::timestamp_now;
use crate::error::Violation;
use crate::pb::v1;

/// Converts a request's `config` Struct into typed plugin values, reporting every bad entry.
pub fn config_from_struct(
    config: Option<&Struct>,
    path: &str,
) -> Result<BTreeMap<String, plugin::Value>, Vec<Violation>> {
    let mut out = BTreeMap::new();
    let mut violations = Vec::new();
    let Some(config) = config else {
        return Ok(out);
    };
    for (key, value) in &config.fields {
        let field = format!("{path}.{key}");
        let converted = match &value.kind {
            None | Some(Kind::NullValue(_)) => continue,
            Some(Kind::StringValue(text)) => Ok(plugin::value::Kind::StringValue(text.clone())),
            Some(Kind::BoolValue(flag)) => Ok(plugin::value::Kind::BoolValue(*flag)),
            Some(Kind::NumberValue(number)) => {
                if number.fract() == 0.0 && number.abs() < 9.0e15 {
                    Ok(plugin::value::Kind::IntValue(*number as i64))
                } else {
                    Err("must be an integer")
                }
            }
            Some(Kind::ListValue(list)) => list
                .values
                .iter()
                .map(|item| match &item.kind {
                    Some(Kind::StringValue(text)) => Ok(text.clone()),
                    _ => Err("must be a list of strings"),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|values| plugin::value::Kind::ListValue(plugin::StringList { values })),
            Some(Kind::StructValue(_)) => Err("must be a flat value, not an object"),
        };
        match converted {
            Ok(kind) => {
                out.insert(key.clone(), plugin::Value { kind: Some(kind) });
            }
            Err(description) => violations.push(Violation {
                field,
                description: description.into(),
            }),
        }
    }
    if violations.is_empty() {
        Ok(out)
    } else {
        Err(violations)
    }
}

/// Converts typed plugin values back into a Struct for responses.
pub fn config_to_struct(config: &BTreeMap<String, plugin::Value>) -> Struct {
    let fields = config
        .iter()
        .filter_map(|(key, value)| {
            let kind = match value.kind.as_ref()? {
                plugin::value::Kind::StringValue(text) => Kind::StringValue(text.clone()),
                plugin::value::Kind::IntValue(number) => Kind::NumberValue(*number as f64),
                plugin::value::Kind::BoolValue(flag) => Kind::BoolValue(*flag),
                plugin::value::Kind::ListValue(list) => Kind::ListValue(ListValue {
                    values: list
                        .values
                        .iter()
                        .map(|text| Value {
                            kind: Some(Kind::StringValue(text.clone())),
                        })
                        .collect(),
                }),
            };
            Some((key.clone(), Value { kind: Some(kind) }))
        })
        .collect();
    Struct { fields }
}

/// The plugin's view of a connection's TLS settings (the key passed separately).
pub fn tls_to_plugin(tls: Option<&v1::TlsConfig>, client_key: Option<&str>) -> Option<plugin::Tls> {
    let tls = tls?;
    Some(plugin::Tls {
        mode: tls.mode,
        ca_pem: tls.ca_pem.clone(),
        client_cert_pem: tls.client_cert_pem.clone(),
        client_key_pem: client_key.unwrap_or_default().to_owned(),
        server_name: tls.server_name.clone(),
    })
}

/// A plugin's test result as the API returns it (enum numbers are shared).
pub fn test_response(result: plugin::TestResponse) -> v1::TestConnectionResponse {
    v1::TestConnectionResponse {
        success: result.success,
        stages: result
            .stages
            .into_iter()
            .map(|stage| v1::StageResult {
                stage: stage.stage,
                status: stage.status,
                duration_us: stage.duration_us,
                message: stage.message,
            })
            .collect(),
        error_category: result.error_category,
        message: result.message,
        server_version: result.server_version,
        duration_us: result.duration_us,
        test_time: Some(timestamp_now()),
    }
}

/// A plugin's data source as the API returns it.
pub fn data_source(
    plugin_name: &str,
    plugin_version: &str,
    source: &plugin::DataSource,
) -> v1::DataSource {
    v1::DataSource {
        name: format!("dataSources/{}", source.id),
        id: source.id.clone(),
        display_name: source.display_name.clone(),
        aliases: source.aliases.clone(),
        description: source.description.clone(),
        plugin: plugin_name.to_owned(),
        plugin_version: plugin_version.to_owned(),
        fields: source
            .fields
            .iter()
            .map(|field| v1::FieldSchema {
                name: field.name.clone(),
                r#type: field.r#type,
                required: field.required,
                secret: field.secret,
                default_value: field.default_value.clone(),
                allowed_values: field.allowed_values.clone(),
                min: field.min,
                max: field.max,
                pattern: field.pattern.clone(),
                pattern_message: field.pattern_message.clone(),
                group: field.group.clone(),
                order: field.order,
                description: field.description.clone(),
                label: field.label.clone(),
                max_length: field.max_length,
            })
            .collect(),
        supports_tls: source.supports_tls,
        secret_bound_fields: source.secret_bound_fields.clone(),
        supports_tunnel: source.supports_tunnel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_round_trips_and_rejects_what_plugins_cannot_take() {
        let mut input = Struct::default();
        let put = |s: &mut Struct, key: &str, kind: Kind| {
            s.fields.insert(key.into(), Value { kind: Some(kind) });
        };
        put(&mut input, "host", Kind::StringValue("h".into()));
        put(&mut input, "port", Kind::NumberValue(5432.0));
        put(&mut input, "ssl", Kind::BoolValue(true));
        let typed = config_from_struct(Some(&input), "connection.config").unwrap();
        assert_eq!(
            typed["port"].kind,
            Some(plugin::value::Kind::IntValue(5432))
        );
        assert_eq!(config_to_struct(&typed), input);

        put(&mut input, "ratio", Kind::NumberValue(0.5));
        put(&mut input, "nested", Kind::StructValue(Struct::default()));
        let violations = config_from_struct(Some(&input), "connection.config").unwrap_err();
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["connection.config.nested", "connection.config.ratio"]
        );
    }
}
