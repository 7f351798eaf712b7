//! Testing a connection through its plugin: a saved one (recording the
//! result on it) or one given inline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::{Plugin, ProviderClient};

use super::secrets::take_secrets;
use super::spec::{Opened, spec};
use crate::app::App;
use crate::app::egress::{Granted, targets, unresolved_test};
use crate::app::tunnel::{Route, tunnel_failed_test};
use crate::error::ServiceError;
use crate::names::{parse_connection, parse_tenant};
use crate::pb::v1;
use crate::plugin_messages::test_response;

/// Times a recorded test result is retried against concurrent writes.
const RECORD_ATTEMPTS: usize = 3;

impl App {
    /// Tests a saved connection (recording the result on it) or an inline one.
    pub async fn test_connection(
        &self,
        request: v1::TestConnectionRequest,
    ) -> Result<v1::TestConnectionResponse, ServiceError> {
        let timeout = match request.timeout_ms {
            0 => self.limits.test_default,
            ms => Duration::from_millis(u64::from(ms)),
        };
        if timeout > self.limits.test_max {
            return Err(ServiceError::invalid(
                "timeout_ms",
                format!("must be at most {}", self.limits.test_max.as_millis()),
            ));
        }
        let started = Instant::now();
        match request.target {
            Some(v1::test_connection_request::Target::Name(name)) => {
                let (tenant, _) = parse_connection(&name, "name")?;
                // Only the plugin, the source and the spec are kept: the rest
                // (the opened secrets among it) is dropped here.
                let Opened {
                    loaded,
                    secrets,
                    plugin,
                    source,
                    spec,
                } = self.open_for_plugin(&name).await?;
                let (spec, targets) = self.targets_of(&plugin, &source, spec).await?;
                let route = self
                    .route(
                        &tenant,
                        (plugin.name(), &source.id),
                        loaded.connection().tunnel.as_ref(),
                        &secrets,
                        targets,
                        timeout,
                    )
                    .await?;
                drop(secrets);
                let result = run_test(
                    self.metrics(),
                    &plugin,
                    &tenant,
                    spec,
                    route,
                    timeout,
                    started,
                )
                .await?;
                self.record_test(&name, &result).await;
                Ok(result)
            }
            Some(v1::test_connection_request::Target::Connection(mut connection)) => {
                let tenant = parse_tenant(&request.parent, "parent")?;
                self.require_tenant(&tenant, &request.parent).await?;
                let secrets = take_secrets(&mut connection);
                let checked = self.check(&connection, &secrets).await?;
                let targets = targets(
                    checked.plugin.name(),
                    &checked.source,
                    &checked.normalized,
                    checked.targets.as_ref(),
                )?;
                let route = self
                    .route(
                        &tenant,
                        (checked.plugin.name(), &checked.source.id),
                        connection.tunnel.as_ref(),
                        &secrets,
                        targets,
                        timeout,
                    )
                    .await?;
                let spec = spec(
                    &checked.source.id,
                    checked.normalized,
                    &secrets,
                    connection.tls.as_ref(),
                );
                drop(secrets);
                run_test(
                    self.metrics(),
                    &checked.plugin,
                    &tenant,
                    spec,
                    route,
                    timeout,
                    started,
                )
                .await
            }
            None => Err(ServiceError::invalid(
                "target",
                "name or connection is required",
            )),
        }
    }

    /// Records a test result on a saved connection; a lost race is logged, not fatal.
    async fn record_test(&self, name: &str, result: &v1::TestConnectionResponse) {
        for _ in 0..RECORD_ATTEMPTS {
            let Ok(loaded) = self.load(name, "name").await else {
                return;
            };
            let mut connection = loaded.connection().clone();
            connection.last_test = Some(result.clone());
            match self
                .write_back(
                    &loaded,
                    &connection,
                    &loaded.stored.sealed_secrets,
                    name,
                    None,
                )
                .await
                .map(|(connection, _)| connection)
            {
                Ok(_) => return,
                Err(ServiceError::Aborted(_)) => continue,
                Err(error) => {
                    tracing::warn!(connection = name, %error, "could not record the test result");
                    return;
                }
            }
        }
    }
}

/// Calls the plugin's test for `tenant` along `route`, in what is left of
/// `timeout` since `started` (resolving and the tunnel took some of it); a
/// destination that did not resolve or a tunnel that did not open is
/// answered without calling the plugin. The request (which holds the
/// secrets) is dropped as soon as the call returns, the tunnel right after.
async fn run_test(
    metrics: Option<&crate::metrics::Metrics>,
    plugin: &Arc<Plugin>,
    tenant: &str,
    spec: plugin::ConnectionSpec,
    route: Route,
    timeout: Duration,
    started: Instant,
) -> Result<v1::TestConnectionResponse, ServiceError> {
    let (egress, tunnel) = match route {
        Route::Direct(Granted::Approved(grant)) => (grant, None),
        Route::Direct(Granted::Unresolved { category, message }) => {
            return Ok(test_response(unresolved_test(category, message)));
        }
        Route::TunnelFailed { stage, category } => {
            return Ok(test_response(tunnel_failed_test(stage, category)));
        }
        Route::Tunnelled {
            tunnel,
            grant,
            stage,
        } => (grant, Some((tunnel, stage))),
    };
    let left = timeout.saturating_sub(started.elapsed());
    if left.is_zero() {
        return Ok(test_response(unresolved_test(
            plugin::ErrorCategory::Timeout,
            "resolving the host did not finish before the deadline".to_owned(),
        )));
    }
    let test = plugin::TestRequest {
        connection: Some(spec),
        deadline_ms: u32::try_from(left.as_millis()).unwrap_or(u32::MAX),
        egress: Some(egress),
    };
    // The host's deadline leaves the plugin its full time plus a margin to answer.
    let answer = crate::metrics::observe_plugin_call(
        metrics,
        plugin.name(),
        "test",
        plugin.test(tenant, &test, left + Duration::from_secs(1)),
    )
    .await;
    drop(test);
    let mut answer = answer?;
    if let Some((tunnel, stage)) = tunnel {
        tunnel.close().await;
        answer.duration_us = answer.duration_us.saturating_add(stage.duration_us);
        answer.stages.insert(0, stage);
    }
    Ok(test_response(answer))
}
