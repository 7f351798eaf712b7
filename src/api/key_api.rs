//! `connvault.v1.KeyService`: data-key rotation, key status, master-key
//! rewrap. For operators: an admin of every tenant.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::audited::Record;
use super::guard::{Guard, permission_denied};
use crate::app::App;
use crate::auth::{Role, TenantScope};
use crate::bounds::Bounded;
use crate::pb::v1::{self, key_service_server::KeyService};

/// The resource key calls are audited under.
const RESOURCE: &str = "keys";

/// Serves `KeyService`.
pub struct KeyApi {
    app: Arc<App>,
    guard: Arc<Guard>,
}

impl KeyApi {
    /// Handlers over `app`, admitting and auditing through `guard`.
    pub fn new(app: Arc<App>, guard: Arc<Guard>) -> Self {
        Self { app, guard }
    }

    async fn admit_operator<T: Bounded>(
        &self,
        request: &Request<T>,
    ) -> Result<super::guard::Admitted, Status> {
        let admitted = self
            .guard
            .admit(request, &[Role::Admin], None, RESOURCE)
            .await?;
        if admitted.principal.tenants != TenantScope::All {
            return Err(permission_denied(admitted.method()).into());
        }
        Ok(admitted)
    }
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn rotate_data_key(
        &self,
        request: Request<v1::RotateDataKeyRequest>,
    ) -> Result<Response<v1::KeyStatus>, Status> {
        let admitted = self.admit_operator(&request).await?;
        let call = async {
            self.app.rotate_data_key().await?;
            self.app.key_status().await
        };
        Ok(Response::new(
            self.guard.audited(admitted, Record::Started, call).await?,
        ))
    }

    async fn get_key_status(
        &self,
        request: Request<v1::GetKeyStatusRequest>,
    ) -> Result<Response<v1::KeyStatus>, Status> {
        self.admit_operator(&request).await?;
        Ok(Response::new(self.app.key_status().await?))
    }

    async fn rewrap_master_key(
        &self,
        request: Request<v1::RewrapMasterKeyRequest>,
    ) -> Result<Response<v1::RewrapMasterKeyResponse>, Status> {
        let admitted = self.admit_operator(&request).await?;
        let request = request.into_inner();
        let call = self
            .app
            .rewrap_master_key(request.current_master_key, request.new_master_key);
        Ok(Response::new(
            self.guard.audited(admitted, Record::Started, call).await?,
        ))
    }
}
