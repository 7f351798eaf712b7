//! Validation and rendering of Redis connections: pure, no server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use connvault_plugin_redis::Redis;
use connvault_plugin_sdk::Provider;
use connvault_plugin_sdk::pb::{self, TlsMode};
use connvault_testkit::harness::Harness;
use connvault_testkit::provider::{i, s};

/// The Redis provider under test, for the whole test process.
static REDIS: LazyLock<Harness<Redis>> =
    LazyLock::new(|| Harness::new(Redis).user_field("username"));

#[test]
fn every_bad_field_is_reported_at_once() {
    let spec = REDIS.spec(
        vec![("port", i(0)), ("database", i(-1)), ("colour", s("blue"))],
        None,
    );
    assert_eq!(
        REDIS.violations(spec),
        [
            "config.colour",
            "config.database",
            "config.host",
            "config.port"
        ]
    );
}

#[test]
fn cross_field_rules_are_reported_together() {
    let mut spec = REDIS.spec(
        vec![("host", s("cache:6379")), ("username", s("app"))],
        None,
    );
    spec.tls = Some(pb::Tls {
        mode: TlsMode::Disable as i32,
        server_name: "cache.example".into(),
        ..Default::default()
    });
    assert_eq!(
        REDIS.violations(spec),
        ["config.host", "secrets.password", "tls.mode"]
    );
}

#[test]
fn render_percent_encodes_and_redacts() {
    let canary = "p@ss:w/rd CANARY";
    let mut spec = REDIS.spec(
        vec![
            ("host", s("cache.example")),
            ("username", s("app")),
            ("database", i(2)),
        ],
        Some(canary),
    );
    spec.tls = Some(pb::Tls {
        mode: TlsMode::VerifyFull as i32,
        ..Default::default()
    });
    let connection = REDIS.connection(spec);
    let shown = Redis.render(&connection, true).unwrap();
    assert_eq!(
        shown.uri,
        "rediss://app:p%40ss%3Aw%2Frd%20CANARY@cache.example:6379/2"
    );
    assert_eq!(shown.env["REDISCLI_AUTH"], canary);

    let hidden = Redis.render(&connection, false).unwrap();
    assert!(!format!("{hidden:?}").contains("CANARY"));
    assert_eq!(hidden.uri, "rediss://app:REDACTED@cache.example:6379/2");
}
