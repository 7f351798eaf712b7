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
}

/// The server's egress policy (see docs/security.md, "Egress"): rules in
/// `connvault_egress` syntax (`10.0.0.0/8`, `db.example.com:5432`,
/// `*.corp.example`, `local`, `*`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    /// Destinations to allow, even those the built-in rules deny.
    pub allow: Vec<String>,
    /// Destinations to deny; nothing overrides them.
    pub deny: Vec<String>,
    /// What a destination no rule matches gets.
    pub default: EgressDefault,
    /// Test and discover data sources that do not say where they connect
    /// (the policy is then enforced only by the plugin, if at all).
    pub allow_undeclared_targets: bool,
}

/// What a destination no egress rule matches gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum EgressDefault {
    /// Allowed (customers' databases live anywhere, private networks included).
    #[default]
    Allow,
    /// Denied: only what an allow rule names may be reached.
    Deny,
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
    /// An egress allow rule (repeat, or comma-separate in the variable);
    /// replaces `egress.allow` of the file.
    #[arg(
        long = "egress-allow",
        env = "CONNVAULT_EGRESS_ALLOW",
        value_delimiter = ','
    )]
    pub egress_allow: Vec<String>,
    /// An egress deny rule (repeat, or comma-separate in the variable);
    /// replaces `egress.deny` of the file.
    #[arg(
        long = "egress-deny",
        env = "CONNVAULT_EGRESS_DENY",
        value_delimiter = ','
    )]
    pub egress_deny: Vec<String>,
    /// What a destination no egress rule matches gets [default: allow].
    #[arg(long, env = "CONNVAULT_EGRESS_DEFAULT", value_enum)]
    pub egress_default: Option<EgressDefault>,
    /// Test and discover data sources whose plugin does not say where it connects.
    #[arg(long, env = "CONNVAULT_EGRESS_ALLOW_UNDECLARED_TARGETS")]
    pub egress_allow_undeclared_targets: bool,
    /// The server certificate chain, PEM: turns TLS on (with --tls-key-file).
    #[arg(long, env = "CONNVAULT_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The server's private key, PEM.
    #[arg(long, env = "CONNVAULT_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates, PEM: clients must present a certificate they issued (mutual TLS).
    #[arg(long, env = "CONNVAULT_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Serve plaintext on a non-loopback address (only behind a TLS-terminating proxy).
    #[arg(long, env = "CONNVAULT_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,
    /// Connections open at once, handshaking or established [default: 10000].
    #[arg(long, env = "CONNVAULT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections in their TLS/HTTP/2 handshake at once; the oldest is closed past it [default: 1024].
    #[arg(long, env = "CONNVAULT_MAX_HANDSHAKES")]
    pub max_handshakes: Option<usize>,
    /// Milliseconds from accept to the HTTP/2 preface, TLS included [default: 10000].
    #[arg(long, env = "CONNVAULT_HANDSHAKE_TIMEOUT_MS")]
    pub handshake_timeout_ms: Option<u64>,
    /// Seconds between HTTP/2 pings on a silent connection, 0 for none [default: 60].
    #[arg(long, env = "CONNVAULT_HTTP2_KEEPALIVE_INTERVAL_SECS")]
    pub http2_keepalive_interval_secs: Option<u64>,
    /// Seconds a ping may go unanswered before the connection is closed [default: 20].
    #[arg(long, env = "CONNVAULT_HTTP2_KEEPALIVE_TIMEOUT_SECS")]
    pub http2_keepalive_timeout_secs: Option<u64>,
    /// Seconds a connection may live before the server asks the client to reconnect (GOAWAY), 0 for no limit [default: 3600].
    #[arg(long, env = "CONNVAULT_MAX_CONNECTION_AGE_SECS")]
    pub max_connection_age_secs: Option<u64>,
    /// Requests per second each tenant may send on average, 0 for no limit [default: 1000].
    #[arg(long, env = "CONNVAULT_TENANT_RATE_LIMIT")]
    pub tenant_rate_limit: Option<u32>,
    /// Requests a tenant may send at once after a quiet spell, 0 for the rate [default: 2000].
    #[arg(long, env = "CONNVAULT_TENANT_RATE_BURST")]
    pub tenant_rate_burst: Option<u32>,
    /// I/O worker threads per plugin: concurrent test and discover calls [default: 8].
    #[arg(long, env = "CONNVAULT_WORKERS_PER_PLUGIN")]
    pub workers_per_plugin: Option<usize>,
    /// Worker threads per plugin for validate and render, which I/O never holds [default: 4].
    #[arg(long, env = "CONNVAULT_PURE_WORKERS_PER_PLUGIN")]
    pub pure_workers_per_plugin: Option<usize>,
    /// Test and discover calls one tenant may run at once on a plugin, 0 for half its I/O workers [default: 0].
    #[arg(long, env = "CONNVAULT_IO_CALLS_PER_TENANT")]
    pub io_calls_per_tenant: Option<usize>,
    /// Test and discover calls one tenant may have waiting for a plugin's workers [default: 32].
    #[arg(long, env = "CONNVAULT_IO_QUEUE_PER_TENANT")]
    pub io_queue_per_tenant: Option<usize>,
    /// Where plugins run unless the file overrides it for one: process or in-process [default: process].
    #[arg(long, env = "CONNVAULT_PLUGIN_ISOLATION", value_enum)]
    pub plugin_isolation: Option<IsolationSetting>,
    /// Address space of each plugin runner in MiB, 0 for no limit [default: 1024].
    #[arg(long, env = "CONNVAULT_RUNNER_MEMORY_MB")]
    pub runner_memory_mb: Option<u64>,
    /// Open files of each plugin runner, 0 for no limit [default: 256].
    #[arg(long, env = "CONNVAULT_RUNNER_OPEN_FILES")]
    pub runner_open_files: Option<u64>,
    /// CPU seconds a plugin runner may use over its life, 0 for no limit [default: 0].
    #[arg(long, env = "CONNVAULT_RUNNER_CPU_SECS")]
    pub runner_cpu_secs: Option<u64>,
    /// Milliseconds a plugin call may overrun its deadline before its runner is killed [default: 1000].
    #[arg(long, env = "CONNVAULT_RUNNER_KILL_GRACE_MS")]
    pub runner_kill_grace_ms: Option<u64>,
    /// The largest request message accepted, in bytes [default: 1048576].
    #[arg(long, env = "CONNVAULT_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Refused requests recorded per second in the audit log, over all tenants [default: 20].
    #[arg(long, env = "CONNVAULT_REFUSED_AUDIT_PER_SEC")]
    pub refused_audit_per_sec: Option<u32>,
    /// Refused requests recorded at once after a quiet spell [default: 100].
    #[arg(long, env = "CONNVAULT_REFUSED_AUDIT_BURST")]
    pub refused_audit_burst: Option<u32>,
    /// Refused requests recorded per second per claimed tenant [default: 5].
    #[arg(long, env = "CONNVAULT_REFUSED_AUDIT_PER_TENANT_PER_SEC")]
    pub refused_audit_per_tenant_per_sec: Option<u32>,
    /// Refused requests recorded at once per claimed tenant [default: 20].
    #[arg(long, env = "CONNVAULT_REFUSED_AUDIT_PER_TENANT_BURST")]
    pub refused_audit_per_tenant_burst: Option<u32>,
    /// Seconds between summaries of the refused requests not recorded one by one [default: 10].
    #[arg(long, env = "CONNVAULT_REFUSED_AUDIT_SUMMARY_SECS")]
    pub refused_audit_summary_secs: Option<u64>,
}

impl Config {
    /// Reads the TOML file named by `args` (if any) and applies the flags over it.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.config_file = args.config.clone();
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
        if !args.egress_allow.is_empty() {
            config.egress.allow = args.egress_allow.clone();
        }
        if !args.egress_deny.is_empty() {
            config.egress.deny = args.egress_deny.clone();
        }
        if let Some(default) = args.egress_default {
            config.egress.default = default;
        }
        config.egress.allow_undeclared_targets |= args.egress_allow_undeclared_targets;
        if let Some(rate) = args.tenant_rate_limit {
            config.tenant_rate_limit = rate;
        }
        if let Some(burst) = args.tenant_rate_burst {
            config.tenant_rate_burst = burst;
        }
        let plugins = &mut config.plugins;
        for (flag, setting) in [
            (args.workers_per_plugin, &mut plugins.workers_per_plugin),
            (
                args.pure_workers_per_plugin,
                &mut plugins.pure_workers_per_plugin,
            ),
            (args.io_calls_per_tenant, &mut plugins.io_calls_per_tenant),
            (args.io_queue_per_tenant, &mut plugins.io_queue_per_tenant),
        ] {
            if flag.is_some() {
                *setting = flag;
            }
        }
        if args.plugin_isolation.is_some() {
            plugins.isolation = args.plugin_isolation;
        }
        for (flag, setting) in [
            (args.runner_memory_mb, &mut plugins.runner_memory_mb),
            (args.runner_open_files, &mut plugins.runner_open_files),
            (args.runner_cpu_secs, &mut plugins.runner_cpu_secs),
            (args.runner_kill_grace_ms, &mut plugins.runner_kill_grace_ms),
        ] {
            if flag.is_some() {
                *setting = flag;
            }
        }
        if let Some(bytes) = args.max_request_bytes {
            config.max_request_bytes = bytes;
        }
        let refused = &mut config.refused_audit;
        for (flag, setting) in [
            (args.refused_audit_per_sec, &mut refused.per_sec),
            (args.refused_audit_burst, &mut refused.burst),
            (
                args.refused_audit_per_tenant_per_sec,
                &mut refused.per_tenant_per_sec,
            ),
            (
                args.refused_audit_per_tenant_burst,
                &mut refused.per_tenant_burst,
            ),
        ] {
            if let Some(value) = flag {
                *setting = value;
            }
        }
        if let Some(secs) = args.refused_audit_summary_secs {
            refused.summary_secs = secs;
        }
        config.apply_listener_flags(args);
        config.validate()?;
        Ok(config)
    }

    /// Refuses settings that cannot work.
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(problem) = self.refused_audit.problem() {
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

    fn apply_listener_flags(&mut self, args: &ServeArgs) {
        let tls = &mut self.tls;
        for (flag, setting) in [
            (&args.tls_cert_file, &mut tls.cert_file),
            (&args.tls_key_file, &mut tls.key_file),
            (&args.tls_client_ca_file, &mut tls.client_ca_file),
        ] {
            if let Some(path) = flag {
                *setting = Some(path.clone());
            }
        }
        self.insecure_plaintext |= args.insecure_plaintext;
        let listener = &mut self.listener;
        if let Some(max) = args.max_connections {
            listener.max_connections = max;
        }
        if let Some(max) = args.max_handshakes {
            listener.max_handshakes = max;
        }
        for (flag, setting) in [
            (
                args.handshake_timeout_ms,
                &mut listener.handshake_timeout_ms,
            ),
            (
                args.http2_keepalive_interval_secs,
                &mut listener.http2_keepalive_interval_secs,
            ),
            (
                args.http2_keepalive_timeout_secs,
                &mut listener.http2_keepalive_timeout_secs,
            ),
            (
                args.max_connection_age_secs,
                &mut listener.max_connection_age_secs,
            ),
        ] {
            if let Some(value) = flag {
                *setting = value;
            }
        }
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

        let config = Config::load(&ServeArgs {
            io_calls_per_tenant: Some(3),
            tenant_rate_limit: Some(0),
            ..args.clone()
        })
        .unwrap();
        let options = config.host_options();
        assert_eq!(options.io_calls_per_tenant, 3);
        assert_eq!(options.workers_per_plugin, 8, "the host's default");
        assert!(options.require_pins);
        assert_eq!(config.rate_limit().per_second, 0);
        assert_eq!(Config::default().rate_limit().per_second, 1_000);

        std::fs::write(
            &file,
            "[tls]\ncert_file = \"/etc/cv/cert.pem\"\nkey_file = \"/etc/cv/key.pem\"\n[listener]\nmax_connections = 500\nhandshake_timeout_ms = 3000\n",
        )
        .unwrap();
        let args = ServeArgs {
            tls_key_file: Some("/flag/key.pem".into()),
            max_handshakes: Some(7),
            handshake_timeout_ms: Some(2000),
            ..args
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(
            config.tls.cert_file,
            Some(PathBuf::from("/etc/cv/cert.pem"))
        );
        assert_eq!(config.tls.key_file, Some(PathBuf::from("/flag/key.pem")));
        assert_eq!(config.tls.client_ca_file, None);
        assert_eq!(config.listener.max_connections, 500);
        assert_eq!(config.listener.max_handshakes, 7);
        assert_eq!(config.listener.handshake_timeout_ms, 2000);
        assert!(!config.insecure_plaintext);

        std::fs::write(
            &file,
            "[egress]\nallow = [\"127.0.0.1:6379\"]\ndeny = [\"10.9.0.0/16\"]\ndefault = \"deny\"\n",
        )
        .unwrap();
        let egress = Config::load(&args).unwrap().egress;
        assert_eq!(egress.allow, ["127.0.0.1:6379"]);
        assert_eq!(egress.deny, ["10.9.0.0/16"]);
        assert_eq!(egress.default, EgressDefault::Deny);
        let args = ServeArgs {
            egress_allow: vec!["[::1]:5432".into(), "local:9000".into()],
            ..args
        };
        let egress = Config::load(&args).unwrap().egress;
        assert_eq!(egress.allow, ["[::1]:5432", "local:9000"]);
        assert_eq!(egress.deny, ["10.9.0.0/16"]);

        std::fs::write(&file, "lisen = 1\n").unwrap();
        let error = Config::load(&args).unwrap_err().to_string();
        assert!(error.contains("lisen"), "{error}");
    }

    #[test]
    fn request_and_refused_audit_limits_layer_and_refuse_what_cannot_work() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("connvault.toml");
        let defaults = Config::load(&ServeArgs::default()).unwrap();
        assert_eq!(defaults.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(
            defaults.refused_audit,
            crate::audit::RefusalLimits::default()
        );
        std::fs::write(
            &file,
            "max_request_bytes = 65536\n[refused_audit]\nper_sec = 3\nper_tenant_burst = 7\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            refused_audit_per_sec: Some(4),
            refused_audit_summary_secs: Some(2),
            ..ServeArgs::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.max_request_bytes, 65_536);
        let limits = config.refused_audit;
        assert_eq!(
            (limits.per_sec, limits.per_tenant_burst, limits.summary_secs),
            (4, 7, 2),
            "the flag over the file over the default"
        );
        assert_eq!(limits.burst, 100);
        for broken in [
            ServeArgs {
                refused_audit_per_tenant_per_sec: Some(0),
                ..args.clone()
            },
            ServeArgs {
                max_request_bytes: Some(100),
                ..args.clone()
            },
        ] {
            let error = Config::load(&broken).unwrap_err();
            assert!(matches!(error, ConfigError::Invalid(_)), "{error}");
        }
    }
}
