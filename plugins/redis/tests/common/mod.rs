//! Helpers for the Redis provider's tests: the shared ones from
//! [`connvault_testkit::provider`], bound to this provider and its data source.
#![allow(dead_code, unused_imports)]

use std::sync::OnceLock;

use connvault_plugin_redis::Redis;
use connvault_plugin_sdk::pb;
use connvault_plugin_sdk::{Connection, Provider};
use connvault_testkit::provider;
pub use connvault_testkit::provider::{category, closed_port, i, s, silent_server, stage_status};

/// The data-source id the provider's specs name.
pub const DATA_SOURCE: &str = "redis";

/// A spec from config pairs and an optional password.
pub fn spec(config: Vec<(&str, pb::Value)>, password: Option<&str>) -> pb::ConnectionSpec {
    provider::spec(DATA_SOURCE, config, password)
}

/// Checks `spec` against the schema; panics on violations.
pub fn connection(spec: pb::ConnectionSpec) -> Connection<'static> {
    provider::connection(source(), spec)
}

/// The provider's data source, kept for the life of the test process.
pub fn source() -> &'static pb::DataSource {
    static SOURCE: OnceLock<pb::DataSource> = OnceLock::new();
    SOURCE.get_or_init(|| Redis.data_sources().remove(0))
}

/// A connection to a loopback server as the default user.
pub fn local(port: u16, password: &str) -> pb::ConnectionSpec {
    spec(provider::loopback(port), Some(password))
}

/// The fields `spec` violates, sorted, each once.
pub fn violations(spec: pb::ConnectionSpec) -> Vec<String> {
    provider::violations(&Redis, source(), spec)
}

/// The provider's test of `spec` within the default deadline.
pub fn test(spec: pb::ConnectionSpec) -> pb::TestResponse {
    provider::test(&Redis, source(), spec)
}
