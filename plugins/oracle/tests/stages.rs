//! The Oracle test's stages against fake listeners: DNS, a closed port, a
//! silent server, TCPS with a test CA, and a peer that speaks HTTP. No real
//! Oracle listener is available here, and logging in is never attempted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use connvault_plugin_oracle::{NOT_SPOKEN, Oracle};
use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, TlsMode};
use connvault_testkit::fakes;
use connvault_testkit::harness::{CANARY, Harness, assert_stages};
use connvault_testkit::listeners::foreign_server;
use connvault_testkit::provider::{category, s, stage_status};
use connvault_testkit::servers::TestCa;

/// The Oracle provider under test, for the whole test process.
static ORACLE: LazyLock<Harness<Oracle>> = LazyLock::new(|| Harness::new(Oracle));

fn spec(port: u16) -> pb::ConnectionSpec {
    let mut spec = ORACLE.login(port, "app", CANARY);
    spec.config.insert("service_name".into(), s("sales"));
    spec
}

fn with_tls(port: u16, host: &str, tls: pb::Tls) -> pb::TestResponse {
    let mut spec = spec(port);
    spec.config.insert("host".into(), s(host));
    spec.tls = Some(tls);
    ORACLE.test(spec)
}

#[test]
fn unresolvable_host_is_dns() {
    ORACLE.check_unresolvable_host_is_dns(spec);
}

fn tcps(port: u16) -> pb::ConnectionSpec {
    let mut spec = spec(port);
    spec.tls = Some(pb::Tls {
        mode: TlsMode::Require as i32,
        ..Default::default()
    });
    spec
}

/// Another service on the port (an HTTP server): over TCPS the handshake
/// fails and its bytes never come back (over TCP it is not detected).
#[test]
fn a_foreign_servers_bytes_are_never_quoted() {
    ORACLE.check_foreign_server_is_not_quoted(&[TlsMode::Require, TlsMode::VerifyFull], spec);
}

/// Approved addresses are dialled instead of the host name; others are
/// refused unsent. TCPS, so that a reached listener that never answers is a
/// TIMEOUT.
#[test]
fn the_egress_grant_is_honoured() {
    ORACLE.check_egress_grant_is_honoured(tcps);
}

#[test]
fn closed_port_is_unreachable() {
    ORACLE.check_closed_port_is_unreachable(spec);
}

#[test]
fn silent_server_times_out_in_the_tls_handshake() {
    // Over plain TCP nothing waits for the server: only TCPS can time out.
    ORACLE.check_silent_server_times_out(&[TlsMode::Require, TlsMode::VerifyFull], spec);
}

#[test]
fn a_reachable_listener_passes_and_login_is_skipped_saying_why() {
    let port = foreign_server();
    let response = ORACLE.test(spec(port));
    assert!(response.success, "{response:#?}");
    assert_stages(
        &response,
        &[Stage::Resolve, Stage::Connect],
        StageStatus::Ok,
    );
    assert_stages(
        &response,
        &[Stage::Tls, Stage::Authenticate, Stage::Probe],
        StageStatus::Skipped,
    );
    let login = response
        .stages
        .iter()
        .find(|stage| stage.stage == Stage::Authenticate as i32)
        .unwrap();
    assert_eq!(login.message, NOT_SPOKEN);
}

#[test]
fn tcps_modes_against_a_tls_listener() {
    let ca = TestCa::new();
    let port = fakes::tls_server(&ca.server(&["localhost", "127.0.0.1"]));
    let trusted = pb::Tls {
        ca_pem: ca.ca_pem.clone(),
        ..Default::default()
    };
    for (mode, host) in [
        (TlsMode::Require, "127.0.0.1"),
        (TlsMode::VerifyCa, "127.0.0.1"),
        (TlsMode::VerifyFull, "localhost"),
    ] {
        let response = with_tls(
            port,
            host,
            pb::Tls {
                mode: mode as i32,
                ..trusted.clone()
            },
        );
        assert!(response.success, "{mode:?}: {response:#?}");
        assert_eq!(stage_status(&response, Stage::Tls), Some(StageStatus::Ok));
        assert_eq!(
            stage_status(&response, Stage::Authenticate),
            Some(StageStatus::Skipped)
        );
    }

    // The name is checked by verify-full only.
    let other_name = pb::Tls {
        server_name: "db.example.com".into(),
        ..trusted.clone()
    };
    let ca_only = with_tls(
        port,
        "127.0.0.1",
        pb::Tls {
            mode: TlsMode::VerifyCa as i32,
            ..other_name.clone()
        },
    );
    assert!(ca_only.success, "{ca_only:#?}");
    let mismatch = with_tls(
        port,
        "127.0.0.1",
        pb::Tls {
            mode: TlsMode::VerifyFull as i32,
            ..other_name
        },
    );
    assert_eq!(category(&mismatch), ErrorCategory::Tls, "{mismatch:#?}");

    // A CA that did not sign the listener's certificate.
    let stranger = pb::Tls {
        mode: TlsMode::VerifyFull as i32,
        ca_pem: TestCa::new().ca_pem,
        ..Default::default()
    };
    let untrusted = with_tls(port, "localhost", stranger);
    assert_eq!(category(&untrusted), ErrorCategory::Tls, "{untrusted:#?}");
    assert_eq!(
        stage_status(&untrusted, Stage::Tls),
        Some(StageStatus::Failed)
    );
    assert_stages(
        &untrusted,
        &[Stage::Authenticate, Stage::Probe],
        StageStatus::Skipped,
    );
    assert!(!format!("{untrusted:?}").contains(CANARY));
}

#[test]
fn tcps_to_a_peer_that_speaks_http_fails_tls() {
    let port = foreign_server();
    let response = with_tls(
        port,
        "127.0.0.1",
        pb::Tls {
            mode: TlsMode::Require as i32,
            ..Default::default()
        },
    );
    assert_eq!(category(&response), ErrorCategory::Tls, "{response:#?}");
    assert!(
        !format!("{response:?}").contains("Bad Request"),
        "remote bytes echoed"
    );
}
