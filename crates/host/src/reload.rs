//! Reloading the plugin directory without a restart.
//!
//! A reload builds a new [`PluginHost`] from the directory as it is now:
//! a file whose bytes did not change keeps its loaded plugin (the same
//! instance, its runners, counters and calls in flight); a new or changed
//! file is loaded afresh; a file that is gone leaves the new host. The old
//! host is not touched: calls made through it finish on the plugin they
//! started on, and a plugin no host holds any more is dropped when its last
//! call ends (its runners stop; a library in this process stays mapped, as
//! libraries are never unloaded).
//!
//! A file that is refused while an earlier version of it is loaded leaves
//! that version serving: a bad upgrade costs the upgrade, not the service.

use std::path::Path;
use std::sync::Arc;

use crate::{HostOptions, LoadError, Plugin, PluginHost, plugin_files, verify};

/// What a reload did. The refused files are the new host's [`PluginHost::refused`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Reload {
    /// The plugins as they are now: swap it in for the old host.
    pub host: PluginHost,
    /// Plugins loaded by this reload: new files, and new versions of files.
    pub loaded: Vec<Arc<Plugin>>,
    /// Plugins kept as they were (their file did not change, or its new
    /// version was refused).
    pub kept: Vec<Arc<Plugin>>,
    /// Plugins of the old host the new one no longer serves (their file is
    /// gone, or a new version replaced them).
    pub unloaded: Vec<Arc<Plugin>>,
}

impl PluginHost {
    /// Rescans `dir` and returns the plugins it holds now, reusing the
    /// loaded plugins whose file did not change (see the module docs).
    pub fn reload(&self, dir: &Path, options: &HostOptions) -> Reload {
        let mut host = PluginHost::empty(Arc::clone(&self.global));
        let mut loaded = Vec::new();
        let mut kept = Vec::new();
        for path in plugin_files(dir) {
            let previous = self.plugins.iter().find(|plugin| plugin.path() == path);
            if let Some(previous) = previous
                && unchanged(previous, &path, options)
            {
                match host.register(Arc::clone(previous)) {
                    Ok(plugin) => kept.push(plugin),
                    Err(error) => host.note(&path, Err(error)),
                }
                continue;
            }
            match host.load_one(&path, options) {
                Ok(plugin) => {
                    host.note(&path, Ok(Arc::clone(&plugin)));
                    loaded.push(plugin);
                }
                Err(error) => {
                    host.note(&path, Err(error));
                    if let Some(previous) = previous {
                        match host.register(Arc::clone(previous)) {
                            Ok(plugin) => {
                                tracing::warn!(file = %path.display(), plugin = plugin.name(), version = plugin.version(), "the version loaded before keeps serving");
                                kept.push(plugin);
                            }
                            Err(error) => host.note(&path, Err(error)),
                        }
                    }
                }
            }
        }
        let unloaded: Vec<Arc<Plugin>> = self
            .plugins
            .iter()
            .filter(|old| !host.plugins.iter().any(|new| Arc::ptr_eq(old, new)))
            .cloned()
            .collect();
        for plugin in &unloaded {
            tracing::info!(file = %plugin.path().display(), plugin = plugin.name(), version = plugin.version(), "unloaded plugin; calls in flight on it finish first");
        }
        Reload {
            host,
            loaded,
            kept,
            unloaded,
        }
    }
}

/// Whether `path` still holds the bytes `plugin` was loaded from, and
/// passes the file checks (its pin included) as it did.
fn unchanged(plugin: &Plugin, path: &Path, options: &HostOptions) -> bool {
    let pin = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| options.pins.get(name))
        .map(String::as_str);
    let verified: Result<_, LoadError> = verify::verify(path, pin, options.require_pins);
    verified.is_ok_and(|verified| verified.sha256 == plugin.sha256())
}
