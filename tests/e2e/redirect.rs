//! The redirect guard attacked the way a writer would: every secret-bound
//! field of every first-party data source, every TLS field and every SSH
//! tunnel field, changed
//! without re-sending the stored password, against a fake server that plays
//! the attacker (it records every byte, declines TLS and asks PostgreSQL
//! clients for a clear-text password). The password must never arrive.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connvault::auth::Role;
use connvault::pb::v1;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use connvault_testkit::servers::TestCa;
use prost_types::value::Kind;
use tonic::Code;

use crate::support::{Authed, Server, create, token};

const CANARY: &str = "redirect-canary-Pw-41d7";
const RESENT: &str = "resent-by-the-writer-Pw-9c2e";
const TUNNEL_CANARY: &str = "redirect-canary-Ssh-5be1";
const PIN: &str = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

mod tunnel;

/// PostgreSQL's `SSLRequest`.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// `AuthenticationCleartextPassword`: what an attacker's server asks for.
const ASK_CLEARTEXT: [u8; 9] = [b'R', 0, 0, 0, 8, 0, 0, 0, 3];

/// A TCP listener on 127.0.0.1 that records every byte it receives.
struct Fake {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(stream, &sink));
            }
        });
        Fake { port, received }
    }

    fn saw(&self, needle: &str) -> bool {
        self.received
            .lock()
            .unwrap()
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    }
}

fn serve(mut stream: TcpStream, sink: &Mutex<Vec<u8>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut buffer = [0u8; 8192];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        let chunk = &buffer[..read];
        sink.lock().unwrap().extend_from_slice(chunk);
        let answer: &[u8] = if chunk == SSL_REQUEST {
            b"N"
        } else if read >= 8 && chunk[4..8] == [0, 3, 0, 0] {
            // A PostgreSQL startup message: ask for the password in clear.
            &ASK_CLEARTEXT
        } else {
            continue;
        };
        if stream.write_all(answer).is_err() {
            break;
        }
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn text(value: impl Into<String>) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(value.into())),
    }
}

fn flag(value: bool) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::BoolValue(value)),
    }
}

fn settings(pairs: Vec<(&str, prost_types::Value)>) -> prost_types::Struct {
    prost_types::Struct {
        fields: pairs
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    }
}

fn tls(mode: v1::TlsMode) -> v1::TlsConfig {
    v1::TlsConfig {
        mode: mode as i32,
        ..Default::default()
    }
}

/// Where a row's connection starts.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// At the fake, TLS verified: a test sends the fake nothing usable.
    AtFake,
    /// At a host that does not resolve, TLS off.
    NowhereHost,
    /// At a closed port on 127.0.0.1, TLS off.
    NowherePort,
    /// At the fake, TLS verified, through an SSH tunnel whose bastion (a
    /// closed port) holds a password of its own.
    Tunnelled,
}

/// One attack: an update of `mask` to `patch` without the password.
struct Row {
    source: &'static str,
    start: Start,
    mask: &'static [&'static str],
    /// The patch (config and tls), given the fake's port.
    patch: Box<dyn Fn(u16) -> v1::Connection>,
    /// The fields the refusal must name (besides `secrets.password`).
    named: &'static [&'static str],
    /// Whether the fake receives the password once the update is applied:
    /// then the positive row also proves the fake would have seen it.
    leaks_when_applied: bool,
}

fn row(
    source: &'static str,
    start: Start,
    mask: &'static [&'static str],
    named: &'static [&'static str],
    leaks_when_applied: bool,
    patch: impl Fn(u16) -> v1::Connection + 'static,
) -> Row {
    Row {
        source,
        start,
        mask,
        patch: Box::new(patch),
        named,
        leaks_when_applied,
    }
}

fn config_patch(pairs: Vec<(&'static str, prost_types::Value)>) -> v1::Connection {
    v1::Connection {
        config: Some(settings(pairs)),
        ..Default::default()
    }
}

fn tls_patch(config: v1::TlsConfig) -> v1::Connection {
    v1::Connection {
        tls: Some(config),
        ..Default::default()
    }
}

/// The connection a row starts from.
fn original(index: usize, row: &Row, fake: u16) -> v1::Connection {
    let (host, port, mode) = match row.start {
        Start::AtFake | Start::Tunnelled => ("127.0.0.1", fake, v1::TlsMode::VerifyFull),
        Start::NowhereHost => ("db.invalid", fake, v1::TlsMode::Disable),
        Start::NowherePort => ("127.0.0.1", closed_port(), v1::TlsMode::Disable),
    };
    let port = text(port.to_string());
    let (config, tls) = match row.source {
        "postgresql" => (
            vec![
                ("host", text(host)),
                ("port", port),
                ("user", text("app")),
                ("database", text("orders")),
            ],
            Some(tls(mode)),
        ),
        "mysql" => (
            vec![("host", text(host)), ("port", port), ("user", text("app"))],
            Some(tls(mode)),
        ),
        "redis" => (vec![("host", text(host)), ("port", port)], Some(tls(mode))),
        _ => (
            vec![
                (
                    "jdbc_url",
                    text(format!("jdbc:postgresql://{host}:{fake}/orders")),
                ),
                ("user", text("app")),
            ],
            None,
        ),
    };
    let tunnel = (row.start == Start::Tunnelled).then(|| v1::SshTunnel {
        host: "127.0.0.1".into(),
        port: u32::from(closed_port()),
        user: "app".into(),
        password: TUNNEL_CANARY.into(),
        host_key_fingerprints: vec![PIN.into()],
        ..Default::default()
    });
    v1::Connection {
        display_name: format!("row {index} {}", row.source),
        data_source: row.source.into(),
        config: Some(settings(config)),
        tls,
        tunnel,
        secrets: [("password".to_owned(), CANARY.to_owned())].into(),
        ..Default::default()
    }
}

fn rows() -> Vec<Row> {
    use Start::*;
    use v1::TlsMode::*;
    let ca = TestCa::new();
    let ca_pem = ca.ca_pem.clone();
    let client = ca.client("app");
    let (cert, key) = (client.cert_pem.clone(), client.key_pem.clone());
    let pem = ca.ca_pem.clone();
    let mut rows = Vec::new();
    for source in ["postgresql", "mysql", "redis"] {
        let leaky = source != "mysql";
        let ca_pem = ca_pem.clone();
        let (cert, key) = (cert.clone(), key.clone());
        rows.extend([
            // The reported case: the whole `tls` replaced, a server name where there was none.
            row(
                source,
                AtFake,
                &["tls"],
                &["tls.server_name"],
                false,
                |_| {
                    tls_patch(v1::TlsConfig {
                        server_name: "attacker.example".into(),
                        ..tls(VerifyFull)
                    })
                },
            ),
            row(source, AtFake, &["tls"], &["tls.mode"], leaky, |_| {
                tls_patch(tls(Disable))
            }),
            row(source, AtFake, &["tls.mode"], &["tls.mode"], leaky, |_| {
                tls_patch(tls(Disable))
            }),
            row(
                source,
                AtFake,
                &["tls.mode"],
                &["tls.mode"],
                source == "postgresql",
                |_| tls_patch(tls(Prefer)),
            ),
            row(source, AtFake, &["tls.mode"], &["tls.mode"], false, |_| {
                tls_patch(tls(Require))
            }),
            row(
                source,
                AtFake,
                &["tls.server_name"],
                &["tls.server_name"],
                false,
                |_| {
                    tls_patch(v1::TlsConfig {
                        server_name: "attacker.example".into(),
                        ..Default::default()
                    })
                },
            ),
            row(
                source,
                AtFake,
                &["tls.ca_pem"],
                &["tls.ca_pem"],
                false,
                move |_| {
                    tls_patch(v1::TlsConfig {
                        ca_pem: ca_pem.clone(),
                        ..Default::default()
                    })
                },
            ),
            // A client certificate and its key go together.
            row(
                source,
                AtFake,
                &["tls.client_cert_pem", "tls.client_key_pem"],
                &["tls.client_cert_pem", "tls.client_key_pem"],
                false,
                move |_| {
                    tls_patch(v1::TlsConfig {
                        client_cert_pem: cert.clone(),
                        client_key_pem: key.clone(),
                        ..Default::default()
                    })
                },
            ),
            row(
                source,
                NowhereHost,
                &["config.host"],
                &["config.host"],
                leaky,
                |_| config_patch(vec![("host", text("127.0.0.1"))]),
            ),
            row(
                source,
                NowherePort,
                &["config.port"],
                &["config.port"],
                leaky,
                |port| config_patch(vec![("port", text(port.to_string()))]),
            ),
        ]);
    }
    let user_field = |source: &'static str, mask: &'static [&'static str]| {
        row(source, AtFake, mask, mask, false, move |_| {
            let field = mask[0].trim_start_matches("config.");
            config_patch(vec![(field, text("attacker"))])
        })
    };
    rows.extend([
        user_field("postgresql", &["config.user"]),
        user_field("postgresql", &["config.database"]),
        user_field("mysql", &["config.user"]),
        user_field("redis", &["config.username"]),
        user_field("jdbc", &["config.user"]),
        // The whole config replaced, pointing at the fake.
        row(
            "postgresql",
            NowhereHost,
            &["config"],
            &["config.host"],
            true,
            |port| {
                config_patch(vec![
                    ("host", text("127.0.0.1")),
                    ("port", text(port.to_string())),
                    ("user", text("app")),
                    ("database", text("orders")),
                ])
            },
        ),
        row(
            "jdbc",
            AtFake,
            &["config.jdbc_url"],
            &["config.jdbc_url"],
            false,
            |port| {
                config_patch(vec![(
                    "jdbc_url",
                    text(format!("jdbc:postgresql://127.0.0.1:{port}/other")),
                )])
            },
        ),
        row(
            "jdbc",
            AtFake,
            &["config.enforce_ssl"],
            &["config.enforce_ssl"],
            false,
            |_| config_patch(vec![("enforce_ssl", flag(true))]),
        ),
        row(
            "jdbc",
            AtFake,
            &["config.custom_certificate"],
            &["config.custom_certificate"],
            false,
            move |_| config_patch(vec![("custom_certificate", text(pem.clone()))]),
        ),
        row(
            "jdbc",
            AtFake,
            &["config.driver_class_name"],
            &["config.driver_class_name"],
            false,
            |_| config_patch(vec![("driver_class_name", text("org.attacker.Driver"))]),
        ),
        row(
            "jdbc",
            AtFake,
            &["config.driver_jar_uri", "config.driver_class_name"],
            &["config.driver_jar_uri", "config.driver_class_name"],
            false,
            |_| {
                // A driver JAR needs its class name.
                config_patch(vec![
                    ("driver_jar_uri", text("https://attacker.example/d.jar")),
                    ("driver_class_name", text("org.attacker.Driver")),
                ])
            },
        ),
    ]);
    rows.extend(tunnel::rows());
    rows
}

async fn test_by_name(client: &mut ConnectionServiceClient<Authed>, name: &str) {
    // Success or failure does not matter here: only what reached the fake.
    let _ = client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Name(name.to_owned())),
            parent: String::new(),
            timeout_ms: 1500,
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn update(name: &str, row: &Row, port: u16, resend: bool) -> v1::UpdateConnectionRequest {
    let mut patch = (row.patch)(port);
    patch.name = name.to_owned();
    let mut paths: Vec<String> = row.mask.iter().map(|p| (*p).to_owned()).collect();
    if resend {
        patch.secrets = [("password".to_owned(), RESENT.to_owned())].into();
        paths.push("secrets.password".into());
        // A stored tunnel password is a stored secret too (unless the
        // whole tunnel, secrets and all, is replaced).
        if row.start == Start::Tunnelled && !row.mask.contains(&"tunnel") {
            patch.tunnel.get_or_insert_with(Default::default).password = RESENT.into();
            paths.push("tunnel.password".into());
        }
    }
    v1::UpdateConnectionRequest {
        connection: Some(patch),
        update_mask: Some(prost_types::FieldMask { paths }),
        etag: String::new(),
    }
}

#[tokio::test]
async fn a_writer_cannot_redirect_a_stored_password() {
    let server = Server::start_with_plugins(&[
        (
            "connvault-plugin-postgres",
            "connvault_plugin_postgres",
            "postgres",
        ),
        ("connvault-plugin-mysql", "connvault_plugin_mysql", "mysql"),
        ("connvault-plugin-redis", "connvault_plugin_redis", "redis"),
        ("connvault-plugin-jdbc", "connvault_plugin_jdbc", "jdbc"),
    ]);
    server.create_tenant("acme").await;
    let mut operator = server.connections().await;
    let mut writer = ConnectionServiceClient::new(
        server
            .channel_as(Some(token("mallory", &["acme"], &[Role::Writer])))
            .await,
    );
    let rows = rows();
    for (index, row) in rows.iter().enumerate() {
        let what = format!("{} {:?}", row.source, row.mask);
        let fake = Fake::start();
        let created = create(&mut operator, "acme", original(index, row, fake.port))
            .await
            .unwrap_or_else(|error| panic!("{what}: create: {error:?}"));

        let refused = writer
            .update_connection(update(&created.name, row, fake.port, false))
            .await
            .expect_err(&what);
        assert_eq!(
            refused.code(),
            Code::FailedPrecondition,
            "{what}: {refused:?}"
        );
        for field in row.named.iter().chain(&["secrets.password"]) {
            assert!(
                refused.message().contains(field),
                "{what}: {field} not named in {:?}",
                refused.message()
            );
        }
        let kept = operator
            .get_connection(v1::GetConnectionRequest {
                name: created.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(kept, created, "{what}: a refused update changed nothing");
        test_by_name(&mut writer, &created.name).await;
        assert!(
            !fake.saw(CANARY),
            "{what}: the stored password reached the fake"
        );

        // The same update with the password re-sent is the writer's own secret: allowed.
        let moved = writer
            .update_connection(update(&created.name, row, fake.port, true))
            .await
            .unwrap_or_else(|error| panic!("{what}: with the secret re-sent: {error:?}"))
            .into_inner();
        assert_ne!(
            (&moved.config, &moved.tls, &moved.tunnel),
            (&created.config, &created.tls, &created.tunnel),
            "{what}: applied"
        );
        if row.leaks_when_applied {
            test_by_name(&mut writer, &created.name).await;
            assert!(
                fake.saw(RESENT),
                "{what}: the fake should see a password once the update is applied"
            );
        }
        assert!(
            !fake.saw(CANARY) && !fake.saw(TUNNEL_CANARY),
            "{what}: the stored password reached the fake"
        );
    }
    eprintln!("redirect: {} rows attacked", rows.len());

    // The data source never changes, secrets or not.
    let fake = Fake::start();
    let base = row(
        "postgresql",
        Start::AtFake,
        &["data_source"],
        &[],
        false,
        |_| v1::Connection {
            data_source: "redis".into(),
            ..Default::default()
        },
    );
    let created = create(
        &mut operator,
        "acme",
        original(rows.len(), &base, fake.port),
    )
    .await
    .unwrap();
    for resend in [false, true] {
        let refused = writer
            .update_connection(update(&created.name, &base, fake.port, resend))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    }
    let kept = operator
        .get_connection(v1::GetConnectionRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept, created);

    // Fields the schema does not bind need no secrets; neither does a no-op TLS update.
    for (mask, patch) in [
        (
            "config.schema",
            config_patch(vec![("schema", text("sales"))]),
        ),
        ("tls", tls_patch(tls(v1::TlsMode::VerifyFull))),
    ] {
        let mut patch = patch;
        patch.name = created.name.clone();
        writer
            .update_connection(v1::UpdateConnectionRequest {
                connection: Some(patch),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec![mask.into()],
                }),
                etag: String::new(),
            })
            .await
            .unwrap_or_else(|error| panic!("{mask}: {error:?}"));
    }
}
