//! Fair admission to a plugin's I/O workers, tenant by tenant.
//!
//! Each I/O call (test, discover) needs a slot: one of the lane's workers.
//! A tenant holds at most `per_tenant` slots at once, so however many calls it
//! makes, and however long they hang, the other workers stay for the other
//! tenants. A call that cannot have a slot now waits in its tenant's queue
//! (at most `queue_limit` long; a call beyond it is refused at once). When a
//! slot frees, it goes to the waiting tenant that holds the fewest slots, the
//! one whose turn came least recently first: a tenant with a long queue
//! cannot keep a tenant with one call waiting behind it, as a first-come
//! queue would.
//!
//! A slot is released when the call's worker finishes, not when the caller
//! stops waiting: a call abandoned at its deadline keeps counting against its
//! tenant until the plugin returns.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::stats::PluginStats;

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The tenant already has `limit` calls waiting.
    QueueFull {
        /// The per-tenant queue limit.
        limit: usize,
    },
    /// The deadline passed in the queue; `own_calls` when the tenant's own
    /// calls held every slot it may have, rather than the lane being full.
    Deadline {
        /// Whether the tenant was at its own limit.
        own_calls: bool,
    },
}

/// The admission state of one plugin's I/O lane.
pub(crate) struct FairQueue {
    state: Mutex<State>,
    workers: usize,
    per_tenant: usize,
    queue_limit: usize,
    stats: Arc<PluginStats>,
}

/// What the lock guards.
struct State {
    /// Slots not held by any call.
    free: usize,
    /// Tenants holding a slot or waiting for one (no others: bounded by the
    /// calls in flight).
    tenants: HashMap<Arc<str>, Tenant>,
    /// Tenants with waiting calls, least recently served first.
    turns: VecDeque<Arc<str>>,
    /// Calls waiting, all tenants together.
    waiting: usize,
    /// The next waiter's id.
    next_id: u64,
}

/// One tenant's slots and queue.
#[derive(Default)]
struct Tenant {
    running: usize,
    queue: VecDeque<Waiter>,
}

/// A waiting call: woken with `()` once it holds a slot.
struct Waiter {
    id: u64,
    wake: oneshot::Sender<()>,
}

/// A held slot, released when dropped.
pub(crate) struct Slot {
    queue: Arc<FairQueue>,
    tenant: Arc<str>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        self.queue.release(&mut state, &self.tenant);
    }
}

/// A place in a tenant's queue. Dropped before its slot came (the caller
/// gave up, or its request was cancelled), it leaves the queue; dropped
/// after, it hands the slot back.
struct Ticket {
    queue: Arc<FairQueue>,
    tenant: Arc<str>,
    id: u64,
    armed: bool,
}

impl Ticket {
    /// Leaves the queue (or frees the slot it was just given); whether the
    /// tenant was at its own limit then.
    fn withdraw(&mut self) -> bool {
        self.armed = false;
        let mut state = self.queue.lock();
        let own_calls = state
            .tenants
            .get(&self.tenant)
            .is_some_and(|tenant| tenant.running >= self.queue.per_tenant);
        let removed = state.tenants.get_mut(&self.tenant).and_then(|tenant| {
            let position = tenant
                .queue
                .iter()
                .position(|waiter| waiter.id == self.id)?;
            tenant.queue.remove(position)
        });
        if removed.is_some() {
            state.waiting -= 1;
            self.queue.forget_if_idle(&mut state, &self.tenant);
            self.queue.publish(&state);
        } else {
            // Not in the queue: the slot was given as the caller stopped waiting.
            self.queue.release(&mut state, &self.tenant);
        }
        own_calls
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.armed {
            self.withdraw();
        }
    }
}

impl FairQueue {
    /// A lane of `workers` slots, `per_tenant` of them at most for one
    /// tenant, with `queue_limit` calls at most waiting per tenant.
    pub(crate) fn new(
        workers: usize,
        per_tenant: usize,
        queue_limit: usize,
        stats: Arc<PluginStats>,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                free: workers,
                tenants: HashMap::new(),
                turns: VecDeque::new(),
                waiting: 0,
                next_id: 0,
            }),
            workers,
            per_tenant: per_tenant.clamp(1, workers.max(1)),
            queue_limit,
            stats,
        }
    }

    /// The most slots one tenant holds at once.
    pub(crate) fn per_tenant(&self) -> usize {
        self.per_tenant
    }

    /// Waits until `end` for a slot for `tenant`.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        tenant: &str,
        end: Instant,
    ) -> Result<Slot, Refused> {
        let (mut ticket, woken) = {
            let mut state = self.lock();
            let key: Arc<str> = match state.tenants.get_key_value(tenant) {
                Some((key, _)) => Arc::clone(key),
                None => Arc::from(tenant),
            };
            let free = state.free;
            let id = state.next_id;
            let entry = state.tenants.entry(Arc::clone(&key)).or_default();
            // A tenant's calls start in the order they came: none overtakes
            // one of its own that waits.
            if entry.queue.is_empty() && entry.running < self.per_tenant && free > 0 {
                entry.running += 1;
                state.free -= 1;
                self.publish(&state);
                return Ok(Slot {
                    queue: Arc::clone(self),
                    tenant: key,
                });
            }
            if entry.queue.len() >= self.queue_limit {
                self.forget_if_idle(&mut state, &key);
                self.stats.io.refused.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::QueueFull {
                    limit: self.queue_limit,
                });
            }
            let (wake, woken) = oneshot::channel();
            entry.queue.push_back(Waiter { id, wake });
            if entry.queue.len() == 1 {
                state.turns.push_back(Arc::clone(&key));
            }
            state.next_id += 1;
            state.waiting += 1;
            self.publish(&state);
            let ticket = Ticket {
                queue: Arc::clone(self),
                tenant: key,
                id,
                armed: true,
            };
            (ticket, woken)
        };
        match tokio::time::timeout_at(end, woken).await {
            Ok(Ok(())) => {
                ticket.armed = false;
                Ok(Slot {
                    queue: Arc::clone(self),
                    tenant: Arc::clone(&ticket.tenant),
                })
            }
            // The sender is only dropped unsent with the queue itself; and
            // at the deadline, the ticket leaves the queue.
            Ok(Err(_)) | Err(_) => Err(Refused::Deadline {
                own_calls: ticket.withdraw(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is changed in short steps that cannot panic halfway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Frees `tenant`'s slot and gives it (and any other free one) to the next waiting call.
    fn release(&self, state: &mut State, tenant: &Arc<str>) {
        if let Some(entry) = state.tenants.get_mut(tenant) {
            entry.running = entry.running.saturating_sub(1);
        }
        state.free += 1;
        self.forget_if_idle(state, tenant);
        self.dispatch(state);
        self.publish(state);
    }

    /// Gives free slots to waiting calls: each to the eligible tenant (under
    /// its limit, with a call waiting) holding the fewest slots, ties to the
    /// one served least recently.
    fn dispatch(&self, state: &mut State) {
        while state.free > 0 {
            let mut best: Option<(usize, usize)> = None;
            for (position, name) in state.turns.iter().enumerate() {
                let running = state.tenants.get(name).map_or(usize::MAX, |t| t.running);
                if running < self.per_tenant && best.is_none_or(|(_, fewest)| running < fewest) {
                    best = Some((position, running));
                }
            }
            let Some(name) = best.and_then(|(position, _)| state.turns.remove(position)) else {
                return;
            };
            let Some(entry) = state.tenants.get_mut(&name) else {
                continue;
            };
            if let Some(waiter) = entry.queue.pop_front() {
                state.waiting -= 1;
                // A waiter leaves the queue under this lock before its
                // receiver goes, so the send finds it listening.
                if waiter.wake.send(()).is_ok() {
                    entry.running += 1;
                    state.free -= 1;
                }
            }
            if entry.queue.is_empty() {
                self.forget_if_idle(state, &name);
            } else {
                state.turns.push_back(name);
            }
        }
    }

    /// Drops a tenant that holds no slot and has no call waiting, so the
    /// map only ever holds tenants with calls in flight.
    fn forget_if_idle(&self, state: &mut State, tenant: &Arc<str>) {
        let idle = state
            .tenants
            .get(tenant)
            .is_some_and(|entry| entry.running == 0 && entry.queue.is_empty());
        if idle {
            state.tenants.remove(tenant);
        }
        if state
            .tenants
            .get(tenant)
            .is_none_or(|entry| entry.queue.is_empty())
        {
            state.turns.retain(|name| name != tenant);
        }
    }

    /// Copies the occupancy to the plugin's counters.
    fn publish(&self, state: &State) {
        let lane = &self.stats.io;
        lane.busy
            .store(self.workers.saturating_sub(state.free), Ordering::Relaxed);
        lane.queued.store(state.waiting, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn queue(workers: usize, per_tenant: usize, queue_limit: usize) -> Arc<FairQueue> {
        Arc::new(FairQueue::new(
            workers,
            per_tenant,
            queue_limit,
            Arc::default(),
        ))
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    #[tokio::test]
    async fn a_tenant_holds_at_most_its_share() {
        let lane = queue(4, 2, 8);
        let a1 = lane.acquire("a", later()).await.unwrap();
        let _a2 = lane.acquire("a", later()).await.unwrap();
        // The third call of a waits although two workers are free...
        let waiting = tokio::spawn({
            let lane = Arc::clone(&lane);
            async move { lane.acquire("a", later()).await.map(drop) }
        });
        tokio::task::yield_now().await;
        // ...and they go to b at once.
        let _b1 = lane.acquire("b", later()).await.unwrap();
        let _b2 = lane.acquire("b", later()).await.unwrap();
        assert_eq!(lane.stats.io.busy.load(Ordering::Relaxed), 4);
        drop(a1);
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_tenant_holding_fewest() {
        let lane = queue(2, 2, 8);
        let a1 = lane.acquire("a", later()).await.unwrap();
        let _a2 = lane.acquire("a", later()).await.unwrap();
        let (order, mut served) = tokio::sync::mpsc::unbounded_channel();
        let mut waiters = Vec::new();
        // a queues three calls before b queues one.
        for tenant in ["a", "a", "a", "b"] {
            let lane = Arc::clone(&lane);
            let order = order.clone();
            waiters.push(tokio::spawn(async move {
                let slot = lane.acquire(tenant, later()).await.unwrap();
                order.send(tenant).unwrap();
                slot
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(lane.stats.io.queued.load(Ordering::Relaxed), 4);
        drop(a1);
        assert_eq!(
            served.recv().await,
            Some("b"),
            "b waited least long but holds nothing"
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_late_call_names_why() {
        let lane = queue(1, 1, 1);
        let _held = lane.acquire("a", later()).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(20);
        let first = lane.acquire("a", soon);
        let second = lane.acquire("a", later());
        let (first, second) = tokio::join!(first, second);
        assert_eq!(first.err(), Some(Refused::Deadline { own_calls: true }));
        assert_eq!(second.err(), Some(Refused::QueueFull { limit: 1 }));
        assert_eq!(
            lane.acquire("b", soon).await.err(),
            Some(Refused::Deadline { own_calls: false }),
            "b waited behind a's call, not its own"
        );
        assert_eq!(lane.stats.io.queued.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_no_trace() {
        let lane = queue(1, 1, 4);
        let held = lane.acquire("a", later()).await.unwrap();
        let waiting = tokio::spawn({
            let lane = Arc::clone(&lane);
            async move { lane.acquire("b", later()).await.map(drop) }
        });
        tokio::task::yield_now().await;
        waiting.abort();
        let _ = waiting.await;
        drop(held);
        let state = lane.lock();
        assert!(state.tenants.is_empty() && state.turns.is_empty());
        assert_eq!((state.free, state.waiting), (1, 0));
    }
}
