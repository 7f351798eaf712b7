//! `connvault.v1.AuditService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::guard::{Guard, permission_denied};
use crate::app::{AuditFilter, list_audit_events};
use crate::audit::AuditLog;
use crate::auth::{Role, TenantScope};
use crate::error::ServiceError;
use crate::names::parse_tenant;
use crate::pb::v1::{self, audit_service_server::AuditService};

/// Serves `AuditService`.
pub struct AuditApi {
    audit: Arc<AuditLog>,
    guard: Arc<Guard>,
}

impl AuditApi {
    /// Handlers reading `audit`, admitting through `guard`.
    pub fn new(audit: Arc<AuditLog>, guard: Arc<Guard>) -> Self {
        Self { audit, guard }
    }
}

fn parse_filter(filter: &str) -> Result<(Option<String>, Option<String>), ServiceError> {
    let (mut method, mut outcome) = (None, None);
    for clause in filter
        .split(" AND ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        match clause.split_once('=') {
            Some(("method", value)) => method = Some(value.trim().to_owned()),
            Some(("outcome", value)) => outcome = Some(value.trim().to_owned()),
            _ => {
                return Err(ServiceError::invalid(
                    "filter",
                    "must be method=<Method> and/or outcome=<CODE>, joined by AND",
                ));
            }
        }
    }
    Ok((method, outcome))
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Result<Response<v1::ListAuditEventsResponse>, Status> {
        let parent = request.get_ref().parent.clone();
        let tenant = match parent.as_str() {
            "tenants/-" => None,
            other => Some(parse_tenant(other, "parent")?),
        };
        let admitted = self
            .guard
            .admit(&request, &[Role::Admin], tenant.as_deref(), &parent)
            .await?;
        // Every tenant's events at once are for operators only (not audited:
        // the caller was admitted, only this scope is refused).
        if tenant.is_none() && admitted.principal.tenants != TenantScope::All {
            return Err(permission_denied(admitted.method()).into());
        }
        let request = request.into_inner();
        let (method, outcome) = parse_filter(&request.filter)?;
        let filter = AuditFilter { method, outcome };
        Ok(Response::new(
            list_audit_events(&self.audit, tenant, &filter, &request).await?,
        ))
    }
}
