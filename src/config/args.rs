//! The flags of `connvault serve` and how they override the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Config, ConfigError, EgressDefault, IsolationSetting, LogFormat};

/// Flags of `connvault serve`; each also reads a `CONNVAULT_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML config file (lowest precedence after the defaults).
    #[arg(long, env = "CONNVAULT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "CONNVAULT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the HTTP listener (hosted forms), or `off` [default: 127.0.0.1:8080].
    #[arg(long, env = "CONNVAULT_HTTP_LISTEN")]
    pub http_listen: Option<crate::http::HttpListen>,
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
        if let Some(http) = args.http_listen {
            config.http_listen = http;
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
}
