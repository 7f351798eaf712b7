//! The redirect guard: an update that changes where secrets are sent must
//! send the secrets again, or a stored password could be pointed at another
//! server and read off by a test.

use std::collections::BTreeMap;

use connvault_plugin_abi::pb as plugin;

use crate::error::ServiceError;
use crate::pb::v1;
use crate::plugin_messages::config_from_struct;

/// FAILED_PRECONDITION if the update from `old` to `next` (config normalised
/// to `normalized`) changes a field `source` binds secrets to, or the TLS
/// server name, while some of `old_secret_names` are not in `resupplied`.
pub(super) fn check_redirect(
    old: &v1::Connection,
    next: &v1::Connection,
    source: &plugin::DataSource,
    normalized: &BTreeMap<String, plugin::Value>,
    old_secret_names: &[String],
    resupplied: &[String],
) -> Result<(), ServiceError> {
    let old_config =
        config_from_struct(old.config.as_ref(), "connection.config").unwrap_or_default();
    let redirected: Vec<&String> = source
        .secret_bound_fields
        .iter()
        .filter(|field| old_config.get(*field) != normalized.get(*field))
        .collect();
    let tls_target_changed = old.tls.as_ref().map(|t| &t.server_name)
        != next.tls.as_ref().map(|t| &t.server_name)
        && old.tls.as_ref().is_some_and(|t| !t.server_name.is_empty());
    let unsent: Vec<&String> = old_secret_names
        .iter()
        .filter(|name| !resupplied.contains(name))
        .collect();
    if (!redirected.is_empty() || tls_target_changed) && !unsent.is_empty() {
        return Err(ServiceError::FailedPrecondition(format!(
            "this update changes where secrets are sent ({}); re-send the secrets ({}) in the same update",
            redirected
                .iter()
                .map(|f| f.as_str())
                .chain(tls_target_changed.then_some("tls.server_name"))
                .collect::<Vec<_>>()
                .join(", "),
            unsent
                .iter()
                .map(|n| format!("secrets.{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost_types::{Struct, Value, value::Kind};

    use super::*;

    fn with_host(host: &str) -> v1::Connection {
        v1::Connection {
            config: Some(Struct {
                fields: [(
                    "host".to_owned(),
                    Value {
                        kind: Some(Kind::StringValue(host.into())),
                    },
                )]
                .into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_destination_needs_the_secrets_again() {
        let source = plugin::DataSource {
            secret_bound_fields: vec!["host".into()],
            ..Default::default()
        };
        let (old, next) = (with_host("db.example"), with_host("evil.example"));
        let normalized = BTreeMap::from([(
            "host".to_owned(),
            plugin::Value {
                kind: Some(plugin::value::Kind::StringValue("evil.example".into())),
            },
        )]);
        let stored = ["password".to_owned()];
        let refused = check_redirect(&old, &next, &source, &normalized, &stored, &[]).unwrap_err();
        assert!(
            matches!(&refused, ServiceError::FailedPrecondition(m) if m.contains("secrets.password"))
        );
        assert!(check_redirect(&old, &next, &source, &normalized, &stored, &stored).is_ok());
        // Nothing stored, nothing to leak.
        assert!(check_redirect(&old, &next, &source, &normalized, &[], &[]).is_ok());
    }
}
