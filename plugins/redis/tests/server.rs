//! The Redis provider against real, throwaway Redis servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::LazyLock;

use connvault_plugin_redis::Redis;
use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, TlsMode};
use connvault_plugin_sdk::{Provider, block_on};
use connvault_testkit::harness::{CANARY, Harness, assert_stages};
use connvault_testkit::provider::{category, i, s, stage_status};
use connvault_testkit::servers::{self, RedisOptions, TestCa};

/// The Redis provider under test, for the whole test process.
static REDIS: LazyLock<Harness<Redis>> =
    LazyLock::new(|| Harness::new(Redis).user_field("username"));

#[test]
fn plain_server_stages_and_failure_categories() {
    let server = servers::Redis::start(RedisOptions::default());

    let ok = REDIS.test(REDIS.local(server.port(), server.password()));
    assert!(ok.success, "{ok:#?}");
    assert_stages(
        &ok,
        &[
            Stage::Resolve,
            Stage::Connect,
            Stage::Authenticate,
            Stage::Probe,
        ],
        StageStatus::Ok,
    );
    assert_eq!(stage_status(&ok, Stage::Tls), Some(StageStatus::Skipped));
    assert!(
        ok.server_version.starts_with(char::is_numeric),
        "{}",
        ok.server_version
    );
    eprintln!("redis: successful test took {} us", ok.duration_us);

    let mut acl = REDIS.local(server.port(), server.acl_password());
    acl.config.insert("username".into(), s(server.acl_user()));
    acl.config.insert("database".into(), i(3));
    assert!(REDIS.test(acl).success);

    let canary = CANARY;
    let wrong = REDIS.test(REDIS.local(server.port(), canary));
    assert_eq!(category(&wrong), ErrorCategory::Auth, "{wrong:#?}");
    assert_eq!(
        stage_status(&wrong, Stage::Authenticate),
        Some(StageStatus::Failed)
    );
    assert!(!format!("{wrong:?}").contains(canary));
    assert!(!server.log().contains(canary));

    // No password at all: the server answers NOAUTH to PING.
    let mut anonymous = REDIS.local(server.port(), "");
    anonymous.secrets.clear();
    assert_eq!(category(&REDIS.test(anonymous)), ErrorCategory::Auth);

    let mut tls_required = REDIS.local(server.port(), server.password());
    tls_required.tls = Some(pb::Tls {
        mode: TlsMode::Require as i32,
        ..Default::default()
    });
    let no_tls = REDIS.test(tls_required);
    assert_eq!(category(&no_tls), ErrorCategory::Tls, "{no_tls:#?}");
    assert_eq!(stage_status(&no_tls, Stage::Tls), Some(StageStatus::Failed));
}

#[test]
fn unresolvable_host_is_dns() {
    REDIS.check_unresolvable_host_is_dns(|port| REDIS.local(port, CANARY));
}

/// Another service on the port (an HTTP server): its bytes never come back.
#[test]
fn a_foreign_servers_bytes_are_never_quoted() {
    REDIS.check_foreign_server_is_not_quoted(
        &[TlsMode::Disable, TlsMode::Require, TlsMode::VerifyFull],
        |port| REDIS.local(port, CANARY),
    );
}

/// Approved addresses are dialled instead of the host name; others are refused unsent.
#[test]
fn the_egress_grant_is_honoured() {
    REDIS.check_egress_grant_is_honoured(|port| REDIS.local(port, CANARY));
}

#[test]
fn closed_port_is_unreachable() {
    REDIS.check_closed_port_is_unreachable(|port| REDIS.local(port, CANARY));
}

#[test]
fn silent_server_times_out_within_the_deadline() {
    REDIS.check_silent_server_times_out(&[TlsMode::Disable, TlsMode::Require], |port| {
        REDIS.local(port, CANARY)
    });
}

#[test]
fn tls_server() {
    let ca = TestCa::new();
    let server = servers::Redis::start(RedisOptions {
        tls: Some(ca.server_files()),
    });
    let with_tls = |mode: TlsMode, host: &str, ca_pem: &str| {
        let mut spec = REDIS.local(server.port(), server.password());
        spec.config.insert("host".into(), s(host));
        spec.tls = Some(pb::Tls {
            mode: mode as i32,
            ca_pem: ca_pem.to_owned(),
            ..Default::default()
        });
        REDIS.test(spec)
    };
    for (mode, host) in [
        (TlsMode::Require, "127.0.0.1"),
        (TlsMode::VerifyFull, "localhost"),
    ] {
        let response = with_tls(mode, host, &ca.ca_pem);
        assert!(response.success, "{mode:?}: {response:#?}");
        assert_eq!(stage_status(&response, Stage::Tls), Some(StageStatus::Ok));
    }
    let untrusted = with_tls(TlsMode::VerifyFull, "localhost", &TestCa::new().ca_pem);
    assert_eq!(category(&untrusted), ErrorCategory::Tls, "{untrusted:#?}");
}

#[test]
fn discover_summarises_the_keyspace() {
    let server = servers::Redis::start(RedisOptions::default());
    server.cli(0, &["MSET", "a", "1", "b", "2", "c", "3"]);
    server.cli(5, &["SET", "x", "1"]);
    let connection = REDIS.connection(REDIS.local(server.port(), server.password()));
    let found = REDIS
        .discover(&connection, &pb::DiscoverRequest::default())
        .unwrap();
    let summary: Vec<(String, Option<i64>)> = found
        .schemas
        .iter()
        .map(|schema| (schema.name.clone(), schema.tables[0].estimated_rows))
        .collect();
    assert_eq!(
        summary,
        [("db0".to_owned(), Some(3)), ("db5".to_owned(), Some(1))]
    );
    assert!(!found.truncated);

    let bounded = REDIS
        .discover(
            &connection,
            &pb::DiscoverRequest {
                max_schemas: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(bounded.schemas.len(), 1);
    assert!(bounded.truncated);
}

#[test]
fn rendered_uri_works_with_real_clients() {
    let server = servers::Redis::start(RedisOptions::default());
    let mut spec = REDIS.local(server.port(), server.acl_password());
    spec.config.insert("username".into(), s(server.acl_user()));
    spec.config.insert("database".into(), i(2));
    let rendered = Redis.render(&REDIS.connection(spec), true).unwrap();

    let uri = rendered.uri.clone();
    let who = block_on(async move {
        let client = redis::Client::open(uri.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("ACL")
            .arg("WHOAMI")
            .query_async::<String>(&mut conn)
            .await
            .unwrap()
    })
    .unwrap();
    assert_eq!(who, server.acl_user());

    let output = Command::new(servers::find_binary("redis-cli"))
        .args(["--no-auth-warning", "-u", &rendered.uri, "ACL", "WHOAMI"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "redis-cli: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        server.acl_user()
    );
}
