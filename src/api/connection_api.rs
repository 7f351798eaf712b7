//! `connvault.v1.ConnectionService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::app::App;
use crate::pb::v1::{self, connection_service_server::ConnectionService};

/// Serves `ConnectionService`.
pub struct ConnectionApi(pub Arc<App>);

#[tonic::async_trait]
impl ConnectionService for ConnectionApi {
    async fn create_connection(
        &self,
        request: Request<v1::CreateConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        let request = request.into_inner();
        let created = self
            .0
            .create_connection(&request.parent, request.connection, request.validate_only)
            .await?;
        Ok(Response::new(created))
    }

    async fn get_connection(
        &self,
        request: Request<v1::GetConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        Ok(Response::new(
            self.0.get_connection(&request.into_inner().name).await?,
        ))
    }

    async fn list_connections(
        &self,
        request: Request<v1::ListConnectionsRequest>,
    ) -> Result<Response<v1::ListConnectionsResponse>, Status> {
        Ok(Response::new(
            self.0.list_connections(request.into_inner()).await?,
        ))
    }

    async fn update_connection(
        &self,
        request: Request<v1::UpdateConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        Ok(Response::new(
            self.0.update_connection(request.into_inner()).await?,
        ))
    }

    async fn delete_connection(
        &self,
        request: Request<v1::DeleteConnectionRequest>,
    ) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        self.0
            .delete_connection(&request.name, &request.etag)
            .await?;
        Ok(Response::new(()))
    }

    async fn batch_delete_connections(
        &self,
        request: Request<v1::BatchDeleteConnectionsRequest>,
    ) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        self.0
            .batch_delete_connections(&request.parent, &request.names)
            .await?;
        Ok(Response::new(()))
    }

    async fn test_connection(
        &self,
        request: Request<v1::TestConnectionRequest>,
    ) -> Result<Response<v1::TestConnectionResponse>, Status> {
        Ok(Response::new(
            self.0.test_connection(request.into_inner()).await?,
        ))
    }
}
