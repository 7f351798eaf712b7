//! Scheduling calls onto a plugin's worker threads, in two lanes, under
//! deadlines.
//!
//! Calls that do no I/O (describe, validate, render) run on the *pure* lane;
//! calls that reach a data source (test, discover) on the *I/O* lane. Each
//! lane has threads of its own, so a slow or hung data source can hold every
//! I/O worker and `validate` is still answered at once. I/O calls are
//! admitted tenant by tenant ([`FairQueue`]) and hold a global permit shared
//! by every plugin's I/O lane.
//!
//! A call that misses its deadline is abandoned: its worker stays with it
//! until it returns, and the plugin reports itself degraded meanwhile. Once
//! every worker of a lane is held that way, the lane's calls fail fast as
//! unavailable instead of queueing behind calls that may never return.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use connvault_plugin_abi::Method;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::fair::{FairQueue, Refused, Slot};
use super::stats::{LaneStats, PluginStats};
use super::transport::Transport;
use crate::error::{CallError, LoadError};

type Job = Box<dyn FnOnce() + Send>;

/// A call's state, shared by the caller and the worker running it.
const RUNNING: u8 = 0;
/// The worker finished the call before the caller gave up.
const FINISHED: u8 = 1;
/// The caller gave up at the deadline; the worker is still in the call (or
/// has not started it, and will not).
const ABANDONED: u8 = 2;

/// Which workers a method runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// No I/O: describe, validate, render.
    Pure,
    /// Reaches a data source: test, discover.
    Io,
}

impl Lane {
    /// The lane of `method`. Every method is named, so a new one must be placed.
    pub(crate) fn of(method: Method) -> Lane {
        match method {
            Method::Describe | Method::Validate | Method::Render => Lane::Pure,
            Method::Test | Method::Discover => Lane::Io,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Lane::Pure => "pure",
            Lane::Io => "io",
        }
    }
}

/// How many workers and slots a plugin's lanes get.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaneSizes {
    /// Workers of the pure lane.
    pub(crate) pure_workers: usize,
    /// Workers of the I/O lane.
    pub(crate) io_workers: usize,
    /// I/O calls one tenant may have running at once.
    pub(crate) io_per_tenant: usize,
    /// I/O calls one tenant may have waiting.
    pub(crate) io_queue: usize,
    /// Whether calls must not overlap (a plugin without `FLAG_THREAD_SAFE`).
    pub(crate) serial: bool,
}

/// What a worker needs to run a call: the transport, and whom to tell.
struct Shared<T> {
    name: String,
    transport: T,
    stats: Arc<PluginStats>,
    /// Held around every call of a plugin that is not thread-safe: its two
    /// lanes have a thread each, but only one may be inside the plugin.
    serial: Option<Mutex<()>>,
}

/// A lane's threads, fed through one channel.
struct Pool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Pool {
    fn start(name: &str, lane: Lane, workers: usize) -> std::io::Result<Pool> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..workers {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("plugin-{name}-{}-{index}", lane.name()))
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
        Ok(Pool {
            jobs: Mutex::new(sender),
        })
    }

    fn send(&self, job: Job) -> Result<(), &'static str> {
        self.jobs
            .lock()
            .map_err(|_| "its worker queue is poisoned")?
            .send(job)
            .map_err(|_| "its workers have stopped")
    }
}

/// A plugin's worker threads and the permits and deadlines calls run under.
pub(crate) struct Scheduler<T> {
    shared: Arc<Shared<T>>,
    output_limit: usize,
    pure_pool: Pool,
    pure_permits: Arc<Semaphore>,
    io_pool: Pool,
    io_slots: Arc<FairQueue>,
    global: Arc<Semaphore>,
}

impl<T: Transport> Scheduler<T> {
    /// Starts the lanes' threads, named after the plugin, that run calls through `transport`.
    ///
    /// Calls made with [`Scheduler::call`] accept at most `output_limit`
    /// bytes back; I/O calls hold one of `global`'s permits while they run.
    pub(crate) fn start(
        name: &str,
        transport: T,
        stats: Arc<PluginStats>,
        sizes: LaneSizes,
        output_limit: usize,
        global: Arc<Semaphore>,
    ) -> std::io::Result<Self> {
        let pure_workers = sizes.pure_workers.max(1);
        let io_workers = sizes.io_workers.max(1);
        stats.pure.workers.store(pure_workers, Ordering::Relaxed);
        stats.io.workers.store(io_workers, Ordering::Relaxed);
        Ok(Self {
            pure_pool: Pool::start(name, Lane::Pure, pure_workers)?,
            pure_permits: Arc::new(Semaphore::new(pure_workers)),
            io_pool: Pool::start(name, Lane::Io, io_workers)?,
            io_slots: Arc::new(FairQueue::new(
                io_workers,
                sizes.io_per_tenant,
                sizes.io_queue,
                Arc::clone(&stats),
            )),
            shared: Arc::new(Shared {
                name: name.to_owned(),
                transport,
                stats,
                serial: sizes.serial.then(|| Mutex::new(())),
            }),
            output_limit,
            global,
        })
    }

    /// The transport calls go through (for calls made on the caller's own thread).
    pub(crate) fn transport(&self) -> &T {
        &self.shared.transport
    }

    /// The most I/O calls one tenant has running at once.
    pub(crate) fn io_per_tenant(&self) -> usize {
        self.io_slots.per_tenant()
    }

    /// Whether calls were abandoned that still hold workers.
    pub(crate) fn degraded(&self) -> bool {
        self.shared.stats.hung() > 0
    }

    /// Runs the load-time `method` call on a pure worker like any call, so a
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
            let end = std::time::Instant::now() + wait;
            Box::new(move || {
                let _ = sender.send(shared.transport.call(
                    method as u32,
                    method.name(),
                    &request,
                    limit,
                    end,
                ));
            })
        };
        self.pure_pool
            .send(job)
            .map_err(|reason| LoadError::Describe(reason.into()))?;
        receiver
            .recv_timeout(wait)
            .map_err(|_| LoadError::Describe(format!("did not answer within {wait:?}")))?
            .map_err(|error| LoadError::Describe(error.to_string()))
    }

    /// Calls the plugin for `tenant` on a worker of the method's lane, within
    /// `deadline`. Time spent waiting for a worker counts against it.
    async fn admit_and_run(
        &self,
        tenant: &str,
        method: Method,
        request: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let end = tokio::time::Instant::now() + deadline;
        let lane = Lane::of(method);
        let stats = self.lane_stats(lane);
        if stats.hung.load(Ordering::Acquire) >= stats.workers.load(Ordering::Relaxed) {
            return Err(self.unavailable(match lane {
                Lane::Pure => "every worker is held by a call that did not return",
                Lane::Io => "every I/O worker is held by a call that did not return",
            }));
        }
        let missed = || self.missed(method, deadline);
        let held: Held = match lane {
            Lane::Pure => {
                let waiting = Waiting::new(stats);
                let permit =
                    tokio::time::timeout_at(end, Arc::clone(&self.pure_permits).acquire_owned())
                        .await;
                drop(waiting);
                let permit = permit
                    .map_err(|_| missed())?
                    .map_err(|_| self.unavailable("shutting down"))?;
                Held::Pure { _permit: permit }
            }
            Lane::Io => {
                let slot = self
                    .io_slots
                    .acquire(tenant, end)
                    .await
                    .map_err(|refused| self.refused(method, deadline, refused))?;
                let global = tokio::time::timeout_at(end, Arc::clone(&self.global).acquire_owned())
                    .await
                    .map_err(|_| missed())?
                    .map_err(|_| self.unavailable("shutting down"))?;
                Held::Io {
                    _slot: slot,
                    _global: global,
                }
            }
        };
        self.run(lane, method, request, deadline, end, held).await
    }

    /// Calls the plugin like [`Scheduler::admit_and_run`], counting a failure.
    pub(crate) async fn call(
        &self,
        tenant: &str,
        method: Method,
        request: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let result = self.admit_and_run(tenant, method, request, deadline).await;
        self.shared.stats.record(&result);
        result
    }

    /// Runs the call on `lane`'s workers, holding `held` until the plugin returns.
    async fn run(
        &self,
        lane: Lane,
        method: Method,
        request: Vec<u8>,
        deadline: Duration,
        end: tokio::time::Instant,
        held: Held,
    ) -> Result<Vec<u8>, CallError> {
        let state = Arc::new(AtomicU8::new(RUNNING));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let job: Job = {
            let shared = Arc::clone(&self.shared);
            let state = Arc::clone(&state);
            let limit = self.output_limit;
            Box::new(move || {
                let stats = shared.lane_stats(lane);
                if lane == Lane::Pure {
                    stats.busy.fetch_add(1, Ordering::Relaxed);
                }
                let turn = shared
                    .serial
                    .as_ref()
                    .map(|serial| serial.lock().unwrap_or_else(PoisonError::into_inner));
                // A call its caller gave up on before it started is not made.
                let result = (state.load(Ordering::Acquire) != ABANDONED).then(|| {
                    shared.transport.call(
                        method as u32,
                        method.name(),
                        &request,
                        limit,
                        end.into_std(),
                    )
                });
                drop(turn);
                if state
                    .compare_exchange(RUNNING, FINISHED, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    stats.hung.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(plugin = %shared.name, method = method.name(), lane = lane.name(), "an abandoned plugin call ended; its worker is free again");
                }
                if lane == Lane::Pure {
                    stats.busy.fetch_sub(1, Ordering::Relaxed);
                }
                drop(held);
                if let Some(result) = result {
                    let _ = sender.send(result);
                }
            })
        };
        let pool = match lane {
            Lane::Pure => &self.pure_pool,
            Lane::Io => &self.io_pool,
        };
        pool.send(job).map_err(|reason| self.unavailable(reason))?;

        // Dropped unfinished, with the deadline passed or the caller gone
        // (its request cancelled), the call is abandoned.
        let abandon = Abandon {
            state,
            shared: &self.shared,
            method,
            lane,
        };
        match tokio::time::timeout_at(end, receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.unavailable("the worker dropped the call")),
            Err(_) => {
                if abandon.now() {
                    tracing::error!(plugin = %self.shared.name, method = method.name(), lane = lane.name(), ?deadline, "plugin call missed its deadline and was abandoned; plugin marked degraded");
                }
                Err(self.missed(method, deadline))
            }
        }
    }

    fn lane_stats(&self, lane: Lane) -> &LaneStats {
        self.shared.lane_stats(lane)
    }

    fn missed(&self, method: Method, deadline: Duration) -> CallError {
        CallError::DeadlineExceeded {
            plugin: self.shared.name.clone(),
            method: method.name(),
            deadline,
        }
    }

    fn refused(&self, method: Method, deadline: Duration, refused: Refused) -> CallError {
        let plugin = self.shared.name.clone();
        match refused {
            Refused::QueueFull { limit } => CallError::QueueFull {
                plugin,
                method: method.name(),
                limit,
            },
            Refused::Deadline { own_calls } => CallError::Queued {
                plugin,
                method: method.name(),
                deadline,
                reason: if own_calls {
                    format!(
                        "queued behind the tenant's own calls (at most {} run at once)",
                        self.io_per_tenant()
                    )
                } else {
                    "every I/O worker was busy".to_owned()
                },
            },
        }
    }

    fn unavailable(&self, reason: &str) -> CallError {
        CallError::Unavailable {
            plugin: self.shared.name.clone(),
            reason: reason.to_owned(),
        }
    }
}

impl<T> Shared<T> {
    fn lane_stats(&self, lane: Lane) -> &LaneStats {
        match lane {
            Lane::Pure => &self.stats.pure,
            Lane::Io => &self.stats.io,
        }
    }
}

/// Counts a call as waiting for a pure worker while it lives.
struct Waiting<'a>(&'a LaneStats);

impl<'a> Waiting<'a> {
    fn new(stats: &'a LaneStats) -> Self {
        stats.queued.fetch_add(1, Ordering::Relaxed);
        Waiting(stats)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A caller's hold on a call it sent to a worker.
struct Abandon<'a, T> {
    state: Arc<AtomicU8>,
    shared: &'a Shared<T>,
    method: Method,
    lane: Lane,
}

impl<T> Abandon<'_, T> {
    /// Gives the call up unless it has finished; whether it was still running.
    fn now(&self) -> bool {
        let abandoned = self
            .state
            .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if abandoned {
            self.shared.stats.abandoned.fetch_add(1, Ordering::Relaxed);
            self.shared
                .lane_stats(self.lane)
                .hung
                .fetch_add(1, Ordering::AcqRel);
        }
        abandoned
    }
}

impl<T> Drop for Abandon<'_, T> {
    fn drop(&mut self) {
        // A no-op once the call finished or was abandoned at its deadline.
        if self.now() {
            tracing::warn!(plugin = %self.shared.name, method = self.method.name(), lane = self.lane.name(), "the caller went away during its plugin call; the call is abandoned");
        }
    }
}

/// What a call holds while it runs, given back when the plugin returns.
enum Held {
    /// A pure worker's permit.
    Pure { _permit: OwnedSemaphorePermit },
    /// An I/O slot of the call's tenant, and a global permit.
    Io {
        _slot: Slot,
        _global: OwnedSemaphorePermit,
    },
}
