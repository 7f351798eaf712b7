//! A throwaway OpenSSH server to tunnel through: `sshd -D -e -f sshd_config`
//! on a free loopback port, with a host key and an authorized client key
//! generated in a temporary directory, TCP forwarding allowed, and a debug
//! log that records each forwarded channel.
//!
//! It runs as the current user (privilege separation needs `/run/sshd`
//! when that is root, which it creates as Debian's service would). Password
//! authentication needs a password the test knows: as root, the server runs
//! in a mount namespace of its own where a copy of `/etc/shadow` with that
//! password for root is bind-mounted over the real one, so nothing on the
//! machine changes; as any other user it is not available
//! ([`Sshd::password_supported`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{Startup, find_binary, free_port, log_tail, running_as_root, wait_for_log};

/// How to start an [`Sshd`].
#[derive(Debug, Clone, Default)]
pub struct SshdOptions {
    /// Encrypt the authorized client key with this passphrase.
    pub key_passphrase: Option<String>,
    /// Also accept password authentication with this password (root only,
    /// see [`Sshd::password_supported`]).
    pub password: Option<String>,
}

/// A running sshd; dropping it stops the server and removes its files.
pub struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
    user: String,
    client_key: String,
    other_key: String,
    host_fingerprint: String,
}

/// Runs `ssh-keygen` to make an ed25519 key at `path` (and `path.pub`).
fn keygen(path: &Path, passphrase: &str) {
    let status = Command::new(find_binary("ssh-keygen"))
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "connvault-test",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// The SHA256 fingerprint of a public key file, as OpenSSH prints it.
fn fingerprint(public: &Path) -> String {
    let output = Command::new(find_binary("ssh-keygen"))
        .args(["-l", "-E", "sha256", "-f"])
        .arg(public)
        .output()
        .expect("run ssh-keygen -l");
    assert!(output.status.success(), "ssh-keygen -l failed");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_owned()
}

/// The current user's name.
fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `/etc/shadow` with root's password replaced by `password`'s SHA-512 crypt.
fn shadow_with_root_password(password: &str) -> String {
    let output = Command::new(find_binary("openssl"))
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(password.as_bytes())?;
            }
            child.wait_with_output()
        })
        .expect("run openssl passwd");
    assert!(output.status.success(), "openssl passwd failed");
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let shadow = std::fs::read_to_string("/etc/shadow").expect("read /etc/shadow");
    shadow
        .lines()
        .map(|line| match line.strip_prefix("root:") {
            Some(rest) => {
                let tail: Vec<&str> = rest.splitn(2, ':').collect();
                format!("root:{hash}:{}", tail.get(1).copied().unwrap_or("::::::"))
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

impl Sshd {
    /// Whether [`SshdOptions::password`] can be honoured here (root only).
    pub fn password_supported() -> bool {
        running_as_root()
    }

    /// Generates the keys and starts sshd on a free loopback port.
    pub fn start(options: SshdOptions) -> Self {
        let root = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("cv-sshd-")
            .tempdir()
            .expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        keygen(&path("host_ed25519"), "");
        keygen(
            &path("client_ed25519"),
            options.key_passphrase.as_deref().unwrap_or(""),
        );
        keygen(&path("other_ed25519"), "");
        std::fs::copy(path("client_ed25519.pub"), path("authorized_keys"))
            .expect("write authorized_keys");
        if root {
            // Privilege separation's empty directory, as Debian's service makes it.
            std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        }
        let password = options.password.as_deref().filter(|_| root);
        assert!(
            options.password.is_none() || password.is_some(),
            "password authentication needs root (see Sshd::password_supported)"
        );
        if let Some(password) = password {
            std::fs::write(path("shadow"), shadow_with_root_password(password))
                .expect("write shadow copy");
        }
        let log = path("sshd.log");
        for _attempt in 0..5 {
            let port = free_port();
            let conf = format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {host}\n\
                 PidFile none\n\
                 AuthorizedKeysFile {keys}\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PermitRootLogin yes\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication {password}\n\
                 KbdInteractiveAuthentication no\n\
                 AllowTcpForwarding yes\n\
                 X11Forwarding no\n\
                 UseDNS no\n\
                 LogLevel DEBUG1\n",
                host = path("host_ed25519").display(),
                keys = path("authorized_keys").display(),
                password = if password.is_some() { "yes" } else { "no" },
            );
            std::fs::write(path("sshd_config"), conf).expect("write sshd_config");
            let log_file = std::fs::File::create(&log).expect("create sshd.log");
            let sshd = find_binary("sshd");
            let mut command = if password.is_some() {
                let mut command = Command::new(find_binary("unshare"));
                command
                    .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                    .arg("mount --bind \"$1\" /etc/shadow && exec \"$2\" -D -e -f \"$3\"")
                    .arg("sh")
                    .arg(path("shadow"))
                    .arg(&sshd)
                    .arg(path("sshd_config"));
                command
            } else {
                let mut command = Command::new(&sshd);
                command.args(["-D", "-e", "-f"]).arg(path("sshd_config"));
                command
            };
            let mut child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log_file))
                .spawn()
                .expect("spawn sshd");
            match wait_for_log(&mut child, &log, "Server listening on", "sshd") {
                Startup::Ready => {
                    let read = |name: &str| {
                        std::fs::read_to_string(path(name)).expect("read a generated key")
                    };
                    return Self {
                        port,
                        client_key: read("client_ed25519"),
                        other_key: read("other_ed25519"),
                        host_fingerprint: fingerprint(&path("host_ed25519.pub")),
                        user: current_user(),
                        child,
                        dir,
                    };
                }
                Startup::PortTaken => continue,
            }
        }
        panic!(
            "sshd could not find a free port; log tail:\n{}",
            log_tail(&log, 20)
        );
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user to log in as (the current user).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The authorized client key (OpenSSH PEM; encrypted when a passphrase was asked for).
    pub fn client_key(&self) -> &str {
        &self.client_key
    }

    /// A valid key the server does not authorize.
    pub fn unauthorized_key(&self) -> &str {
        &self.other_key
    }

    /// The host key's fingerprint, `SHA256:...` as `ssh-keygen -l` prints it.
    pub fn host_fingerprint(&self) -> &str {
        &self.host_fingerprint
    }

    /// The server's log so far (debug level: forwarded channels are in it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The directory holding its files.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
