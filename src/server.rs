//! Starts the server: data directory, store, keyring, plugins, gRPC services.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use connvault_plugin_host::{HostOptions, PluginHost};
use connvault_store::{Store, StoreError, StoreOptions};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::api::{ConnectionApi, DataSourceApi, TenantApi};
use crate::app::{App, Limits};
use crate::config::Config;
use crate::keys::{self, KeyError, KeySource};
use crate::middleware::RequestIdLayer;
use crate::pb::{self, v1};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process holds the data directory.
    #[error("{0}: is another connvault running on this data directory?")]
    Locked(StoreError),
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(StoreError),
    /// The master key is missing or wrong.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// A start-up task died.
    #[error("a start-up task failed: {0}")]
    Task(String),
    /// Service set-up failed (reflection descriptors).
    #[error("cannot set up reflection: {0}")]
    Reflection(String),
}

fn create_data_dir(path: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| StartError::DataDir {
            path: path.to_owned(),
            source,
        })
}

/// Prepares everything and serves until `shutdown` resolves; in-flight requests finish first.
///
/// `master_key_env` is the value of `CONNVAULT_MASTER_KEY`, read by the binary.
pub async fn run(
    config: Config,
    master_key_env: Option<SecretString>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    create_data_dir(&config.data_dir)?;
    let store_path = config.data_dir.join("store");
    let options = StoreOptions::default().with_durable(config.durable);
    let store = tokio::task::spawn_blocking(move || Store::open(&store_path, options))
        .await
        .map_err(|error| StartError::Task(error.to_string()))?
        .map_err(|error| match error {
            error @ StoreError::Locked { .. } => StartError::Locked(error),
            other => StartError::Store(other),
        })?;
    let store = Arc::new(store);

    let (master, source) = keys::load_master_key(
        master_key_env,
        config.master_key_file.as_deref(),
        config.dev,
        &config.data_dir,
    )?;
    match source {
        KeySource::Dev { created: true } => tracing::warn!(
            file = %config.data_dir.join(keys::DEV_KEY_FILE).display(),
            "DEVELOPMENT MODE: created a new master key in the data directory. Anyone who can read it can read every secret. Never use --dev in production."
        ),
        KeySource::Dev { created: false } => tracing::warn!(
            file = %config.data_dir.join(keys::DEV_KEY_FILE).display(),
            "DEVELOPMENT MODE: using the master key stored in the data directory. Never use --dev in production."
        ),
        KeySource::Environment => tracing::info!("master key from CONNVAULT_MASTER_KEY"),
        KeySource::File => tracing::info!("master key from the key file"),
    }
    let keyring = {
        let store = Arc::clone(&store);
        tokio::task::spawn_blocking(move || keys::open_keyring(&store, master))
            .await
            .map_err(|error| StartError::Task(error.to_string()))??
    };

    let plugin_dir = config.plugin_dir();
    let mut host_options = HostOptions {
        pins: config.plugins.pins.clone(),
        require_pins: config.plugins.require_pins.unwrap_or(!config.dev),
        ..HostOptions::default()
    };
    if let Some(workers) = config.plugins.workers_per_plugin {
        host_options.workers_per_plugin = workers;
    }
    let dir = plugin_dir.clone();
    let plugins = tokio::task::spawn_blocking(move || PluginHost::load_dir(&dir, &host_options))
        .await
        .map_err(|error| StartError::Task(error.to_string()))?;
    let loaded: Vec<String> = plugins
        .plugins()
        .iter()
        .map(|plugin| format!("{} {}", plugin.name(), plugin.version()))
        .collect();
    let refused: Vec<String> = plugins
        .refused()
        .iter()
        .map(|refusal| format!("{} ({})", refusal.path.display(), refusal.error))
        .collect();
    tracing::info!(dir = %plugin_dir.display(), loaded = ?loaded, refused = ?refused, "plugins");

    let app = Arc::new(App::new(
        store,
        keyring,
        Arc::new(plugins),
        Limits::from_config(&config),
    ));

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

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, "listening");
    // A plain line on stdout for scripts and tests that start on port 0.
    println!("connvault listening on {addr}");

    let (drain, drained) = tokio::sync::oneshot::channel::<()>();
    let mut serving = tokio::spawn(
        Server::builder()
            .layer(RequestIdLayer)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(v1::tenant_service_server::TenantServiceServer::new(
                TenantApi(Arc::clone(&app)),
            ))
            .add_service(
                v1::data_source_service_server::DataSourceServiceServer::new(DataSourceApi(
                    Arc::clone(&app),
                )),
            )
            .add_service(v1::connection_service_server::ConnectionServiceServer::new(
                ConnectionApi(Arc::clone(&app)),
            ))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = drained.await;
                },
            ),
    );
    tokio::select! {
        result = &mut serving => return finished(result),
        () = shutdown => {}
    }
    let _ = drain.send(());
    // hyper's graceful shutdown can wait forever on an idle HTTP/2 client
    // (hyperium/hyper#4170): in-flight requests get a bounded grace period.
    let grace = std::time::Duration::from_millis(config.shutdown_grace_ms);
    match tokio::time::timeout(grace, &mut serving).await {
        Ok(result) => finished(result)?,
        Err(_) => {
            serving.abort();
            tracing::warn!(
                ?grace,
                "shutdown grace period over; closing the remaining connections"
            );
        }
    }
    tracing::info!("stopped");
    Ok(())
}

fn finished(
    result: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> Result<(), StartError> {
    match result {
        Ok(outcome) => Ok(outcome?),
        Err(error) => Err(StartError::Task(error.to_string())),
    }
}
