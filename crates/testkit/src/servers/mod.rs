//! Throwaway database servers for tests, started from the binaries installed
//! on the machine (see `scripts/test-deps.sh`).
//!
//! Each server gets its own temporary directory and a free loopback port, so
//! tests can run in parallel; dropping the guard stops the server and removes
//! the directory. A server that does not come up panics with the tail of its
//! log.

mod mariadb;
mod postgres;
mod redis;
mod sshd;
mod tls;

pub use mariadb::{MariaDb, MariaDbOptions};
pub use postgres::{PgOptions, Postgres};
pub use redis::{Redis, RedisOptions};
pub use sshd::{Sshd, SshdOptions};
pub use tls::{Pem, TestCa};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A server certificate and key (PEM) to start a server with TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
    /// The CA that signed client certificates the server should accept (optional).
    pub client_ca_pem: Option<String>,
}

/// Finds an executable in PATH or in the places Debian installs server binaries.
pub fn find_binary(name: &str) -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default();
    // PostgreSQL's server binaries are not on PATH on Debian; prefer the newest major.
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
        versions.sort_by_key(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.parse::<u32>().ok())
                .unwrap_or(0)
        });
        candidates.extend(versions.iter().rev().map(|dir| dir.join("bin").join(name)));
    }
    for dir in ["/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        candidates.push(Path::new(dir).join(name));
    }
    candidates
        .into_iter()
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: run scripts/test-deps.sh"))
}

/// A port on 127.0.0.1 that was free a moment ago (callers retry on a collision).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Whether this process runs as root (servers that refuse root then run as their own user).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The uid and gid of a system user, read with `id`.
fn user_ids(user: &str) -> (u32, u32) {
    let read = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, user])
            .output()
            .expect("run id");
        assert!(
            output.status.success(),
            "there is no `{user}` user: install the server package"
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    (read("-u"), read("-g"))
}

/// Gives `path` (recursively) to `user`.
fn chown_to(path: &Path, user: &str) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(path)
        .status()
        .expect("run chown");
    assert!(
        status.success(),
        "chown {} to {user} failed",
        path.display()
    );
}

/// A command that runs `program` as `user` (when given) through `setpriv`, which execs
/// in place: the child's pid is the server's own, so it can be signalled directly.
fn command_as(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let (uid, gid) = user_ids(user);
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// The last `lines` lines of a log file, for panic messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| format!("(no log: {error})"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What waiting for a server found.
#[derive(Debug, PartialEq)]
enum Startup {
    Ready,
    /// The server exited; its log says the port was taken.
    PortTaken,
}

/// Waits until the log contains `ready`, the server exits, or 60 s pass (then panics).
fn wait_for_log(child: &mut Child, log: &Path, ready: &str, what: &str) -> Startup {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(ready) {
            return Startup::Ready;
        }
        if let Ok(Some(status)) = child.try_wait() {
            if text.contains("in use") {
                return Startup::PortTaken;
            }
            panic!(
                "{what} exited during startup ({status}); log tail:\n{}",
                log_tail(log, 30)
            );
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!(
                "{what} was not ready within 60 s; log tail:\n{}",
                log_tail(log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
