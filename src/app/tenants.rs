//! Tenants: create, get, list, delete.

use std::collections::BTreeSet;

use connvault_store::{StoreError, TenantRecord};

use super::egress::check_tenant_rules;
use super::pagination::{decode_page_token, encode_page_token, page_size};
use super::{App, check_labels, etag_of};
use crate::bounds::MAX_TENANT_DISPLAY_NAME_CHARS;
use crate::clock::timestamp_now;
use crate::error::{ServiceError, Violation};
use crate::names::{parse_tenant, reserved_tenant_id, tenant_name, valid_tenant_id};
use crate::pb::v1;
use crate::record_format;

pub(super) fn decode(record: &TenantRecord) -> Result<v1::Tenant, ServiceError> {
    let mut tenant = record_format::decode_tenant(&record.value).map_err(|_| {
        ServiceError::DataLoss(format!("tenant {} cannot be read", record.tenant_id))
    })?;
    tenant.name = tenant_name(&record.tenant_id);
    tenant.etag = etag_of(&record.value);
    Ok(tenant)
}

/// Whether a policy has any rule (an empty one and none are the same).
pub(super) fn has_rules(egress: Option<&v1::EgressPolicy>) -> bool {
    egress.is_some_and(|egress| !egress.allow.is_empty() || !egress.deny.is_empty())
}

/// PERMISSION_DENIED unless the caller may set a tenant's egress rules:
/// they open destinations the server denies by default, so only an admin
/// of every tenant (the operator) may set them.
pub(super) fn may_set_egress(allowed: bool) -> Result<(), ServiceError> {
    if allowed {
        Ok(())
    } else {
        Err(ServiceError::PermissionDenied(
            "only an admin of every tenant may set a tenant's egress policy".into(),
        ))
    }
}

impl App {
    /// Creates `tenants/{tenant_id}` on behalf of the server itself (its
    /// development tenant, benchmarks): any egress policy is accepted.
    pub async fn create_tenant(
        &self,
        tenant_id: String,
        tenant: Option<v1::Tenant>,
    ) -> Result<v1::Tenant, ServiceError> {
        self.create_tenant_as(tenant_id, tenant, true).await
    }

    /// Creates `tenants/{tenant_id}` for a caller that may set egress
    /// rules only if `egress_admin` (an admin of every tenant).
    pub async fn create_tenant_as(
        &self,
        tenant_id: String,
        tenant: Option<v1::Tenant>,
        egress_admin: bool,
    ) -> Result<v1::Tenant, ServiceError> {
        let tenant = tenant.unwrap_or_default();
        if has_rules(tenant.egress.as_ref()) {
            may_set_egress(egress_admin)?;
        }
        let mut violations = Vec::new();
        if !valid_tenant_id(&tenant_id) {
            violations.push(Violation {
                field: "tenant_id".into(),
                description: "must be 1-64 of [A-Za-z0-9_-]".into(),
            });
        } else if reserved_tenant_id(&tenant_id) {
            violations.push(Violation {
                field: "tenant_id".into(),
                description: format!(
                    "`{tenant_id}` is reserved (the audit log's id for events without a tenant)"
                ),
            });
        }
        if tenant.display_name.chars().count() > MAX_TENANT_DISPLAY_NAME_CHARS {
            violations.push(Violation {
                field: "tenant.display_name".into(),
                description: format!("must be at most {MAX_TENANT_DISPLAY_NAME_CHARS} characters"),
            });
        }
        check_labels(&tenant.labels, "tenant.labels", &mut violations);
        if let Some(egress) = &tenant.egress {
            check_tenant_rules(egress, "tenant.egress", &mut violations);
        }
        if let Some(forms) = &tenant.forms {
            super::forms::check_settings(forms, "tenant.forms", &mut violations);
        }
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let time = timestamp_now();
        let stored = v1::Tenant {
            name: String::new(),
            display_name: tenant.display_name,
            labels: tenant.labels,
            create_time: Some(time),
            update_time: Some(time),
            etag: String::new(),
            egress: tenant.egress,
            forms: tenant.forms,
        };
        let record = TenantRecord {
            tenant_id: tenant_id.clone(),
            value: record_format::encode_tenant(&stored),
        };
        // The tenant's own data key is durable before the tenant exists (a
        // crash between leaves a key the next start destroys).
        let mut change = self.keys.change().await;
        // A tenant that exists keeps its keys: one of an older version has
        // none, and its records stay under the global key until a rotation.
        match self.store.get_tenant(&tenant_id).await {
            Err(StoreError::TenantNotFound) => {}
            Ok(_) => {
                return Err(ServiceError::AlreadyExists(format!(
                    "tenants/{tenant_id} already exists"
                )));
            }
            Err(error) => return Err(error.into()),
        }
        if let Err(error) = change.add_tenant_key(&tenant_id).await {
            tracing::error!(tenant = %tenant_id, %error, "could not make the tenant's data key");
            return Err(ServiceError::Internal(
                "the tenant's data key could not be made".into(),
            ));
        }
        self.store
            .create_tenant(&record)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| match error.store_error() {
                Some(StoreError::AlreadyExists) => {
                    ServiceError::AlreadyExists(format!("tenants/{tenant_id} already exists"))
                }
                _ => error,
            })?;
        tracing::info!(tenant = %record.tenant_id, "tenant created");
        decode(&record)
    }

    /// Gets a tenant.
    pub async fn get_tenant(&self, name: &str) -> Result<v1::Tenant, ServiceError> {
        let tenant_id = parse_tenant(name, "name")?;
        decode(&self.tenant_record(&tenant_id, name).await?)
    }

    /// Lists tenants in id order.
    pub async fn list_tenants(
        &self,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<v1::ListTenantsResponse, ServiceError> {
        let size = page_size(page_size_requested)?;
        let after = decode_page_token(&self.keyring(), page_token, "tenants")?;
        let records = self.store.list_tenants(after.as_deref(), size + 1).await?;
        let more = records.len() > size;
        let tenants = records
            .iter()
            .take(size)
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = match (more, records.get(size.saturating_sub(1))) {
            (true, Some(last)) => encode_page_token(&self.keyring(), "tenants", &last.tenant_id)?,
            _ => String::new(),
        };
        Ok(v1::ListTenantsResponse {
            tenants,
            next_page_token,
        })
    }

    /// Lists, in id order, the tenants among `ids` that exist: what a
    /// tenant-scoped admin may list. Only these are read, so no page is empty
    /// for want of visible tenants and no token points at a tenant outside
    /// `ids`; the token is bound to the set.
    pub async fn list_tenants_among(
        &self,
        ids: &BTreeSet<String>,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<v1::ListTenantsResponse, ServiceError> {
        let size = page_size(page_size_requested)?;
        let query = format!(
            "tenants|among|{}",
            ids.iter().map(String::as_str).collect::<Vec<_>>().join(",")
        );
        let after = decode_page_token(&self.keyring(), page_token, &query)?;
        let mut tenants = Vec::new();
        let mut next_page_token = String::new();
        let mut last: Option<&str> = None;
        let remaining = ids
            .iter()
            .filter(|id| after.as_deref().is_none_or(|after| id.as_str() > after));
        for id in remaining {
            let record = match self.store.get_tenant(id).await {
                Ok(record) => record,
                Err(StoreError::TenantNotFound | StoreError::NotFound) => continue,
                Err(error) => return Err(error.into()),
            };
            if tenants.len() == size {
                if let Some(last) = last {
                    next_page_token = encode_page_token(&self.keyring(), &query, last)?;
                }
                break;
            }
            tenants.push(decode(&record)?);
            last = Some(id);
        }
        Ok(v1::ListTenantsResponse {
            tenants,
            next_page_token,
        })
    }

    /// NOT_FOUND naming `name` unless tenant `tenant_id` exists: what is
    /// created in or listed from a tenant needs it to exist.
    pub(super) async fn require_tenant(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<(), ServiceError> {
        self.tenant_record(tenant_id, name).await.map(drop)
    }

    /// The stored tenant `tenant_id`; NOT_FOUND names it as `name`.
    pub(super) async fn tenant_record(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<TenantRecord, ServiceError> {
        self.store
            .get_tenant(tenant_id)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| error.naming_missing(name))
    }

    /// Deletes a tenant; with `force`, all its connections in the same durable step.
    pub async fn delete_tenant(&self, name: &str, force: bool) -> Result<(), ServiceError> {
        let tenant_id = parse_tenant(name, "name")?;
        let mut change = self.keys.change().await;
        let removed = self
            .store
            .delete_tenant(&tenant_id, force)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| match error.store_error() {
                Some(StoreError::TenantNotEmpty { connections }) => {
                    ServiceError::FailedPrecondition(format!(
                        "{name} still has {connections} connection(s); delete them or pass force"
                    ))
                }
                _ => error.naming_missing(name),
            })?;
        // Crypto-shred: whatever of the tenant's ciphertext is left in the
        // store's files cannot be opened once its key is gone. A failure
        // here leaves the key to the next start, which destroys it.
        match change.destroy_tenant_keys(&tenant_id).await {
            Ok(true) => tracing::info!(tenant = %tenant_id, "destroyed the tenant's data key"),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(tenant = %tenant_id, %error, "could not destroy the tenant's data key now; the next start destroys it")
            }
        }
        tracing::info!(tenant = %tenant_id, connections_removed = removed, "tenant deleted");
        Ok(())
    }
}
