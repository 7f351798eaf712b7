//! Authentication, authorization and auditing at the edge of every RPC.
//!
//! Order matters: the token is checked first (UNAUTHENTICATED), then the
//! tenant named by the request is read from the name alone — before any
//! lookup — and checked against the token (PERMISSION_DENIED). So the answer
//! for a tenant the caller may not see is the same whether or not the
//! resource exists.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Request, Status};

use crate::audit::{AuditLog, CommitEvent};
use crate::auth::{AuthError, Principal, Role, UNAUTHENTICATED, Verifier};
use crate::error::ServiceError;
use crate::pb::v1;

/// Checks callers and records what they did.
pub struct Guard {
    verifier: Arc<Verifier>,
    audit: Arc<AuditLog>,
}

/// An admitted request: who, where, what — the audit event in the making.
#[derive(Debug)]
pub struct Admitted {
    /// The caller.
    pub principal: Arc<Principal>,
    event: v1::AuditEvent,
    durable: bool,
}

impl Admitted {
    /// Records the HMAC of a secret value carried or returned by the request.
    pub fn note_secret(&mut self, audit: &AuditLog, field: &str, value: &str) {
        if !value.is_empty() {
            self.event
                .secret_hmacs
                .insert(field.to_owned(), audit.hmac(value));
        }
    }

    /// Makes the outcome event durable before the response leaves (resolve:
    /// secrets are never handed out on an event that could still be lost).
    pub fn require_durable_audit(&mut self) {
        self.durable = true;
    }

    /// Records the resource acted on, once known (a created connection's name).
    pub fn set_resource(&mut self, resource: &str) {
        self.event.resource = resource.to_owned();
    }
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
        .chars()
        .fold(String::new(), |mut name, c| {
            if c.is_uppercase() && !name.is_empty() {
                name.push('_');
            }
            name.push(c.to_ascii_uppercase());
            name
        })
}

fn request_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

impl Guard {
    /// A guard over a verifier and an audit log.
    pub fn new(verifier: Arc<Verifier>, audit: Arc<AuditLog>) -> Self {
        Self { verifier, audit }
    }

    /// The audit log (for secret HMACs).
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Authenticates the caller, then checks it holds one of `roles` and may act
    /// in `tenant`. Refusals are audited and answered without detail.
    pub async fn admit<T>(
        &self,
        request: &Request<T>,
        method: &str,
        roles: &[Role],
        tenant: Option<&str>,
        resource: &str,
    ) -> Result<Admitted, Status> {
        let mut event = v1::AuditEvent {
            tenant: tenant.unwrap_or_default().to_owned(),
            resource: resource.to_owned(),
            method: method.to_owned(),
            request_id: request_id(request),
            ..Default::default()
        };
        let principal = match self.authenticate(request) {
            Ok(principal) => principal,
            Err(error) => {
                tracing::debug!(method, %error, "request refused: not authenticated");
                event.outcome = code_name(tonic::Code::Unauthenticated);
                self.record(event, false).await?;
                return Err(Status::unauthenticated(UNAUTHENTICATED));
            }
        };
        event.principal = principal.subject.clone();
        let role_ok = roles.iter().any(|role| principal.has(*role));
        let tenant_ok = tenant.is_none_or(|tenant| principal.may_enter(tenant));
        if !(role_ok && tenant_ok) {
            tracing::info!(method, principal = %principal.subject, tenant = tenant.unwrap_or(""), "request refused: permission denied");
            event.outcome = code_name(tonic::Code::PermissionDenied);
            self.record(event, false).await?;
            return Err(Status::permission_denied(format!(
                "the caller may not call {method} here"
            )));
        }
        Ok(Admitted {
            principal,
            event,
            durable: false,
        })
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<Arc<Principal>, AuthError> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::Missing)?;
        self.verifier.verify(token.trim())
    }

    async fn record(&self, event: v1::AuditEvent, durable: bool) -> Result<(), Status> {
        self.audit.write(event, durable).await.map_err(|error| {
            tracing::error!(%error, "audit log unavailable");
            Status::unavailable("the audit log is unavailable; the request was not completed")
        })
    }

    /// Writes a `STARTED` event before a mutation runs, so a change can never
    /// happen unaudited: if this write fails, nothing is changed.
    pub async fn begin(&self, admitted: &Admitted) -> Result<(), Status> {
        let mut event = admitted.event.clone();
        event.outcome = "STARTED".to_owned();
        // Buffered: the mutation's own durable write carries it to disk first.
        self.record(event, false).await
    }

    /// The success event of a mutation of `resource`, to append in the
    /// mutation's own store transaction. A mutation audited this way needs no
    /// `STARTED` event: it cannot commit without its record.
    pub fn commit_event(&self, admitted: &Admitted, resource: &str) -> CommitEvent {
        let mut event = admitted.event.clone();
        event.outcome = "OK".to_owned();
        event.resource = resource.to_owned();
        self.audit.prepare(event)
    }

    /// Finishes a mutation that carried `commit`: if the store appended it
    /// (a sequence number came back) the record is complete; otherwise (a
    /// failure, or nothing written) the outcome is audited as [`Guard::finish`] does.
    pub async fn finish_committed<R>(
        &self,
        admitted: Admitted,
        commit: CommitEvent,
        result: Result<(R, Option<u64>), ServiceError>,
    ) -> Result<R, Status> {
        match result {
            Ok((value, Some(sequence))) => {
                self.audit.committed(commit, sequence).map_err(|error| {
                    tracing::error!(%error, "audit log unavailable");
                    Status::unavailable("the audit log is unavailable")
                })?;
                Ok(value)
            }
            Ok((value, None)) => self.finish(admitted, Ok(value)).await,
            Err(error) => self.finish(admitted, Err(error)).await,
        }
    }

    /// Audits the outcome of an admitted request, then returns its result.
    /// If the event cannot be written the request fails: nothing proceeds unaudited.
    pub async fn finish<R>(
        &self,
        mut admitted: Admitted,
        result: Result<R, ServiceError>,
    ) -> Result<R, Status> {
        let result = result.map_err(Status::from);
        admitted.event.outcome = match &result {
            Ok(_) => "OK".to_owned(),
            Err(status) => code_name(status.code()),
        };
        self.record(admitted.event, admitted.durable).await?;
        result
    }
}

/// HMACs of the secrets of a request's map.
pub fn note_secrets(admitted: &mut Admitted, audit: &AuditLog, secrets: &HashMap<String, String>) {
    for (name, value) in secrets {
        admitted.note_secret(audit, name, value);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn code_names_are_grpc_constants() {
        assert_eq!(
            super::code_name(tonic::Code::PermissionDenied),
            "PERMISSION_DENIED"
        );
        assert_eq!(super::code_name(tonic::Code::Ok), "OK");
        assert_eq!(super::code_name(tonic::Code::NotFound), "NOT_FOUND");
    }
}
