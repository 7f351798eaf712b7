//! `FormLinkService` and the tenant's form settings against the real
//! server: the redirect allowlist, lifetimes, states, one-time opening,
//! revocation, tampered and expired tokens, the audit trail and the
//! published verification key.

use connvault::pb::v1;
use connvault::pb::v1::form_link::State;
use connvault::pb::v1::form_link_service_client::FormLinkServiceClient;
use tonic::Code;

use crate::http_client;
use crate::support::{Authed, Server, operator_token, violations};

pub const ORIGIN: &str = "https://app.example.com";

pub async fn links(server: &Server) -> FormLinkServiceClient<Authed> {
    FormLinkServiceClient::new(server.channel_as(Some(operator_token())).await)
}

/// Creates `tenant` with form settings allowing [`ORIGIN`] and `sources`.
pub async fn tenant_with_forms(server: &Server, tenant: &str, sources: &[&str]) {
    server.create_tenant(tenant).await;
    server
        .tenants()
        .await
        .update_tenant(v1::UpdateTenantRequest {
            tenant: Some(v1::Tenant {
                name: format!("tenants/{tenant}"),
                forms: Some(v1::FormSettings {
                    allowed_redirect_origins: vec![ORIGIN.into()],
                    allowed_data_sources: sources.iter().map(|s| (*s).to_owned()).collect(),
                    branding_display_name: "Acme Analytics".into(),
                    accent_color: "#0a5fb4".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["forms".into()],
            }),
            etag: String::new(),
        })
        .await
        .unwrap();
}

pub fn create_request(tenant: &str, data_source: &str) -> v1::CreateFormLinkRequest {
    v1::CreateFormLinkRequest {
        parent: format!("tenants/{tenant}"),
        redirect_url: format!("{ORIGIN}/connected?x=1"),
        ttl: None,
        state: "partner-state-42".into(),
        flow: Some(v1::create_form_link_request::Flow::Create(v1::CreateFlow {
            data_source: data_source.into(),
            ..Default::default()
        })),
        require_test: false,
    }
}

fn state_of(link: &v1::FormLink) -> State {
    State::try_from(link.state).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_settings_are_validated_and_kept() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let mut tenants = server.tenants().await;
    let bad = tenants
        .update_tenant(v1::UpdateTenantRequest {
            tenant: Some(v1::Tenant {
                name: "tenants/acme".into(),
                forms: Some(v1::FormSettings {
                    allowed_redirect_origins: vec!["https://app.example.com/path".into()],
                    frame_ancestors: vec!["http://evil.example.com".into()],
                    accent_color: "red".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["forms".into()],
            }),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&bad),
        [
            "tenant.forms.allowed_redirect_origins[0]",
            "tenant.forms.frame_ancestors[0]",
            "tenant.forms.accent_color"
        ]
    );
    // Without settings no link can be made.
    let refused = links(&server)
        .await
        .create_form_link(create_request("acme", "testdb"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    tenant_with_forms(&server, "beta", &["testdb"]).await;
    let tenant = tenants
        .get_tenant(v1::GetTenantRequest {
            name: "tenants/beta".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let forms = tenant.forms.unwrap();
    assert_eq!(forms.allowed_redirect_origins, [ORIGIN]);
    assert_eq!(forms.accent_color, "#0a5fb4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_open_once_and_report_their_state() {
    let server = Server::start();
    tenant_with_forms(&server, "acme", &["testdb"]).await;
    let mut client = links(&server).await;

    // Off the allowlist, a too-long life, a data source not allowed: refused.
    for (request, field) in [
        (
            v1::CreateFormLinkRequest {
                redirect_url: "https://app.example.com.evil.example/".into(),
                ..create_request("acme", "testdb")
            },
            "redirect_url",
        ),
        (
            v1::CreateFormLinkRequest {
                redirect_url: "https://evil.example/?u=https://app.example.com/".into(),
                ..create_request("acme", "testdb")
            },
            "redirect_url",
        ),
        (
            v1::CreateFormLinkRequest {
                ttl: Some(prost_types::Duration {
                    seconds: 3601,
                    nanos: 0,
                }),
                ..create_request("acme", "testdb")
            },
            "ttl",
        ),
        (create_request("acme", "postgresql"), "create.data_source"),
    ] {
        let status = client.create_form_link(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(violations(&status), [field]);
    }

    let link = client
        .create_form_link(create_request("acme", "testdb"))
        .await
        .unwrap()
        .into_inner();
    assert!(link.name.starts_with("tenants/acme/formLinks/"), "{link:?}");
    assert!(
        link.url
            .starts_with(&format!("{}/forms/", server.http_addr)),
        "{} vs {}",
        link.url,
        server.http_addr
    );
    assert_eq!(state_of(&link), State::Pending);
    let lifetime = link.expire_time.unwrap().seconds - link.create_time.unwrap().seconds;
    assert!((179..=181).contains(&lifetime), "{lifetime}");
    // The token says nothing readable.
    assert!(!link.url.contains("acme") && !link.url.contains("example"));

    let read = client
        .get_form_link(v1::GetFormLinkRequest {
            name: link.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&read), State::Pending);
    assert!(read.url.is_empty(), "the URL is given once");

    // Opened once; the second time it is used.
    assert_eq!(http_client::get(&link.url).status, 200);
    let read = client
        .get_form_link(v1::GetFormLinkRequest {
            name: link.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&read), State::Opened);
    assert_eq!(http_client::get(&link.url).status, 410);

    // A tampered token opens nothing.
    let mut tampered = link.url.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(http_client::get(&tampered).status, 404);

    // Revoked: no longer opens.
    let second = client
        .create_form_link(create_request("acme", "testdb"))
        .await
        .unwrap()
        .into_inner();
    let revoked = client
        .revoke_form_link(v1::RevokeFormLinkRequest {
            name: second.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&revoked), State::Revoked);
    assert_eq!(http_client::get(&second.url).status, 410);
    let read = client
        .get_form_link(v1::GetFormLinkRequest {
            name: second.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&read), State::Revoked);

    // Expired: a one-second link, read after more than a second.
    let short = client
        .create_form_link(v1::CreateFormLinkRequest {
            ttl: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..create_request("acme", "testdb")
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(http_client::get(&short.url).status, 410);
    let read = client
        .get_form_link(v1::GetFormLinkRequest {
            name: short.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state_of(&read), State::Expired);

    // Each step is in the audit log with the link's name.
    let audit = server.audit_file_text();
    assert!(
        audit
            .lines()
            .any(|line| line.contains("CreateFormLink") && line.contains(&link.name)),
        "{audit}"
    );
    assert!(
        audit
            .lines()
            .any(|line| line.contains("RevokeFormLink") && line.contains(&second.name)),
        "{audit}"
    );
}

#[test]
fn the_redirect_verification_key_is_published_as_a_jwk_set() {
    let server = Server::start();
    let answer = http_client::get(&format!("{}/v1/forms/keys", server.http_addr));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let keys: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let key = &keys["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["x"].as_str().unwrap().len(), 43, "{key}");
}
