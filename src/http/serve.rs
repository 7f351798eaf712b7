//! Accepting and serving HTTP/1.1 connections: at most
//! `http.max_connections` at once, TLS (when configured) and the request
//! head within `http.header_timeout_ms`, heads of at most
//! `http.max_header_bytes`, each connection closed after its current request
//! once it reaches `http.max_connection_age_secs` or the server stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use super::HttpConfig;
use crate::listener::Tls;
use crate::listener::limits::{Backoff, Throttle, fit_connections};

/// The HTTP listener while it runs.
pub struct Running {
    stop: watch::Sender<bool>,
    accepting: JoinHandle<()>,
    connections: Arc<Semaphore>,
    max_connections: u32,
}

impl Running {
    /// Stops accepting, asks every connection to close after its current
    /// request, and waits up to `grace` for them.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = self.accepting.await;
        // Every connection holds a permit: all of them back means all closed.
        let all = self.connections.acquire_many(self.max_connections);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                ?grace,
                "HTTP shutdown grace period over; closing the remaining connections"
            );
        }
    }
}

/// What each connection needs.
struct Serving {
    router: Router,
    tls: Option<Tls>,
    header_timeout: Duration,
    max_header_bytes: usize,
    max_age: Option<Duration>,
    stop: watch::Receiver<bool>,
    tls_failed: Throttle,
    timed_out: Throttle,
}

/// Starts serving `router` on `listener`; `open_files` is the soft
/// open-file limit the connection limit must fit under (the gRPC port's
/// connections count against it too, so this one takes at most half).
pub fn start(
    listener: TcpListener,
    config: &HttpConfig,
    tls: Option<Tls>,
    router: Router,
    open_files: Option<u64>,
) -> Running {
    let max_connections = fit_connections(config.max_connections, open_files.map(|n| n / 2))
        .min(Semaphore::MAX_PERMITS)
        .min(u32::MAX as usize)
        .max(1);
    if let Some(tls) = &tls {
        tls.watch();
    }
    let (stop, stopped) = watch::channel(false);
    let connections = Arc::new(Semaphore::new(max_connections));
    let serving = Arc::new(Serving {
        router,
        tls,
        header_timeout: config.header_timeout(),
        max_header_bytes: config.max_header_bytes,
        max_age: config.max_connection_age(),
        stop: stopped,
        tls_failed: Throttle::per_second(),
        timed_out: Throttle::per_second(),
    });
    tracing::info!(
        max_connections,
        header_timeout_ms = config.header_timeout_ms,
        request_timeout_ms = config.request_timeout_ms,
        max_body_bytes = config.max_body_bytes,
        "HTTP connection limits"
    );
    let accepting = tokio::spawn(accept_loop(
        listener,
        Arc::clone(&connections),
        max_connections,
        serving,
    ));
    Running {
        stop,
        accepting,
        connections,
        max_connections: max_connections as u32,
    }
}

async fn accept_loop(
    listener: TcpListener,
    connections: Arc<Semaphore>,
    max_connections: usize,
    serving: Arc<Serving>,
) {
    let mut stop = serving.stop.clone();
    let at_limit = Throttle::per_second();
    let failed = Throttle::per_second();
    let mut backoff = Backoff::new();
    loop {
        let permit = match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(suppressed) = at_limit.admit() {
                    tracing::warn!(
                        max_connections,
                        suppressed,
                        "HTTP listener at its connection limit: new connections wait (http.max_connections)"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&connections).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_closed) => return,
                    },
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match accepted {
            Ok((stream, remote)) => {
                backoff.reset();
                let _ = stream.set_nodelay(true);
                tokio::spawn(Arc::clone(&serving).connection(stream, remote, permit));
            }
            Err(error) => {
                let pause = backoff.next_pause();
                if let Some(suppressed) = failed.admit() {
                    tracing::warn!(%error, ?pause, suppressed, "accepting an HTTP connection failed; pausing");
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {},
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        }
    }
}

impl Serving {
    /// Serves one connection; `permit` returns when it closes.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        remote: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let _permit = permit;
        match &self.tls {
            None => self.http(stream).await,
            Some(tls) => {
                let handshake =
                    tokio::time::timeout(self.header_timeout, tls.acceptor().accept(stream));
                match handshake.await {
                    Ok(Ok(stream)) => self.http(stream).await,
                    Ok(Err(error)) => {
                        if let Some(suppressed) = self.tls_failed.admit() {
                            tracing::info!(%remote, %error, suppressed, "HTTP TLS handshake failed");
                        }
                    }
                    Err(_elapsed) => {
                        if let Some(suppressed) = self.timed_out.admit() {
                            tracing::info!(%remote, suppressed, "HTTP TLS handshake timed out (http.header_timeout_ms)");
                        }
                    }
                }
            }
        }
    }

    async fn http<S>(&self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_buf_size(self.max_header_bytes)
            .keep_alive(true);
        let service = TowerToHyperService::new(self.router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let mut stop = self.stop.clone();
        let aged = async {
            match self.max_age {
                Some(age) => tokio::time::sleep(age).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = stop.wait_for(|stopped| *stopped) => {},
            () = aged => {},
        }
        // Finish the request in flight, then close.
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}
