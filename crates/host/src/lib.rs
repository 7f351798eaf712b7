//! Loads, verifies and calls connvault provider plugins.
//!
//! [`PluginHost::load_dir`] lists a directory for `*connvault_plugin_*`
//! shared objects and loads each one that passes every check (see
//! [`verify`]); a file that fails is skipped with one log line naming it and
//! the reason, and the rest still load. Calls go through [`Plugin::call`]:
//! each runs on one of the plugin's own worker threads under a deadline, so a
//! hung plugin holds at most its own workers and callers get
//! `DEADLINE_EXCEEDED` on time. Calls that do no I/O (describe, validate,
//! render) have workers of their own that I/O calls (test, discover) never
//! occupy; I/O calls are shared fairly among tenants, each tenant holding at
//! most [`HostOptions::io_calls_per_tenant`] of a plugin's I/O workers.
//!
//! ```no_run
//! # async fn run() {
//! use std::time::Duration;
//! use connvault_plugin_host::{HostOptions, PluginHost, ProviderClient};
//! use connvault_plugin_abi::pb;
//!
//! let host = PluginHost::load_dir("/usr/lib/connvault/plugins".as_ref(), &HostOptions::default());
//! if let Some((plugin, source)) = host.find("POSTGRESQL") {
//!     let request = pb::ValidateRequest {
//!         connection: Some(pb::ConnectionSpec { data_source: source.id.clone(), ..Default::default() }),
//!         ..Default::default()
//!     };
//!     let answer = plugin.validate(&request, Duration::from_secs(1)).await;
//!     println!("{answer:?}");
//! }
//! # }
//! ```

pub mod check;
mod describe;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod options;
mod plugin;
mod reload;
pub mod runner;
mod schema;
pub mod verify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use connvault_plugin_abi::{Method, pb};
use tokio::sync::Semaphore;

pub use error::{CallError, LoadError};
pub use options::{HostOptions, Isolation, RunnerOptions};
pub use plugin::process::self_runner_command;
pub use plugin::{
    LaneStats, LastError, Plugin, PluginInfo, PluginState, PluginStats, ProviderClient,
};
pub use reload::Reload;
pub use schema::answer::{Mismatch, check_normalized_config, check_secret_names};

/// A plugin file that was not loaded, and why.
#[derive(Debug)]
pub struct Refusal {
    /// The file.
    pub path: PathBuf,
    /// Why it was refused.
    pub error: LoadError,
}

/// The loaded plugins and an index of the data sources they serve.
#[derive(Debug)]
pub struct PluginHost {
    plugins: Vec<Arc<Plugin>>,
    by_name: HashMap<String, (usize, usize)>,
    refused: Vec<Refusal>,
    /// Concurrent I/O calls across all plugins: kept across reloads, so
    /// plugins old and new share one limit.
    global: Arc<Semaphore>,
}

impl Default for PluginHost {
    fn default() -> Self {
        Self::empty(Arc::new(Semaphore::new(
            HostOptions::default().global_permits,
        )))
    }
}

/// Whether a file name looks like a plugin: `*connvault_plugin_*` with the
/// platform's shared-library suffix.
pub fn is_plugin_file_name(name: &str) -> bool {
    name.contains("connvault_plugin_") && name.ends_with(std::env::consts::DLL_SUFFIX)
}

/// The plugin files in `dir`, sorted; an entry skipped for its name gets a
/// log line (at INFO for a shared library, which may be a misnamed plugin).
pub(crate) fn plugin_files(dir: &Path) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "cannot list the plugin directory; no plugins loaded");
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|name| name.to_str());
            if name.is_some_and(is_plugin_file_name) {
                return true;
            }
            if name.is_none_or(|name| name.ends_with(std::env::consts::DLL_SUFFIX)) {
                tracing::info!(file = %path.display(), "skipped: a plugin file's name contains connvault_plugin_ and ends in .so");
            } else {
                tracing::debug!(file = %path.display(), "skipped: not named like a plugin");
            }
            false
        })
        .collect();
    files.sort();
    files
}

impl PluginHost {
    /// Loads every plugin in `dir`. A missing directory loads nothing (and says so).
    pub fn load_dir(dir: &Path, options: &HostOptions) -> PluginHost {
        Self::load_files(&plugin_files(dir), options)
    }

    /// Loads the given plugin files, in order.
    pub fn load_files(files: &[PathBuf], options: &HostOptions) -> PluginHost {
        let global = Arc::new(Semaphore::new(options.global_permits.max(1)));
        let mut host = PluginHost::empty(global);
        for path in files {
            let loaded = host.load_one(path, options);
            host.note(path, loaded);
        }
        host
    }

    fn empty(global: Arc<Semaphore>) -> PluginHost {
        PluginHost {
            plugins: Vec::new(),
            by_name: HashMap::new(),
            refused: Vec::new(),
            global,
        }
    }

    /// Verifies, loads and registers the plugin in `path`.
    fn load_one(&mut self, path: &Path, options: &HostOptions) -> Result<Arc<Plugin>, LoadError> {
        let pin = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| options.pins.get(name))
            .map(String::as_str);
        Plugin::load(path, pin, options, Arc::clone(&self.global))
            .and_then(|plugin| self.register(plugin))
    }

    /// Logs how loading `path` went, and keeps a refusal.
    fn note(&mut self, path: &Path, loaded: Result<Arc<Plugin>, LoadError>) {
        match loaded {
            Ok(plugin) => tracing::info!(
                file = %path.display(),
                plugin = plugin.name(),
                version = plugin.version(),
                sha256 = plugin.sha256(),
                isolation = ?plugin.isolation(),
                data_sources = plugin.description().data_sources.len(),
                "loaded plugin"
            ),
            Err(error) => {
                tracing::warn!(file = %path.display(), reason = %error, "refused plugin");
                self.refused.push(Refusal {
                    path: path.to_owned(),
                    error,
                });
            }
        }
    }

    fn register(&mut self, plugin: Arc<Plugin>) -> Result<Arc<Plugin>, LoadError> {
        let names: Vec<(String, usize)> = plugin
            .description()
            .data_sources
            .iter()
            .enumerate()
            .flat_map(|(index, source)| {
                std::iter::once(&source.id)
                    .chain(&source.aliases)
                    .map(move |name| (name.to_ascii_lowercase(), index))
            })
            .collect();
        for (name, _) in &names {
            if let Some((other, _)) = self.by_name.get(name) {
                return Err(LoadError::DuplicateDataSource {
                    id: name.clone(),
                    other: self.plugins[*other].name().to_owned(),
                });
            }
        }
        // Logs, metrics and errors name plugins: two of one name could not be told apart.
        if self
            .plugins
            .iter()
            .any(|other| other.name() == plugin.name())
        {
            return Err(LoadError::DuplicatePlugin {
                name: plugin.name().to_owned(),
            });
        }
        let plugin_index = self.plugins.len();
        for (name, source_index) in names {
            self.by_name.insert(name, (plugin_index, source_index));
        }
        self.plugins.push(Arc::clone(&plugin));
        Ok(plugin)
    }

    /// The loaded plugins, in load order.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// A snapshot of every loaded plugin, in load order: what it is, how it
    /// is doing, its calls and failures (for `ListPlugins` and metrics).
    pub fn inventory(&self) -> Vec<PluginInfo> {
        self.plugins.iter().map(|plugin| plugin.info()).collect()
    }

    /// The files refused at load, with reasons.
    pub fn refused(&self) -> &[Refusal] {
        &self.refused
    }

    /// Finds a data source by id or alias, case-insensitively.
    pub fn find(&self, name: &str) -> Option<(&Arc<Plugin>, &pb::DataSource)> {
        let (plugin, source) = self.by_name.get(&name.to_ascii_lowercase())?;
        let plugin = &self.plugins[*plugin];
        Some((plugin, &plugin.description().data_sources[*source]))
    }

    /// Every data source served, with its plugin, in load order.
    pub fn data_sources(&self) -> impl Iterator<Item = (&Arc<Plugin>, &pb::DataSource)> {
        self.plugins.iter().flat_map(|plugin| {
            plugin
                .description()
                .data_sources
                .iter()
                .map(move |source| (plugin, source))
        })
    }
}
