//! Validation and rendering of PostgreSQL connections: pure, no server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use connvault_plugin_postgres::Postgres;
use connvault_plugin_sdk::Provider;
use connvault_plugin_sdk::pb::{self, TlsMode};
use connvault_testkit::harness::Harness;
use connvault_testkit::provider::{i, s};

/// The PostgreSQL provider under test, for the whole test process.
static PG: LazyLock<Harness<Postgres>> = LazyLock::new(|| Harness::new(Postgres));

#[test]
fn serves_its_ids_and_aliases() {
    let source = Postgres.data_sources().remove(0);
    assert_eq!(source.id, "postgresql");
    assert_eq!(source.aliases, ["POSTGRESQL", "RDS_POSTGRES"]);
    let password = source
        .fields
        .iter()
        .find(|field| field.name == "password")
        .unwrap();
    assert!(password.secret);
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let spec = PG.spec(
        vec![
            ("port", i(0)),
            ("colour", s("blue")),
            ("connect_timeout", s("soon")),
            ("host", s("db example")),
        ],
        None,
    );
    assert_eq!(
        PG.violations(spec),
        [
            "config.colour",
            "config.connect_timeout",
            "config.host",
            "config.port",
            "config.user"
        ]
    );
}

#[test]
fn cross_field_rules_are_reported_together() {
    let mut spec = PG.spec(
        vec![("host", s("db.example:5432")), ("user", s("app"))],
        None,
    );
    spec.tls = Some(pb::Tls {
        mode: TlsMode::Disable as i32,
        ca_pem: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".into(),
        ..Default::default()
    });
    assert_eq!(
        PG.violations(spec),
        ["config.host", "tls.ca_pem", "tls.mode"]
    );
}

#[test]
fn a_good_connection_has_no_violations() {
    let spec = PG.spec(
        vec![("host", s("db.example")), ("user", s("app"))],
        Some("pw"),
    );
    assert!(PG.violations(spec).is_empty());
}

#[test]
fn render_percent_encodes_and_redacts() {
    let canary = "p@ss:w/rd CANARY";
    let mut spec = PG.spec(
        vec![
            ("host", s("db.example")),
            ("user", s("app user")),
            ("database", s("sales")),
            ("schema", s("crm")),
        ],
        Some(canary),
    );
    spec.tls = Some(pb::Tls {
        mode: TlsMode::VerifyFull as i32,
        ..Default::default()
    });
    let connection = PG.connection(spec);
    let shown = Postgres.render(&connection, true).unwrap();
    assert_eq!(
        shown.uri,
        "postgresql://app%20user:p%40ss%3Aw%2Frd%20CANARY@db.example:5432/sales?sslmode=verify-full&options=-c%20search_path%3Dcrm"
    );
    assert_eq!(
        shown.jdbc_url,
        "jdbc:postgresql://db.example:5432/sales?user=app%20user&password=p%40ss%3Aw%2Frd%20CANARY&sslmode=verify-full&currentSchema=crm&connectTimeout=10"
    );
    assert_eq!(
        shown.dsn,
        "host=db.example port=5432 dbname=sales user='app user' password='p@ss:w/rd CANARY' sslmode=verify-full connect_timeout=10 options='-c search_path=crm'"
    );
    assert_eq!(shown.env["PGPASSWORD"], canary);

    let hidden = Postgres.render(&connection, false).unwrap();
    let everything = format!("{hidden:?}");
    assert!(!everything.contains("CANARY"), "{everything}");
    assert!(!everything.contains("p%40ss"), "{everything}");
    assert!(hidden.uri.contains(":REDACTED@"));
    assert_eq!(hidden.env["PGPASSWORD"], "REDACTED");
}
