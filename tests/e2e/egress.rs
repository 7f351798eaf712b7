//! The egress policy through the server: what a connection test or a
//! discovery may reach, per server and per tenant, and that a refusal comes
//! before anything is sent (a recording listener sees no connection).

use connvault::auth::Role;
use connvault::pb::v1;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use connvault::pb::v1::tenant_service_client::TenantServiceClient;
use connvault_testkit::listeners::{Recorder, foreign_server, quotes_foreign_reply};
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{Authed, Options, Server, config, create, token};

/// A valid base64 master key: a server with one runs outside `--dev`.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

const REDIS: (&str, &str, &str) = ("connvault-plugin-redis", "connvault_plugin_redis", "redis");
const JDBC: (&str, &str, &str) = ("connvault-plugin-jdbc", "connvault_plugin_jdbc", "jdbc");
const POSTGRES: (&str, &str, &str) = (
    "connvault-plugin-postgres",
    "connvault_plugin_postgres",
    "postgres",
);
const MYSQL: (&str, &str, &str) = ("connvault-plugin-mysql", "connvault_plugin_mysql", "mysql");

/// A server outside `--dev` (the default policy) with `toml` appended.
fn production(toml: &str, plugins: &[(&str, &str, &str)]) -> Server {
    Server::start_with_options_and_plugins(
        Options {
            master_key: Some(KEY.into()),
            toml: toml.into(),
            ..Options::default()
        },
        plugins,
    )
}

/// An inline connection of `data_source` with config `pairs`.
fn inline(data_source: &str, pairs: &[(&str, &str)]) -> v1::Connection {
    v1::Connection {
        display_name: "Probe".into(),
        data_source: data_source.into(),
        config: Some(config(pairs)),
        secrets: [("password".to_owned(), "pw".to_owned())].into(),
        ..Default::default()
    }
}

/// Tests `connection` inline in `tenant`.
async fn test_inline(
    client: &mut ConnectionServiceClient<Authed>,
    tenant: &str,
    connection: v1::Connection,
) -> Result<v1::TestConnectionResponse, tonic::Status> {
    client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Connection(connection)),
            parent: format!("tenants/{tenant}"),
            timeout_ms: 1500,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The refusal's `field` and `rule`, checking it is an egress refusal.
fn egress_refusal(status: &tonic::Status) -> (String, String) {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, "EGRESS_DENIED");
    assert_eq!(info.domain, "connvault.v1");
    (
        info.metadata["field"].clone(),
        info.metadata["rule"].clone(),
    )
}

fn egress(allow: &[&str], deny: &[&str]) -> Option<v1::EgressPolicy> {
    Some(v1::EgressPolicy {
        allow: allow.iter().map(|rule| (*rule).to_owned()).collect(),
        deny: deny.iter().map(|rule| (*rule).to_owned()).collect(),
    })
}

#[tokio::test]
async fn the_default_policy_refuses_this_machine_before_anything_is_sent() {
    let server = production("", &[REDIS, JDBC]);
    server.create_tenant("acme").await;
    let recorder = Recorder::start();
    let port = recorder.port().to_string();
    let own = server.port().to_string();
    let mut client = server.connections().await;

    let cases: [(&str, &str, &str); 8] = [
        ("127.0.0.1", port.as_str(), "built-in: loopback"),
        ("127.0.0.2", port.as_str(), "built-in: loopback"),
        ("::1", port.as_str(), "built-in: loopback"),
        ("::ffff:127.0.0.1", port.as_str(), "built-in: loopback"),
        ("localhost", port.as_str(), "built-in: loopback"),
        ("0.0.0.0", port.as_str(), "built-in: unspecified"),
        ("169.254.169.254", "80", "built-in: link-local"),
        // The server's own gRPC port: a listener rule, whatever loopback says.
        (
            "127.0.0.1",
            own.as_str(),
            "built-in: this server's listener",
        ),
    ];
    for (host, port, rule) in cases {
        let refused = test_inline(
            &mut client,
            "acme",
            inline("redis", &[("host", host), ("port", port)]),
        )
        .await
        .unwrap_err();
        let (field, named) = egress_refusal(&refused);
        assert_eq!(field, "config.host", "{host}");
        assert!(named.starts_with(rule), "{host}:{port}: {named}");
        assert!(refused.message().contains(rule), "{refused:?}");
        if host == "localhost" {
            // A name's addresses are not shown.
            assert!(!refused.message().contains("127.0.0.1"), "{refused:?}");
        }
    }

    // A JDBC URL names its host inside the URL: the plugin reports it.
    let jdbc_url = format!("jdbc:postgresql://127.0.0.1:{port}/app");
    let refused = test_inline(
        &mut client,
        "acme",
        inline("jdbc", &[("jdbc_url", &jdbc_url)]),
    )
    .await
    .unwrap_err();
    assert_eq!(egress_refusal(&refused).0, "config.jdbc_url");

    // A saved connection: creating it dials nothing; testing and discovering it are refused.
    let saved = create(
        &mut client,
        "acme",
        inline("redis", &[("host", "127.0.0.1"), ("port", &port)]),
    )
    .await
    .unwrap();
    let refused = client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Name(
                saved.name.clone(),
            )),
            parent: String::new(),
            timeout_ms: 1500,
        })
        .await
        .unwrap_err();
    egress_refusal(&refused);
    let refused = client
        .discover_metadata(v1::DiscoverMetadataRequest {
            name: saved.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    egress_refusal(&refused);

    assert_eq!(recorder.connections(), 0, "a refused test connected");
    // The refusals are audited as such.
    assert!(server.audit_file_text().contains("PERMISSION_DENIED"));
}

#[tokio::test]
async fn a_tenant_policy_opens_a_port_and_a_server_deny_beats_it() {
    let open = Recorder::start();
    let closed = Recorder::start();
    let server = production(
        &format!("[egress]\ndeny = [\"127.0.0.1:{}\"]\n", closed.port()),
        &[REDIS],
    );
    let mut tenants = server.tenants().await;
    tenants
        .create_tenant(v1::CreateTenantRequest {
            tenant_id: "acme".into(),
            tenant: Some(v1::Tenant {
                egress: egress(
                    &[
                        &format!("127.0.0.1:{}", open.port()),
                        &format!("127.0.0.1:{}", closed.port()),
                    ],
                    &[],
                ),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    server.create_tenant("other").await;
    let mut client = server.connections().await;

    // The tenant's allow rule lets the test reach its port: the plugin is
    // called, connects, and waits on the silent listener until the deadline.
    let reached = test_inline(
        &mut client,
        "acme",
        inline(
            "redis",
            &[("host", "127.0.0.1"), ("port", &open.port().to_string())],
        ),
    )
    .await
    .unwrap();
    let connect = reached
        .stages
        .iter()
        .find(|stage| stage.stage == v1::TestStage::Connect as i32)
        .unwrap();
    assert_eq!(connect.status, v1::StageStatus::Ok as i32, "{reached:?}");
    assert!(open.connections() >= 1);

    // The same port from a tenant without that rule: refused.
    let refused = test_inline(
        &mut client,
        "other",
        inline(
            "redis",
            &[("host", "127.0.0.1"), ("port", &open.port().to_string())],
        ),
    )
    .await
    .unwrap_err();
    assert!(egress_refusal(&refused).1.starts_with("built-in: loopback"));

    // The server's deny rule wins over the tenant's allow rule.
    let refused = test_inline(
        &mut client,
        "acme",
        inline(
            "redis",
            &[("host", "127.0.0.1"), ("port", &closed.port().to_string())],
        ),
    )
    .await
    .unwrap_err();
    assert!(egress_refusal(&refused).1.starts_with("egress.deny[0]"));
    assert_eq!(closed.connections(), 0);

    // The rules are the tenant's to read; an admin of one tenant may not change them.
    let stored = tenants
        .get_tenant(v1::GetTenantRequest {
            name: "tenants/acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.egress.unwrap().allow.len(), 2);
    let scoped = token("acme-admin", &["acme"], &[Role::Admin]);
    let mut scoped = TenantServiceClient::new(server.channel_as(Some(scoped)).await);
    let update = |tenant: v1::Tenant, paths: &[&str]| v1::UpdateTenantRequest {
        tenant: Some(v1::Tenant {
            name: "tenants/acme".into(),
            ..tenant
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|path| (*path).to_owned()).collect(),
        }),
        etag: String::new(),
    };
    let widened = v1::Tenant {
        egress: egress(&["*"], &[]),
        ..Default::default()
    };
    let denied = scoped
        .update_tenant(update(widened.clone(), &["egress"]))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let renamed = scoped
        .update_tenant(update(
            v1::Tenant {
                display_name: "Acme Corp".into(),
                ..Default::default()
            },
            &["display_name"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.display_name, "Acme Corp");
    assert_eq!(renamed.egress, stored_egress(&mut tenants).await);

    // The operator may; a malformed rule is INVALID_ARGUMENT naming it.
    let bad = tenants
        .update_tenant(update(
            v1::Tenant {
                egress: egress(&["127.0.0.1:6379", "10.0.0.1/8"], &[]),
                ..Default::default()
            },
            &["egress"],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        crate::support::violations(&bad),
        ["tenant.egress.allow[1]"],
        "{bad:?}"
    );
    let cleared = tenants
        .update_tenant(update(v1::Tenant::default(), &["egress"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.egress, None);
    let refused = test_inline(
        &mut client,
        "acme",
        inline(
            "redis",
            &[("host", "127.0.0.1"), ("port", &open.port().to_string())],
        ),
    )
    .await
    .unwrap_err();
    egress_refusal(&refused);
}

async fn stored_egress(tenants: &mut TenantServiceClient<Authed>) -> Option<v1::EgressPolicy> {
    tenants
        .get_tenant(v1::GetTenantRequest {
            name: "tenants/acme".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .egress
}

/// Another service on a port a test may reach (here an HTTP server on
/// loopback, allowed in `--dev`): no byte it sent comes back, for any of the
/// database providers, in any TLS mode.
#[tokio::test]
async fn a_foreign_services_bytes_never_come_back_through_the_server() {
    let server = Server::start_with_plugins(&[REDIS, POSTGRES, MYSQL]);
    server.create_tenant("acme").await;
    let foreign = foreign_server().to_string();
    let mut client = server.connections().await;
    for data_source in ["redis", "postgresql", "mysql"] {
        for mode in [v1::TlsMode::Disable, v1::TlsMode::Require] {
            let mut connection = inline(
                data_source,
                &[("host", "127.0.0.1"), ("port", &foreign), ("user", "app")],
            );
            if data_source == "redis" {
                connection.config = Some(config(&[("host", "127.0.0.1"), ("port", &foreign)]));
            }
            connection.tls = Some(v1::TlsConfig {
                mode: mode as i32,
                ..Default::default()
            });
            let answer = test_inline(&mut client, "acme", connection).await;
            let text = match answer {
                Ok(response) => {
                    assert!(!response.success, "{data_source} {mode:?}: {response:?}");
                    std::iter::once(response.message)
                        .chain(response.stages.into_iter().map(|stage| stage.message))
                        .collect::<Vec<_>>()
                        .join("\n")
                }
                Err(status) => status.message().to_owned(),
            };
            assert_eq!(
                quotes_foreign_reply(&text),
                None,
                "{data_source} {mode:?}: {text}"
            );
        }
    }
}
