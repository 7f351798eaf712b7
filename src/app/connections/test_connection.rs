//! Testing a connection through its plugin: a saved one (recording the
//! result on it) or one given inline.

use std::time::Duration;

use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::ProviderClient;

use super::secrets::take_secrets;
use super::spec::{Opened, spec};
use crate::app::App;
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
        // The host's deadline leaves the plugin its full time plus a margin to answer.
        let host_deadline = timeout + Duration::from_secs(1);
        let deadline_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        match request.target {
            Some(v1::test_connection_request::Target::Name(name)) => {
                let (tenant, _) = parse_connection(&name, "name")?;
                // Only the plugin and the spec are kept: the rest (the opened
                // secrets among it) is dropped here.
                let Opened { plugin, spec, .. } = self.open_for_plugin(&name).await?;
                let test = plugin::TestRequest {
                    connection: Some(spec),
                    deadline_ms,
                };
                let result = test_response(plugin.test(&tenant, &test, host_deadline).await?);
                drop(test);
                self.record_test(&name, &result).await;
                Ok(result)
            }
            Some(v1::test_connection_request::Target::Connection(mut connection)) => {
                let tenant = parse_tenant(&request.parent, "parent")?;
                self.require_tenant(&tenant, &request.parent).await?;
                let secrets = take_secrets(&mut connection);
                let checked = self.check(&connection, &secrets).await?;
                let test = plugin::TestRequest {
                    connection: Some(spec(
                        &checked.source.id,
                        checked.normalized,
                        &secrets,
                        connection.tls.as_ref(),
                    )),
                    deadline_ms,
                };
                drop(secrets);
                Ok(test_response(
                    checked.plugin.test(&tenant, &test, host_deadline).await?,
                ))
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
