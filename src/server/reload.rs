//! What the running server reloads without a restart: the plugin directory
//! on SIGHUP, the token verification keys when their JWKS file changes.

use std::path::Path;
use std::sync::Arc;

use secrecy::SecretString;

use crate::app::App;
use crate::auth;

/// Reloads the plugin directory on each SIGHUP (as `ReloadPlugins` does).
pub(super) async fn reload_plugins_on_hangup(app: Arc<App>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGHUP; plugins reload only through ReloadPlugins");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading plugins");
        if let Err(error) = app.reload_plugins().await {
            tracing::error!(%error, "plugin reload failed");
        }
    }
}

/// Reloads the JWKS file when its modification time changes.
pub(super) async fn reload_keys_on_change(
    path: std::path::PathBuf,
    config: auth::AuthConfig,
    hs256: Option<SecretString>,
    keys: Arc<std::sync::RwLock<auth::KeySet>>,
) {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut seen = modified(&path);
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        ticker.tick().await;
        let now = modified(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match auth::load_keys(&config, hs256.as_ref()) {
            Ok(fresh) => {
                if let Ok(mut current) = keys.write() {
                    *current = fresh;
                    tracing::info!(file = %path.display(), "reloaded token verification keys");
                }
            }
            Err(error) => {
                tracing::error!(file = %path.display(), %error, "JWKS reload failed; keeping the previous keys")
            }
        }
    }
}
