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
    /// Worker threads (and so concurrent calls) per thread-safe plugin.
    pub workers_per_plugin: usize,
    /// Concurrent calls across all plugins.
    pub global_permits: usize,
    /// Largest response accepted from `test`, `discover`, `render`, `validate`.
    pub output_limit: usize,
    /// Largest `describe` response accepted.
    pub describe_limit: usize,
    /// How long `init` and `describe` may take at load.
    pub load_timeout: Duration,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            pins: BTreeMap::new(),
            require_pins: false,
            workers_per_plugin: 8,
            global_permits: 64,
            output_limit: 4 << 20,
            describe_limit: 1 << 20,
            load_timeout: Duration::from_secs(10),
        }
    }
}
