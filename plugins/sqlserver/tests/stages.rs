//! The SQL Server test's stages against fake listeners: DNS, a closed port, a
//! silent server, a peer that speaks HTTP, and a fake TDS front door that
//! answers the pre-login, runs TLS in pre-login packets with a test CA, reads
//! tiberius's LOGIN7 and refuses it (see `fake/mod.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake;

use std::sync::LazyLock;
use std::time::Duration;

use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, TlsMode};
use connvault_plugin_sqlserver::SqlServer;
use connvault_testkit::harness::{CANARY, Harness, assert_stages};
use connvault_testkit::listeners::foreign_server;
use connvault_testkit::provider::{category, s, stage_status};
use connvault_testkit::servers::TestCa;
use fake::{ENCRYPT_NOT_SUP, ENCRYPT_ON, ENCRYPT_REQ, Options};

/// The SQL Server provider under test, for the whole test process.
static MSSQL: LazyLock<Harness<SqlServer>> = LazyLock::new(|| Harness::new(SqlServer));

fn spec(port: u16) -> pb::ConnectionSpec {
    MSSQL.login(port, "app", CANARY)
}

fn with_tls(port: u16, host: &str, tls: pb::Tls) -> pb::TestResponse {
    let mut spec = spec(port);
    spec.config.insert("host".into(), s(host));
    spec.tls = Some(tls);
    MSSQL.test(spec)
}

fn mode(mode: TlsMode) -> pb::Tls {
    pb::Tls {
        mode: mode as i32,
        ..Default::default()
    }
}

fn no_secret_text(response: &pb::TestResponse) {
    let text = format!("{response:?}");
    assert!(!text.contains(CANARY), "the password came back: {text}");
    assert!(
        !text.contains("server-text"),
        "the server's text was echoed: {text}"
    );
}

#[test]
fn unresolvable_host_is_dns() {
    MSSQL.check_unresolvable_host_is_dns(spec);
}

/// Another service on the port (an HTTP server): its bytes never come back.
#[test]
fn a_foreign_servers_bytes_are_never_quoted() {
    MSSQL.check_foreign_server_is_not_quoted(
        &[TlsMode::Disable, TlsMode::Require, TlsMode::VerifyFull],
        spec,
    );
}

/// Approved addresses are dialled instead of the host name; others are refused unsent.
#[test]
fn the_egress_grant_is_honoured() {
    MSSQL.check_egress_grant_is_honoured(spec);
}

#[test]
fn closed_port_is_unreachable() {
    MSSQL.check_closed_port_is_unreachable(spec);
}

#[test]
fn silent_server_times_out_within_the_deadline() {
    MSSQL.check_silent_server_times_out(&[TlsMode::Disable, TlsMode::Require], spec);
}

#[test]
fn a_peer_that_speaks_http_is_a_protocol_error() {
    let port = foreign_server();
    let plain = MSSQL.test(spec(port));
    assert_eq!(category(&plain), ErrorCategory::Protocol, "{plain:#?}");
    assert_eq!(
        stage_status(&plain, Stage::Authenticate),
        Some(StageStatus::Failed)
    );
    let encrypted = with_tls(port, "127.0.0.1", mode(TlsMode::Require));
    assert_eq!(
        category(&encrypted),
        ErrorCategory::Protocol,
        "{encrypted:#?}"
    );
    assert_eq!(
        stage_status(&encrypted, Stage::Tls),
        Some(StageStatus::Failed)
    );
    assert!(!format!("{encrypted:?}").contains("Bad Request"));
}

#[test]
fn tls_modes_against_a_tds_server_with_a_test_ca() {
    let ca = TestCa::new();
    let (port, logins) = fake::start(Options {
        encryption: ENCRYPT_ON,
        certificate: Some(ca.server(&["localhost", "127.0.0.1"])),
        wrong_instance: false,
    });
    let trusted = |mode: TlsMode| pb::Tls {
        mode: mode as i32,
        ca_pem: ca.ca_pem.clone(),
        ..Default::default()
    };
    for (tls_mode, host) in [
        (TlsMode::Prefer, "127.0.0.1"),
        (TlsMode::Require, "127.0.0.1"),
        (TlsMode::VerifyCa, "127.0.0.1"),
        (TlsMode::VerifyFull, "localhost"),
    ] {
        let response = with_tls(port, host, trusted(tls_mode));
        // TLS held, and tiberius's login crossed it to be refused: AUTH.
        assert_eq!(
            stage_status(&response, Stage::Tls),
            Some(StageStatus::Ok),
            "{tls_mode:?}: {response:#?}"
        );
        assert_eq!(
            category(&response),
            ErrorCategory::Auth,
            "{tls_mode:?}: {response:#?}"
        );
        assert_stages(
            &response,
            &[Stage::Probe, Stage::Authorize],
            StageStatus::Skipped,
        );
        no_secret_text(&response);
        let login = logins.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(login.encrypted);
        assert_eq!(
            (login.user.as_str(), login.password.as_str()),
            ("app", CANARY)
        );
    }

    // The name is checked by verify-full only.
    let other_name = |tls_mode: TlsMode| pb::Tls {
        server_name: "db.example.com".into(),
        ..trusted(tls_mode)
    };
    let ca_only = with_tls(port, "127.0.0.1", other_name(TlsMode::VerifyCa));
    assert_eq!(
        stage_status(&ca_only, Stage::Tls),
        Some(StageStatus::Ok),
        "{ca_only:#?}"
    );
    let mismatch = with_tls(port, "127.0.0.1", other_name(TlsMode::VerifyFull));
    assert_eq!(category(&mismatch), ErrorCategory::Tls, "{mismatch:#?}");
    assert_eq!(
        stage_status(&mismatch, Stage::Tls),
        Some(StageStatus::Failed)
    );

    // A CA that did not sign the server's certificate: nothing is sent after.
    while logins.try_recv().is_ok() {}
    let stranger = pb::Tls {
        mode: TlsMode::VerifyFull as i32,
        ca_pem: TestCa::new().ca_pem,
        ..Default::default()
    };
    let untrusted = with_tls(port, "localhost", stranger);
    assert_eq!(category(&untrusted), ErrorCategory::Tls, "{untrusted:#?}");
    assert_stages(
        &untrusted,
        &[Stage::Authenticate, Stage::Probe],
        StageStatus::Skipped,
    );
    assert!(
        logins.recv_timeout(Duration::from_millis(500)).is_err(),
        "a login reached an untrusted server"
    );
    no_secret_text(&untrusted);
}

#[test]
fn encryption_the_server_cannot_give_or_insists_on() {
    // No TLS at the server: `require` fails, `prefer` goes on in plain text.
    let (port, logins) = fake::start(Options {
        encryption: ENCRYPT_NOT_SUP,
        certificate: None,
        wrong_instance: false,
    });
    let required = with_tls(port, "127.0.0.1", mode(TlsMode::Require));
    assert_eq!(category(&required), ErrorCategory::Tls, "{required:#?}");
    let preferred = with_tls(port, "127.0.0.1", mode(TlsMode::Prefer));
    assert_eq!(category(&preferred), ErrorCategory::Auth, "{preferred:#?}");
    let login = logins.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(!login.encrypted);

    // A server that requires encryption, with TLS disabled here.
    let ca = TestCa::new();
    let (port, _) = fake::start(Options {
        encryption: ENCRYPT_REQ,
        certificate: Some(ca.server(&["localhost"])),
        wrong_instance: false,
    });
    let disabled = MSSQL.test(spec(port));
    assert_eq!(category(&disabled), ErrorCategory::Tls, "{disabled:#?}");
    assert_eq!(
        stage_status(&disabled, Stage::Tls),
        Some(StageStatus::Skipped)
    );
    assert_eq!(
        stage_status(&disabled, Stage::Authenticate),
        Some(StageStatus::Failed)
    );
}

#[test]
fn a_login_carries_the_connection_settings() {
    let (port, logins) = fake::start(Options {
        encryption: ENCRYPT_NOT_SUP,
        certificate: None,
        wrong_instance: false,
    });
    let mut spec = spec(port);
    spec.config.insert("database".into(), s("sales"));
    spec.config
        .insert("application_name".into(), s("reporting"));
    spec.config
        .insert("application_intent".into(), s("readonly"));
    let response = MSSQL.test(spec);
    assert_eq!(category(&response), ErrorCategory::Auth, "{response:#?}");
    let login = logins.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(login.database, "sales");
    assert_eq!(login.app_name, "reporting");
    assert_eq!(login.server_name, "127.0.0.1");
    assert!(login.read_only);
}

#[test]
fn a_server_that_is_another_instance_is_a_config_error() {
    let (port, _) = fake::start(Options {
        encryption: ENCRYPT_NOT_SUP,
        certificate: None,
        wrong_instance: true,
    });
    let mut spec = spec(port);
    spec.config.insert("instance_name".into(), s("SALES"));
    let response = MSSQL.test(spec);
    assert_eq!(category(&response), ErrorCategory::Config, "{response:#?}");
}
