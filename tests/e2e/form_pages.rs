//! The hosted form pages over real HTTP against a real server and a
//! throwaway PostgreSQL: open, test, save, the signed redirect, the edit
//! flow's secret rule, the picker, refusals, escaping and the page's
//! security headers. (What a browser adds — JavaScript off, keyboard use,
//! axe-core — is not covered here.)

use connvault::pb::v1;
use connvault_testkit::servers::Postgres;
use tonic::Code;

use crate::form_helpers::{cookie, csrf, post, verified};
use crate::form_links::{ORIGIN, create_request, links, tenant_with_forms};
use crate::http_client;
use crate::support::{Server, config, create};

fn start() -> Server {
    Server::start_with_plugins(&[(
        "connvault-plugin-postgres",
        "connvault_plugin_postgres",
        "postgres",
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_form_tests_saves_and_comes_back_signed() {
    let pg = Postgres::start(Default::default());
    let server = start();
    tenant_with_forms(&server, "acme", &["postgresql"]).await;
    let mut request = create_request("acme", "postgresql");
    if let Some(v1::create_form_link_request::Flow::Create(create)) = &mut request.flow {
        create.display_name = "Orders <script>alert(1)</script> \"quoted\"".into();
        create.editable_name = true;
        create.labels = [("team".to_owned(), "<script>x</script>'\"".to_owned())].into();
    }
    let link = links(&server)
        .await
        .create_form_link(request)
        .await
        .unwrap()
        .into_inner();

    let opened = http_client::get(&link.url);
    assert_eq!(opened.status, 200, "{}", opened.body);
    let policy = opened.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self' https://app.example.com",
        "base-uri 'none'",
    ] {
        assert!(policy.contains(part), "{part} missing from {policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(opened.header("cache-control"), Some("no-store"));
    assert_eq!(opened.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(opened.header("x-frame-options"), Some("DENY"));
    let set = opened.header("set-cookie").unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Max-Age=1800"] {
        assert!(set.contains(attribute), "{attribute} missing from {set}");
    }
    // Schema-driven, escaped, branded, no external asset.
    let page = &opened.body;
    assert!(page.contains("Connect PostgreSQL"), "{page}");
    assert!(page.contains("Acme Analytics"));
    assert!(page.contains("name=\"f.host\""));
    assert!(page.contains("type=\"password\""));
    assert!(page.contains("type=\"number\""));
    assert!(!page.contains("<script"), "a script tag reached the page");
    assert!(page.contains("Orders &lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot;"));
    assert!(!page.contains("src=") && !page.contains("href=\"http"));
    let session = cookie(&opened);
    let token = csrf(page);
    let port = pg.port().to_string();

    // Errors all at once, next to their fields, input kept, secrets not.
    let invalid = post(
        &server,
        &session,
        &[
            ("csrf", &token),
            ("action", "save"),
            ("display_name", "Orders"),
            ("f.host", ""),
            ("f.port", "not a number"),
            ("f.user", "someone"),
            ("f.password", "typed-secret"),
        ],
    );
    assert_eq!(invalid.status, 422, "{}", invalid.body);
    assert!(
        invalid.body.contains("Enter a whole number."),
        "{}",
        invalid.body
    );
    assert!(invalid.body.contains("value=\"someone\""));
    assert!(!invalid.body.contains("typed-secret"));

    // A wrong password: the friendly words, nothing saved.
    let wrong = post(
        &server,
        &session,
        &[
            ("csrf", &token),
            ("action", "test"),
            ("display_name", "Orders"),
            ("f.host", "127.0.0.1"),
            ("f.port", &port),
            ("f.user", pg.user()),
            ("f.password", "not-the-password"),
        ],
    );
    assert_eq!(wrong.status, 200, "{}", wrong.body);
    assert!(
        wrong.body.contains("Connection test failed"),
        "{}",
        wrong.body
    );
    assert!(
        wrong.body.contains("refused the user name or password"),
        "{}",
        wrong.body
    );
    assert!(!wrong.body.contains("not-the-password"));

    // The right one: every stage passes.
    let tested = post(
        &server,
        &session,
        &[
            ("csrf", &token),
            ("action", "test"),
            ("display_name", "Orders"),
            ("f.host", "127.0.0.1"),
            ("f.port", &port),
            ("f.user", pg.user()),
            ("f.password", pg.password()),
        ],
    );
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert!(
        tested.body.contains("Connection test passed"),
        "{}",
        tested.body
    );
    assert!(!tested.body.contains("</strong>failed"), "{}", tested.body);
    assert!(!tested.body.contains(pg.password()));
    assert!(
        tested
            .body
            .contains("A value is set. Leave this empty to keep it.")
    );

    // A foreign CSRF token is refused and changes nothing.
    let forged = post(&server, &session, &[("csrf", "forged"), ("action", "save")]);
    assert_eq!(forged.status, 403);

    // Save with the password left empty: the tested one is kept.
    let saved = post(
        &server,
        &session,
        &[
            ("csrf", &token),
            ("action", "save"),
            ("display_name", "Orders"),
            ("f.host", "127.0.0.1"),
            ("f.port", &port),
            ("f.user", pg.user()),
            ("f.password", ""),
        ],
    );
    assert_eq!(saved.status, 303, "{}", saved.body);
    let location = saved.header("location").unwrap();
    assert!(
        location.starts_with(&format!("{ORIGIN}/connected?x=1&")),
        "{location}"
    );
    let query = verified(&server, location);
    assert_eq!(query["outcome"], "created");
    assert_eq!(query["state"], "partner-state-42");
    assert_eq!(query["link"], link.name);
    let name = query["connection"].clone();

    // The connection exists and resolves with the right password.
    let mut connections = server.connections().await;
    let resolved = connections
        .resolve_connection(v1::ResolveConnectionRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.secrets["password"], pg.password());
    let stored = resolved.connection.unwrap();
    assert_eq!(stored.display_name, "Orders");
    assert_eq!(stored.labels["team"], "<script>x</script>'\"");

    // The link is completed and works no more.
    let read = links(&server)
        .await
        .get_form_link(v1::GetFormLinkRequest {
            name: link.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.state, v1::form_link::State::Completed as i32);
    assert_eq!(read.connection, name);
    let again = http_client::get(&link.url);
    assert_eq!(again.status, 410);
    assert!(again.body.contains("already been used"));
    let after = post(&server, &session, &[("csrf", &token), ("action", "save")]);
    assert_eq!(after.status, 410);

    // Each step is in the audit log with the link.
    let audit = server.audit_file_text();
    for method in ["FormOpened", "FormTested", "FormSaved"] {
        assert!(
            audit
                .lines()
                .any(|line| line.contains(method) && line.contains(&link.name)),
            "{method} missing:\n{audit}"
        );
    }
    assert!(!audit.contains(pg.password()) && !server.log_text().contains(pg.password()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_form_keeps_the_secret_unless_the_host_changes() {
    let pg = Postgres::start(Default::default());
    let server = start();
    tenant_with_forms(&server, "acme", &["postgresql"]).await;
    let port = pg.port().to_string();
    let mut connections = server.connections().await;
    let existing = create(
        &mut connections,
        "acme",
        v1::Connection {
            display_name: "Warehouse".into(),
            data_source: "postgresql".into(),
            config: Some(config(&[
                ("host", "127.0.0.1"),
                ("port", &port),
                ("user", pg.user()),
            ])),
            secrets: [("password".to_owned(), pg.password().to_owned())].into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let edit = |name: &str| v1::CreateFormLinkRequest {
        flow: Some(v1::create_form_link_request::Flow::Edit(v1::EditFlow {
            connection: name.to_owned(),
        })),
        ..create_request("acme", "")
    };
    let mut client = links(&server).await;
    let link = client
        .create_form_link(edit(&existing.name))
        .await
        .unwrap()
        .into_inner();
    let opened = http_client::get(&link.url);
    assert_eq!(opened.status, 200);
    assert!(
        opened.body.contains("value=\"127.0.0.1\""),
        "{}",
        opened.body
    );
    assert!(
        opened
            .body
            .contains("A value is set. Leave this empty to keep it.")
    );
    assert!(!opened.body.contains(pg.password()));
    let (session, token) = (cookie(&opened), csrf(&opened.body));

    // The host changes and the password is left empty: demanded again.
    let moved = post(
        &server,
        &session,
        &[
            ("csrf", &token),
            ("action", "save"),
            ("display_name", "Warehouse"),
            ("f.host", "localhost"),
            ("f.port", &port),
            ("f.user", pg.user()),
        ],
    );
    assert_eq!(moved.status, 422, "{}", moved.body);
    assert!(moved.body.contains("enter it again"), "{}", moved.body);

    // Nothing that redirects the secret changes: saved, the secret kept.
    let kept = post(
        &server,
        &session,
        &[
            ("csrf", &token),
            ("action", "save"),
            ("display_name", "Warehouse (prod)"),
            ("f.host", "127.0.0.1"),
            ("f.port", &port),
            ("f.user", pg.user()),
        ],
    );
    assert_eq!(kept.status, 303, "{}", kept.body);
    let query = verified(&server, kept.header("location").unwrap());
    assert_eq!(query["outcome"], "updated");
    assert_eq!(query["connection"], existing.name);
    let resolved = connections
        .resolve_connection(v1::ResolveConnectionRequest {
            name: existing.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.secrets["password"], pg.password());
    assert_eq!(
        resolved.connection.unwrap().display_name,
        "Warehouse (prod)"
    );

    // An edit link to a connection of another tenant is refused at creation.
    let foreign = client
        .create_form_link(edit(
            "tenants/other/connections/0190b1d2-0000-7000-8000-000000000000",
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_data_source_the_page_offers_the_allowed_ones_and_cancel_goes_back() {
    let server = start();
    tenant_with_forms(&server, "acme", &["postgresql"]).await;
    let link = links(&server)
        .await
        .create_form_link(create_request("acme", ""))
        .await
        .unwrap()
        .into_inner();
    let opened = http_client::get(&link.url);
    assert_eq!(opened.status, 200);
    assert!(
        opened.body.contains("Choose a data source"),
        "{}",
        opened.body
    );
    assert!(
        opened
            .body
            .contains("<option value=\"postgresql\">PostgreSQL</option>")
    );
    let (session, token) = (cookie(&opened), csrf(&opened.body));
    // Something not allowed is not offered: the picker again.
    let refused = post(
        &server,
        &session,
        &[
            ("csrf", &token),
            ("action", "choose"),
            ("data_source", "testdb"),
        ],
    );
    assert!(refused.body.contains("Choose a data source"));
    let chosen = post(
        &server,
        &session,
        &[
            ("csrf", &token),
            ("action", "choose"),
            ("data_source", "postgresql"),
        ],
    );
    assert_eq!(chosen.status, 200);
    assert!(
        chosen.body.contains("Connect PostgreSQL"),
        "{}",
        chosen.body
    );
    assert!(
        chosen
            .body
            .contains("name=\"data_source\" value=\"postgresql\"")
    );
    let cancelled = post(&server, &session, &[("csrf", &token), ("action", "cancel")]);
    assert_eq!(cancelled.status, 303);
    let query = verified(&server, cancelled.header("location").unwrap());
    assert_eq!(query["outcome"], "cancelled");
    assert_eq!(query["connection"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_pages_explain_and_carry_the_same_headers() {
    let server = start();
    tenant_with_forms(&server, "acme", &["postgresql"]).await;
    let mut client = links(&server).await;
    let link = client
        .create_form_link(create_request("acme", "postgresql"))
        .await
        .unwrap()
        .into_inner();
    client
        .revoke_form_link(v1::RevokeFormLinkRequest {
            name: link.name.clone(),
        })
        .await
        .unwrap();
    let revoked = http_client::get(&link.url);
    assert_eq!(revoked.status, 410);
    assert!(revoked.body.contains("no longer valid"));
    let invalid = http_client::get(&format!("{}/forms/not-a-token", server.http_addr));
    assert_eq!(invalid.status, 404);
    assert!(invalid.body.contains("This link is not valid"));
    for answer in [&revoked, &invalid] {
        assert!(answer.header("content-security-policy").is_some());
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        assert_eq!(answer.header("x-frame-options"), Some("DENY"));
        assert!(answer.header("set-cookie").is_none());
    }
    // No session: the form cannot be posted.
    let nobody = http_client::request(
        "POST",
        &format!("{}/forms/session", server.http_addr),
        &["Content-Type: application/x-www-form-urlencoded".into()],
        b"csrf=x&action=save",
    );
    assert_eq!(nobody.status, 403);
    assert!(nobody.body.contains("session has ended"));
}

/// The page's size and the server's time to first byte, median of 100
/// loads (each load opens a fresh link, as each user's first visit does).
/// A measurement, not a test: `cargo test --test e2e form_page_figures -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn form_page_figures() {
    use std::io::{Read, Write};
    let server = start();
    tenant_with_forms(&server, "acme", &["postgresql"]).await;
    let mut client = links(&server).await;
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..100 {
        let link = client
            .create_form_link(create_request("acme", "postgresql"))
            .await
            .unwrap()
            .into_inner();
        let rest = link.url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut socket = std::net::TcpStream::connect(host).unwrap();
        socket.set_nodelay(true).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let started = std::time::Instant::now();
        socket.write_all(request.as_bytes()).unwrap();
        let mut first = [0u8; 1];
        socket.read_exact(&mut first).unwrap();
        times.push(started.elapsed());
        let mut rest = Vec::new();
        socket.read_to_end(&mut rest).unwrap();
        let text = String::from_utf8_lossy(&rest);
        size = text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.len())
            .unwrap();
    }
    times.sort();
    println!(
        "form page: {size} bytes of HTML (no other asset); time to first byte: median {:?}, min {:?}, max {:?} over 100 loads",
        times[50], times[0], times[99]
    );
}
