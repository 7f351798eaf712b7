//! Smaller leaks: page tokens, audit HMACs and reserved tenant ids, attacked
//! the way an outsider would.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use connvault::auth::Role;
use connvault::pb::v1;
use connvault::pb::v1::audit_service_client::AuditServiceClient;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use connvault::pb::v1::tenant_service_client::TenantServiceClient;
use tonic::Code;

use crate::support::{Server, connection, create, operator_token, token, violations};

/// Every way the bytes of a token could be read as text.
fn readings(token: &str) -> Vec<String> {
    let mut texts = vec![token.to_owned()];
    for engine in [URL_SAFE_NO_PAD, STANDARD] {
        if let Ok(bytes) = engine.decode(token) {
            texts.push(String::from_utf8_lossy(&bytes).into_owned());
            texts.push(hex::encode(&bytes));
        }
    }
    texts
}

/// No reading of `token` shows an id: not after the old format's newline,
/// nor (for ids long enough not to appear by chance) anywhere, plain or hex.
fn assert_reveals_none(token: &str, ids: &[&str]) {
    for text in readings(token) {
        for id in ids {
            assert!(
                !text.contains(&format!("\n{id}"))
                    && (id.len() < 5 || !(text.contains(id) || text.contains(&hex::encode(id)))),
                "the token reveals {id}: {text}"
            );
        }
    }
}

#[tokio::test]
async fn a_tenant_scoped_admin_pages_only_its_tenants_and_tokens_reveal_nothing() {
    let server = Server::start();
    let all = [
        "B",
        "ab",
        "mine1",
        "other",
        "x-secret-tenant",
        "zeta",
        "mine2",
    ];
    for id in all {
        server.create_tenant(id).await;
    }
    let scoped = token("scoped-admin", &["mine1", "mine2", "gone"], &[Role::Admin]);
    let mut tenants = TenantServiceClient::new(server.channel_as(Some(scoped)).await);
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = tenants
            .list_tenants(v1::ListTenantsRequest {
                page_size: 1,
                page_token: page_token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(!page.tenants.is_empty(), "an empty page was served");
        seen.extend(page.tenants.into_iter().map(|t| t.name));
        if page.next_page_token.is_empty() {
            break;
        }
        assert_reveals_none(&page.next_page_token, &all);
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ["tenants/mine1", "tenants/mine2"]);
    assert_eq!(pages, 2);

    // An operator's tokens are opaque too, and refused when altered or reused
    // for another listing.
    let mut operator = server.tenants().await;
    let first = operator
        .list_tenants(v1::ListTenantsRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.tenants.len(), 2);
    let next = first.next_page_token;
    assert_reveals_none(&next, &all);
    let mut bytes = URL_SAFE_NO_PAD.decode(&next).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    for forged in [
        URL_SAFE_NO_PAD.encode(&bytes),
        URL_SAFE_NO_PAD.encode("0000000000000000\nab"),
    ] {
        let error = operator
            .list_tenants(v1::ListTenantsRequest {
                page_size: 2,
                page_token: forged,
            })
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        assert_eq!(violations(&error), ["page_token"]);
    }
    let error = ConnectionServiceClient::new(server.channel_as(Some(operator_token())).await)
        .list_connections(v1::ListConnectionsRequest {
            parent: "tenants/B".into(),
            page_token: next,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn reserved_tenant_ids_cannot_be_created() {
    let server = Server::start();
    let mut tenants = server.tenants().await;
    let error = tenants
        .create_tenant(v1::CreateTenantRequest {
            tenant_id: "-".into(),
            tenant: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violations(&error), ["tenant_id"]);
    assert!(error.message().contains("reserved") || format!("{error:?}").contains("reserved"));
}

/// The HMACs of `method` events of `tenant`, oldest first, with their outcome.
async fn hmacs(server: &Server, tenant: &str, method: &str) -> Vec<(String, Option<String>)> {
    AuditServiceClient::new(server.channel_as(Some(operator_token())).await)
        .list_audit_events(v1::ListAuditEventsRequest {
            parent: format!("tenants/{tenant}"),
            filter: format!("method={method}"),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .map(|event| (event.outcome, event.secret_hmacs.get("password").cloned()))
        .collect()
}

#[tokio::test]
async fn audit_hmacs_confirm_no_guess_and_differ_across_tenants() {
    let server = Server::start();
    for tenant in ["t1", "t2"] {
        server.create_tenant(tenant).await;
    }
    let password = "real-password-4e1c";
    let mut connections = server.connections().await;
    create(&mut connections, "t1", connection("orders db", password))
        .await
        .unwrap();
    create(&mut connections, "t2", connection("orders db", password))
        .await
        .unwrap();

    // A writer guesses with validate_only, and with a request that fails.
    let writer = token("guesser", &["t1"], &[Role::Writer]);
    let mut guesser = ConnectionServiceClient::new(server.channel_as(Some(writer)).await);
    guesser
        .create_connection(v1::CreateConnectionRequest {
            parent: "tenants/t1".into(),
            connection: Some(connection("guess db", password)),
            validate_only: true,
        })
        .await
        .unwrap();
    let error = guesser
        .create_connection(v1::CreateConnectionRequest {
            parent: "tenants/t1".into(),
            connection: Some(connection("orders db", password)),
            validate_only: false,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists);

    let t1 = hmacs(&server, "t1", "CreateConnection").await;
    assert_eq!(t1.len(), 3, "{t1:?}");
    let stored = t1[0].1.clone().expect("the stored password's HMAC");
    for (outcome, hmac) in &t1[1..] {
        assert_eq!(
            *hmac, None,
            "a {outcome} request that stored nothing has an HMAC"
        );
    }
    let t2 = hmacs(&server, "t2", "CreateConnection").await;
    let other = t2[0].1.clone().expect("the stored password's HMAC");
    assert_ne!(
        stored, other,
        "the same password gives the same HMAC in two tenants"
    );
}

/// Sends `body` as the raw request body of a `GetTenant` call over a bare
/// HTTP/2 connection and returns the grpc-status it gets.
async fn raw_get_tenant(server: &Server, body: Vec<u8>) -> (String, String) {
    use tonic::codegen::{Bytes, http};
    let host = server.addr.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{host}/connvault.v1.TenantService/GetTenant"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", operator_token()))
        .body(())
        .unwrap();
    let mut client = client.ready().await.unwrap();
    let (response, mut stream) = client.send_request(request, body.is_empty()).unwrap();
    if !body.is_empty() {
        stream.send_data(Bytes::from(body), true).unwrap();
    }
    let (parts, mut received) = response.await.unwrap().into_parts();
    let mut headers = parts.headers;
    while let Some(chunk) = received.data().await {
        chunk.unwrap();
    }
    if let Some(trailers) = received.trailers().await.unwrap() {
        headers.extend(trailers);
    }
    let text = |name: &str| {
        headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (text("grpc-status"), text("grpc-message"))
}

fn framed(flag: u8, length: u32, message: &[u8]) -> Vec<u8> {
    let mut frame = vec![flag];
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

#[tokio::test]
async fn garbage_and_truncated_requests_are_invalid_argument() {
    use prost::Message;
    let server = Server::start();
    let valid = v1::GetTenantRequest {
        name: "tenants/nobody".into(),
    }
    .encode_to_vec();
    let len = valid.len() as u32;
    let invalid_argument = (Code::InvalidArgument as i32).to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage protobuf", framed(0, 4, &[0xff, 0xff, 0xff, 0xff])),
        ("a wrong wire type", framed(0, 2, &[0x0b, 0x01])),
        (
            "truncated message",
            framed(0, len, &valid[..valid.len() / 2]),
        ),
        ("truncated header", vec![0, 0, 0]),
        ("no message", Vec::new()),
        ("bad compression flag", framed(7, len, &valid)),
        ("compressed without an encoding", framed(1, len, &valid)),
    ];
    for (case, body) in cases {
        let (status, message) = raw_get_tenant(&server, body).await;
        assert_eq!(status, invalid_argument, "{case}: {message}");
    }
    let (status, message) = raw_get_tenant(&server, framed(0, len, &valid)).await;
    assert_eq!(status, (Code::NotFound as i32).to_string(), "{message}");
}
