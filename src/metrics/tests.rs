//! The registry's text and the label bounds.

use std::time::Duration;

use super::rpc::{code_name, method_of};
use super::*;

#[test]
fn a_path_the_server_does_not_implement_is_labelled_unknown() {
    assert_eq!(
        method_of("/connvault.v1.ConnectionService/GetConnection"),
        ("connvault.v1.ConnectionService", "GetConnection")
    );
    assert_eq!(
        method_of("/grpc.health.v1.Health/Check"),
        ("grpc.health.v1.Health", "Check")
    );
    // A caller choosing paths cannot mint label values.
    for path in [
        "/connvault.v1.ConnectionService/NoSuchMethod",
        "/made.up.Service/Anything",
        "/",
        "",
    ] {
        assert_eq!(method_of(path), ("unknown", "unknown"), "{path}");
    }
}

#[test]
fn status_codes_are_named_as_the_grpc_spec_spells_them() {
    assert_eq!(code_name(b"0"), "OK");
    assert_eq!(code_name(b"5"), "NOT_FOUND");
    assert_eq!(code_name(b"16"), "UNAUTHENTICATED");
    assert_eq!(code_name(b"17"), "UNKNOWN");
    assert_eq!(code_name(b"x"), "UNKNOWN");
}

#[test]
fn the_text_names_every_family_with_its_type() {
    let metrics = Metrics::new();
    metrics.rpc(
        "connvault.v1.ConnectionService",
        "GetConnection",
        "OK",
        Duration::from_millis(3),
    );
    metrics.cache_lookup(true);
    metrics.audit_write_failures.inc();
    metrics.store_write_batch.observe(3.0);
    let text = metrics.encode();
    for expected in [
        "# TYPE connvault_grpc_requests_total counter",
        "connvault_grpc_requests_total{service=\"connvault.v1.ConnectionService\",method=\"GetConnection\",code=\"OK\"} 1",
        "# TYPE connvault_grpc_request_duration_seconds histogram",
        "connvault_grpc_request_duration_seconds_bucket{service=\"connvault.v1.ConnectionService\",method=\"GetConnection\",le=\"0.005\"} 1",
        "connvault_discovery_cache_lookups_total{result=\"hit\"} 1",
        "connvault_audit_write_failures_total 1",
        "# TYPE connvault_store_write_batch_size histogram",
        "# TYPE connvault_store_durable_flush_duration_seconds histogram",
        "# TYPE connvault_tenants gauge",
        "# TYPE connvault_connections gauge",
        "connvault_build_info{version=\"",
    ] {
        assert!(text.contains(expected), "{expected} not in:\n{text}");
    }
}
