//! The MongoDB test's stages against fake listeners: DNS (a host and an SRV
//! name), a closed port, a silent server, a peer that speaks HTTP, and a TLS
//! listener with a test CA (right CA, wrong CA, wrong name). No MongoDB
//! server is available here; see `server.rs` for the real-server tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;
use std::time::Duration;

use connvault_plugin_mongodb::MongoDb;
use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, TlsMode, value::Kind};
use connvault_testkit::fakes;
use connvault_testkit::harness::{CANARY, Harness, assert_stages};
use connvault_testkit::listeners::foreign_server;
use connvault_testkit::provider::{category, s, stage_status};
use connvault_testkit::servers::TestCa;

/// The MongoDB provider under test, for the whole test process.
static MONGO: LazyLock<Harness<MongoDb>> = LazyLock::new(|| Harness::new(MongoDb));

fn spec(port: u16) -> pb::ConnectionSpec {
    MONGO.login(port, "app", CANARY)
}

#[test]
fn unresolvable_host_is_dns() {
    MONGO.check_unresolvable_host_is_dns(spec);
}

#[test]
fn an_srv_name_without_records_is_dns() {
    let mut spec = MONGO.spec(
        vec![
            ("host", s("nonexistent.invalid")),
            (
                "srv",
                pb::Value {
                    kind: Some(Kind::BoolValue(true)),
                },
            ),
            ("user", s("app")),
        ],
        Some(CANARY),
    );
    spec.tls = Some(pb::Tls {
        mode: TlsMode::VerifyFull as i32,
        ..Default::default()
    });
    let response = MONGO.test(spec);
    assert!(
        matches!(
            category(&response),
            ErrorCategory::Dns | ErrorCategory::Timeout
        ),
        "{response:#?}"
    );
    assert_eq!(
        stage_status(&response, Stage::Resolve),
        Some(StageStatus::Failed)
    );
}

/// Another service on the port (an HTTP server): its bytes never come back.
#[test]
fn a_foreign_servers_bytes_are_never_quoted() {
    MONGO.check_foreign_server_is_not_quoted(
        &[TlsMode::Disable, TlsMode::Require, TlsMode::VerifyFull],
        spec,
    );
}

/// Approved addresses are dialled instead of the host name; others are refused unsent.
#[test]
fn the_egress_grant_is_honoured() {
    MONGO.check_egress_grant_is_honoured(spec);
}

#[test]
fn closed_port_is_unreachable() {
    MONGO.check_closed_port_is_unreachable(spec);
}

#[test]
fn silent_server_times_out_within_the_deadline() {
    MONGO.check_silent_server_times_out(&[TlsMode::Disable, TlsMode::Require], spec);
}

#[test]
fn a_peer_that_speaks_http_is_a_protocol_error() {
    let response = MONGO.test(spec(foreign_server()));
    assert_eq!(
        category(&response),
        ErrorCategory::Protocol,
        "{response:#?}"
    );
    assert_eq!(
        stage_status(&response, Stage::Authenticate),
        Some(StageStatus::Failed)
    );
    assert!(!format!("{response:?}").contains("Bad Request"));
}

#[test]
fn tls_against_a_listener_with_a_test_ca() {
    let ca = TestCa::new();
    let port = fakes::tls_server(&ca.server(&["localhost"]));
    let run = |host: &str, tls: pb::Tls| {
        let mut spec = spec(port);
        spec.config.insert("host".into(), s(host));
        spec.tls = Some(tls);
        // The listener completes TLS, then never answers isMaster.
        MONGO.timed_test(spec, Duration::from_millis(1500)).0
    };
    let trusted = |mode: TlsMode| pb::Tls {
        mode: mode as i32,
        ca_pem: ca.ca_pem.clone(),
        ..Default::default()
    };
    let full = run("localhost", trusted(TlsMode::VerifyFull));
    assert_eq!(
        stage_status(&full, Stage::Tls),
        Some(StageStatus::Ok),
        "{full:#?}"
    );
    assert_eq!(category(&full), ErrorCategory::Timeout, "{full:#?}");
    let insecure = run(
        "127.0.0.1",
        pb::Tls {
            mode: TlsMode::Require as i32,
            ..Default::default()
        },
    );
    assert_eq!(
        stage_status(&insecure, Stage::Tls),
        Some(StageStatus::Ok),
        "{insecure:#?}"
    );

    // The certificate names localhost only.
    let wrong_name = run("127.0.0.1", trusted(TlsMode::VerifyFull));
    assert_eq!(category(&wrong_name), ErrorCategory::Tls, "{wrong_name:#?}");
    // A CA that did not sign it.
    let stranger = pb::Tls {
        mode: TlsMode::VerifyFull as i32,
        ca_pem: TestCa::new().ca_pem,
        ..Default::default()
    };
    let untrusted = run("localhost", stranger);
    assert_eq!(category(&untrusted), ErrorCategory::Tls, "{untrusted:#?}");
    assert_stages(
        &untrusted,
        &[Stage::Authenticate, Stage::Probe],
        StageStatus::Skipped,
    );
    assert!(!format!("{untrusted:?}").contains(CANARY));
}
