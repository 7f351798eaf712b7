//! `connvault.v1.TenantService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::audited::Record;
use super::guard::Guard;
use crate::app::App;
use crate::auth::{Role, TenantScope};
use crate::names::{tenant_name, tenant_of};
use crate::pb::v1::{self, tenant_service_server::TenantService};

/// Serves `TenantService`.
pub struct TenantApi {
    app: Arc<App>,
    guard: Arc<Guard>,
}

impl TenantApi {
    /// Handlers over `app`, admitting and auditing through `guard`.
    pub fn new(app: Arc<App>, guard: Arc<Guard>) -> Self {
        Self { app, guard }
    }
}

#[tonic::async_trait]
impl TenantService for TenantApi {
    async fn create_tenant(
        &self,
        request: Request<v1::CreateTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let id = request.get_ref().tenant_id.clone();
        let name = tenant_name(&id);
        let admitted = self
            .guard
            .admit(&request, &[Role::Admin], Some(&id), &name)
            .await?;
        let egress_admin = admitted.principal.tenants == TenantScope::All;
        let request = request.into_inner();
        let call = self
            .app
            .create_tenant_as(request.tenant_id, request.tenant, egress_admin);
        Ok(Response::new(
            self.guard.audited(admitted, Record::Started, call).await?,
        ))
    }

    async fn get_tenant(
        &self,
        request: Request<v1::GetTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let name = request.get_ref().name.clone();
        self.guard
            .admit(
                &request,
                &[Role::Reader, Role::Admin],
                tenant_of(&name),
                &name,
            )
            .await?;
        Ok(Response::new(self.app.get_tenant(&name).await?))
    }

    async fn list_tenants(
        &self,
        request: Request<v1::ListTenantsRequest>,
    ) -> Result<Response<v1::ListTenantsResponse>, Status> {
        let admitted = self
            .guard
            .admit(&request, &[Role::Admin], None, "tenants")
            .await?;
        let request = request.into_inner();
        // A tenant-scoped admin lists only its own tenants: the listing walks
        // them alone, so neither its pages nor its tokens reach any other.
        let page = match &admitted.principal.tenants {
            TenantScope::All => {
                self.app
                    .list_tenants(request.page_size, &request.page_token)
                    .await?
            }
            TenantScope::Only(ids) => {
                self.app
                    .list_tenants_among(ids, request.page_size, &request.page_token)
                    .await?
            }
        };
        Ok(Response::new(page))
    }

    async fn update_tenant(
        &self,
        request: Request<v1::UpdateTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let name = request
            .get_ref()
            .tenant
            .as_ref()
            .map(|tenant| tenant.name.clone())
            .unwrap_or_default();
        let admitted = self
            .guard
            .admit(&request, &[Role::Admin], tenant_of(&name), &name)
            .await?;
        // A tenant's egress rules open what the server denies by default:
        // only an admin of every tenant may change them.
        let egress_admin = admitted.principal.tenants == TenantScope::All;
        let call = self.app.update_tenant(request.into_inner(), egress_admin);
        Ok(Response::new(
            self.guard.audited(admitted, Record::Started, call).await?,
        ))
    }

    async fn delete_tenant(
        &self,
        request: Request<v1::DeleteTenantRequest>,
    ) -> Result<Response<()>, Status> {
        let name = request.get_ref().name.clone();
        let admitted = self
            .guard
            .admit(&request, &[Role::Admin], tenant_of(&name), &name)
            .await?;
        let request = request.into_inner();
        let call = self.app.delete_tenant(&request.name, request.force);
        self.guard.audited(admitted, Record::Started, call).await?;
        Ok(Response::new(()))
    }
}
