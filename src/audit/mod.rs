//! The append-only audit log: in the store, and optionally as JSON lines in a file.
//!
//! Secret values never appear: an event carries an HMAC-SHA256 of each under
//! a key derived from the master key for the event's tenant, so an operator
//! can tell whether two events of one tenant carried the same value without
//! learning it, and values cannot be compared across tenants. Only events of
//! requests that stored or handed out a secret carry HMACs: a request that
//! stores nothing (`validate_only`, a failure) would otherwise let a caller
//! confirm a guess against the HMAC of the stored value.
//!
//! What an event costs is bounded whoever sends the request: every string in
//! it is cut to [`MAX_EVENT_FIELD_BYTES`], and refused requests are recorded
//! one by one only within a budget (`refusals.rs`), the rest counted into
//! periodic summary events.

mod refusals;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connvault_crypto::Keyring;
use connvault_store::{AuditAppend, Store};
use prost::Message;
use secrecy::SecretString;

use crate::error::ServiceError;
use crate::names::NO_TENANT;
use crate::pb::v1;
use crate::text::clip_owned;

pub use refusals::{MAX_SUMMARIES, RefusalBudget, RefusalLimits};

/// The longest string an audit event keeps (principal, tenant, resource,
/// method, outcome, request id, secret field names): what a request echoes
/// into the log is cut to this, with a marker saying how much was cut.
pub const MAX_EVENT_FIELD_BYTES: usize = 256;

/// The outcome of a summary event: refused requests counted, not recorded one by one.
pub const SUPPRESSED: &str = "SUPPRESSED";

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
    refusals: RefusalBudget,
    /// Counts the events that could not be written (`None`: metrics off).
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl AuditLog {
    /// An audit log in `store`, also appended to `file` as JSON lines when
    /// given, recording refused requests one by one within `limits`.
    pub fn open(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        file: Option<&Path>,
        limits: RefusalLimits,
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
            refusals: RefusalBudget::new(limits, Instant::now()),
            metrics: None,
        })
    }

    /// Counts write failures into `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<crate::metrics::Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Counts one event that could not be written.
    fn failed(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.audit_write_failures.inc();
        }
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
    pub fn prepare(&self, event: v1::AuditEvent) -> CommitEvent {
        let mut event = bounded(event);
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
    pub async fn write(&self, event: v1::AuditEvent, durable: bool) -> Result<(), ServiceError> {
        let mut event = bounded(event);
        event.time = Some(crate::clock::timestamp_now());
        let tenant = filed_under(&event);
        let sequence = self
            .store
            .append_audit(&tenant, &event.encode_to_vec(), durable)
            .await
            .map_err(|error| {
                self.failed();
                ServiceError::Internal(format!("audit write failed: {error}"))
            })?;
        event.sequence = sequence;
        self.write_line(&event)
    }

    /// Records the event of a refused request if the refusal budget allows
    /// it now (`claimed`: the tenant the request named, `""` for none);
    /// otherwise counts it for the next summary. An error means an event
    /// that was due could not be written.
    pub async fn refused(&self, event: v1::AuditEvent, claimed: &str) -> Result<(), ServiceError> {
        if self.refusals.admit(claimed, &event.tenant, Instant::now()) {
            self.write(event, false).await
        } else {
            Ok(())
        }
    }

    /// Writes one summary event per tenant whose refusals went over budget
    /// since the last summary (outcome [`SUPPRESSED`], `suppressed_count`);
    /// returns how many refusals they count. A summary that cannot be
    /// written is counted again for the next one.
    pub async fn write_summaries(&self) -> Result<u64, ServiceError> {
        let mut total = 0;
        let mut pending = self.refusals.take_suppressed().into_iter();
        while let Some((tenant, count)) = pending.next() {
            let event = v1::AuditEvent {
                tenant: tenant.clone(),
                outcome: SUPPRESSED.to_owned(),
                suppressed_count: count,
                ..Default::default()
            };
            // Durable: a summary may be the last thing written before a shutdown.
            if let Err(error) = self.write(event, true).await {
                for (tenant, count) in std::iter::once((tenant, count)).chain(pending) {
                    self.refusals.restore(&tenant, count);
                }
                return Err(error);
            }
            total += count;
        }
        Ok(total)
    }

    /// Writes the summaries every `refused_audit.summary_secs`, for ever.
    pub async fn summarize_refusals(self: Arc<Self>) {
        let every = Duration::from_secs(self.refusals.limits().summary_secs.max(1));
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.write_summaries().await {
                Ok(0) => {}
                Ok(suppressed) => tracing::warn!(
                    suppressed,
                    "refused requests over the audit budget were counted, not recorded one by one"
                ),
                Err(error) => tracing::error!(%error, "writing the refused-request summary failed"),
            }
        }
    }

    fn write_line(&self, event: &v1::AuditEvent) -> Result<(), ServiceError> {
        if let Some(file) = &self.file {
            let line = json_line(event);
            let mut file = file.lock().map_err(|_| {
                self.failed();
                ServiceError::Internal("audit file lock poisoned".into())
            })?;
            file.write_all(line.as_bytes())
                .and_then(|()| file.flush())
                .map_err(|error| {
                    self.failed();
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

/// `event` with every string cut to [`MAX_EVENT_FIELD_BYTES`].
fn bounded(mut event: v1::AuditEvent) -> v1::AuditEvent {
    for field in [
        &mut event.principal,
        &mut event.tenant,
        &mut event.resource,
        &mut event.method,
        &mut event.outcome,
        &mut event.request_id,
        &mut event.claimed_tenant,
    ] {
        if field.len() > MAX_EVENT_FIELD_BYTES {
            *field = clip_owned(std::mem::take(field), MAX_EVENT_FIELD_BYTES);
        }
    }
    if event
        .secret_hmacs
        .keys()
        .any(|name| name.len() > MAX_EVENT_FIELD_BYTES)
    {
        event.secret_hmacs = std::mem::take(&mut event.secret_hmacs)
            .into_iter()
            .map(|(name, hmac)| (clip_owned(name, MAX_EVENT_FIELD_BYTES), hmac))
            .collect();
    }
    event
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
        "claimed_tenant": event.claimed_tenant,
        "suppressed_count": event.suppressed_count,
        "secret_hmacs": hmacs,
    });
    format!("{value}\n")
}

/// Deletes audit events older than `retention`, checking every tenth of it
/// (at least every second, at most every minute) so the log, and the memory
/// the store keeps for it, stop growing once events expire as fast as they come.
pub async fn prune_expired(audit: Arc<AuditLog>, retention: std::time::Duration) {
    let every = (retention / 10).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let Some(cutoff) = std::time::SystemTime::now().checked_sub(retention) else {
            continue;
        };
        match audit.prune_older_than(cutoff).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(
                pruned,
                retention_secs = retention.as_secs(),
                "deleted expired audit events"
            ),
            Err(error) => tracing::error!(%error, "deleting expired audit events failed"),
        }
    }
}
