//! The refused-request budget of the audit log, through the real server: a
//! flood of refusals records at most its budget, and every refusal over it
//! is counted in a summary event — none is dropped silently.

use std::time::{Duration, Instant};

use connvault::auth::Role;
use connvault::pb::v1;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use tonic::Code;

use crate::bounds::all_events;
use crate::support::{Options, Server, connection, create, token};

/// Per claimed tenant: 5 at once, then 1 a second; summaries every second.
fn small_budget() -> Options {
    Options {
        args: [
            "--refused-audit-per-tenant-burst",
            "5",
            "--refused-audit-per-tenant-per-sec",
            "1",
            "--refused-audit-summary-secs",
            "1",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    }
}

/// (events recorded one by one, refusals counted in summaries) for the
/// events of `parent` that `keep` selects, once the summaries account for
/// `expected` refusals (or a minute passed).
async fn settled(
    server: &Server,
    parent: &str,
    keep: impl Fn(&v1::AuditEvent) -> bool,
    expected: u64,
) -> (u64, u64, Vec<v1::AuditEvent>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = all_events(server, parent).await;
        let recorded = events.iter().filter(|e| keep(e)).count() as u64;
        let summarized: u64 = events
            .iter()
            .filter(|e| e.outcome == "SUPPRESSED")
            .map(|e| e.suppressed_count)
            .sum();
        if recorded + summarized >= expected || Instant::now() > deadline {
            return (recorded, summarized, events);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_flood_of_anonymous_refusals_records_its_budget_and_counts_the_rest() {
    let server = Server::start_with(small_budget());
    server.create_tenant("victim").await;
    let mut anonymous = ConnectionServiceClient::new(server.channel_as(None).await);
    let name = format!("tenants/victim/connections/{}", uuid::Uuid::now_v7());
    let audit_before = server.audit_file_text().lines().count();
    let flood = 300;
    let started = Instant::now();
    for _ in 0..flood {
        let error = anonymous
            .get_connection(v1::GetConnectionRequest { name: name.clone() })
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated);
    }
    let elapsed = started.elapsed().as_secs();

    let anonymous_refusal =
        |e: &v1::AuditEvent| e.outcome == "UNAUTHENTICATED" && e.claimed_tenant == "victim";
    let (recorded, summarized, events) =
        settled(&server, "tenants/-", anonymous_refusal, flood).await;
    // The burst, then at most one a second: however slow the machine, never more.
    assert!(
        recorded <= 5 + elapsed + 1,
        "{recorded} refusals recorded in {elapsed} s"
    );
    assert_eq!(
        recorded + summarized,
        flood,
        "every refusal is accounted for"
    );
    for summary in events.iter().filter(|e| e.outcome == "SUPPRESSED") {
        assert_eq!(
            summary.tenant, "",
            "filed under no tenant, as the refusals were"
        );
        assert!(summary.method.is_empty() && summary.principal.is_empty());
    }
    // None of it is in the victim's own log.
    let victims = all_events(&server, "tenants/victim").await;
    assert!(
        victims
            .iter()
            .all(|e| e.outcome != "UNAUTHENTICATED" && e.outcome != "SUPPRESSED"),
        "{victims:?}"
    );
    // The file holds the same events as the store, no more.
    let file = server.audit_file_text();
    let new_lines = file.lines().count() - audit_before;
    let summaries = events.iter().filter(|e| e.outcome == "SUPPRESSED").count();
    assert!(
        new_lines as u64 <= recorded + summaries as u64 + 1,
        "{new_lines} new lines for {recorded} events and {summaries} summaries"
    );
    assert!(file.contains("\"suppressed_count\":"));
    eprintln!(
        "{flood} anonymous refusals in {elapsed} s: {recorded} recorded, {summarized} summarized in {summaries} events"
    );
}

#[tokio::test]
async fn a_tenants_own_callers_are_refused_on_its_log_and_budgeted_the_same() {
    let server = Server::start_with(small_budget());
    server.create_tenant("home").await;
    // A reader of `home` may not create: its refusals are its tenant's business.
    let reader = token("reader-app", &["home"], &[Role::Reader]);
    let mut client = ConnectionServiceClient::new(server.channel_as(Some(reader)).await);
    let flood = 60;
    for _ in 0..flood {
        let error = create(&mut client, "home", connection("Nope", "pw"))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied);
    }
    let denied = |e: &v1::AuditEvent| e.outcome == "PERMISSION_DENIED";
    let (recorded, summarized, events) = settled(&server, "tenants/home", denied, flood).await;
    assert!(recorded >= 5, "the burst is recorded: {recorded}");
    assert_eq!(recorded + summarized, flood);
    for event in events.iter().filter(|e| denied(e)) {
        assert_eq!(event.principal, "reader-app");
        assert_eq!(event.tenant, "home");
        assert!(event.claimed_tenant.is_empty());
    }
    // A writer of `home` trying another tenant is a stranger there.
    let writer = token("writer-app", &["home"], &[Role::Writer]);
    let mut client = ConnectionServiceClient::new(server.channel_as(Some(writer)).await);
    let error = create(&mut client, "elsewhere", connection("Nope", "pw"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let everything = all_events(&server, "tenants/-").await;
    let stranger = everything
        .iter()
        .find(|e| e.principal == "writer-app")
        .expect("the stranger's refusal is recorded");
    assert_eq!(
        (stranger.tenant.as_str(), stranger.claimed_tenant.as_str()),
        ("", "elsewhere")
    );
}
