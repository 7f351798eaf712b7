//! Helpers shared by the PostgreSQL provider's tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::Duration;

use connvault_plugin_postgres::Postgres;
use connvault_plugin_sdk::pb::{self, value::Kind};
use connvault_plugin_sdk::{Connection, Provider, check};

/// A config string value.
pub fn s(text: &str) -> pb::Value {
    pb::Value {
        kind: Some(Kind::StringValue(text.to_owned())),
    }
}

/// A config integer value.
pub fn i(number: i64) -> pb::Value {
    pb::Value {
        kind: Some(Kind::IntValue(number)),
    }
}

/// A spec from config pairs and an optional password.
pub fn spec(config: Vec<(&str, pb::Value)>, password: Option<&str>) -> pb::ConnectionSpec {
    let mut spec = pb::ConnectionSpec {
        data_source: "postgresql".into(),
        ..Default::default()
    };
    for (name, value) in config {
        spec.config.insert(name.to_owned(), value);
    }
    if let Some(password) = password {
        spec.secrets.insert("password".into(), password.to_owned());
    }
    spec
}

/// Checks `spec` against the schema; panics on violations.
pub fn connection(spec: pb::ConnectionSpec) -> Connection<'static> {
    check(source(), spec, &[]).expect("a valid connection")
}

/// The provider's data source, kept for the life of the test process.
pub fn source() -> &'static pb::DataSource {
    static SOURCE: std::sync::OnceLock<pb::DataSource> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| Postgres.data_sources().remove(0))
}

/// A connection to a loopback server.
pub fn local(port: u16, user: &str, password: &str) -> pb::ConnectionSpec {
    spec(
        vec![
            ("host", s("127.0.0.1")),
            ("port", i(i64::from(port))),
            ("user", s(user)),
        ],
        Some(password),
    )
}

/// A port where nothing listens.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A server that accepts TCP connections and never says a word.
pub fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            if held.len() > 16 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    port
}

/// The status of `stage` in a response.
pub fn stage_status(response: &pb::TestResponse, stage: pb::Stage) -> Option<pb::StageStatus> {
    response
        .stages
        .iter()
        .find(|result| result.stage == stage as i32)
        .and_then(|result| pb::StageStatus::try_from(result.status).ok())
}

/// The response's error category.
pub fn category(response: &pb::TestResponse) -> pb::ErrorCategory {
    pb::ErrorCategory::try_from(response.error_category).unwrap()
}
