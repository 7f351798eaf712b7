//! The Redis provider against real, throwaway Redis servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use connvault_plugin_redis::Redis;
use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, TlsMode};
use connvault_plugin_sdk::{Deadline, Provider, block_on};
use connvault_testkit::servers::{self, RedisOptions, TestCa};

#[test]
fn plain_server_stages_and_failure_categories() {
    let server = servers::Redis::start(RedisOptions::default());

    let ok = test(local(server.port(), server.password()));
    assert!(ok.success, "{ok:#?}");
    for stage in [
        Stage::Resolve,
        Stage::Connect,
        Stage::Authenticate,
        Stage::Probe,
    ] {
        assert_eq!(
            stage_status(&ok, stage),
            Some(StageStatus::Ok),
            "{stage:?} in {ok:#?}"
        );
    }
    assert_eq!(stage_status(&ok, Stage::Tls), Some(StageStatus::Skipped));
    assert!(
        ok.server_version.starts_with(char::is_numeric),
        "{}",
        ok.server_version
    );
    eprintln!("redis: successful test took {} us", ok.duration_us);

    let mut acl = local(server.port(), server.acl_password());
    acl.config.insert("username".into(), s(server.acl_user()));
    acl.config.insert("database".into(), i(3));
    assert!(test(acl).success);

    let canary = "CANARY-pw-7f3a";
    let wrong = test(local(server.port(), canary));
    assert_eq!(category(&wrong), ErrorCategory::Auth, "{wrong:#?}");
    assert_eq!(
        stage_status(&wrong, Stage::Authenticate),
        Some(StageStatus::Failed)
    );
    assert!(!format!("{wrong:?}").contains(canary));
    assert!(!server.log().contains(canary));

    // No password at all: the server answers NOAUTH to PING.
    let mut anonymous = local(server.port(), "");
    anonymous.secrets.clear();
    assert_eq!(category(&test(anonymous)), ErrorCategory::Auth);

    let mut tls_required = local(server.port(), server.password());
    tls_required.tls = Some(pb::Tls {
        mode: TlsMode::Require as i32,
        ..Default::default()
    });
    let no_tls = test(tls_required);
    assert_eq!(category(&no_tls), ErrorCategory::Tls, "{no_tls:#?}");
    assert_eq!(stage_status(&no_tls, Stage::Tls), Some(StageStatus::Failed));
}

#[test]
fn unresolvable_host_is_dns() {
    let mut spec = local(6379, "CANARY-pw-7f3a");
    spec.config.insert("host".into(), s("nonexistent.invalid"));
    let response = test(spec);
    assert_eq!(category(&response), ErrorCategory::Dns, "{response:#?}");
    assert_eq!(
        stage_status(&response, Stage::Probe),
        Some(StageStatus::Skipped)
    );
    assert!(!format!("{response:?}").contains("CANARY"));
}

#[test]
fn closed_port_is_unreachable() {
    let response = test(local(closed_port(), "CANARY-pw-7f3a"));
    assert_eq!(
        category(&response),
        ErrorCategory::Unreachable,
        "{response:#?}"
    );
    assert!(!format!("{response:?}").contains("CANARY"));
}

#[test]
fn silent_server_times_out_within_the_deadline() {
    let port = silent_server();
    for mode in [TlsMode::Disable, TlsMode::Require] {
        let mut spec = local(port, "CANARY-pw-7f3a");
        spec.tls = Some(pb::Tls {
            mode: mode as i32,
            ..Default::default()
        });
        let started = Instant::now();
        let response = Redis
            .test(&connection(spec), Deadline::from_millis(800))
            .unwrap();
        let took = started.elapsed();
        assert_eq!(
            category(&response),
            ErrorCategory::Timeout,
            "{mode:?}: {response:#?}"
        );
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }
}

#[test]
fn tls_server() {
    let ca = TestCa::new();
    let server = servers::Redis::start(RedisOptions {
        tls: Some(ca.server_files()),
    });
    let with_tls = |mode: TlsMode, host: &str, ca_pem: &str| {
        let mut spec = local(server.port(), server.password());
        spec.config.insert("host".into(), s(host));
        spec.tls = Some(pb::Tls {
            mode: mode as i32,
            ca_pem: ca_pem.to_owned(),
            ..Default::default()
        });
        test(spec)
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
    let connection = connection(local(server.port(), server.password()));
    let found = Redis
        .discover(
            &connection,
            &pb::DiscoverRequest::default(),
            Deadline::from_millis(5000),
        )
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

    let bounded = Redis
        .discover(
            &connection,
            &pb::DiscoverRequest {
                max_schemas: 1,
                ..Default::default()
            },
            Deadline::from_millis(5000),
        )
        .unwrap();
    assert_eq!(bounded.schemas.len(), 1);
    assert!(bounded.truncated);
}

#[test]
fn rendered_uri_works_with_real_clients() {
    let server = servers::Redis::start(RedisOptions::default());
    let mut spec = local(server.port(), server.acl_password());
    spec.config.insert("username".into(), s(server.acl_user()));
    spec.config.insert("database".into(), i(2));
    let rendered = Redis.render(&connection(spec), true).unwrap();

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
