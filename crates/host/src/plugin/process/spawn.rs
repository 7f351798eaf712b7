//! Starting one runner process: its socket pair, its descriptors, its
//! environment, and the handshake that says it loaded the plugin.

use std::ffi::OsString;
use std::io::BufReader;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::runner::wire::{self, Frame, Ready, Setup};
use crate::runner::{PLUGIN_FD, SOCKET_FD};

/// The environment variables a runner inherits, when the host has them:
/// locale, time zone and certificate locations. Nothing else of the
/// host's environment (where its secrets may be) reaches a plugin.
const PASSED_ENV: &[&str] = &["TZ", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR"];

/// How long a runner may take to answer the setup, beyond the plugin's
/// load timeout (starting the process, checking the bytes).
const HANDSHAKE_SLACK: Duration = Duration::from_secs(5);

/// Everything needed to start a runner of one plugin for one lane.
pub(crate) struct Spec {
    /// The program and its arguments.
    pub(crate) program: PathBuf,
    /// The arguments.
    pub(crate) args: Vec<OsString>,
    /// The plugin's sealed bytes, passed as fd 4.
    pub(crate) memfd: Arc<memfd::Memfd>,
    /// What the runner is told.
    pub(crate) setup: Setup,
    /// How long the runner may take to load the plugin.
    pub(crate) load_timeout: Duration,
}

/// A runner that answered its setup.
pub(crate) struct Started {
    /// The process.
    pub(crate) child: Child,
    /// The host's end of the socket, reading.
    pub(crate) reader: BufReader<UnixStream>,
    /// The host's end of the socket, writing.
    pub(crate) writer: UnixStream,
    /// What the runner printed (stdout and stderr), to be read.
    pub(crate) output: std::fs::File,
    /// Its report.
    pub(crate) ready: Ready,
}

/// Starts a runner and waits for its report; `Err` says why it did not
/// come up (and the process, if any, is killed).
pub(crate) fn start(spec: &Spec, max_frame: usize) -> Result<Started, String> {
    let (host, runner) = UnixStream::pair().map_err(|error| format!("socketpair: {error}"))?;
    let (output, output_writer) = pipe().map_err(|error| format!("pipe: {error}"))?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(
            PASSED_ENV
                .iter()
                .filter_map(|name| std::env::var_os(name).map(|value| (name, value))),
        )
        // Keeps glibc's malloc arenas (64 MiB of address space each) from
        // eating the address-space limit in a runner with many threads.
        .env("MALLOC_ARENA_MAX", "2")
        // Likewise mimalloc's (the server's allocator), which would reserve
        // 1 GiB of address space up front.
        .env("MIMALLOC_ARENA_RESERVE", "64M")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            output_writer
                .try_clone()
                .map_err(|error| format!("dup: {error}"))?,
        ))
        .stderr(Stdio::from(output_writer));
    let socket_fd = runner.as_raw_fd();
    let plugin_fd = spec.memfd.as_raw_fd();
    // SAFETY: between fork and exec the closure only makes async-signal-safe
    // system calls (fcntl, dup2, close, prctl) on descriptors this process
    // owns and keeps open until `spawn` returns.
    unsafe {
        command.pre_exec(move || {
            // Dup both above the target numbers first, so neither
            // overwrites the other wherever they happen to be.
            let socket = cvt(libc::fcntl(socket_fd, libc::F_DUPFD, 10))?;
            let plugin = cvt(libc::fcntl(plugin_fd, libc::F_DUPFD, 10))?;
            cvt(libc::dup2(socket, SOCKET_FD))?;
            cvt(libc::dup2(plugin, PLUGIN_FD))?;
            libc::close(socket);
            libc::close(plugin);
            // The runner dies with the thread that started it (a
            // supervisor, which lives as long as the host).
            cvt(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", spec.program.display()))?;
    // The runner holds its own copies now: without closing ours, its death
    // would never reach the reader as the end of the stream.
    drop(runner);
    drop(command);
    // The error, and whether the runner's exit status tells more.
    let handshake = || -> Result<(BufReader<UnixStream>, UnixStream, Ready), (String, bool)> {
        let writer = host
            .try_clone()
            .map_err(|error| (format!("dup: {error}"), false))?;
        let mut writer_ref = &writer;
        wire::write_frame(&mut writer_ref, &Frame::Setup(spec.setup.clone()))
            .map_err(|error| (format!("cannot send the setup: {error}"), true))?;
        host.set_read_timeout(Some(spec.load_timeout + HANDSHAKE_SLACK))
            .map_err(|error| (error.to_string(), false))?;
        let mut reader = BufReader::new(host);
        let mut ready = match wire::read_frame(&mut reader, max_frame) {
            Ok(Some(Frame::Ready(ready))) => ready,
            Ok(Some(_)) => {
                return Err(("it answered the setup with another frame".to_owned(), false));
            }
            Ok(None) => return Err(("it stopped before it was ready".to_owned(), true)),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err((
                    format!(
                        "it was not ready within {:?}",
                        spec.load_timeout + HANDSHAKE_SLACK
                    ),
                    false,
                ));
            }
            Err(error) => return Err((format!("its report did not read: {error}"), true)),
        };
        if !ready.error.is_empty() {
            let mut error = ready.error;
            truncate(&mut error, MAX_REPORT);
            return Err((error, false));
        }
        // The plugin's code has run by now: its report is as untrusted as
        // the rest of what the runner says.
        if ready.name.is_empty() || ready.name.len() > 255 || ready.version.len() > 255 {
            return Err((
                "its report names the plugin out of bounds".to_owned(),
                false,
            ));
        }
        truncate(&mut ready.landlock, 128);
        reader
            .get_ref()
            .set_read_timeout(None)
            .map_err(|error| (error.to_string(), false))?;
        Ok((reader, writer, ready))
    };
    match handshake() {
        Ok((reader, writer, ready)) => Ok(Started {
            child,
            reader,
            writer,
            output,
            ready,
        }),
        Err((reason, tell_status)) => {
            let _ = child.kill();
            match child.wait() {
                Ok(status) if tell_status => Err(format!("{reason}: it {}", exit_reason(status))),
                _ => Err(reason),
            }
        }
    }
}

/// The longest error a runner's report may carry into a log line.
const MAX_REPORT: usize = 1024;

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// How a runner ended, in words: "exited with code 3", "was killed by
/// signal 11 (SIGSEGV)".
pub(crate) fn exit_reason(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    let Some(signal) = status.signal() else {
        return format!("ended ({status})");
    };
    let name = match signal {
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGILL => " (SIGILL)",
        libc::SIGFPE => " (SIGFPE)",
        libc::SIGSYS => " (SIGSYS)",
        libc::SIGXCPU => " (SIGXCPU: its CPU-time limit)",
        libc::SIGTERM => " (SIGTERM)",
        _ => "",
    };
    format!("was killed by signal {signal}{name}")
}

fn cvt(result: i32) -> std::io::Result<i32> {
    if result < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// A pipe whose ends close on exec: (read, write).
fn pipe() -> std::io::Result<(std::fs::File, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe {
        Ok((
            std::fs::File::from_raw_fd(fds[0]),
            OwnedFd::from_raw_fd(fds[1]),
        ))
    }
}
