//! What the server says about its own health: `grpc.health.v1` per service
//! and overall (`""`), and the readiness the HTTP listener's `/readyz`
//! reports. Every service starts NOT_SERVING; each turns SERVING once what
//! it needs is there (the store for tenants and audit, the store and the
//! plugins for data sources and connections), and all turn NOT_SERVING again
//! when shutdown begins, so load balancers stop sending before the drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::{
    AdminApi, AuditApi, ConnectionApi, DataSourceApi, FormLinkApi, KeyApi, PluginApi, TenantApi,
};
use crate::pb::v1;

/// The gRPC names of the API's services.
pub const SERVICES: [&str; 8] = [
    <v1::tenant_service_server::TenantServiceServer<TenantApi> as NamedService>::NAME,
    <v1::audit_service_server::AuditServiceServer<AuditApi> as NamedService>::NAME,
    <v1::admin_service_server::AdminServiceServer<AdminApi> as NamedService>::NAME,
    <v1::key_service_server::KeyServiceServer<KeyApi> as NamedService>::NAME,
    <v1::data_source_service_server::DataSourceServiceServer<DataSourceApi> as NamedService>::NAME,
    <v1::connection_service_server::ConnectionServiceServer<ConnectionApi> as NamedService>::NAME,
    <v1::plugin_service_server::PluginServiceServer<PluginApi> as NamedService>::NAME,
    <v1::form_link_service_server::FormLinkServiceServer<FormLinkApi> as NamedService>::NAME,
];

/// The services that need only the store.
const STORE_SERVICES: [&str; 4] = [SERVICES[0], SERVICES[1], SERVICES[2], SERVICES[3]];
/// The services that also need the plugins.
const PLUGIN_SERVICES: [&str; 4] = [SERVICES[4], SERVICES[5], SERVICES[6], SERVICES[7]];

/// The server's health as it starts, serves and stops.
#[derive(Clone, Debug)]
pub struct Health {
    reporter: HealthReporter,
    store_open: Arc<AtomicBool>,
    plugins_loaded: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
}

impl Health {
    /// Every service (and the server) NOT_SERVING, with the reporter the
    /// health service answers from.
    pub async fn starting(reporter: HealthReporter) -> Self {
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for service in SERVICES {
            reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        Self {
            reporter,
            store_open: Arc::default(),
            plugins_loaded: Arc::default(),
            draining: Arc::default(),
        }
    }

    /// The store (and its keyring and audit log) is open.
    pub async fn store_open(&self) {
        self.store_open.store(true, Ordering::SeqCst);
        for service in STORE_SERVICES {
            self.set(service, ServingStatus::Serving).await;
        }
        self.overall().await;
    }

    /// The plugin directory has been loaded (refused files included).
    pub async fn plugins_loaded(&self) {
        self.plugins_loaded.store(true, Ordering::SeqCst);
        if self.store_open.load(Ordering::SeqCst) {
            for service in PLUGIN_SERVICES {
                self.set(service, ServingStatus::Serving).await;
            }
        }
        self.overall().await;
    }

    /// Shutdown began: everything NOT_SERVING while in-flight requests finish.
    pub async fn draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.set("", ServingStatus::NotServing).await;
        for service in SERVICES {
            self.set(service, ServingStatus::NotServing).await;
        }
    }

    /// Whether the server takes requests: store open, plugins loaded, not stopping.
    pub fn ready(&self) -> bool {
        self.store_open.load(Ordering::SeqCst)
            && self.plugins_loaded.load(Ordering::SeqCst)
            && !self.draining.load(Ordering::SeqCst)
    }

    async fn overall(&self) {
        if self.ready() {
            self.set("", ServingStatus::Serving).await;
        }
    }

    async fn set(&self, service: &str, status: ServingStatus) {
        self.reporter.set_service_status(service, status).await;
    }
}
