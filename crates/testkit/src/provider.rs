//! Helpers for provider plugins' integration tests.
//!
//! Every provider's tests build connection specs from config pairs, check them
//! against the provider's schema, run `validate` and `test`, and read stage
//! statuses and error categories out of the response. The helpers here do that
//! for any [`Provider`]; what is specific to one plugin (its data-source id,
//! default port, user field) stays in that plugin's own `tests/common` module.

use std::net::TcpListener;
use std::time::Duration;

use connvault_plugin_sdk::pb::{self, value::Kind};
use connvault_plugin_sdk::{Connection, Deadline, Provider, Violations, check};

/// The deadline, in milliseconds, [`test`] gives a provider's `test`.
pub const TEST_DEADLINE_MS: u32 = 5000;

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

/// A spec for `data_source` from config pairs and an optional password.
pub fn spec(
    data_source: &str,
    config: Vec<(&str, pb::Value)>,
    password: Option<&str>,
) -> pb::ConnectionSpec {
    let mut spec = pb::ConnectionSpec {
        data_source: data_source.into(),
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

/// The `host` and `port` config pairs of a loopback server on `port`.
pub fn loopback(port: u16) -> Vec<(&'static str, pb::Value)> {
    vec![("host", s("127.0.0.1")), ("port", i(i64::from(port)))]
}

/// Checks `spec` against `source`'s schema; panics on violations.
pub fn connection(source: &pb::DataSource, spec: pb::ConnectionSpec) -> Connection<'_> {
    check(source, spec, &[]).expect("a valid connection")
}

/// The fields `spec` violates (schema check, then the provider's `validate`), sorted, each once.
pub fn violations(
    provider: &impl Provider,
    source: &pb::DataSource,
    spec: pb::ConnectionSpec,
) -> Vec<String> {
    let mut found = match check(source, spec, &[]) {
        Ok(connection) => {
            let mut violations = Violations::default();
            provider.validate(&connection, &mut violations);
            violations.0
        }
        Err(violations) => violations.0,
    };
    found.sort_by(|a, b| a.field.cmp(&b.field));
    let mut fields: Vec<String> = found.into_iter().map(|violation| violation.field).collect();
    // The SDK may say two things about one field (a bad value, then "is required").
    fields.dedup();
    fields
}

/// Runs the provider's `test` on `spec` within [`TEST_DEADLINE_MS`]; panics on a plugin error.
pub fn test(
    provider: &impl Provider,
    source: &pb::DataSource,
    spec: pb::ConnectionSpec,
) -> pb::TestResponse {
    provider
        .test(
            &connection(source, spec),
            Deadline::from_millis(TEST_DEADLINE_MS),
        )
        .unwrap()
}

/// A port where nothing listens.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A server that accepts TCP connections and never says a word; returns its port.
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
