//! The REST/JSON gateway against the real server: the same objects and
//! rules as gRPC (CRUD, PATCH with update_mask, `:test`, `:resolve`), the
//! AIP-193 errors (400 with field violations, 401, 403, 404, 405, 409), the
//! audit events of REST calls, and the served OpenAPI document.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use connvault::auth::Role;
use connvault::pb::v1;
use serde_json::{Value, json};

use crate::support::{Server, config, connection, create, operator_token, token};

/// One answer: status, lower-cased head, JSON body (`Null` if none).
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

/// One HTTP/1.1 request on a fresh connection, as curl would send it.
fn rest(
    server: &Server,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let addr = server.http_addr.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let payload = body.map(|body| body.to_string()).unwrap_or_default();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(bearer) = bearer {
        request.push_str(&format!("Authorization: Bearer {bearer}\r\n"));
    }
    if body.is_some() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&payload);
    socket.write_all(request.as_bytes()).unwrap();
    let mut received = Vec::new();
    socket.read_to_end(&mut received).unwrap();
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
    };
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body,
    }
}

fn connection_json(display_name: &str, password: &str) -> Value {
    json!({
        "displayName": display_name,
        "dataSource": "TESTDB",
        "config": {"host": "db.example.com", "user": "app", "database": "orders"},
        "secrets": {"password": password},
        "labels": {"env": "prod"},
        "product": "Reporting",
    })
}

/// The `fieldViolations` fields of an AIP-193 error body.
fn violated_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|detail| detail["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .flat_map(|detail| {
            detail["fieldViolations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|violation| violation["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn rest_crud_is_the_grpc_api() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let operator = operator_token();
    let op = Some(operator.as_str());

    let created = rest(
        &server,
        "POST",
        "/v1/tenants/acme/connections",
        op,
        Some(&connection_json("Orders DB", "pw-rest-1")),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(created.head.contains("content-type: application/json"));
    let name = created.body["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("tenants/acme/connections/"), "{name}");
    assert_eq!(created.body["dataSource"], "testdb");
    assert_eq!(created.body["secretFields"], json!(["password"]));
    assert!(
        !created.body.to_string().contains("pw-rest-1"),
        "no secret outside resolve"
    );

    // The same object through gRPC.
    let mut grpc = server.connections().await;
    let fetched = grpc
        .get_connection(v1::GetConnectionRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.display_name, "Orders DB");
    assert_eq!(fetched.etag, created.body["etag"].as_str().unwrap());

    let got = rest(&server, "GET", &format!("/v1/{name}"), op, None);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, created.body);
    let listed = rest(
        &server,
        "GET",
        "/v1/tenants/acme/connections?pageSize=10&dataSource=testdb",
        op,
        None,
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["connections"][0]["name"], name.as_str());

    // PATCH: only the masked field changes; a stale etag is ABORTED → 409.
    let etag = created.body["etag"].as_str().unwrap().to_owned();
    // An etag may hold quotes: encoded in the query, as curl --data-urlencode does.
    let etag_query =
        percent_encoding::utf8_percent_encode(&etag, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let patched = rest(
        &server,
        "PATCH",
        &format!("/v1/{name}?updateMask=displayName&etag={etag_query}"),
        op,
        Some(&json!({"displayName": "Renamed", "product": "ignored"})),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["displayName"], "Renamed");
    assert_eq!(patched.body["product"], "reporting", "outside the mask");
    assert_ne!(patched.body["etag"], etag.as_str());
    let stale = rest(
        &server,
        "PATCH",
        &format!("/v1/{name}?updateMask=displayName&etag={etag_query}"),
        op,
        Some(&json!({"displayName": "Again"})),
    );
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_eq!(stale.body["error"]["status"], "ABORTED");
    assert_eq!(stale.body["error"]["code"], 409);

    // :resolve returns the secret (the one place it travels).
    let resolved = rest(&server, "POST", &format!("/v1/{name}:resolve"), op, None);
    assert_eq!(resolved.status, 200, "{}{}", resolved.head, resolved.body);
    assert_eq!(
        resolved.body["secrets"]["password"], "pw-rest-1",
        "{}",
        resolved.body
    );

    // :test against a real listener, saved and inline.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut reachable = connection("Reachable", "pw");
    reachable.config = Some(config(&[("host", "127.0.0.1"), ("port", &port)]));
    let saved = create(&mut grpc, "acme", reachable).await.unwrap();
    let tested = rest(
        &server,
        "POST",
        &format!("/v1/{}:test", saved.name),
        op,
        Some(&json!({"timeoutMs": 3000})),
    );
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert_eq!(tested.body["success"], true, "{}", tested.body);
    assert_eq!(tested.body["stages"][0]["stage"], "TEST_STAGE_RESOLVE");
    assert_eq!(tested.body["serverVersion"], "fixture 1.0");
    drop(listener);
    let mut inline = connection_json("Inline", "pw");
    inline["config"] = json!({"host": "127.0.0.1", "port": port});
    let inline_test = rest(
        &server,
        "POST",
        "/v1/tenants/acme/connections:test",
        op,
        Some(&json!({"connection": inline, "timeoutMs": 3000})),
    );
    assert_eq!(inline_test.status, 200, "{}", inline_test.body);
    assert_eq!(
        inline_test.body["errorCategory"],
        "ERROR_CATEGORY_UNREACHABLE"
    );

    // DELETE, then 404 for REST and gRPC alike.
    let deleted = rest(&server, "DELETE", &format!("/v1/{name}"), op, None);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body, json!({}));
    let gone = rest(&server, "GET", &format!("/v1/{name}"), op, None);
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body["error"]["status"], "NOT_FOUND");
    let grpc_gone = grpc
        .get_connection(v1::GetConnectionRequest { name })
        .await
        .unwrap_err();
    assert_eq!(grpc_gone.code(), tonic::Code::NotFound);

    // Tenants, data sources: every service is served.
    let again = rest(
        &server,
        "POST",
        "/v1/tenants?tenantId=acme",
        op,
        Some(&json!({"displayName": "Twice"})),
    );
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.body["error"]["status"], "ALREADY_EXISTS");
    let tenant = rest(
        &server,
        "POST",
        "/v1/tenants?tenantId=globex",
        op,
        Some(&json!({"displayName": "Globex"})),
    );
    assert_eq!(tenant.status, 200, "{}", tenant.body);
    assert_eq!(tenant.body["name"], "tenants/globex");
    let sources = rest(&server, "GET", "/v1/dataSources", op, None);
    assert_eq!(sources.status, 200, "{}", sources.body);
    assert!(
        sources.body["dataSources"]
            .as_array()
            .is_some_and(|list| !list.is_empty())
    );
    let source = rest(&server, "GET", "/v1/dataSources/testdb", op, None);
    assert_eq!(source.status, 200, "{}", source.body);
}

#[tokio::test]
async fn rest_errors_are_aip_193_and_rules_are_the_grpc_ones() {
    let server = Server::start();
    server.create_tenant("acme").await;
    server.create_tenant("globex").await;
    let operator = operator_token();
    let op = Some(operator.as_str());

    // 400 with the per-field violations the gRPC API gives.
    let mut bad = connection_json("", "pw");
    bad["dataSource"] = json!("no-such-source");
    let invalid = rest(
        &server,
        "POST",
        "/v1/tenants/acme/connections",
        op,
        Some(&bad),
    );
    assert_eq!(invalid.status, 400, "{}", invalid.body);
    assert_eq!(invalid.body["error"]["status"], "INVALID_ARGUMENT");
    let fields = violated_fields(&invalid.body);
    assert!(
        fields.iter().any(|f| f.contains("display_name")),
        "{fields:?}"
    );

    // A body that is not the message: 400, and the value is not echoed.
    let wrong_type = rest(
        &server,
        "POST",
        "/v1/tenants/acme/connections",
        op,
        Some(&json!({"secrets": "s3cr3t-never-echoed"})),
    );
    assert_eq!(wrong_type.status, 400, "{}", wrong_type.body);
    assert_eq!(violated_fields(&wrong_type.body), ["body"]);
    assert!(!wrong_type.body.to_string().contains("s3cr3t-never-echoed"));
    let unknown = rest(
        &server,
        "GET",
        "/v1/tenants/acme/connections?noSuchField=1",
        op,
        None,
    );
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert_eq!(violated_fields(&unknown.body), ["noSuchField"]);

    // 401 without a token, 403 with another tenant's token.
    let anonymous = rest(&server, "GET", "/v1/tenants/acme/connections", None, None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(anonymous.body["error"]["status"], "UNAUTHENTICATED");
    assert!(anonymous.head.contains("www-authenticate: bearer"));
    let globex = token("globex-app", &["globex"], &[Role::Reader, Role::Writer]);
    let foreign = rest(
        &server,
        "GET",
        "/v1/tenants/acme/connections",
        Some(&globex),
        None,
    );
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    assert_eq!(foreign.body["error"]["status"], "PERMISSION_DENIED");
    let own = rest(
        &server,
        "GET",
        "/v1/tenants/globex/connections",
        Some(&globex),
        None,
    );
    assert_eq!(own.status, 200, "{}", own.body);

    // Paths: unknown → 404, known with another verb → 405.
    let nowhere = rest(&server, "GET", "/v1/nothing/here", op, None);
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.body["error"]["status"], "NOT_FOUND");
    let verb = rest(
        &server,
        "PUT",
        "/v1/tenants/acme/connections",
        op,
        Some(&json!({})),
    );
    assert_eq!(verb.status, 405, "{}", verb.body);
}

#[tokio::test]
async fn rest_calls_are_audited_like_grpc_calls() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let writer = token("rest-writer", &["acme"], &[Role::Writer, Role::Reader]);
    let created = rest(
        &server,
        "POST",
        "/v1/tenants/acme/connections",
        Some(&writer),
        Some(&connection_json("Audited", "pw-audit")),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let request_id = created
        .head
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .unwrap()
        .to_owned();
    let operator = operator_token();
    let events = rest(
        &server,
        "GET",
        "/v1/tenants/acme/auditEvents?filter=method%3DCreateConnection",
        Some(&operator),
        None,
    );
    assert_eq!(events.status, 200, "{}", events.body);
    let event = &events.body["events"][0];
    assert_eq!(event["principal"], "rest-writer");
    assert_eq!(event["outcome"], "OK");
    assert_eq!(event["resource"], created.body["name"]);
    assert_eq!(event["requestId"], request_id.as_str());
    assert_eq!(
        event["secretHmacs"]["password"].as_str().map(str::len),
        Some(64)
    );
    assert!(!events.body.to_string().contains("pw-audit"));
}

#[test]
fn the_served_openapi_document_is_the_committed_one() {
    let server = Server::start();
    let served = rest(&server, "GET", "/openapi.json", None, None);
    assert_eq!(served.status, 200);
    let committed: Value = serde_json::from_str(include_str!("../../docs/openapi.json")).unwrap();
    assert_eq!(served.body, committed);
    // Every operation of the four public services is documented.
    let operations: usize = served.body["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|path| path.as_object().unwrap().len())
        .sum();
    assert_eq!(operations, 20);
}

/// schemathesis, from PATH or else from PyPI into a venv under target/.
fn schemathesis() -> std::path::PathBuf {
    if let Some(found) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("schemathesis"))
            .find(|candidate| candidate.is_file())
    }) {
        return found;
    }
    let venv = connvault_testkit::target_dir().join("schemathesis-venv");
    let binary = venv.join("bin/schemathesis");
    if !binary.is_file() {
        let run = |command: &mut std::process::Command| {
            let output = command.output().unwrap();
            assert!(
                output.status.success(),
                "{command:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv));
        run(std::process::Command::new(venv.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "schemathesis==4.32.5",
        ]));
    }
    binary
}

/// A bounded schemathesis run over every operation of the served document,
/// with a token for every tenant: no 5xx, every status, content type and
/// body as the document says.
#[tokio::test]
async fn schemathesis_finds_every_operation_conforming() {
    let server = Server::start();
    server.create_tenant("acme").await;
    let mut grpc = server.connections().await;
    create(&mut grpc, "acme", connection("Orders DB", "pw"))
        .await
        .unwrap();
    let schemathesis = schemathesis();
    let report = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(schemathesis)
        .arg("run")
        .arg(format!("{}/openapi.json", server.http_addr))
        .args(["--url", &server.http_addr])
        .args(["-H", &format!("Authorization: Bearer {}", operator_token())])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "coverage,fuzzing",
            "--max-examples",
            "5",
            "--generation-deterministic",
            "--request-timeout",
            "60",
            "--max-failures",
            "10",
            "--no-color",
        ])
        .current_dir(report.path())
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Selected: 20/20"), "{stdout}");
    assert!(stdout.contains("Tested: 20"), "{stdout}");
    assert!(!stdout.contains(" failed"), "{stdout}");
}
