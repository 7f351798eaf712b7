//! How plugins are loaded and called: the host's settings.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Where a plugin's code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Isolation {
    /// Loaded into the host's own process: fastest, but a crash, a hang or a
    /// malicious plugin is the host's crash, hang or compromise.
    #[default]
    InProcess,
    /// Loaded into confined child processes (runners), one per lane, which
    /// are killed and restarted when they crash or overrun a deadline.
    Process,
}

/// How runner processes are started and confined (process isolation).
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The program that serves as the runner, and its arguments (the
    /// server's own executable with its hidden runner subcommand). The
    /// runner reads its socket on fd 3 and the plugin on fd 4.
    pub command: Option<(PathBuf, Vec<OsString>)>,
    /// Address space limit per runner, in bytes (`RLIMIT_AS`); 0: none.
    pub memory_bytes: u64,
    /// Open file descriptors per runner (`RLIMIT_NOFILE`); 0: none.
    pub open_files: u64,
    /// CPU seconds a runner may use over its life (`RLIMIT_CPU`); 0: none.
    /// Reaching it kills the runner, which is then restarted.
    pub cpu_secs: u64,
    /// Paths a runner may read besides the system's libraries,
    /// certificates and name-service files.
    pub read_paths: Vec<PathBuf>,
    /// Paths no runner may ever read (the data directory, the master key,
    /// the config): a runner refuses to start if a readable path holds one.
    pub protected_paths: Vec<PathBuf>,
    /// How long past its deadline a call may run before its runner is
    /// killed (with every call in flight on it) and restarted.
    pub kill_grace: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            command: None,
            memory_bytes: 1 << 30,
            open_files: 256,
            cpu_secs: 0,
            read_paths: Vec::new(),
            protected_paths: Vec::new(),
            kill_grace: Duration::from_secs(1),
        }
    }
}

/// How plugins are loaded and called.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Expected SHA-256 (hex) by file name. A file with a pin must match it.
    pub pins: BTreeMap<String, String>,
    /// Refuse files with no pin (outside development).
    pub require_pins: bool,
    /// Where plugins run unless overridden for their file.
    pub isolation: Isolation,
    /// Where the plugin of one file name runs, over [`HostOptions::isolation`].
    pub isolation_overrides: BTreeMap<String, Isolation>,
    /// How runners are started and confined.
    pub runner: RunnerOptions,
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
    /// Log the message a plugin sends with a caught panic (ABI 1.1). Off
    /// by default: the message may quote data the plugin held, secrets
    /// included; the server turns it on in `--dev`.
    pub log_panic_messages: bool,
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

    /// Where the plugin in the file `file_name` runs.
    pub fn isolation_for(&self, file_name: &str) -> Isolation {
        self.isolation_overrides
            .get(file_name)
            .copied()
            .unwrap_or(self.isolation)
    }
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            pins: BTreeMap::new(),
            require_pins: false,
            isolation: Isolation::InProcess,
            isolation_overrides: BTreeMap::new(),
            runner: RunnerOptions::default(),
            workers_per_plugin: 8,
            pure_workers_per_plugin: 4,
            io_calls_per_tenant: 0,
            io_queue_per_tenant: 32,
            global_permits: 64,
            output_limit: 4 << 20,
            describe_limit: 1 << 20,
            load_timeout: Duration::from_secs(10),
            log_panic_messages: false,
        }
    }
}
