//! Starts the server: data directory, store, keyring, plugins, gRPC services.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use connvault_plugin_host::{HostOptions, PluginHost};
use connvault_store::sled::WriteObserver;
use secrecy::SecretString;
use tonic::transport::Server;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::api::Guard;
use crate::app::{App, EgressSettings, Limits, PluginSource};
use crate::audit::AuditLog;
use crate::auth::{self, AuthError, Verifier};
use crate::config::Config;
use crate::health::Health;
use crate::listener::{self, Tls, TlsError};
use crate::master_key::{self, KeyError, KeySource};
use crate::metrics::{Metrics, MetricsLayer, StoreObserver};
use crate::middleware::{AuthenticateLayer, FramingLayer, RequestIdLayer};
use crate::rate_limit::{self, RateLimiter};
use crate::store_setup::OpenError;

mod reload;
mod services;

use reload::{reload_keys_on_change, reload_plugins_on_hangup};

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
    /// The store or its keyring could not be opened: locked, damaged, lost
    /// writes, wrong master key (see docs/operations.md).
    #[error(transparent)]
    Open(#[from] OpenError),
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
    /// Token verification cannot be set up.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The audit log file cannot be opened.
    #[error("cannot open the audit log {path}: {source}")]
    AuditLog {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A start-up task died.
    #[error("a start-up task failed: {0}")]
    Task(String),
    /// Service set-up failed (reflection descriptors, REST rules).
    #[error("cannot set up the services: {0}")]
    Reflection(String),
    /// An egress rule in the configuration does not parse.
    #[error("invalid egress rule: {0}")]
    Egress(String),
    /// The TLS settings are incomplete or their files do not load.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// Plaintext on an address other hosts can reach, without saying so.
    #[error(
        "refusing to serve plaintext on {addr}, which is not a loopback address: \
         configure TLS (tls.cert_file and tls.key_file, or --tls-cert-file and --tls-key-file), \
         listen on 127.0.0.1, or pass --insecure-plaintext when a proxy in front terminates TLS"
    )]
    Plaintext {
        /// The listen address.
        addr: SocketAddr,
    },
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

/// Secrets the binary reads from its environment, passed in rather than read
/// here so tests and embedders never touch the process environment.
#[derive(Default)]
pub struct StartSecrets {
    /// `CONNVAULT_MASTER_KEY`: base64 of 32 bytes.
    pub master_key: Option<SecretString>,
    /// `CONNVAULT_JWT_HS256_SECRET`: the shared token-signing secret.
    pub jwt_hs256: Option<SecretString>,
}

/// Prepares everything and serves until `shutdown` resolves; in-flight requests finish first.
pub async fn run(
    config: Config,
    secrets: StartSecrets,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let master_key_env = secrets.master_key;
    // Listener settings first: a refused address or a bad certificate stops
    // the server before it touches the data directory.
    if listener::plaintext_refused(
        config.listen,
        &config.tls,
        config.dev,
        config.insecure_plaintext,
    ) {
        return Err(StartError::Plaintext {
            addr: config.listen,
        });
    }
    let tls = Tls::load(&config.tls)?;
    let metrics = config.metrics.then(|| Arc::new(Metrics::new()));
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health::starting(health_reporter).await;
    let http_addr = config.http_listen.addr();
    if let Some(addr) = http_addr
        && listener::plaintext_refused(addr, &config.tls, config.dev, config.insecure_plaintext)
    {
        return Err(StartError::Plaintext { addr });
    }
    let http_tls = match http_addr {
        Some(_) => Tls::load_http(&config.tls)?,
        None => None,
    };
    let open_files = listener::raise_open_file_limit();
    create_data_dir(&config.data_dir)?;
    let (master, source) = master_key::load_master_key(
        master_key_env,
        config.master_key_file.as_deref(),
        config.dev,
        &config.data_dir,
    )?;
    match source {
        KeySource::Dev { created: true } => tracing::warn!(
            file = %config.data_dir.join(master_key::DEV_KEY_FILE).display(),
            "DEVELOPMENT MODE: created a new master key in the data directory. Anyone who can read it can read every secret. Never use --dev in production."
        ),
        KeySource::Dev { created: false } => tracing::warn!(
            file = %config.data_dir.join(master_key::DEV_KEY_FILE).display(),
            "DEVELOPMENT MODE: using the master key stored in the data directory. Never use --dev in production."
        ),
        KeySource::Environment => tracing::info!("master key from CONNVAULT_MASTER_KEY"),
        KeySource::File => tracing::info!("master key from the key file"),
    }
    let crate::store_setup::Serving {
        store,
        sled,
        keyring,
        recovery,
        keyring_state,
    } = crate::store_setup::open_observed(
        &config,
        master,
        metrics
            .as_ref()
            .map(|metrics| Arc::new(StoreObserver(Arc::clone(metrics))) as Arc<dyn WriteObserver>),
    )
    .await?;
    let store_for_audit = Arc::clone(&store);

    let plugin_dir = config.plugin_dir();
    let host_options = HostOptions {
        pins: config.plugins.pins.clone(),
        ..config.host_options()
    };
    let dir = plugin_dir.clone();
    let plugin_source = PluginSource {
        dir: plugin_dir.clone(),
        options: host_options.clone(),
        config_file: config.config_file.clone(),
    };
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
    let plugins = Arc::new(plugins);
    if let Some(metrics) = &metrics {
        metrics.watch_plugins(Arc::clone(&plugins));
        tokio::spawn(crate::metrics::refresh_resource_counts(
            Arc::clone(metrics),
            Arc::clone(&store),
        ));
    }

    let hs256 = match (secrets.jwt_hs256, &config.auth.hs256_secret_file) {
        (Some(secret), _) => Some(secret),
        (None, Some(path)) => Some(SecretString::from(
            std::fs::read_to_string(path)
                .map_err(|error| {
                    AuthError::Config(format!("cannot read {}: {error}", path.display()))
                })?
                .trim()
                .to_owned(),
        )),
        (None, None) if config.dev => Some(crate::dev::secret(&config.data_dir)?),
        (None, None) => None,
    };
    let keys = Arc::new(std::sync::RwLock::new(auth::load_keys(
        &config.auth,
        hs256.as_ref(),
    )?));
    // Dev tokens are minted once for a year: dev mode lets them live that long.
    let mut verifier_config = config.auth.clone();
    if config.dev {
        verifier_config.max_token_lifetime_secs = verifier_config
            .max_token_lifetime_secs
            .max(crate::dev::DEV_TOKEN_TTL);
    }
    let verifier = Arc::new(Verifier::new(&verifier_config, Arc::clone(&keys)));
    if let Some(jwks) = config.auth.jwks_file.clone() {
        tokio::spawn(reload_keys_on_change(
            jwks,
            config.auth.clone(),
            hs256.clone(),
            keys,
        ));
    }

    let egress =
        EgressSettings::from_config(&config.egress, config.dev).map_err(StartError::Egress)?;
    let app = Arc::new(
        App::new(
            store,
            keyring,
            &config.data_dir,
            plugins,
            Limits::from_config(&config),
        )
        .with_egress(egress)
        .with_metrics(metrics.clone())
        .with_plugin_source(plugin_source),
    );
    tokio::spawn(reload_plugins_on_hangup(Arc::clone(&app)));
    app.keys()
        .destroy_orphan_keys()
        .await
        .map_err(crate::store_setup::OpenError::Key)?;
    app.keys().resume_rotation();

    let audit = Arc::new(
        AuditLog::open(
            Arc::clone(&store_for_audit),
            app.keyring(),
            config.audit_log.as_deref(),
            config.refused_audit,
        )
        .map_err(|source| StartError::AuditLog {
            path: config.audit_log.clone().unwrap_or_default(),
            source,
        })?
        .with_metrics(metrics.clone()),
    );
    health.store_open().await;
    health.plugins_loaded().await;
    if config.audit_retention_secs > 0 {
        tokio::spawn(crate::audit::prune_expired(
            Arc::clone(&audit),
            std::time::Duration::from_secs(config.audit_retention_secs),
        ));
    }
    crate::store_setup::audit_accepted_loss(&audit, &recovery, keyring_state).await?;
    tokio::spawn(Arc::clone(&audit).summarize_refusals());
    let guard = Arc::new(
        Guard::new(Arc::clone(&audit)).with_rate_limiter(RateLimiter::new(
            config.rate_limit(),
            rate_limit::MAX_TRACKED,
        )),
    );
    if config.dev {
        if app.get_tenant("tenants/dev").await.is_err()
            && let Err(error) = app.create_tenant("dev".into(), None).await
        {
            tracing::warn!(%error, "could not create the dev tenant");
        }
        if let Some(secret) = hs256.as_ref() {
            let tokens = crate::dev::tokens(&config.data_dir, secret, &config.auth)?;
            println!(
                "dev admin token (every tenant, every role):\n  {}",
                tokens.admin
            );
            println!(
                "dev token for tenants/dev (reader, writer, resolver):\n  {}",
                tokens.dev
            );
        }
    }

    // Every RPC passes these layers, outermost first; limits (concurrency,
    // rate) go here too, so one place says what stands before a handler —
    // except the per-tenant rate limit, which needs the tenant the decoded
    // request names and the guard's admission into it (`api::guard`).
    // REST calls pass the very same layers (`http::rest`).
    let edge = ServiceBuilder::new()
        .layer(MetricsLayer::new(metrics.clone()))
        .layer(RequestIdLayer)
        .layer(AuthenticateLayer::new(verifier))
        .layer(FramingLayer::new(config.max_request_bytes));
    // The framing layer refuses a larger message before it is read; tonic's
    // own limit (which would answer OUT_OF_RANGE) stays as a second line.
    let routes = services::routes(
        &app,
        &audit,
        &guard,
        tonic::service::Routes::new(health_service),
        sled,
        &config.data_dir,
        config.max_request_bytes,
    )?;
    let rest = crate::http::rest::Gateway::new(BoxCloneSyncService::new(
        edge.clone().service(routes.clone()),
    ))
    .map_err(|error| StartError::Reflection(error.to_string()))?;

    let listener = listener::bind(config.listen).map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let http_listener = match http_addr {
        Some(http_addr) => {
            let bound = listener::bind(http_addr).map_err(|source| StartError::Bind {
                addr: http_addr,
                source,
            })?;
            let local = bound.local_addr().map_err(|source| StartError::Bind {
                addr: http_addr,
                source,
            })?;
            Some((bound, local))
        }
        None => None,
    };
    // Tests must not reach the server itself (only a server allow rule opens it).
    let mut own = vec![addr];
    own.extend(http_listener.as_ref().map(|(_, local)| *local));
    app.set_listeners(&own);
    match &tls {
        Some(tls) => tracing::info!(%addr, mutual = tls.mutual(), "listening with TLS"),
        None if addr.ip().to_canonical().is_loopback() => {
            tracing::info!(%addr, "listening (plaintext, loopback)")
        }
        None => tracing::warn!(
            %addr,
            "listening in PLAINTEXT on a non-loopback address: tokens and resolved secrets cross the network unencrypted unless a proxy in front terminates TLS"
        ),
    }
    let incoming = listener::start(listener, &config.listener, tls, open_files);
    let http = http_listener.map(|(bound, local)| {
        let scheme = if http_tls.is_some() { "https" } else { "http" };
        app.set_form_base_url(
            config
                .http_public_url
                .as_deref()
                .unwrap_or(&format!("{scheme}://{local}")),
        );
        tracing::info!(addr = %local, scheme, "HTTP listener");
        let context = crate::http::HttpContext {
            app: Arc::clone(&app),
            audit: Arc::clone(&audit),
            guard: Arc::clone(&guard),
            metrics: metrics.clone(),
            health: health.clone(),
            rest,
        };
        let router = crate::http::router(&context, &config.http);
        // Printed before the gRPC line, which scripts and tests wait for.
        println!("connvault http listening on {scheme}://{local}");
        crate::http::start(bound, &config.http, http_tls, router, open_files)
    });
    // A plain line on stdout for scripts and tests that start on port 0.
    println!("connvault listening on {addr}");

    let mut builder = Server::builder()
        // Large enough that an oversized token reaches authentication and gets
        // the same UNAUTHENTICATED as any bad token, not a bare HTTP 431.
        .http2_max_header_list_size(64 * 1024)
        // Pings find clients that vanished without closing (a dead peer
        // would otherwise hold its connection and permit forever).
        .http2_keepalive_interval(config.listener.keepalive_interval())
        .http2_keepalive_timeout(Some(config.listener.keepalive_timeout()));
    // A client that answers pings but sends nothing would hold its slot
    // forever; a bounded age hands every slot back, through a GOAWAY that
    // lets in-flight calls finish rather than a cut socket. (tonic's
    // `max_connection_age_grace` closes at age + grace without any GOAWAY,
    // so it is not used: a client that ignores the GOAWAY and stops
    // answering pings is closed by the keepalive timeout instead.)
    if let Some(age) = config.listener.max_connection_age() {
        builder = builder.max_connection_age(age);
    }

    let (drain, drained) = tokio::sync::oneshot::channel::<()>();
    let mut serving = tokio::spawn(
        builder
            .layer(edge)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = drained.await;
            }),
    );
    tokio::select! {
        result = &mut serving => return finished(result),
        () = shutdown => {}
    }
    health.draining().await;
    let _ = drain.send(());
    // hyper's graceful shutdown can wait forever on an idle HTTP/2 client
    // (hyperium/hyper#4170): in-flight requests get a bounded grace period.
    let grace = std::time::Duration::from_millis(config.shutdown_grace_ms);
    if let Some(http) = http {
        http.stop(grace).await;
    }
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
    // The refusals counted since the last summary are not lost with the process.
    if let Err(error) = audit.write_summaries().await {
        tracing::error!(%error, "writing the refused-request summary failed");
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
