//! The gRPC services, composed once as `tonic` routes: the gRPC port serves
//! them, and the REST gateway calls the same routes (under the same edge
//! layers) in process.

use std::path::Path;
use std::sync::Arc;

use connvault_store::sled::SledStore;

use tonic::service::Routes;

use super::StartError;
use crate::api::{
    AdminApi, AuditApi, ConnectionApi, DataSourceApi, FormLinkApi, Guard, KeyApi, PluginApi,
    TenantApi,
};
use crate::app::App;
use crate::audit::AuditLog;
use crate::pb::v1;

/// `health` (the routes holding the health service), reflection and the public services (the admin service backs up
/// `sled` and works in `data_dir`); `max` bounds a decoded message.
pub(super) fn routes(
    app: &Arc<App>,
    audit: &Arc<AuditLog>,
    guard: &Arc<Guard>,
    health: Routes,
    sled: SledStore,
    data_dir: &Path,
    max: usize,
) -> Result<Routes, StartError> {
    let reflection_v1 =
        crate::reflection::v1().map_err(|error| StartError::Reflection(error.to_string()))?;
    let reflection_v1alpha =
        crate::reflection::v1alpha().map_err(|error| StartError::Reflection(error.to_string()))?;
    let api = |app: &Arc<App>| (Arc::clone(app), Arc::clone(guard));
    Ok(health
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            v1::tenant_service_server::TenantServiceServer::new({
                let (app, guard) = api(app);
                TenantApi::new(app, guard)
            })
            .max_decoding_message_size(max),
        )
        .add_service(
            v1::data_source_service_server::DataSourceServiceServer::new({
                let (app, guard) = api(app);
                DataSourceApi::new(app, guard)
            })
            .max_decoding_message_size(max),
        )
        .add_service(
            v1::connection_service_server::ConnectionServiceServer::new({
                let (app, guard) = api(app);
                ConnectionApi::new(app, guard)
            })
            .max_decoding_message_size(max),
        )
        .add_service(
            v1::form_link_service_server::FormLinkServiceServer::new({
                let (app, guard) = api(app);
                FormLinkApi::new(app, guard)
            })
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
        )
        .add_service(
            v1::key_service_server::KeyServiceServer::new({
                let (app, guard) = api(app);
                KeyApi::new(app, guard)
            })
            .max_decoding_message_size(max),
        )
        .add_service(
            v1::plugin_service_server::PluginServiceServer::new({
                let (app, guard) = api(app);
                PluginApi::new(app, guard)
            })
            .max_decoding_message_size(max),
        ))
}
