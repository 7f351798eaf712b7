//! The baseline: a bare tonic server speaking the same `connvault.v1`
//! services, answering every call with canned messages of the same size as
//! connvault's (a `Connection` captured from the real server), with no
//! validation, no store and no crypto. What it costs is the gRPC round trip,
//! HTTP/2 and protobuf; connvault's figures are reported as ratios of it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use connvault::pb::v1::{self, connection_service_server, tenant_service_server};
use tonic::{Request, Response, Status};

/// The canned messages.
#[derive(Clone)]
pub struct Canned {
    /// What `GetConnection` returns.
    pub connection: v1::Connection,
    /// What `ListConnections` returns.
    pub page: v1::ListConnectionsResponse,
    /// What `TestConnection` returns.
    pub test: v1::TestConnectionResponse,
    /// What `ResolveConnection` returns.
    pub resolved: v1::ResolveConnectionResponse,
}

impl Canned {
    /// Canned messages shaped like `sample`, with pages of `page_size`.
    pub fn new(sample: v1::Connection, page_size: usize) -> Self {
        let page = v1::ListConnectionsResponse {
            connections: vec![sample.clone(); page_size],
            next_page_token: "Y2FubmVkLXBhZ2UtdG9rZW4tb2YtYS1zaW1pbGFyLXNpemU".into(),
        };
        let stage = |stage: v1::TestStage| v1::StageResult {
            stage: stage as i32,
            status: v1::StageStatus::Ok as i32,
            duration_us: 120,
            message: String::new(),
        };
        let test = v1::TestConnectionResponse {
            success: true,
            stages: vec![
                stage(v1::TestStage::Resolve),
                stage(v1::TestStage::Connect),
                stage(v1::TestStage::Authenticate),
            ],
            error_category: v1::ErrorCategory::None as i32,
            message: String::new(),
            server_version: "fixture 1.0".into(),
            duration_us: 300,
            test_time: sample.update_time,
        };
        let resolved = v1::ResolveConnectionResponse {
            connection: Some(sample.clone()),
            secrets: [(
                "password".to_owned(),
                "bench-secret-password-0123456789".to_owned(),
            )]
            .into_iter()
            .collect(),
            tls_client_key_pem: String::new(),
            rendered: Some(v1::RenderedConnection {
                uri: "testdb://app:bench-secret-password-0123456789@127.0.0.1:5432/orders".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        Self {
            connection: sample,
            page,
            test,
            resolved,
        }
    }
}

struct Connections {
    canned: Arc<Canned>,
    next: AtomicU64,
}

#[tonic::async_trait]
impl connection_service_server::ConnectionService for Connections {
    async fn create_connection(
        &self,
        request: Request<v1::CreateConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        let request = request.into_inner();
        let mut connection = request.connection.unwrap_or_default();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        connection.name = format!(
            "{}/connections/00000000-0000-7000-8000-{n:012}",
            request.parent
        );
        connection.secrets.clear();
        connection.secret_fields = self.canned.connection.secret_fields.clone();
        connection.create_time = self.canned.connection.create_time;
        connection.update_time = self.canned.connection.update_time;
        connection.etag = self.canned.connection.etag.clone();
        Ok(Response::new(connection))
    }

    async fn get_connection(
        &self,
        _request: Request<v1::GetConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        Ok(Response::new(self.canned.connection.clone()))
    }

    async fn list_connections(
        &self,
        _request: Request<v1::ListConnectionsRequest>,
    ) -> Result<Response<v1::ListConnectionsResponse>, Status> {
        Ok(Response::new(self.canned.page.clone()))
    }

    async fn update_connection(
        &self,
        request: Request<v1::UpdateConnectionRequest>,
    ) -> Result<Response<v1::Connection>, Status> {
        let patch = request.into_inner().connection.unwrap_or_default();
        let mut connection = self.canned.connection.clone();
        connection.name = patch.name;
        connection.labels = patch.labels;
        Ok(Response::new(connection))
    }

    async fn delete_connection(
        &self,
        _request: Request<v1::DeleteConnectionRequest>,
    ) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    async fn batch_delete_connections(
        &self,
        _request: Request<v1::BatchDeleteConnectionsRequest>,
    ) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    async fn test_connection(
        &self,
        _request: Request<v1::TestConnectionRequest>,
    ) -> Result<Response<v1::TestConnectionResponse>, Status> {
        Ok(Response::new(self.canned.test.clone()))
    }

    async fn discover_metadata(
        &self,
        _request: Request<v1::DiscoverMetadataRequest>,
    ) -> Result<Response<v1::DiscoverMetadataResponse>, Status> {
        Ok(Response::new(v1::DiscoverMetadataResponse::default()))
    }

    async fn clear_metadata_cache(
        &self,
        _request: Request<v1::ClearMetadataCacheRequest>,
    ) -> Result<Response<v1::ClearMetadataCacheResponse>, Status> {
        Ok(Response::new(v1::ClearMetadataCacheResponse::default()))
    }

    async fn resolve_connection(
        &self,
        _request: Request<v1::ResolveConnectionRequest>,
    ) -> Result<Response<v1::ResolveConnectionResponse>, Status> {
        Ok(Response::new(self.canned.resolved.clone()))
    }
}

struct Tenants;

#[tonic::async_trait]
impl tenant_service_server::TenantService for Tenants {
    async fn create_tenant(
        &self,
        request: Request<v1::CreateTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let request = request.into_inner();
        Ok(Response::new(v1::Tenant {
            name: format!("tenants/{}", request.tenant_id),
            ..request.tenant.unwrap_or_default()
        }))
    }

    async fn get_tenant(
        &self,
        request: Request<v1::GetTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        Ok(Response::new(v1::Tenant {
            name: request.into_inner().name,
            ..Default::default()
        }))
    }

    async fn list_tenants(
        &self,
        _request: Request<v1::ListTenantsRequest>,
    ) -> Result<Response<v1::ListTenantsResponse>, Status> {
        Ok(Response::new(v1::ListTenantsResponse::default()))
    }

    async fn update_tenant(
        &self,
        request: Request<v1::UpdateTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        Ok(Response::new(
            request.into_inner().tenant.unwrap_or_default(),
        ))
    }

    async fn delete_tenant(
        &self,
        _request: Request<v1::DeleteTenantRequest>,
    ) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }
}

/// A running baseline server on its own runtime (its own threads, like a
/// separate process would have); stopped when dropped.
pub struct EchoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Starts the server on `127.0.0.1:0`.
    /// `nodelay: false` reproduces a server that leaves Nagle's algorithm on.
    pub fn start(canned: Canned, nodelay: bool) -> anyhow::Result<EchoServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("echo-server")
            .build()
            .context("baseline runtime")?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("baseline listener")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let canned = Arc::new(canned);
        let thread = std::thread::spawn(move || {
            let listener = {
                let _entered = runtime.enter();
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(error) => {
                        eprintln!("baseline listener: {error}");
                        return;
                    }
                }
            };
            let serve = tonic::transport::Server::builder()
                .add_service(tenant_service_server::TenantServiceServer::new(Tenants))
                .add_service(connection_service_server::ConnectionServiceServer::new(
                    Connections {
                        canned,
                        next: AtomicU64::new(0),
                    },
                ))
                // `serve_with_incoming` ignores the builder's TCP_NODELAY:
                // set it on the incoming stream, as `Server::serve` would.
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener)
                        .with_nodelay(Some(nodelay)),
                    async {
                        let _ = stopped.await;
                    },
                );
            if let Err(error) = runtime.block_on(serve) {
                eprintln!("baseline server failed: {error}");
            }
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        });
        Ok(EchoServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Idle HTTP/2 clients can hold a graceful shutdown open (hyper#4170):
        // the thread is left to finish on its own.
        drop(self.thread.take());
    }
}
