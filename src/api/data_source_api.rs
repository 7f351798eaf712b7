//! `connvault.v1.DataSourceService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::guard::Guard;
use crate::app::App;
use crate::auth::Role;
use crate::pb::v1::{self, data_source_service_server::DataSourceService};

/// Serves `DataSourceService`.
pub struct DataSourceApi {
    app: Arc<App>,
    guard: Arc<Guard>,
}

impl DataSourceApi {
    /// Handlers over `app`, admitting through `guard`.
    pub fn new(app: Arc<App>, guard: Arc<Guard>) -> Self {
        Self { app, guard }
    }
}

/// Any role may read what the plugins serve.
const ANY_ROLE: &[Role] = &[Role::Reader, Role::Writer, Role::Resolver, Role::Admin];

#[tonic::async_trait]
impl DataSourceService for DataSourceApi {
    async fn list_data_sources(
        &self,
        request: Request<v1::ListDataSourcesRequest>,
    ) -> Result<Response<v1::ListDataSourcesResponse>, Status> {
        self.guard
            .admit(&request, ANY_ROLE, None, "dataSources")
            .await?;
        let request = request.into_inner();
        Ok(Response::new(self.app.list_data_sources(
            request.page_size,
            &request.page_token,
        )?))
    }

    async fn get_data_source(
        &self,
        request: Request<v1::GetDataSourceRequest>,
    ) -> Result<Response<v1::DataSource>, Status> {
        let name = request.get_ref().name.clone();
        self.guard.admit(&request, ANY_ROLE, None, &name).await?;
        Ok(Response::new(self.app.get_data_source(&name)?))
    }
}
