//! Size bounds, attacked through the real server: huge names from callers
//! with and without a token, oversized messages, and requests whose errors
//! would not fit a client's 16 KiB trailer limit.

use std::collections::HashMap;
use std::path::Path;

use connvault::auth::Role;
use connvault::pb::v1;
use connvault::pb::v1::audit_service_client::AuditServiceClient;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{Server, connection, create, operator_token, token, violations};

/// The bytes of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map_while(Result::ok)
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Every audit event the operator can read, oldest first.
pub async fn all_events(server: &Server, parent: &str) -> Vec<v1::AuditEvent> {
    let mut audit = AuditServiceClient::new(server.channel_as(Some(operator_token())).await);
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = audit
            .list_audit_events(v1::ListAuditEventsRequest {
                parent: parent.into(),
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        page_token = page.next_page_token;
    }
}

/// The attack: a name of about 1 MB (within the message limit) in a
/// `GetConnection`, which used to be audited whole under the victim tenant.
fn huge_name(tenant: &str, bytes: usize) -> String {
    format!("tenants/{tenant}/connections/{}", "a".repeat(bytes))
}

#[tokio::test]
async fn huge_names_are_refused_before_anything_and_cost_the_disk_a_bounded_number_of_bytes() {
    let server = Server::start();
    server.create_tenant("victim").await;
    let writer = token("writer-app", &["victim"], &[Role::Writer]);
    let mut anonymous = ConnectionServiceClient::new(server.channel_as(None).await);
    let mut authenticated = ConnectionServiceClient::new(server.channel_as(Some(writer)).await);
    let name = huge_name("victim", 1_000_000);
    let data_before = dir_bytes(&server.data_dir());
    let audit_before = server.audit_file_text().len();

    // 200 calls without a token and 50 with a writer's: each INVALID_ARGUMENT on `name`.
    let mut calls = 0;
    for (client, count) in [(&mut anonymous, 200), (&mut authenticated, 50)] {
        for _ in 0..count {
            let error = client
                .get_connection(v1::GetConnectionRequest { name: name.clone() })
                .await
                .unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
            assert_eq!(violations(&error), ["name"]);
            assert!(error.message().len() < 200, "{}", error.message());
            calls += 1;
        }
    }
    // Over the message limit (1 MiB by default) a request is not even read.
    let error = anonymous
        .get_connection(v1::GetConnectionRequest {
            name: huge_name("victim", 2_000_000),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "{error:?}");

    // What the calls cost: at most one bounded line each in the audit file
    // (before: 1 MB each), and little more in the store.
    let audit = server.audit_file_text();
    let written = &audit[audit_before..];
    let lines: Vec<&str> = written.lines().collect();
    assert!(lines.len() <= calls + 1, "{} lines", lines.len());
    assert!(lines.iter().all(|line| line.len() < 1024), "{written}");
    let audit_growth = written.len();
    let data_growth = dir_bytes(&server.data_dir()).saturating_sub(data_before);
    eprintln!(
        "{calls} calls of 1 MB names: audit file +{audit_growth} bytes, data dir +{data_growth} bytes"
    );
    assert!(
        audit_growth <= calls * 1024,
        "audit file grew {audit_growth} bytes"
    );
    assert!(
        data_growth < 4 * 1024 * 1024,
        "the data directory grew {data_growth} bytes for {calls} refused calls"
    );

    // The events say what happened without holding the name, and the
    // anonymous ones are not filed under the tenant they named.
    let refused: Vec<v1::AuditEvent> = all_events(&server, "tenants/-")
        .await
        .into_iter()
        .filter(|event| event.outcome == "INVALID_ARGUMENT")
        .collect();
    assert!(!refused.is_empty() && refused.len() <= calls);
    for event in &refused {
        assert_eq!(event.method, "GetConnection");
        assert!(event.resource.len() <= 256, "{}", event.resource.len());
        assert!(event.resource.starts_with("tenants/victim/connections/aaa"));
        assert!(event.resource.ends_with(" bytes)"), "says how much was cut");
        match event.principal.as_str() {
            "" => assert_eq!(
                (event.tenant.as_str(), event.claimed_tenant.as_str()),
                ("", "victim")
            ),
            "writer-app" => assert_eq!(
                (event.tenant.as_str(), event.claimed_tenant.as_str()),
                ("victim", "")
            ),
            other => panic!("unexpected principal {other}"),
        }
    }
    assert!(refused.iter().any(|event| event.principal.is_empty()));
    assert!(refused.iter().any(|event| event.principal == "writer-app"));
    let victims = all_events(&server, "tenants/victim").await;
    assert!(
        victims.iter().all(|event| !event.principal.is_empty()),
        "an anonymous refusal was filed under the tenant it named: {victims:?}"
    );
}

#[tokio::test]
async fn thousands_of_bad_fields_get_an_error_a_client_can_decode() {
    let server = Server::start();
    server.create_tenant("acme").await;
    server.create_tenant("other").await;
    let writer = token("app", &["acme"], &[Role::Writer]);
    let mut client = ConnectionServiceClient::new(server.channel_as(Some(writer)).await);
    let mut anonymous = ConnectionServiceClient::new(server.channel_as(None).await);

    // An error reaches a tonic client only if its trailers fit hyper's 16 KiB
    // header list: getting a status with its details back is the proof.
    let decodable = |error: &tonic::Status| {
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        let bad = error.get_details_bad_request().expect("BadRequest details");
        // Base64 in the trailer, and the message percent-encoded at worst.
        let trailer = error.details().len() * 4 / 3 + error.message().len() * 3;
        assert!(trailer < 16 * 1024, "{trailer} bytes of trailer");
        bad
    };

    // 5000 label keys of 200 characters: one violation, for the count.
    let many_labels: HashMap<String, String> = (0..5000)
        .map(|i| (format!("{i:05}{}", "k".repeat(195)), "v".into()))
        .collect();
    let mut request = connection("Labels", "pw");
    request.labels = many_labels;
    for caller in [&mut client, &mut anonymous] {
        let error = create(caller, "acme", request.clone()).await.unwrap_err();
        let bad = decodable(&error);
        assert_eq!(violations(&error), ["connection.labels"]);
        assert!(bad.field_violations[0].description.contains("at most 64"));
    }

    // 64 keys of 5000 characters and values of 3000: 128 violations, 10 shown.
    let long: HashMap<String, String> = (0..64)
        .map(|i| (format!("{i:02}{}", "k".repeat(5_000)), "v".repeat(3_000)))
        .collect();
    let mut request = connection("Labels", "pw");
    request.labels = long;
    let error = create(&mut client, "acme", request).await.unwrap_err();
    let bad = decodable(&error);
    assert_eq!(bad.field_violations.len(), 10);
    assert!(bad.field_violations.iter().all(|v| v.field.len() <= 160));
    let info = error.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "VIOLATIONS_TRUNCATED");
    assert_eq!(info.metadata["total"], "128");
    assert!(
        error.message().ends_with("(and 118 more violations)"),
        "{}",
        error.message()
    );

    // Within every bound, the app's own rules can still find many faults:
    // 1000 names of another tenant in one batch.
    let names: Vec<String> = (0..1000)
        .map(|_| format!("tenants/other/connections/{}", uuid::Uuid::now_v7()))
        .collect();
    let error = client
        .batch_delete_connections(v1::BatchDeleteConnectionsRequest {
            parent: "tenants/acme".into(),
            names,
        })
        .await
        .unwrap_err();
    let bad = decodable(&error);
    assert_eq!(bad.field_violations[0].field, "names[0]");
    assert_eq!(
        error.get_details_error_info().expect("ErrorInfo").metadata["total"],
        "1000"
    );

    // 256 mask paths that name nothing, each echoed in its violation.
    let created = create(&mut client, "acme", connection("Masked", "pw"))
        .await
        .unwrap();
    let error = client
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(created),
            update_mask: Some(prost_types::FieldMask {
                paths: (0..256)
                    .map(|i| format!("{i:03}{}", "p".repeat(250)))
                    .collect(),
            }),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    let bad = decodable(&error);
    assert_eq!(bad.field_violations.len(), 10);
    assert_eq!(
        error.get_details_error_info().expect("ErrorInfo").metadata["total"],
        "256"
    );
}
