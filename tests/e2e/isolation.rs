//! Process isolation in the real server: a plugin that crashes, hangs,
//! floods or snoops runs in its runner; each fault fails the request that
//! caused it, the next request to every other plugin is answered, and the
//! plugin is back afterwards. The server's secrets stay out of its reach.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use connvault::pb::v1;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use connvault_testkit::{compile_c_plugin, workspace_root};
use tonic::Code;

use crate::support::{Authed, Options, Server, config, connection, create};

/// The faulty C plugin (`plugins/fixtures/faulty`), compiled once.
fn faulty_so() -> PathBuf {
    static PATH: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = tempfile::tempdir().unwrap();
        let source = workspace_root().join("plugins/fixtures/faulty/plugin.c");
        let so = compile_c_plugin(&source, out.path(), "faulty", &[]);
        (out, so)
    })
    .1
    .clone()
}

fn faulty(mode: &str, path: &Path) -> v1::Connection {
    v1::Connection {
        display_name: format!("Faulty {mode}"),
        data_source: "faulty".into(),
        config: Some(config(&[("mode", mode), ("path", &path.to_string_lossy())])),
        ..Default::default()
    }
}

/// A dry-run create: the server asks the plugin to validate, stores nothing.
async fn validate(
    client: &mut ConnectionServiceClient<Authed>,
    connection: v1::Connection,
) -> Result<(), tonic::Status> {
    client
        .create_connection(v1::CreateConnectionRequest {
            parent: "tenants/acme".into(),
            connection: Some(connection),
            validate_only: true,
        })
        .await
        .map(drop)
}

/// Waits (at most a minute) until the faulty plugin answers again.
async fn back(client: &mut ConnectionServiceClient<Authed>) {
    let started = Instant::now();
    while let Err(status) = validate(client, faulty("ok", Path::new("/"))).await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the runner did not come back: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_plugin_that_crashes_hangs_or_snoops_costs_only_its_own_requests() {
    let server = Server::start_with(Options {
        plugins: vec![(faulty_so(), "faulty".into())],
        args: vec!["--plugin-isolation".into(), "process".into()],
        // The fixture may stay in-process: it is first-party and pinned.
        toml:
            "[plugins.overrides.\"libconnvault_plugin_fixture.so\"]\nisolation = \"in-process\"\n"
                .into(),
        ..Options::default()
    });
    server.create_tenant("acme").await;
    let mut client = server.connections().await;
    back(&mut client).await;
    let none = Path::new("/nonexistent");
    let mut created = 0;

    for (mode, code, expected) in [
        ("segv", Code::Unavailable, "killed by signal 11 (SIGSEGV)"),
        ("abort", Code::Unavailable, "killed by signal 6 (SIGABRT)"),
        ("exit", Code::Unavailable, "exited with code 3"),
        ("loop", Code::DeadlineExceeded, "did not answer validate"),
        ("alloc", Code::FailedPrecondition, "malloc of 4 GiB failed"),
        ("flood", Code::Internal, ""),
    ] {
        let status = validate(&mut client, faulty(mode, none)).await.unwrap_err();
        // Writing the flood takes time: on a loaded machine it can outlast
        // the validate deadline, and the runner is then killed for that.
        // Either way the call fails with a clear error, which is the point.
        let flood_outlasted_its_deadline = mode == "flood"
            && status.code() == Code::Unavailable
            && status.message().contains("past its deadline");
        if flood_outlasted_its_deadline {
            created += 1;
            create(
                &mut client,
                "acme",
                connection(&format!("Orders {created}"), "pw"),
            )
            .await
            .unwrap();
            back(&mut client).await;
            continue;
        }
        assert_eq!(status.code(), code, "{mode}: {status:?}");
        assert!(status.message().contains(expected), "{mode}: {status:?}");
        if code == Code::Unavailable {
            assert!(status.message().contains("plugin faulty"), "{status:?}");
        }
        // The very next request to another plugin is answered.
        created += 1;
        create(
            &mut client,
            "acme",
            connection(&format!("Orders {created}"), "pw"),
        )
        .await
        .unwrap();
        back(&mut client).await;
    }

    // The runner reads none of the server's secrets: not the master key (in
    // the data directory, in --dev), not the config, not the store.
    let key = server.data_dir().join(connvault::master_key::DEV_KEY_FILE);
    let config_file = server.data.path().join("connvault.toml");
    assert!(key.exists() && config_file.exists());
    if connvault_plugin_host::runner::landlock_abi() > 0 {
        for secret in [&key, &config_file, &server.data_dir()] {
            let status = validate(&mut client, faulty("read", secret))
                .await
                .unwrap_err();
            assert!(
                status.message().contains("Permission denied"),
                "{}: {status:?}",
                secret.display()
            );
        }
    }
    // ...nor its environment, where the token secret is.
    let probe = validate(&mut client, faulty("probe", none))
        .await
        .unwrap_err();
    assert!(
        probe.message().contains("no_new_privs=1 seccomp=2"),
        "{probe:?}"
    );
    assert!(!probe.message().contains("CONNVAULT"), "{probe:?}");

    let log = server.log_text();
    assert!(log.contains("plugin runner started"), "{log}");
    // Each runner says how far Landlock confines it, whatever the kernel.
    let landlock = if connvault_plugin_host::runner::landlock_abi() > 0 {
        "enforced (kernel ABI"
    } else {
        "not supported by this kernel"
    };
    assert!(log.contains(landlock), "{log}");
    assert!(log.contains("plugin runner stopped"), "{log}");
    // 128 MiB printed by the flood cost the log a bounded number of lines.
    assert!(log.len() < 4 << 20, "the log grew to {} bytes", log.len());
}
