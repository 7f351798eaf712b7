//! Crash consistency in the style of redb's: a data directory built by real
//! creates, updates and deletes through the real server, then damaged at
//! seeded random offsets — a flipped byte, a truncation, a torn write (a
//! range zeroed or overwritten with garbage) in any of sled's files, the
//! progress record or the key file — and started again. Every trial must
//! end in one of two ways: the server serves exactly the acknowledged data,
//! or it refuses to start with a clear error. Partial data served silently,
//! or a wrong master key accepted, fails the test.
//!
//! Most trials start through the server's own start-up path as a library
//! call (`store_setup::open_for_serving`, then the `App` the handlers call);
//! some start the real binary and check over gRPC.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use connvault::app::{App, Limits};
use connvault::config::Config;
use connvault::error::ServiceError;
use connvault::pb::v1;
use connvault::store_setup::{self, OpenError};
use connvault_crypto::MasterKey;
use connvault_plugin_host::{HostOptions, PluginHost};
use prost_types::FieldMask;

use crate::damage::{KEY, WRONG_KEY};
use crate::support::{Options, Server, connection, create};

/// Trials through the library start path.
const TRIALS: u64 = 240;
/// Trials through the real binary.
const BINARY_TRIALS: u64 = 12;
/// Every this many trials, also start with the wrong master key.
const WRONG_KEY_EVERY: u64 = 3;
const SEED: u64 = 0x00DA_7A0F_5EED;

/// splitmix64: small, seedable, good enough to pick offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// What the golden data directory holds, as the live server answered.
struct Golden {
    dir: tempfile::TempDir,
    tenants: Vec<v1::Tenant>,
    /// Every live connection's resolve answer, by tenant.
    resolved: BTreeMap<String, Vec<v1::ResolveConnectionResponse>>,
}

/// Builds a golden data directory; `kill` ends the server with SIGKILL (no
/// shutdown: sled recovers from its log alone) instead of SIGTERM.
async fn build_golden(kill: bool) -> Golden {
    let mut server = Server::start_with(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    });
    let mut client = server.connections().await;
    let mut live: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tenant in ["acme", "beta"] {
        server.create_tenant(tenant).await;
        for i in 0..12 {
            let name = format!("{tenant} db {i}");
            let created = create(
                &mut client,
                tenant,
                connection(&name, &format!("pw-{tenant}-{i}")),
            )
            .await
            .unwrap();
            live.entry(tenant.to_owned())
                .or_default()
                .push(created.name);
        }
    }
    // Updates and deletes too: the log holds every kind of write.
    for name in live["acme"].iter().take(4) {
        client
            .update_connection(v1::UpdateConnectionRequest {
                connection: Some(v1::Connection {
                    name: name.clone(),
                    display_name: format!("{name} renamed"),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["display_name".into()],
                }),
                etag: String::new(),
            })
            .await
            .unwrap();
    }
    for name in live.get_mut("beta").unwrap().drain(..3) {
        client
            .delete_connection(v1::DeleteConnectionRequest {
                name,
                etag: String::new(),
            })
            .await
            .unwrap();
    }
    let mut tenants = Vec::new();
    let mut resolved = BTreeMap::new();
    for (tenant, names) in &live {
        tenants.push(
            server
                .tenants()
                .await
                .get_tenant(v1::GetTenantRequest {
                    name: format!("tenants/{tenant}"),
                })
                .await
                .unwrap()
                .into_inner(),
        );
        let mut answers = Vec::new();
        for name in names {
            answers.push(
                client
                    .resolve_connection(v1::ResolveConnectionRequest { name: name.clone() })
                    .await
                    .unwrap()
                    .into_inner(),
            );
        }
        resolved.insert(tenant.clone(), answers);
    }
    if kill {
        server.kill();
    } else {
        server.stop();
    }
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&server.data_dir(), dir.path());
    Golden {
        dir,
        tenants,
        resolved,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().map(Result::unwrap) {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        if entry.path().is_dir() {
            files(&entry.path(), out);
        } else {
            out.push(entry.path());
        }
    }
}

/// Damages one file of `data_dir` at a random offset; returns what was done.
fn damage(data_dir: &Path, rng: &mut Rng) -> String {
    let mut all = Vec::new();
    files(data_dir, &mut all);
    all.retain(|path| std::fs::metadata(path).is_ok_and(|m| m.len() > 0));
    all.sort();
    let pick = |name: &str| all.iter().find(|path| path.ends_with(name)).cloned();
    // Mostly sled's log, where the data is; the rest spread over the others.
    let target = match rng.below(20) {
        0..=10 => pick("store/db"),
        11..=13 => pick("store/progress"),
        14..=16 => pick("keys.v1"),
        17 => pick("store/conf"),
        _ => Some(all[rng.below(all.len() as u64) as usize].clone()),
    }
    .unwrap_or_else(|| all[0].clone());
    let mut bytes = std::fs::read(&target).unwrap();
    let len = bytes.len() as u64;
    // sled preallocates its log: half the time, aim at the part in use.
    let used = bytes
        .iter()
        .rposition(|byte| *byte != 0)
        .map_or(len, |last| last as u64 + 1);
    let at = if rng.below(2) == 0 {
        rng.below(used)
    } else {
        rng.below(len)
    } as usize;
    let what = match rng.below(3) {
        0 => {
            let xor = 1 + rng.below(255) as u8;
            bytes[at] ^= xor;
            format!("flip byte {at} (^{xor:#04x})")
        }
        1 => {
            bytes.truncate(at);
            format!("truncate to {at} bytes")
        }
        _ => {
            let torn = 1 + rng.below((len - at as u64).min(8192)) as usize;
            let zero = rng.below(2) == 0;
            for byte in &mut bytes[at..at + torn] {
                *byte = if zero { 0 } else { rng.next() as u8 };
            }
            let fill = if zero { "zeros" } else { "garbage" };
            format!("torn write: {torn} bytes of {fill} at {at}")
        }
    };
    std::fs::write(&target, bytes).unwrap();
    let file = target.strip_prefix(data_dir).unwrap_or(&target).display();
    format!("{file} of {len} bytes: {what}")
}

/// How one start of a damaged copy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Served exactly what was acknowledged.
    Exact,
    /// Refused to start, with this kind of error.
    Refused(&'static str),
    /// Started, and a read of damaged data answered DATA_LOSS.
    DataLossAnswered,
    /// Started and served something other than what was acknowledged.
    Silent(String),
}

fn refusal_kind(error: &OpenError) -> &'static str {
    use connvault::master_key::KeyError;
    match error {
        OpenError::Lost(_) => "the store lost acknowledged writes",
        OpenError::Damaged(_) => "the store's files are damaged past sled's recovery",
        OpenError::Key(KeyError::WrongMasterKey) => "wrong master key (key check value)",
        OpenError::Key(_) => "the keyring is damaged or lost",
        // An I/O or backend error carries no advice: not a clear refusal.
        _ => "the store could not be opened, WITHOUT a clear error",
    }
}

fn config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_owned(),
        store_cache_mb: 8,
        ..Config::default()
    }
}

async fn start(data_dir: &Path, key: &str, plugins: &Arc<PluginHost>) -> Result<App, OpenError> {
    let config = config(data_dir);
    let master = MasterKey::from_base64(key).unwrap();
    let serving = store_setup::open_for_serving(&config, master).await?;
    Ok(App::new(
        serving.store,
        serving.keyring,
        data_dir,
        Arc::clone(plugins),
        Limits::from_config(&config),
    ))
}

/// What a read answered: `None` if as acknowledged.
fn judge<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: Result<T, ServiceError>,
    expected: &T,
) -> Option<Outcome> {
    match got {
        Ok(got) if got == *expected => None,
        Ok(got) => Some(Outcome::Silent(format!("{what}: served {got:?}"))),
        Err(ServiceError::DataLoss(_)) => Some(Outcome::DataLossAnswered),
        Err(error) => Some(Outcome::Silent(format!("{what}: {error:?}"))),
    }
}

/// Reads everything acknowledged through the app: tenants, each tenant's
/// whole listing, each connection's resolve (secrets opened).
async fn served(app: &App, golden: &Golden) -> Outcome {
    let tenants = app.list_tenants(1000, "").await.map(|page| page.tenants);
    if let Some(outcome) = judge("ListTenants", tenants, &golden.tenants) {
        return outcome;
    }
    for (tenant, expected) in &golden.resolved {
        let listed = app
            .list_connections(v1::ListConnectionsRequest {
                parent: format!("tenants/{tenant}"),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .map(|page| page.connections);
        let views: Vec<v1::Connection> = expected
            .iter()
            .filter_map(|answer| answer.connection.clone())
            .collect();
        if let Some(outcome) = judge(&format!("ListConnections {tenant}"), listed, &views) {
            return outcome;
        }
        for answer in expected {
            let name = answer
                .connection
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let got = app.resolve_connection(&name).await;
            if let Some(outcome) = judge(&format!("ResolveConnection {name}"), got, answer) {
                return outcome;
            }
        }
    }
    Outcome::Exact
}

async fn library_trial(
    golden: &Golden,
    rng: &mut Rng,
    trial: u64,
    plugins: &Arc<PluginHost>,
) -> (String, Outcome, Option<String>) {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("data");
    copy_dir(golden.dir.path(), &dir);
    let what = damage(&dir, rng);
    // The wrong key first, on its own copy of the same damage: refused,
    // whatever the store's state.
    let mut wrong_key = None;
    if trial % WRONG_KEY_EVERY == 0 {
        let copy = scratch.path().join("wrong");
        copy_dir(&dir, &copy);
        if start(&copy, WRONG_KEY, plugins).await.is_ok() {
            wrong_key = Some(format!(
                "trial {trial} ({what}): the wrong master key was accepted"
            ));
        }
    }
    let outcome = match start(&dir, KEY, plugins).await {
        Err(error) => Outcome::Refused(refusal_kind(&error)),
        Ok(app) => served(&app, golden).await,
    };
    (what, outcome, wrong_key)
}

/// Starts the real binary on a damaged copy; then `connvault store verify`
/// must agree: problems after a refused start, none after an exact one.
async fn binary_trial(golden: &Golden, rng: &mut Rng) -> (String, Outcome) {
    let mut server = Server::prepare(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    });
    let dir = server.data_dir();
    copy_dir(golden.dir.path(), &dir);
    let what = damage(&dir, rng);
    let outcome = binary_start(&mut server, golden).await;
    server.stop();
    let verified = crate::damage::verify(&dir, KEY);
    let agrees = match &outcome {
        Outcome::Exact => verified.status.success(),
        Outcome::Refused(_) => !verified.status.success(),
        _ => true,
    };
    if !agrees {
        let report = String::from_utf8_lossy(&verified.stdout).into_owned();
        return (
            what,
            Outcome::Silent(format!("{outcome:?} but verify said:\n{report}")),
        );
    }
    (what, outcome)
}

async fn binary_start(server: &mut Server, golden: &Golden) -> Outcome {
    if let Err(log) = server.spawn() {
        let clear = ["refusing to start", "master key", "key file", "keyring"];
        let kind = if clear.iter().any(|phrase| log.contains(phrase)) {
            "refused by the binary with a clear error"
        } else {
            "refused by the binary WITHOUT a clear error"
        };
        return Outcome::Refused(kind);
    }
    let mut client = server.connections().await;
    for answers in golden.resolved.values() {
        for answer in answers {
            let name = answer
                .connection
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default();
            match client
                .resolve_connection(v1::ResolveConnectionRequest { name: name.clone() })
                .await
            {
                Ok(got) if got.get_ref() == answer => {}
                Ok(got) => {
                    return Outcome::Silent(format!("{name}: served {:?}", got.into_inner()));
                }
                Err(status) if status.code() == tonic::Code::DataLoss => {
                    return Outcome::DataLossAnswered;
                }
                Err(status) => return Outcome::Silent(format!("{name}: {status:?}")),
            }
        }
    }
    Outcome::Exact
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_data_dirs_serve_exactly_what_was_acknowledged_or_refuse_to_start() {
    // One data directory from a clean stop, one from a SIGKILL.
    let goldens = [build_golden(false).await, build_golden(true).await];
    let plugin_dir = connvault_testkit::PluginDir::new();
    plugin_dir.add(&crate::support::fixture_so(), "fixture");
    let plugins = Arc::new(PluginHost::load_dir(
        plugin_dir.path(),
        &HostOptions {
            require_pins: false,
            ..HostOptions::default()
        },
    ));
    // The undamaged copies serve everything: the checks can pass.
    for golden in &goldens {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(golden.dir.path(), scratch.path());
        let app = start(scratch.path(), KEY, &plugins).await.unwrap();
        assert_eq!(served(&app, golden).await, Outcome::Exact);
    }

    let mut rng = Rng(SEED);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut tally = |path: &str, trial: u64, what: &str, outcome: Outcome| {
        let label = match outcome {
            Outcome::Exact => "served exactly the acknowledged data".to_owned(),
            Outcome::Refused(kind) => {
                if kind.contains("WITHOUT") {
                    failures.push(format!("{path} trial {trial} ({what}): {kind}"));
                }
                format!("refused to start: {kind}")
            }
            Outcome::DataLossAnswered => "started; a damaged record answered DATA_LOSS".to_owned(),
            Outcome::Silent(detail) => {
                failures.push(format!("{path} trial {trial} ({what}): {detail}"));
                "SERVED PARTIAL DATA SILENTLY".to_owned()
            }
        };
        *counts.entry(format!("{path}: {label}")).or_default() += 1;
    };
    let mut wrong_keys_accepted = Vec::new();
    for trial in 0..TRIALS {
        let golden = &goldens[(trial % 2) as usize];
        let run = library_trial(golden, &mut rng, trial, &plugins);
        let (what, outcome, wrong_key) = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .unwrap_or_else(|_| panic!("trial {trial} did not finish"));
        wrong_keys_accepted.extend(wrong_key);
        if std::env::var_os("TRIAL_VERBOSE").is_some() {
            eprintln!("trial {trial}: {what} -> {outcome:?}");
        }
        tally("start-up path", trial, &what, outcome);
    }
    for trial in 0..BINARY_TRIALS {
        let golden = &goldens[(trial % 2) as usize];
        let (what, outcome) = binary_trial(golden, &mut rng).await;
        tally("binary", trial, &what, outcome);
    }
    eprintln!(
        "crash consistency: {} trials ({TRIALS} through the start-up path, {BINARY_TRIALS} through the binary), seed {SEED:#x}; the wrong master key tried in {} of them, accepted in {}",
        TRIALS + BINARY_TRIALS,
        TRIALS.div_ceil(WRONG_KEY_EVERY),
        wrong_keys_accepted.len()
    );
    for (outcome, count) in &counts {
        eprintln!("  {count:4}  {outcome}");
    }
    failures.extend(wrong_keys_accepted);
    assert!(failures.is_empty(), "{failures:#?}");
}
