//! Process isolation: a plugin served by runner processes, one per lane.
//!
//! The pure lane (describe, validate, render) and the I/O lane (test,
//! discover) each get a runner of their own, so a hung test that gets its
//! runner killed never takes validation down with it. Within a lane, calls
//! in flight share the runner: when it dies or is killed, each of them
//! fails as unavailable, and the supervisor starts a new one.
//!
//! A call that runs past its deadline and its grace gets its runner killed
//! (SIGKILL): no worker thread of the host ever stays in a call.

mod connection;
mod spawn;
mod supervisor;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connvault_plugin_abi::Method;

use super::outcome::outcome;
use super::scheduler::Lane;
use super::stats::PluginStats;
use crate::error::{CallError, LoadError};
use crate::options::{HostOptions, RunnerOptions};
use crate::runner::SYSTEM_READ_PATHS;
use crate::runner::wire::{HEADER_ROOM, Setup};
use connection::Lost;
use spawn::Spec;
pub(crate) use supervisor::Health;
use supervisor::{Identity, Supervised};

/// What the first runner said it loaded.
pub(crate) struct Loaded {
    /// The two lanes' runners.
    pub(crate) runners: Runners,
    /// The plugin's name.
    pub(crate) name: String,
    /// Its version.
    pub(crate) version: String,
    /// Whether it is thread-safe.
    pub(crate) thread_safe: bool,
}

/// A plugin's runners: the transport of a plugin under process isolation.
pub(crate) struct Runners {
    name: String,
    pure: Arc<Supervised>,
    io: Arc<Supervised>,
    stats: Arc<PluginStats>,
    grace: Duration,
}

/// What starting the runners needs from the plugin's loading.
pub(crate) struct Plugin<'a> {
    /// The file name (the plugin's name is known once a runner loaded it).
    pub(crate) file_name: &'a str,
    /// The verified bytes, sealed.
    pub(crate) memfd: memfd::Memfd,
    /// Their SHA-256.
    pub(crate) sha256: &'a str,
}

impl Runners {
    /// Starts the plugin's runners: the pure lane's first (its report says
    /// how many workers each lane gets), then the I/O lane's.
    pub(crate) fn start(
        plugin: Plugin<'_>,
        options: &HostOptions,
        stats: Arc<PluginStats>,
    ) -> Result<Loaded, LoadError> {
        let runner = &options.runner;
        let Some((program, args)) = runner.command.clone() else {
            return Err(LoadError::Runner(
                "process isolation needs a runner program, and none is configured".into(),
            ));
        };
        check_protected(runner)?;
        let max_frame = options.output_limit.max(options.describe_limit) + HEADER_ROOM;
        let memfd = Arc::new(plugin.memfd);
        let spec = |lane: Lane, workers: usize| Spec {
            program: program.clone(),
            args: args.clone(),
            memfd: Arc::clone(&memfd),
            setup: setup(plugin.file_name, plugin.sha256, lane, workers, options),
            load_timeout: options.load_timeout,
        };
        let failed = |reason: String| LoadError::Runner(reason);
        let (pure, ready) = Supervised::start(
            plugin.file_name,
            "pure",
            spec(Lane::Pure, options.pure_workers_per_plugin),
            max_frame,
            Arc::clone(&stats),
            None,
        )
        .map_err(failed)?;
        let identity = Identity {
            name: ready.name.clone(),
            version: ready.version.clone(),
            thread_safe: ready.thread_safe,
        };
        let (io, _) = Supervised::start(
            &ready.name,
            "io",
            spec(Lane::Io, options.workers_per_plugin),
            max_frame,
            Arc::clone(&stats),
            Some(identity),
        )
        .map_err(|reason| {
            pure.stop();
            failed(reason)
        })?;
        Ok(Loaded {
            runners: Runners {
                name: ready.name.clone(),
                pure,
                io,
                stats,
                grace: runner.kill_grace,
            },
            name: ready.name,
            version: ready.version,
            thread_safe: ready.thread_safe,
        })
    }

    /// Calls the plugin in the runner of the method's lane (an unknown
    /// method id goes to the pure lane).
    pub(crate) fn call(
        &self,
        method_id: u32,
        method_name: &'static str,
        request: &[u8],
        limit: usize,
        end: Instant,
    ) -> Result<Vec<u8>, CallError> {
        self.stats
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let runner = match Method::from_raw(method_id).map_or(Lane::Pure, Lane::of) {
            Lane::Pure => &self.pure,
            Lane::Io => &self.io,
        };
        let unavailable = |reason: String| CallError::Unavailable {
            plugin: self.name.clone(),
            reason,
        };
        let connection = runner.connection(end).map_err(unavailable)?;
        match connection.call(
            method_id,
            method_name,
            request,
            limit,
            end,
            end + self.grace,
        ) {
            Ok(raw) => outcome(&self.name, method_name, raw, limit, &self.stats),
            Err(Lost::Died(reason)) => Err(unavailable(format!(
                "its runner ended during the {method_name} call: {reason}"
            ))),
        }
    }

    /// How the worse of the two lanes' runners is doing.
    pub(crate) fn health(&self) -> Health {
        match (self.pure.health(), self.io.health()) {
            (Health::Failed, _) | (_, Health::Failed) => Health::Failed,
            (Health::Restarting, _) | (_, Health::Restarting) => Health::Restarting,
            _ => Health::Up,
        }
    }

    /// Each lane has its own runner, so its own plugin instance.
    pub(crate) fn lanes_share_instance(&self) -> bool {
        false
    }
}

impl Drop for Runners {
    fn drop(&mut self) {
        // Plugins in use are never dropped; one refused after its runners
        // started (its describe, its schema, a duplicate name) is, and its
        // runners go with it.
        self.pure.stop();
        self.io.stop();
    }
}

/// The setup a lane's runner gets.
fn setup(
    file_name: &str,
    sha256: &str,
    lane: Lane,
    workers: usize,
    options: &HostOptions,
) -> Setup {
    let runner = &options.runner;
    Setup {
        file_name: file_name.to_owned(),
        sha256: sha256.to_owned(),
        workers: u32::try_from(workers.max(1)).unwrap_or(u32::MAX),
        load_timeout_ms: u64::try_from(options.load_timeout.as_millis()).unwrap_or(u64::MAX),
        memory_bytes: runner.memory_bytes,
        open_files: runner.open_files,
        cpu_secs: runner.cpu_secs,
        read_paths: runner
            .read_paths
            .iter()
            .map(|path| path.to_string_lossy().into_owned())
            .collect(),
        lane: match lane {
            Lane::Pure => "pure",
            Lane::Io => "io",
        }
        .to_owned(),
    }
}

/// Refuses to start runners that could read a protected path (the data
/// directory, the master key, the config) because it lies under a path
/// runners may read.
fn check_protected(runner: &RunnerOptions) -> Result<(), LoadError> {
    let readable: Vec<PathBuf> = SYSTEM_READ_PATHS
        .iter()
        .map(PathBuf::from)
        .chain(runner.read_paths.iter().cloned())
        .map(|path| canonical(&path))
        .collect();
    for protected in &runner.protected_paths {
        let protected_path = canonical(protected);
        if let Some(open) = readable
            .iter()
            .find(|readable| protected_path.starts_with(readable))
        {
            return Err(LoadError::Runner(format!(
                "{} lies under {}, which plugin runners may read; move it, or run the plugin in-process",
                protected.display(),
                open.display()
            )));
        }
    }
    Ok(())
}

/// `path` with its symbolic links resolved, when it exists.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// The runner command of a host whose executable is also the runner:
/// `/proc/self/exe` (the running binary, even if the file was replaced
/// since) with `args`.
pub fn self_runner_command(args: &[&str]) -> (PathBuf, Vec<OsString>) {
    (
        PathBuf::from("/proc/self/exe"),
        args.iter().map(OsString::from).collect(),
    )
}
