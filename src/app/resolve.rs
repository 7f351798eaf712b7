//! Resolve: the one call that hands a connection's secrets to a caller.

use std::time::Duration;

use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::{CallError, ProviderClient};

use super::App;
use super::connections::{Opened, exposed};
use crate::error::ServiceError;
use crate::pb::v1;

/// How long a plugin may take to render connection strings.
const RENDER_TIMEOUT: Duration = Duration::from_secs(5);

impl App {
    /// The stored connection, its secrets, and the plugin's rendered connection strings.
    pub async fn resolve_connection(
        &self,
        name: &str,
    ) -> Result<v1::ResolveConnectionResponse, ServiceError> {
        let Opened {
            loaded,
            secrets,
            plugin,
            spec,
            ..
        } = self.open_for_plugin(name).await?;
        let request = plugin::RenderRequest {
            connection: Some(spec),
            include_secrets: true,
        };
        let rendered = match crate::metrics::observe_plugin_call(
            self.metrics(),
            plugin.name(),
            "render",
            plugin.render(&request, RENDER_TIMEOUT),
        )
        .await
        {
            Ok(rendered) => Some(v1::RenderedConnection {
                uri: rendered.uri,
                jdbc_url: rendered.jdbc_url,
                dsn: rendered.dsn,
                env: rendered.env.into_iter().collect(),
            }),
            // A plugin that renders nothing still lets the caller have the parts.
            Err(CallError::Unimplemented { .. }) => None,
            Err(error) => return Err(error.into()),
        };
        drop(request);
        let (secrets, tls_client_key_pem) = exposed(&secrets);
        Ok(v1::ResolveConnectionResponse {
            connection: Some(loaded.into_view()),
            rendered,
            secrets,
            tls_client_key_pem: tls_client_key_pem.unwrap_or_default(),
        })
    }
}
