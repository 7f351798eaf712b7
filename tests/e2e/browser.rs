//! The hosted forms in a real browser (headless Chromium through
//! tests/browser/run.sh): the create flow with JavaScript off (wrong
//! password, passing test, save, the redirect verified here, the password
//! resolved), the used, expired, revoked and tampered link pages, the
//! picker by keyboard, hostile strings inert, and axe-core on the form, a
//! test result and an error page. Needs Chromium and Node.js
//! (scripts/test-deps.sh installs them). Screenshots go to
//! CONNVAULT_SCREENSHOTS_DIR when set (docs/images/ holds the committed ones).

use std::process::Command;

use connvault::pb::v1;
use connvault_testkit::servers::Postgres;

use crate::form_helpers::verified;
use crate::form_links::{create_request, links, tenant_with_forms};
use crate::support::Server;

async fn link(
    client: &mut v1::form_link_service_client::FormLinkServiceClient<crate::support::Authed>,
    request: v1::CreateFormLinkRequest,
) -> v1::FormLink {
    client.create_form_link(request).await.unwrap().into_inner()
}

const XSS_NAME: &str = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_works_in_chromium_without_javascript_and_passes_axe() {
    let pg = Postgres::start(Default::default());
    let server = Server::start_with_plugins(&[(
        "connvault-plugin-postgres",
        "connvault_plugin_postgres",
        "postgres",
    )]);
    tenant_with_forms(&server, "acme", &["postgresql"]).await;
    let mut client = links(&server).await;
    let create = link(&mut client, create_request("acme", "postgresql")).await;
    let picker = link(&mut client, create_request("acme", "")).await;
    let axe_form = link(&mut client, create_request("acme", "postgresql")).await;
    let mut hostile = create_request("acme", "postgresql");
    if let Some(v1::create_form_link_request::Flow::Create(flow)) = &mut hostile.flow {
        flow.display_name = XSS_NAME.into();
        flow.editable_name = true;
        flow.labels = [("note".to_owned(), XSS_NAME.to_owned())].into();
    }
    let xss = link(&mut client, hostile).await;
    let revoked = link(&mut client, create_request("acme", "postgresql")).await;
    client
        .revoke_form_link(v1::RevokeFormLinkRequest {
            name: revoked.name.clone(),
        })
        .await
        .unwrap();
    let expired = link(
        &mut client,
        v1::CreateFormLinkRequest {
            ttl: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..create_request("acme", "postgresql")
        },
    )
    .await;
    let mut tampered = create.url.clone();
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let input = serde_json::json!({
        "create": create.url,
        "picker": picker.url,
        "axe_form": axe_form.url,
        "xss": xss.url,
        "xss_name": XSS_NAME,
        "revoked": revoked.url,
        "expired": expired.url,
        "tampered": tampered,
        "pg": { "port": pg.port(), "user": pg.user(), "password": pg.password() },
        "screenshots": std::env::var("CONNVAULT_SCREENSHOTS_DIR").unwrap_or_default(),
    });
    let script = connvault_testkit::workspace_root().join("tests/browser/run.sh");
    let output = Command::new("bash")
        .arg(&script)
        .env("CARGO_TARGET_DIR", connvault_testkit::target_dir())
        .env("CONNVAULT_BROWSER_INPUT", input.to_string())
        .output()
        .expect("run tests/browser/run.sh (needs node; scripts/test-deps.sh installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser scenarios failed: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        output.status,
        server.log_text()
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    println!("{report}");
    let query = verified(&server, report["redirect"].as_str().unwrap());
    assert_eq!(query["outcome"], "created");
    assert_eq!(query["state"], "partner-state-42");
    let resolved = server
        .connections()
        .await
        .resolve_connection(v1::ResolveConnectionRequest {
            name: query["connection"].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.secrets["password"], pg.password());
    assert_eq!(resolved.connection.unwrap().display_name, "Orders");
}
