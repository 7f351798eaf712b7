//! The counters a plugin keeps about its calls.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Counters that say how a plugin is doing.
///
/// Shared by the raw call (calls, panics) and the scheduler (abandoned, and
/// each lane's occupancy), and read through `Plugin::stats`.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Calls made.
    pub calls: AtomicU64,
    /// Calls abandoned at their deadline.
    pub abandoned: AtomicU64,
    /// Calls that panicked inside the plugin.
    pub panics: AtomicU64,
    /// Times a runner of the plugin was started again after it ended
    /// (process isolation only).
    pub runner_restarts: AtomicU64,
    /// The lane of the calls that do no I/O (describe, validate, render).
    pub pure: LaneStats,
    /// The lane of the calls that reach the data source (test, discover).
    pub io: LaneStats,
}

impl PluginStats {
    /// Abandoned calls that have not returned yet, in both lanes (each holds a worker).
    pub fn hung(&self) -> usize {
        self.pure.hung.load(Ordering::Relaxed) + self.io.hung.load(Ordering::Relaxed)
    }
}

/// How full one lane of a plugin's workers is.
#[derive(Debug, Default)]
pub struct LaneStats {
    /// Worker threads of the lane (set once at load).
    pub workers: AtomicUsize,
    /// Calls holding a worker, abandoned ones included.
    pub busy: AtomicUsize,
    /// Calls waiting for a worker.
    pub queued: AtomicUsize,
    /// Abandoned calls that have not returned yet (each holds a worker).
    pub hung: AtomicUsize,
    /// Calls refused because their tenant's queue was full (I/O lane only).
    pub refused: AtomicU64,
}
