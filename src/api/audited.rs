//! Recording what an admitted request did: [`Guard::audited`] runs the call
//! and writes its outcome, whichever of the three ways ([`Record`]) the RPC
//! needs, so a handler reads as decode, authorize, call, audit.

use std::future::Future;

use tonic::Status;

use super::guard::{Admitted, Guard, code_name};
use crate::audit::{AuditLog, CommitEvent};
use crate::error::ServiceError;
use crate::pb::v1;

/// How the outcome of an admitted call enters the audit log.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    /// Written once the call returns (test, discover, cache clear).
    Outcome,
    /// Written once the call returns, and on disk before the answer leaves:
    /// secrets are never handed out on an event that could still be lost (resolve).
    DurableOutcome,
    /// A `STARTED` event before the call, the outcome after, for changes
    /// whose store write cannot carry their event: if `STARTED` cannot be
    /// written the call does not run, so nothing changes unaudited. It is
    /// buffered; the change's own durable write carries it to disk first.
    Started,
    /// The success event (from [`Guard::commit_event`]) rides in the call's
    /// own store transaction: the change and its record commit together or
    /// not at all, and no `STARTED` event is needed. A failure, or a call
    /// that stored nothing (`validate_only`), is written once it returns.
    InStore(&'a CommitEvent),
}

/// What an audited call answers, as the audit log sees it.
pub trait Answer {
    /// What the client gets.
    type Value;

    /// The sequence number of the success event the call's store write
    /// appended, if it appended one ([`Record::InStore`]).
    fn appended(&self) -> Option<u64> {
        None
    }

    /// Adds to the event what only the answer tells: the resource created,
    /// the HMACs of the secrets handed out.
    fn describe(&self, _admitted: &mut Admitted, _audit: &AuditLog) {}

    /// The client's part.
    fn into_value(self) -> Self::Value;
}

/// Answers that add nothing to their event.
macro_rules! plain_answers {
    ($($answer:ty),* $(,)?) => {$(
        impl Answer for $answer {
            type Value = Self;

            fn into_value(self) -> Self {
                self
            }
        }
    )*};
}

plain_answers!(
    (),
    v1::Tenant,
    v1::TestConnectionResponse,
    v1::DiscoverMetadataResponse,
    v1::ClearMetadataCacheResponse,
    v1::KeyStatus,
    v1::RewrapMasterKeyResponse,
    v1::ReloadPluginsResponse,
);

/// A created or updated connection and the sequence of its success event.
impl Answer for (v1::Connection, Option<u64>) {
    type Value = v1::Connection;

    fn appended(&self) -> Option<u64> {
        self.1
    }

    fn describe(&self, admitted: &mut Admitted, _audit: &AuditLog) {
        admitted.set_resource(&self.0.name);
    }

    fn into_value(self) -> v1::Connection {
        self.0
    }
}

/// A form link: the event names the link (its id is made by the call).
impl Answer for v1::FormLink {
    type Value = Self;

    fn describe(&self, admitted: &mut Admitted, _audit: &AuditLog) {
        admitted.set_resource(&self.name);
    }

    fn into_value(self) -> Self {
        self
    }
}

/// A deletion: only the sequence of its success event.
impl Answer for Option<u64> {
    type Value = ();

    fn appended(&self) -> Option<u64> {
        *self
    }

    fn into_value(self) {}
}

/// A resolved connection hands out its secrets: their HMACs go in the event.
impl Answer for v1::ResolveConnectionResponse {
    type Value = Self;

    fn describe(&self, admitted: &mut Admitted, audit: &AuditLog) {
        for (name, value) in &self.secrets {
            admitted.note_secret(audit, name, value);
        }
        admitted.note_secret(audit, "tls.client_key_pem", &self.tls_client_key_pem);
    }

    fn into_value(self) -> Self {
        self
    }
}

impl Guard {
    /// Runs `call` for an admitted request and audits its outcome as
    /// `record` says; errors are mapped to their status here. If the outcome
    /// cannot be recorded the request fails: nothing proceeds unaudited.
    pub async fn audited<A: Answer>(
        &self,
        mut admitted: Admitted,
        record: Record<'_>,
        call: impl Future<Output = Result<A, ServiceError>>,
    ) -> Result<A::Value, Status> {
        let durable = matches!(record, Record::DurableOutcome);
        // The HMACs of the secrets a request carries are kept only in the
        // success event its store write commits: an event of a request that
        // stored nothing (refused, failed, `validate_only`) would let a
        // caller test a guessed value against the HMAC of the stored one.
        if let Record::Started = record {
            let mut started = admitted.event.clone();
            started.outcome = "STARTED".to_owned();
            started.secret_hmacs.clear();
            self.record(started, false).await?;
        }
        let answer = match call.await {
            Ok(answer) => answer,
            Err(error) => {
                let status = Status::from(error);
                admitted.event.outcome = code_name(status.code());
                admitted.event.secret_hmacs.clear();
                self.record(admitted.event, durable).await?;
                return Err(status);
            }
        };
        if let (Record::InStore(commit), Some(sequence)) = (record, answer.appended()) {
            self.audit.committed(commit, sequence).map_err(|error| {
                tracing::error!(%error, "audit log unavailable");
                ServiceError::Unavailable("the audit log is unavailable".into())
            })?;
            return Ok(answer.into_value());
        }
        admitted.event.secret_hmacs.clear();
        answer.describe(&mut admitted, &self.audit);
        admitted.event.outcome = "OK".to_owned();
        self.record(admitted.event, durable).await?;
        Ok(answer.into_value())
    }
}
