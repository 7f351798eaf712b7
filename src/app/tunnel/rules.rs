//! The rules of a connection's SSH tunnel, checked before it is stored or
//! tested: where the bastion is, who logs in and how, which host keys it
//! may present.

use std::net::IpAddr;

use connvault_crypto::SecretMap;
use connvault_plugin_abi::pb as plugin;

use crate::app::connections::{
    TUNNEL_KEY_SECRET, TUNNEL_PASSPHRASE_SECRET, TUNNEL_PASSWORD_SECRET,
};
use crate::bounds::MAX_TUNNEL_FINGERPRINTS;
use crate::error::Violation;
use crate::pb::v1;

/// The SSH port when a tunnel names none.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// A host name or IP literal that is safe on a command line and in a rule:
/// letters, digits, `.`, `-`, `_` (and `:` in an IPv6 literal), not
/// starting with `-`.
pub(in crate::app) fn is_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// A user name the bastion can take and a command line can carry.
fn is_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 128
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Checks `tunnel` (with its secrets in `secrets`) for a connection of
/// `source`; `dev` lets a tunnel pin no host key. Violations name
/// `connection.tunnel.<field>`.
pub(in crate::app) fn check_tunnel(
    tunnel: &v1::SshTunnel,
    secrets: &SecretMap,
    source: &plugin::DataSource,
    dev: bool,
    violations: &mut Vec<Violation>,
) {
    let mut bad = |field: &str, description: String| {
        violations.push(Violation {
            field: format!("connection.tunnel{field}"),
            description,
        });
    };
    if !source.supports_tunnel {
        bad(
            "",
            format!(
                "data source {} does not support SSH tunnels (its plugin does not dial the tunnel's local end)",
                source.id
            ),
        );
    }
    if tunnel.host.is_empty() {
        bad(
            ".host",
            "is required: the bastion's host name or address".into(),
        );
    } else if !is_host(&tunnel.host) {
        bad(
            ".host",
            "must be a host name (letters, digits, `.`, `-`, `_`) or an IP address".into(),
        );
    }
    if tunnel.port > u32::from(u16::MAX) {
        bad(".port", "must be 1-65535 (0: 22)".into());
    }
    if tunnel.local_port > u32::from(u16::MAX) {
        bad(
            ".local_port",
            "must be 1-65535 (0: the data source's port)".into(),
        );
    }
    if tunnel.user.is_empty() {
        bad(
            ".user",
            "is required: the user to log in as on the bastion".into(),
        );
    } else if !is_user(&tunnel.user) {
        bad(
            ".user",
            "must be letters, digits, `.`, `-` and `_`, not starting with `-`".into(),
        );
    }
    let key = secrets.get(TUNNEL_KEY_SECRET);
    let passphrase = secrets.get(TUNNEL_PASSPHRASE_SECRET);
    match (key, secrets.get(TUNNEL_PASSWORD_SECRET)) {
        (None, None) => bad("", "needs a way to log in: private_key or password".into()),
        (Some(_), Some(_)) => bad(
            ".password",
            "give a private_key or a password, not both".into(),
        ),
        (Some(key), None) => {
            if let Err(problem) = connvault_tunnel::check_private_key(key, passphrase) {
                bad(".private_key", problem);
            }
        }
        (None, Some(_)) => {
            if passphrase.is_some() {
                bad(
                    ".private_key_passphrase",
                    "is only for an encrypted private_key".into(),
                );
            }
        }
    }
    let pins = &tunnel.host_key_fingerprints;
    if pins.is_empty() && !dev {
        bad(
            ".host_key_fingerprints",
            "is required: pin the bastion's host key (`ssh-keyscan HOST | ssh-keygen -l -E sha256 -f -` prints it); only a --dev server accepts any key".into(),
        );
    }
    if pins.len() > MAX_TUNNEL_FINGERPRINTS {
        bad(
            ".host_key_fingerprints",
            format!("must have at most {MAX_TUNNEL_FINGERPRINTS} fingerprints"),
        );
    }
    for (index, pin) in pins.iter().enumerate() {
        if let Err(problem) = connvault_tunnel::check_fingerprint(pin) {
            bad(&format!(".host_key_fingerprints[{index}]"), problem);
        }
    }
}

/// A tunnel forwards one destination: a connection with a tunnel must
/// report exactly one target (`count` of them).
pub(in crate::app) fn one_target(count: usize) -> Option<Violation> {
    (count != 1).then(|| Violation {
        field: "connection.tunnel".into(),
        description: format!(
            "a tunnel forwards one host and port, and this connection reaches {count} (use a single host, not a list or an SRV name)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    const PIN: &str = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

    fn source(supports: bool) -> plugin::DataSource {
        plugin::DataSource {
            id: "postgresql".into(),
            supports_tunnel: supports,
            ..Default::default()
        }
    }

    fn fields(tunnel: &v1::SshTunnel, secrets: &[(&str, &str)], dev: bool) -> Vec<String> {
        let mut map = SecretMap::new();
        for (name, value) in secrets {
            map.insert(*name, SecretString::from(*value));
        }
        let mut violations = Vec::new();
        check_tunnel(tunnel, &map, &source(true), dev, &mut violations);
        violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_tunnel_needs_a_bastion_a_user_one_login_and_pins_outside_dev() {
        let good = v1::SshTunnel {
            host: "bastion.example".into(),
            user: "tunnel".into(),
            host_key_fingerprints: vec![PIN.into()],
            ..Default::default()
        };
        let password = [(TUNNEL_PASSWORD_SECRET, "pw")];
        assert!(fields(&good, &password, false).is_empty());
        assert_eq!(fields(&good, &[], false), ["connection.tunnel"]);
        let both = [(TUNNEL_PASSWORD_SECRET, "pw"), (TUNNEL_KEY_SECRET, "k")];
        assert!(fields(&good, &both, false).contains(&"connection.tunnel.password".to_owned()));
        let unpinned = v1::SshTunnel {
            host_key_fingerprints: vec![],
            ..good.clone()
        };
        assert_eq!(
            fields(&unpinned, &password, false),
            ["connection.tunnel.host_key_fingerprints"]
        );
        assert!(fields(&unpinned, &password, true).is_empty());
        let bad = v1::SshTunnel {
            host: "-oProxyCommand=x".into(),
            user: "-x".into(),
            port: 70_000,
            host_key_fingerprints: vec!["MD5:aa".into()],
            ..good.clone()
        };
        assert_eq!(
            fields(&bad, &password, false),
            [
                "connection.tunnel.host",
                "connection.tunnel.port",
                "connection.tunnel.user",
                "connection.tunnel.host_key_fingerprints[0]"
            ]
        );
        let key = [(TUNNEL_KEY_SECRET, "not a key")];
        assert_eq!(
            fields(&good, &key, false),
            ["connection.tunnel.private_key"]
        );
        let mut violations = Vec::new();
        check_tunnel(
            &good,
            &[(TUNNEL_PASSWORD_SECRET, SecretString::from("pw"))]
                .into_iter()
                .collect(),
            &source(false),
            false,
            &mut violations,
        );
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "connection.tunnel");
    }
}
