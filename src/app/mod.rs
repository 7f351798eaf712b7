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
#[doc(hidden)]
pub(crate) mod fuzzing;
mod list;
mod pagination;
mod resolve;
mod tenant_update;
mod tenants;
mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use connvault_crypto::Keyring;
use connvault_plugin_host::PluginHost;
use connvault_store::Store;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::pb::v1;

pub use audit_events::{AuditFilter, list_audit_events};
pub(crate) use connections::secrets_aad;
pub use egress::{EgressSettings, MAX_TENANT_RULES};

/// Shared state of a running server.
pub struct App {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    plugins: Arc<PluginHost>,
    limits: Limits,
    /// Metadata discovery: in-flight reads and cache invalidation.
    metadata: Arc<discover::MetadataState>,
    /// Where tests and discovery may connect.
    egress: egress::EgressState,
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
    /// Builds the service state.
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Keyring,
        plugins: Arc<PluginHost>,
        limits: Limits,
    ) -> Self {
        Self {
            store,
            keyring: Arc::new(keyring),
            plugins,
            limits,
            metadata: Arc::default(),
            egress: egress::EgressState::default(),
        }
    }

    /// The keyring secrets are sealed with (the audit log derives its HMAC key from it).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The loaded plugins.
    pub fn plugins(&self) -> &PluginHost {
        &self.plugins
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
