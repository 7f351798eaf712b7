//! `connvault.v1.DataSourceService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::app::App;
use crate::pb::v1::{self, data_source_service_server::DataSourceService};

/// Serves `DataSourceService`.
pub struct DataSourceApi(pub Arc<App>);

#[tonic::async_trait]
impl DataSourceService for DataSourceApi {
    async fn list_data_sources(
        &self,
        request: Request<v1::ListDataSourcesRequest>,
    ) -> Result<Response<v1::ListDataSourcesResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(self.0.list_data_sources(
            request.page_size,
            &request.page_token,
        )?))
    }

    async fn get_data_source(
        &self,
        request: Request<v1::GetDataSourceRequest>,
    ) -> Result<Response<v1::DataSource>, Status> {
        Ok(Response::new(
            self.0.get_data_source(&request.into_inner().name)?,
        ))
    }
}
