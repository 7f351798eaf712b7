//! The PostgreSQL provider against real, throwaway PostgreSQL servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use connvault_plugin_postgres::Postgres;
use connvault_plugin_sdk::Provider;
use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, TlsMode};
use connvault_testkit::harness::{
    CANARY, Harness, TableSummary, assert_stages, col, table_summary, wait_for,
};
use connvault_testkit::provider::{category, s, stage_status};
use connvault_testkit::servers::{self, PgOptions, TestCa};

/// The PostgreSQL provider under test, for the whole test process.
static PG: LazyLock<Harness<Postgres>> = LazyLock::new(|| Harness::new(Postgres));

#[test]
fn plain_server_stages_and_failure_categories() {
    let pg = servers::Postgres::start(PgOptions::default());

    let ok = PG.test(PG.login(pg.port(), pg.user(), pg.password()));
    assert!(ok.success, "{ok:#?}");
    assert_stages(
        &ok,
        &[
            Stage::Resolve,
            Stage::Connect,
            Stage::Authenticate,
            Stage::Probe,
            Stage::Authorize,
        ],
        StageStatus::Ok,
    );
    assert_eq!(stage_status(&ok, Stage::Tls), Some(StageStatus::Skipped));
    assert!(
        ok.server_version.starts_with(char::is_numeric),
        "{}",
        ok.server_version
    );
    eprintln!("postgresql: successful test took {} us", ok.duration_us);

    let canary = CANARY;
    let wrong = PG.test(PG.login(pg.port(), pg.user(), canary));
    assert_eq!(category(&wrong), ErrorCategory::Auth, "{wrong:#?}");
    assert_eq!(
        stage_status(&wrong, Stage::Authenticate),
        Some(StageStatus::Failed)
    );
    assert!(!format!("{wrong:?}").contains(canary));
    assert!(
        !pg.log().contains(canary),
        "the password reached the server log"
    );

    let mut tls_required = PG.login(pg.port(), pg.user(), pg.password());
    tls_required.tls = Some(pb::Tls {
        mode: TlsMode::Require as i32,
        ..Default::default()
    });
    let no_tls = PG.test(tls_required);
    assert_eq!(category(&no_tls), ErrorCategory::Tls, "{no_tls:#?}");
    assert_eq!(stage_status(&no_tls, Stage::Tls), Some(StageStatus::Failed));

    // `prefer` falls back to plain text on a server without TLS.
    let mut prefer = PG.login(pg.port(), pg.user(), pg.password());
    prefer.tls = Some(pb::Tls {
        mode: TlsMode::Prefer as i32,
        ..Default::default()
    });
    assert!(PG.test(prefer).success);

    pg.psql(
        "CREATE ROLE limited LOGIN PASSWORD 'limited-pw'; CREATE SCHEMA hidden; \
         REVOKE ALL ON SCHEMA hidden FROM PUBLIC;",
    );
    let mut no_usage = PG.login(pg.port(), "limited", "limited-pw");
    no_usage.config.insert("schema".into(), s("hidden"));
    let denied = PG.test(no_usage);
    assert_eq!(category(&denied), ErrorCategory::Permission, "{denied:#?}");
    assert_eq!(
        stage_status(&denied, Stage::Authorize),
        Some(StageStatus::Failed)
    );

    let mut missing_db = PG.login(pg.port(), pg.user(), pg.password());
    missing_db.config.insert("database".into(), s("nope"));
    assert_eq!(category(&PG.test(missing_db)), ErrorCategory::Config);
}

#[test]
fn unresolvable_host_is_dns() {
    PG.check_unresolvable_host_is_dns(|port| PG.login(port, "u", CANARY));
}

/// Another service on the port (an HTTP server): its bytes never come back.
#[test]
fn a_foreign_servers_bytes_are_never_quoted() {
    PG.check_foreign_server_is_not_quoted(
        &[TlsMode::Disable, TlsMode::Require, TlsMode::VerifyFull],
        |port| PG.login(port, "u", CANARY),
    );
}

/// Approved addresses are dialled instead of the host name; others are refused unsent.
#[test]
fn the_egress_grant_is_honoured() {
    PG.check_egress_grant_is_honoured(|port| PG.login(port, "u", CANARY));
}

#[test]
fn closed_port_is_unreachable() {
    PG.check_closed_port_is_unreachable(|port| PG.login(port, "u", CANARY));
}

#[test]
fn silent_server_times_out_within_the_deadline() {
    PG.check_silent_server_times_out(&[TlsMode::Disable, TlsMode::Require], |port| {
        PG.login(port, "u", CANARY)
    });
}

#[test]
fn tls_modes_against_a_tls_server() {
    let ca = TestCa::new();
    let pg = servers::Postgres::start(PgOptions {
        tls: Some(ca.server_files()),
        ..PgOptions::default()
    });
    let with_tls = |mode: TlsMode, host: &str, tls: pb::Tls| {
        let mut spec = PG.login(pg.port(), pg.user(), pg.password());
        spec.config.insert("host".into(), s(host));
        spec.tls = Some(pb::Tls {
            mode: mode as i32,
            ..tls
        });
        PG.test(spec)
    };
    let trusted = pb::Tls {
        ca_pem: ca.ca_pem.clone(),
        ..Default::default()
    };

    for (mode, host) in [
        (TlsMode::Require, "127.0.0.1"),
        (TlsMode::VerifyCa, "127.0.0.1"),
        (TlsMode::VerifyFull, "127.0.0.1"),
        (TlsMode::VerifyFull, "localhost"),
    ] {
        let response = with_tls(mode, host, trusted.clone());
        assert!(response.success, "{mode:?} {host}: {response:#?}");
        assert_eq!(stage_status(&response, Stage::Tls), Some(StageStatus::Ok));
    }

    // verify-ca ignores the name; verify-full does not.
    let other_name = pb::Tls {
        server_name: "db.example.com".into(),
        ..trusted.clone()
    };
    assert!(with_tls(TlsMode::VerifyCa, "127.0.0.1", other_name.clone()).success);
    let mismatch = with_tls(TlsMode::VerifyFull, "127.0.0.1", other_name);
    assert_eq!(category(&mismatch), ErrorCategory::Tls, "{mismatch:#?}");

    // A CA that did not sign the server's certificate.
    let stranger = pb::Tls {
        ca_pem: TestCa::new().ca_pem,
        ..Default::default()
    };
    let untrusted = with_tls(TlsMode::VerifyFull, "localhost", stranger);
    assert_eq!(category(&untrusted), ErrorCategory::Tls, "{untrusted:#?}");
    assert_eq!(
        stage_status(&untrusted, Stage::Tls),
        Some(StageStatus::Failed)
    );

    // A client certificate, required by pg_hba for one role.
    pg.psql("CREATE ROLE certuser LOGIN");
    pg.psql("SELECT 1");
    let hba = pg.psql("SHOW hba_file");
    let hba_text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("hostssl all certuser 127.0.0.1/32 cert\n{hba_text}"),
    )
    .unwrap();
    // pg_reload_conf only signals the postmaster: wait until it has re-read
    // its files, which new sessions see as a later pg_conf_load_time().
    let loaded = pg.psql("SELECT pg_conf_load_time()");
    pg.psql("SELECT pg_reload_conf()");
    wait_for(
        "the postmaster to reload pg_hba.conf",
        Duration::from_secs(30),
        || pg.psql("SELECT pg_conf_load_time()") != loaded,
    );
    let client = ca.client("certuser");
    let mut spec = PG.login(pg.port(), "certuser", "unused");
    spec.secrets.clear();
    spec.config.insert("host".into(), s("localhost"));
    spec.tls = Some(pb::Tls {
        mode: TlsMode::VerifyFull as i32,
        ca_pem: ca.ca_pem.clone(),
        client_cert_pem: client.cert_pem,
        client_key_pem: client.key_pem,
        ..Default::default()
    });
    let response = PG.test(spec);
    assert!(response.success, "client certificate: {response:#?}");
}

#[test]
fn discover_returns_exactly_the_seeded_catalog() {
    let pg = servers::Postgres::start(PgOptions::default());
    pg.psql(
        "CREATE SCHEMA shop; \
         CREATE TABLE shop.customers (id integer PRIMARY KEY, name text NOT NULL, email varchar(200)); \
         CREATE TABLE shop.orders (id bigint NOT NULL, customer_id integer, total numeric(10,2)); \
         CREATE VIEW shop.big_orders AS SELECT id, total FROM shop.orders WHERE total > 100;",
    );
    let connection = PG.connection(PG.login(pg.port(), pg.user(), pg.password()));
    let request = pb::DiscoverRequest {
        schema_filter: "shop".into(),
        include_columns: true,
        ..Default::default()
    };
    let found = PG.discover(&connection, &request).unwrap();
    assert!(!found.truncated);
    assert_eq!(found.schemas.len(), 1);
    let shop = &found.schemas[0];
    assert_eq!(shop.name, "shop");
    let summary: Vec<TableSummary> = shop.tables.iter().map(table_summary).collect();
    assert_eq!(
        summary,
        vec![
            (
                "big_orders".to_owned(),
                "view".to_owned(),
                vec![
                    col("id", "bigint", true, 1),
                    col("total", "numeric(10,2)", true, 2)
                ]
            ),
            (
                "customers".to_owned(),
                "table".to_owned(),
                vec![
                    col("id", "integer", false, 1),
                    col("name", "text", false, 2),
                    col("email", "character varying(200)", true, 3)
                ]
            ),
            (
                "orders".to_owned(),
                "table".to_owned(),
                vec![
                    col("id", "bigint", false, 1),
                    col("customer_id", "integer", true, 2),
                    col("total", "numeric(10,2)", true, 3)
                ]
            ),
        ]
    );

    // All schemas the user can use: public and shop, nothing from the catalog.
    let all = PG
        .discover(&connection, &pb::DiscoverRequest::default())
        .unwrap();
    let names: Vec<&str> = all
        .schemas
        .iter()
        .map(|schema| schema.name.as_str())
        .collect();
    assert_eq!(names, ["public", "shop"]);

    PG.check_discover_limits(&connection);
    PG.check_discover_refuses_wrong_password(PG.login(pg.port(), pg.user(), "wrong"), &request);
}

#[test]
fn rendered_strings_work_with_psql() {
    let pg = servers::Postgres::start(PgOptions::default());
    pg.psql("CREATE SCHEMA app; CREATE TABLE app.marker (x int);");
    let mut spec = PG.login(pg.port(), pg.user(), pg.password());
    spec.config.insert("schema".into(), s("app"));
    spec.config
        .insert("application_name".into(), s("connvault test"));
    let rendered = Postgres.render(&PG.connection(spec), true).unwrap();
    let psql = servers::find_binary("psql");
    let query = "SELECT current_user || '|' || current_setting('application_name') || '|' || (SELECT count(*) FROM marker)";
    let expected = format!("{}|connvault test|0", pg.user());

    for target in [&rendered.uri, &rendered.dsn] {
        let output = Command::new(&psql)
            .args(["-X", "-At", "-d", target, "-c", query])
            .env_remove("PGPASSWORD")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql {target}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), expected);
    }
    let output = Command::new(&psql)
        .args(["-X", "-At", "-c", query])
        .envs(&rendered.env)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "psql with env: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), expected);
}
