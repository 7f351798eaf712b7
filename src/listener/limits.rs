//! The bounds the listener keeps: open files, handshakes in progress, the
//! pause after a failed accept, and a log that reports refusals without
//! writing a line for each.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// File descriptors kept for everything but client connections: the store,
/// plugins, the audit log, the certificate files being reloaded.
pub(crate) const RESERVED_FILES: u64 = 256;

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard one, so the
/// connection limit, not the default soft limit (often 1,024), decides how
/// many clients are served. Returns the soft limit now in force, `None` when
/// it is unlimited.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    if limit.maximum.is_some_and(|hard| hard <= soft) {
        tracing::info!(limit = soft, "open-file limit (soft = hard)");
        return Some(soft);
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(old = soft, new = ?limit.maximum, "raised the open-file limit to the hard limit");
            limit.maximum
        }
        Err(error) => {
            tracing::warn!(limit = soft, %error, "could not raise the open-file limit");
            Some(soft)
        }
    }
}

/// The connection limit that fits under `open_files` (the soft limit) with
/// [`RESERVED_FILES`] to spare: accepting past it would fail with EMFILE.
pub(crate) fn fit_connections(configured: usize, open_files: Option<u64>) -> usize {
    let Some(open_files) = open_files else {
        return configured;
    };
    let room = usize::try_from(open_files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    let fitted = configured.min(room).max(1);
    if fitted < configured {
        tracing::warn!(
            configured,
            open_files,
            used = fitted,
            "listener.max_connections lowered to fit the open-file limit"
        );
    }
    fitted
}

/// Writes at most one line per period for one kind of event and counts the
/// events it kept quiet, so a flood of refusals costs a line a second, not a
/// line each (a flood of failed accepts once wrote 1.2 GB of log).
pub(crate) struct Throttle {
    every: Duration,
    state: Mutex<ThrottleState>,
}

struct ThrottleState {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// At most one line per second.
    pub(crate) fn per_second() -> Self {
        Self {
            every: Duration::from_secs(1),
            state: Mutex::new(ThrottleState {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// Records an event; `Some(n)` when a line may be written now, `n` being
    /// the events left unlogged since the last line.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match state.last {
            Some(last) if now.duration_since(last) < self.every => {
                state.suppressed += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

/// How long to pause after a failed accept: 10 ms, doubling to 1 s, so an
/// exhausted resource (EMFILE, ENFILE, ENOBUFS) is retried without spinning.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The pause before the next attempt; each failure doubles the next.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        pause
    }

    /// After a successful accept.
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// The handshakes in progress, oldest first, bounded: when all slots are
/// taken the oldest handshake is cancelled for the newcomer. Sockets that
/// connect and never speak are then the ones that go, and a client that
/// completes its handshake in milliseconds still gets in, however many
/// silent sockets are held open.
pub(crate) struct Handshakes {
    max: usize,
    state: Mutex<Pending>,
}

struct Pending {
    next_id: u64,
    /// Dropping a sender cancels that handshake.
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

/// One handshake's place; dropping it frees the place.
pub(crate) struct Slot {
    id: u64,
    handshakes: Arc<Handshakes>,
    cancelled: oneshot::Receiver<()>,
}

impl Handshakes {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            state: Mutex::new(Pending {
                next_id: 0,
                waiting: BTreeMap::new(),
            }),
        })
    }

    /// A slot for a new handshake, and whether an older one was cancelled for it.
    pub(crate) fn admit(self: &Arc<Self>) -> (Slot, bool) {
        let (cancel, cancelled) = oneshot::channel();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let evicted = if state.waiting.len() >= self.max {
            // Dropping the sender wakes the oldest handshake, which then ends.
            state.waiting.pop_first().is_some()
        } else {
            false
        };
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.insert(id, cancel);
        let slot = Slot {
            id,
            handshakes: Arc::clone(self),
            cancelled,
        };
        (slot, evicted)
    }

    /// Handshakes in progress.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waiting
            .len()
    }
}

impl Slot {
    /// Resolves when a newer handshake took this slot.
    pub(crate) async fn cancelled(&mut self) {
        let _ = (&mut self.cancelled).await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.handshakes
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waiting
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut backoff = Backoff::new();
        let pauses: Vec<u64> = (0..9)
            .map(|_| backoff.next_pause().as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), Duration::from_millis(10));
    }

    #[test]
    fn the_throttle_admits_one_event_per_period_and_counts_the_rest() {
        let throttle = Throttle::per_second();
        assert_eq!(throttle.admit(), Some(0));
        for _ in 0..1000 {
            assert_eq!(throttle.admit(), None);
        }
        // Pretend the period is over.
        throttle.state.lock().unwrap().last = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(throttle.admit(), Some(1000));
        assert_eq!(throttle.admit(), None);
    }

    #[tokio::test]
    async fn a_full_budget_cancels_the_oldest_handshake() {
        let handshakes = Handshakes::new(2);
        let (mut first, evicted) = handshakes.admit();
        assert!(!evicted);
        let (second, evicted) = handshakes.admit();
        assert!(!evicted);
        let (third, evicted) = handshakes.admit();
        assert!(evicted, "the third handshake takes the oldest's slot");
        assert_eq!(handshakes.len(), 2);
        // The first one is told; it ends (its drop frees nothing more).
        first.cancelled().await;
        drop(first);
        assert_eq!(handshakes.len(), 2);
        drop(second);
        drop(third);
        assert_eq!(handshakes.len(), 0);
    }

    #[test]
    fn the_connection_limit_fits_under_the_open_file_limit() {
        assert_eq!(fit_connections(10_000, None), 10_000);
        assert_eq!(fit_connections(10_000, Some(1_000_000)), 10_000);
        assert_eq!(fit_connections(10_000, Some(1_024)), 768);
        assert_eq!(fit_connections(10_000, Some(100)), 1);
    }
}
