//! The secret map of a connection. The TLS client key is a secret too: it
//! travels in `tls.client_key_pem` but is kept in the secret map under
//! `TLS_KEY_SECRET`, sealed with the others, and never listed among the
//! connection's `secret_fields`. So are the SSH tunnel's private key,
//! passphrase and password (`TUNNEL_SECRETS`). Those entries' names hold a
//! dot, which no field name of a plugin's schema does.

use std::collections::HashMap;

use connvault_crypto::SecretMap;
use secrecy::{ExposeSecret, SecretString};

use crate::pb::v1;

/// The secret-map entry holding a TLS client key (no field name contains a dot).
pub(super) const TLS_KEY_SECRET: &str = "tls.client_key_pem";

/// The secret-map entry holding the tunnel's private key.
pub(in crate::app) const TUNNEL_KEY_SECRET: &str = "tunnel.private_key";
/// The secret-map entry holding the tunnel's private key passphrase.
pub(in crate::app) const TUNNEL_PASSPHRASE_SECRET: &str = "tunnel.private_key_passphrase";
/// The secret-map entry holding the tunnel's password.
pub(in crate::app) const TUNNEL_PASSWORD_SECRET: &str = "tunnel.password";
/// The tunnel's secret-map entries.
pub(super) const TUNNEL_SECRETS: [&str; 3] = [
    TUNNEL_KEY_SECRET,
    TUNNEL_PASSPHRASE_SECRET,
    TUNNEL_PASSWORD_SECRET,
];

/// Whether a secret-map entry is one of the connection's own (the TLS
/// client key, the tunnel's), not a field of the plugin's schema.
pub(super) fn is_reserved(name: &str) -> bool {
    name.contains('.')
}

/// The tunnel secrets a request's tunnel carries, by entry name, moved out of it.
pub(super) fn take_tunnel_secrets(tunnel: &mut v1::SshTunnel) -> [(&'static str, String); 3] {
    [
        (TUNNEL_KEY_SECRET, std::mem::take(&mut tunnel.private_key)),
        (
            TUNNEL_PASSPHRASE_SECRET,
            std::mem::take(&mut tunnel.private_key_passphrase),
        ),
        (TUNNEL_PASSWORD_SECRET, std::mem::take(&mut tunnel.password)),
    ]
}

/// A secret map from a request's secrets and TLS client key; empty values are left out.
pub(super) fn to_secret_map(
    secrets: HashMap<String, String>,
    client_key: Option<String>,
) -> SecretMap {
    let mut map = SecretMap::new();
    for (name, value) in secrets {
        if !value.is_empty() {
            map.insert(name, SecretString::from(value));
        }
    }
    if let Some(key) = client_key.filter(|key| !key.is_empty()) {
        map.insert(TLS_KEY_SECRET, SecretString::from(key));
    }
    map
}

/// Moves a request connection's secrets, TLS client key and tunnel secrets
/// out of it into a secret map, so the connection itself carries none.
pub(super) fn take_secrets(connection: &mut v1::Connection) -> SecretMap {
    let client_key = connection
        .tls
        .as_mut()
        .map(|tls| std::mem::take(&mut tls.client_key_pem));
    let mut map = to_secret_map(std::mem::take(&mut connection.secrets), client_key);
    if let Some(tunnel) = connection.tunnel.as_mut() {
        for (name, value) in take_tunnel_secrets(tunnel) {
            if !value.is_empty() {
                map.insert(name, SecretString::from(value));
            }
        }
    }
    map
}

/// Says on `connection` which secrets are set (never their values): the
/// named secrets in `secret_fields`, the TLS client key in
/// `tls.client_key_set`, the tunnel's in `tunnel.*_set`.
pub(super) fn describe_secrets(connection: &mut v1::Connection, secrets: &SecretMap) {
    connection.secret_fields = secrets
        .keys()
        .filter(|name| !is_reserved(name))
        .map(str::to_owned)
        .collect();
    if let Some(tls) = connection.tls.as_mut() {
        tls.client_key_set = secrets.contains_key(TLS_KEY_SECRET);
    }
    if let Some(tunnel) = connection.tunnel.as_mut() {
        tunnel.private_key_set = secrets.contains_key(TUNNEL_KEY_SECRET);
        tunnel.private_key_passphrase_set = secrets.contains_key(TUNNEL_PASSPHRASE_SECRET);
        tunnel.password_set = secrets.contains_key(TUNNEL_PASSWORD_SECRET);
    }
}

/// The secrets in plain text, the named ones apart from the TLS client key:
/// for the plugin's view of a connection and the resolve response only.
pub(in crate::app) fn exposed<M: FromIterator<(String, String)>>(
    secrets: &SecretMap,
) -> (M, Option<String>) {
    let named = secrets
        .iter()
        .filter(|(name, _)| !is_reserved(name))
        .map(|(name, value)| (name.to_owned(), value.expose_secret().to_owned()))
        .collect();
    let client_key = secrets
        .get(TLS_KEY_SECRET)
        .map(|key| key.expose_secret().to_owned());
    (named, client_key)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_tls_key_rides_in_the_map_but_is_never_a_secret_field() {
        let mut connection = v1::Connection {
            secrets: HashMap::from([
                ("password".to_owned(), "pw".to_owned()),
                ("unset".to_owned(), String::new()),
            ]),
            tls: Some(v1::TlsConfig {
                client_key_pem: "KEY".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let secrets = take_secrets(&mut connection);
        assert!(connection.secrets.is_empty());
        assert_eq!(connection.tls.as_ref().unwrap().client_key_pem, "");
        assert_eq!(
            secrets.keys().collect::<Vec<_>>(),
            ["password", TLS_KEY_SECRET]
        );
        describe_secrets(&mut connection, &secrets);
        assert_eq!(connection.secret_fields, ["password"]);
        assert!(connection.tls.as_ref().unwrap().client_key_set);
        let (named, key): (BTreeMap<String, String>, _) = exposed(&secrets);
        assert_eq!(named, BTreeMap::from([("password".into(), "pw".into())]));
        assert_eq!(key.as_deref(), Some("KEY"));
    }
}
