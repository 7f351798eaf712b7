//! Admission at the edge of every RPC: who is calling (the authentication
//! layer's [`Caller`]), whether it may, and the audit event in the making.
//!
//! Order matters: the request's size bounds are checked first
//! (INVALID_ARGUMENT, see `crate::bounds`), so nothing after — a log line, an
//! audit event — ever holds more than a bounded echo of what a caller sent;
//! then the token (UNAUTHENTICATED); then the tenant named by the request is
//! read from the name alone — before any lookup — and checked against the
//! token (PERMISSION_DENIED). So the answer for a tenant the caller may not
//! see is the same whether or not the resource exists. Last, the tenant's
//! request rate (RESOURCE_EXHAUSTED, see `crate::rate_limit`): only for a
//! caller admitted into it, so no one can fill the limiter with tenants it
//! may not enter.
//!
//! Each refusal is audited before it is answered, within the audit log's
//! refusal budget, and filed under the tenant it named only when the caller
//! belongs to that tenant: a stranger's refusal is filed under no tenant,
//! the tenant it named kept as `claimed_tenant`, so no one can write into a
//! tenant's log by naming it.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::Request;

use crate::audit::{AuditLog, CommitEvent, MAX_EVENT_FIELD_BYTES};
use crate::auth::{Principal, Role, UNAUTHENTICATED};
use crate::bounds::{self, Bounded};
use crate::error::ServiceError;
use crate::middleware::Caller;
use crate::names::valid_tenant_id;
use crate::pb::v1;
use crate::rate_limit::{Key, RateLimiter};
use crate::text::clip;

/// Checks callers and records what they did.
pub struct Guard {
    pub(super) audit: Arc<AuditLog>,
    limiter: Option<RateLimiter>,
}

/// An admitted request: who, where, what — the audit event in the making.
#[derive(Debug)]
pub struct Admitted {
    /// The caller.
    pub principal: Arc<Principal>,
    pub(super) event: v1::AuditEvent,
}

impl Admitted {
    /// Records the HMAC of a secret value carried or returned by the request
    /// (under its tenant's key; kept only if the request stores or hands it
    /// out, see `Guard::audited`).
    pub fn note_secret(&mut self, audit: &AuditLog, field: &str, value: &str) {
        if !value.is_empty() {
            let hmac = audit.hmac(&self.event.tenant, value);
            self.event.secret_hmacs.insert(field.to_owned(), hmac);
        }
    }

    /// Records the resource acted on, once known (a created connection's name).
    pub fn set_resource(&mut self, resource: &str) {
        self.event.resource = resource.to_owned();
    }

    /// The RPC's method name (`CreateConnection`).
    pub fn method(&self) -> &str {
        &self.event.method
    }
}

/// The gRPC constant of a status code (`PERMISSION_DENIED`), as audit outcomes carry it.
pub(super) fn code_name(code: tonic::Code) -> String {
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

/// The refusal of a caller that may not call `method` where it asked.
pub fn permission_denied(method: &str) -> ServiceError {
    ServiceError::PermissionDenied(format!("the caller may not call {method} here"))
}

impl Guard {
    /// A guard recording into `audit`.
    pub fn new(audit: Arc<AuditLog>) -> Self {
        Self {
            audit,
            limiter: None,
        }
    }

    /// Limits the request rate of each tenant (`None`: no limit).
    pub fn with_rate_limiter(mut self, limiter: Option<RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Admits a request within its size bounds ([`Bounded`]) from an
    /// authenticated caller (the authentication layer left its [`Caller`] in
    /// the request) that holds one of `roles` and may act in `tenant`.
    /// Refusals are audited and answered without detail.
    pub async fn admit<T: Bounded>(
        &self,
        request: &Request<T>,
        roles: &[Role],
        tenant: Option<&str>,
        resource: &str,
    ) -> Result<Admitted, ServiceError> {
        let caller = request.extensions().get::<Caller>();
        let method = caller.map_or("", |caller| caller.method.as_str());
        // Only a well-formed id is a tenant (CreateTenant's comes unchecked).
        let tenant = tenant.filter(|tenant| valid_tenant_id(tenant));
        let mut event = v1::AuditEvent {
            tenant: tenant.unwrap_or_default().to_owned(),
            resource: clip(resource, MAX_EVENT_FIELD_BYTES).into_owned(),
            method: method.to_owned(),
            request_id: request_id(request),
            ..Default::default()
        };
        let principal = match caller.map(|caller| &caller.identity) {
            Some(Ok(principal)) => Some(Arc::clone(principal)),
            Some(Err(error)) => {
                tracing::debug!(method, %error, "request not authenticated");
                None
            }
            // Fail closed: a service mounted without the layer admits no one.
            None => {
                tracing::error!(method, "request refused: no authentication layer");
                None
            }
        };
        if let Some(principal) = &principal {
            event.principal = clip(&principal.subject, MAX_EVENT_FIELD_BYTES).into_owned();
        }
        if let Err(error) = bounds::check(request.get_ref()) {
            tracing::debug!(method, "request refused: a field is over its size bound");
            self.refuse(event, principal.as_deref(), tonic::Code::InvalidArgument)
                .await?;
            return Err(error);
        }
        let Some(principal) = principal else {
            self.refuse(event, None, tonic::Code::Unauthenticated)
                .await?;
            return Err(ServiceError::Unauthenticated(UNAUTHENTICATED.into()));
        };
        let role_ok = roles.iter().any(|role| principal.has(*role));
        let tenant_ok = tenant.is_none_or(|tenant| principal.may_enter(tenant));
        if !(role_ok && tenant_ok) {
            tracing::info!(method, principal = %event.principal, tenant = tenant.unwrap_or(""), "request refused: permission denied");
            self.refuse(event, Some(&principal), tonic::Code::PermissionDenied)
                .await?;
            return Err(permission_denied(method));
        }
        if let Err(throttled) = self.check_rate(tenant, &principal, method) {
            self.refuse(event, Some(&principal), tonic::Code::ResourceExhausted)
                .await?;
            return Err(throttled);
        }
        Ok(Admitted { principal, event })
    }

    /// Takes a token of the tenant's bucket (the principal's, for a request
    /// naming no tenant).
    fn check_rate(
        &self,
        tenant: Option<&str>,
        principal: &Principal,
        method: &str,
    ) -> Result<(), ServiceError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let (key, subject) = match tenant {
            Some(tenant) => (Key::Tenant(tenant), format!("tenants/{tenant}")),
            None => (
                Key::Principal(&principal.subject),
                format!("principal {}", principal.subject),
            ),
        };
        let Err(throttled) = limiter.check(key, std::time::Instant::now()) else {
            return Ok(());
        };
        if throttled.first {
            tracing::warn!(%subject, method, "request rate limit reached; refusing requests until tokens refill");
        } else {
            tracing::debug!(%subject, method, "request refused: rate limit");
        }
        let retry_after = throttled.retry_after;
        Err(ServiceError::ResourceExhausted {
            message: format!(
                "{subject} sent requests faster than its rate limit; retry in {} ms",
                retry_after.as_millis().max(1)
            ),
            subject,
            retry_after,
        })
    }

    /// Records a refusal with `code`: filed under the event's tenant only
    /// if `principal` belongs to it, and only within the refusal budget.
    async fn refuse(
        &self,
        mut event: v1::AuditEvent,
        principal: Option<&Principal>,
        code: tonic::Code,
    ) -> Result<(), ServiceError> {
        event.outcome = code_name(code);
        let claimed = event.tenant.clone();
        if !principal.is_some_and(|principal| principal.may_enter(&claimed)) {
            event.claimed_tenant = std::mem::take(&mut event.tenant);
        }
        self.audit
            .refused(event, &claimed)
            .await
            .map_err(audit_unavailable)
    }

    /// Records the HMACs of the secrets a request carries.
    pub fn note_secrets(&self, admitted: &mut Admitted, secrets: &HashMap<String, String>) {
        for (name, value) in secrets {
            admitted.note_secret(&self.audit, name, value);
        }
    }

    /// The success event of a mutation of `resource`, to append in the
    /// mutation's own store transaction (see `Record::InStore`).
    pub fn commit_event(&self, admitted: &Admitted, resource: &str) -> CommitEvent {
        let mut event = admitted.event.clone();
        event.outcome = "OK".to_owned();
        event.resource = resource.to_owned();
        self.audit.prepare(event)
    }

    /// Writes an event; if it cannot be written the request fails: nothing
    /// proceeds unaudited.
    pub(super) async fn record(
        &self,
        event: v1::AuditEvent,
        durable: bool,
    ) -> Result<(), ServiceError> {
        self.audit
            .write(event, durable)
            .await
            .map_err(audit_unavailable)
    }
}

/// The answer when an event that is due cannot be written: nothing
/// proceeds unaudited.
fn audit_unavailable(error: ServiceError) -> ServiceError {
    tracing::error!(%error, "audit log unavailable");
    ServiceError::Unavailable("the audit log is unavailable; the request was not completed".into())
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
