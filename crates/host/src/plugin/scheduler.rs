//! Scheduling calls onto a plugin's dedicated worker threads, under a
//! per-plugin and a global permit and a deadline.
//!
//! A call that misses its deadline is abandoned: its worker stays with it
//! until it returns, and the plugin reports itself degraded meanwhile. Once
//! every worker is held that way, calls fail fast as unavailable instead of
//! queueing behind calls that may never return.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use connvault_plugin_abi::Method;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::stats::PluginStats;
use super::transport::Transport;
use crate::error::{CallError, LoadError};

type Job = Box<dyn FnOnce() + Send>;

/// A call's state, shared by the caller and the worker running it.
const RUNNING: u8 = 0;
/// The worker finished the call before the caller gave up.
const FINISHED: u8 = 1;
/// The caller gave up at the deadline; the worker is still in the call.
const ABANDONED: u8 = 2;

/// What a worker needs to run a call: the transport, and whom to tell.
struct Shared<T> {
    name: String,
    transport: T,
    stats: Arc<PluginStats>,
}

/// A plugin's worker threads and the permits and deadlines calls run under.
pub(crate) struct Scheduler<T> {
    shared: Arc<Shared<T>>,
    workers: usize,
    output_limit: usize,
    permits: Arc<Semaphore>,
    global: Arc<Semaphore>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl<T: Transport> Scheduler<T> {
    /// Starts `workers` threads named after the plugin that run calls through `transport`.
    ///
    /// Calls made with [`Scheduler::call`] accept at most `output_limit`
    /// bytes back and hold one of `global`'s permits while they run.
    pub(crate) fn start(
        name: &str,
        transport: T,
        stats: Arc<PluginStats>,
        workers: usize,
        output_limit: usize,
        global: Arc<Semaphore>,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..workers {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("plugin-{name}-{index}"))
                .spawn(move || {
                    loop {
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Self {
            shared: Arc::new(Shared {
                name: name.to_owned(),
                transport,
                stats,
            }),
            workers,
            output_limit,
            permits: Arc::new(Semaphore::new(workers)),
            global,
            jobs: Mutex::new(sender),
        })
    }

    /// The transport calls go through (for calls made on the caller's own thread).
    pub(crate) fn transport(&self) -> &T {
        &self.shared.transport
    }

    /// Whether calls were abandoned that still hold workers.
    pub(crate) fn degraded(&self) -> bool {
        self.shared.stats.hung.load(Ordering::Relaxed) > 0
    }

    /// Runs the load-time `method` call on a worker like any call, so a
    /// plugin that hangs in it is refused after `wait` instead of stalling
    /// start-up. Takes no permit: nothing else calls the plugin yet.
    pub(crate) fn call_at_load(
        &self,
        method: Method,
        request: Vec<u8>,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<u8>, LoadError> {
        let (sender, receiver) = mpsc::channel();
        let job: Job = {
            let shared = Arc::clone(&self.shared);
            Box::new(move || {
                let _ = sender.send(shared.transport.call(method, &request, limit, wait));
            })
        };
        self.jobs
            .lock()
            .map_err(|_| LoadError::Describe("the worker queue is poisoned".into()))?
            .send(job)
            .map_err(|_| LoadError::Describe("the workers stopped".into()))?;
        receiver
            .recv_timeout(wait)
            .map_err(|_| LoadError::Describe(format!("did not answer within {wait:?}")))?
            .map_err(|error| LoadError::Describe(error.to_string()))
    }

    /// Calls the plugin on one of its worker threads, under its permit and
    /// the global permit, within `deadline`.
    pub(crate) async fn call(
        &self,
        method: Method,
        request: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let end = tokio::time::Instant::now() + deadline;
        let missed = || CallError::DeadlineExceeded {
            plugin: self.shared.name.clone(),
            method: method.name(),
            deadline,
        };
        if self.shared.stats.hung.load(Ordering::Acquire) >= self.workers {
            return Err(self.unavailable("every worker is held by a call that did not return"));
        }
        let plugin_permit: OwnedSemaphorePermit =
            tokio::time::timeout_at(end, Arc::clone(&self.permits).acquire_owned())
                .await
                .map_err(|_| missed())?
                .map_err(|_| self.unavailable("shutting down"))?;
        let global_permit: OwnedSemaphorePermit =
            tokio::time::timeout_at(end, Arc::clone(&self.global).acquire_owned())
                .await
                .map_err(|_| missed())?
                .map_err(|_| self.unavailable("shutting down"))?;

        let state = Arc::new(AtomicU8::new(RUNNING));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let job: Job = {
            let shared = Arc::clone(&self.shared);
            let state = Arc::clone(&state);
            let limit = self.output_limit;
            Box::new(move || {
                let result = shared.transport.call(method, &request, limit, deadline);
                if state
                    .compare_exchange(RUNNING, FINISHED, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    shared.stats.hung.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(plugin = %shared.name, method = method.name(), "an abandoned plugin call returned; its worker is free again");
                }
                drop((plugin_permit, global_permit));
                let _ = sender.send(result);
            })
        };
        self.jobs
            .lock()
            .map_err(|_| self.unavailable("its worker queue is poisoned"))?
            .send(job)
            .map_err(|_| self.unavailable("its workers have stopped"))?;

        match tokio::time::timeout_at(end, receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.unavailable("the worker dropped the call")),
            Err(_) => {
                if state
                    .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.shared.stats.hung.fetch_add(1, Ordering::AcqRel);
                    self.shared.stats.abandoned.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(plugin = %self.shared.name, method = method.name(), ?deadline, "plugin call missed its deadline and was abandoned; plugin marked degraded");
                }
                Err(missed())
            }
        }
    }

    fn unavailable(&self, reason: &str) -> CallError {
        CallError::Unavailable {
            plugin: self.shared.name.clone(),
            reason: reason.to_owned(),
        }
    }
}
