//! The gRPC services, composed once as `tonic` routes: the gRPC port serves
//! them, and the REST gateway calls the same routes (under the same edge
//! layers) in process.

use std::path::Path;
use std::sync::Arc;

use connvault_store::sled::SledStore;

use tonic::service::Routes;

use super::StartError;
use crate::api::{AdminApi, AuditApi, ConnectionApi, DataSourceApi, Guard, TenantApi};
use crate::app::App;
use crate::audit::AuditLog;
use crate::pb::{self, v1};

/// Health, reflection and the public services (the admin service backs up
/// `sled` and works in `data_dir`); `max` bounds a decoded message.
pub(super) async fn routes(
    app: &Arc<App>,
    audit: &Arc<AuditLog>,
    guard: &Arc<Guard>,
    sled: SledStore,
    data_dir: &Path,
    max: usize,
) -> Result<Routes, StartError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<v1::connection_service_server::ConnectionServiceServer<ConnectionApi>>()
        .await;
    health_reporter
        .set_serving::<v1::tenant_service_server::TenantServiceServer<TenantApi>>()
        .await;
    health_reporter
        .set_serving::<v1::data_source_service_server::DataSourceServiceServer<DataSourceApi>>()
        .await;
    health_reporter
        .set_serving::<v1::audit_service_server::AuditServiceServer<AuditApi>>()
        .await;
    health_reporter
        .set_serving::<v1::admin_service_server::AdminServiceServer<AdminApi>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|error| StartError::Reflection(error.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|error| StartError::Reflection(error.to_string()))?;
    Ok(Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            v1::tenant_service_server::TenantServiceServer::new(TenantApi::new(
                Arc::clone(app),
                Arc::clone(guard),
            ))
            .max_decoding_message_size(max),
        )
        .add_service(
            v1::data_source_service_server::DataSourceServiceServer::new(DataSourceApi::new(
                Arc::clone(app),
                Arc::clone(guard),
            ))
            .max_decoding_message_size(max),
        )
        .add_service(
            v1::connection_service_server::ConnectionServiceServer::new(ConnectionApi::new(
                Arc::clone(app),
                Arc::clone(guard),
            ))
            .max_decoding_message_size(max),
        )
        .add_service(
            v1::audit_service_server::AuditServiceServer::new(AuditApi::new(
                Arc::clone(audit),
                Arc::clone(guard),
            ))
            .max_decoding_message_size(max),
        )
        .add_service(
            v1::admin_service_server::AdminServiceServer::new(AdminApi::new(
                Arc::clone(app),
                sled,
                data_dir.to_path_buf(),
                Arc::clone(guard),
            ))
            .max_decoding_message_size(max),
        ))
}
