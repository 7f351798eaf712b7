//! The Node.js example client (`examples/node`) against a real server:
//! the protos work from @grpc/grpc-js with @grpc/proto-loader, unchanged.

use std::process::Command;

use crate::support::Server;

#[test]
fn node_example_client_runs_against_the_server() {
    let server = Server::start();
    let addr = server.addr.trim_start_matches("http://").to_owned();
    let script = connvault_testkit::workspace_root().join("examples/node/run.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&addr)
        .env("CARGO_TARGET_DIR", connvault_testkit::target_dir())
        .env("CONNVAULT_TOKEN", crate::support::operator_token())
        .output()
        .expect("run examples/node/run.sh (needs bash, node and npm: scripts/test-deps.sh)");
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
