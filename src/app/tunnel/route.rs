//! The route of one test or discovery: straight to the data source, or
//! through the connection's SSH tunnel, which the server opens here before
//! calling the plugin and closes after.
//!
//! With a tunnel, the egress policy is checked against the bastion (the
//! only address this server dials); the data source's host is resolved
//! and reached on the bastion's side. The plugin gets a grant that approves
//! the data source's host name at the tunnel's loopback end
//! (`ApprovedTarget.dial_port`), so it still presents that name for TLS.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use connvault_crypto::SecretMap;
use connvault_plugin_abi::pb as plugin;
use connvault_tunnel::{Auth, Failure, HostKeys, Limits, Tunnel, TunnelConfig};

use super::rules::DEFAULT_SSH_PORT;
use crate::app::App;
use crate::app::connections::{
    TUNNEL_KEY_SECRET, TUNNEL_PASSPHRASE_SECRET, TUNNEL_PASSWORD_SECRET,
};
use crate::app::egress::{Granted, Target};
use crate::error::ServiceError;
use crate::pb::v1;

/// Most connections a plugin may open through one tunnel during one call.
const MAX_CHANNELS: usize = 16;

/// How a call reaches its data source.
pub(in crate::app) enum Route {
    /// Directly, as the egress check decided.
    Direct(Granted),
    /// Through an open tunnel: send `grant` with the call, keep `tunnel`
    /// until it returns, and report `stage` first.
    Tunnelled {
        /// The tunnel, open until dropped.
        tunnel: Tunnel,
        /// The grant that points the plugin at the tunnel's local end.
        grant: plugin::EgressGrant,
        /// The tunnel stage's report.
        stage: plugin::StageResult,
    },
    /// The tunnel did not open: the plugin is not called.
    TunnelFailed {
        /// The tunnel stage's report (failed).
        stage: plugin::StageResult,
        /// Its category.
        category: plugin::ErrorCategory,
    },
}

/// The category a tunnel failure is reported under.
fn category(failure: Failure) -> plugin::ErrorCategory {
    use plugin::ErrorCategory as C;
    match failure {
        Failure::Unreachable => C::TunnelUnreachable,
        Failure::HostKey => C::TunnelHostKey,
        Failure::Auth => C::TunnelAuth,
        Failure::Forward => C::TunnelForward,
        Failure::Timeout => C::Timeout,
        Failure::Protocol => C::Protocol,
        Failure::Config => C::Config,
        _ => C::Internal,
    }
}

/// A tunnel stage's report.
fn stage(status: plugin::StageStatus, started: Instant, message: String) -> plugin::StageResult {
    plugin::StageResult {
        stage: plugin::Stage::Tunnel as i32,
        status: status as i32,
        duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        message,
    }
}

/// The tunnel's settings with its secrets, as the SSH client takes them;
/// an unusable stored tunnel is FAILED_PRECONDITION (it was checked when
/// written, but the server may no longer run with `--dev`).
fn tunnel_config(
    tunnel: &v1::SshTunnel,
    secrets: &SecretMap,
    dev: bool,
) -> Result<TunnelConfig, ServiceError> {
    let auth = match (
        secrets.get(TUNNEL_KEY_SECRET),
        secrets.get(TUNNEL_PASSWORD_SECRET),
    ) {
        (Some(key), _) => Auth::Key {
            key: key.clone(),
            passphrase: secrets.get(TUNNEL_PASSPHRASE_SECRET).cloned(),
        },
        (None, Some(password)) => Auth::Password(password.clone()),
        (None, None) => {
            return Err(ServiceError::FailedPrecondition(
                "the connection's tunnel has no private key or password stored".into(),
            ));
        }
    };
    let host_keys = if !tunnel.host_key_fingerprints.is_empty() {
        HostKeys::Pinned(tunnel.host_key_fingerprints.clone())
    } else if dev {
        HostKeys::AnyUnverified
    } else {
        return Err(ServiceError::FailedPrecondition(
            "the connection's tunnel pins no host key, which only a --dev server accepts; set tunnel.host_key_fingerprints".into(),
        ));
    };
    Ok(TunnelConfig {
        host: tunnel.host.clone(),
        port: bastion_port(tunnel),
        user: tunnel.user.clone(),
        auth,
        host_keys,
    })
}

/// The tunnel's SSH port (22 when unset).
pub(in crate::app) fn bastion_port(tunnel: &v1::SshTunnel) -> u16 {
    u16::try_from(tunnel.port)
        .ok()
        .filter(|port| *port > 0)
        .unwrap_or(DEFAULT_SSH_PORT)
}

impl App {
    /// Decides how a call in `tenant` reaches its `targets`: directly (the
    /// egress check of [`App::grant_egress`]), or, for a connection with a
    /// `tunnel` (its secrets in `secrets`), through the tunnel opened here
    /// within `timeout`. PERMISSION_DENIED when the policy refuses the
    /// bastion; FAILED_PRECONDITION when the connection does not reach
    /// exactly one target.
    pub(in crate::app) async fn route(
        &self,
        tenant: &str,
        (plugin_name, source_id): (&str, &str),
        tunnel: Option<&v1::SshTunnel>,
        secrets: &SecretMap,
        targets: Option<Vec<Target>>,
        timeout: Duration,
    ) -> Result<Route, ServiceError> {
        let Some(tunnel) = tunnel else {
            let granted = self
                .grant_egress(tenant, plugin_name, source_id, targets, timeout)
                .await?;
            return Ok(Route::Direct(granted));
        };
        let started = Instant::now();
        let database = match targets.as_deref() {
            Some([one]) => one.clone(),
            other => {
                return Err(ServiceError::FailedPrecondition(format!(
                    "a tunnel forwards one host and port, and this connection of {source_id} reaches {}",
                    other.map_or(0, <[Target]>::len)
                )));
            }
        };
        let config = tunnel_config(tunnel, secrets, self.egress_dev())?;
        let bastion = Target {
            field: "tunnel.host".into(),
            host: config.host.clone(),
            port: config.port,
        };
        let granted = self
            .grant_egress(tenant, plugin_name, source_id, Some(vec![bastion]), timeout)
            .await?;
        let failed = |failure: plugin::ErrorCategory, message: String| Route::TunnelFailed {
            stage: stage(plugin::StageStatus::Failed, started, message),
            category: failure,
        };
        let grant = match granted {
            Granted::Approved(grant) => grant,
            Granted::Unresolved { category, message } => {
                let category = if category == plugin::ErrorCategory::Timeout {
                    category
                } else {
                    plugin::ErrorCategory::TunnelUnreachable
                };
                return Ok(failed(category, format!("the bastion: {message}")));
            }
        };
        let addresses: Vec<SocketAddr> = grant
            .approved
            .iter()
            .flat_map(|target| target.addresses.iter())
            .filter_map(|address| address.parse::<IpAddr>().ok())
            .map(|address| SocketAddr::new(address, config.port))
            .collect();
        let left = timeout.saturating_sub(started.elapsed());
        let opened = connvault_tunnel::open(
            &config,
            &addresses,
            (&database.host, database.port),
            left,
            Limits {
                max_channels: MAX_CHANNELS,
            },
        )
        .await;
        let tunnel_open = match opened {
            Ok(open) => open,
            Err(error) => {
                tracing::info!(tenant, bastion = %config.host, failure = ?error.failure, "tunnel did not open");
                return Ok(failed(category(error.failure), error.message));
            }
        };
        let pinned = match config.host_keys {
            HostKeys::Pinned(_) => "pinned",
            _ => "NOT VERIFIED: no fingerprint pinned (--dev)",
        };
        let login = match config.auth {
            Auth::Key { .. } => "a private key",
            Auth::Password(_) => "a password",
        };
        let message = format!(
            "bastion {} (host key {}, {pinned}); logged in as {:?} with {login}; channel open to {}:{}",
            tunnel_open.opened().bastion,
            tunnel_open.opened().host_key,
            config.user,
            database.host,
            database.port
        );
        tracing::info!(tenant, bastion = %tunnel_open.opened().bastion, "tunnel opened");
        let local = tunnel_open.local_addr();
        let grant = plugin::EgressGrant {
            approved: vec![plugin::ApprovedTarget {
                host: database.host,
                port: u32::from(database.port),
                addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST).to_string()],
                dial_port: u32::from(local.port()),
            }],
            // Nothing but the tunnel's local end may be dialled.
            policy: None,
        };
        Ok(Route::Tunnelled {
            tunnel: tunnel_open,
            grant,
            stage: stage(plugin::StageStatus::Ok, started, message),
        })
    }
}

/// The answer of a test whose tunnel did not open: the tunnel stage
/// failed, every later stage skipped.
pub(in crate::app) fn tunnel_failed_test(
    stage: plugin::StageResult,
    category: plugin::ErrorCategory,
) -> plugin::TestResponse {
    use plugin::{Stage, StageStatus};
    let message = stage.message.clone();
    let duration_us = stage.duration_us;
    let mut stages = vec![stage];
    for later in [
        Stage::Resolve,
        Stage::Connect,
        Stage::Tls,
        Stage::Authenticate,
        Stage::Probe,
    ] {
        stages.push(plugin::StageResult {
            stage: later as i32,
            status: StageStatus::Skipped as i32,
            duration_us: 0,
            message: "skipped: an earlier stage failed".into(),
        });
    }
    plugin::TestResponse {
        success: false,
        stages,
        error_category: category as i32,
        message,
        server_version: String::new(),
        duration_us,
    }
}

/// The error a discovery whose tunnel did not open returns.
pub(in crate::app) fn tunnel_failed_error(
    stage: &plugin::StageResult,
    category: plugin::ErrorCategory,
) -> ServiceError {
    use plugin::ErrorCategory as C;
    let message = format!("the SSH tunnel did not open: {}", stage.message);
    match category {
        C::Timeout => ServiceError::DeadlineExceeded(message),
        C::TunnelHostKey | C::TunnelAuth | C::Config => ServiceError::FailedPrecondition(message),
        C::Internal => ServiceError::Internal(message),
        _ => ServiceError::Unavailable(message),
    }
}
