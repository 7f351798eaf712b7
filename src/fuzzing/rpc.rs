//! Every RPC's request, decoded as the server decodes it and served by the
//! real handlers (admission, rules, plugin calls, store, audit) over a sled
//! store in a temporary directory and the plugins of a directory.
//!
//! A fuzz input is `[caller, rpc, message...]`: the caller picks one of four
//! principals (an operator, a tenant's service, a tenant's admin, nobody),
//! the RPC one of [`RPCS`], and the rest is the request message's bytes.
//! State carries over between inputs (the fuzzer may create and delete); the
//! seed tenant and connection are put back whenever an input removed them,
//! and the audit log is pruned now and then so memory stays flat.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use connvault_crypto::MasterKey;
use connvault_plugin_host::{HostOptions, PluginHost};
use connvault_store::sled::SledOptions;
use prost::Message;
use tonic::{Code, Request, Status};

use crate::api::{AuditApi, ConnectionApi, DataSourceApi, Guard, TenantApi};
use crate::app::{App, Limits};
use crate::audit::{AuditLog, RefusalLimits};
use crate::auth::{AuthError, Principal, Role, TenantScope};
use crate::error::ServiceError;
use crate::middleware::Caller;
use crate::pb::v1;
use crate::pb::v1::audit_service_server::AuditService;
use crate::pb::v1::connection_service_server::ConnectionService;
use crate::pb::v1::data_source_service_server::DataSourceService;
use crate::pb::v1::tenant_service_server::TenantService;

/// The RPCs, in the order the second input byte picks them.
pub const RPCS: [&str; 18] = [
    "CreateTenant",
    "GetTenant",
    "ListTenants",
    "DeleteTenant",
    "UpdateTenant",
    "ListDataSources",
    "GetDataSource",
    "CreateConnection",
    "GetConnection",
    "ListConnections",
    "UpdateConnection",
    "DeleteConnection",
    "BatchDeleteConnections",
    "TestConnection",
    "DiscoverMetadata",
    "ClearMetadataCache",
    "ResolveConnection",
    "ListAuditEvents",
];

/// The tenant that always exists.
pub const SEED_TENANT: &str = "acme";
/// The id of the connection that always exists in [`SEED_TENANT`].
pub const SEED_CONNECTION: &str = "0190c0de-0000-7000-8000-000000000001";
/// Inputs between two prunings of the audit log.
const PRUNE_EVERY: u64 = 4096;

/// The server's handlers over a throwaway store.
pub struct RpcFixture {
    app: Arc<App>,
    audit: Arc<AuditLog>,
    tenants: TenantApi,
    connections: ConnectionApi,
    data_sources: DataSourceApi,
    audit_api: AuditApi,
    calls: AtomicU64,
}

fn principal(subject: &str, tenants: TenantScope, roles: &[Role]) -> Arc<Principal> {
    Arc::new(Principal {
        subject: subject.into(),
        tenants,
        roles: roles.iter().copied().collect(),
    })
}

/// The caller an input's first byte picks, calling `method`.
fn caller(choice: u8, method: &str) -> Caller {
    let acme = || TenantScope::Only(BTreeSet::from([SEED_TENANT.to_owned()]));
    let identity = match choice % 4 {
        0 => Ok(principal(
            "operator",
            TenantScope::All,
            &[Role::Admin, Role::Writer, Role::Resolver],
        )),
        1 => Ok(principal(
            "service",
            acme(),
            &[Role::Writer, Role::Resolver],
        )),
        2 => Ok(principal("tenant-admin", acme(), &[Role::Admin])),
        _ => Err(Arc::new(AuthError::Missing)),
    };
    Caller {
        method: method.to_owned(),
        identity,
    }
}

impl RpcFixture {
    /// Opens a store in `data_dir` (not durable: nothing here survives a
    /// crash), loads the plugins of `plugin_dir` and puts the seeds in.
    pub async fn start(data_dir: &Path, plugin_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join("store");
        let options = SledOptions::default()
            .with_durable(false)
            .with_cache_bytes(64 << 20);
        let store =
            tokio::task::spawn_blocking(move || crate::store_setup::open_sled(&path, options))
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| error.to_string())?;
        let store: Arc<dyn connvault_store::Store> = Arc::new(store);
        let (keyring, _) = crate::master_key::open_keyring(
            store.as_ref(),
            MasterKey::from_bytes([7; 32]),
            data_dir,
            false,
        )
        .await
        .map_err(|error| error.to_string())?;
        let plugins = PluginHost::load_dir(plugin_dir, &HostOptions::default());
        if plugins.plugins().is_empty() {
            return Err(format!("no plugin loaded from {}", plugin_dir.display()));
        }
        let limits = Limits {
            validate: Duration::from_secs(10),
            test_default: Duration::from_secs(2),
            test_max: Duration::from_secs(5),
            metadata_ttl: Duration::from_secs(60),
            discover_default: Duration::from_secs(2),
        };
        let app = Arc::new(App::new(
            Arc::clone(&store),
            keyring,
            data_dir,
            Arc::new(plugins),
            limits,
        ));
        let audit = Arc::new(
            AuditLog::open(store, app.keyring(), None, RefusalLimits::default())
                .map_err(|e| e.to_string())?,
        );
        let guard = Arc::new(Guard::new(Arc::clone(&audit)));
        let fixture = Self {
            tenants: TenantApi::new(Arc::clone(&app), Arc::clone(&guard)),
            connections: ConnectionApi::new(Arc::clone(&app), Arc::clone(&guard)),
            data_sources: DataSourceApi::new(Arc::clone(&app), Arc::clone(&guard)),
            audit_api: AuditApi::new(Arc::clone(&audit), guard),
            app,
            audit,
            calls: AtomicU64::new(0),
        };
        fixture
            .restore_seeds()
            .await
            .map_err(|status| status.to_string())?;
        Ok(fixture)
    }

    /// The seed connection: a data source of the first loaded plugin, its
    /// required fields set to `db`.
    fn seed_connection(&self) -> v1::Connection {
        let source = self
            .app
            .plugins()
            .data_sources()
            .next()
            .map(|(_, source)| source.clone())
            .unwrap_or_default();
        let config = source
            .fields
            .iter()
            .filter(|field| field.required && !field.secret)
            .map(|field| {
                let value = prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("db".into())),
                };
                (field.name.clone(), value)
            })
            .collect();
        v1::Connection {
            display_name: "Seed connection".into(),
            data_source: source.id,
            config: Some(prost_types::Struct { fields: config }),
            labels: [("env".to_owned(), "fuzz".to_owned())].into(),
            ..Default::default()
        }
    }

    /// Puts back the seed tenant and connection if an input deleted them.
    async fn restore_seeds(&self) -> Result<(), Status> {
        let parent = format!("tenants/{SEED_TENANT}");
        if let Err(ServiceError::NotFound(_)) = self.app.get_tenant(&parent).await {
            self.app.create_tenant(SEED_TENANT.into(), None).await?;
        }
        let name = format!("{parent}/connections/{SEED_CONNECTION}");
        if let Err(ServiceError::NotFound(_)) = self.app.get_connection(&name).await {
            let connection = self.seed_connection();
            let created = self
                .app
                .create_connection_audited(&parent, Some(connection), false, SEED_CONNECTION, None)
                .await;
            match created {
                // Another connection may have taken the seed's display name.
                Ok(_) | Err(ServiceError::AlreadyExists(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Serves one input (`[caller, rpc, message...]`); `None` when the
    /// message does not decode as the RPC's request (the server answers that
    /// INVALID_ARGUMENT before any handler runs).
    pub async fn call(&self, input: &[u8]) -> Option<Result<(), Status>> {
        let [choice, rpc, body @ ..] = input else {
            return None;
        };
        let method = RPCS[usize::from(*rpc) % RPCS.len()];
        let answer = self.dispatch(caller(*choice, method), method, body).await;
        let calls = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if answer.is_some() {
            if let Err(status) = self.restore_seeds().await {
                panic!("the seeds cannot be restored: {status:?}");
            }
        }
        if calls % PRUNE_EVERY == 0 {
            let _ = self
                .audit
                .prune_older_than(std::time::SystemTime::now())
                .await;
        }
        answer
    }

    async fn dispatch(
        &self,
        caller: Caller,
        method: &str,
        body: &[u8],
    ) -> Option<Result<(), Status>> {
        fn request<T>(message: T, caller: Caller) -> Request<T> {
            let mut request = Request::new(message);
            request.extensions_mut().insert(caller);
            request
        }
        macro_rules! serve {
            ($api:expr, $handler:ident, $message:ty) => {{
                let message = <$message>::decode(body).ok()?;
                $api.$handler(request(message, caller)).await.map(drop)
            }};
        }
        Some(match method {
            "CreateTenant" => serve!(self.tenants, create_tenant, v1::CreateTenantRequest),
            "GetTenant" => serve!(self.tenants, get_tenant, v1::GetTenantRequest),
            "ListTenants" => serve!(self.tenants, list_tenants, v1::ListTenantsRequest),
            "DeleteTenant" => serve!(self.tenants, delete_tenant, v1::DeleteTenantRequest),
            "UpdateTenant" => serve!(self.tenants, update_tenant, v1::UpdateTenantRequest),
            "ListDataSources" => serve!(
                self.data_sources,
                list_data_sources,
                v1::ListDataSourcesRequest
            ),
            "GetDataSource" => serve!(self.data_sources, get_data_source, v1::GetDataSourceRequest),
            "CreateConnection" => serve!(
                self.connections,
                create_connection,
                v1::CreateConnectionRequest
            ),
            "GetConnection" => serve!(self.connections, get_connection, v1::GetConnectionRequest),
            "ListConnections" => serve!(
                self.connections,
                list_connections,
                v1::ListConnectionsRequest
            ),
            "UpdateConnection" => serve!(
                self.connections,
                update_connection,
                v1::UpdateConnectionRequest
            ),
            "DeleteConnection" => serve!(
                self.connections,
                delete_connection,
                v1::DeleteConnectionRequest
            ),
            "BatchDeleteConnections" => serve!(
                self.connections,
                batch_delete_connections,
                v1::BatchDeleteConnectionsRequest
            ),
            "TestConnection" => {
                serve!(self.connections, test_connection, v1::TestConnectionRequest)
            }
            "DiscoverMetadata" => serve!(
                self.connections,
                discover_metadata,
                v1::DiscoverMetadataRequest
            ),
            "ClearMetadataCache" => serve!(
                self.connections,
                clear_metadata_cache,
                v1::ClearMetadataCacheRequest
            ),
            "ResolveConnection" => serve!(
                self.connections,
                resolve_connection,
                v1::ResolveConnectionRequest
            ),
            _ => serve!(
                self.audit_api,
                list_audit_events,
                v1::ListAuditEventsRequest
            ),
        })
    }
}

/// What no request may be answered with: a request is either served or
/// the caller's fault, and the store is healthy, so INTERNAL, UNKNOWN or
/// DATA_LOSS would be a server bug.
pub fn check_answer(answer: &Result<(), Status>) {
    if let Err(status) = answer {
        assert!(
            !matches!(
                status.code(),
                Code::Internal | Code::Unknown | Code::DataLoss
            ),
            "a request was answered {:?}: {}",
            status.code(),
            status.message()
        );
    }
}
