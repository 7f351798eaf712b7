//! Data-key rotation and master-key rewrap against the real binary: a
//! rotation SIGKILLed at several points resumes at the next start, never
//! leaves a record unreadable, and destroys the old version only when no
//! record uses it; a rewrap refuses the old master key afterwards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use connvault::pb::v1;
use connvault::pb::v1::key_service_client::KeyServiceClient;
use tokio::task::JoinSet;

use crate::damage::{KEY, WRONG_KEY, verify};
use crate::keys::{create_legacy_tenant, offline_keyring};
use crate::support::{Authed, Options, Server, connection, create, operator_token};

const TENANTS: usize = 4;
const PER_TENANT: usize = 500;
const LOADERS: usize = 8;

/// Creates connection `i` of `tenant`, again when the plugin's validate
/// missed its deadline on a loaded machine (nothing was stored then).
async fn create_retrying(
    client: &mut connvault::pb::v1::connection_service_client::ConnectionServiceClient<Authed>,
    tenant: &str,
    i: usize,
    password: &str,
) -> String {
    for _ in 0..20 {
        match create(client, tenant, connection(&format!("db {i}"), password)).await {
            Ok(created) => return created.name,
            Err(status) if status.code() == tonic::Code::DeadlineExceeded => {}
            Err(status) => panic!("creating db {i} of {tenant}: {status:?}"),
        }
    }
    panic!("creating db {i} of {tenant}: validate kept missing its deadline");
}

async fn keys(server: &Server) -> KeyServiceClient<Authed> {
    KeyServiceClient::new(server.channel_as(Some(operator_token())).await)
}

async fn status(server: &Server) -> v1::KeyStatus {
    keys(server)
        .await
        .get_key_status(v1::GetKeyStatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

fn records_by_version(status: &v1::KeyStatus) -> BTreeMap<u32, u64> {
    status
        .versions
        .iter()
        .map(|version| (version.version, version.records))
        .collect()
}

/// Resolves `names`, every one; panics naming the first that fails.
async fn resolve_all(server: &Server, names: &[(String, String)]) {
    let mut client = server.connections().await;
    for (name, password) in names {
        // Rendering may miss its deadline on a loaded machine: ask again.
        let mut tries = 0;
        let resolved = loop {
            match client
                .resolve_connection(v1::ResolveConnectionRequest { name: name.clone() })
                .await
            {
                Ok(resolved) => break resolved.into_inner(),
                Err(status) if status.code() == tonic::Code::DeadlineExceeded && tries < 20 => {
                    tries += 1;
                }
                Err(status) => panic!("{name}: {status:?}"),
            }
        };
        assert_eq!(resolved.secrets.get("password"), Some(password), "{name}");
    }
}

/// Resolves random connections until told to stop; counts them and panics
/// on the first failure that is not the server going away.
async fn reader(
    server: &Server,
    names: Arc<Vec<(String, String)>>,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Option<String>> {
    let mut client = server.connections().await;
    tokio::spawn(async move {
        let mut at = 0usize;
        while !stop.load(Ordering::Relaxed) {
            at = (at + 7919) % names.len();
            let (name, password) = &names[at];
            match client
                .resolve_connection(v1::ResolveConnectionRequest { name: name.clone() })
                .await
            {
                Ok(resolved) => {
                    if resolved.into_inner().secrets.get("password") != Some(password) {
                        return Some(format!("{name}: wrong secret"));
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
                // A plugin missing its deadline on a loaded machine says
                // nothing of the keys; DATA_LOSS or anything else does.
                Err(status) if status.code() == tonic::Code::DeadlineExceeded => {}
                Err(status) => return Some(format!("{name}: {status:?}")),
            }
        }
        None
    })
}

#[tokio::test]
async fn a_rotation_killed_at_any_point_resumes_and_never_loses_a_record() {
    let mut server = Server::start_with(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    });
    // One tenant of an older version (under the global key), the rest with
    // keys of their own.
    server.stop();
    create_legacy_tenant(&server.data_dir(), "legacy").await;
    server.spawn().unwrap();
    let mut tenants = vec!["legacy".to_owned()];
    for t in 1..TENANTS {
        let id = format!("tenant-{t}");
        server.create_tenant(&id).await;
        tenants.push(id);
    }
    let mut names = Vec::new();
    for tenant in &tenants {
        // A few loaders per tenant: a loaded machine answers each in time.
        let mut tasks = JoinSet::new();
        for loader in 0..LOADERS {
            let mut client = server.connections().await;
            let tenant = tenant.clone();
            tasks.spawn(async move {
                let mut made = Vec::new();
                for i in (loader..PER_TENANT).step_by(LOADERS) {
                    let password = format!("pw-{tenant}-{i}");
                    made.push((
                        create_retrying(&mut client, &tenant, i, &password).await,
                        password,
                    ));
                }
                made
            });
        }
        while let Some(done) = tasks.join_next().await {
            names.extend(done.unwrap());
        }
    }
    let total = (TENANTS * PER_TENANT) as u64;
    let before = status(&server).await;
    assert_eq!(records_by_version(&before), BTreeMap::from([(1, total)]));
    let names = Arc::new(names);

    let rotated = keys(&server)
        .await
        .rotate_data_key(v1::RotateDataKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rotated
            .versions
            .iter()
            .map(|v| (v.version, v.current))
            .collect::<Vec<_>>(),
        vec![(1, false), (2, true)]
    );
    assert_eq!(rotated.versions[1].tenant_keys, TENANTS as u32);
    // A second rotation waits for the first.
    let refused = keys(&server)
        .await
        .rotate_data_key(v1::RotateDataKeyRequest {})
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );

    // Kill it at several points: right away, then once some records are
    // re-sealed, then right after a restart; readers resolve all along.
    let mut observed = Vec::new();
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        for _ in 0..2 {
            readers.push(
                reader(
                    &server,
                    Arc::clone(&names),
                    Arc::clone(&stop),
                    Arc::clone(&count),
                )
                .await,
            );
        }
        if round == 1 {
            wait_status(&server, "some records re-sealed", |s| {
                s.resealed > 0 || !s.rotating
            })
            .await;
        }
        let now = status(&server).await;
        observed.push((now.resealed, records_by_version(&now)));
        assert_eq!(now.unreadable, 0, "{now:?}");
        assert_eq!(now.records_under_missing_versions, 0, "{now:?}");
        assert_eq!(
            now.versions.iter().map(|v| v.records).sum::<u64>(),
            total,
            "{now:?}"
        );
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            if let Some(failure) = reader.await.unwrap() {
                panic!("round {round}: a resolve failed during the rotation: {failure}");
            }
        }
        server.kill();
        eprintln!(
            "round {round}: killed with {} re-sealed this run, {:?} by version; {} resolves meanwhile",
            observed[round].0,
            observed[round].1,
            count.load(Ordering::Relaxed)
        );
        server.spawn().unwrap();
        assert!(
            server.log_text().contains("resuming the data-key rotation")
                || server.log_text().contains("data-key rotation finished"),
            "{}",
            server.log_text()
        );
    }
    let done = wait_status(&server, "the rotation to finish", |s| {
        !s.rotating && s.versions.len() == 1
    })
    .await;
    assert_eq!(
        records_by_version(&done),
        BTreeMap::from([(2, total)]),
        "{done:?}"
    );
    assert_eq!(done.versions[0].tenant_keys, TENANTS as u32);
    resolve_all(&server, &names).await;
    server.stop();
    let keyring = offline_keyring(&server.data_dir(), KEY).await;
    assert_eq!(keyring.versions(), vec![2], "version 1 destroyed");
    assert!(
        keyring.has_tenant_keys("legacy"),
        "the older tenant got a key of its own"
    );
    drop(keyring);
    let report = verify(&server.data_dir(), KEY);
    assert!(report.status.success(), "{report:?}");
    eprintln!("kill points: {observed:?}");
}

/// Polls the key status until `done` holds (a bound a loaded machine meets).
async fn wait_status(
    server: &Server,
    what: &str,
    done: impl Fn(&v1::KeyStatus) -> bool,
) -> v1::KeyStatus {
    let started = std::time::Instant::now();
    loop {
        let now = status(server).await;
        if done(&now) {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "waiting for {what}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rewrap_replaces_the_master_key_offline_and_online() {
    let mut server = Server::start_with(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    });
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let created = create(&mut client, "acme", connection("kept db", "pw-kept"))
        .await
        .unwrap();
    let names = vec![(created.name.clone(), "pw-kept".to_owned())];

    // Online: the caller proves it holds the current key.
    let wrong = keys(&server)
        .await
        .rewrap_master_key(v1::RewrapMasterKeyRequest {
            current_master_key: base64(WRONG_KEY),
            new_master_key: base64(WRONG_KEY),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::InvalidArgument, "{wrong:?}");
    let rewrapped = keys(&server)
        .await
        .rewrap_master_key(v1::RewrapMasterKeyRequest {
            current_master_key: base64(KEY),
            new_master_key: base64(WRONG_KEY),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rewrapped.data_keys, 2, "the global key and acme's");
    assert!(!server.audit_file_text().contains(WRONG_KEY));
    // Still serving, with the same records.
    resolve_all(&server, &names).await;
    server.stop();
    server.set_master_key(KEY);
    let error = server.spawn().unwrap_err();
    assert!(error.contains("master key does not match"), "{error}");
    server.set_master_key(WRONG_KEY);
    server.spawn().unwrap();
    resolve_all(&server, &names).await;
    server.stop();

    // Offline, back to the first key, with the CLI.
    let dir = tempfile::tempdir().unwrap();
    let old_file = key_file(dir.path(), "old.key", WRONG_KEY);
    let new_file = key_file(dir.path(), "new.key", KEY);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args(["keys", "rewrap", "--data-dir"])
        .arg(server.data_dir())
        .arg("--old-key-file")
        .arg(&old_file)
        .arg("--new-key-file")
        .arg(&new_file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args(["keys", "rewrap", "--data-dir"])
        .arg(server.data_dir())
        .arg("--old-key-file")
        .arg(&old_file)
        .arg("--new-key-file")
        .arg(&new_file)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "the old key is refused now: {again:?}"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("master key does not match"),
        "{again:?}"
    );
    server.set_master_key(KEY);
    server.spawn().unwrap();
    resolve_all(&server, &names).await;
    server.stop();
    assert!(verify(&server.data_dir(), KEY).status.success());
    assert!(!verify(&server.data_dir(), WRONG_KEY).status.success());
}

fn base64(key: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap()
}

fn key_file(dir: &std::path::Path, name: &str, key: &str) -> std::path::PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    file.write_all(key.as_bytes()).unwrap();
    path
}
