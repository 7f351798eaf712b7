//! The plugin runner: the child process that loads one plugin, confined,
//! and serves the host's calls to it.
//!
//! The host starts a runner per plugin and lane (`connvault plugin-runner`,
//! the server's own executable) with its end of a socket pair on fd 3 and
//! the plugin's sealed memfd on fd 4. The runner then:
//!
//! 1. closes every other inherited descriptor;
//! 2. reads its [`Setup`](wire::Setup) (limits, extra readable paths);
//! 3. checks the plugin's bytes as the host did (SHA-256, ELF);
//! 4. sets its resource limits, `no_new_privs`, Landlock and seccomp
//!    ([`confine`]), before a byte of the plugin runs;
//! 5. loads the plugin as the host loads one in-process (`dlopen` of the
//!    memfd, the descriptor checks, `init` under a time limit);
//! 6. reports [`Ready`](wire::Ready) — or why it could not — and serves
//!    calls, several at once, each on one of its worker threads, until the
//!    host closes the socket.
//!
//! The plugin's log lines travel to the host as frames; anything it prints
//! goes to a pipe the host reads, bounded.

mod confine;
pub(crate) mod wire;

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::plugin::{InProcess, PluginStats, forward_logs, open_memfd};
use crate::verify::{MAX_PLUGIN_BYTES, check_elf};
use wire::{Frame, Ready, Setup};

pub(crate) use confine::SYSTEM_READ_PATHS;

/// The running kernel's Landlock ABI version; 0 when it has none (runners
/// then run without the file-system restriction, and report so).
pub fn landlock_abi() -> i64 {
    confine::kernel_abi()
}

/// The descriptor of the runner's end of its socket pair.
pub(crate) const SOCKET_FD: i32 = 3;
/// The descriptor of the plugin's sealed memfd.
pub(crate) const PLUGIN_FD: i32 = 4;

/// The largest setup frame a runner reads.
const MAX_SETUP: usize = 1 << 16;
/// The largest call frame a runner reads (the host's requests are bounded
/// well below; this only stops a broken host from exhausting memory).
const MAX_CALL: usize = 1 << 30;

/// Runs a runner: the entry point of `connvault plugin-runner`.
///
/// Expects the socket on fd 3 and the plugin on fd 4, as the host sets them
/// up; started any other way it exits at once with a failure.
pub fn main() -> ExitCode {
    // SAFETY: close_range only closes descriptors; none above the two the
    // host passed belongs to anything in this fresh process.
    unsafe {
        libc::syscall(libc::SYS_close_range, PLUGIN_FD + 1, u32::MAX, 0);
    }
    // SAFETY: the host puts the runner's socket on fd 3 and the plugin on
    // fd 4 (see `plugin::process`); nothing else in this process owns them.
    let (socket, plugin) = unsafe {
        if libc::fcntl(SOCKET_FD, libc::F_GETFD) < 0 || libc::fcntl(PLUGIN_FD, libc::F_GETFD) < 0 {
            eprintln!("plugin-runner is started by connvault itself, not by hand");
            return ExitCode::FAILURE;
        }
        (
            UnixStream::from_raw_fd(SOCKET_FD),
            OwnedFd::from_raw_fd(PLUGIN_FD),
        )
    };
    let Ok(writer) = socket.try_clone() else {
        return ExitCode::FAILURE;
    };
    let writer = Arc::new(Mutex::new(writer));
    let mut reader = BufReader::new(socket);
    let (plugin, ready, workers) = match prepare(&mut reader, plugin) {
        Ok(prepared) => prepared,
        Err(error) => {
            let ready = Ready {
                error,
                ..Ready::default()
            };
            let _ = send(&writer, &Frame::Ready(ready));
            return ExitCode::from(2);
        }
    };
    let forward = Arc::clone(&writer);
    forward_logs(Box::new(move |level, message| {
        let _ = send(
            &forward,
            &Frame::Log {
                level,
                message: message.to_vec(),
            },
        );
    }));
    if send(&writer, &Frame::Ready(ready)).is_err() {
        return ExitCode::FAILURE;
    }
    serve(reader, writer, Arc::new(plugin), workers)
}

/// Steps 2 to 5: reads the setup, checks and confines, loads the plugin.
fn prepare(
    reader: &mut BufReader<UnixStream>,
    plugin: OwnedFd,
) -> Result<(InProcess, Ready, usize), String> {
    let setup = match wire::read_frame(reader, MAX_SETUP) {
        Ok(Some(Frame::Setup(setup))) => setup,
        Ok(_) => return Err("the host sent no setup".to_owned()),
        Err(error) => return Err(format!("cannot read the setup: {error}")),
    };
    let memfd = memfd::Memfd::try_from_fd(plugin)
        .map_err(|_| "the plugin descriptor is not a memfd".to_owned())?;
    check(&setup, memfd.as_file())?;
    confine::limit_resources(&setup)?;
    let confinement = confine::confine(&setup)?;
    let timeout = Duration::from_millis(setup.load_timeout_ms.max(1));
    let loaded = open_memfd(memfd, timeout).map_err(|error| error.to_string())?;
    let workers = if loaded.thread_safe {
        setup.workers.max(1) as usize
    } else {
        1
    };
    let ready = Ready {
        error: String::new(),
        name: loaded.parts.name.clone(),
        version: loaded.version.clone(),
        thread_safe: loaded.thread_safe,
        landlock: confinement.landlock,
        seccomp: confinement.seccomp,
        no_new_privs: confinement.no_new_privs,
    };
    let plugin = InProcess::new(loaded.parts, Arc::new(PluginStats::default()));
    Ok((plugin, ready, workers))
}

/// Step 3: the bytes are the ones the host verified, and pass the ELF checks.
fn check(setup: &Setup, file: &std::fs::File) -> Result<(), String> {
    let len = file
        .metadata()
        .map_err(|error| format!("cannot read the plugin: {error}"))?
        .len();
    if len > MAX_PLUGIN_BYTES {
        return Err(format!("the plugin is {len} bytes, over the limit"));
    }
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|error| format!("cannot read the plugin: {error}"))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if !sha256.eq_ignore_ascii_case(&setup.sha256) {
        return Err(format!(
            "the plugin's SHA-256 {sha256} is not the one the host verified"
        ));
    }
    check_elf(&bytes).map_err(|error| error.to_string())
}

/// A call read from the socket: id, method, output limit, request.
type Job = (u64, u32, u32, Vec<u8>);

/// The socket's reading end and the calls read from it but not yet taken.
struct Inbox {
    reader: Mutex<BufReader<UnixStream>>,
    queued: Mutex<VecDeque<Job>>,
}

/// Step 6: serves calls until the host closes the socket (the process then
/// exits, whatever its workers are doing).
///
/// Each idle worker takes its turn at the socket and makes the call it
/// reads itself: a call arriving alone costs no hand-off between threads.
/// Calls that arrived with it (already in the read buffer) are queued for
/// the workers finishing their calls, which take them without waiting for
/// the socket: under load, calls do not queue behind one another's reads.
fn serve(
    reader: BufReader<UnixStream>,
    writer: Arc<Mutex<UnixStream>>,
    plugin: Arc<InProcess>,
    workers: usize,
) -> ExitCode {
    let inbox = Arc::new(Inbox {
        reader: Mutex::new(reader),
        queued: Mutex::new(VecDeque::new()),
    });
    let mut handles = Vec::with_capacity(workers);
    for index in 0..workers {
        let (inbox, writer, plugin) =
            (Arc::clone(&inbox), Arc::clone(&writer), Arc::clone(&plugin));
        let spawned = std::thread::Builder::new()
            .name(format!("runner-{index}"))
            .spawn(move || work(&inbox, &writer, &plugin));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(_) => return ExitCode::FAILURE,
        }
    }
    // Workers end the process; these joins only wait for that.
    for handle in handles {
        let _ = handle.join();
    }
    ExitCode::FAILURE
}

/// One worker: takes a queued call, or reads one, makes it, answers.
fn work(inbox: &Inbox, writer: &Mutex<UnixStream>, plugin: &InProcess) {
    loop {
        let (id, method, limit, request) = next_call(inbox);
        let answer = plugin.raw_call(method, &request, limit as usize);
        let reply = Frame::Reply {
            id,
            code: answer.code,
            overflowed: answer.overflowed,
            output: if answer.overflowed {
                Vec::new()
            } else {
                answer.bytes
            },
        };
        if send(writer, &reply).is_err() {
            std::process::exit(0);
        }
    }
}

/// The next call: a queued one, or the next from the socket (then every
/// further call already buffered is queued). Ends the process when the host
/// closes the socket or breaks the protocol.
fn next_call(inbox: &Inbox) -> Job {
    let pop = || {
        inbox
            .queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    };
    if let Some(job) = pop() {
        return job;
    }
    let mut reader = inbox.reader.lock().unwrap_or_else(PoisonError::into_inner);
    // Queued while this worker waited for its turn at the socket.
    if let Some(job) = pop() {
        return job;
    }
    let job = read_call(&mut reader);
    let mut buffered = Vec::new();
    while holds_a_frame(reader.buffer()) {
        buffered.push(read_call(&mut reader));
    }
    drop(reader);
    if !buffered.is_empty() {
        inbox
            .queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(buffered);
    }
    job
}

/// Whether `buffer` starts with a whole frame (so reading it cannot block).
fn holds_a_frame(buffer: &[u8]) -> bool {
    buffer
        .get(..4)
        .and_then(|prefix| prefix.try_into().ok())
        .is_some_and(|prefix: [u8; 4]| buffer.len() - 4 >= u32::from_le_bytes(prefix) as usize)
}

/// Reads one call; ends the process at the end of the stream or on
/// anything but a call.
fn read_call(reader: &mut BufReader<UnixStream>) -> Job {
    match wire::read_frame(reader, MAX_CALL) {
        Ok(Some(Frame::Call {
            id,
            method,
            limit,
            request,
            ..
        })) => (id, method, limit, request),
        // The host closed the socket: it wants this runner gone.
        Ok(None) => std::process::exit(0),
        Ok(Some(_)) | Err(_) => std::process::exit(1),
    }
}

/// Writes one frame whole, under the writers' lock.
fn send(writer: &Mutex<UnixStream>, frame: &Frame) -> std::io::Result<()> {
    let bytes = frame.encode();
    writer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .write_all(&bytes)
}
