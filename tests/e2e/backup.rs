//! Backups that restore: `connvault backup` against a running server under
//! write load, `connvault restore` into a new data directory, `store verify`
//! and a server on the result answering every acknowledged write; damaged
//! backups refused without leaving anything; operators only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use connvault::auth::Role;
use connvault::pb::v1;
use connvault::pb::v1::admin_service_client::AdminServiceClient;
use tonic::Code;

use crate::damage::{KEY, verify};
use crate::support::{Options, Server, connection, create, operator_token, token};

/// Output as text for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `connvault backup` against `server` into `out`, as the operator.
pub fn backup_cli(server: &Server, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args(["backup", "--addr", &server.addr, "--out"])
        .arg(out)
        .env("CONNVAULT_TOKEN", operator_token())
        .env_remove("CONNVAULT_TOKEN_FILE")
        .env_remove("CONNVAULT_ADDR")
        .output()
        .unwrap()
}

/// Runs `connvault restore --from FILE --data-dir DIR`.
pub fn restore_cli(from: &Path, data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args(["restore", "--from"])
        .arg(from)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("CONNVAULT_DATA_DIR")
        .output()
        .unwrap()
}

/// A server on master key [`KEY`].
fn keyed() -> Server {
    Server::start_with(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    })
}

/// One acknowledged write, numbered in the order acknowledgements arrived.
#[derive(Debug, Clone)]
enum Acked {
    /// Created (or updated) with this password.
    Set {
        name: String,
        password: String,
    },
    Deleted {
        name: String,
    },
}

async fn resolve(server: &Server, name: &str) -> Result<String, tonic::Status> {
    server
        .connections()
        .await
        .resolve_connection(v1::ResolveConnectionRequest { name: name.into() })
        .await
        .map(|response| {
            response
                .into_inner()
                .secrets
                .get("password")
                .cloned()
                .unwrap_or_default()
        })
}

/// Every connection of `tenant` on `server`, by name.
async fn list_names(server: &Server, tenant: &str) -> Vec<String> {
    let mut client = server.connections().await;
    let mut names = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_connections(v1::ListConnectionsRequest {
                parent: format!("tenants/{tenant}"),
                page_size: 500,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.connections.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            return names;
        }
        page_token = page.next_page_token;
    }
}

/// Creates, updates and deletes connections of `tenant` until `stop`,
/// logging each acknowledged write (with its position) into `log`.
async fn write_load(
    server: Arc<Server>,
    tenant: &'static str,
    writer: usize,
    log: Arc<Mutex<Vec<(u64, Acked)>>>,
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut client = server.connections().await;
    let mut n = 0;
    let ack = |acked: Acked| {
        let at = counter.fetch_add(1, Ordering::SeqCst);
        log.lock().unwrap().push((at, acked));
    };
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let password = format!("pw-{writer}-{n}-a");
        let created = create(
            &mut client,
            tenant,
            connection(&format!("w{writer} c{n}"), &password),
        )
        .await
        .unwrap();
        ack(Acked::Set {
            name: created.name.clone(),
            password,
        });
        if n % 3 == 0 {
            let password = format!("pw-{writer}-{n}-b");
            client
                .update_connection(v1::UpdateConnectionRequest {
                    connection: Some(v1::Connection {
                        name: created.name.clone(),
                        secrets: [("password".to_owned(), password.clone())].into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["secrets.password".into()],
                    }),
                    etag: String::new(),
                })
                .await
                .unwrap();
            ack(Acked::Set {
                name: created.name,
                password,
            });
        } else if n % 5 == 0 {
            client
                .delete_connection(v1::DeleteConnectionRequest {
                    name: created.name.clone(),
                    etag: String::new(),
                })
                .await
                .unwrap();
            ack(Acked::Deleted { name: created.name });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_restores_every_acknowledged_write() {
    let server = Arc::new(keyed());
    for tenant in ["acme", "beta"] {
        server.create_tenant(tenant).await;
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (writer, tenant) in [(0, "acme"), (1, "acme"), (2, "beta"), (3, "beta")] {
        writers.push(tokio::spawn(write_load(
            Arc::clone(&server),
            tenant,
            writer,
            Arc::clone(&log),
            Arc::clone(&counter),
            Arc::clone(&stop),
        )));
    }
    // Some writes first, so the backup is taken in the middle of the load.
    while counter.load(Ordering::SeqCst) < 150 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("connvault.backup");
    // Every write acknowledged before the backup was asked for.
    let cut = counter.load(Ordering::SeqCst);
    let output = {
        let (server, file) = (Arc::clone(&server), file.clone());
        tokio::task::spawn_blocking(move || backup_cli(&server, &file))
            .await
            .unwrap()
    };
    assert!(output.status.success(), "{}", text(&output));
    // The load went on during the backup; keep it going a little after.
    let after_backup = counter.load(Ordering::SeqCst);
    while counter.load(Ordering::SeqCst) < after_backup + 30 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    assert!(
        after_backup > cut,
        "no write was acknowledged while the backup ran ({cut} before, {after_backup} after)"
    );

    // Restore into a new data directory; verify it offline.
    let mut restored = Server::prepare(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    });
    let output = restore_cli(&file, &restored.data_dir());
    assert!(output.status.success(), "{}", text(&output));
    let report = verify(&restored.data_dir(), KEY);
    assert!(report.status.success(), "{}", text(&report));
    assert!(
        String::from_utf8_lossy(&report.stdout).contains("no problems found"),
        "{}",
        text(&report)
    );
    restored.spawn().unwrap();

    // What each connection must or may hold: the last write acknowledged
    // before the cut must be there; any later one may be.
    let mut required: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut possible: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for (at, acked) in &log {
        let (name, value) = match acked {
            Acked::Set { name, password } => (name.clone(), Some(password.clone())),
            Acked::Deleted { name } => (name.clone(), None),
        };
        possible
            .entry(name.clone())
            .or_default()
            .push(value.clone());
        if *at < cut {
            required.insert(name, value);
        }
    }
    let mut checked = 0;
    for (name, value) in &required {
        let got = resolve(&restored, name).await;
        let later = &possible[name];
        match (value, got) {
            (Some(expected), Ok(password)) => {
                // Its value before the cut, or one written after it.
                assert!(
                    &password == expected || later.contains(&Some(password.clone())),
                    "{name}: {password:?}, expected {expected:?}"
                );
            }
            (Some(expected), Err(status)) => {
                // Deleted later, after the cut, is the only excuse.
                assert!(
                    status.code() == Code::NotFound && later.contains(&None),
                    "{name} ({expected:?} acknowledged before the backup) is missing: {status:?}"
                );
            }
            (None, Ok(password)) => {
                panic!("{name} was deleted before the backup but holds {password:?}")
            }
            (None, Err(status)) => assert_eq!(status.code(), Code::NotFound, "{name}"),
        }
        checked += 1;
    }
    // Nothing in the restored store that was never written, nor a value
    // that was never written.
    for tenant in ["acme", "beta"] {
        for name in list_names(&restored, tenant).await {
            let password = resolve(&restored, &name).await.unwrap();
            assert!(
                possible
                    .get(&name)
                    .is_some_and(|values| values.contains(&Some(password.clone()))),
                "{name} resolves to {password:?}, never written"
            );
        }
    }
    // Each connection has at most two writes (create, then update or delete).
    assert!(
        checked as u64 >= cut / 2 && cut >= 150,
        "only {checked} connections checked for {cut} writes"
    );
    eprintln!(
        "backup: {checked} connections acknowledged before the backup checked; {} writes in all, {} during the backup",
        log.len(),
        after_backup - cut
    );
}

fn flip(path: &Path, at: usize) -> PathBuf {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x20;
    let out = path.with_extension(format!("flip{at}"));
    std::fs::write(&out, bytes).unwrap();
    out
}

#[tokio::test]
async fn a_damaged_backup_is_refused_and_leaves_nothing() {
    let server = keyed();
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    for n in 0..20 {
        create(&mut client, "acme", connection(&format!("conn {n}"), "pw"))
            .await
            .unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("good.backup");
    let output = backup_cli(&server, &file);
    assert!(output.status.success(), "{}", text(&output));
    let len = std::fs::metadata(&file).unwrap().len() as usize;

    let mut bad: Vec<(PathBuf, &[&str])> = Vec::new();
    bad.push((flip(&file, 0), &["not a connvault backup file"]));
    bad.push((flip(&file, 9), &["is not supported"]));
    for at in [20, len / 2, len - 40, len - 1] {
        bad.push((
            flip(&file, at),
            &["the backup file is damaged", "truncated"],
        ));
    }
    let bytes = std::fs::read(&file).unwrap();
    for cut in [10, len / 3, len - 1] {
        let out = work.path().join(format!("cut{cut}.backup"));
        std::fs::write(&out, &bytes[..cut]).unwrap();
        bad.push((out, &["the backup file is truncated"]));
    }
    let mut version = bytes.clone();
    version[11] = 9;
    let out = work.path().join("version.backup");
    std::fs::write(&out, version).unwrap();
    bad.push((out, &["backup format version 9 is not supported"]));
    for (path, says) in &bad {
        let target = work.path().join("restored");
        let output = restore_cli(path, &target);
        assert!(
            !output.status.success(),
            "{}: {}",
            path.display(),
            text(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            says.iter().any(|says| stderr.contains(says)),
            "{}: {}",
            path.display(),
            text(&output)
        );
        assert!(
            !target.exists(),
            "{}: restore left {}",
            path.display(),
            target.display()
        );
    }
    // A directory that holds something is refused, and kept as it was.
    let full = work.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep"), b"x").unwrap();
    let output = restore_cli(&file, &full);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not empty"));
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);
    // The sound file restores; a wrong master key is refused on it.
    let target = work.path().join("restored");
    let output = restore_cli(&file, &target);
    assert!(output.status.success(), "{}", text(&output));
    let report = verify(&target, crate::damage::WRONG_KEY);
    assert!(!report.status.success(), "{}", text(&report));
    let report = verify(&target, KEY);
    assert!(report.status.success(), "{}", text(&report));
}

#[tokio::test]
async fn only_operators_may_take_a_backup() {
    let server = keyed();
    server.create_tenant("acme").await;
    let callers = [
        (
            Some(token(
                "reader",
                &["*"],
                &[Role::Reader, Role::Writer, Role::Resolver],
            )),
            Code::PermissionDenied,
        ),
        (
            Some(token("tenant-admin", &["acme"], &[Role::Admin])),
            Code::PermissionDenied,
        ),
        (None, Code::Unauthenticated),
    ];
    for (caller, code) in callers {
        let mut client = AdminServiceClient::new(server.channel_as(caller).await);
        let status = match client.backup(v1::BackupRequest {}).await {
            Ok(mut stream) => stream.get_mut().message().await.unwrap_err(),
            Err(status) => status,
        };
        assert_eq!(status.code(), code, "{status:?}");
    }
    let mut client = AdminServiceClient::new(server.channel_as(Some(operator_token())).await);
    let mut stream = client
        .backup(v1::BackupRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(first.data.starts_with(b"CVBACKUP"));
    assert!(first.total_bytes >= first.data.len() as u64);
}
