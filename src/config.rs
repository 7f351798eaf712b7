//! Layered configuration: defaults, then a TOML file, then `CONNVAULT_*`
//! environment variables, then flags (clap merges the last two).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The server's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the store and (in dev mode) the master key live.
    pub data_dir: PathBuf,
    /// Where plugins are loaded from; default: the executable's directory.
    pub plugin_dir: Option<PathBuf>,
    /// A file holding the master key (base64 or 32 raw bytes, mode 0600).
    pub master_key_file: Option<PathBuf>,
    /// Development mode: creates a master key in the data directory, loads unpinned plugins.
    pub dev: bool,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter (`info`, `connvault=debug`...); `RUST_LOG` overrides it.
    pub log_level: String,
    /// Plugin settings.
    pub plugins: PluginConfig,
    /// Acknowledge writes only once durable (fsync). Turn off only for benchmarks.
    pub durable: bool,
    /// The store's page cache, in MiB: bounds the memory the store keeps of
    /// what it read or wrote (sled's own default, 1 GiB, let RSS grow with the data).
    pub store_cache_mb: u64,
    /// How long `validate` may take, in milliseconds.
    pub validate_timeout_ms: u32,
    /// Default time a connection test may take, in milliseconds.
    pub test_timeout_ms: u32,
    /// The longest a caller may ask a test to take, in milliseconds.
    pub max_test_timeout_ms: u32,
    /// How long in-flight requests may run after a shutdown signal, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Bearer-token verification.
    pub auth: crate::auth::AuthConfig,
    /// Also write audit events as JSON lines to this file.
    pub audit_log: Option<PathBuf>,
    /// Delete audit events older than this many seconds (0: keep them all).
    pub audit_retention_secs: u64,
    /// How long discovered metadata stays cached, in seconds (0: never cached).
    pub metadata_cache_ttl_secs: u64,
    /// Default time a metadata discovery may take, in milliseconds.
    pub discover_timeout_ms: u32,
    /// Start even though the store lost acknowledged writes (a flag only,
    /// for one start: never read from the file).
    #[serde(skip)]
    pub accept_data_loss: bool,
}

/// Plugin loading settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Expected SHA-256 (hex) by plugin file name.
    pub pins: BTreeMap<String, String>,
    /// Refuse plugins without a pin. Defaults to on outside `--dev`.
    pub require_pins: Option<bool>,
    /// Worker threads (concurrent calls) per plugin.
    pub workers_per_plugin: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("connvault-data"),
            plugin_dir: None,
            master_key_file: None,
            dev: false,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            plugins: PluginConfig::default(),
            durable: true,
            store_cache_mb: 64,
            audit_retention_secs: 0,
            validate_timeout_ms: 2_000,
            test_timeout_ms: 10_000,
            max_test_timeout_ms: 60_000,
            shutdown_grace_ms: 10_000,
            auth: crate::auth::AuthConfig::default(),
            audit_log: None,
            metadata_cache_ttl_secs: 300,
            discover_timeout_ms: 30_000,
            accept_data_loss: false,
        }
    }
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
}

/// Flags of `connvault serve`; each also reads a `CONNVAULT_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML config file (lowest precedence after the defaults).
    #[arg(long, env = "CONNVAULT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "CONNVAULT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: ./connvault-data].
    #[arg(long, env = "CONNVAULT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Plugin directory [default: the directory of the connvault executable].
    #[arg(long, env = "CONNVAULT_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Master key file (base64 of 32 bytes, mode 0600). Or set CONNVAULT_MASTER_KEY.
    #[arg(long, env = "CONNVAULT_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Development mode: a generated master key in the data dir, unpinned plugins allowed.
    #[arg(long, env = "CONNVAULT_DEV")]
    pub dev: bool,
    /// Log format.
    #[arg(long, env = "CONNVAULT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `connvault=debug` (RUST_LOG overrides).
    #[arg(long, env = "CONNVAULT_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Milliseconds in-flight requests may run after SIGTERM [default: 10000].
    #[arg(long, env = "CONNVAULT_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: Option<u64>,
    /// Also write audit events as JSON lines to this file.
    #[arg(long, env = "CONNVAULT_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// The store's page cache in MiB [default: 64].
    #[arg(long, env = "CONNVAULT_STORE_CACHE_MB")]
    pub store_cache_mb: Option<u64>,
    /// Delete audit events older than this many seconds [default: 0, keep all].
    #[arg(long, env = "CONNVAULT_AUDIT_RETENTION_SECS")]
    pub audit_retention_secs: Option<u64>,
    /// Start even though the store lost acknowledged writes (its log was
    /// damaged): serve what is left, log and audit the loss. For one start,
    /// after deciding against restoring a backup (see docs/operations.md).
    #[arg(long)]
    pub accept_data_loss: bool,
}

impl Config {
    /// Reads the TOML file named by `args` (if any) and applies the flags over it.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        if let Some(listen) = args.listen {
            config.listen = listen;
        }
        if let Some(dir) = &args.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(dir) = &args.plugin_dir {
            config.plugin_dir = Some(dir.clone());
        }
        if let Some(file) = &args.master_key_file {
            config.master_key_file = Some(file.clone());
        }
        config.dev |= args.dev;
        if let Some(format) = args.log_format {
            config.log_format = format;
        }
        if let Some(level) = &args.log_level {
            config.log_level = level.clone();
        }
        if let Some(grace) = args.shutdown_grace_ms {
            config.shutdown_grace_ms = grace;
        }
        if let Some(path) = &args.audit_log {
            config.audit_log = Some(path.clone());
        }
        if let Some(megabytes) = args.store_cache_mb {
            config.store_cache_mb = megabytes;
        }
        if let Some(secs) = args.audit_retention_secs {
            config.audit_retention_secs = secs;
        }
        config.accept_data_loss = args.accept_data_loss;
        Ok(config)
    }

    /// Parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// The plugin directory: configured, or beside the executable (where cargo puts plugins).
    pub fn plugin_dir(&self) -> PathBuf {
        self.plugin_dir.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from("."))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("connvault.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:6000\"\ndata_dir = \"/srv/cv\"\n[plugins.pins]\n\"libconnvault_plugin_x.so\" = \"ab\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            data_dir: Some("/flag".into()),
            ..ServeArgs::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.data_dir, PathBuf::from("/flag"));
        assert_eq!(config.plugins.pins.len(), 1);
        assert_eq!(config.validate_timeout_ms, 2_000);
        assert_eq!(
            config.audit_retention_secs, 0,
            "audit events are kept by default"
        );
        let args = ServeArgs {
            audit_retention_secs: Some(86_400),
            ..args
        };
        assert_eq!(Config::load(&args).unwrap().audit_retention_secs, 86_400);

        std::fs::write(&file, "lisen = 1\n").unwrap();
        let error = Config::load(&args).unwrap_err().to_string();
        assert!(error.contains("lisen"), "{error}");
    }
}
