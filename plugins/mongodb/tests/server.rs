//! The MongoDB provider against a real server, when
//! `CONNVAULT_TEST_MONGODB_URL` names one (a `mongodb://` or `mongodb+srv://`
//! URI with a user allowed to write database `connvault_test`). Without it
//! each test prints a note and passes: no MongoDB server can be installed
//! from this machine's package registries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use connvault_plugin_mongodb::MongoDb;
use connvault_plugin_sdk::pb::{self, ErrorCategory, Stage, StageStatus, TlsMode, value::Kind};
use connvault_plugin_sdk::{Deadline, Provider, block_on};
use connvault_testkit::harness::{Harness, assert_stages};
use connvault_testkit::provider::{category, i, s};
use mongodb::bson::{Bson, doc};
use mongodb::options::{ConnectionString, HostInfo, ServerAddress, Tls};

/// The MongoDB provider under test, for the whole test process.
static MONGO: LazyLock<Harness<MongoDb>> = LazyLock::new(|| Harness::new(MongoDb));

/// The server the variable names, as its URI and a spec; `None` (with a note) without one.
fn real_server(test: &str) -> Option<(String, pb::ConnectionSpec)> {
    let Ok(url) = std::env::var("CONNVAULT_TEST_MONGODB_URL") else {
        eprintln!(
            "{test}: skipped: set CONNVAULT_TEST_MONGODB_URL to run it against a real MongoDB"
        );
        return None;
    };
    let parsed = ConnectionString::parse(&url).unwrap();
    let mut config = match &parsed.host_info {
        HostInfo::HostIdentifiers(hosts) => match &hosts[0] {
            ServerAddress::Tcp { host, port } => vec![
                ("host", s(host)),
                ("port", i(i64::from(port.unwrap_or(27017)))),
            ],
            other => panic!("a TCP host, not {other:?}"),
        },
        HostInfo::DnsRecord(name) => vec![
            ("host", s(name)),
            (
                "srv",
                pb::Value {
                    kind: Some(Kind::BoolValue(true)),
                },
            ),
        ],
        other => panic!("unexpected {other:?}"),
    };
    let credential = parsed.credential.clone().unwrap_or_default();
    if let Some(user) = &credential.username {
        config.push(("user", s(user)));
    }
    if let Some(source) = &credential.source {
        config.push(("auth_source", s(source)));
    }
    if let Some(set) = &parsed.replica_set {
        config.push(("replica_set", s(set)));
    }
    let mut spec = MONGO.spec(config, credential.password.as_deref());
    let srv = matches!(parsed.host_info, HostInfo::DnsRecord(_));
    let mode = match &parsed.tls {
        Some(Tls::Enabled(options)) if options.allow_invalid_certificates == Some(true) => {
            TlsMode::Require
        }
        Some(Tls::Enabled(_)) => TlsMode::VerifyFull,
        None if srv => TlsMode::VerifyFull,
        _ => TlsMode::Disable,
    };
    spec.tls = Some(pb::Tls {
        mode: mode as i32,
        ..Default::default()
    });
    Some((url, spec))
}

#[test]
fn a_real_server_passes_every_stage_and_refuses_a_wrong_password() {
    let Some((_, spec)) = real_server("a_real_server_passes_every_stage") else {
        return;
    };
    let ok = MONGO.test(spec.clone());
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
    assert!(
        ok.server_version.starts_with(char::is_numeric),
        "{}",
        ok.server_version
    );
    if spec.config.contains_key("user") {
        let mut wrong = spec;
        wrong
            .secrets
            .insert("password".into(), "wrong-CANARY".into());
        let refused = MONGO.test(wrong);
        assert_eq!(category(&refused), ErrorCategory::Auth, "{refused:#?}");
        assert!(!format!("{refused:?}").contains("CANARY"));
    }
}

#[test]
fn a_real_server_discovers_seeded_collections_and_fields() {
    let Some((url, spec)) = real_server("a_real_server_discovers_seeded_collections") else {
        return;
    };
    block_on(async {
        let client = mongodb::Client::with_uri_str(&url).await.unwrap();
        let orders = client.database("connvault_test").collection("orders");
        orders.drop().await.unwrap();
        orders
            .insert_many([
                doc! { "_id": 1, "total": 12.5, "note": "first" },
                doc! { "_id": 2, "total": 3, "customer": Bson::Null },
            ])
            .await
            .unwrap();
    })
    .unwrap();
    let connection = MONGO.connection(spec);
    let request = pb::DiscoverRequest {
        schema_filter: "connvault_test".into(),
        include_columns: true,
        ..Default::default()
    };
    let found = MongoDb
        .discover(&connection, &request, Deadline::from_millis(15_000))
        .unwrap();
    assert_eq!(found.schemas.len(), 1);
    let orders = found.schemas[0]
        .tables
        .iter()
        .find(|t| t.name == "orders")
        .unwrap();
    assert_eq!(orders.kind, "collection");
    let columns: Vec<(&str, &str, bool)> = orders
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str(), c.nullable))
        .collect();
    assert_eq!(
        columns,
        [
            ("_id", "int", false),
            ("total", "double|int", false),
            ("note", "string", true),
            ("customer", "null", true),
        ]
    );
}
