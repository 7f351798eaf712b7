//! How plugins are loaded and called: the host's settings.

use std::collections::BTreeMap;
use std::time::Duration;

/// How plugins are loaded and called.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Expected SHA-256 (hex) by file name. A file with a pin must match it.
    pub pins: BTreeMap<String, String>,
    /// Refuse files with no pin (outside development).
    pub require_pins: bool,
    /// I/O worker threads (and so concurrent `test` and `discover` calls)
    /// per thread-safe plugin.
    pub workers_per_plugin: usize,
    /// Worker threads for the calls that do no I/O (`describe`, `validate`,
    /// `render`) per thread-safe plugin: I/O calls never occupy them.
    pub pure_workers_per_plugin: usize,
    /// I/O calls one tenant may have running on one plugin at once; 0 means
    /// half the plugin's I/O workers. Always at least 1 and at most all of them.
    pub io_calls_per_tenant: usize,
    /// I/O calls one tenant may have waiting for one plugin's workers;
    /// more are refused at once (`CallError::QueueFull`).
    pub io_queue_per_tenant: usize,
    /// Concurrent I/O calls across all plugins.
    pub global_permits: usize,
    /// Largest response accepted from `test`, `discover`, `render`, `validate`.
    pub output_limit: usize,
    /// Largest `describe` response accepted.
    pub describe_limit: usize,
    /// How long `init` and `describe` may take at load.
    pub load_timeout: Duration,
}

impl HostOptions {
    /// The I/O calls one tenant may run at once on a plugin with `io_workers` I/O workers.
    pub fn io_calls_per_tenant_for(&self, io_workers: usize) -> usize {
        let io_workers = io_workers.max(1);
        match self.io_calls_per_tenant {
            0 => io_workers.div_ceil(2),
            limit => limit.min(io_workers),
        }
    }
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            pins: BTreeMap::new(),
            require_pins: false,
            workers_per_plugin: 8,
            pure_workers_per_plugin: 4,
            io_calls_per_tenant: 0,
            io_queue_per_tenant: 32,
            global_permits: 64,
            output_limit: 4 << 20,
            describe_limit: 1 << 20,
            load_timeout: Duration::from_secs(10),
        }
    }
}
