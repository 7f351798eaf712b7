//! Resolve: the one call that hands a connection's secrets to a caller.

use std::time::Duration;

use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::ProviderClient;
use secrecy::ExposeSecret;

use super::App;
use crate::error::ServiceError;
use crate::pb::v1;
use crate::plugin_messages::config_from_struct;

impl App {
    /// The stored connection, its secrets, and the plugin's rendered connection strings.
    pub async fn resolve_connection(
        &self,
        name: &str,
    ) -> Result<v1::ResolveConnectionResponse, ServiceError> {
        let loaded = self.load(name, "name").await?;
        let secrets = self.open(&loaded)?;
        let connection = self.view(&loaded)?;
        let (plugin, source) = self.find_source(&connection.data_source).ok_or_else(|| {
            ServiceError::FailedPrecondition(format!(
                "no loaded plugin serves data source {}",
                connection.data_source
            ))
        })?;
        let config = config_from_struct(connection.config.as_ref(), "connection.config")
            .map_err(ServiceError::InvalidArgument)?;
        let request = plugin::RenderRequest {
            connection: Some(super::connections::spec(
                &source.id,
                config,
                &secrets,
                connection.tls.as_ref(),
            )),
            include_secrets: true,
        };
        let rendered = match plugin.render(&request, Duration::from_secs(5)).await {
            Ok(rendered) => Some(v1::RenderedConnection {
                uri: rendered.uri,
                jdbc_url: rendered.jdbc_url,
                dsn: rendered.dsn,
                env: rendered.env.into_iter().collect(),
            }),
            // A plugin that renders nothing still lets the caller have the parts.
            Err(connvault_plugin_host::CallError::Unimplemented { .. }) => None,
            Err(error) => return Err(error.into()),
        };
        drop(request);
        let mut response = v1::ResolveConnectionResponse {
            connection: Some(connection),
            rendered,
            ..Default::default()
        };
        for (field, value) in secrets.iter() {
            if field == super::connections::TLS_KEY_SECRET {
                response.tls_client_key_pem = value.expose_secret().to_owned();
            } else {
                response
                    .secrets
                    .insert(field.to_owned(), value.expose_secret().to_owned());
            }
        }
        Ok(response)
    }
}
