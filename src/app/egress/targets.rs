//! Where a test or discovery would connect: the targets the plugin's
//! validate answer reports, or — for a plugin that predates them — the
//! `host` and `port` config fields every network data source has.

use std::collections::BTreeMap;

use connvault_plugin_abi::pb as plugin;

use crate::error::ServiceError;

/// Most targets one connection may report.
const MAX_TARGETS: usize = 16;

/// One destination: the request path it comes from, a host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `config.host`, `config.jdbc_url`...
    pub field: String,
    /// A DNS name or an IP address literal.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

/// The targets of a call through `plugin_name` for a connection of
/// `source` whose normalised config is `config`: those the validate answer
/// reported (`reported`), else the `host`/`port` convention; `None` when
/// neither says. A reported target the server cannot use (an empty or
/// overlong host, port 0...) is the plugin's fault: FAILED_PRECONDITION.
pub fn targets(
    plugin_name: &str,
    source: &plugin::DataSource,
    config: &BTreeMap<String, plugin::Value>,
    reported: Option<&plugin::NetworkTargets>,
) -> Result<Option<Vec<Target>>, ServiceError> {
    let Some(reported) = reported else {
        return Ok(conventional(source, config));
    };
    let unusable = |what: &str| {
        tracing::error!(plugin = plugin_name, data_source = %source.id, what, "plugin reported an unusable network target");
        ServiceError::FailedPrecondition(format!(
            "plugin {plugin_name} reported an unusable network target for data source {} ({what})",
            source.id
        ))
    };
    if reported.targets.len() > MAX_TARGETS {
        return Err(unusable("too many targets"));
    }
    reported
        .targets
        .iter()
        .map(|target| {
            let host = target.host.as_str();
            let host_ok = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'[' | b']' | b'/'));
            if !host_ok {
                return Err(unusable("a host that is not a name or an address"));
            }
            let port = u16::try_from(target.port)
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| unusable("a port outside 1-65535"))?;
            let field_ok =
                target.field.len() <= 128 && target.field.bytes().all(|b| b.is_ascii_graphic());
            if !field_ok {
                return Err(unusable("a field that is not a request path"));
            }
            Ok(Target {
                field: if target.field.is_empty() {
                    "config".to_owned()
                } else {
                    target.field.clone()
                },
                host: host.to_owned(),
                port,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The `host` config field on the `port` config field (or its default),
/// when the schema declares both and the host is set.
fn conventional(
    source: &plugin::DataSource,
    config: &BTreeMap<String, plugin::Value>,
) -> Option<Vec<Target>> {
    let field = |name: &str| {
        source
            .fields
            .iter()
            .find(|field| field.name == name && !field.secret)
    };
    let (_, port_field) = (field("host")?, field("port")?);
    let host = match config.get("host")?.kind.as_ref()? {
        plugin::value::Kind::StringValue(host) if !host.is_empty() => host.clone(),
        _ => return None,
    };
    let port = match config.get("port").and_then(|value| value.kind.as_ref()) {
        Some(plugin::value::Kind::IntValue(port)) => u16::try_from(*port).ok(),
        Some(plugin::value::Kind::StringValue(port)) => port.trim().parse().ok(),
        _ => port_field
            .default_value
            .as_deref()
            .and_then(|port| port.trim().parse().ok()),
    }
    .filter(|port: &u16| *port > 0)?;
    Some(vec![Target {
        field: "config.host".to_owned(),
        host,
        port,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> plugin::Value {
        plugin::Value {
            kind: Some(plugin::value::Kind::StringValue(value.into())),
        }
    }

    fn source(fields: &[&str]) -> plugin::DataSource {
        plugin::DataSource {
            id: "db".into(),
            fields: fields
                .iter()
                .map(|name| plugin::Field {
                    name: (*name).into(),
                    default_value: (*name == "port").then(|| "5432".to_owned()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn reported(host: &str, port: u32) -> plugin::NetworkTargets {
        plugin::NetworkTargets {
            targets: vec![plugin::NetworkTarget {
                field: "config.jdbc_url".into(),
                host: host.into(),
                port,
            }],
        }
    }

    #[test]
    fn reported_targets_win_and_are_checked() {
        let config: BTreeMap<_, _> = [("host".to_owned(), text("ignored"))].into();
        let found = targets(
            "p",
            &source(&["host", "port"]),
            &config,
            Some(&reported("db", 1)),
        );
        assert_eq!(
            found.unwrap().unwrap(),
            [Target {
                field: "config.jdbc_url".into(),
                host: "db".into(),
                port: 1
            }]
        );
        // Reported and empty: the calls connect nowhere.
        let none = plugin::NetworkTargets::default();
        assert_eq!(
            targets("p", &source(&[]), &config, Some(&none)).unwrap(),
            Some(vec![])
        );
        for (host, port) in [
            ("", 5432),
            ("a b", 5432),
            ("[::1]", 5432),
            ("db", 0),
            ("db", 70000),
        ] {
            let bad = targets("p", &source(&[]), &config, Some(&reported(host, port)));
            assert!(
                matches!(bad, Err(ServiceError::FailedPrecondition(_))),
                "{host}:{port}"
            );
        }
    }

    #[test]
    fn older_plugins_are_read_by_their_host_and_port_fields() {
        let config: BTreeMap<_, _> = [("host".to_owned(), text("db.example"))].into();
        let found = targets("p", &source(&["host", "port"]), &config, None).unwrap();
        assert_eq!(
            found.unwrap(),
            [Target {
                field: "config.host".into(),
                host: "db.example".into(),
                port: 5432
            }]
        );
        assert_eq!(
            targets("p", &source(&["host"]), &config, None).unwrap(),
            None
        );
        assert_eq!(
            targets("p", &source(&["url"]), &config, None).unwrap(),
            None
        );
    }
}
