//! `/metrics`, `/healthz`, `/readyz` and gRPC health against the real
//! server: the scrape after real calls passes `promtool check metrics` and
//! shows those calls; each service reports its own health, and all turn
//! NOT_SERVING when shutdown begins.

use std::process::{Command, Stdio};

use connvault::pb::v1;
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{Options, Server, connection, create};

/// `GET url` with real curl: (status, body).
pub fn curl(url: &str) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}", url])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// promtool, from Debian's `prometheus` (scripts/test-deps.sh installs it).
fn promtool() -> String {
    for candidate in ["promtool", "/usr/bin/promtool"] {
        if Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
        {
            return candidate.to_owned();
        }
    }
    panic!("promtool is missing: run scripts/test-deps.sh (installs Debian's prometheus)");
}

/// The value of the first sample line starting with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn a_scrape_after_real_calls_passes_promtool_and_counts_them() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let mut connections = server.connections().await;
    // Discovery resolves the host first: one that resolves here (--dev allows loopback).
    let mut spec = connection("Orders DB", "pw");
    spec.config = Some(crate::support::config(&[
        ("host", "127.0.0.1"),
        ("user", "app"),
        ("database", "orders"),
    ]));
    let created = create(&mut connections, "acme", spec).await.unwrap();
    connections
        .get_connection(v1::GetConnectionRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap();
    let missing = connections
        .get_connection(v1::GetConnectionRequest {
            name: format!("{}0", &created.name[..created.name.len() - 1]),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    for _ in 0..2 {
        connections
            .discover_metadata(v1::DiscoverMetadataRequest {
                name: created.name.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    let (status, text) = curl(&format!("{}/metrics", server.http_addr));
    assert_eq!(status, 200, "{text}");

    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n--- scrape\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let rpc = |method: &str, code: &str| {
        format!(
            "connvault_grpc_requests_total{{service=\"connvault.v1.ConnectionService\",method=\"{method}\",code=\"{code}\"}}"
        )
    };
    assert_eq!(
        sample(&text, &rpc("GetConnection", "OK")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &rpc("GetConnection", "NOT_FOUND")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &rpc("CreateConnection", "OK")),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("connvault_grpc_request_duration_seconds_count{service=\"connvault.v1.ConnectionService\",method=\"GetConnection\"} 2"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("connvault_plugin_calls_total{")
                && line.contains("method=\"validate\",outcome=\"ok\"")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("connvault_plugin_calls_total{")
                && line.contains("method=\"discover\",outcome=\"ok\"")
                && line.ends_with(" 1")),
        "one discover reached the plugin, the other the cache:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            "connvault_discovery_cache_lookups_total{result=\"hit\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "connvault_discovery_cache_lookups_total{result=\"miss\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("connvault_plugin_state{")
                && line.contains("state=\"healthy\"")
                && line.ends_with(" 1")),
        "{text}"
    );
    assert!(
        sample(&text, "connvault_store_write_batch_size_count").is_some_and(|count| count >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "connvault_store_durable_flush_duration_seconds_count"
        )
        .is_some_and(|count| count >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "connvault_audit_write_failures_total"),
        Some(0.0),
        "{text}"
    );
    assert!(text.contains("connvault_build_info{version=\""), "{text}");
    assert!(text.contains("# TYPE connvault_tenants gauge"), "{text}");
    assert!(
        text.contains("# TYPE connvault_connections gauge"),
        "{text}"
    );
    // No label carries a tenant or a resource name.
    assert!(
        !text.contains("acme") && !text.contains(&created.name),
        "a tenant or resource name is a label value:\n{text}"
    );
}

/// A path the server does not implement is counted as `unknown`: a caller
/// cannot grow the label set.
#[tokio::test]
async fn unknown_methods_do_not_mint_label_values() {
    let server = Server::start();
    let mut health = HealthClient::new(server.channel().await);
    health.check(HealthCheckRequest::default()).await.unwrap();
    let path = "/connvault.v1.ConnectionService/MadeUpMethod";
    let status = Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-X",
            "POST",
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
        ])
        .arg(format!("{}{path}", server.addr))
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let (_, text) = curl(&format!("{}/metrics", server.http_addr));
    assert!(!text.contains("MadeUpMethod"), "{text}");
    assert!(
        text.contains("connvault_grpc_requests_total{service=\"unknown\",method=\"unknown\",code=\"UNIMPLEMENTED\"} 1")
            || text.contains("connvault_grpc_requests_total{service=\"unknown\",method=\"unknown\",code=\"UNAUTHENTICATED\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("connvault_grpc_requests_total{service=\"grpc.health.v1.Health\",method=\"Check\",code=\"OK\"} 1"),
        "{text}"
    );
}

#[test]
fn no_metrics_turns_the_endpoint_off() {
    let server = Server::start_with(Options {
        args: vec!["--no-metrics".into()],
        ..Default::default()
    });
    let (status, _) = curl(&format!("{}/metrics", server.http_addr));
    assert_eq!(status, 404);
    let (status, body) = curl(&format!("{}/healthz", server.http_addr));
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn each_service_reports_its_health_and_shutdown_turns_them_not_serving() {
    let mut server = Server::start();
    let (status, body) = curl(&format!("{}/readyz", server.http_addr));
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (status, _) = curl(&format!("{}/healthz", server.http_addr));
    assert_eq!(status, 200);

    let mut health = HealthClient::new(server.channel().await);
    for service in connvault::health::SERVICES.into_iter().chain([""]) {
        let answer = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "connvault.v1.NoSuchService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // A load balancer watching the server sees it stop serving before it goes.
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "connvault.v1.ConnectionService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let pid = server.pid();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(30), watch.next())
        .await
        .expect("a status change before the process ended")
        .expect("the watch ended without NOT_SERVING")
        .unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    server.stop();
}
