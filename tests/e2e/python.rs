//! The Python example client (`examples/python`) against a real server: proves
//! the protos work from another language's stock gRPC stack.

use std::process::Command;

use crate::support::Server;

#[test]
fn python_example_client_runs_against_the_server() {
    let server = Server::start();
    let addr = server
        .addr
        .strip_prefix("http://")
        .unwrap_or(&server.addr)
        .to_owned();
    let script = connvault_testkit::workspace_root().join("examples/python/run.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&addr)
        .env("CARGO_TARGET_DIR", connvault_testkit::target_dir())
        // The client sends it as `authorization: Bearer ...`.
        .env("CONNVAULT_TOKEN", crate::support::operator_token())
        .output()
        .expect("run examples/python/run.sh (needs bash and python3 with venv)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} {addr} failed: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        script.display(),
        output.status,
        server.log_text()
    );
    assert!(stdout.contains("OK:"), "stdout:\n{stdout}");
}

/// The README's "embed connvault in your product" example: a link from the
/// backend, a scripted user saving the form, the redirect verified.
#[test]
fn python_embed_example_creates_a_link_saves_the_form_and_verifies_the_redirect() {
    let server = Server::start();
    let addr = server
        .addr
        .strip_prefix("http://")
        .unwrap_or(&server.addr)
        .to_owned();
    let script = connvault_testkit::workspace_root().join("examples/python/run.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&addr)
        .arg("embed.py")
        .env("CARGO_TARGET_DIR", connvault_testkit::target_dir())
        .env("CONNVAULT_TOKEN", crate::support::operator_token())
        .env("CONNVAULT_HTTP", &server.http_addr)
        .output()
        .expect("run examples/python/run.sh embed.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "embed.py failed: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        output.status,
        server.log_text()
    );
    assert!(stdout.contains("OK: link created"), "stdout:\n{stdout}");
}
