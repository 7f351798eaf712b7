//! A throwaway PostgreSQL cluster: `initdb` into a temp dir, password (SCRAM) auth, optional TLS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{
    Startup, TlsFiles, chown_to, command_as, find_binary, free_port, log_tail, running_as_root,
    wait_for_log,
};

/// How to start a [`Postgres`].
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// Serve TLS with this certificate (plain connections are still accepted).
    pub tls: Option<TlsFiles>,
    /// Keep PostgreSQL's durability (`fsync = on`): for measurements against
    /// a peer that really commits. Tests leave it off: their clusters are thrown away.
    pub durable: bool,
    /// `max_connections` [default: 30].
    pub max_connections: Option<u32>,
    /// `shared_buffers` in MiB [default: 16].
    pub shared_buffers_mb: Option<u32>,
    /// Where the cluster's temp dir goes [default: the system temp dir]; a
    /// measurement puts it on the disk it measures.
    pub parent_dir: Option<PathBuf>,
}

/// A running PostgreSQL server; dropping it stops the server and removes its files.
pub struct Postgres {
    dir: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    child: Child,
    os_user: Option<&'static str>,
}

const USER: &str = "cvadmin";
// Spaces and URL delimiters on purpose: rendered strings must encode them.
const PASSWORD: &str = "cv p@ss:w/rd%";

impl Postgres {
    /// Initialises a cluster and starts it on a free loopback port.
    pub fn start(options: PgOptions) -> Self {
        // PostgreSQL refuses to run as root.
        let os_user = running_as_root().then_some("postgres");
        let mut builder = tempfile::Builder::new();
        builder.prefix("cv-pg-");
        let dir = match &options.parent_dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .expect("temp dir");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).expect("write pwfile");
        if let Some(user) = os_user {
            chown_to(dir.path(), user);
        }
        let output = command_as(os_user, &find_binary("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .env("LC_ALL", "C")
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let _ = std::fs::remove_file(&pwfile);

        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = {}\nmax_connections = {}\nshared_buffers = {}MB\n",
            dir.path().display(),
            if options.durable { "on" } else { "off" },
            options.max_connections.unwrap_or(30),
            options.shared_buffers_mb.unwrap_or(16),
        );
        if let Some(tls) = &options.tls {
            std::fs::write(data.join("server.crt"), &tls.cert_pem).expect("write server.crt");
            write_private(&data.join("server.key"), &tls.key_pem);
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            if let Some(ca) = &tls.client_ca_pem {
                std::fs::write(data.join("client_ca.crt"), ca).expect("write client_ca.crt");
                conf.push_str("ssl_ca_file = 'client_ca.crt'\n");
            }
            if let Some(user) = os_user {
                chown_to(&data, user);
            }
        }
        append(&data.join("postgresql.conf"), &conf);

        let log = dir.path().join("postgres.log");
        for _attempt in 0..5 {
            let port = free_port();
            let log_file = std::fs::File::create(&log).expect("create log");
            if let Some(user) = os_user {
                chown_to(&log, user);
            }
            let mut child = command_as(os_user, &find_binary("postgres"))
                .arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("clone log"))
                .stderr(log_file)
                .spawn()
                .expect("spawn postgres");
            match wait_for_log(&mut child, &log, "ready to accept connections", "postgres") {
                Startup::Ready => {
                    return Self {
                        dir,
                        data,
                        port,
                        child,
                        os_user,
                    };
                }
                Startup::PortTaken => continue,
            }
        }
        panic!(
            "postgres could not find a free port; log tail:\n{}",
            log_tail(&log, 20)
        );
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's name.
    pub fn user(&self) -> &str {
        USER
    }

    /// The superuser's password (contains characters that need URL encoding).
    pub fn password(&self) -> &str {
        PASSWORD
    }

    /// Runs SQL as the superuser with `psql` over TCP and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs SQL as the superuser in `database`.
    pub fn psql_in(&self, database: &str, sql: &str) -> String {
        let output = Command::new(find_binary("psql"))
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                USER,
                "-d",
                database,
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .env("PGPASSWORD", PASSWORD)
            .env("PGSSLMODE", "prefer")
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate mode: no checkpoint, the cluster is thrown away anyway.
        let stopped = command_as(self.os_user, &find_binary("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open postgresql.conf");
    file.write_all(text.as_bytes())
        .expect("append postgresql.conf");
}

/// PostgreSQL refuses a key file readable by group or others.
fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
}
