//! `connvault.v1.FormLinkService`: the links a partner's backend creates
//! for its end users' hosted connection forms.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::audited::Record;
use super::guard::Guard;
use crate::app::App;
use crate::auth::Role;
use crate::names::tenant_of;
use crate::pb::v1::{self, form_link_service_server::FormLinkService};

/// Serves `FormLinkService`.
pub struct FormLinkApi {
    app: Arc<App>,
    guard: Arc<Guard>,
}

impl FormLinkApi {
    /// Handlers over `app`, admitting and auditing through `guard`.
    pub fn new(app: Arc<App>, guard: Arc<Guard>) -> Self {
        Self { app, guard }
    }
}

#[tonic::async_trait]
impl FormLinkService for FormLinkApi {
    async fn create_form_link(
        &self,
        request: Request<v1::CreateFormLinkRequest>,
    ) -> Result<Response<v1::FormLink>, Status> {
        let parent = request.get_ref().parent.clone();
        // A link lets its holder create or change a connection: a writer's act.
        let admitted = self
            .guard
            .admit(&request, &[Role::Writer], tenant_of(&parent), &parent)
            .await?;
        let call = self.app.create_form_link(request.into_inner());
        Ok(Response::new(
            self.guard.audited(admitted, Record::Started, call).await?,
        ))
    }

    async fn get_form_link(
        &self,
        request: Request<v1::GetFormLinkRequest>,
    ) -> Result<Response<v1::FormLink>, Status> {
        let name = request.get_ref().name.clone();
        self.guard
            .admit(
                &request,
                &[Role::Reader, Role::Writer],
                tenant_of(&name),
                &name,
            )
            .await?;
        Ok(Response::new(self.app.get_form_link(&name).await?))
    }

    async fn revoke_form_link(
        &self,
        request: Request<v1::RevokeFormLinkRequest>,
    ) -> Result<Response<v1::FormLink>, Status> {
        let name = request.get_ref().name.clone();
        let admitted = self
            .guard
            .admit(&request, &[Role::Writer], tenant_of(&name), &name)
            .await?;
        let call = self.app.revoke_form_link(&name);
        Ok(Response::new(
            self.guard.audited(admitted, Record::Started, call).await?,
        ))
    }
}
