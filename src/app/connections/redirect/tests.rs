//! The redirect guard's rules, field by field.

use prost_types::{Struct, Value, value::Kind};

use super::*;

const PASSWORD: &str = "password";

fn text(value: &str) -> plugin::Value {
    plugin::Value {
        kind: Some(plugin::value::Kind::StringValue(value.into())),
    }
}

fn connection(pairs: &[(&str, &str)], tls: Option<v1::TlsConfig>) -> v1::Connection {
    v1::Connection {
        data_source: "db".into(),
        config: Some(Struct {
            fields: pairs
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        Value {
                            kind: Some(Kind::StringValue((*v).into())),
                        },
                    )
                })
                .collect(),
        }),
        tls,
        ..Default::default()
    }
}

fn normalized(pairs: &[(&str, &str)]) -> BTreeMap<String, plugin::Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), text(v)))
        .collect()
}

fn source(bound: &[&str]) -> plugin::DataSource {
    plugin::DataSource {
        fields: ["host", "port", "user", "schema"]
            .iter()
            .map(|name| plugin::Field {
                name: (*name).into(),
                ..Default::default()
            })
            .collect(),
        secret_bound_fields: bound.iter().map(|b| (*b).to_owned()).collect(),
        ..Default::default()
    }
}

fn verify_full() -> v1::TlsConfig {
    v1::TlsConfig {
        mode: v1::TlsMode::VerifyFull as i32,
        ..Default::default()
    }
}

/// The changed fields the guard names for `old` -> `next`, and whether
/// it refuses without the password and accepts with it.
fn judge(
    source: &plugin::DataSource,
    old: &v1::Connection,
    next: &v1::Connection,
    keys: (Option<&SecretString>, Option<&SecretString>),
) -> Vec<String> {
    let normalized = config_from_struct(next.config.as_ref(), "c").unwrap_or_default();
    let update = Redirect {
        old,
        next,
        source,
        normalized: &normalized,
        old_key: keys.0,
        next_key: keys.1,
        old_tunnel: [None; 3],
        next_tunnel: [None; 3],
    };
    let stored = [PASSWORD.to_owned()];
    let changed = update.secret_bound_changes();
    let verdict = check_redirect(&update, &stored, &[]);
    if changed.is_empty() {
        assert!(verdict.is_ok(), "{verdict:?}");
    } else {
        let Err(ServiceError::FailedPrecondition(message)) = verdict else {
            panic!("{changed:?} was not refused: {verdict:?}");
        };
        for field in changed.iter().chain([&"secrets.password".to_owned()]) {
            assert!(message.contains(field.as_str()), "{field} not in {message}");
        }
        assert!(check_redirect(&update, &stored, &stored).is_ok());
    }
    // Nothing stored, nothing to redirect.
    assert!(check_redirect(&update, &[], &[]).is_ok());
    changed
}

/// One change to a TLS config.
type TlsChange = fn(&mut v1::TlsConfig);

#[test]
fn every_secret_bound_field_and_every_tls_field_needs_the_secrets_again() {
    let pg = source(&["host", "port", "user"]);
    let base = [
        ("host", "db.example"),
        ("port", "5432"),
        ("user", "app"),
        ("schema", "s"),
    ];
    let old = connection(&base, Some(verify_full()));
    let with = |key: &str, value: &str| {
        let pairs: Vec<(&str, &str)> = base
            .iter()
            .map(|(k, v)| if *k == key { (*k, value) } else { (*k, *v) })
            .collect();
        connection(&pairs, Some(verify_full()))
    };
    let none = (None, None);
    for field in ["host", "port", "user"] {
        assert_eq!(
            judge(&pg, &old, &with(field, "evil"), none),
            [format!("config.{field}")]
        );
    }
    // Not secret-bound: no secrets needed.
    assert!(judge(&pg, &old, &with("schema", "other"), none).is_empty());
    // A bound field appearing or disappearing is a change.
    let without_port = connection(&base[..1], Some(verify_full()));
    assert_eq!(
        judge(&pg, &old, &without_port, none),
        ["config.port", "config.user"]
    );
    // A field the schema does not describe is bound.
    let mut extra = base.to_vec();
    extra.push(("hostaddr", "10.0.0.9"));
    assert_eq!(
        judge(&pg, &old, &connection(&extra, Some(verify_full())), none),
        ["config.hostaddr"]
    );

    let tls_cases: [(&str, TlsChange); 7] = [
        ("tls.mode", |t| t.mode = v1::TlsMode::Disable as i32),
        ("tls.mode", |t| t.mode = v1::TlsMode::Require as i32),
        ("tls.mode", |t| t.mode = v1::TlsMode::Unspecified as i32),
        ("tls.ca_pem", |t| t.ca_pem = "CA".into()),
        ("tls.client_cert_pem", |t| t.client_cert_pem = "CERT".into()),
        // From empty to set (the default is the host), the case that leaked.
        ("tls.server_name", |t| t.server_name = "evil.example".into()),
        ("tls.server_name", |t| t.server_name = "x".into()),
    ];
    for (path, change) in tls_cases {
        let mut tls = verify_full();
        change(&mut tls);
        let next = connection(&base, Some(tls));
        assert_eq!(judge(&pg, &old, &next, none), [path]);
    }
    // Set to empty: from a named server back to the host.
    let named = connection(
        &base,
        Some(v1::TlsConfig {
            server_name: "db.internal".into(),
            ca_pem: "CA".into(),
            ..verify_full()
        }),
    );
    assert_eq!(
        judge(&pg, &named, &old, none),
        ["tls.ca_pem", "tls.server_name"]
    );
    // No TLS at all and TLS with default values are the same thing.
    let plain = connection(&base, None);
    let default_tls = connection(&base, Some(v1::TlsConfig::default()));
    assert!(judge(&pg, &plain, &default_tls, none).is_empty());
    assert_eq!(judge(&pg, &plain, &old, none), ["tls.mode"]);

    // The client key: set, replaced, removed; the same key again is no change.
    let (key, other) = (SecretString::from("K1"), SecretString::from("K2"));
    assert_eq!(
        judge(&pg, &old, &old, (None, Some(&key))),
        ["tls.client_key_pem"]
    );
    assert_eq!(
        judge(&pg, &old, &old, (Some(&key), Some(&other))),
        ["tls.client_key_pem"]
    );
    assert_eq!(
        judge(&pg, &old, &old, (Some(&key), None)),
        ["tls.client_key_pem"]
    );
    assert!(judge(&pg, &old, &old, (Some(&key), Some(&key.clone()))).is_empty());

    // The data source itself.
    let mut moved = old.clone();
    moved.data_source = "other".into();
    assert_eq!(judge(&pg, &old, &moved, none), ["data_source"]);
}

#[test]
fn a_schema_without_secret_bound_fields_binds_every_config_field() {
    let silent = source(&[]);
    let old = connection(&[("host", "a"), ("schema", "s")], None);
    let next = connection(&[("host", "a"), ("schema", "t")], None);
    assert_eq!(judge(&silent, &old, &next, (None, None)), ["config.schema"]);
    assert!(judge(&silent, &old, &old, (None, None)).is_empty());
}

#[test]
fn a_stored_client_key_not_sent_again_is_named_by_its_path() {
    let pg = source(&["host"]);
    let old = connection(&[("host", "a")], None);
    let next = connection(&[("host", "b")], None);
    let normalized = normalized(&[("host", "b")]);
    let update = Redirect {
        old: &old,
        next: &next,
        source: &pg,
        normalized: &normalized,
        old_key: None,
        next_key: None,
        old_tunnel: [None; 3],
        next_tunnel: [None; 3],
    };
    let stored = [PASSWORD.to_owned(), TLS_KEY_SECRET.to_owned()];
    let Err(ServiceError::FailedPrecondition(message)) =
        check_redirect(&update, &stored, &[PASSWORD.to_owned()])
    else {
        panic!("the key was not asked for");
    };
    assert!(message.contains("config.host"), "{message}");
    assert!(message.contains("(tls.client_key_pem)"), "{message}");
    assert!(check_redirect(&update, &stored, &stored).is_ok());
}

#[test]
fn every_tunnel_field_but_the_local_port_needs_the_secrets_again() {
    let pg = source(&["host"]);
    let base = connection(&[("host", "db")], None);
    let tunnel = v1::SshTunnel {
        host: "bastion.example".into(),
        user: "tunnel".into(),
        host_key_fingerprints: vec!["SHA256:a".into(), "SHA256:b".into()],
        ..Default::default()
    };
    let with = |tunnel: v1::SshTunnel| v1::Connection {
        tunnel: Some(tunnel),
        ..base.clone()
    };
    let none = (None, None);
    let tunnelled = with(tunnel.clone());
    assert_eq!(judge(&pg, &base, &tunnelled, none), ["tunnel"]);
    assert_eq!(judge(&pg, &tunnelled, &base, none), ["tunnel"]);
    let cases: [(&str, v1::SshTunnel); 4] = [
        (
            "tunnel.host",
            v1::SshTunnel {
                host: "evil.example".into(),
                ..tunnel.clone()
            },
        ),
        (
            "tunnel.port",
            v1::SshTunnel {
                port: 2222,
                ..tunnel.clone()
            },
        ),
        (
            "tunnel.user",
            v1::SshTunnel {
                user: "root".into(),
                ..tunnel.clone()
            },
        ),
        (
            "tunnel.host_key_fingerprints",
            v1::SshTunnel {
                host_key_fingerprints: vec!["SHA256:a".into()],
                ..tunnel.clone()
            },
        ),
    ];
    for (path, next) in cases {
        assert_eq!(judge(&pg, &tunnelled, &with(next), none), [path]);
    }
    // The default port spelled out, the pins reordered, the local port: no change.
    let same = v1::SshTunnel {
        port: 22,
        local_port: 15432,
        host_key_fingerprints: vec!["SHA256:b".into(), "SHA256:a".into()],
        ..tunnel.clone()
    };
    assert!(judge(&pg, &tunnelled, &with(same), none).is_empty());

    // A tunnel secret replaced or removed is a change; the same value is not.
    let (key, other) = (SecretString::from("K1"), SecretString::from("K2"));
    let normalized = normalized(&[("host", "db")]);
    let changes = |old_tunnel: TunnelSecrets<'_>, next_tunnel: TunnelSecrets<'_>| {
        Redirect {
            old: &tunnelled,
            next: &tunnelled,
            source: &pg,
            normalized: &normalized,
            old_key: None,
            next_key: None,
            old_tunnel,
            next_tunnel,
        }
        .secret_bound_changes()
    };
    assert_eq!(
        changes([Some(&key), None, None], [Some(&other), None, None]),
        ["tunnel.private_key"]
    );
    assert_eq!(
        changes([None, None, Some(&key)], [None, None, None]),
        ["tunnel.password"]
    );
    assert!(changes([Some(&key), None, None], [Some(&key), None, None]).is_empty());
    // A stored tunnel secret not sent again is named by its path.
    let update = Redirect {
        old: &tunnelled,
        next: &base,
        source: &pg,
        normalized: &normalized,
        old_key: None,
        next_key: None,
        old_tunnel: [None; 3],
        next_tunnel: [None; 3],
    };
    let stored = [PASSWORD.to_owned(), "tunnel.private_key".to_owned()];
    let Err(ServiceError::FailedPrecondition(message)) =
        check_redirect(&update, &stored, &[PASSWORD.to_owned()])
    else {
        panic!("the tunnel key was not asked for");
    };
    assert!(message.contains("(tunnel.private_key)"), "{message}");
}
