//! Validation and rendering of MySQL connections: pure, no server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use connvault_plugin_mysql::MySql;
use connvault_plugin_sdk::Provider;
use connvault_plugin_sdk::pb::{self, TlsMode};
use connvault_testkit::harness::Harness;
use connvault_testkit::provider::{i, s};

/// The MySQL provider under test, for the whole test process.
static DB: LazyLock<Harness<MySql>> = LazyLock::new(|| Harness::new(MySql));

#[test]
fn serves_its_ids_and_aliases() {
    let source = MySql.data_sources().remove(0);
    assert_eq!(source.id, "mysql");
    assert_eq!(
        source.aliases,
        [
            "MYSQL",
            "RDS_MYSQL",
            "GAUSSDB_MYSQL",
            "gaussdb-mysql",
            "mariadb"
        ]
    );
    assert!(
        source
            .fields
            .iter()
            .any(|field| field.name == "password" && field.secret)
    );
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let spec = DB.spec(
        vec![
            ("port", i(70000)),
            ("colour", s("blue")),
            ("host", s("db example")),
        ],
        None,
    );
    assert_eq!(
        DB.violations(spec),
        ["config.colour", "config.host", "config.port", "config.user"]
    );
}

#[test]
fn cross_field_rules_are_reported_together() {
    let mut spec = DB.spec(
        vec![("host", s("db.example:3306")), ("user", s("app"))],
        None,
    );
    spec.tls = Some(pb::Tls {
        mode: TlsMode::Disable as i32,
        server_name: "db.example".into(),
        ..Default::default()
    });
    assert_eq!(DB.violations(spec), ["config.host", "tls.mode"]);
}

#[test]
fn a_good_connection_has_no_violations() {
    let spec = DB.spec(
        vec![("host", s("db.example")), ("user", s("app"))],
        Some("pw"),
    );
    assert!(DB.violations(spec).is_empty());
}

#[test]
fn render_percent_encodes_and_redacts() {
    let canary = "p@ss:w/rd CANARY";
    let mut spec = DB.spec(
        vec![
            ("host", s("db.example")),
            ("user", s("app")),
            ("database", s("sales")),
        ],
        Some(canary),
    );
    spec.tls = Some(pb::Tls {
        mode: TlsMode::VerifyFull as i32,
        ..Default::default()
    });
    let connection = DB.connection(spec);
    let shown = MySql.render(&connection, true).unwrap();
    assert_eq!(
        shown.uri,
        "mysql://app:p%40ss%3Aw%2Frd%20CANARY@db.example:3306/sales?ssl-mode=VERIFY_IDENTITY"
    );
    assert_eq!(
        shown.jdbc_url,
        "jdbc:mysql://db.example:3306/sales?user=app&password=p%40ss%3Aw%2Frd%20CANARY&sslMode=VERIFY_IDENTITY"
    );
    assert_eq!(
        shown.dsn,
        "app:p@ss:w/rd CANARY@tcp(db.example:3306)/sales?tls=true"
    );
    assert_eq!(shown.env["MYSQL_PWD"], canary);

    let hidden = MySql.render(&connection, false).unwrap();
    let everything = format!("{hidden:?}");
    assert!(!everything.contains("CANARY"), "{everything}");
    assert!(hidden.uri.contains(":REDACTED@"));
    assert_eq!(hidden.env["MYSQL_PWD"], "REDACTED");
}
