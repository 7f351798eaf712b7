//! The MySQL provider against real, throwaway MariaDB servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::LazyLock;

use connvault_plugin_mysql::MySql;
use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, TlsMode};
use connvault_plugin_sdk::{Provider, block_on};
use connvault_testkit::harness::{
    CANARY, Harness, TableSummary, assert_stages, col, table_summary,
};
use connvault_testkit::provider::{category, s, stage_status};
use connvault_testkit::servers::{self, MariaDb, MariaDbOptions, TestCa};
use mysql_async::prelude::Queryable;

/// The MySQL provider under test, for the whole test process.
static DB: LazyLock<Harness<MySql>> = LazyLock::new(|| Harness::new(MySql));

#[test]
fn plain_server_stages_and_failure_categories() {
    let db = MariaDb::start(MariaDbOptions::default());

    let ok = DB.test(DB.login(db.port(), db.user(), db.password()));
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
        ok.server_version.contains("MariaDB"),
        "{}",
        ok.server_version
    );
    eprintln!("mysql: successful test took {} us", ok.duration_us);

    let canary = CANARY;
    let wrong = DB.test(DB.login(db.port(), db.user(), canary));
    assert_eq!(category(&wrong), ErrorCategory::Auth, "{wrong:#?}");
    assert_eq!(
        stage_status(&wrong, Stage::Authenticate),
        Some(StageStatus::Failed)
    );
    assert_eq!(
        stage_status(&wrong, Stage::Probe),
        Some(StageStatus::Skipped)
    );
    assert!(!format!("{wrong:?}").contains(canary));

    for mode in [TlsMode::Require, TlsMode::VerifyFull] {
        let mut tls_required = DB.login(db.port(), db.user(), db.password());
        tls_required.tls = Some(pb::Tls {
            mode: mode as i32,
            ..Default::default()
        });
        let no_tls = DB.test(tls_required);
        assert_eq!(
            category(&no_tls),
            ErrorCategory::Tls,
            "{mode:?}: {no_tls:#?}"
        );
        assert_eq!(stage_status(&no_tls, Stage::Tls), Some(StageStatus::Failed));
    }

    let mut prefer = DB.login(db.port(), db.user(), db.password());
    prefer.tls = Some(pb::Tls {
        mode: TlsMode::Prefer as i32,
        ..Default::default()
    });
    assert!(DB.test(prefer).success);

    db.sql("CREATE DATABASE private; CREATE USER 'limited'@'%' IDENTIFIED BY 'limited-pw';");
    let mut no_access = DB.login(db.port(), "limited", "limited-pw");
    no_access.config.insert("database".into(), s("private"));
    let denied = DB.test(no_access);
    assert_eq!(category(&denied), ErrorCategory::Permission, "{denied:#?}");
}

#[test]
fn unresolvable_host_is_dns() {
    DB.check_unresolvable_host_is_dns(|port| DB.login(port, "u", CANARY));
}

/// Another service on the port (an HTTP server): its bytes never come back.
#[test]
fn a_foreign_servers_bytes_are_never_quoted() {
    DB.check_foreign_server_is_not_quoted(
        &[TlsMode::Disable, TlsMode::Require, TlsMode::VerifyFull],
        |port| DB.login(port, "u", CANARY),
    );
}

/// Approved addresses are dialled instead of the host name; others are refused unsent.
#[test]
fn the_egress_grant_is_honoured() {
    DB.check_egress_grant_is_honoured(|port| DB.login(port, "u", CANARY));
}

#[test]
fn closed_port_is_unreachable() {
    DB.check_closed_port_is_unreachable(|port| DB.login(port, "u", CANARY));
}

#[test]
fn silent_server_times_out_within_the_deadline() {
    DB.check_silent_server_times_out(&[TlsMode::Disable], |port| DB.login(port, "u", CANARY));
}

#[test]
fn tls_modes_against_a_tls_server() {
    let ca = TestCa::new();
    let db = MariaDb::start(MariaDbOptions {
        tls: Some(ca.server_files()),
    });
    let with_tls = |mode: TlsMode, host: &str, ca_pem: &str| {
        let mut spec = DB.login(db.port(), db.user(), db.password());
        spec.config.insert("host".into(), s(host));
        spec.tls = Some(pb::Tls {
            mode: mode as i32,
            ca_pem: ca_pem.to_owned(),
            ..Default::default()
        });
        DB.test(spec)
    };
    for (mode, host) in [
        (TlsMode::Require, "127.0.0.1"),
        (TlsMode::VerifyCa, "127.0.0.1"),
        (TlsMode::VerifyFull, "localhost"),
    ] {
        let response = with_tls(mode, host, &ca.ca_pem);
        assert!(response.success, "{mode:?} {host}: {response:#?}");
        assert_eq!(stage_status(&response, Stage::Tls), Some(StageStatus::Ok));
    }
    let untrusted = with_tls(TlsMode::VerifyFull, "localhost", &TestCa::new().ca_pem);
    assert_eq!(category(&untrusted), ErrorCategory::Tls, "{untrusted:#?}");
}

#[test]
fn discover_returns_exactly_the_seeded_catalog() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.sql(
        "CREATE DATABASE shop; \
         CREATE TABLE shop.customers (id int PRIMARY KEY, name varchar(100) NOT NULL, email varchar(200)); \
         CREATE TABLE shop.orders (id bigint NOT NULL, customer_id int, total decimal(10,2)); \
         CREATE VIEW shop.big_orders AS SELECT id, total FROM shop.orders WHERE total > 100;",
    );
    let connection = DB.connection(DB.login(db.port(), db.user(), db.password()));
    let request = pb::DiscoverRequest {
        include_columns: true,
        ..Default::default()
    };
    let found = DB.discover(&connection, &request).unwrap();
    assert!(!found.truncated);
    let summary: Vec<(String, Vec<TableSummary>)> = found
        .schemas
        .iter()
        .map(|schema| {
            (
                schema.name.clone(),
                schema.tables.iter().map(table_summary).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![(
            "shop".to_owned(),
            vec![
                (
                    "big_orders".to_owned(),
                    "view".to_owned(),
                    vec![
                        col("id", "bigint(20)", false, 1),
                        col("total", "decimal(10,2)", true, 2)
                    ]
                ),
                (
                    "customers".to_owned(),
                    "table".to_owned(),
                    vec![
                        col("id", "int(11)", false, 1),
                        col("name", "varchar(100)", false, 2),
                        col("email", "varchar(200)", true, 3)
                    ]
                ),
                (
                    "orders".to_owned(),
                    "table".to_owned(),
                    vec![
                        col("id", "bigint(20)", false, 1),
                        col("customer_id", "int(11)", true, 2),
                        col("total", "decimal(10,2)", true, 3)
                    ]
                ),
            ]
        )]
    );

    DB.check_discover_limits(&connection);
    DB.check_discover_refuses_wrong_password(
        DB.login(db.port(), db.user(), "wrong"),
        &pb::DiscoverRequest::default(),
    );
}

#[test]
fn rendered_strings_work_with_real_clients() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.sql("CREATE DATABASE app;");
    let mut spec = DB.login(db.port(), db.user(), db.password());
    spec.config.insert("database".into(), s("app"));
    let rendered = MySql.render(&DB.connection(spec), true).unwrap();

    // The Rust driver accepts the URI (password with `@`, `:`, `/`, `%` and a space).
    let uri = rendered.uri.clone();
    let (user, database) = block_on(async move {
        let opts = mysql_async::Opts::from_url(&uri).unwrap();
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        let row: Option<(String, String)> = conn
            .query_first("SELECT CURRENT_USER(), DATABASE()")
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
        row.unwrap()
    })
    .unwrap();
    assert_eq!(user, format!("{}@%", db.user()));
    assert_eq!(database, "app");

    // The mariadb command-line client takes the environment variables.
    let output = Command::new(servers::find_binary("mariadb"))
        .args(["--no-defaults", "--protocol=TCP", "-N", "-B", "-u"])
        .arg(&rendered.env["MYSQL_USER"])
        .arg(&rendered.env["MYSQL_DATABASE"])
        .args(["-e", "SELECT DATABASE()"])
        .env_clear()
        .envs(&rendered.env)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "mariadb: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "app");
}
