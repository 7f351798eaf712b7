//! The redirect rows of the SSH tunnel: adding one, removing one, and each
//! of its secret-bound fields.

use connvault::pb::v1;

use super::{Row, Start, row};

const OTHER_PIN: &str = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn tunnel_patch(tunnel: v1::SshTunnel) -> v1::Connection {
    v1::Connection {
        tunnel: Some(tunnel),
        ..Default::default()
    }
}

/// The SSH tunnel rows: adding one, removing one, and each of its bound fields.
pub(super) fn rows() -> Vec<Row> {
    use Start::*;
    vec![
        // A tunnel added whose bastion is the attacker's.
        row(
            "postgresql",
            AtFake,
            &["tunnel"],
            &["tunnel"],
            false,
            |port| {
                tunnel_patch(v1::SshTunnel {
                    host: "127.0.0.1".into(),
                    port: u32::from(port),
                    user: "mallory".into(),
                    password: "the attacker's own".into(),
                    host_key_fingerprints: vec![OTHER_PIN.into()],
                    ..Default::default()
                })
            },
        ),
        // The tunnel removed: the database reached directly again.
        row(
            "postgresql",
            Tunnelled,
            &["tunnel"],
            &["tunnel"],
            false,
            |_| v1::Connection::default(),
        ),
        row(
            "postgresql",
            Tunnelled,
            &["tunnel.host"],
            &["tunnel.host"],
            false,
            |_| {
                tunnel_patch(v1::SshTunnel {
                    host: "bastion.attacker.example".into(),
                    ..Default::default()
                })
            },
        ),
        row(
            "postgresql",
            Tunnelled,
            &["tunnel.port"],
            &["tunnel.port"],
            false,
            |port| {
                tunnel_patch(v1::SshTunnel {
                    port: u32::from(port),
                    ..Default::default()
                })
            },
        ),
        row(
            "postgresql",
            Tunnelled,
            &["tunnel.user"],
            &["tunnel.user"],
            false,
            |_| {
                tunnel_patch(v1::SshTunnel {
                    user: "mallory".into(),
                    ..Default::default()
                })
            },
        ),
        row(
            "postgresql",
            Tunnelled,
            &["tunnel.host_key_fingerprints"],
            &["tunnel.host_key_fingerprints"],
            false,
            |_| {
                tunnel_patch(v1::SshTunnel {
                    host_key_fingerprints: vec![OTHER_PIN.into()],
                    ..Default::default()
                })
            },
        ),
    ]
}
