//! The built plugin, loaded through the real ABI by the harness: what the
//! server would see, without a server.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::TcpListener;

use connvault_plugin_harness::{Harness, int, pb, string};

fn harness() -> Harness {
    Harness::built("connvault_plugin_sftp_example").unwrap()
}

#[test]
fn describes_itself_as_the_server_checks_it() {
    let harness = harness();
    assert_eq!(harness.plugin().name(), "connvault-plugin-sftp-example");
    assert_eq!(harness.plugin().version(), "0.3.0");
    let source = harness.data_source("sftp").unwrap();
    assert_eq!(source.aliases, ["SFTP"]);
}

#[test]
fn a_valid_connection_keeps_every_field_and_gets_its_defaults() {
    let harness = harness();
    let spec = harness.spec(
        "sftp",
        &[
            ("host", string("files.example.com")),
            ("user", string("etl")),
        ],
        &[("password", "pw")],
    );
    let answer = harness.validate(&spec).unwrap();
    assert!(answer.violations.is_empty(), "{:?}", answer.violations);
    assert_eq!(answer.normalized_config["port"], int(22));
    assert_eq!(answer.normalized_config["directory"], string("/"));
    assert!(harness.server_refusals(&spec, &answer).is_empty());
}

#[test]
fn violations_speak_words_not_regexes() {
    let harness = harness();
    let spec = harness.spec(
        "sftp",
        &[
            ("host", string("files example")),
            ("user", string("etl")),
            ("port", int(70000)),
            ("directory", string("relative")),
        ],
        &[],
    );
    let answer = harness.validate(&spec).unwrap();
    let found: Vec<String> = answer
        .violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect();
    assert!(
        found.contains(&"config.host: must be a host name or an IPv4 address".to_owned()),
        "{found:?}"
    );
    assert!(
        found.iter().any(|v| v.starts_with("config.port")),
        "{found:?}"
    );
    assert!(found.iter().all(|v| !v.contains("[A-Za-z")), "{found:?}");
}

#[test]
fn render_hides_the_password_unless_asked() {
    let harness = harness();
    let spec = harness.spec(
        "sftp",
        &[
            ("host", string("files.example.com")),
            ("user", string("etl")),
        ],
        &[("password", "s3cret")],
    );
    let hidden = harness.render(&spec, false).unwrap();
    assert_eq!(hidden.uri, "sftp://etl:REDACTED@files.example.com:22/");
    let shown = harness.render(&spec, true).unwrap();
    assert_eq!(shown.uri, "sftp://etl:s3cret@files.example.com:22/");
}

#[test]
fn test_reads_an_ssh_banner_and_refuses_anything_else() {
    let harness = harness();
    let ssh = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = ssh.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = ssh.accept() {
            let _ = stream.write_all(b"SSH-2.0-example\r\n");
        }
    });
    let spec = |port: u16| {
        harness.spec(
            "sftp",
            &[
                ("host", string("127.0.0.1")),
                ("user", string("etl")),
                ("port", int(i64::from(port))),
            ],
            &[("password", "pw")],
        )
    };
    let report = harness.test(&spec(port)).unwrap();
    assert!(report.success, "{report:?}");

    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = http.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = http.accept() {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let report = harness.test(&spec(port)).unwrap();
    assert!(!report.success);
    assert_eq!(report.error_category(), pb::ErrorCategory::Protocol);
    let failed = report
        .stages
        .iter()
        .find(|stage| stage.status() == pb::StageStatus::Failed)
        .unwrap();
    assert_eq!(failed.stage(), pb::Stage::Authenticate);
    assert!(!failed.message.contains("HTTP"), "{failed:?}");
}
