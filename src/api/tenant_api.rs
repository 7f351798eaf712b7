//! `connvault.v1.TenantService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::app::App;
use crate::pb::v1::{self, tenant_service_server::TenantService};

/// Serves `TenantService`.
pub struct TenantApi(pub Arc<App>);

#[tonic::async_trait]
impl TenantService for TenantApi {
    async fn create_tenant(
        &self,
        request: Request<v1::CreateTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let request = request.into_inner();
        Ok(Response::new(
            self.0
                .create_tenant(request.tenant_id, request.tenant)
                .await?,
        ))
    }

    async fn get_tenant(
        &self,
        request: Request<v1::GetTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        Ok(Response::new(
            self.0.get_tenant(&request.into_inner().name).await?,
        ))
    }

    async fn list_tenants(
        &self,
        request: Request<v1::ListTenantsRequest>,
    ) -> Result<Response<v1::ListTenantsResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(
            self.0
                .list_tenants(request.page_size, &request.page_token)
                .await?,
        ))
    }

    async fn delete_tenant(
        &self,
        request: Request<v1::DeleteTenantRequest>,
    ) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        self.0.delete_tenant(&request.name, request.force).await?;
        Ok(Response::new(()))
    }
}
