//! The JDBC provider: URL validation, reachability test, render.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::OnceLock;

use connvault_plugin_jdbc::{Jdbc, NOT_SPOKEN};
use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, value::Kind};
use connvault_plugin_sdk::{Connection, Deadline, Provider, Violations, check};

fn source() -> &'static pb::DataSource {
    static SOURCE: OnceLock<pb::DataSource> = OnceLock::new();
    SOURCE.get_or_init(|| Jdbc.data_sources().remove(0))
}

fn spec(config: &[(&str, &str)], password: Option<&str>) -> pb::ConnectionSpec {
    let mut spec = pb::ConnectionSpec {
        data_source: "jdbc".into(),
        ..Default::default()
    };
    for (name, value) in config {
        spec.config.insert(
            (*name).to_owned(),
            pb::Value {
                kind: Some(Kind::StringValue((*value).to_owned())),
            },
        );
    }
    if let Some(password) = password {
        spec.secrets.insert("password".into(), password.to_owned());
    }
    spec
}

fn connection(spec: pb::ConnectionSpec) -> Connection<'static> {
    check(source(), spec, &[]).expect("valid")
}

fn violations(spec: pb::ConnectionSpec) -> Vec<String> {
    let found = match check(source(), spec, &[]) {
        Ok(connection) => {
            let mut violations = Violations::default();
            Jdbc.validate(&connection, &mut violations);
            violations.0
        }
        Err(violations) => violations.0,
    };
    let mut fields: Vec<String> = found.into_iter().map(|violation| violation.field).collect();
    fields.sort();
    fields.dedup();
    fields
}

fn status(response: &pb::TestResponse, stage: Stage) -> Option<StageStatus> {
    response
        .stages
        .iter()
        .find(|result| result.stage == stage as i32)
        .and_then(|result| StageStatus::try_from(result.status).ok())
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
        violations(bad),
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
        violations(spec(&[("jdbc_url", "postgres://db/app")], None)),
        ["config.jdbc_url"]
    );
    // Schema-level problems (an unknown field) come from the SDK's check, before these rules.
    assert_eq!(
        violations(spec(
            &[("jdbc_url", "jdbc:mysql://db/app"), ("colour", "blue")],
            None
        )),
        ["config.colour"]
    );
    assert!(
        violations(spec(
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
    let ok = Jdbc
        .test(
            &connection(spec(&[("jdbc_url", &url)], Some("CANARY-pw"))),
            Deadline::from_millis(5000),
        )
        .unwrap();
    assert!(ok.success, "{ok:#?}");
    assert_eq!(status(&ok, Stage::Resolve), Some(StageStatus::Ok));
    assert_eq!(status(&ok, Stage::Connect), Some(StageStatus::Ok));
    assert_eq!(status(&ok, Stage::Authenticate), Some(StageStatus::Skipped));
    assert!(ok.stages.iter().any(|stage| stage.message == NOT_SPOKEN));
    eprintln!("jdbc: successful test took {} us", ok.duration_us);
    drop(listener);

    let closed = Jdbc
        .test(
            &connection(spec(&[("jdbc_url", &url)], Some("CANARY-pw"))),
            Deadline::from_millis(5000),
        )
        .unwrap();
    assert_eq!(
        closed.error_category,
        ErrorCategory::Unreachable as i32,
        "{closed:#?}"
    );
    assert!(!format!("{closed:?}").contains("CANARY"));

    let dns = Jdbc
        .test(
            &connection(spec(
                &[("jdbc_url", "jdbc:mysql://nonexistent.invalid/app")],
                Some("CANARY-pw"),
            )),
            Deadline::from_millis(5000),
        )
        .unwrap();
    assert_eq!(dns.error_category, ErrorCategory::Dns as i32, "{dns:#?}");
    assert!(!format!("{dns:?}").contains("CANARY"));
}

#[test]
fn render_redacts_the_password() {
    let connection = connection(spec(
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
