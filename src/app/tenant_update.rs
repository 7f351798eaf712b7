//! Changing a tenant: its display name, labels, egress rules and form settings, by field
//! mask, under an etag or retried against concurrent writes like a
//! connection update.

use connvault_store::TenantRecord;

use super::egress::check_tenant_rules;
use super::tenants::{decode, has_rules, may_set_egress};
use super::{App, check_labels, etag_of};
use crate::clock::timestamp_now;
use crate::error::{ServiceError, Violation};
use crate::names::parse_tenant;
use crate::pb::v1;
use crate::record_format;

/// How often an update without an etag is tried before it gives up ABORTED.
const UPDATE_ATTEMPTS: usize = 8;

/// The fields an update mask may name.
const UPDATABLE: &[&str] = &["display_name", "labels", "egress", "forms"];

/// The mask's paths, or every violation of the request.
fn check_request(request: &v1::UpdateTenantRequest) -> Result<Vec<String>, ServiceError> {
    let patch = request.tenant.clone().unwrap_or_default();
    let paths = request
        .update_mask
        .clone()
        .map(|mask| mask.paths)
        .unwrap_or_default();
    let mut violations = Vec::new();
    if paths.is_empty() {
        violations.push(Violation {
            field: "update_mask".into(),
            description: "is required: name the fields to change".into(),
        });
    }
    for path in &paths {
        match path.as_str() {
            "display_name" if patch.display_name.chars().count() > 200 => {
                violations.push(Violation {
                    field: "tenant.display_name".into(),
                    description: "must be at most 200 characters".into(),
                });
            }
            "labels" => check_labels(&patch.labels, "tenant.labels", &mut violations),
            "egress" => {
                if let Some(egress) = &patch.egress {
                    check_tenant_rules(egress, "tenant.egress", &mut violations);
                }
            }
            "forms" => {
                if let Some(forms) = &patch.forms {
                    super::forms::check_settings(forms, "tenant.forms", &mut violations);
                }
            }
            path if UPDATABLE.contains(&path) => {}
            other => violations.push(Violation {
                field: "update_mask".into(),
                description: format!(
                    "`{other}` cannot be updated (updatable: {})",
                    UPDATABLE.join(", ")
                ),
            }),
        }
    }
    if violations.is_empty() {
        Ok(paths)
    } else {
        Err(ServiceError::InvalidArgument(violations))
    }
}

impl App {
    /// Updates the fields `request.update_mask` names. Changing the egress
    /// rules needs `egress_admin` (an admin of every tenant); sending the
    /// rules the tenant already has is no change.
    pub async fn update_tenant(
        &self,
        request: v1::UpdateTenantRequest,
        egress_admin: bool,
    ) -> Result<v1::Tenant, ServiceError> {
        let paths = check_request(&request)?;
        let mut attempt = 1;
        loop {
            match self
                .update_tenant_once(&request, &paths, egress_admin)
                .await
            {
                // Without an etag, ABORTED can only come from the lost compare-and-swap.
                Err(ServiceError::Aborted(_))
                    if request.etag.is_empty() && attempt < UPDATE_ATTEMPTS =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn update_tenant_once(
        &self,
        request: &v1::UpdateTenantRequest,
        paths: &[String],
        egress_admin: bool,
    ) -> Result<v1::Tenant, ServiceError> {
        let patch = request.tenant.clone().unwrap_or_default();
        let tenant_id = parse_tenant(&patch.name, "tenant.name")?;
        let record = self.tenant_record(&tenant_id, &patch.name).await?;
        if !request.etag.is_empty() && request.etag != etag_of(&record.value) {
            return Err(ServiceError::Aborted(
                "etag does not match: the tenant changed since it was read".into(),
            ));
        }
        let old = decode(&record)?;
        let mut next = old.clone();
        for path in paths {
            match path.as_str() {
                "display_name" => next.display_name = patch.display_name.clone(),
                "labels" => next.labels = patch.labels.clone(),
                "egress" => next.egress = patch.egress.clone(),
                "forms" => next.forms = patch.forms.clone(),
                _ => {}
            }
        }
        let rules =
            |tenant: &v1::Tenant| has_rules(tenant.egress.as_ref()).then(|| tenant.egress.clone());
        if rules(&old) != rules(&next) {
            may_set_egress(egress_admin)?;
        }
        next.update_time = Some(timestamp_now());
        let updated = TenantRecord {
            tenant_id: tenant_id.clone(),
            value: record_format::encode_tenant(&next),
        };
        self.store
            .update_tenant(&updated, &record.value)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| error.naming_missing(&patch.name))?;
        tracing::info!(tenant = %tenant_id, fields = ?paths, "tenant updated");
        decode(&updated)
    }
}
