//! The counters a plugin keeps about its calls.

use std::sync::atomic::{AtomicU64, AtomicUsize};

/// Counters that say how a plugin is doing.
///
/// Shared by the raw call (calls, panics) and the scheduler (abandoned, hung),
/// and read through `Plugin::stats`.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Calls made.
    pub calls: AtomicU64,
    /// Calls abandoned at their deadline.
    pub abandoned: AtomicU64,
    /// Abandoned calls that have not returned yet (each holds a worker).
    pub hung: AtomicUsize,
    /// Calls that panicked inside the plugin.
    pub panics: AtomicU64,
}
