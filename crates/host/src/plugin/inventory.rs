//! What a plugin is and how it is doing, in one value: for the server's
//! `ListPlugins` answer and for metrics.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::Plugin;
use super::process::Health;
use super::stats::LastError;
use crate::options::Isolation;

/// How a plugin is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PluginState {
    /// Serving, with no call stuck in it.
    Healthy,
    /// Serving, but calls that missed their deadline still hold workers.
    Degraded,
    /// A runner ended and is being started again (calls of its lane fail
    /// as unavailable meanwhile).
    Restarting,
    /// A runner ended and the last attempt to start it again failed; the
    /// supervisor keeps trying with a growing backoff.
    Failed,
}

impl PluginState {
    /// Every state, for metrics that report each one.
    pub const ALL: [PluginState; 4] = [
        PluginState::Healthy,
        PluginState::Degraded,
        PluginState::Restarting,
        PluginState::Failed,
    ];

    /// The state's name in lowercase (`healthy`, `degraded`, `restarting`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Healthy => "healthy",
            PluginState::Degraded => "degraded",
            PluginState::Restarting => "restarting",
            PluginState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A loaded plugin as an operator sees it: a snapshot, taken by [`Plugin::info`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PluginInfo {
    /// The plugin's name from its descriptor.
    pub name: String,
    /// Its version from its descriptor.
    pub version: String,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// Lowercase hex SHA-256 of the loaded bytes.
    pub sha256: String,
    /// Where it runs.
    pub isolation: Isolation,
    /// How it is doing.
    pub state: PluginState,
    /// The ids of the data sources it serves.
    pub data_sources: Vec<String>,
    /// Calls made.
    pub calls: u64,
    /// Calls running now (a plugin unloaded by a reload serves these to
    /// their end).
    pub in_flight: usize,
    /// Calls that ended without the plugin's answer (crash, deadline,
    /// panic, unavailable, malformed answer...).
    pub failures: u64,
    /// Calls that panicked inside the plugin.
    pub panics: u64,
    /// Times one of its runners was started again.
    pub runner_restarts: u64,
    /// The last failure, if any.
    pub last_error: Option<LastError>,
}

impl Plugin {
    /// How the plugin is doing: a runner down outweighs calls stuck in it.
    pub fn state(&self) -> PluginState {
        match self.scheduler.transport().health() {
            Health::Failed => PluginState::Failed,
            Health::Restarting => PluginState::Restarting,
            Health::Up if self.degraded() => PluginState::Degraded,
            Health::Up => PluginState::Healthy,
        }
    }

    /// A snapshot of what the plugin is and how it is doing.
    pub fn info(&self) -> PluginInfo {
        let stats = self.stats();
        PluginInfo {
            name: self.name.clone(),
            version: self.version.clone(),
            file: self.path.clone(),
            sha256: self.sha256.clone(),
            isolation: self.isolation,
            state: self.state(),
            data_sources: self
                .description()
                .data_sources
                .iter()
                .map(|source| source.id.clone())
                .collect(),
            calls: stats.calls.load(Ordering::Relaxed),
            in_flight: stats.pure.busy.load(Ordering::Relaxed)
                + stats.io.busy.load(Ordering::Relaxed),
            failures: stats.failures.load(Ordering::Relaxed),
            panics: stats.panics.load(Ordering::Relaxed),
            runner_restarts: stats.runner_restarts.load(Ordering::Relaxed),
            last_error: stats.last_error(),
        }
    }
}
