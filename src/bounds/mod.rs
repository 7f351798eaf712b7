//! The size bounds of every request, checked first — before the caller is
//! authenticated, and before anything is logged, audited or stored.
//!
//! A string a caller sends decides how many bytes the server writes when it
//! is echoed into an audit event, a log line, an error or a record, so every
//! string and every collection of every request message has a maximum here
//! ([`Bounded`], implemented in `requests.rs` for each RPC's request). A
//! request over any of them is INVALID_ARGUMENT listing each field, and
//! nothing else happens. The rules of a field (what characters an id may
//! hold, which names exist) come later, from the app; these bounds only make
//! sure that what reaches the rules, and what a refusal records, is small.
//! The unit tests walk the descriptor of every RPC's request and prove that
//! a huge value in any string field, or a huge count in any repeated or map
//! field, is refused here: a field added later without a bound fails them.

mod requests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use prost_types::value::Kind;
use prost_types::{Struct, Value};

use crate::error::{ServiceError, Violation};
use crate::text::clip;

/// A resource name (`name`, `parent`, `names[]`, `connection.name`): at most
/// this many bytes (a valid one is at most 121).
pub const MAX_NAME_BYTES: usize = 256;
/// Each `/`-separated segment of a resource name: at most this many bytes.
pub const MAX_NAME_SEGMENT_BYTES: usize = 128;
/// `CreateTenantRequest.tenant_id`.
pub const MAX_TENANT_ID_BYTES: usize = 64;
/// `Connection.data_source`, `ListConnectionsRequest.data_source`.
pub const MAX_DATA_SOURCE_BYTES: usize = 128;
/// `Connection.product`, `ListConnectionsRequest.product`.
pub const MAX_PRODUCT_BYTES: usize = 100;
/// `Connection.display_name`, in characters.
pub const MAX_CONNECTION_DISPLAY_NAME_CHARS: usize = 100;
/// `Tenant.display_name`, in characters.
pub const MAX_TENANT_DISPLAY_NAME_CHARS: usize = 200;
/// Rules in `Tenant.egress.allow` and in `Tenant.egress.deny`.
pub const MAX_EGRESS_RULES: usize = crate::app::MAX_TENANT_RULES;
/// One egress rule.
pub const MAX_EGRESS_RULE_BYTES: usize = connvault_egress::MAX_RULE_LEN;
/// Entries of a `labels` map.
pub const MAX_LABELS: usize = 64;
/// A label key, in characters.
pub const MAX_LABEL_KEY_CHARS: usize = 100;
/// A label value, in characters.
pub const MAX_LABEL_VALUE_CHARS: usize = 2000;
/// Entries of `Connection.secrets` (and names in `secret_fields`).
pub const MAX_SECRETS: usize = 64;
/// A secret's field name.
pub const MAX_SECRET_NAME_BYTES: usize = 128;
/// A secret value.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Entries of `Connection.config` (and of any object nested in it).
pub const MAX_CONFIG_FIELDS: usize = 256;
/// A config key.
pub const MAX_CONFIG_KEY_BYTES: usize = 128;
/// A string in the config.
pub const MAX_CONFIG_STRING_BYTES: usize = 64 * 1024;
/// Items of a list in the config.
pub const MAX_CONFIG_LIST_ITEMS: usize = 256;
/// Levels of nesting in the config: a value of the config is level 1, an
/// item of a list value level 2; nothing may nest below that.
pub const MAX_CONFIG_DEPTH: usize = 2;
/// A PEM in `Connection.tls` (a CA bundle, a certificate, a client key).
pub const MAX_PEM_BYTES: usize = 256 * 1024;
/// `TlsConfig.server_name` (a DNS name is at most 253).
pub const MAX_SERVER_NAME_BYTES: usize = 255;
/// An `etag` (the server's are 22).
pub const MAX_ETAG_BYTES: usize = 64;
/// A `page_token` (the server's are at most about 640).
pub const MAX_PAGE_TOKEN_BYTES: usize = 1024;
/// `ListAuditEventsRequest.filter`.
pub const MAX_AUDIT_FILTER_BYTES: usize = 256;
/// `DiscoverMetadataRequest.schema_filter` and `table_filter`, in characters.
pub const MAX_GLOB_CHARS: usize = 256;
/// Paths of an `update_mask`.
pub const MAX_MASK_PATHS: usize = 256;
/// One `update_mask` path.
pub const MAX_MASK_PATH_BYTES: usize = 256;
/// The longest age recipient or identity (`age1...`, `AGE-SECRET-KEY-1...`).
pub const MAX_AGE_KEY_BYTES: usize = 512;
/// The longest export passphrase.
pub const MAX_PASSPHRASE_BYTES: usize = 1024;
/// The most export bytes one ImportTenant message carries.
pub const MAX_IMPORT_PIECE_BYTES: usize = 256 * 1024;
/// `BatchDeleteConnectionsRequest.names`.
pub const MAX_BATCH_NAMES: usize = 1000;
/// Stages of an input `last_test` (output only, ignored, still bounded).
pub const MAX_TEST_STAGES: usize = 16;
/// Longest SSH tunnel bastion host name.
pub const MAX_TUNNEL_HOST_BYTES: usize = 253;
/// Longest SSH tunnel user name.
pub const MAX_TUNNEL_USER_BYTES: usize = 128;
/// Longest SSH tunnel private key.
pub const MAX_TUNNEL_KEY_BYTES: usize = 16 * 1024;
/// Longest SSH tunnel passphrase or password.
pub const MAX_TUNNEL_PASSWORD_BYTES: usize = 1024;
/// Most pinned host key fingerprints of a tunnel.
pub const MAX_TUNNEL_FINGERPRINTS: usize = 8;
/// Longest host key fingerprint (`SHA256:` and 43 characters, with room).
pub const MAX_TUNNEL_FINGERPRINT_BYTES: usize = 64;
/// A message of an input `last_test` (output only, ignored, still bounded).
pub const MAX_TEST_MESSAGE_BYTES: usize = 4096;

/// How much of a map key or a value a violation's field path echoes.
const ECHO_KEY_BYTES: usize = 64;

/// A request message whose every field has a size bound.
pub trait Bounded {
    /// Reports each field of `self` that is over its bound to `check`.
    fn bound(&self, check: &mut Check);
}

/// Checks `request` against its bounds: INVALID_ARGUMENT naming every field over one.
pub fn check<T: Bounded + ?Sized>(request: &T) -> Result<(), ServiceError> {
    let mut check = Check::default();
    request.bound(&mut check);
    if check.violations.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::InvalidArgument(check.violations))
    }
}

/// Collects the violations of one request. Field paths are only formatted
/// when a field fails, so a request within bounds costs no allocation.
#[derive(Debug, Default)]
pub struct Check {
    prefix: String,
    violations: Vec<Violation>,
}

impl Check {
    /// Runs `inner` with `prefix` (`connection.`) before every field it names.
    pub fn within(&mut self, prefix: &str, inner: impl FnOnce(&mut Self)) {
        let length = self.prefix.len();
        self.prefix.push_str(prefix);
        inner(self);
        self.prefix.truncate(length);
    }

    fn fail(&mut self, field: &str, description: String) {
        self.violations.push(Violation {
            field: format!("{}{field}", self.prefix),
            description,
        });
    }

    /// `value` is at most `max` bytes.
    pub fn bytes(&mut self, field: &str, value: &str, max: usize) {
        if value.len() > max {
            self.fail(field, too_long(value.len(), max, "bytes"));
        }
    }

    /// Binary `value` is at most `max` bytes.
    pub fn data(&mut self, field: &str, value: &[u8], max: usize) {
        if value.len() > max {
            self.fail(field, too_long(value.len(), max, "bytes"));
        }
    }

    /// `value` is at most `max` characters.
    pub fn chars(&mut self, field: &str, value: &str, max: usize) {
        // A character is 1-4 bytes: only a string in between needs counting.
        if value.len() <= max {
            return;
        }
        // Over four bytes a character, it has too many whatever they are.
        let has = if value.len() > 4 * max {
            format!("{} bytes", value.len())
        } else {
            match value.chars().count() {
                count if count <= max => return,
                count => format!("{count}"),
            }
        };
        self.fail(
            field,
            format!("must be at most {max} characters (it has {has})"),
        );
    }

    /// A resource name: at most [`MAX_NAME_BYTES`], each segment at most
    /// [`MAX_NAME_SEGMENT_BYTES`].
    pub fn name(&mut self, field: &str, value: &str) {
        if value.len() > MAX_NAME_BYTES {
            self.fail(field, too_long(value.len(), MAX_NAME_BYTES, "bytes"));
        } else if value.split('/').any(|s| s.len() > MAX_NAME_SEGMENT_BYTES) {
            self.fail(
                field,
                format!("each /-separated segment must be at most {MAX_NAME_SEGMENT_BYTES} bytes"),
            );
        }
    }

    /// At most `max` entries; `false` when over, so the caller skips
    /// checking each entry (one violation, not one per entry).
    pub fn count(&mut self, field: &str, count: usize, max: usize) -> bool {
        if count > max {
            self.fail(
                field,
                format!("must have at most {max} entries (it has {count})"),
            );
            false
        } else {
            true
        }
    }

    /// At most `max_count` strings of at most `max_bytes` each.
    pub fn strings(&mut self, field: &str, values: &[String], max_count: usize, max_bytes: usize) {
        if self.count(field, values.len(), max_count) {
            for (index, value) in values.iter().enumerate() {
                if value.len() > max_bytes {
                    self.fail(
                        &format!("{field}[{index}]"),
                        too_long(value.len(), max_bytes, "bytes"),
                    );
                }
            }
        }
    }

    /// At most `max_count` resource names.
    pub fn names(&mut self, field: &str, values: &[String], max_count: usize) {
        if self.count(field, values.len(), max_count) {
            for (index, value) in values.iter().enumerate() {
                self.name(&format!("{field}[{index}]"), value);
            }
        }
    }

    /// A `labels` map: [`MAX_LABELS`] entries, keys of [`MAX_LABEL_KEY_CHARS`],
    /// values of [`MAX_LABEL_VALUE_CHARS`].
    pub fn labels(&mut self, field: &str, labels: &HashMap<String, String>) {
        if self.count(field, labels.len(), MAX_LABELS) {
            for (key, value) in labels {
                let entry = keyed(field, key);
                self.chars(&entry, key, MAX_LABEL_KEY_CHARS);
                self.chars(&entry, value, MAX_LABEL_VALUE_CHARS);
            }
        }
    }

    /// A `secrets` map: [`MAX_SECRETS`] entries, names of
    /// [`MAX_SECRET_NAME_BYTES`], values of [`MAX_SECRET_BYTES`]. A value is
    /// never echoed, only its length.
    pub fn secrets(&mut self, field: &str, secrets: &HashMap<String, String>) {
        if self.count(field, secrets.len(), MAX_SECRETS) {
            for (name, value) in secrets {
                if name.len() > MAX_SECRET_NAME_BYTES || value.len() > MAX_SECRET_BYTES {
                    let entry = keyed(field, name);
                    self.bytes(&entry, name, MAX_SECRET_NAME_BYTES);
                    self.bytes(&entry, value, MAX_SECRET_BYTES);
                }
            }
        }
    }

    /// A `config` Struct: see the `MAX_CONFIG_*` bounds.
    pub fn config(&mut self, field: &str, config: Option<&Struct>) {
        if let Some(config) = config {
            self.object(field, config, 1);
        }
    }

    fn object(&mut self, field: &str, object: &Struct, depth: usize) {
        if !self.count(field, object.fields.len(), MAX_CONFIG_FIELDS) {
            return;
        }
        for (key, value) in &object.fields {
            if key.len() > MAX_CONFIG_KEY_BYTES {
                self.bytes(&keyed(field, key), key, MAX_CONFIG_KEY_BYTES);
            } else {
                self.value(field, key, value, depth);
            }
        }
    }

    /// A config value at `depth`, named `{field}.{key}` when it fails.
    fn value(&mut self, field: &str, key: &str, value: &Value, depth: usize) {
        let path = || format!("{field}.{key}");
        match &value.kind {
            Some(Kind::StringValue(text)) if text.len() > MAX_CONFIG_STRING_BYTES => {
                self.bytes(&path(), text, MAX_CONFIG_STRING_BYTES);
            }
            Some(Kind::StructValue(_) | Kind::ListValue(_)) if depth >= MAX_CONFIG_DEPTH => {
                self.fail(
                    &path(),
                    format!("must nest at most {MAX_CONFIG_DEPTH} levels"),
                );
            }
            Some(Kind::StructValue(object)) => self.object(&path(), object, depth + 1),
            Some(Kind::ListValue(list)) => self.list(field, key, &list.values, depth),
            _ => {}
        }
    }

    /// A list value at `depth`: its items are one level deeper.
    fn list(&mut self, field: &str, key: &str, items: &[Value], depth: usize) {
        if self.count(
            &format!("{field}.{key}"),
            items.len(),
            MAX_CONFIG_LIST_ITEMS,
        ) {
            for (index, item) in items.iter().enumerate() {
                self.value(field, &format!("{key}[{index}]"), item, depth + 1);
            }
        }
    }
}

/// `{field}.{key}` with the key cut to [`ECHO_KEY_BYTES`].
fn keyed(field: &str, key: &str) -> String {
    format!("{field}.{}", clip(key, ECHO_KEY_BYTES))
}

fn too_long(length: usize, max: usize, unit: &str) -> String {
    format!("must be at most {max} {unit} (it has {length})")
}
