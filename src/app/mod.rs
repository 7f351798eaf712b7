//! The service's rules: what each RPC does, independent of gRPC plumbing.
//!
//! Handlers in [`crate::api`] decode a request and call one method here; the
//! methods validate, call plugins, seal secrets and call the store through
//! its async traits ([`connvault_store::Store`]); how a backend answers
//! (inline, on a writer thread, over the network) is the backend's business.
//!
//! One file (or folder) per job: `tenants`, `connections` (a folder: rules,
//! secrets, sealing, store calls, the RPCs), `list` (listing connections),
//! `pagination` (page sizes and tokens every list call shares),
//! `data_sources`, `resolve`, `discover` (a folder: parameters, cache,
//! single flight), `egress` (a folder: where tests and discovery may
//! connect) and `audit_events` (reading the audit log).

mod audit_events;
mod connections;
mod data_sources;
mod discover;
mod egress;
pub mod forms;
#[doc(hidden)]
pub(crate) mod fuzzing;
mod keys;
mod list;
mod pagination;
mod plugins;
mod resolve;
mod tenant_update;
mod tenants;
mod tunnel;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use connvault_crypto::Keyring;
use connvault_plugin_host::PluginHost;
use connvault_store::Store;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::live_keys::LiveKeys;
use crate::pb::v1;

pub use audit_events::{AuditFilter, list_audit_events};
pub(crate) use connections::secrets_aad;
pub use egress::{EgressSettings, MAX_TENANT_RULES};
pub use plugins::PluginSource;

/// Shared state of a running server.
pub struct App {
    store: Arc<dyn Store>,
    keys: Arc<LiveKeys>,
    /// The plugins served now: swapped whole by a reload, so a request
    /// works with the set it started with.
    plugins: std::sync::RwLock<Arc<PluginHost>>,
    /// Where the plugins come from, for reloads (none: reloads are refused).
    plugin_source: Option<plugins::Reloader>,
    limits: Limits,
    /// Metadata discovery: in-flight reads and cache invalidation.
    metadata: Arc<discover::MetadataState>,
    /// Where tests and discovery may connect.
    egress: egress::EgressState,
    /// Where plugin calls and cache lookups are recorded (`None`: metrics off).
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The hosted forms: the page's base URL and the redirect signing key.
    forms: forms::FormsState,
}

/// Time limits for plugin calls.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long `validate` may take.
    pub validate: Duration,
    /// Default test timeout.
    pub test_default: Duration,
    /// Longest test timeout a caller may ask for.
    pub test_max: Duration,
    /// How long discovered metadata stays cached (zero: never cached).
    pub metadata_ttl: Duration,
    /// Default discover timeout (the longest is `test_max`).
    pub discover_default: Duration,
}

impl Limits {
    /// The limits a config sets.
    pub fn from_config(config: &Config) -> Self {
        Self {
            validate: Duration::from_millis(u64::from(config.validate_timeout_ms)),
            test_default: Duration::from_millis(u64::from(config.test_timeout_ms)),
            test_max: Duration::from_millis(u64::from(config.max_test_timeout_ms)),
            metadata_ttl: Duration::from_secs(config.metadata_cache_ttl_secs),
            discover_default: Duration::from_millis(u64::from(config.discover_timeout_ms)),
        }
    }
}

impl App {
    /// Builds the service state: `keyring` is the one the key file and the
    /// store's copy in `data_dir` hold (changes to it persist there).
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Keyring,
        data_dir: &Path,
        plugins: Arc<PluginHost>,
        limits: Limits,
    ) -> Self {
        Self {
            keys: Arc::new(LiveKeys::new(Arc::clone(&store), keyring, data_dir)),
            store,
            plugins: std::sync::RwLock::new(plugins),
            plugin_source: None,
            limits,
            metadata: Arc::default(),
            egress: egress::EgressState::default(),
            metrics: None,
            forms: forms::FormsState::default(),
        }
    }

    /// Records plugin calls and discovery cache lookups into `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<crate::metrics::Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics plugin calls are recorded into, if metrics are on.
    pub(crate) fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.metrics.as_deref()
    }

    /// The keyring secrets are sealed with, as it is now (the audit log
    /// derives its HMAC key from it).
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keys.keyring()
    }

    /// The live keyring: its changes (tenant keys, rotation, rewrap).
    pub fn keys(&self) -> &Arc<LiveKeys> {
        &self.keys
    }

    /// The plugins served now (a reload swaps in a new set; this one stays
    /// whole for as long as the caller holds it).
    pub fn plugins(&self) -> Arc<PluginHost> {
        Arc::clone(
            &self
                .plugins
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// A stored connection as the API answers with it: stamped with the etag of
/// the bytes it was stored as.
pub fn stamped(mut connection: v1::Connection, stored_value: &[u8]) -> v1::Connection {
    connection.etag = etag_of(stored_value);
    connection
}

/// An opaque etag derived from a stored value: it changes with every write.
pub fn etag_of(value: &[u8]) -> String {
    let digest = Sha256::digest(value);
    format!("\"{}\"", hex::encode(&digest[..10]))
}

/// Checks labels: at most 64, keys 1-100 characters, values at most 2000.
fn check_labels(
    labels: &std::collections::HashMap<String, String>,
    path: &str,
    violations: &mut Vec<crate::error::Violation>,
) {
    use crate::bounds::{MAX_LABEL_KEY_CHARS, MAX_LABEL_VALUE_CHARS, MAX_LABELS};
    use crate::error::Violation;
    if labels.len() > MAX_LABELS {
        violations.push(Violation {
            field: path.into(),
            description: format!("must have at most {MAX_LABELS} entries"),
        });
    }
    for (key, value) in labels {
        if key.is_empty()
            || key.chars().count() > MAX_LABEL_KEY_CHARS
            || key.chars().any(char::is_control)
        {
            violations.push(Violation {
                field: format!("{path}.{key}"),
                description: format!(
                    "keys must be 1-{MAX_LABEL_KEY_CHARS} characters without control characters"
                ),
            });
        }
        if value.chars().count() > MAX_LABEL_VALUE_CHARS {
            violations.push(Violation {
                field: format!("{path}.{key}"),
                description: format!("values must be at most {MAX_LABEL_VALUE_CHARS} characters"),
            });
        }
    }
}
