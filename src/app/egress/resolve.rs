//! Resolving a call's destinations once, checking every address, and the
//! grant the plugin gets.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use connvault_egress::{Action, Policy};
use connvault_plugin_abi::pb as plugin;

use super::targets::Target;
use crate::app::App;
use crate::error::{EgressDenial, ServiceError};

/// What checking a call's destinations decided.
#[derive(Debug)]
pub(in crate::app) enum Granted {
    /// Every destination resolved and is allowed: send this grant with the call.
    Approved(plugin::EgressGrant),
    /// A destination did not resolve (in time): the call could not connect,
    /// and the plugin is not asked to find it some other way.
    Unresolved {
        /// DNS, or TIMEOUT when resolving outlived the call's time.
        category: plugin::ErrorCategory,
        /// What happened, safe to show.
        message: String,
    },
}

/// The policy as the plugin protocol carries it.
fn to_plugin(policy: &Policy) -> plugin::EgressPolicy {
    let action = |action: Action| match action {
        Action::Allow => plugin::EgressAction::Allow as i32,
        Action::Deny => plugin::EgressAction::Deny as i32,
    };
    plugin::EgressPolicy {
        rules: policy
            .entries()
            .iter()
            .map(|entry| plugin::EgressRule {
                action: action(entry.action),
                pattern: entry.rule.to_string(),
                origin: entry.origin.clone(),
            })
            .collect(),
        default_action: action(policy.default_action()),
    }
}

/// The addresses `host` resolves to on `port`, within `timeout`: an
/// address literal is itself, a name is looked up once.
async fn lookup(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, Granted> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(address, port)]);
    }
    let unresolved = |category, message: String| Granted::Unresolved { category, message };
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(unresolved(
            plugin::ErrorCategory::Timeout,
            "resolving the host did not finish before the deadline".to_owned(),
        )),
        Ok(Err(error)) => Err(unresolved(
            plugin::ErrorCategory::Dns,
            format!("could not resolve host {host:?}: {error}"),
        )),
        Ok(Ok(addresses)) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if addresses.is_empty() {
                Err(unresolved(
                    plugin::ErrorCategory::Dns,
                    format!("host {host:?} resolved to no address"),
                ))
            } else {
                Ok(addresses)
            }
        }
    }
}

impl App {
    /// Resolves every destination of a call in `tenant` once, checks every
    /// address against the tenant's merged policy, and answers the grant to
    /// send with the call — or PERMISSION_DENIED naming the field and the
    /// rule, before anything is sent anywhere. `targets` is `None` when the
    /// data source (of `plugin_name`) does not say where it connects: the
    /// call is then refused unless `egress.allow_undeclared_targets`.
    pub(in crate::app) async fn grant_egress(
        &self,
        tenant: &str,
        plugin_name: &str,
        source_id: &str,
        targets: Option<Vec<Target>>,
        timeout: Duration,
    ) -> Result<Granted, ServiceError> {
        let policy = self.egress_policy(tenant).await?;
        let Some(targets) = targets else {
            if self.egress.settings.allow_undeclared_targets {
                return Ok(Granted::Approved(plugin::EgressGrant {
                    approved: Vec::new(),
                    policy: Some(to_plugin(&policy)),
                }));
            }
            return Err(ServiceError::FailedPrecondition(format!(
                "data source {source_id} (plugin {plugin_name}) does not say where it connects, \
                 so its egress cannot be checked; use a plugin that reports its targets, \
                 or set egress.allow_undeclared_targets"
            )));
        };
        let started = tokio::time::Instant::now();
        let mut approved = Vec::with_capacity(targets.len());
        for target in targets {
            let left = timeout.saturating_sub(started.elapsed());
            let addresses = match lookup(&target.host, target.port, left).await {
                Ok(addresses) => addresses,
                Err(unresolved) => return Ok(unresolved),
            };
            let literal = target.host.parse::<IpAddr>().is_ok();
            for address in &addresses {
                let verdict = policy.check(Some(&target.host), *address);
                if verdict.allowed() {
                    continue;
                }
                // A name's addresses are not shown: the refusal must not
                // turn the server into a resolver of internal names.
                let message = if literal {
                    format!(
                        "{}: the egress policy refuses {address} ({verdict})",
                        target.field
                    )
                } else {
                    format!(
                        "{}: {:?} resolves to an address the egress policy refuses ({verdict})",
                        target.field, target.host
                    )
                };
                tracing::info!(tenant, field = %target.field, rule = %verdict, "egress refused");
                return Err(ServiceError::EgressDenied(EgressDenial {
                    field: target.field,
                    rule: verdict.to_string(),
                    message,
                }));
            }
            approved.push(plugin::ApprovedTarget {
                host: target.host,
                port: u32::from(target.port),
                addresses: addresses
                    .iter()
                    .map(|address| address.ip().to_string())
                    .collect(),
                dial_port: 0,
            });
        }
        Ok(Granted::Approved(plugin::EgressGrant {
            approved,
            policy: Some(to_plugin(&policy)),
        }))
    }
}

/// The answer of a test whose destination did not resolve: the resolve
/// stage failed, every later stage skipped, as a plugin would report it.
pub(in crate::app) fn unresolved_test(
    category: plugin::ErrorCategory,
    message: String,
) -> plugin::TestResponse {
    use plugin::{Stage, StageStatus};
    let stage = |stage: Stage, status: StageStatus, message: &str| plugin::StageResult {
        stage: stage as i32,
        status: status as i32,
        duration_us: 0,
        message: message.to_owned(),
    };
    let mut stages = vec![stage(Stage::Resolve, StageStatus::Failed, &message)];
    for later in [
        Stage::Connect,
        Stage::Tls,
        Stage::Authenticate,
        Stage::Probe,
    ] {
        stages.push(stage(
            later,
            StageStatus::Skipped,
            "skipped: an earlier stage failed",
        ));
    }
    plugin::TestResponse {
        success: false,
        stages,
        error_category: category as i32,
        message,
        server_version: String::new(),
        duration_us: 0,
    }
}
