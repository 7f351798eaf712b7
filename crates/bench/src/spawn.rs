//! Starting `connvault serve` as a child process on a loopback port.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How to start the server.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// The `connvault` executable.
    pub binary: PathBuf,
    /// A plugin directory; default: a temp dir holding the fixture plugin found
    /// beside the binary (`libcvfixture_test.so`).
    pub plugin_dir: Option<PathBuf>,
    /// The data directory; default: a fresh temp dir.
    pub data_dir: Option<PathBuf>,
    /// Acknowledge writes only once durable (the server's default).
    pub durable: bool,
    /// Where temp dirs go (default: the system temp dir). Use the disk the
    /// server would really use: fsync on tmpfs costs nothing.
    pub work_dir: Option<PathBuf>,
}

/// A running server process; killed when dropped.
pub struct Spawned {
    child: Option<Child>,
    /// `http://127.0.0.1:port`.
    pub addr: String,
    /// A bearer token the server printed at start (dev mode), if any.
    pub token: Option<String>,
    /// From spawn to the "connvault listening on" line.
    pub startup: Duration,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The server's log (stdout and stderr).
    pub log: PathBuf,
    _temp: Vec<tempfile::TempDir>,
}

enum Event {
    Listening(String),
    Token(String),
}

/// A word shaped like a JWT (three base64url parts, the first a JSON header).
fn jwt_in(line: &str) -> Option<String> {
    line.split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '=')
        .map(|word| {
            word.trim_matches(|c: char| {
                !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.'
            })
        })
        .find(|word| {
            word.starts_with("eyJ")
                && word.split('.').count() == 3
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
        .map(str::to_owned)
}

fn temp_in(work_dir: Option<&Path>) -> anyhow::Result<tempfile::TempDir> {
    match work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Ok(tempfile::tempdir_in(dir)?)
        }
        None => Ok(tempfile::tempdir()?),
    }
}

/// A plugin directory with the fixture plugin copied in under a plugin name.
pub fn fixture_plugin_dir(
    binary: &Path,
    work_dir: Option<&Path>,
) -> anyhow::Result<tempfile::TempDir> {
    plugin_dir_beside(
        binary,
        "cvfixture_test",
        "fixture",
        "connvault-fixture-testplugin",
        work_dir,
    )
}

/// A plugin directory holding the library `lib{stem}.so` found beside
/// `binary`, copied in as plugin `name` (built by cargo package `package`).
pub fn plugin_dir_beside(
    binary: &Path,
    stem: &str,
    name: &str,
    package: &str,
    work_dir: Option<&Path>,
) -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let file = format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let source = binary
        .parent()
        .map(|dir| dir.join(&file))
        .filter(|path| path.is_file())
        .with_context(|| {
            format!(
                "no {file} beside {}: build it (cargo build --release -p {package}) or pass --plugin-dir",
                binary.display()
            )
        })?;
    let dir = temp_in(work_dir)?;
    let target = dir.path().join(format!(
        "{}connvault_plugin_{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::copy(&source, &target).with_context(|| format!("copying {file}"))?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

impl Spawned {
    /// Starts the server in `--dev` mode on `127.0.0.1:0` and waits until it listens.
    pub fn start(options: &SpawnOptions) -> anyhow::Result<Spawned> {
        let mut temp = Vec::new();
        let work_dir = options.work_dir.as_deref();
        let plugin_dir = match &options.plugin_dir {
            Some(dir) => dir.clone(),
            None => {
                let dir = fixture_plugin_dir(&options.binary, work_dir)?;
                let path = dir.path().to_owned();
                temp.push(dir);
                path
            }
        };
        let data_dir = match &options.data_dir {
            Some(dir) => dir.clone(),
            None => {
                let dir = temp_in(work_dir)?;
                let path = dir.path().join("data");
                temp.push(dir);
                path
            }
        };
        let scratch = temp_in(work_dir)?;
        let log = scratch.path().join("server.log");
        let mut command = Command::new(&options.binary);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            // Only gRPC is measured; port 8080 could be taken.
            .args(["--http-listen", "off"])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--plugin-dir")
            .arg(&plugin_dir)
            .arg("--dev")
            .args(["--log-level", "warn"])
            .args(["--shutdown-grace-ms", "1000"])
            // A benchmark measures the server, not its per-tenant rate limit.
            .args(["--tenant-rate-limit", "0"])
            .env_remove("RUST_LOG")
            .env_remove("CONNVAULT_MASTER_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !options.durable {
            let config = scratch.path().join("connvault.toml");
            std::fs::write(&config, "durable = false\n")?;
            command.arg("--config").arg(config);
        }
        temp.push(scratch);
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", options.binary.display()))?;
        let (sender, receiver) = mpsc::channel();
        let file = std::fs::File::create(&log)?;
        for (stream, is_stdout) in [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                true,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                false,
            ),
        ] {
            let Some(stream) = stream else { continue };
            let sender = sender.clone();
            let mut file = file.try_clone()?;
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = writeln!(file, "{line}");
                    if is_stdout {
                        if let Some(addr) = line.strip_prefix("connvault listening on ") {
                            let _ = sender.send(Event::Listening(addr.trim().to_owned()));
                        }
                    }
                    if let Some(token) = jwt_in(&line) {
                        let _ = sender.send(Event::Token(token));
                    }
                }
            });
        }
        drop(sender);
        let mut token = None;
        let deadline = started + Duration::from_secs(120);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(Event::Listening(addr)) => break addr,
                // The first token printed is the dev admin token (every tenant, every role).
                Ok(Event::Token(found)) => {
                    token.get_or_insert(found);
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    bail!(
                        "the server did not start (exit {status:?}); log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        let startup = started.elapsed();
        // A dev token printed right after the listening line still counts.
        while let Ok(event) = receiver.recv_timeout(Duration::from_millis(50)) {
            if let Event::Token(found) = event {
                token.get_or_insert(found);
            }
        }
        Ok(Spawned {
            child: Some(child),
            addr: format!("http://{addr}"),
            token,
            startup,
            data_dir,
            log,
            _temp: temp,
        })
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident set size now, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.pid().and_then(rss_kib)
    }

    /// Stops the server with SIGTERM (SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `VmRSS` of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Disk usage of a directory tree, like `du -s` (allocated blocks), and its apparent size.
pub fn disk_usage(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut allocated = 0;
    let mut apparent = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            allocated += meta.blocks() * 512;
            apparent += meta.len();
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    (allocated, apparent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_jwt_in_a_log_line() {
        let line = "dev token: eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZXYifQ.c2ln (expires in 24h)";
        assert_eq!(
            jwt_in(line).as_deref(),
            Some("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZXYifQ.c2ln")
        );
        assert_eq!(
            jwt_in("token=\"eyJa.eyJb.c\""),
            Some("eyJa.eyJb.c".to_owned())
        );
        assert_eq!(jwt_in("connvault listening on 127.0.0.1:1"), None);
    }
}
