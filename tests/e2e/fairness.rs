//! One tenant cannot starve another: not by tests against a host that never
//! answers (the plugin's lanes and per-tenant shares), nor by request volume
//! (the per-tenant rate limit).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connvault::auth::Role;
use connvault::pb::v1;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use connvault::pb::v1::tenant_service_client::TenantServiceClient;
use tonic_types::StatusExt;

use crate::support::{Options, Server, config, connection, create, token};

/// A server that accepts and never answers; returns its port and the
/// connections it holds open.
fn silent_server() -> (u16, Arc<Mutex<Vec<TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let kept = Arc::clone(&held);
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            kept.lock().unwrap().push(stream);
        }
    });
    (port, held)
}

/// A server that greets every connection with one byte; returns its port.
fn greeting_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.write_all(b"!");
        }
    });
    port
}

/// An inline fixture test of `port` that waits for the server to speak first.
fn greeting_test(tenant: &str, port: u16, timeout_ms: u32) -> v1::TestConnectionRequest {
    let port = port.to_string();
    v1::TestConnectionRequest {
        parent: format!("tenants/{tenant}"),
        target: Some(v1::test_connection_request::Target::Connection(
            v1::Connection {
                display_name: "silent or greeting".into(),
                data_source: "TESTDB".into(),
                config: Some(config(&[
                    ("host", "127.0.0.1"),
                    ("port", &port),
                    ("mode", "greeting"),
                ])),
                ..Default::default()
            },
        )),
        timeout_ms,
    }
}

/// A connection client acting as a writer of `tenant` alone.
async fn writer_of(
    server: &Server,
    tenant: &str,
) -> ConnectionServiceClient<crate::support::Authed> {
    let token = token(&format!("svc-{tenant}"), &[tenant], &[Role::Writer]);
    ConnectionServiceClient::new(server.channel_as(Some(token)).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tests_against_a_silent_host_do_not_starve_another_tenant() {
    // The defaults: 8 I/O workers per plugin, 4 of them at most for one
    // tenant, 4 workers for validate and render, a 2 s validate deadline.
    let server = Server::start();
    server.create_tenant("a").await;
    server.create_tenant("b").await;
    let (silent, held) = silent_server();

    // Tenant a: eight tests at once against a host that accepts and never
    // answers, each allowed a minute.
    let client_a = writer_of(&server, "a").await;
    let flood: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client_a.clone();
            tokio::spawn(async move {
                client
                    .test_connection(greeting_test("a", silent, 60_000))
                    .await
            })
        })
        .collect();
    let started = Instant::now();
    while held.lock().unwrap().len() < 4 {
        if let Some(done) = flood.iter().position(tokio::task::JoinHandle::is_finished) {
            let mut flood = flood;
            panic!("a test of a ended early: {:?}", (&mut flood[done]).await);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "tenant a's tests never reached the silent host"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Tenant b, meanwhile: its create is validated, well within the 2 s
    // validate deadline (before the lanes, it waited behind a's tests and
    // failed DEADLINE_EXCEEDED), and its own test gets a worker and answers.
    let mut client_b = writer_of(&server, "b").await;
    let began = Instant::now();
    let created = create(&mut client_b, "b", connection("orders", "pw"))
        .await
        .unwrap();
    let create_took = began.elapsed();
    assert!(created.name.starts_with("tenants/b/connections/"));
    let began = Instant::now();
    let result = client_b
        .test_connection(greeting_test("b", greeting_server(), 10_000))
        .await
        .unwrap()
        .into_inner();
    let test_took = began.elapsed();
    assert!(result.success, "{result:?}");
    eprintln!(
        "while a saturates its share: b's create took {create_took:?}, its test {test_took:?}"
    );

    // a holds its share and no more: its other tests wait for its own.
    assert_eq!(held.lock().unwrap().len(), 4, "a ran more than its share");
    assert!(
        flood.iter().all(|call| !call.is_finished()),
        "a's tests are still waiting on the silent host"
    );
    for call in flood {
        call.abort();
    }
}

#[tokio::test]
async fn a_tenant_over_its_rate_limit_is_told_when_to_retry() {
    let server = Server::start_with(Options {
        args: ["--tenant-rate-limit", "1", "--tenant-rate-burst", "5"]
            .map(String::from)
            .to_vec(),
        ..Options::default()
    });
    // Creating a tenant is a request naming it: one token of each bucket.
    server.create_tenant("a").await;
    server.create_tenant("b").await;

    let mut tenants = TenantServiceClient::new(
        server
            .channel_as(Some(token("svc-a", &["a"], &[Role::Reader])))
            .await,
    );
    let began = Instant::now();
    let mut admitted = 0_u32;
    let refused = loop {
        match tenants
            .get_tenant(v1::GetTenantRequest {
                name: "tenants/a".into(),
            })
            .await
        {
            Ok(_) => admitted += 1,
            Err(status) => break status,
        }
        assert!(admitted < 100, "the limit never applied");
    };
    // What was left of the burst, plus what refilled meanwhile.
    let refilled = began.elapsed().as_secs() as u32 + 1;
    assert!(
        (4..=4 + refilled).contains(&admitted),
        "{admitted} requests admitted"
    );
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.message().contains("tenants/a"), "{refused:?}");
    let delay = refused
        .get_details_retry_info()
        .and_then(|retry| retry.retry_delay)
        .expect("RetryInfo with a delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );
    let quota = refused.get_details_quota_failure().expect("QuotaFailure");
    assert_eq!(quota.violations[0].subject, "tenants/a");

    // Another tenant, even through the same principal's channel, has its own bucket.
    let mut operator = server.tenants().await;
    for _ in 0..3 {
        operator
            .get_tenant(v1::GetTenantRequest {
                name: "tenants/b".into(),
            })
            .await
            .unwrap();
    }
    let mut connections = server.connections().await;
    create(&mut connections, "b", connection("orders", "pw"))
        .await
        .unwrap();
    // The refusal is audited like any other, within the refusal budget.
    let audit = server.audit_file_text();
    assert!(
        audit
            .lines()
            .any(|line| line.contains("RESOURCE_EXHAUSTED") && line.contains("svc-a")),
        "{audit}"
    );
}
