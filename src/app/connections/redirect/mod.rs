//! The redirect guard: an update that could change where a stored secret is
//! sent, who can read it on the way or how it is protected must send the
//! secrets again, or a writer (who may not read secrets) could point a stored
//! password at a server of their choosing and read it off a connection test.
//!
//! The rule lives here and only here; `docs/security.md` states it.

use std::collections::{BTreeMap, BTreeSet};

use connvault_plugin_abi::pb as plugin;
use secrecy::{ExposeSecret, SecretString};

use super::secrets::{TLS_KEY_SECRET, TUNNEL_SECRETS, is_reserved};
use crate::error::ServiceError;
use crate::pb::v1;
use crate::plugin_messages::config_from_struct;

/// An update as the guard sees it: before and after, and the data source's
/// schema that says which config fields secrets are bound to.
pub(super) struct Redirect<'a> {
    /// The stored connection.
    pub(super) old: &'a v1::Connection,
    /// The connection the update would store.
    pub(super) next: &'a v1::Connection,
    /// The data source's schema, as its plugin described it.
    pub(super) source: &'a plugin::DataSource,
    /// `next`'s config as the plugin normalised it (what would be stored).
    pub(super) normalized: &'a BTreeMap<String, plugin::Value>,
    /// The stored TLS client key, if any.
    pub(super) old_key: Option<&'a SecretString>,
    /// The TLS client key after the update, if any.
    pub(super) next_key: Option<&'a SecretString>,
    /// The stored tunnel secrets, in the order of `TUNNEL_SECRETS`.
    pub(super) old_tunnel: TunnelSecrets<'a>,
    /// The tunnel secrets after the update.
    pub(super) next_tunnel: TunnelSecrets<'a>,
}

/// A connection's tunnel secrets, in the order of `TUNNEL_SECRETS`.
pub(super) type TunnelSecrets<'a> = [Option<&'a SecretString>; 3];

/// The tunnel secrets of a secret map.
pub(super) fn tunnel_secrets(secrets: &connvault_crypto::SecretMap) -> TunnelSecrets<'_> {
    TUNNEL_SECRETS.map(|entry| secrets.get(entry))
}

/// The SSH port a tunnel uses (0 means 22).
fn ssh_port(tunnel: &v1::SshTunnel) -> u32 {
    if tunnel.port == 0 { 22 } else { tunnel.port }
}

impl Redirect<'_> {
    /// Every secret-bound field the update changes, as request paths:
    /// - `data_source`, if it changes at all;
    /// - `config.<field>` for each field the schema lists in
    ///   `secret_bound_fields`, for every field the schema does not describe,
    ///   and — when the schema lists none — for every config field (a plugin
    ///   that says nothing is assumed to route secrets by all of its config);
    /// - `tls.<field>` for any change of mode, CA, client certificate, server
    ///   name or client key: each decides who can read a secret on the way
    ///   (and modes are the plugin's to interpret, so no change counts as
    ///   "only stronger");
    /// - `tunnel` when a tunnel is added or removed, and `tunnel.<field>` for
    ///   a change of its bastion host, port, user, pinned host keys (which
    ///   say which server is the bastion), key, passphrase or password: the
    ///   bastion carries every byte to the data source. Its `local_port`
    ///   (only rendered for clients) is not bound.
    pub(super) fn secret_bound_changes(&self) -> Vec<String> {
        let mut changed = Vec::new();
        if self.old.data_source != self.next.data_source {
            changed.push("data_source".to_owned());
        }
        let old_config =
            config_from_struct(self.old.config.as_ref(), "connection.config").unwrap_or_default();
        let described: BTreeSet<&str> =
            self.source.fields.iter().map(|f| f.name.as_str()).collect();
        let every_field = self.source.secret_bound_fields.is_empty();
        let keys: BTreeSet<&String> = old_config.keys().chain(self.normalized.keys()).collect();
        for key in keys {
            let bound = every_field
                || !described.contains(key.as_str())
                || self.source.secret_bound_fields.contains(key);
            if bound && old_config.get(key) != self.normalized.get(key) {
                changed.push(format!("config.{key}"));
            }
        }
        // Bound fields the config does not mention fall under `keys` above
        // whenever either side sets them; unset on both sides is no change.

        let old_tls = self.old.tls.clone().unwrap_or_default();
        let next_tls = self.next.tls.clone().unwrap_or_default();
        let tls_fields = [
            ("tls.mode", old_tls.mode != next_tls.mode),
            ("tls.ca_pem", old_tls.ca_pem != next_tls.ca_pem),
            (
                "tls.client_cert_pem",
                old_tls.client_cert_pem != next_tls.client_cert_pem,
            ),
            (
                "tls.server_name",
                old_tls.server_name != next_tls.server_name,
            ),
            (
                TLS_KEY_SECRET,
                self.old_key.map(ExposeSecret::expose_secret)
                    != self.next_key.map(ExposeSecret::expose_secret),
            ),
        ];
        changed.extend(
            tls_fields
                .into_iter()
                .filter(|(_, differs)| *differs)
                .map(|(path, _)| path.to_owned()),
        );
        changed.extend(self.tunnel_changes());
        changed
    }

    /// The secret-bound changes of the tunnel (see [`Self::secret_bound_changes`]).
    fn tunnel_changes(&self) -> Vec<String> {
        let (old, next) = match (&self.old.tunnel, &self.next.tunnel) {
            (None, None) => return Vec::new(),
            (Some(old), Some(next)) => (old, next),
            _ => return vec!["tunnel".to_owned()],
        };
        let pins = |tunnel: &v1::SshTunnel| -> BTreeSet<String> {
            tunnel.host_key_fingerprints.iter().cloned().collect()
        };
        let mut changed: Vec<String> = [
            ("tunnel.host", old.host != next.host),
            ("tunnel.port", ssh_port(old) != ssh_port(next)),
            ("tunnel.user", old.user != next.user),
            ("tunnel.host_key_fingerprints", pins(old) != pins(next)),
        ]
        .into_iter()
        .filter(|(_, differs)| *differs)
        .map(|(path, _)| path.to_owned())
        .collect();
        for ((entry, before), after) in TUNNEL_SECRETS
            .iter()
            .zip(self.old_tunnel)
            .zip(self.next_tunnel)
        {
            if before.map(ExposeSecret::expose_secret) != after.map(ExposeSecret::expose_secret) {
                changed.push((*entry).to_owned());
            }
        }
        changed
    }
}

/// FAILED_PRECONDITION if `update` changes a secret-bound field (see
/// [`Redirect::secret_bound_changes`]) while some of the stored secrets
/// (`old_secret_names`) are not sent again (or removed) in the same request
/// (`resupplied`); the message names every changed field and every secret
/// to re-send. With no stored secret there is nothing to redirect.
pub(super) fn check_redirect(
    update: &Redirect<'_>,
    old_secret_names: &[String],
    resupplied: &[String],
) -> Result<(), ServiceError> {
    let unsent: Vec<String> = old_secret_names
        .iter()
        .filter(|name| !resupplied.contains(name))
        .map(|name| {
            if is_reserved(name) {
                name.clone()
            } else {
                format!("secrets.{name}")
            }
        })
        .collect();
    if unsent.is_empty() {
        return Ok(());
    }
    let changed = update.secret_bound_changes();
    if changed.is_empty() {
        return Ok(());
    }
    Err(ServiceError::FailedPrecondition(format!(
        "this update changes where or how stored secrets are sent ({}); re-send the stored secrets ({}) in the same update",
        changed.join(", "),
        unsent.join(", ")
    )))
}

#[cfg(test)]
mod tests;
