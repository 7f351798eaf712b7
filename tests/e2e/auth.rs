//! Authentication, the tenant boundary, resolve and the audit log.

use std::future::Future;
use std::pin::Pin;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connvault::auth::Role;
use connvault::pb::v1;
use connvault::pb::v1::audit_service_client::AuditServiceClient;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use connvault::pb::v1::data_source_service_client::DataSourceServiceClient;
use connvault::pb::v1::tenant_service_client::TenantServiceClient;
use serde_json::json;
use tonic::Code;

use crate::support::{
    AUDIENCE, Authed, ISSUER, Server, TOKEN_SECRET, config, connection, create, token,
};

const CANARY: &str = "canary-audit-5d1e77";

fn now() -> i64 {
    connvault::auth::unix_now() as i64
}

fn claims() -> serde_json::Value {
    json!({
        "sub": "svc", "tenants": ["*"], "roles": ["admin", "reader"],
        "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "nbf": now() - 10, "iat": now() - 10,
    })
}

fn hs256(claims: &serde_json::Value, header: jsonwebtoken::Header, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

fn rs256(claims: &serde_json::Value, kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rs256-private.pem"
    ))
    .unwrap();
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

fn unsigned(alg: &str, claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

fn with(mut claims: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    claims[key] = value;
    claims
}

fn without(mut claims: serde_json::Value, key: &str) -> serde_json::Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

#[tokio::test]
async fn bad_tokens_are_all_the_same_unauthenticated() {
    let server = Server::start();
    let secret = TOKEN_SECRET.as_bytes();
    let hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let good = hs256(&claims(), hs.clone(), secret);
    let public_pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rs256-public.pem"
    ))
    .unwrap();
    let mut confused = hs.clone();
    confused.kid = Some("rs1".into());
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let tampered_body = URL_SAFE_NO_PAD.encode(with(claims(), "sub", json!("root")).to_string());

    let mut bad: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("garbage", Some("not-a-jwt".into())),
        (
            "tampered payload",
            Some(format!("{head}.{tampered_body}.{signature}")),
        ),
        (
            "HS256 signed with the RS256 public key (kid rs1)",
            Some(hs256(&claims(), confused, &public_pem)),
        ),
        (
            "HS256 signed with the RS256 public key (no kid)",
            Some(hs256(&claims(), hs.clone(), &public_pem)),
        ),
        (
            "wrong aud",
            Some(hs256(
                &with(claims(), "aud", json!("someone-else")),
                hs.clone(),
                secret,
            )),
        ),
        (
            "missing aud",
            Some(hs256(&without(claims(), "aud"), hs.clone(), secret)),
        ),
        (
            "wrong iss",
            Some(hs256(
                &with(claims(), "iss", json!("evil")),
                hs.clone(),
                secret,
            )),
        ),
        (
            "expired",
            Some(hs256(
                &with(claims(), "exp", json!(now() - 3600)),
                hs.clone(),
                secret,
            )),
        ),
        (
            "not yet valid",
            Some(hs256(
                &with(claims(), "nbf", json!(now() + 3600)),
                hs.clone(),
                secret,
            )),
        ),
        ("unknown kid", Some(rs256(&claims(), "no-such-key"))),
        (
            "wrong secret",
            Some(hs256(
                &claims(),
                hs.clone(),
                b"another-secret-another-secret-0123",
            )),
        ),
        (
            "over 16 KiB",
            Some(hs256(
                &with(claims(), "padding", json!("x".repeat(17 * 1024))),
                hs.clone(),
                secret,
            )),
        ),
    ];
    for alg in ["none", "None", "NONE", "nOnE"] {
        bad.push(("alg none", Some(unsigned(alg, &claims()))));
    }
    let mut messages = std::collections::BTreeSet::new();
    for (what, token) in bad {
        let mut client = DataSourceServiceClient::new(server.channel_as(token).await);
        let error = client
            .list_data_sources(v1::ListDataSourcesRequest::default())
            .await
            .expect_err(what);
        assert_eq!(error.code(), Code::Unauthenticated, "{what}: {error:?}");
        messages.insert(error.message().to_owned());
    }
    assert_eq!(
        messages.len(),
        1,
        "one message whatever was wrong: {messages:?}"
    );

    for (what, good) in [
        ("HS256", good),
        ("RS256 with kid rs1", rs256(&claims(), "rs1")),
    ] {
        let mut client = DataSourceServiceClient::new(server.channel_as(Some(good)).await);
        client
            .list_data_sources(v1::ListDataSourcesRequest::default())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    }
}

type Call = Box<
    dyn Fn(Authed, String) -> Pin<Box<dyn Future<Output = Result<(), tonic::Status>> + Send>>
        + Send
        + Sync,
>;

fn call<F, Fut>(f: F) -> Call
where
    F: Fn(Authed, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    Box::new(move |channel, target| Box::pin(f(channel, target)))
}

/// What each RPC is called on, given a connection name `target`
/// (tenant-level RPCs derive the tenant from it).
fn rpcs() -> Vec<(&'static str, &'static [Role], Call)> {
    fn tenant(target: &str) -> String {
        target.split("/connections/").next().unwrap().to_owned()
    }
    vec![
        (
            "GetConnection",
            &[Role::Reader, Role::Writer],
            call(|ch, t| async move {
                ConnectionServiceClient::new(ch)
                    .get_connection(v1::GetConnectionRequest { name: t })
                    .await
                    .map(drop)
            }),
        ),
        (
            "ListConnections",
            &[Role::Reader, Role::Writer],
            call(|ch, t| async move {
                ConnectionServiceClient::new(ch)
                    .list_connections(v1::ListConnectionsRequest {
                        parent: tenant(&t),
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            }),
        ),
        (
            "CreateConnection",
            &[Role::Writer],
            call(|ch, t| async move {
                // validate_only: checks everything, stores nothing, so the matrix stays repeatable.
                ConnectionServiceClient::new(ch)
                    .create_connection(v1::CreateConnectionRequest {
                        parent: tenant(&t),
                        connection: Some(connection("Matrix probe", "pw")),
                        validate_only: true,
                    })
                    .await
                    .map(drop)
            }),
        ),
        (
            "UpdateConnection",
            &[Role::Writer],
            call(|ch, t| async move {
                ConnectionServiceClient::new(ch)
                    .update_connection(v1::UpdateConnectionRequest {
                        connection: Some(v1::Connection {
                            name: t,
                            display_name: "Renamed".into(),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["display_name".into()],
                        }),
                        etag: "\"stale\"".into(),
                    })
                    .await
                    .map(drop)
            }),
        ),
        (
            "DeleteConnection",
            &[Role::Writer],
            call(|ch, t| async move {
                ConnectionServiceClient::new(ch)
                    .delete_connection(v1::DeleteConnectionRequest {
                        name: t,
                        etag: "\"stale\"".into(),
                    })
                    .await
                    .map(drop)
            }),
        ),
        (
            "BatchDeleteConnections",
            &[Role::Writer],
            call(|ch, t| async move {
                let missing = format!("{}/connections/{}", tenant(&t), uuid::Uuid::now_v7());
                ConnectionServiceClient::new(ch)
                    .batch_delete_connections(v1::BatchDeleteConnectionsRequest {
                        parent: tenant(&t),
                        names: vec![t, missing],
                    })
                    .await
                    .map(drop)
            }),
        ),
        (
            "TestConnection",
            &[Role::Writer],
            call(|ch, t| async move {
                ConnectionServiceClient::new(ch)
                    .test_connection(v1::TestConnectionRequest {
                        target: Some(v1::test_connection_request::Target::Name(t)),
                        parent: String::new(),
                        timeout_ms: 500,
                    })
                    .await
                    .map(drop)
            }),
        ),
        (
            "ResolveConnection",
            &[Role::Resolver],
            call(|ch, t| async move {
                ConnectionServiceClient::new(ch)
                    .resolve_connection(v1::ResolveConnectionRequest { name: t })
                    .await
                    .map(drop)
            }),
        ),
        (
            "GetTenant",
            &[Role::Reader, Role::Writer, Role::Admin],
            call(|ch, t| async move {
                TenantServiceClient::new(ch)
                    .get_tenant(v1::GetTenantRequest { name: tenant(&t) })
                    .await
                    .map(drop)
            }),
        ),
        (
            "DeleteTenant",
            &[Role::Admin],
            call(|ch, t| async move {
                TenantServiceClient::new(ch)
                    .delete_tenant(v1::DeleteTenantRequest {
                        name: tenant(&t),
                        force: false,
                    })
                    .await
                    .map(drop)
            }),
        ),
        (
            "ListAuditEvents",
            &[Role::Admin],
            call(|ch, t| async move {
                AuditServiceClient::new(ch)
                    .list_audit_events(v1::ListAuditEventsRequest {
                        parent: tenant(&t),
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            }),
        ),
    ]
}

/// The answer an allowed caller gets, by RPC, for an existing connection and a missing one.
fn allowed(rpc: &str, exists: bool) -> Code {
    match (rpc, exists) {
        ("UpdateConnection" | "DeleteConnection", true) => Code::Aborted,
        ("BatchDeleteConnections", _) => Code::NotFound,
        ("DeleteTenant", _) => Code::FailedPrecondition,
        ("ListConnections" | "CreateConnection" | "GetTenant" | "ListAuditEvents", _) => Code::Ok,
        (_, true) => Code::Ok,
        (_, false) => Code::NotFound,
    }
}

#[tokio::test]
async fn isolation_matrix() {
    let server = Server::start();
    for tenant in ["alpha", "beta"] {
        server.create_tenant(tenant).await;
    }
    let mut operator = server.connections().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut names = std::collections::HashMap::new();
    for tenant in ["alpha", "beta"] {
        let mut c = connection("Matrix", "pw");
        c.config = Some(config(&[("host", "127.0.0.1"), ("port", &port)]));
        names.insert(tenant, create(&mut operator, tenant, c).await.unwrap().name);
    }
    let missing = |tenant: &str| format!("tenants/{tenant}/connections/{}", uuid::Uuid::now_v7());
    let mut cells = 0;
    for (rpc, roles, run) in rpcs() {
        for role in [Role::Reader, Role::Writer, Role::Resolver, Role::Admin] {
            let token = token(&format!("alpha-{role:?}"), &["alpha"], &[role]);
            let channel = server.channel_as(Some(token)).await;
            let may = roles.contains(&role);
            let outcome = |result: Result<(), tonic::Status>| match result {
                Ok(()) => (Code::Ok, String::new()),
                Err(status) => (status.code(), status.message().to_owned()),
            };
            let own = outcome(run(channel.clone(), names["alpha"].clone()).await);
            let own_missing = outcome(run(channel.clone(), missing("alpha")).await);
            let other = outcome(run(channel.clone(), names["beta"].clone()).await);
            let other_missing = outcome(run(channel.clone(), missing("beta")).await);
            let expect = |exists| {
                if may {
                    allowed(rpc, exists)
                } else {
                    Code::PermissionDenied
                }
            };
            assert_eq!(
                own.0,
                expect(true),
                "{rpc} as {role:?} on its own tenant: {own:?}"
            );
            assert_eq!(
                own_missing.0,
                expect(false),
                "{rpc} as {role:?} on a missing connection: {own_missing:?}"
            );
            assert_eq!(
                other.0,
                Code::PermissionDenied,
                "{rpc} as {role:?} on tenant beta: {other:?}"
            );
            assert_eq!(
                other, other_missing,
                "{rpc} as {role:?}: beta's existing and missing answers differ"
            );
            cells += 4;
        }
    }
    eprintln!("isolation matrix: {cells} cells asserted");
    drop(listener);
}

#[tokio::test]
async fn resolve_returns_what_was_stored_and_the_uri_connects_to_postgres() {
    let pg = connvault_testkit::servers::Postgres::start(Default::default());
    let server = Server::start_with_plugins(&[(
        "connvault-plugin-postgres",
        "connvault_plugin_postgres",
        "postgres",
    )]);
    server.create_tenant("acme").await;
    let mut operator = server.connections().await;
    let password = format!("{CANARY}-{}", pg.password());
    pg.psql(&format!(
        "ALTER USER \"{}\" PASSWORD '{password}'",
        pg.user()
    ));
    let created = create(
        &mut operator,
        "acme",
        v1::Connection {
            display_name: "Warehouse".into(),
            data_source: "POSTGRESQL".into(),
            config: Some(config(&[
                ("host", "127.0.0.1"),
                ("port", &pg.port().to_string()),
                ("user", pg.user()),
                ("database", "postgres"),
            ])),
            secrets: [("password".to_owned(), password.clone())]
                .into_iter()
                .collect(),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    for role in [Role::Reader, Role::Writer] {
        let mut client = ConnectionServiceClient::new(
            server
                .channel_as(Some(token("app", &["acme"], &[role])))
                .await,
        );
        let denied = client
            .resolve_connection(v1::ResolveConnectionRequest {
                name: created.name.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            denied.code(),
            Code::PermissionDenied,
            "{role:?} cannot resolve"
        );
    }
    let mut resolver = ConnectionServiceClient::new(
        server
            .channel_as(Some(token("app", &["acme"], &[Role::Resolver])))
            .await,
    );
    let resolved = resolver
        .resolve_connection(v1::ResolveConnectionRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resolved.secrets,
        [("password".to_owned(), password.clone())]
            .into_iter()
            .collect()
    );
    let stored = resolved.connection.clone().unwrap();
    assert_eq!(stored.name, created.name);
    assert_eq!(stored.config, created.config);
    let uri = resolved.rendered.unwrap().uri;
    assert!(uri.starts_with("postgresql://"), "{uri}");
    let output = std::process::Command::new("psql")
        .arg(&uri)
        .args(["-tAc", "SELECT 40 + 2"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut audit = AuditServiceClient::new(
        server
            .channel_as(Some(crate::support::operator_token()))
            .await,
    );
    let events = audit
        .list_audit_events(v1::ListAuditEventsRequest {
            parent: "tenants/acme".into(),
            filter: "method=ResolveConnection".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let outcomes: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["PERMISSION_DENIED", "PERMISSION_DENIED", "OK"]);
    let ok = &events[2];
    assert_eq!(ok.principal, "app");
    assert_eq!(ok.resource, created.name);
    assert!(!ok.request_id.is_empty());
    let hmac = &ok.secret_hmacs["password"];
    assert_eq!(hmac.len(), 64, "an HMAC-SHA256 in hex");
    let created_event = audit
        .list_audit_events(v1::ListAuditEventsRequest {
            parent: "tenants/acme".into(),
            filter: "method=CreateConnection".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(
        &created_event[0].secret_hmacs["password"], hmac,
        "the same value gives the same HMAC"
    );

    let everything = audit
        .list_audit_events(v1::ListAuditEventsRequest {
            parent: "tenants/-".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !format!("{everything:?}").contains(CANARY),
        "ListAuditEvents carries the canary"
    );
    let file = server.audit_file_text();
    assert!(file.lines().count() >= 4, "{file}");
    assert!(file.contains("ResolveConnection"));
    assert!(!file.contains(CANARY), "the audit file carries the canary");
    assert!(
        !server.log_text().contains(CANARY),
        "the server log carries the canary"
    );
}

/// The tokens `--dev` printed: the admin one and the one for tenants/dev.
fn printed_dev_tokens(server: &Server) -> (String, String) {
    let lines = server.stdout.lock().unwrap().clone();
    let after = |heading: &str| {
        let index = lines
            .iter()
            .rposition(|line| line.starts_with(heading))
            .expect(heading);
        lines[index + 1].trim().to_owned()
    };
    (after("dev admin token"), after("dev token for tenants/dev"))
}

#[tokio::test]
async fn dev_mode_prints_the_same_working_tokens_across_restarts() {
    let mut server = Server::start();
    let (admin, dev) = printed_dev_tokens(&server);
    server.restart();
    assert_eq!(printed_dev_tokens(&server), (admin.clone(), dev.clone()));

    let mut as_dev = ConnectionServiceClient::new(server.channel_as(Some(dev.clone())).await);
    let created = create(&mut as_dev, "dev", connection("Dev DB", "pw"))
        .await
        .unwrap();
    as_dev
        .resolve_connection(v1::ResolveConnectionRequest { name: created.name })
        .await
        .expect("the dev token resolves in tenants/dev");
    let elsewhere = create(&mut as_dev, "acme", connection("Dev DB", "pw"))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), Code::PermissionDenied);
    let mut tenants = TenantServiceClient::new(server.channel_as(Some(dev)).await);
    let denied = tenants
        .create_tenant(v1::CreateTenantRequest {
            tenant_id: "acme".into(),
            tenant: None,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut tenants = TenantServiceClient::new(server.channel_as(Some(admin)).await);
    tenants
        .create_tenant(v1::CreateTenantRequest {
            tenant_id: "acme".into(),
            tenant: None,
        })
        .await
        .expect("the admin token creates tenants");
}

#[tokio::test]
async fn expired_audit_events_are_deleted_and_recent_ones_kept() {
    let server = Server::start_with(crate::support::Options {
        args: vec!["--audit-retention-secs".into(), "4".into()],
        ..Default::default()
    });
    server.create_tenant("acme").await;
    let writer = token("app", &["acme"], &[Role::Writer]);
    let mut connections = ConnectionServiceClient::new(server.channel_as(Some(writer)).await);
    let old = create(&mut connections, "acme", connection("Old", "pw"))
        .await
        .unwrap();
    let audit = AuditServiceClient::new(
        server
            .channel_as(Some(crate::support::operator_token()))
            .await,
    );
    let created = |mut audit: AuditServiceClient<Authed>| async move {
        audit
            .list_audit_events(v1::ListAuditEventsRequest {
                parent: "tenants/acme".into(),
                filter: "method=CreateConnection".into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .events
            .into_iter()
            .map(|event| event.resource)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        created(audit.clone()).await,
        std::slice::from_ref(&old.name)
    );

    // Poll until the pruner, checking every second, has taken the old event
    // (4 s old at the earliest); a loaded machine only makes that later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while created(audit.clone()).await.contains(&old.name) {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired event was never deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // A new event, far younger than the retention, is kept.
    let new = create(&mut connections, "acme", connection("New", "pw"))
        .await
        .unwrap();
    let left = created(audit.clone()).await;
    assert_eq!(left, [new.name], "the old event went, the new one stayed");
    assert!(
        server.log_text().contains("deleted expired audit events"),
        "pruning is logged"
    );
    // The connections themselves are untouched by audit retention.
    connections
        .get_connection(v1::GetConnectionRequest { name: old.name })
        .await
        .unwrap();
}

/// A JWKS file naming the fixture RSA key under `kid` (`n` and `e` of
/// `tests/fixtures/rs256-public.pem`, as `openssl rsa -pubin -modulus` gives them).
fn jwks_with(kid: &str) -> String {
    let mut jwk: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rs256-public.jwk.json"
    )))
    .unwrap();
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!("RS256");
    jwk["use"] = json!("sig");
    json!({ "keys": [jwk] }).to_string()
}

#[tokio::test]
async fn a_jwks_reload_revokes_a_token_already_seen() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("keys.jwks");
    std::fs::write(&jwks, jwks_with("j1")).unwrap();
    let server = Server::start_with(crate::support::Options {
        jwks_file: Some(jwks.clone()),
        ..Default::default()
    });
    let list = |token: String| {
        let server = &server;
        async move {
            TenantServiceClient::new(server.channel_as(Some(token)).await)
                .list_tenants(v1::ListTenantsRequest::default())
                .await
                .map(drop)
        }
    };
    let old = rs256(&claims(), "j1");
    // Twice: the second call is answered from the verified-token memory.
    list(old.clone()).await.unwrap();
    list(old.clone()).await.unwrap();

    std::fs::write(&jwks, jwks_with("j2")).unwrap();
    // The server looks at the file every 2 s; a loaded machine may take longer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let refused = loop {
        match list(old.clone()).await {
            Err(status) => break status,
            Ok(()) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Ok(()) => panic!("a token of a key removed from the JWKS still works"),
        }
    };
    assert_eq!(refused.code(), Code::Unauthenticated);
    list(rs256(&claims(), "j2"))
        .await
        .expect("the reloaded key verifies");
    assert!(
        server
            .log_text()
            .contains("reloaded token verification keys")
    );
}
