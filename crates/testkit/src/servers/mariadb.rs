//! A throwaway MariaDB server: `mariadb-install-db` into a temp dir, a user with a password.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{Startup, TlsFiles, find_binary, free_port, log_tail, running_as_root, wait_for_log};

/// How to start a [`MariaDb`].
#[derive(Debug, Clone, Default)]
pub struct MariaDbOptions {
    /// Serve TLS with this certificate (without it the server has no TLS at all).
    pub tls: Option<TlsFiles>,
}

/// A running MariaDB server; dropping it stops the server and removes its files.
pub struct MariaDb {
    dir: tempfile::TempDir,
    socket: PathBuf,
    port: u16,
    child: Child,
}

const USER: &str = "cvuser";
// URL delimiters on purpose: rendered strings must encode them.
const PASSWORD: &str = "cv p@ss:w/rd%";

impl MariaDb {
    /// Installs a data directory and starts the server on a free loopback port.
    pub fn start(options: MariaDbOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cv-maria-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let socket = dir.path().join("mysqld.sock");
        let root = running_as_root();
        let mut install = Command::new(find_binary("mariadb-install-db"));
        // --no-defaults must come first: the machine's my.cnf must not leak in.
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            // The bootstrap server's temporary tables get their own directory
            // too: two installs at once in a shared /tmp once collided
            // ("Could not remove temporary table ... Unknown table mysql.tmp_user_sys").
            .arg(format!("--tmpdir={}", dir.path().display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if root {
            install.arg("--user=root");
        }
        let output = install.output().expect("run mariadb-install-db");
        assert!(
            output.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut tls_args = Vec::new();
        if let Some(tls) = &options.tls {
            let write = |name: &str, text: &str| {
                let path = dir.path().join(name);
                std::fs::write(&path, text).expect("write TLS file");
                path.display().to_string()
            };
            tls_args.push(format!("--ssl-cert={}", write("server.crt", &tls.cert_pem)));
            tls_args.push(format!("--ssl-key={}", write("server.key", &tls.key_pem)));
            if let Some(ca) = &tls.client_ca_pem {
                tls_args.push(format!("--ssl-ca={}", write("ca.crt", ca)));
            }
        }

        let log = dir.path().join("mariadb.log");
        for _attempt in 0..5 {
            let port = free_port();
            let _ = std::fs::remove_file(&log);
            let mut server = Command::new(find_binary("mariadbd"));
            server
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!(
                    "--pid-file={}",
                    dir.path().join("mariadb.pid").display()
                ))
                .arg(format!("--log-error={}", log.display()))
                .arg(format!("--tmpdir={}", dir.path().display()))
                .arg(format!("--port={port}"))
                .args([
                    "--bind-address=127.0.0.1",
                    // Match clients by address: 127.0.0.1 must not become `localhost`.
                    "--skip-name-resolve",
                    "--innodb-buffer-pool-size=16M",
                    "--innodb-log-file-size=8M",
                    "--skip-log-bin",
                ])
                .args(&tls_args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if root {
                server.arg("--user=root");
            }
            let mut child = server.spawn().expect("spawn mariadbd");
            match wait_for_log(&mut child, &log, "ready for connections", "mariadbd") {
                Startup::Ready => {
                    let server = Self {
                        dir,
                        socket,
                        port,
                        child,
                    };
                    server.sql(&format!(
                        "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
                         GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%'; FLUSH PRIVILEGES;"
                    ));
                    return server;
                }
                Startup::PortTaken => continue,
            }
        }
        panic!(
            "mariadbd could not find a free port; log tail:\n{}",
            log_tail(&log, 20)
        );
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A user with a password and all privileges, reachable over TCP.
    pub fn user(&self) -> &str {
        USER
    }

    /// That user's password (contains characters that need URL encoding).
    pub fn password(&self) -> &str {
        PASSWORD
    }

    /// The server's unix socket (root may log in there without a password).
    pub fn socket(&self) -> PathBuf {
        self.socket.clone()
    }

    /// Runs SQL as root over the unix socket and returns the tab-separated output.
    pub fn sql(&self, sql: &str) -> String {
        let output = Command::new(find_binary("mariadb"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-u", "root", "-N", "-B", "-e"])
            .arg(sql)
            .output()
            .expect("run mariadb");
        assert!(
            output.status.success(),
            "mariadb failed on {sql:?}: {}\nlog tail:\n{}",
            String::from_utf8_lossy(&output.stderr),
            log_tail(&self.dir.path().join("mariadb.log"), 10)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // The data is thrown away: no clean shutdown needed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
