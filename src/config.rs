//! Layered configuration: defaults, then a TOML file, then `CONNVAULT_*`
//! environment variables, then flags (clap merges the last two).

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
    /// Connection limits and timeouts of the listener.
    pub listener: crate::listener::ListenerConfig,
    /// Server TLS; plaintext without it.
    pub tls: crate::listener::TlsConfig,
    /// Serve plaintext on a non-loopback address (behind a TLS-terminating proxy).
    pub insecure_plaintext: bool,
    /// Requests per second each tenant may send on average (0: no limit).
    pub tenant_rate_limit: u32,
    /// Requests a tenant may send at once after a quiet spell (0: the rate).
    pub tenant_rate_burst: u32,
    /// The largest request message accepted, in bytes (larger: RESOURCE_EXHAUSTED).
    pub max_request_bytes: usize,
    /// How many refused requests the audit log records one by one.
    pub refused_audit: crate::audit::RefusalLimits,
    /// The file these settings were read from, if any (never read by plugin runners).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// Where connection tests and metadata discovery may connect.
    pub egress: EgressConfig,
    /// The HTTP listener's address (the hosted forms), or `off`.
    pub http_listen: crate::http::HttpListen,
    /// Bounds of the HTTP listener.
    pub http: crate::http::HttpConfig,
}

mod plugins;

pub use plugins::{IsolationSetting, PluginConfig, PluginOverride};

/// The default of [`Config::max_request_bytes`]: 1 MiB, room for a
/// connection with a CA bundle and every secret it needs.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// The smallest [`Config::max_request_bytes`] accepted.
const MIN_REQUEST_BYTES: usize = 4096;

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
            egress: EgressConfig::default(),
            listener: crate::listener::ListenerConfig::default(),
            tls: crate::listener::TlsConfig::default(),
            insecure_plaintext: false,
            tenant_rate_limit: 1_000,
            tenant_rate_burst: 2_000,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            refused_audit: crate::audit::RefusalLimits::default(),
            config_file: None,
            http_listen: crate::http::HttpListen::default(),
            http: crate::http::HttpConfig::default(),
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
    /// A setting has a value that cannot work.
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
}

mod args;
mod egress;

pub use args::ServeArgs;
pub use egress::{EgressConfig, EgressDefault};

impl Config {
    /// Refuses settings that cannot work.
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(problem) = self.refused_audit.problem() {
            return Err(ConfigError::Invalid(problem));
        }
        if let Some(problem) = self.http.problem() {
            return Err(ConfigError::Invalid(problem));
        }
        if let Some(problem) = self.plugins.problem() {
            return Err(ConfigError::Invalid(problem));
        }
        // Below this not even a typical connection fits; above 4 GiB the
        // gRPC length prefix cannot say it.
        if !(MIN_REQUEST_BYTES..=u32::MAX as usize).contains(&self.max_request_bytes) {
            return Err(ConfigError::Invalid(
                "max_request_bytes must be between 4096 and 4294967295",
            ));
        }
        Ok(())
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

    /// How plugins are called: the lanes' sizes and the per-tenant share of
    /// I/O workers, over the host's defaults. Pins are the caller's to add.
    pub fn host_options(&self) -> connvault_plugin_host::HostOptions {
        // What a plugin must never read; a runner refuses to start if one
        // lies under a path runners may read.
        let protected = [
            Some(self.data_dir.clone()),
            self.master_key_file.clone(),
            self.config_file.clone(),
            self.auth.hs256_secret_file.clone(),
            self.auth.jwks_file.clone(),
            self.audit_log.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.plugins.host_options(self.dev, protected)
    }

    /// The per-tenant request rate limit.
    pub fn rate_limit(&self) -> crate::rate_limit::RateLimit {
        crate::rate_limit::RateLimit {
            per_second: self.tenant_rate_limit,
            burst: self.tenant_rate_burst,
        }
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
mod tests;
