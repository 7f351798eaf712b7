//! The TLS configuration in force, and the task that rebuilds it when the
//! certificate, key or client CA file changes on disk, so a renewed
//! certificate takes effect without a restart.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use rustls::server::ServerConfig;

use super::tls::{Alpn, TlsConfig, TlsError, server_config};

/// The TLS configuration each new handshake uses; connections already
/// established keep the one they were made with.
pub(crate) struct TlsState {
    files: TlsConfig,
    alpn: Alpn,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsState {
    /// Loads the files; `Ok(None)` when TLS is not configured.
    pub(crate) fn load(files: &TlsConfig, alpn: Alpn) -> Result<Option<Arc<Self>>, TlsError> {
        Ok(server_config(files, alpn)?.map(|config| {
            Arc::new(Self {
                files: files.clone(),
                alpn,
                current: RwLock::new(Arc::new(config)),
            })
        }))
    }

    /// The configuration for a new handshake.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether clients must present a certificate.
    pub(crate) fn mutual(&self) -> bool {
        self.files.client_ca_file.is_some()
    }
}

/// What identifies one version of a file: a replaced file (written in place
/// or renamed over) changes at least one of these.
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|path| {
            std::fs::metadata(path).ok().map(|meta| Stamp {
                modified: meta.modified().ok(),
                len: meta.len(),
                inode: meta.ino(),
            })
        })
        .collect()
}

/// Checks the files every `every`; when one changed, loads them all again
/// and swaps the configuration in. A file that does not load (half written,
/// a key that does not match the certificate yet) keeps the previous
/// configuration and logs why; the next change is tried again. Ends when
/// the listener drops the state.
pub(crate) async fn reload_on_change(state: Weak<TlsState>, every: Duration) {
    let Some(paths) = state.upgrade().map(|state| state.files.files()) else {
        return;
    };
    let mut seen = stamps(&paths);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        let now = stamps(&paths);
        if now == seen {
            continue;
        }
        seen = now;
        let files = state.files.clone();
        let alpn = state.alpn;
        match tokio::task::spawn_blocking(move || server_config(&files, alpn)).await {
            Ok(Ok(Some(config))) => {
                *state
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
                tracing::info!(files = ?paths, "reloaded the TLS certificate");
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::error!(
                %error,
                "TLS reload failed; new connections keep the previous certificate"
            ),
            Err(error) => tracing::error!(%error, "TLS reload task failed"),
        }
    }
}
