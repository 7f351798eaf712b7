//! `connvault.v1.PluginService`: operators only (admins of every tenant).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::audited::Record;
use super::guard::{Admitted, Guard, permission_denied};
use crate::app::App;
use crate::auth::{Role, TenantScope};
use crate::bounds::Bounded;
use crate::pb::v1::{self, plugin_service_server::PluginService};

/// Serves `PluginService`.
pub struct PluginApi {
    app: Arc<App>,
    guard: Arc<Guard>,
}

impl PluginApi {
    /// Handlers over `app`, admitting and auditing through `guard`.
    pub fn new(app: Arc<App>, guard: Arc<Guard>) -> Self {
        Self { app, guard }
    }

    /// Admits an admin of every tenant: plugins serve all of them.
    async fn admit_operator<T: Bounded>(&self, request: &Request<T>) -> Result<Admitted, Status> {
        let admitted = self
            .guard
            .admit(request, &[Role::Admin], None, "plugins")
            .await?;
        if admitted.principal.tenants != TenantScope::All {
            return Err(permission_denied(admitted.method()).into());
        }
        Ok(admitted)
    }
}

#[tonic::async_trait]
impl PluginService for PluginApi {
    async fn list_plugins(
        &self,
        request: Request<v1::ListPluginsRequest>,
    ) -> Result<Response<v1::ListPluginsResponse>, Status> {
        self.admit_operator(&request).await?;
        Ok(Response::new(self.app.list_plugins()))
    }

    async fn reload_plugins(
        &self,
        request: Request<v1::ReloadPluginsRequest>,
    ) -> Result<Response<v1::ReloadPluginsResponse>, Status> {
        let admitted = self.admit_operator(&request).await?;
        let call = self.app.reload_plugins();
        Ok(Response::new(
            self.guard.audited(admitted, Record::Outcome, call).await?,
        ))
    }
}
