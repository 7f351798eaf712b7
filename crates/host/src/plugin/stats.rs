//! The counters a plugin keeps about its calls.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use crate::error::CallError;

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
    /// Calls that ended without the plugin's answer: every [`CallError`]
    /// but an application error (which is the plugin's answer).
    pub failures: AtomicU64,
    /// The last of those failures.
    pub(super) last_error: Mutex<Option<LastError>>,
    /// Whether a panic's message (which may quote data the plugin held) is
    /// logged: [`HostOptions::log_panic_messages`](crate::HostOptions::log_panic_messages).
    pub(crate) log_panic_messages: bool,
    /// Times a runner of the plugin was started again after it ended
    /// (process isolation only).
    pub runner_restarts: AtomicU64,
    /// The lane of the calls that do no I/O (describe, validate, render).
    pub pure: LaneStats,
    /// The lane of the calls that reach the data source (test, discover).
    pub io: LaneStats,
}

/// The last call of a plugin that failed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// What the caller was told (names the plugin and the method, never a secret).
    pub message: String,
    /// When.
    pub at: SystemTime,
}

impl PluginStats {
    /// Counts a call's outcome: a failure unless the plugin answered (an
    /// application error is an answer).
    pub(crate) fn record<T>(&self, result: &Result<T, CallError>) {
        match result {
            Ok(_) | Err(CallError::Application { .. }) => {}
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                *self
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(LastError {
                    message: error.to_string(),
                    at: SystemTime::now(),
                });
            }
        }
    }

    /// The last call that failed, if any did.
    pub fn last_error(&self) -> Option<LastError> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

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
