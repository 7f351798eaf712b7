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
