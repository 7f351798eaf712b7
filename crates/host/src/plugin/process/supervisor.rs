//! Keeping one lane's runner up: a supervisor thread starts it, waits for
//! it to end, and starts it again after a backoff.
//!
//! Calls made while the runner is starting wait for it (within their
//! deadline); calls made while the supervisor waits out a backoff fail at
//! once as unavailable, saying why the runner stopped and when it is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use super::connection::Connection;
use super::spawn::{self, Spec};
use crate::plugin::stats::PluginStats;
use crate::runner::wire::Ready;

/// The wait before restarting a runner that answered calls before it died.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait before the `failures`-th restart in a row without a call
/// answered in between: 100 ms, doubling up to 30 s.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// Where a lane's runner is.
enum State {
    /// Being started: calls wait.
    Starting,
    /// Serving.
    Up(Arc<Connection>),
    /// Stopped; restarted at `until`.
    Down { reason: String, until: Instant },
}

/// What every runner of a plugin must say it loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The plugin's name.
    pub(crate) name: String,
    /// Its version.
    pub(crate) version: String,
    /// Its thread-safety flag.
    pub(crate) thread_safe: bool,
}

impl Identity {
    fn of(ready: &Ready) -> Self {
        Self {
            name: ready.name.clone(),
            version: ready.version.clone(),
            thread_safe: ready.thread_safe,
        }
    }
}

/// One lane's runner, kept up by its supervisor thread.
pub(crate) struct Supervised {
    label: String,
    lane: &'static str,
    spec: Spec,
    max_frame: usize,
    stats: Arc<PluginStats>,
    state: Mutex<State>,
    changed: Condvar,
    /// Set when the plugin is dropped (refused at load): no more restarts.
    stopping: AtomicBool,
    /// Set while the last attempt to start the runner again failed.
    start_failed: AtomicBool,
}

/// How a lane's runner is doing, for the plugin's inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// Serving.
    Up,
    /// Starting, or waiting out a backoff before starting again.
    Restarting,
    /// Down, and the last attempt to start it again failed.
    Failed,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Supervised {
    /// Starts the supervisor thread, which starts the first runner; returns
    /// once it is up, with its report, or with why it did not come up. A
    /// runner whose report differs from `expected` (when given) is refused.
    ///
    /// Every runner is started from the supervisor thread: it dies with the
    /// thread that started it, and that thread lives as long as the host.
    pub(crate) fn start(
        label: &str,
        lane: &'static str,
        spec: Spec,
        max_frame: usize,
        stats: Arc<PluginStats>,
        expected: Option<Identity>,
    ) -> Result<(Arc<Supervised>, Ready), String> {
        let supervised = Arc::new(Supervised {
            label: label.to_owned(),
            lane,
            spec,
            max_frame,
            stats,
            state: Mutex::new(State::Starting),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            start_failed: AtomicBool::new(false),
        });
        let (first, report) = mpsc::channel();
        let supervisor = Arc::clone(&supervised);
        std::thread::Builder::new()
            .name(format!("runner-{label}-{lane}-supervisor"))
            .spawn(move || {
                let (connection, ready) = match supervisor.start_one(expected.as_ref()) {
                    Ok(up) => up,
                    Err(reason) => {
                        let _ = first.send(Err(reason));
                        return;
                    }
                };
                let identity = Identity::of(&ready);
                let _ = first.send(Ok(ready));
                supervisor.supervise(connection, &identity);
            })
            .map_err(|error| format!("cannot start a supervisor thread: {error}"))?;
        let ready = report
            .recv()
            .map_err(|_| "the supervisor thread stopped".to_owned())??;
        Ok((supervised, ready))
    }

    /// Starts one runner and waits for its report.
    fn start_one(&self, expected: Option<&Identity>) -> Result<(Arc<Connection>, Ready), String> {
        self.set(State::Starting);
        let started = spawn::start(&self.spec, self.max_frame)?;
        let ready = started.ready.clone();
        if let Some(expected) = expected
            && Identity::of(&ready) != *expected
        {
            let mut child = started.child;
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "it loaded {} {} (thread-safe: {}), not the {} {} first loaded",
                ready.name, ready.version, ready.thread_safe, expected.name, expected.version
            ));
        }
        let connection = Connection::new(&self.label, self.lane, started, self.max_frame)?;
        if self.stopping.load(Ordering::Acquire) {
            connection.kill("the plugin was unloaded");
            return Err("the plugin was unloaded".to_owned());
        }
        tracing::info!(
            plugin = %self.label,
            lane = self.lane,
            pid = connection.pid(),
            landlock = %ready.landlock,
            seccomp = ready.seccomp,
            no_new_privs = ready.no_new_privs,
            "plugin runner started"
        );
        self.set(State::Up(Arc::clone(&connection)));
        Ok((connection, ready))
    }

    /// The supervisor's loop: waits for the runner to end, then restarts it.
    fn supervise(&self, mut connection: Arc<Connection>, identity: &Identity) {
        let mut failures = 0;
        loop {
            let reason = connection.wait_ended();
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            if connection.answered() {
                failures = 0;
            }
            failures += 1;
            let mut wait = backoff(failures);
            tracing::error!(plugin = %self.label, lane = self.lane, pid = connection.pid(), %reason, restart_in = ?wait, "plugin runner stopped; calls in flight on it failed");
            let mut last = reason;
            connection = loop {
                self.set(State::Down {
                    reason: last.clone(),
                    until: Instant::now() + wait,
                });
                std::thread::sleep(wait);
                if self.stopping.load(Ordering::Acquire) {
                    return;
                }
                match self.start_one(Some(identity)) {
                    Ok((connection, _)) => {
                        self.start_failed.store(false, Ordering::Release);
                        self.stats.runner_restarts.fetch_add(1, Ordering::Relaxed);
                        break connection;
                    }
                    Err(reason) => {
                        self.start_failed.store(true, Ordering::Release);
                        failures += 1;
                        wait = backoff(failures);
                        tracing::error!(plugin = %self.label, lane = self.lane, %reason, restart_in = ?wait, "plugin runner did not start");
                        last = format!("it did not start again: {reason}");
                    }
                }
            };
        }
    }

    /// Stops for good: kills the runner and restarts no other (the plugin
    /// was refused after its runners started, and is dropped).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let state = std::mem::replace(
            &mut *lock(&self.state),
            State::Down {
                reason: "the plugin was unloaded".to_owned(),
                until: Instant::now() + MAX_BACKOFF,
            },
        );
        if let State::Up(connection) = state {
            connection.kill("the plugin was unloaded");
        }
        self.changed.notify_all();
    }

    /// How the runner is doing.
    pub(crate) fn health(&self) -> Health {
        match &*lock(&self.state) {
            State::Up(_) => Health::Up,
            _ if self.start_failed.load(Ordering::Acquire) => Health::Failed,
            _ => Health::Restarting,
        }
    }

    fn set(&self, state: State) {
        *lock(&self.state) = state;
        self.changed.notify_all();
    }

    /// The runner to call, waiting until `end` while it starts; `Err` says
    /// why there is none.
    pub(crate) fn connection(&self, end: Instant) -> Result<Arc<Connection>, String> {
        let mut state = lock(&self.state);
        loop {
            match &*state {
                State::Up(connection) => return Ok(Arc::clone(connection)),
                State::Down { reason, until } => {
                    return Err(format!(
                        "its {} runner stopped ({reason}); it restarts in {:?}",
                        self.lane,
                        until.saturating_duration_since(Instant::now())
                    ));
                }
                State::Starting => {
                    let now = Instant::now();
                    if now >= end {
                        return Err(format!("its {} runner is starting", self.lane));
                    }
                    state = self
                        .changed
                        .wait_timeout(state, end - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(9), Duration::from_millis(25_600));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
