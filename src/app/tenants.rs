//! Tenants: create, get, list, delete.

use connvault_store::{StoreError, TenantRecord};

use super::pagination::{decode_simple_token, encode_simple_token, page_size};
use super::{App, check_labels, etag_of};
use crate::clock::timestamp_now;
use crate::error::{ServiceError, Violation};
use crate::names::{parse_tenant, tenant_name, valid_tenant_id};
use crate::pb::v1;
use crate::record_format;

fn decode(record: &TenantRecord) -> Result<v1::Tenant, ServiceError> {
    let mut tenant = record_format::decode_tenant(&record.value).map_err(|_| {
        ServiceError::DataLoss(format!("tenant {} cannot be read", record.tenant_id))
    })?;
    tenant.name = tenant_name(&record.tenant_id);
    tenant.etag = etag_of(&record.value);
    Ok(tenant)
}

impl App {
    /// Creates `tenants/{tenant_id}`.
    pub async fn create_tenant(
        &self,
        tenant_id: String,
        tenant: Option<v1::Tenant>,
    ) -> Result<v1::Tenant, ServiceError> {
        let tenant = tenant.unwrap_or_default();
        let mut violations = Vec::new();
        if !valid_tenant_id(&tenant_id) {
            violations.push(Violation {
                field: "tenant_id".into(),
                description: "must be 1-64 of [A-Za-z0-9_-]".into(),
            });
        }
        if tenant.display_name.chars().count() > 200 {
            violations.push(Violation {
                field: "tenant.display_name".into(),
                description: "must be at most 200 characters".into(),
            });
        }
        check_labels(&tenant.labels, "tenant.labels", &mut violations);
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
        };
        let record = TenantRecord {
            tenant_id: tenant_id.clone(),
            value: record_format::encode_tenant(&stored),
        };
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
        let after = decode_simple_token(page_token, "tenants")?;
        let records = self.store.list_tenants(after.as_deref(), size + 1).await?;
        let more = records.len() > size;
        let tenants = records
            .iter()
            .take(size)
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = match (more, records.get(size.saturating_sub(1))) {
            (true, Some(last)) => encode_simple_token("tenants", &last.tenant_id),
            _ => String::new(),
        };
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
    async fn tenant_record(
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
        tracing::info!(tenant = %tenant_id, connections_removed = removed, "tenant deleted");
        Ok(())
    }
}
