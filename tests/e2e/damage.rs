//! A damaged store is never served silently: the real binary refuses a store
//! that lost acknowledged writes (and a wrong master key, whatever the
//! store's state), `connvault store verify` reports the damage, and
//! `--accept-data-loss` starts on what is left and audits it.

use std::path::Path;
use std::process::{Command, Output};

use connvault::pb::v1;
use connvault::pb::v1::audit_service_client::AuditServiceClient;
use tonic::Code;

use crate::support::{Options, Server, connection, create, operator_token};

pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const WRONG_KEY: &str = "HxwdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

/// Runs `connvault store verify` on `data_dir` with master key `key`.
pub fn verify(data_dir: &Path, key: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args(["store", "verify", "--data-dir"])
        .arg(data_dir)
        .env("CONNVAULT_MASTER_KEY", key)
        .env_remove("CONNVAULT_MASTER_KEY_FILE")
        .env_remove("CONNVAULT_DATA_DIR")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

async fn get(server: &Server, name: &str) -> Result<v1::Connection, tonic::Status> {
    server
        .connections()
        .await
        .get_connection(v1::GetConnectionRequest { name: name.into() })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_damaged_store_is_refused_reported_and_accepted_only_on_request() {
    let mut server = Server::start_with(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    });
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let mut names = Vec::new();
    for i in 0..5 {
        let created = create(&mut client, "acme", connection(&format!("db {i}"), "pw"))
            .await
            .unwrap();
        names.push(created.name);
    }
    server.stop();
    let data = server.data_dir();
    let clean = verify(&data, KEY);
    let report = text(&clean);
    assert!(clean.status.success(), "{report}");
    assert!(
        report.contains("5 connection(s) (5 with secrets"),
        "{report}"
    );
    assert!(report.contains("no problems found"), "{report}");
    // A wrong key is refused by verify too.
    let wrong = verify(&data, WRONG_KEY);
    assert!(!wrong.status.success(), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("master key does not match"),
        "{}",
        text(&wrong)
    );

    // The byte that once emptied the store without a word.
    flip(&data.join("store/db"), 0);
    let damaged = verify(&data, KEY);
    let report = text(&damaged);
    assert!(!damaged.status.success(), "{report}");
    assert!(report.contains("lost acknowledged writes"), "{report}");

    // A wrong key is refused before the store is looked at, even when asked
    // to accept a loss.
    server.set_master_key(WRONG_KEY);
    server.set_args(&["--accept-data-loss"]);
    let error = server.spawn().unwrap_err();
    assert!(error.contains("master key does not match"), "{error}");

    server.set_master_key(KEY);
    server.set_args(&[]);
    let error = server.spawn().unwrap_err();
    assert!(error.contains("refusing to start"), "{error}");
    assert!(error.contains("lost acknowledged writes"), "{error}");
    assert!(error.contains("--accept-data-loss"), "{error}");
    assert!(
        error.contains("Restore the data directory from a backup"),
        "{error}"
    );

    server.set_args(&["--accept-data-loss"]);
    server.spawn().unwrap();
    assert!(
        server.log_text().contains("starting anyway"),
        "{}",
        server.log_text()
    );
    for name in &names {
        let status = get(&server, name).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{name}: {status:?}");
    }
    let mut audit = AuditServiceClient::new(server.channel_as(Some(operator_token())).await);
    let events = audit
        .list_audit_events(v1::ListAuditEventsRequest {
            parent: "tenants/-".into(),
            filter: "method=AcceptDataLoss".into(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].outcome, "DATA_LOSS");
    assert!(
        events[0].resource.contains("recovered to commit"),
        "{events:?}"
    );

    // The loss was accepted once: the next start needs no flag, and the
    // keyring (restored from the key file) still seals and opens.
    server.set_args(&[]);
    server.restart();
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let fresh = create(&mut client, "acme", connection("after", "pw-after"))
        .await
        .unwrap();
    let resolved = client
        .resolve_connection(v1::ResolveConnectionRequest {
            name: fresh.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resolved.secrets.get("password").map(String::as_str),
        Some("pw-after")
    );
    server.stop();
    let report = verify(&data, KEY);
    assert!(report.status.success(), "{}", text(&report));
}

#[tokio::test]
async fn verify_refuses_a_store_a_server_holds() {
    let server = Server::start_with(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    });
    let output = verify(&server.data_dir(), KEY);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("is in use"), "{}", text(&output));
}

#[tokio::test]
async fn a_data_dir_of_an_older_version_gets_its_key_file_and_progress_record() {
    let mut server = Server::start_with(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    });
    // A tenant of an older version: no data key of its own, its secrets
    // sealed under the global key (which the store keeps a copy of).
    server.stop();
    crate::keys::create_legacy_tenant(&server.data_dir(), "acme").await;
    server.spawn().unwrap();
    let mut client = server.connections().await;
    let created = create(&mut client, "acme", connection("kept", "pw"))
        .await
        .unwrap();
    server.stop();
    // What an older version left: no key file, no progress record, no mark
    // in sled.
    let data = server.data_dir();
    {
        use connvault_store::MetaStore as _;
        let options = connvault_store::sled::SledOptions::default().with_durable(false);
        let store = connvault_store::sled::SledStore::open(data.join("store"), options).unwrap();
        let mark = store.get_meta("sled.commit").await.unwrap();
        assert!(mark.is_some(), "each group commit leaves its mark in sled");
        store
            .cas_meta("sled.commit", mark.as_deref(), None)
            .await
            .unwrap();
    }
    std::fs::remove_file(data.join("keys.v1")).unwrap();
    std::fs::remove_file(data.join("store/progress")).unwrap();
    server.spawn().unwrap();
    let log = server.log_text();
    assert!(log.contains("created the store's progress record"), "{log}");
    assert!(
        log.contains("wrote the key file from the store's copy"),
        "{log}"
    );
    assert!(data.join("keys.v1").exists() && data.join("store/progress").exists());
    assert_eq!(get(&server, &created.name).await.unwrap(), created);
    server.stop();
    let report = verify(&data, KEY);
    assert!(report.status.success(), "{}", text(&report));
}
