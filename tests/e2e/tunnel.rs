//! SSH tunnels through the server: a PostgreSQL connection reached through
//! a throwaway OpenSSH bastion passes every stage (TLS verifying the
//! database's name, not the tunnel's local end), discovers its catalog and
//! resolves with the tunnel's key and an `ssh -L` command; a wrong host key,
//! a key the bastion does not authorize and a closed bastion port each stop
//! at the tunnel stage with their own category; the tunnel's secrets appear
//! nowhere but in the resolve response.

use connvault::pb::v1;
use connvault_testkit::servers::{
    PgOptions, Postgres, Sshd, SshdOptions, TestCa, TlsFiles, free_port,
};
use tonic::Code;

use crate::support::{Options, Server, config, connection as connection_to, create, violations};

const POSTGRES: (&str, &str, &str) = (
    "connvault-plugin-postgres",
    "connvault_plugin_postgres",
    "postgres",
);
const PASSPHRASE: &str = "tunnel passphrase 7f3a";
const SSH_PASSWORD: &str = "ssh p@ss 19c4";
const WRONG_PIN: &str = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The body of a PEM key (the part that is secret), for leak checks.
fn key_body(pem: &str) -> String {
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<String>()
}

fn key_tunnel(sshd: &Sshd, key: &str, passphrase: &str) -> v1::SshTunnel {
    v1::SshTunnel {
        host: "127.0.0.1".into(),
        port: u32::from(sshd.port()),
        user: sshd.user().into(),
        private_key: key.into(),
        private_key_passphrase: passphrase.into(),
        host_key_fingerprints: vec![sshd.host_fingerprint().into()],
        ..Default::default()
    }
}

/// A PostgreSQL connection to `localhost` (resolved on the bastion's side)
/// with TLS verify-full against `ca`, through `tunnel`.
fn through(pg: &Postgres, ca: &TestCa, tunnel: v1::SshTunnel, name: &str) -> v1::Connection {
    v1::Connection {
        display_name: name.into(),
        data_source: "postgresql".into(),
        config: Some(config(&[
            ("host", "localhost"),
            ("port", &pg.port().to_string()),
            ("user", pg.user()),
            ("database", "postgres"),
        ])),
        secrets: [("password".to_owned(), pg.password().to_owned())].into(),
        tls: Some(v1::TlsConfig {
            mode: v1::TlsMode::VerifyFull as i32,
            ca_pem: ca.ca_pem.clone(),
            ..Default::default()
        }),
        tunnel: Some(tunnel),
        ..Default::default()
    }
}

/// PostgreSQL serving TLS for `localhost` only: a client that verified the
/// tunnel's local end (127.0.0.1) instead of the database's name would fail.
fn postgres_for_localhost(ca: &TestCa) -> Postgres {
    let pem = ca.server(&["localhost"]);
    let pg = Postgres::start(PgOptions {
        tls: Some(TlsFiles {
            cert_pem: pem.cert_pem,
            key_pem: pem.key_pem,
            client_ca_pem: None,
        }),
        ..Default::default()
    });
    pg.psql("CREATE TABLE public.shipments (id int PRIMARY KEY, sent date)");
    pg
}

fn stage_statuses(result: &v1::TestConnectionResponse) -> Vec<(i32, i32)> {
    result.stages.iter().map(|s| (s.stage, s.status)).collect()
}

#[tokio::test]
async fn a_tunnelled_postgres_connection_passes_every_stage_discovers_and_resolves() {
    use v1::StageStatus::{Ok as Passed, Skipped};
    use v1::TestStage::*;
    let ca = TestCa::new();
    let pg = postgres_for_localhost(&ca);
    let sshd = Sshd::start(SshdOptions {
        key_passphrase: Some(PASSPHRASE.into()),
        ..Default::default()
    });
    let server = Server::start_with_plugins(&[POSTGRES]);
    server.create_tenant("acme").await;
    let mut client = server.connections().await;

    let tunnel = key_tunnel(&sshd, sshd.client_key(), PASSPHRASE);
    let created = create(
        &mut client,
        "acme",
        through(&pg, &ca, tunnel, "orders via bastion"),
    )
    .await
    .unwrap();
    let stored = created.tunnel.clone().unwrap();
    assert!(stored.private_key_set && stored.private_key_passphrase_set);
    assert!(!stored.password_set);
    assert!(stored.private_key.is_empty() && stored.private_key_passphrase.is_empty());
    assert!(
        created.secret_fields == ["password"],
        "{:?}",
        created.secret_fields
    );

    let result = client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Name(
                created.name.clone(),
            )),
            timeout_ms: 60_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(result.success, "{result:#?}");
    let passed = Passed as i32;
    assert_eq!(
        stage_statuses(&result),
        [
            (Tunnel as i32, passed),
            (Resolve as i32, passed),
            (Connect as i32, passed),
            (Tls as i32, passed),
            (Authenticate as i32, passed),
            (Probe as i32, passed),
            (Authorize as i32, passed),
        ],
        "{result:#?}"
    );
    assert!(
        result.stages[0].message.contains(sshd.host_fingerprint()),
        "{:?}",
        result.stages[0].message
    );
    assert_ne!(Skipped as i32, result.stages[3].status);
    let log = sshd.log();
    assert!(
        log.contains(&format!(
            "server_request_direct_tcpip: originator 127.0.0.1 port 0, target localhost port {}",
            pg.port()
        )),
        "the sshd log shows no forwarded channel:\n{log}"
    );

    let catalog = client
        .discover_metadata(v1::DiscoverMetadataRequest {
            name: created.name.clone(),
            include_columns: true,
            refresh: true,
            timeout_ms: 60_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let tables: Vec<&str> = catalog
        .schemas
        .iter()
        .flat_map(|schema| schema.tables.iter().map(|table| table.name.as_str()))
        .collect();
    assert!(tables.contains(&"shipments"), "{tables:?}");

    let resolved = client
        .resolve_connection(v1::ResolveConnectionRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.tunnel_private_key, sshd.client_key());
    assert_eq!(resolved.tunnel_private_key_passphrase, PASSPHRASE);
    assert!(resolved.tunnel_password.is_empty());
    let rendered = resolved.rendered.unwrap();
    assert_eq!(
        rendered.ssh_command,
        format!(
            "ssh -N -o ExitOnForwardFailure=yes -o StrictHostKeyChecking=yes -i \"$CONNVAULT_TUNNEL_KEY_FILE\" -o IdentitiesOnly=yes -L 127.0.0.1:{port}:localhost:{port} -p {ssh} {user}@127.0.0.1",
            port = pg.port(),
            ssh = sshd.port(),
            user = sshd.user()
        )
    );
    assert_eq!(rendered.local_endpoint, format!("127.0.0.1:{}", pg.port()));

    // Nowhere but in the resolve response: not in a read, not in the log.
    let read = client
        .get_connection(v1::GetConnectionRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let body = key_body(sshd.client_key());
    for shown in [
        format!("{read:?}"),
        format!("{result:?}"),
        server.log_text(),
    ] {
        assert!(!shown.contains(&body), "the private key leaked");
        assert!(!shown.contains(PASSPHRASE), "the passphrase leaked");
    }
}

#[tokio::test]
async fn each_tunnel_failure_stops_at_the_tunnel_stage_with_its_category() {
    use v1::ErrorCategory::*;
    let ca = TestCa::new();
    let pg = postgres_for_localhost(&ca);
    let sshd = Sshd::start(SshdOptions {
        password: Sshd::password_supported().then(|| SSH_PASSWORD.to_owned()),
        ..Default::default()
    });
    let server = Server::start_with_plugins(&[POSTGRES]);
    server.create_tenant("acme").await;
    let mut client = server.connections().await;

    let good = key_tunnel(&sshd, sshd.client_key(), "");
    let cases = [
        (
            "wrong host key",
            v1::SshTunnel {
                host_key_fingerprints: vec![WRONG_PIN.into()],
                ..good.clone()
            },
            TunnelHostKey,
        ),
        (
            "unauthorized key",
            key_tunnel(&sshd, sshd.unauthorized_key(), ""),
            TunnelAuth,
        ),
        (
            "closed bastion port",
            v1::SshTunnel {
                port: u32::from(free_port()),
                ..good.clone()
            },
            TunnelUnreachable,
        ),
        (
            "database port closed behind the bastion",
            good.clone(),
            TunnelForward,
        ),
    ];
    for (what, tunnel, category) in cases {
        let mut connection = through(&pg, &ca, tunnel, what);
        if category == TunnelForward {
            connection.config = Some(config(&[
                ("host", "localhost"),
                ("port", &free_port().to_string()),
                ("user", pg.user()),
            ]));
        }
        let result = client
            .test_connection(v1::TestConnectionRequest {
                target: Some(v1::test_connection_request::Target::Connection(connection)),
                parent: "tenants/acme".into(),
                timeout_ms: 60_000,
            })
            .await
            .unwrap_or_else(|error| panic!("{what}: {error:?}"))
            .into_inner();
        assert!(!result.success, "{what}");
        assert_eq!(
            result.error_category, category as i32,
            "{what}: {result:#?}"
        );
        assert_eq!(
            result.stages[0].stage,
            v1::TestStage::Tunnel as i32,
            "{what}"
        );
        assert_eq!(
            result.stages[0].status,
            v1::StageStatus::Failed as i32,
            "{what}"
        );
        assert!(
            result.stages[1..]
                .iter()
                .all(|stage| stage.status == v1::StageStatus::Skipped as i32),
            "{what}: {result:#?}"
        );
    }

    // A saved connection whose key the bastion refuses: discovery fails before the plugin.
    let refused = create(
        &mut client,
        "acme",
        through(
            &pg,
            &ca,
            key_tunnel(&sshd, sshd.unauthorized_key(), ""),
            "refused key",
        ),
    )
    .await
    .unwrap();
    let error = client
        .discover_metadata(v1::DiscoverMetadataRequest {
            name: refused.name.clone(),
            timeout_ms: 60_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert!(error.message().contains("SSH tunnel"), "{error:?}");

    if !Sshd::password_supported() {
        eprintln!("skipped: SSH password authentication against sshd needs root here");
        return;
    }
    let password = v1::SshTunnel {
        private_key: String::new(),
        password: SSH_PASSWORD.into(),
        ..good.clone()
    };
    let saved = create(
        &mut client,
        "acme",
        through(&pg, &ca, password, "by password"),
    )
    .await
    .unwrap();
    assert!(saved.tunnel.as_ref().unwrap().password_set);
    let result = client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Name(
                saved.name.clone(),
            )),
            timeout_ms: 60_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(result.success, "{result:#?}");
    let resolved = client
        .resolve_connection(v1::ResolveConnectionRequest {
            name: saved.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.tunnel_password, SSH_PASSWORD);
    assert!(!resolved.rendered.unwrap().ssh_command.contains("-i "));
    let wrong = v1::SshTunnel {
        private_key: String::new(),
        password: "not the password".into(),
        ..good
    };
    let result = client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Connection(through(
                &pg,
                &ca,
                wrong,
                "wrong password",
            ))),
            parent: "tenants/acme".into(),
            timeout_ms: 60_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result.error_category, TunnelAuth as i32, "{result:#?}");
    let log = server.log_text();
    assert!(!log.contains(SSH_PASSWORD) && !log.contains("not the password"));
    assert!(!format!("{result:?}").contains("not the password"));
}

#[tokio::test]
async fn outside_dev_a_tunnel_must_pin_the_host_key_and_its_data_source_must_support_it() {
    let server = Server::start_with_options_and_plugins(
        Options {
            master_key: Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
            ..Default::default()
        },
        &[POSTGRES],
    );
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let ca = TestCa::new();
    let tunnel = v1::SshTunnel {
        host: "bastion.example".into(),
        user: "tunnel".into(),
        password: SSH_PASSWORD.into(),
        ..Default::default()
    };
    let connection = v1::Connection {
        display_name: "unpinned".into(),
        data_source: "postgresql".into(),
        config: Some(config(&[("host", "db.internal"), ("user", "app")])),
        tls: Some(v1::TlsConfig {
            mode: v1::TlsMode::VerifyFull as i32,
            ca_pem: ca.ca_pem.clone(),
            ..Default::default()
        }),
        tunnel: Some(tunnel.clone()),
        ..Default::default()
    };
    let error = create(&mut client, "acme", connection.clone())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&error),
        ["connection.tunnel.host_key_fingerprints"],
        "{error:?}"
    );
    assert!(!error.message().contains(SSH_PASSWORD));

    let pinned = v1::Connection {
        tunnel: Some(v1::SshTunnel {
            host_key_fingerprints: vec![WRONG_PIN.into()],
            ..tunnel.clone()
        }),
        ..connection
    };
    create(&mut client, "acme", pinned).await.unwrap();

    // The fixture plugin's data source does not dial through the SDK's grant.
    let fixture = v1::Connection {
        tunnel: Some(v1::SshTunnel {
            host_key_fingerprints: vec![WRONG_PIN.into()],
            ..tunnel
        }),
        ..connection_to("fixture via bastion", "pw")
    };
    let error = create(&mut client, "acme", fixture).await.unwrap_err();
    assert!(
        violations(&error).contains(&"connection.tunnel".to_owned()),
        "{error:?}"
    );
}
