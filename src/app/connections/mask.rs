//! The field-mask engine: applies the paths of an update mask to a stored
//! connection and its secrets.

use connvault_crypto::SecretMap;
use secrecy::SecretString;

use super::secrets::{
    TLS_KEY_SECRET, TUNNEL_SECRETS, is_reserved, take_tunnel_secrets, to_secret_map,
};
use crate::error::Violation;
use crate::pb::v1;

/// A stored connection with an update mask applied.
pub(super) struct Patched {
    /// The connection after the update.
    pub(super) next: v1::Connection,
    /// Its secrets after the update.
    pub(super) secrets: SecretMap,
    /// The stored secrets the update sends again (or removes): those may
    /// follow a changed destination.
    pub(super) resupplied: Vec<String>,
    /// Whether anything the connection is reached or read through changed
    /// (its last test and its cached metadata no longer hold).
    pub(super) config_changed: bool,
}

/// Applies `paths` from `patch` to `old` and its `secrets` (stored under
/// `old_secret_names`); a path that cannot be updated becomes a violation.
/// Takes the TLS client key and the tunnel's secrets out of `patch`.
pub(super) fn apply(
    paths: &[String],
    patch: &mut v1::Connection,
    old: &v1::Connection,
    mut secrets: SecretMap,
    old_secret_names: &[String],
    violations: &mut Vec<Violation>,
) -> Patched {
    let mut next = old.clone();
    let mut resupplied: Vec<String> = Vec::new();
    let mut config_changed = false;
    let patch_key = patch
        .tls
        .as_mut()
        .map(|tls| std::mem::take(&mut tls.client_key_pem))
        .unwrap_or_default();
    let patch_tunnel = patch.tunnel.as_mut().map(take_tunnel_secrets);
    // Replaces one tunnel secret with the patch's (none: removed).
    let set_tunnel_secret = |secrets: &mut SecretMap, entry: &str| {
        secrets.remove(entry);
        let value = patch_tunnel
            .iter()
            .flatten()
            .find(|(name, _)| *name == entry)
            .map(|(_, value)| value)
            .filter(|value| !value.is_empty());
        if let Some(value) = value {
            secrets.insert(entry, SecretString::from(value.clone()));
        }
    };

    for path in paths {
        match path.as_str() {
            "display_name" => next.display_name = patch.display_name.clone(),
            "labels" => next.labels = patch.labels.clone(),
            "product" => next.product = patch.product.to_ascii_lowercase(),
            "config" => {
                next.config = patch.config.clone();
                config_changed = true;
            }
            "secrets" => {
                // The connection's own entries (TLS key, tunnel) stay.
                let kept: Vec<(String, SecretString)> = secrets
                    .iter()
                    .filter(|(name, _)| is_reserved(name))
                    .map(|(name, value)| (name.to_owned(), value.clone()))
                    .collect();
                secrets = to_secret_map(patch.secrets.clone(), None);
                for (name, value) in kept {
                    secrets.insert(name, value);
                }
                resupplied.extend(old_secret_names.iter().filter(|n| !is_reserved(n)).cloned());
                config_changed = true;
            }
            "tunnel" => {
                next.tunnel = patch.tunnel.clone().map(|mut tunnel| {
                    tunnel.private_key_set = false;
                    tunnel.private_key_passphrase_set = false;
                    tunnel.password_set = false;
                    tunnel
                });
                for entry in TUNNEL_SECRETS {
                    set_tunnel_secret(&mut secrets, entry);
                    resupplied.push(entry.to_owned());
                }
                config_changed = true;
            }
            "tls" => {
                let mut tls = patch.tls.clone().unwrap_or_default();
                tls.client_key_set = false;
                next.tls = Some(tls);
                config_changed = true;
            }
            "tls.client_key_pem" => {
                secrets.remove(TLS_KEY_SECRET);
                if !patch_key.is_empty() {
                    secrets.insert(TLS_KEY_SECRET, SecretString::from(patch_key.clone()));
                }
                resupplied.push(TLS_KEY_SECRET.into());
                config_changed = true;
            }
            "data_source" => violations.push(Violation {
                field: "update_mask".into(),
                description: "data_source cannot change: create a new connection".into(),
            }),
            other => {
                if let Some(key) = other.strip_prefix("config.") {
                    let mut config = next.config.clone().unwrap_or_default();
                    match patch.config.as_ref().and_then(|c| c.fields.get(key)) {
                        Some(value) => {
                            config.fields.insert(key.to_owned(), value.clone());
                        }
                        None => {
                            config.fields.remove(key);
                        }
                    }
                    next.config = Some(config);
                    config_changed = true;
                } else if let Some(key) = other.strip_prefix("secrets.") {
                    secrets.remove(key);
                    if let Some(value) = patch.secrets.get(key).filter(|v| !v.is_empty()) {
                        secrets.insert(key, SecretString::from(value.clone()));
                    }
                    resupplied.push(key.to_owned());
                    config_changed = true;
                } else if let Some(field) = other.strip_prefix("tunnel.") {
                    let tunnel = next.tunnel.get_or_insert_with(Default::default);
                    let from = patch.tunnel.clone().unwrap_or_default();
                    match field {
                        "host" => tunnel.host = from.host,
                        "port" => tunnel.port = from.port,
                        "user" => tunnel.user = from.user,
                        "host_key_fingerprints" => {
                            tunnel.host_key_fingerprints = from.host_key_fingerprints;
                        }
                        "local_port" => tunnel.local_port = from.local_port,
                        "private_key" | "private_key_passphrase" | "password" => {
                            set_tunnel_secret(&mut secrets, other);
                            resupplied.push(other.to_owned());
                        }
                        _ => violations.push(Violation {
                            field: "update_mask".into(),
                            description: format!("{other} is not an updatable field"),
                        }),
                    }
                    config_changed = true;
                } else if let Some(field) = other.strip_prefix("tls.") {
                    let tls = next.tls.get_or_insert_with(Default::default);
                    let from = patch.tls.clone().unwrap_or_default();
                    match field {
                        "mode" => tls.mode = from.mode,
                        "ca_pem" => tls.ca_pem = from.ca_pem,
                        "client_cert_pem" => tls.client_cert_pem = from.client_cert_pem,
                        "server_name" => tls.server_name = from.server_name,
                        _ => violations.push(Violation {
                            field: "update_mask".into(),
                            description: format!("{other} is not an updatable field"),
                        }),
                    }
                    config_changed = true;
                } else {
                    violations.push(Violation {
                        field: "update_mask".into(),
                        description: format!("{other} is not an updatable field"),
                    });
                }
            }
        }
    }
    Patched {
        next,
        secrets,
        resupplied,
        config_changed,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use prost_types::{Struct, Value, value::Kind};

    use super::*;

    fn config(host: &str) -> Option<Struct> {
        Some(Struct {
            fields: [(
                "host".to_owned(),
                Value {
                    kind: Some(Kind::StringValue(host.into())),
                },
            )]
            .into(),
        })
    }

    #[test]
    fn only_masked_fields_change_and_unknown_paths_are_violations() {
        let old = v1::Connection {
            display_name: "old name".into(),
            product: "a".into(),
            config: config("old"),
            ..Default::default()
        };
        let mut patch = v1::Connection {
            display_name: "new name".into(),
            product: "B".into(),
            config: config("new"),
            secrets: HashMap::from([("password".to_owned(), "pw".to_owned())]),
            ..Default::default()
        };
        let secrets: SecretMap = [("password", SecretString::from("old"))]
            .into_iter()
            .collect();
        let paths = ["product", "config.host", "secrets.password", "nonsense"].map(String::from);
        let mut violations = Vec::new();
        let patched = apply(
            &paths,
            &mut patch,
            &old,
            secrets,
            &["password".to_owned()],
            &mut violations,
        );
        assert_eq!(patched.next.display_name, "old name");
        assert_eq!(patched.next.product, "b");
        assert_eq!(patched.next.config, config("new"));
        assert_eq!(patched.resupplied, ["password"]);
        assert!(patched.config_changed);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "update_mask");
    }
}
