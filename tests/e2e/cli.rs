//! The client verbs of the real `connvault` binary against a real server:
//! every verb, each output format, the exit codes, secrets from a file,
//! `audit follow` and the completion scripts.

use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{Server, operator_token};

/// `connvault <args>` against `server` with the operator's token in CONNVAULT_TOKEN.
fn cli(server: &Server, args: &[&str]) -> Output {
    cli_with_token(server, Some(&operator_token()), args)
}

fn cli_with_token(server: &Server, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_connvault"));
    command
        .args(args)
        .env("CONNVAULT_ADDR", &server.addr)
        .env_remove("CONNVAULT_TOKEN")
        .stdin(Stdio::null());
    if let Some(token) = token {
        command.env("CONNVAULT_TOKEN", token);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs and expects success; the stdout parsed as JSON.
fn json(server: &Server, args: &[&str]) -> Value {
    let output = cli(server, args);
    assert!(output.status.success(), "{args:?}: {}", text(&output));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{args:?}: not JSON ({error}): {}", text(&output)))
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

#[test]
fn client_verbs_drive_the_api_end_to_end() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();

    // Tenants, in each output format.
    let created = json(
        &server,
        &[
            "tenants",
            "create",
            "acme",
            "--display-name",
            "Acme Corp",
            "-o",
            "json",
        ],
    );
    assert_eq!(created["name"], "tenants/acme");
    assert_eq!(created["displayName"], "Acme Corp");
    let listed = cli(&server, &["tenants", "list"]);
    let table = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(
        table.starts_with("NAME") && table.lines().any(|line| line.starts_with("tenants/acme")),
        "{table}"
    );
    let yaml = cli(&server, &["tenants", "get", "acme", "-o", "yaml"]);
    let parsed: Value = serde_yaml_ng::from_slice(&yaml.stdout).unwrap();
    assert_eq!(parsed["displayName"], "Acme Corp", "{}", text(&yaml));

    // A connection from a YAML file, the password from a file of its own.
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret-from-a-file\n").unwrap();
    let spec = dir.path().join("connection.yaml");
    std::fs::write(
        &spec,
        "displayName: Orders DB\ndataSource: testdb\nconfig:\n  host: 127.0.0.1\n  database: orders\nlabels:\n  env: prod\n",
    )
    .unwrap();
    let connection = json(
        &server,
        &[
            "connections",
            "create",
            "tenants/acme",
            "-f",
            spec.to_str().unwrap(),
            "--secret-file",
            &format!("password={}", password.display()),
            "-o",
            "json",
        ],
    );
    let name = connection["name"].as_str().unwrap().to_owned();
    assert_eq!(connection["secretFields"], serde_json::json!(["password"]));
    assert!(
        !connection.to_string().contains("s3cret"),
        "a create answer carries no secret: {connection}"
    );

    // Update from flags: the mask is what the flags set.
    let updated = json(
        &server,
        &[
            "connections",
            "update",
            &name,
            "--display-name",
            "Orders DB (EU)",
            "--etag",
            connection["etag"].as_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert_eq!(updated["displayName"], "Orders DB (EU)");
    assert_eq!(
        updated["labels"]["env"], "prod",
        "labels were not in the mask"
    );

    let listed = json(
        &server,
        &[
            "connections",
            "list",
            "acme",
            "--data-source",
            "testdb",
            "-o",
            "json",
        ],
    );
    assert_eq!(listed["connections"][0]["name"], name.as_str());

    // The test prints its stages; a port nothing listens on fails with exit 8,
    // one a listener holds succeeds.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    json(
        &server,
        &[
            "connections",
            "update",
            &name,
            "--set",
            &format!("port={closed_port}"),
            "--secret-file",
            &format!("password={}", password.display()),
            "-o",
            "json",
        ],
    );
    let failed = cli(&server, &["connections", "test", &name]);
    assert_eq!(code(&failed), Some(8), "{}", text(&failed));
    let stages = String::from_utf8_lossy(&failed.stdout).to_string();
    assert!(
        stages.starts_with("STAGE")
            && stages.contains("TEST_STAGE_CONNECT")
            && stages.contains("result: FAILED"),
        "{stages}"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    json(
        &server,
        &[
            "connections",
            "update",
            &name,
            "--set",
            &format!("port={port}"),
            "--secret-file",
            &format!("password={}", password.display()),
            "-o",
            "json",
        ],
    );
    let passed = cli(&server, &["connections", "test", &name, "-o", "json"]);
    assert_eq!(code(&passed), Some(0), "{}", text(&passed));
    let result: Value = serde_json::from_slice(&passed.stdout).unwrap();
    assert_eq!(result["success"], true, "{result}");

    let catalog = cli(&server, &["connections", "discover", &name]);
    let tables = String::from_utf8_lossy(&catalog.stdout).to_string();
    assert!(catalog.status.success(), "{}", text(&catalog));
    assert!(
        tables.contains("orders") && tables.contains("public"),
        "{tables}"
    );

    // Resolve hands the secret out (that is its job), from the file's content.
    let resolved = json(&server, &["connections", "resolve", &name, "-o", "json"]);
    assert_eq!(resolved["secrets"]["password"], "s3cret-from-a-file");

    let sources = json(&server, &["data-sources", "list", "-o", "json"]);
    assert!(
        sources["dataSources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|source| source["id"] == "testdb"),
        "{sources}"
    );
    let source = cli(&server, &["data-sources", "get", "TESTDB"]);
    assert!(
        String::from_utf8_lossy(&source.stdout).contains("password"),
        "{}",
        text(&source)
    );

    let events = json(
        &server,
        &[
            "audit",
            "list",
            "acme",
            "--filter",
            "method=ResolveConnection",
            "-o",
            "json",
        ],
    );
    assert_eq!(events["events"][0]["outcome"], "OK", "{events}");

    // Exit codes say what failed.
    let missing = cli(&server, &["connections", "get", &format!("{name}0")]);
    assert_ne!(code(&missing), Some(0), "{}", text(&missing));
    let missing = cli(&server, &["tenants", "get", "nobody"]);
    assert_eq!(code(&missing), Some(6), "{}", text(&missing));
    let invalid = cli(&server, &["tenants", "create", "no spaces allowed"]);
    assert_eq!(code(&invalid), Some(7), "{}", text(&invalid));
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("tenant_id"),
        "the field violation is named: {}",
        text(&invalid)
    );
    let denied = cli_with_token(&server, Some("not-a-token"), &["tenants", "list"]);
    assert_eq!(code(&denied), Some(5), "{}", text(&denied));
    let unreachable = Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args([
            "tenants",
            "list",
            "--addr",
            &format!("127.0.0.1:{closed_port}"),
        ])
        .env("CONNVAULT_TOKEN", operator_token())
        .output()
        .unwrap();
    assert_eq!(code(&unreachable), Some(4), "{}", text(&unreachable));
    let unreadable = cli(
        &server,
        &[
            "connections",
            "create",
            "acme",
            "--secret-file",
            "password=/nonexistent/file",
        ],
    );
    assert_eq!(code(&unreadable), Some(3), "{}", text(&unreadable));

    let removed = cli(&server, &["connections", "delete", &name]);
    assert!(removed.status.success(), "{}", text(&removed));
    let removed = cli(&server, &["tenants", "delete", "acme"]);
    assert!(removed.status.success(), "{}", text(&removed));
    let gone = cli(&server, &["tenants", "get", "acme"]);
    assert_eq!(code(&gone), Some(6), "{}", text(&gone));
}

/// A secret given as a flag value would land in shell history: there is no such flag.
#[test]
fn no_flag_takes_a_secret_value() {
    let server = Server::start();
    for flag in ["--secret", "--password", "--secrets"] {
        let output = cli(
            &server,
            &["connections", "create", "acme", flag, "password=hunter2"],
        );
        assert_eq!(code(&output), Some(2), "{flag}: {}", text(&output));
    }
}

#[test]
fn audit_follow_prints_events_as_they_are_recorded() {
    let server = Server::start();
    let mut follower = Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args([
            "audit",
            "follow",
            "tenants/-",
            "-o",
            "json",
            "--interval-ms",
            "100",
        ])
        .env("CONNVAULT_ADDR", &server.addr)
        .env("CONNVAULT_TOKEN", operator_token())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    // Created after the follower started: the follower prints them, one JSON line each.
    let mut found = false;
    for attempt in 0..60 {
        let id = format!("followed{attempt}");
        let created = cli(&server, &["tenants", "create", &id]);
        assert!(created.status.success(), "{}", text(&created));
        while let Ok(line) = received.recv_timeout(std::time::Duration::from_millis(500)) {
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["method"] == "CreateTenant" && event["outcome"] == "OK" {
                found = true;
            }
        }
        if found {
            break;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(found, "audit follow printed no CreateTenant event");
}

#[test]
fn completion_scripts_name_the_client_verbs() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(env!("CARGO_BIN_EXE_connvault"))
            .args(["completions", shell])
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{shell}: {}", text(&output));
        for verb in ["connections", "data-sources", "audit", "tenants"] {
            assert!(script.contains(verb), "{shell} script lacks {verb}");
        }
    }
}
