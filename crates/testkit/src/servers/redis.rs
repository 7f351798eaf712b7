//! A throwaway Redis server: `--requirepass`, an ACL user, optional TLS.

use std::process::{Child, Command, Stdio};

use super::{Startup, TlsFiles, find_binary, free_port, log_tail, wait_for_log};

/// How to start a [`Redis`].
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Serve TLS only, with this certificate.
    pub tls: Option<TlsFiles>,
}

/// A running Redis server; dropping it stops the server and removes its files.
pub struct Redis {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
    tls: bool,
}

// Characters that need URL encoding on purpose.
const PASSWORD: &str = "cv p@ss:w/rd%";
const ACL_USER: &str = "cvacl";
const ACL_PASSWORD: &str = "acl:p@ss/word";

impl Redis {
    /// Starts a server on a free loopback port, nothing persisted.
    pub fn start(options: RedisOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cv-redis-")
            .tempdir()
            .expect("temp dir");
        let log = dir.path().join("redis.log");
        for _attempt in 0..5 {
            let port = free_port();
            let mut conf = format!(
                "bind 127.0.0.1\nprotected-mode yes\nsave \"\"\nappendonly no\ndir {dir}\nlogfile {log}\n\
                 requirepass \"{PASSWORD}\"\nuser {ACL_USER} on >{ACL_PASSWORD} ~* &* +@all\n",
                dir = dir.path().display(),
                log = log.display(),
            );
            if let Some(tls) = &options.tls {
                let write = |name: &str, text: &str| {
                    let path = dir.path().join(name);
                    std::fs::write(&path, text).expect("write TLS file");
                    path.display().to_string()
                };
                conf.push_str(&format!(
                    "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-auth-clients no\n",
                    write("server.crt", &tls.cert_pem),
                    write("server.key", &tls.key_pem)
                ));
                if let Some(ca) = &tls.client_ca_pem {
                    conf.push_str(&format!("tls-ca-cert-file {}\n", write("ca.crt", ca)));
                }
            } else {
                conf.push_str(&format!("port {port}\n"));
            }
            let conf_path = dir.path().join("redis.conf");
            std::fs::write(&conf_path, conf).expect("write redis.conf");
            let _ = std::fs::remove_file(&log);
            let mut child = Command::new(find_binary("redis-server"))
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            match wait_for_log(
                &mut child,
                &log,
                "Ready to accept connections",
                "redis-server",
            ) {
                Startup::Ready => {
                    return Self {
                        dir,
                        port,
                        child,
                        tls: options.tls.is_some(),
                    };
                }
                Startup::PortTaken => continue,
            }
        }
        panic!(
            "redis-server could not find a free port; log tail:\n{}",
            log_tail(&log, 20)
        );
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The default user's password (`requirepass`).
    pub fn password(&self) -> &str {
        PASSWORD
    }

    /// An ACL user with all permissions.
    pub fn acl_user(&self) -> &str {
        ACL_USER
    }

    /// The ACL user's password.
    pub fn acl_password(&self) -> &str {
        ACL_PASSWORD
    }

    /// Runs one command with `redis-cli` as the default user in database `db`.
    pub fn cli(&self, db: u32, args: &[&str]) -> String {
        assert!(!self.tls, "cli() speaks plain TCP only");
        let output = Command::new(find_binary("redis-cli"))
            .args(["-h", "127.0.0.1", "--no-auth-warning"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-n")
            .arg(db.to_string())
            .env("REDISCLI_AUTH", PASSWORD)
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(
            output.status.success(),
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
