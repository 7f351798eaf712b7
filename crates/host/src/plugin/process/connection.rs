//! One live runner: the calls in flight on it, the thread reading its
//! answers, the thread reading what it prints, and killing it.
//!
//! The runner is untrusted (the plugin in it may have taken it over), so
//! every frame it sends is bounded and checked: an answer to no call in
//! flight, a frame of a kind it may not send, or one that does not decode
//! gets it killed. When it dies, for whatever reason, every call in flight
//! on it fails with that reason.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use connvault_plugin_abi::log_level;

use super::spawn::{self, Started};
use crate::plugin::outcome::RawAnswer;
use crate::runner::wire::{self, Frame};

/// How long a write to a runner may block: a runner's reading thread does
/// nothing else, so one that stops reading for this long is broken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest line of a runner's output that is logged; the rest is cut.
const MAX_OUTPUT_LINE: usize = 4096;

/// Why a call on a runner did not get an answer.
#[derive(Debug)]
pub(crate) enum Lost {
    /// The runner died (or was killed) with the call in flight.
    Died(String),
}

/// Calls in flight, and whether new ones may still be sent.
struct Pending {
    calls: HashMap<u64, mpsc::SyncSender<Result<RawAnswer, Lost>>>,
    /// Set once the runner is gone: why.
    closed: Option<String>,
}

/// A runner process serving one lane of one plugin.
pub(crate) struct Connection {
    plugin: String,
    lane: &'static str,
    pid: u32,
    writer: Mutex<UnixStream>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    /// `None` once reaped: a pid is never signalled after that.
    child: Mutex<Option<Child>>,
    /// Why the host killed it, if it did.
    killed_for: Mutex<Option<String>>,
    /// Why it ended, once it has and every call in flight was failed.
    ended: Mutex<Option<String>>,
    ended_changed: Condvar,
    /// Whether it answered a call (a runner that dies before answering
    /// anything makes its restarts wait longer).
    answered: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its state whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connection {
    /// Wraps a started runner of `plugin`'s `lane` and starts its reader
    /// threads; frames over `max_frame` bytes kill it.
    pub(crate) fn new(
        plugin: &str,
        lane: &'static str,
        started: Started,
        max_frame: usize,
    ) -> Result<Arc<Connection>, String> {
        let Started {
            child,
            reader,
            writer,
            output,
            ..
        } = started;
        writer
            .set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(|error| error.to_string())?;
        let connection = Arc::new(Connection {
            plugin: plugin.to_owned(),
            lane,
            pid: child.id(),
            writer: Mutex::new(writer),
            pending: Mutex::new(Pending {
                calls: HashMap::new(),
                closed: None,
            }),
            next_id: AtomicU64::new(1),
            child: Mutex::new(Some(child)),
            killed_for: Mutex::new(None),
            ended: Mutex::new(None),
            ended_changed: Condvar::new(),
            answered: AtomicBool::new(false),
        });
        let reading = Arc::clone(&connection);
        let spawned = std::thread::Builder::new()
            .name(format!("runner-{plugin}-{lane}-reader"))
            .spawn(move || reading.read_answers(reader, max_frame));
        if let Err(error) = spawned {
            connection.kill("the host could not start its reader");
            return Err(error.to_string());
        }
        let printing = Arc::clone(&connection);
        let _ = std::thread::Builder::new()
            .name(format!("runner-{plugin}-{lane}-output"))
            .spawn(move || printing.read_output(output));
        Ok(connection)
    }

    /// The runner's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it answered at least one call.
    pub(crate) fn answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// Sends a call and waits for its answer until `kill_at`; past that,
    /// kills the runner (failing every call in flight on it).
    pub(crate) fn call(
        &self,
        method_id: u32,
        method_name: &str,
        request: &[u8],
        limit: usize,
        end: Instant,
        kill_at: Instant,
    ) -> Result<RawAnswer, Lost> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::sync_channel(1);
        {
            let mut pending = lock(&self.pending);
            if let Some(reason) = &pending.closed {
                return Err(Lost::Died(reason.clone()));
            }
            pending.calls.insert(id, sender);
        }
        let deadline_ms = end
            .saturating_duration_since(Instant::now())
            .as_millis()
            .min(u128::from(u32::MAX)) as u32;
        let frame = Frame::Call {
            id,
            method: method_id,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            deadline_ms,
            request: request.to_vec(),
        }
        .encode();
        if lock(&self.writer).write_all(&frame).is_err() {
            // The reader fails this call with the runner's exit status.
            self.kill("the host could not send it a call");
        }
        match receiver.recv_timeout(kill_at.saturating_duration_since(Instant::now())) {
            Ok(answer) => answer,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.kill(&format!(
                    "a {method_name} call ran past its deadline and its grace"
                ));
                receiver
                    .recv()
                    .unwrap_or_else(|_| Err(Lost::Died("it was killed".to_owned())))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Lost::Died("it dropped the call".to_owned()))
            }
        }
    }

    /// Kills the runner with SIGKILL, saying why (the first reason stays).
    pub(crate) fn kill(&self, reason: &str) {
        {
            let mut killed_for = lock(&self.killed_for);
            if killed_for.is_none() {
                *killed_for = Some(reason.to_owned());
            }
        }
        if let Some(child) = lock(&self.child).as_mut() {
            let _ = child.kill();
        }
    }

    /// Waits until the runner has ended and its calls were failed; why it ended.
    pub(crate) fn wait_ended(&self) -> String {
        let mut ended = lock(&self.ended);
        loop {
            if let Some(reason) = ended.as_ref() {
                return reason.clone();
            }
            ended = self
                .ended_changed
                .wait(ended)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The reader thread: hands each answer to its call until the stream
    /// ends or breaks the protocol, then reaps the runner and fails the rest.
    fn read_answers(&self, mut reader: BufReader<UnixStream>, max_frame: usize) {
        let mut logs = LogBudget::new();
        loop {
            match wire::read_frame(&mut reader, max_frame) {
                Ok(Some(Frame::Reply {
                    id,
                    code,
                    overflowed,
                    output,
                })) => {
                    let Some(sender) = lock(&self.pending).calls.remove(&id) else {
                        self.kill("it sent an answer to no call in flight");
                        break;
                    };
                    self.answered.store(true, Ordering::Relaxed);
                    let _ = sender.send(Ok(RawAnswer {
                        code,
                        overflowed,
                        bytes: output,
                    }));
                }
                Ok(Some(Frame::Log { level, message })) => {
                    if logs.take() {
                        self.log(level, &String::from_utf8_lossy(&message));
                    }
                }
                Ok(Some(_)) => {
                    self.kill("it sent a frame a runner may not send");
                    break;
                }
                Ok(None) => break,
                Err(error) => {
                    self.kill(&format!("it broke the protocol: {error}"));
                    break;
                }
            }
        }
        let reason = self.reap();
        let calls = {
            let mut pending = lock(&self.pending);
            pending.closed = Some(reason.clone());
            std::mem::take(&mut pending.calls)
        };
        for (_, sender) in calls {
            let _ = sender.send(Err(Lost::Died(reason.clone())));
        }
        *lock(&self.ended) = Some(reason);
        self.ended_changed.notify_all();
    }

    /// Kills (in case it only closed its socket) and waits for the runner;
    /// why it ended, in words.
    fn reap(&self) -> String {
        let status = lock(&self.child).take().map(|mut child| {
            let _ = child.kill();
            child.wait()
        });
        let how = match status {
            Some(Ok(status)) => spawn::exit_reason(status),
            Some(Err(error)) => format!("could not be waited for ({error})"),
            None => "ended".to_owned(),
        };
        match lock(&self.killed_for).as_ref() {
            Some(reason) => format!("it was killed because {reason}"),
            None => format!("it {how}"),
        }
    }

    /// Logs a line the plugin logged, as the in-process host does.
    fn log(&self, level: u32, text: &str) {
        let (plugin, pid) = (self.plugin.as_str(), self.pid);
        match level {
            log_level::ERROR => tracing::error!(target: "connvault::plugin", plugin, pid, "{text}"),
            log_level::WARN => tracing::warn!(target: "connvault::plugin", plugin, pid, "{text}"),
            log_level::INFO => tracing::info!(target: "connvault::plugin", plugin, pid, "{text}"),
            log_level::DEBUG => tracing::debug!(target: "connvault::plugin", plugin, pid, "{text}"),
            _ => tracing::trace!(target: "connvault::plugin", plugin, pid, "{text}"),
        }
    }

    /// The output thread: logs what the runner prints, line by line, cut
    /// and within a budget, so a plugin flooding its output costs the
    /// host's log a bounded number of lines.
    fn read_output(&self, output: std::fs::File) {
        let mut reader = BufReader::with_capacity(MAX_OUTPUT_LINE, output);
        let mut budget = LogBudget::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            // Reads at most one buffer's worth, so an endless line is cut.
            let read = match reader.fill_buf() {
                Ok([]) | Err(_) => break,
                Ok(bytes) => {
                    let end = bytes
                        .iter()
                        .position(|byte| *byte == b'\n')
                        .map_or(bytes.len(), |at| at + 1);
                    line.extend_from_slice(&bytes[..end]);
                    end
                }
            };
            reader.consume(read);
            if budget.take() {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if !text.is_empty() {
                    tracing::warn!(target: "connvault::plugin", plugin = %self.plugin, lane = self.lane, pid = self.pid, "runner output: {text}");
                }
            }
        }
        let dropped = budget.dropped_total;
        if dropped > 0 {
            tracing::warn!(target: "connvault::plugin", plugin = %self.plugin, lane = self.lane, pid = self.pid, dropped, "runner output lines were dropped over the log budget");
        }
    }
}

/// A token bucket for the lines one runner may log: 100 at once, then 20
/// a second. Dropped lines are counted and reported when lines flow again.
struct LogBudget {
    tokens: f64,
    last: Instant,
    dropped: u64,
    dropped_total: u64,
}

impl LogBudget {
    const BURST: f64 = 100.0;
    const PER_SEC: f64 = 20.0;

    fn new() -> Self {
        Self {
            tokens: Self::BURST,
            last: Instant::now(),
            dropped: 0,
            dropped_total: 0,
        }
    }

    /// Whether one more line may be logged now.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * Self::PER_SEC;
        self.tokens = (self.tokens + refill).min(Self::BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            if self.dropped > 0 {
                tracing::warn!(target: "connvault::plugin", dropped = self.dropped, "plugin lines were dropped over the log budget");
                self.dropped = 0;
            }
            true
        } else {
            self.dropped += 1;
            self.dropped_total += 1;
            false
        }
    }
}
