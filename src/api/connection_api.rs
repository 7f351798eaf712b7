//! `connvault.v1.ConnectionService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::audited::Record;
use super::guard::Guard;
use crate::app::App;
use crate::auth::Role;
use crate::names::{connection_name, tenant_of};
use crate::pb::v1::{self, connection_service_server::ConnectionService};

/// Serves `ConnectionService`.
pub struct ConnectionApi {
    app: Arc<App>,
    guard: Arc<Guard>,
}

impl ConnectionApi {
    /// Handlers over `app`, admitting and auditing through `guard`.
    pub fn new(app: Arc<App>, guard: Arc<Guard>) -> Self {
        Self { app, guard }
    }
}

#[tonic::async_trait]
impl ConnectionService for ConnectionApi {
    async fn create_connection(
        &self,
        request: Request<v1::CreateConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        let parent = request.get_ref().parent.clone();
        let mut admitted = self
            .guard
            .admit(&request, &[Role::Writer], tenant_of(&parent), &parent)
            .await?;
        let request = request.into_inner();
        if let Some(connection) = &request.connection {
            self.guard.note_secrets(&mut admitted, &connection.secrets);
        }
        // The success event commits with the connection; its name is known
        // up front because the id is chosen here.
        let id = uuid::Uuid::now_v7().to_string();
        let resource =
            tenant_of(&parent).map_or_else(|| parent.clone(), |t| connection_name(t, &id));
        let commit = self.guard.commit_event(&admitted, &resource);
        let call = self.app.create_connection_audited(
            &request.parent,
            request.connection,
            request.validate_only,
            &id,
            Some(commit.append()),
        );
        let created = self
            .guard
            .audited(admitted, Record::InStore(&commit), call)
            .await?;
        Ok(Response::new(created))
    }

    async fn get_connection(
        &self,
        request: Request<v1::GetConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        let name = request.get_ref().name.clone();
        self.guard
            .admit(&request, &[Role::Reader], tenant_of(&name), &name)
            .await?;
        Ok(Response::new(self.app.get_connection(&name).await?))
    }

    async fn list_connections(
        &self,
        request: Request<v1::ListConnectionsRequest>,
    ) -> Result<Response<v1::ListConnectionsResponse>, Status> {
        let parent = request.get_ref().parent.clone();
        self.guard
            .admit(&request, &[Role::Reader], tenant_of(&parent), &parent)
            .await?;
        Ok(Response::new(
            self.app.list_connections(request.into_inner()).await?,
        ))
    }

    async fn update_connection(
        &self,
        request: Request<v1::UpdateConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        let name = request
            .get_ref()
            .connection
            .as_ref()
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let mut admitted = self
            .guard
            .admit(&request, &[Role::Writer], tenant_of(&name), &name)
            .await?;
        let request = request.into_inner();
        if let Some(connection) = &request.connection {
            self.guard.note_secrets(&mut admitted, &connection.secrets);
        }
        let commit = self.guard.commit_event(&admitted, &name);
        let call = self
            .app
            .update_connection_audited(request, Some(commit.append()));
        let updated = self
            .guard
            .audited(admitted, Record::InStore(&commit), call)
            .await?;
        Ok(Response::new(updated))
    }

    async fn delete_connection(
        &self,
        request: Request<v1::DeleteConnectionRequest>,
    ) -> Result<Response<()>, Status> {
        let name = request.get_ref().name.clone();
        let admitted = self
            .guard
            .admit(&request, &[Role::Writer], tenant_of(&name), &name)
            .await?;
        let request = request.into_inner();
        let commit = self.guard.commit_event(&admitted, &name);
        let call =
            self.app
                .delete_connection_audited(&request.name, &request.etag, Some(commit.append()));
        self.guard
            .audited(admitted, Record::InStore(&commit), call)
            .await?;
        Ok(Response::new(()))
    }

    async fn batch_delete_connections(
        &self,
        request: Request<v1::BatchDeleteConnectionsRequest>,
    ) -> Result<Response<()>, Status> {
        let parent = request.get_ref().parent.clone();
        let admitted = self
            .guard
            .admit(&request, &[Role::Writer], tenant_of(&parent), &parent)
            .await?;
        let request = request.into_inner();
        let call = self
            .app
            .batch_delete_connections(&request.parent, &request.names);
        self.guard.audited(admitted, Record::Started, call).await?;
        Ok(Response::new(()))
    }

    async fn test_connection(
        &self,
        request: Request<v1::TestConnectionRequest>,
    ) -> Result<Response<v1::TestConnectionResponse>, Status> {
        let target = match &request.get_ref().target {
            Some(v1::test_connection_request::Target::Name(name)) => name.clone(),
            _ => request.get_ref().parent.clone(),
        };
        let admitted = self
            .guard
            .admit(&request, &[Role::Writer], tenant_of(&target), &target)
            .await?;
        let call = self.app.test_connection(request.into_inner());
        Ok(Response::new(
            self.guard.audited(admitted, Record::Outcome, call).await?,
        ))
    }

    async fn discover_metadata(
        &self,
        request: Request<v1::DiscoverMetadataRequest>,
    ) -> Result<Response<v1::DiscoverMetadataResponse>, Status> {
        let name = request.get_ref().name.clone();
        let admitted = self
            .guard
            .admit(&request, &[Role::Writer], tenant_of(&name), &name)
            .await?;
        let call = self.app.discover_metadata(request.into_inner());
        Ok(Response::new(
            self.guard.audited(admitted, Record::Outcome, call).await?,
        ))
    }

    async fn clear_metadata_cache(
        &self,
        request: Request<v1::ClearMetadataCacheRequest>,
    ) -> Result<Response<v1::ClearMetadataCacheResponse>, Status> {
        let target = match &request.get_ref().target {
            Some(v1::clear_metadata_cache_request::Target::Name(name)) => name.clone(),
            Some(v1::clear_metadata_cache_request::Target::Parent(parent)) => parent.clone(),
            None => String::new(),
        };
        let admitted = self
            .guard
            .admit(&request, &[Role::Writer], tenant_of(&target), &target)
            .await?;
        let call = async {
            let cleared_entries = self.app.clear_metadata_cache(request.into_inner()).await?;
            Ok(v1::ClearMetadataCacheResponse { cleared_entries })
        };
        Ok(Response::new(
            self.guard.audited(admitted, Record::Outcome, call).await?,
        ))
    }

    async fn resolve_connection(
        &self,
        request: Request<v1::ResolveConnectionRequest>,
    ) -> Result<Response<v1::ResolveConnectionResponse>, Status> {
        let name = request.get_ref().name.clone();
        let admitted = self
            .guard
            .admit(&request, &[Role::Resolver], tenant_of(&name), &name)
            .await?;
        // The event, with the HMACs of the secrets handed out, is on disk
        // before they leave: if it cannot be written, they don't.
        let call = self.app.resolve_connection(&name);
        Ok(Response::new(
            self.guard
                .audited(admitted, Record::DurableOutcome, call)
                .await?,
        ))
    }
}
