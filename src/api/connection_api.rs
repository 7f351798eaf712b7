//! `connvault.v1.ConnectionService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::Guard;
use super::guard::note_secrets;
use crate::app::App;
use crate::auth::Role;
use crate::names::{connection_name, tenant_of};
use crate::pb::v1::{self, connection_service_server::ConnectionService};

/// Serves `ConnectionService`.
pub struct ConnectionApi(pub Arc<App>, pub Arc<Guard>);

#[tonic::async_trait]
impl ConnectionService for ConnectionApi {
    async fn create_connection(
        &self,
        request: Request<v1::CreateConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        let parent = request.get_ref().parent.clone();
        let mut admitted = self
            .1
            .admit(
                &request,
                "CreateConnection",
                &[Role::Writer],
                tenant_of(&parent),
                &parent,
            )
            .await?;
        let request = request.into_inner();
        if let Some(connection) = &request.connection {
            note_secrets(&mut admitted, self.1.audit(), &connection.secrets);
        }
        // The success event commits with the connection; its name is known
        // up front because the id is chosen here.
        let id = uuid::Uuid::now_v7().to_string();
        let resource =
            tenant_of(&parent).map_or_else(|| parent.clone(), |t| connection_name(t, &id));
        let commit = self.1.commit_event(&admitted, &resource);
        let result = self
            .0
            .create_connection_audited(
                &request.parent,
                request.connection,
                request.validate_only,
                &id,
                Some(commit.append()),
            )
            .await;
        if let Ok((created, _)) = &result {
            admitted.set_resource(&created.name);
        }
        Ok(Response::new(
            self.1.finish_committed(admitted, commit, result).await?,
        ))
    }

    async fn get_connection(
        &self,
        request: Request<v1::GetConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        let name = request.get_ref().name.clone();
        self.1
            .admit(
                &request,
                "GetConnection",
                &[Role::Reader],
                tenant_of(&name),
                &name,
            )
            .await?;
        Ok(Response::new(self.0.get_connection(&name).await?))
    }

    async fn list_connections(
        &self,
        request: Request<v1::ListConnectionsRequest>,
    ) -> Result<Response<v1::ListConnectionsResponse>, Status> {
        let parent = request.get_ref().parent.clone();
        self.1
            .admit(
                &request,
                "ListConnections",
                &[Role::Reader],
                tenant_of(&parent),
                &parent,
            )
            .await?;
        Ok(Response::new(
            self.0.list_connections(request.into_inner()).await?,
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
            .1
            .admit(
                &request,
                "UpdateConnection",
                &[Role::Writer],
                tenant_of(&name),
                &name,
            )
            .await?;
        let request = request.into_inner();
        if let Some(connection) = &request.connection {
            note_secrets(&mut admitted, self.1.audit(), &connection.secrets);
        }
        let commit = self.1.commit_event(&admitted, &name);
        let result = self
            .0
            .update_connection_audited(request, Some(commit.append()))
            .await;
        Ok(Response::new(
            self.1.finish_committed(admitted, commit, result).await?,
        ))
    }

    async fn delete_connection(
        &self,
        request: Request<v1::DeleteConnectionRequest>,
    ) -> Result<Response<()>, Status> {
        let name = request.get_ref().name.clone();
        let admitted = self
            .1
            .admit(
                &request,
                "DeleteConnection",
                &[Role::Writer],
                tenant_of(&name),
                &name,
            )
            .await?;
        let request = request.into_inner();
        let commit = self.1.commit_event(&admitted, &name);
        let result = self
            .0
            .delete_connection_audited(&request.name, &request.etag, Some(commit.append()))
            .await
            .map(|sequence| ((), sequence));
        self.1.finish_committed(admitted, commit, result).await?;
        Ok(Response::new(()))
    }

    async fn batch_delete_connections(
        &self,
        request: Request<v1::BatchDeleteConnectionsRequest>,
    ) -> Result<Response<()>, Status> {
        let parent = request.get_ref().parent.clone();
        let admitted = self
            .1
            .admit(
                &request,
                "BatchDeleteConnections",
                &[Role::Writer],
                tenant_of(&parent),
                &parent,
            )
            .await?;
        let request = request.into_inner();
        self.1.begin(&admitted).await?;
        let result = self
            .0
            .batch_delete_connections(&request.parent, &request.names)
            .await;
        self.1.finish(admitted, result).await?;
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
            .1
            .admit(
                &request,
                "TestConnection",
                &[Role::Writer],
                tenant_of(&target),
                &target,
            )
            .await?;
        let result = self.0.test_connection(request.into_inner()).await;
        Ok(Response::new(self.1.finish(admitted, result).await?))
    }

    async fn discover_metadata(
        &self,
        request: Request<v1::DiscoverMetadataRequest>,
    ) -> Result<Response<v1::DiscoverMetadataResponse>, Status> {
        let name = request.get_ref().name.clone();
        let admitted = self
            .1
            .admit(
                &request,
                "DiscoverMetadata",
                &[Role::Writer],
                tenant_of(&name),
                &name,
            )
            .await?;
        let result = self.0.discover_metadata(request.into_inner()).await;
        Ok(Response::new(self.1.finish(admitted, result).await?))
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
            .1
            .admit(
                &request,
                "ClearMetadataCache",
                &[Role::Writer],
                tenant_of(&target),
                &target,
            )
            .await?;
        let result = self
            .0
            .clear_metadata_cache(request.into_inner())
            .await
            .map(|cleared_entries| v1::ClearMetadataCacheResponse { cleared_entries });
        Ok(Response::new(self.1.finish(admitted, result).await?))
    }

    async fn resolve_connection(
        &self,
        request: Request<v1::ResolveConnectionRequest>,
    ) -> Result<Response<v1::ResolveConnectionResponse>, Status> {
        let name = request.get_ref().name.clone();
        let mut admitted = self
            .1
            .admit(
                &request,
                "ResolveConnection",
                &[Role::Resolver],
                tenant_of(&name),
                &name,
            )
            .await?;
        admitted.require_durable_audit();
        let result = self.0.resolve_connection(&name).await;
        if let Ok(resolved) = &result {
            note_secrets(&mut admitted, self.1.audit(), &resolved.secrets);
            admitted.note_secret(
                self.1.audit(),
                "tls.client_key_pem",
                &resolved.tls_client_key_pem,
            );
        }
        // The event is written before the secrets leave: if it cannot be, they don't.
        Ok(Response::new(self.1.finish(admitted, result).await?))
    }
}
