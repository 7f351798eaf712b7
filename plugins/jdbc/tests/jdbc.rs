//! The JDBC provider: URL validation, reachability test, render.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::LazyLock;
use std::time::Duration;

use connvault_plugin_jdbc::{Jdbc, NOT_SPOKEN};
use connvault_plugin_sdk::Provider;
use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus};
use connvault_testkit::harness::Harness;
use connvault_testkit::listeners::Recorder;
use connvault_testkit::provider::{s, stage_status};

/// The JDBC provider under test, for the whole test process.
static JDBC: LazyLock<Harness<Jdbc>> = LazyLock::new(|| Harness::new(Jdbc));

/// A `jdbc` spec from string config pairs and an optional password.
fn spec(config: &[(&str, &str)], password: Option<&str>) -> pb::ConnectionSpec {
    let config = config
        .iter()
        .map(|(name, value)| (*name, s(value)))
        .collect();
    JDBC.spec(config, password)
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let bad = spec(
        &[
            (
                "jdbc_url",
                "jdbc:postgresql://db.example/app?sslmode=disable&password=x",
            ),
            ("enforce_ssl", "true"),
            (
                "secret_reference",
                "arn:aws:secretsmanager:eu-west-1:1:secret:x",
            ),
            ("custom_certificate", "not a pem"),
            ("driver_jar_uri", "ftp://jars/driver.jar"),
        ],
        Some("pw"),
    );
    assert_eq!(
        JDBC.violations(bad),
        [
            "config.custom_certificate",
            "config.driver_class_name",
            "config.driver_jar_uri",
            "config.enforce_ssl",
            "config.jdbc_url",
            "config.secret_reference",
        ]
    );
    assert_eq!(
        JDBC.violations(spec(&[("jdbc_url", "postgres://db/app")], None)),
        ["config.jdbc_url"]
    );
    // Schema-level problems (an unknown field) come from the SDK's check, before these rules.
    assert_eq!(
        JDBC.violations(spec(
            &[("jdbc_url", "jdbc:mysql://db/app"), ("colour", "blue")],
            None
        )),
        ["config.colour"]
    );
    assert!(
        JDBC.violations(spec(
            &[("jdbc_url", "jdbc:mysql://db.example:3306/app")],
            Some("pw")
        ))
        .is_empty()
    );
}

#[test]
fn test_checks_reachability_and_says_what_it_does_not_check() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("jdbc:postgresql://127.0.0.1:{port}/app");
    let ok = JDBC.test(spec(&[("jdbc_url", &url)], Some("CANARY-pw")));
    assert!(ok.success, "{ok:#?}");
    assert_eq!(stage_status(&ok, Stage::Resolve), Some(StageStatus::Ok));
    assert_eq!(stage_status(&ok, Stage::Connect), Some(StageStatus::Ok));
    assert_eq!(
        stage_status(&ok, Stage::Authenticate),
        Some(StageStatus::Skipped)
    );
    assert!(ok.stages.iter().any(|stage| stage.message == NOT_SPOKEN));
    eprintln!("jdbc: successful test took {} us", ok.duration_us);
    drop(listener);

    let closed = JDBC.test(spec(&[("jdbc_url", &url)], Some("CANARY-pw")));
    assert_eq!(
        closed.error_category,
        ErrorCategory::Unreachable as i32,
        "{closed:#?}"
    );
    assert!(!format!("{closed:?}").contains("CANARY"));

    let dns = JDBC.test(spec(
        &[("jdbc_url", "jdbc:mysql://nonexistent.invalid/app")],
        Some("CANARY-pw"),
    ));
    assert_eq!(dns.error_category, ErrorCategory::Dns as i32, "{dns:#?}");
    assert!(!format!("{dns:?}").contains("CANARY"));
}

/// The URL's host is the target `validate` reports, and `test` dials the
/// address the host approved for it instead of resolving the name (here a
/// name that does not resolve), and nothing else.
#[test]
fn the_urls_host_is_reported_and_the_grant_is_honoured() {
    let pinned = Recorder::start();
    let url = format!("jdbc:postgresql://pinned.invalid:{}/app", pinned.port());
    let connection = JDBC.connection(spec(&[("jdbc_url", &url)], None));
    let targets = Jdbc.targets(&connection).unwrap();
    assert_eq!(
        targets,
        [pb::NetworkTarget {
            field: "config.jdbc_url".into(),
            host: "pinned.invalid".into(),
            port: u32::from(pinned.port()),
        }]
    );
    let grant = pb::EgressGrant {
        approved: vec![pb::ApprovedTarget {
            host: "pinned.invalid".into(),
            port: u32::from(pinned.port()),
            addresses: vec!["127.0.0.1".into()],
            dial_port: 0,
        }],
        policy: None,
    };
    let reached = JDBC.granted_test(
        spec(&[("jdbc_url", &url)], None),
        grant.clone(),
        Duration::from_secs(5),
    );
    assert!(reached.success, "{reached:#?}");
    assert!(pinned.connections() >= 1);

    let bystander = Recorder::start();
    let elsewhere = format!("jdbc:postgresql://127.0.0.1:{}/app", bystander.port());
    let refused = JDBC.granted_test(
        spec(&[("jdbc_url", &elsewhere)], None),
        grant,
        Duration::from_secs(5),
    );
    assert_eq!(
        refused.error_category,
        ErrorCategory::Permission as i32,
        "{refused:#?}"
    );
    assert_eq!(bystander.connections(), 0);
}

#[test]
fn render_redacts_the_password() {
    let connection = JDBC.connection(spec(
        &[("jdbc_url", "jdbc:mysql://db.example/app"), ("user", "app")],
        Some("p@ss:w/rd CANARY"),
    ));
    let shown = Jdbc.render(&connection, true).unwrap();
    assert_eq!(shown.env["JDBC_PASSWORD"], "p@ss:w/rd CANARY");
    let hidden = Jdbc.render(&connection, false).unwrap();
    assert!(!format!("{hidden:?}").contains("CANARY"));
    assert_eq!(hidden.env["JDBC_PASSWORD"], "REDACTED");
    assert_eq!(hidden.jdbc_url, "jdbc:mysql://db.example/app");
}
