//! The `[plugins]` settings: pins, lanes, where plugins run and how their
//! runners are confined.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Where a plugin's code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationSetting {
    /// In a confined runner process of its own, killed and restarted when
    /// it crashes or overruns a deadline (the default).
    #[default]
    Process,
    /// Inside the server's process: for first-party, pinned plugins only.
    InProcess,
}

impl From<IsolationSetting> for connvault_plugin_host::Isolation {
    fn from(setting: IsolationSetting) -> Self {
        match setting {
            IsolationSetting::Process => Self::Process,
            IsolationSetting::InProcess => Self::InProcess,
        }
    }
}

/// Settings of one plugin file, over the `[plugins]` defaults.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PluginOverride {
    /// Where this file's plugin runs.
    pub isolation: Option<IsolationSetting>,
}

/// Plugin loading settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Where plugins run unless overridden for their file: `process` (default) or `in-process`.
    pub isolation: Option<IsolationSetting>,
    /// Settings by plugin file name (`[plugins.overrides."libconnvault_plugin_x.so"]`).
    pub overrides: BTreeMap<String, PluginOverride>,
    /// Address space of each plugin runner, in MiB (0: no limit).
    pub runner_memory_mb: Option<u64>,
    /// Open files of each plugin runner (0: no limit).
    pub runner_open_files: Option<u64>,
    /// CPU seconds a plugin runner may use over its life (0: no limit).
    pub runner_cpu_secs: Option<u64>,
    /// How long a call may overrun its deadline before its runner is killed, in milliseconds.
    pub runner_kill_grace_ms: Option<u64>,
    /// Paths plugin runners may read besides the system's libraries, certificates and resolver files.
    pub runner_read_paths: Vec<PathBuf>,
    /// Expected SHA-256 (hex) by plugin file name.
    pub pins: BTreeMap<String, String>,
    /// Refuse plugins without a pin. Defaults to on outside `--dev`.
    pub require_pins: Option<bool>,
    /// I/O worker threads (concurrent `test` and `discover` calls) per plugin.
    pub workers_per_plugin: Option<usize>,
    /// Worker threads per plugin for calls that do no I/O (`validate`, `render`).
    pub pure_workers_per_plugin: Option<usize>,
    /// I/O calls one tenant may run at once on one plugin (0: half its I/O workers).
    pub io_calls_per_tenant: Option<usize>,
    /// I/O calls one tenant may have waiting for one plugin's workers.
    pub io_queue_per_tenant: Option<usize>,
}

impl PluginConfig {
    /// How plugins are loaded, called and isolated, over the host's
    /// defaults; `protected` are the paths no plugin runner may be able to read.
    pub fn host_options(
        &self,
        dev: bool,
        protected: Vec<PathBuf>,
    ) -> connvault_plugin_host::HostOptions {
        let mut options = connvault_plugin_host::HostOptions {
            require_pins: self.require_pins.unwrap_or(!dev),
            // A panic's message may quote secrets: logged in development only.
            log_panic_messages: dev,
            ..connvault_plugin_host::HostOptions::default()
        };
        let plugins = self;
        for (setting, option) in [
            (plugins.workers_per_plugin, &mut options.workers_per_plugin),
            (
                plugins.pure_workers_per_plugin,
                &mut options.pure_workers_per_plugin,
            ),
            (
                plugins.io_calls_per_tenant,
                &mut options.io_calls_per_tenant,
            ),
            (
                plugins.io_queue_per_tenant,
                &mut options.io_queue_per_tenant,
            ),
        ] {
            if let Some(value) = setting {
                *option = value;
            }
        }
        options.isolation = plugins.isolation.unwrap_or_default().into();
        options.isolation_overrides = plugins
            .overrides
            .iter()
            .filter_map(|(file, settings)| Some((file.clone(), settings.isolation?.into())))
            .collect();
        let runner = &mut options.runner;
        runner.command = Some(connvault_plugin_host::self_runner_command(&[
            crate::RUNNER_SUBCOMMAND,
        ]));
        if let Some(megabytes) = plugins.runner_memory_mb {
            runner.memory_bytes = megabytes.saturating_mul(1 << 20);
        }
        if let Some(files) = plugins.runner_open_files {
            runner.open_files = files;
        }
        if let Some(secs) = plugins.runner_cpu_secs {
            runner.cpu_secs = secs;
        }
        if let Some(millis) = plugins.runner_kill_grace_ms {
            runner.kill_grace = std::time::Duration::from_millis(millis);
        }
        runner.read_paths = plugins.runner_read_paths.clone();
        runner.protected_paths = protected;
        options
    }

    /// Why these settings cannot work, if they cannot.
    pub(super) fn problem(&self) -> Option<&'static str> {
        if self
            .runner_open_files
            .is_some_and(|files| (1..16).contains(&files))
        {
            return Some("plugins.runner_open_files must be 0 (no limit) or at least 16");
        }
        if self
            .runner_memory_mb
            .is_some_and(|megabytes| (1..64).contains(&megabytes))
        {
            return Some("plugins.runner_memory_mb must be 0 (no limit) or at least 64");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_run_in_runners_unless_a_file_is_overridden() {
        use connvault_plugin_host::Isolation;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("connvault.toml");
        let defaults = crate::config::Config::load(&crate::config::ServeArgs::default())
            .unwrap()
            .host_options();
        assert_eq!(defaults.isolation, Isolation::Process, "the default");
        assert_eq!(defaults.runner.memory_bytes, 1 << 30);
        assert!(defaults.runner.command.is_some());
        std::fs::write(
            &file,
            "master_key_file = \"/etc/cv/master.key\"\n[plugins]\nrunner_open_files = 64\nrunner_read_paths = [\"/opt/krb\"]\n[plugins.overrides.\"libconnvault_plugin_pg.so\"]\nisolation = \"in-process\"\n",
        )
        .unwrap();
        let args = crate::config::ServeArgs {
            config: Some(file.clone()),
            runner_memory_mb: Some(512),
            ..crate::config::ServeArgs::default()
        };
        let options = crate::config::Config::load(&args).unwrap().host_options();
        assert_eq!(
            options.isolation_for("libconnvault_plugin_pg.so"),
            Isolation::InProcess
        );
        assert_eq!(
            options.isolation_for("libconnvault_plugin_x.so"),
            Isolation::Process
        );
        assert_eq!(options.runner.memory_bytes, 512 << 20);
        assert_eq!(options.runner.open_files, 64);
        assert_eq!(options.runner.read_paths, [PathBuf::from("/opt/krb")]);
        for protected in ["/etc/cv/master.key", "connvault-data"] {
            assert!(
                options
                    .runner
                    .protected_paths
                    .contains(&PathBuf::from(protected)),
                "{protected}"
            );
        }
        assert!(
            options.runner.protected_paths.contains(&file),
            "the config itself"
        );
        let in_process = crate::config::Config::load(&crate::config::ServeArgs {
            plugin_isolation: Some(IsolationSetting::InProcess),
            ..args.clone()
        })
        .unwrap()
        .host_options();
        assert_eq!(in_process.isolation, Isolation::InProcess);
        let error = crate::config::Config::load(&crate::config::ServeArgs {
            runner_open_files: Some(3),
            ..args
        })
        .unwrap_err();
        assert!(
            matches!(error, crate::config::ConfigError::Invalid(_)),
            "{error}"
        );
    }
}
