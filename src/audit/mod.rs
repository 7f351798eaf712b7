//! The append-only audit log: in the store, and optionally as JSON lines in a file.
//!
//! Secret values never appear: an event carries an HMAC-SHA256 of each under
//! a key derived from the master key for the event's tenant, so an operator
//! can tell whether two events of one tenant carried the same value without
//! learning it, and values cannot be compared across tenants. Only events of
//! requests that stored or handed out a secret carry HMACs: a request that
//! stores nothing (`validate_only`, a failure) would otherwise let a caller
//! confirm a guess against the HMAC of the stored value.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use connvault_crypto::Keyring;
use connvault_store::{AuditAppend, Store};
use prost::Message;
use secrecy::SecretString;

use crate::error::ServiceError;
use crate::names::NO_TENANT;
use crate::pb::v1;

/// Audit entries deleted per store write when pruning: bounds the
/// transaction and how long other writes queue behind it.
pub const PRUNE_CHUNK: usize = 512;

/// An outcome event appended in the same store transaction as the change it
/// records (see [`AuditLog::prepare`]): the change and its record commit
/// together or not at all.
#[derive(Debug)]
pub struct CommitEvent {
    tenant: String,
    bytes: Vec<u8>,
    event: v1::AuditEvent,
}

impl CommitEvent {
    /// The entry as the store appends it.
    pub fn append(&self) -> AuditAppend<'_> {
        AuditAppend {
            tenant_id: &self.tenant,
            value: &self.bytes,
        }
    }
}

/// Writes and reads audit events.
pub struct AuditLog {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    file: Option<Mutex<std::fs::File>>,
}

impl AuditLog {
    /// An audit log in `store`, also appended to `file` as JSON lines when given.
    pub fn open(
        store: Arc<dyn Store>,
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

    /// The server's keyring (page tokens of audit listings are sealed under it).
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// HMAC (hex) of a secret value under the audit key of `tenant`.
    pub fn hmac(&self, tenant: &str, value: &str) -> String {
        let scope = if tenant.is_empty() { NO_TENANT } else { tenant };
        self.keyring
            .hmac_secret_in(scope, &SecretString::from(value.to_owned()))
    }

    /// Deletes the events stamped before `cutoff`, oldest first, in chunks of
    /// [`PRUNE_CHUNK`]; returns how many went. Events are appended in time
    /// order, so the walk stops at the first one that is young enough.
    pub async fn prune_older_than(
        &self,
        cutoff: std::time::SystemTime,
    ) -> Result<usize, ServiceError> {
        let cutoff = prost_types::Timestamp::from(cutoff);
        let mut pruned = 0;
        loop {
            let oldest = self.store.list_audit(None, 0, PRUNE_CHUNK).await?;
            let expired: Vec<u64> = oldest
                .iter()
                .take_while(|record| {
                    // An entry that cannot be decoded has no age: it stays,
                    // and so does everything after it (the walk is in order).
                    v1::AuditEvent::decode(record.value.as_slice())
                        .ok()
                        .and_then(|event| event.time)
                        .is_some_and(|time| {
                            (time.seconds, time.nanos) < (cutoff.seconds, cutoff.nanos)
                        })
                })
                .map(|record| record.seq)
                .collect();
            let whole_chunk = expired.len() == PRUNE_CHUNK;
            pruned += self.store.delete_audit(expired).await?;
            if !whole_chunk {
                return Ok(pruned);
            }
        }
    }

    /// Stamps and encodes `event` for a store write to append.
    pub fn prepare(&self, mut event: v1::AuditEvent) -> CommitEvent {
        event.time = Some(crate::clock::timestamp_now());
        CommitEvent {
            tenant: filed_under(&event),
            bytes: event.encode_to_vec(),
            event,
        }
    }

    /// Records that a store write appended `commit` as entry `sequence`
    /// (the JSON-lines file, when configured, gets its line now).
    pub fn committed(&self, commit: &CommitEvent, sequence: u64) -> Result<(), ServiceError> {
        // Only the JSON-lines file needs the numbered event: no copy without one.
        if self.file.is_none() {
            return Ok(());
        }
        let mut event = commit.event.clone();
        event.sequence = sequence;
        self.write_line(&event)
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
        event.time = Some(crate::clock::timestamp_now());
        let tenant = filed_under(&event);
        let sequence = self
            .store
            .append_audit(&tenant, &event.encode_to_vec(), durable)
            .await
            .map_err(|error| ServiceError::Internal(format!("audit write failed: {error}")))?;
        event.sequence = sequence;
        self.write_line(&event)
    }

    fn write_line(&self, event: &v1::AuditEvent) -> Result<(), ServiceError> {
        if let Some(file) = &self.file {
            let line = json_line(event);
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
        let records = self
            .store
            .list_audit(tenant.as_deref(), after, limit)
            .await?;
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

/// The tenant an event is filed under in the store.
fn filed_under(event: &v1::AuditEvent) -> String {
    if event.tenant.is_empty() {
        NO_TENANT.to_owned()
    } else {
        event.tenant.clone()
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
