//! `PluginService` in the real server: the inventory, and reloading the
//! plugin directory (by RPC and by SIGHUP) while calls are in flight and
//! stored connections keep working across a plugin version change.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use connvault::pb::v1;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use connvault::pb::v1::plugin_service_client::PluginServiceClient;
use connvault_testkit::{compile_c_plugin, workspace_root};
use tonic::Code;

use crate::support::{Authed, Options, Server, config, create, operator_token, token};

/// The faulty C fixture built as `version`, in a directory of its own.
fn faulty_version(version: &str) -> (tempfile::TempDir, PathBuf) {
    let out = tempfile::tempdir().unwrap();
    let source = workspace_root().join("plugins/fixtures/faulty/plugin.c");
    let define = format!("FAULTY_VERSION=\"{version}\"");
    let so = compile_c_plugin(&source, out.path(), "faulty", &[&define]);
    (out, so)
}

fn faulty(mode: &str, path: &str) -> v1::Connection {
    v1::Connection {
        display_name: format!("Faulty {mode}"),
        data_source: "faulty".into(),
        config: Some(config(&[("mode", mode), ("path", path)])),
        ..Default::default()
    }
}

/// What the faulty plugin reports in `mode` (its reports are application errors).
async fn report(client: &mut ConnectionServiceClient<Authed>, mode: &str, path: &str) -> String {
    let status = client
        .create_connection(v1::CreateConnectionRequest {
            parent: "tenants/acme".into(),
            connection: Some(faulty(mode, path)),
            validate_only: true,
        })
        .await
        .unwrap_err();
    status.message().to_owned()
}

async fn plugins_client(server: &Server) -> PluginServiceClient<Authed> {
    PluginServiceClient::new(server.channel_as(Some(operator_token())).await)
}

fn find<'a>(plugins: &'a [v1::Plugin], name: &str) -> Option<&'a v1::Plugin> {
    plugins.iter().find(|plugin| plugin.name == name)
}

async fn list(client: &mut PluginServiceClient<Authed>) -> v1::ListPluginsResponse {
    client
        .list_plugins(v1::ListPluginsRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Waits (at most a minute) until `condition` holds of the plugin list.
async fn wait_for_list(
    client: &mut PluginServiceClient<Authed>,
    what: &str,
    condition: impl Fn(&v1::ListPluginsResponse) -> bool,
) -> v1::ListPluginsResponse {
    let started = Instant::now();
    loop {
        let answer = list(client).await;
        if condition(&answer) {
            return answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn plugins_reload_without_a_restart_and_calls_in_flight_finish_on_the_old_version() {
    let (_v1_dir, v1_so) = faulty_version("1.0.0");
    let (_v2_dir, v2_so) = faulty_version("2.0.0");
    let (_v3_dir, v3_so) = faulty_version("3.0.0");
    let signals = tempfile::tempdir().unwrap();
    let go = signals.path().join("go");
    let server = Server::start_with(Options {
        plugins: vec![(v1_so, "faulty".into())],
        args: vec!["--plugin-isolation".into(), "process".into()],
        // The wait below must outlast a reload on a loaded machine.
        toml_top: "validate_timeout_ms = 60000\n".into(),
        toml: format!(
            "[plugins]\nrunner_read_paths = [\"{}\"]\n[plugins.overrides.\"libconnvault_plugin_fixture.so\"]\nisolation = \"in-process\"\n",
            signals.path().display()
        ),
        ..Options::default()
    });
    server.create_tenant("acme").await;
    let mut connections = server.connections().await;
    let mut plugins = plugins_client(&server).await;

    // The inventory.
    let before = list(&mut plugins).await;
    let plugin = find(&before.plugins, "faulty").unwrap().clone();
    assert_eq!(plugin.version, "1.0.0");
    assert_eq!(plugin.isolation(), v1::PluginIsolation::Process);
    assert_eq!(plugin.state(), v1::PluginState::Healthy);
    assert_eq!(plugin.data_sources, ["faulty"]);
    assert_eq!(plugin.sha256.len(), 64);
    assert!(plugin.file.ends_with("libconnvault_plugin_faulty.so"));
    let fixture = find(&before.plugins, "connvault-fixture-testplugin").unwrap();
    assert_eq!(fixture.isolation(), v1::PluginIsolation::InProcess);
    assert!(before.refused.is_empty(), "{before:?}");

    // Only an admin of every tenant may list or reload.
    let mut tenant_admin = PluginServiceClient::new(
        server
            .channel_as(Some(token(
                "acme-admin",
                &["acme"],
                &[connvault::auth::Role::Admin],
            )))
            .await,
    );
    for status in [
        tenant_admin
            .list_plugins(v1::ListPluginsRequest {})
            .await
            .unwrap_err(),
        tenant_admin
            .reload_plugins(v1::ReloadPluginsRequest {})
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }

    // A connection stored under 1.0.0, and a failure the inventory counts.
    let stored = create(&mut connections, "acme", faulty("ok", "/"))
        .await
        .unwrap();
    assert!(
        report(&mut connections, "segv", "/")
            .await
            .contains("SIGSEGV")
    );
    let after_crash = wait_for_list(&mut plugins, "the runner restarted", |answer| {
        find(&answer.plugins, "faulty")
            .is_some_and(|p| p.state() == v1::PluginState::Healthy && p.runner_restarts >= 1)
    })
    .await;
    let counted = find(&after_crash.plugins, "faulty").unwrap();
    assert!(counted.calls >= 2 && counted.failures >= 1, "{counted:?}");
    assert!(counted.last_error.contains("SIGSEGV"), "{counted:?}");
    assert!(counted.last_error_time.is_some());

    // A call in flight on 1.0.0 when the reload swaps 2.0.0 in.
    let waiting = {
        let mut client = server.connections().await;
        let go = go.to_string_lossy().into_owned();
        tokio::spawn(async move { report(&mut client, "wait", &go).await })
    };
    wait_for_list(&mut plugins, "the wait call started", |answer| {
        find(&answer.plugins, "faulty").is_some_and(|p| p.calls_in_flight == 1)
    })
    .await;
    server.plugins.add(&v2_so, "faulty");
    server.plugins.add_bytes(b"not a shared object", "broken");
    let reload = plugins
        .reload_plugins(v1::ReloadPluginsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(find(&reload.plugins, "faulty").unwrap().version, "2.0.0");
    assert_eq!(reload.loaded.len(), 1, "{reload:?}");
    assert_eq!(reload.loaded[0].version, "2.0.0");
    assert_eq!(reload.unloaded.len(), 1, "{reload:?}");
    assert_eq!(reload.unloaded[0].version, "1.0.0");
    assert_eq!(reload.unloaded[0].calls_in_flight, 1, "{reload:?}");
    // The fixture's file did not change: kept as it was.
    assert!(find(&reload.plugins, "connvault-fixture-testplugin").is_some());
    assert_eq!(reload.refused.len(), 1, "{reload:?}");
    assert!(
        reload.refused[0]
            .file
            .ends_with("libconnvault_plugin_broken.so")
    );
    assert!(
        reload.refused[0].reason.contains("not a loadable ELF"),
        "{reload:?}"
    );
    std::fs::write(&go, b"").unwrap();
    assert_eq!(waiting.await.unwrap(), "waited: faulty 1.0.0");
    assert_eq!(
        report(&mut connections, "version", "/").await,
        "faulty 2.0.0"
    );

    // The connection stored under 1.0.0 keeps working under 2.0.0.
    let got = connections
        .get_connection(v1::GetConnectionRequest {
            name: stored.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.display_name, stored.display_name);
    let updated = connections
        .update_connection(v1::UpdateConnectionRequest {
            connection: Some(v1::Connection {
                name: stored.name.clone(),
                display_name: "Faulty after the upgrade".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.display_name, "Faulty after the upgrade");
    assert_eq!(updated.config, stored.config);

    // A changed file that is refused leaves the version loaded before serving.
    server.plugins.add_bytes(b"\x7fELF truncated", "faulty");
    let refused = plugins
        .reload_plugins(v1::ReloadPluginsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        refused
            .refused
            .iter()
            .any(|r| r.file.ends_with("libconnvault_plugin_faulty.so")),
        "{refused:?}"
    );
    assert_eq!(find(&refused.plugins, "faulty").unwrap().version, "2.0.0");
    assert!(
        refused.loaded.is_empty() && refused.unloaded.is_empty(),
        "{refused:?}"
    );
    assert_eq!(
        report(&mut connections, "version", "/").await,
        "faulty 2.0.0"
    );
    let listed = list(&mut plugins).await;
    assert_eq!(listed.refused.len(), 2, "{listed:?}");

    // SIGHUP reloads too.
    server.plugins.add(&v3_so, "faulty");
    std::fs::remove_file(server.plugins.path().join("libconnvault_plugin_broken.so")).unwrap();
    let hangup = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(hangup.success());
    let after_hangup = wait_for_list(&mut plugins, "SIGHUP reloaded 3.0.0", |answer| {
        find(&answer.plugins, "faulty").is_some_and(|p| p.version == "3.0.0")
    })
    .await;
    assert!(after_hangup.refused.is_empty(), "{after_hangup:?}");
    assert_eq!(
        report(&mut connections, "version", "/").await,
        "faulty 3.0.0"
    );
    assert!(server.log_text().contains("SIGHUP: reloading plugins"));
}

/// Asks the fixture to panic in `test`: the call fails as INTERNAL.
async fn panic_in_test(server: &Server) {
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    let mut panicking = crate::support::connection("Panics", "pw");
    panicking.config = Some(config(&[("host", "127.0.0.1"), ("mode", "panic")]));
    let status = client
        .test_connection(v1::TestConnectionRequest {
            target: Some(v1::test_connection_request::Target::Connection(panicking)),
            parent: "tenants/acme".into(),
            timeout_ms: 3000,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    // Internal errors say no more to the caller; the log has the detail.
    assert!(!status.message().contains("asked to panic"), "{status:?}");
}

#[tokio::test]
async fn in_dev_a_plugin_panic_message_is_logged_and_outside_dev_it_is_not() {
    let dev = Server::start();
    panic_in_test(&dev).await;
    wait_for_log(&dev, "the fixture was asked to panic");

    let production = Server::start_with(Options {
        master_key: Some(crate::damage::KEY.into()),
        args: vec!["--egress-allow".into(), "127.0.0.1:5432".into()],
        ..Options::default()
    });
    panic_in_test(&production).await;
    wait_for_log(&production, "plugin panicked");
    assert!(
        !production.log_text().contains("asked to panic"),
        "{}",
        production.log_text()
    );
}

/// Waits (at most a minute) for `text` in the server's log: a line logged on
/// a worker thread may land a moment after the answer.
fn wait_for_log(server: &Server, text: &str) {
    let started = Instant::now();
    while !server.log_text().contains(text) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no {text:?} in the log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
