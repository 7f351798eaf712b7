//! The append-only audit log: in the store, and optionally as JSON lines in a file.
//!
//! Secret values never appear: an event carries an HMAC-SHA256 of each under
//! a key derived from the master key, so an operator can tell whether two
//! events carried the same value without learning it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use connvault_crypto::Keyring;
use connvault_store::Store;
use prost::Message;
use secrecy::SecretString;

use crate::error::ServiceError;
use crate::pb::v1;

/// Tenant key under which events without a tenant (refused, unauthenticated) are kept.
const NO_TENANT: &str = "-";

/// Writes and reads audit events.
pub struct AuditLog {
    store: Arc<Store>,
    keyring: Arc<Keyring>,
    file: Option<Mutex<std::fs::File>>,
}

impl AuditLog {
    /// An audit log in `store`, also appended to `file` as JSON lines when given.
    pub fn open(
        store: Arc<Store>,
        keyring: Arc<Keyring>,
        file: Option<&Path>,
    ) -> std::io::Result<Self> {
        let file = match file {
            Some(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                Some(Mutex::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(path)?,
                ))
            }
            None => None,
        };
        Ok(Self {
            store,
            keyring,
            file,
        })
    }

    /// HMAC (hex) of a secret value under the server's audit key.
    pub fn hmac(&self, value: &str) -> String {
        self.keyring
            .hmac_secret(&SecretString::from(value.to_owned()))
    }

    /// Appends an event; an error means the event is not recorded and the
    /// request must fail. With `durable`, returns once the event is on disk;
    /// without, it reaches the disk with the next durable write (which is how
    /// a `STARTED` event rides on its mutation's own flush).
    pub async fn write(
        &self,
        mut event: v1::AuditEvent,
        durable: bool,
    ) -> Result<(), ServiceError> {
        event.time = Some(crate::convert::now());
        let tenant = if event.tenant.is_empty() {
            NO_TENANT.to_owned()
        } else {
            event.tenant.clone()
        };
        let sequence = self
            .store
            .append_audit_async(&tenant, &event.encode_to_vec(), durable)
            .await
            .map_err(|error| ServiceError::Internal(format!("audit write failed: {error}")))?;
        event.sequence = sequence;
        if let Some(file) = &self.file {
            let line = json_line(&event);
            let mut file = file
                .lock()
                .map_err(|_| ServiceError::Internal("audit file lock poisoned".into()))?;
            file.write_all(line.as_bytes())
                .and_then(|()| file.flush())
                .map_err(|error| {
                    ServiceError::Internal(format!("audit file write failed: {error}"))
                })?;
        }
        Ok(())
    }

    /// Events of one tenant (or all, with `None`) after `after`, oldest first.
    pub async fn list(
        &self,
        tenant: Option<String>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<v1::AuditEvent>, ServiceError> {
        let store = Arc::clone(&self.store);
        let records =
            tokio::task::spawn_blocking(move || store.list_audit(tenant.as_deref(), after, limit))
                .await
                .map_err(|error| ServiceError::Internal(format!("audit task failed: {error}")))?
                .map_err(ServiceError::from)?;
        records
            .into_iter()
            .map(|record| {
                let mut event = v1::AuditEvent::decode(record.value.as_slice())
                    .map_err(|_| ServiceError::DataLoss("an audit event cannot be read".into()))?;
                event.sequence = record.seq;
                Ok(event)
            })
            .collect()
    }
}

fn json_line(event: &v1::AuditEvent) -> String {
    let time = event
        .time
        .as_ref()
        .map(|t| format!("{}.{:09}", t.seconds, t.nanos))
        .unwrap_or_default();
    let hmacs: BTreeMap<&String, &String> = event.secret_hmacs.iter().collect();
    let value = serde_json::json!({
        "sequence": event.sequence,
        "time": time,
        "principal": event.principal,
        "tenant": event.tenant,
        "resource": event.resource,
        "method": event.method,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "secret_hmacs": hmacs,
    });
    format!("{value}\n")
}
