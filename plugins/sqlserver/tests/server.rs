//! The SQL Server provider against a real server, when
//! `CONNVAULT_TEST_SQLSERVER_URL` names one:
//! `sqlserver://USER:PASSWORD@HOST:PORT/DATABASE?tls=MODE` (percent-encoded;
//! MODE is disable, prefer, require, verify-ca or verify-full, `require` by
//! default). Without it each test prints a note and passes: no SQL Server can
//! be installed from this machine's package registries. The login it names
//! needs CREATE SCHEMA and CREATE TABLE in DATABASE for the discovery test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, TlsMode};
use connvault_plugin_sdk::{Deadline, Provider, block_on};
use connvault_plugin_sqlserver::SqlServer;
use connvault_provider_kit::engine;
use connvault_testkit::harness::{Harness, assert_stages};
use connvault_testkit::provider::{category, i, s};
use percent_encoding::percent_decode_str;

/// The SQL Server provider under test, for the whole test process.
static MSSQL: LazyLock<Harness<SqlServer>> = LazyLock::new(|| Harness::new(SqlServer));

/// The server the variable names, as a spec and its password; `None` (with a note) without one.
fn real_server(test: &str) -> Option<(pb::ConnectionSpec, String)> {
    let Ok(url) = std::env::var("CONNVAULT_TEST_SQLSERVER_URL") else {
        eprintln!(
            "{test}: skipped: set CONNVAULT_TEST_SQLSERVER_URL to run it against a real SQL Server"
        );
        return None;
    };
    let decode = |text: &str| percent_decode_str(text).decode_utf8().unwrap().into_owned();
    let rest = url
        .strip_prefix("sqlserver://")
        .expect("sqlserver://USER:PASSWORD@HOST:PORT/DATABASE");
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (credentials, address) = rest.rsplit_once('@').unwrap();
    let (user, password) = credentials.split_once(':').unwrap();
    let (address, database) = address.split_once('/').unwrap_or((address, ""));
    let (host, port) = address.rsplit_once(':').unwrap_or((address, "1433"));
    let mode = match query.strip_prefix("tls=").unwrap_or("require") {
        "disable" => TlsMode::Disable,
        "prefer" => TlsMode::Prefer,
        "verify-ca" => TlsMode::VerifyCa,
        "verify-full" => TlsMode::VerifyFull,
        _ => TlsMode::Require,
    };
    let password = decode(password);
    let mut spec = MSSQL.spec(
        vec![
            ("host", s(host)),
            ("port", i(port.parse().unwrap())),
            ("user", s(&decode(user))),
            ("database", s(&decode(database))),
        ],
        Some(&password),
    );
    spec.tls = Some(pb::Tls {
        mode: mode as i32,
        ..Default::default()
    });
    Some((spec, password))
}

#[test]
fn a_real_server_passes_every_stage_and_refuses_a_wrong_password() {
    let Some((spec, _)) = real_server("a_real_server_passes_every_stage") else {
        return;
    };
    let ok = MSSQL.test(spec.clone());
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
    assert!(
        ok.server_version.starts_with(char::is_numeric),
        "{}",
        ok.server_version
    );

    let mut wrong = spec;
    wrong
        .secrets
        .insert("password".into(), "wrong-CANARY".into());
    let refused = MSSQL.test(wrong);
    assert_eq!(category(&refused), ErrorCategory::Auth, "{refused:#?}");
    assert!(!format!("{refused:?}").contains("CANARY"));
}

#[test]
fn a_real_server_discovers_a_seeded_table() {
    let Some((spec, _)) = real_server("a_real_server_discovers_a_seeded_table") else {
        return;
    };
    let connection = MSSQL.connection(spec);
    let mut client =
        engine::open_or_error(&SqlServer, &connection, Deadline::from_millis(15_000)).unwrap();
    block_on(async {
        client
            .simple_query(
                "IF SCHEMA_ID('connvault_test') IS NULL EXEC('CREATE SCHEMA connvault_test'); \
                 IF OBJECT_ID('connvault_test.orders') IS NULL \
                   CREATE TABLE connvault_test.orders (id int NOT NULL, total decimal(10,2), note nvarchar(max))",
            )
            .await
            .unwrap()
            .into_results()
            .await
            .unwrap();
    })
    .unwrap();
    let request = pb::DiscoverRequest {
        schema_filter: "connvault_test".into(),
        include_columns: true,
        ..Default::default()
    };
    let found = SqlServer
        .discover(&connection, &request, Deadline::from_millis(15_000))
        .unwrap();
    let orders = &found.schemas[0].tables[0];
    assert_eq!(
        (orders.name.as_str(), orders.kind.as_str()),
        ("orders", "table")
    );
    let columns: Vec<(&str, &str, bool)> = orders
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str(), c.nullable))
        .collect();
    assert_eq!(
        columns,
        [
            ("id", "int", false),
            ("total", "decimal(10,2)", true),
            ("note", "nvarchar(max)", true)
        ]
    );
}
