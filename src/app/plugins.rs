//! The plugins as operators see them (`PluginService`): what is loaded and
//! how it is doing, and reloading the plugin directory without a restart.
//!
//! A reload builds a new plugin set beside the one serving (see
//! `PluginHost::reload`) and swaps it in whole: a request keeps the set it
//! started with, so calls in flight finish on the plugin they began on.

use std::path::PathBuf;
use std::sync::Arc;

use connvault_plugin_host::{HostOptions, Isolation, PluginHost, PluginInfo, PluginState, Refusal};

use super::App;
use crate::error::ServiceError;
use crate::pb::v1;

/// Where the plugins come from: what a reload rescans.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// The plugin directory.
    pub dir: PathBuf,
    /// How plugins are loaded (as at start).
    pub options: HostOptions,
    /// The config file, whose `[plugins.pins]` a reload reads again (a new
    /// version of a pinned plugin comes with its new pin).
    pub config_file: Option<PathBuf>,
}

/// A source, and one reload at a time.
pub(super) struct Reloader {
    source: PluginSource,
    running: tokio::sync::Mutex<()>,
}

impl App {
    /// Lets [`App::reload_plugins`] rescan `source`.
    pub fn with_plugin_source(mut self, source: PluginSource) -> Self {
        self.plugin_source = Some(Reloader {
            source,
            running: tokio::sync::Mutex::new(()),
        });
        self
    }

    /// The loaded plugins and the files refused at the last (re)load.
    pub fn list_plugins(&self) -> v1::ListPluginsResponse {
        let plugins = self.plugins();
        v1::ListPluginsResponse {
            plugins: plugins
                .inventory()
                .into_iter()
                .map(plugin_message)
                .collect(),
            refused: refused_messages(&plugins),
        }
    }

    /// Rescans the plugin directory and swaps the new set in; see the module docs.
    pub async fn reload_plugins(&self) -> Result<v1::ReloadPluginsResponse, ServiceError> {
        let reloader = self.plugin_source.as_ref().ok_or_else(|| {
            ServiceError::FailedPrecondition("this server cannot reload its plugins".into())
        })?;
        let _one_at_a_time = reloader.running.lock().await;
        let options = reloader.options()?;
        let dir = reloader.source.dir.clone();
        let current = self.plugins();
        let reload = tokio::task::spawn_blocking(move || current.reload(&dir, &options))
            .await
            .map_err(|error| ServiceError::Internal(format!("the reload failed: {error}")))?;
        let answer = v1::ReloadPluginsResponse {
            plugins: reload
                .host
                .inventory()
                .into_iter()
                .map(plugin_message)
                .collect(),
            refused: refused_messages(&reload.host),
            loaded: reload
                .loaded
                .iter()
                .map(|plugin| plugin_message(plugin.info()))
                .collect(),
            unloaded: reload
                .unloaded
                .iter()
                .map(|plugin| plugin_message(plugin.info()))
                .collect(),
        };
        tracing::info!(
            dir = %reloader.source.dir.display(),
            loaded = reload.loaded.len(),
            kept = reload.kept.len(),
            unloaded = reload.unloaded.len(),
            refused = reload.host.refused().len(),
            "reloaded plugins"
        );
        *self
            .plugins
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(reload.host);
        Ok(answer)
    }
}

impl Reloader {
    /// The options to load with: as at start, with the pins read again.
    fn options(&self) -> Result<HostOptions, ServiceError> {
        let mut options = self.source.options.clone();
        if let Some(path) = &self.source.config_file {
            let config = crate::config::Config::from_file(path).map_err(|error| {
                ServiceError::FailedPrecondition(format!(
                    "cannot read the plugin pins again: {error}"
                ))
            })?;
            options.pins = config.plugins.pins;
        }
        Ok(options)
    }
}

fn refused_messages(host: &PluginHost) -> Vec<v1::RefusedPluginFile> {
    host.refused()
        .iter()
        .map(|Refusal { path, error }| v1::RefusedPluginFile {
            file: path.display().to_string(),
            reason: error.to_string(),
        })
        .collect()
}

/// A plugin as `PluginService` answers with it.
fn plugin_message(info: PluginInfo) -> v1::Plugin {
    let isolation = match info.isolation {
        Isolation::Process => v1::PluginIsolation::Process,
        Isolation::InProcess => v1::PluginIsolation::InProcess,
        _ => v1::PluginIsolation::Unspecified,
    };
    let state = match info.state {
        PluginState::Healthy => v1::PluginState::Healthy,
        PluginState::Degraded => v1::PluginState::Degraded,
        PluginState::Restarting => v1::PluginState::Restarting,
        PluginState::Failed => v1::PluginState::Failed,
        _ => v1::PluginState::Unspecified,
    };
    let (last_error, last_error_time) = match info.last_error {
        Some(last) => (last.message, Some(prost_types::Timestamp::from(last.at))),
        None => (String::new(), None),
    };
    v1::Plugin {
        name: info.name,
        version: info.version,
        file: info.file.display().to_string(),
        sha256: info.sha256,
        isolation: isolation.into(),
        state: state.into(),
        data_sources: info.data_sources,
        calls: info.calls,
        failures: info.failures,
        last_error,
        last_error_time,
        panics: info.panics,
        runner_restarts: info.runner_restarts,
        calls_in_flight: u64::try_from(info.in_flight).unwrap_or(u64::MAX),
    }
}
