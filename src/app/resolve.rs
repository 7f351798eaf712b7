//! Resolve: the one call that hands a connection's secrets to a caller.

use std::time::Duration;

use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::{CallError, ProviderClient};

use super::App;
use secrecy::ExposeSecret;

use super::connections::{
    Opened, TUNNEL_KEY_SECRET, TUNNEL_PASSPHRASE_SECRET, TUNNEL_PASSWORD_SECRET, exposed,
};
use super::tunnel::ssh_command;
use crate::error::ServiceError;
use crate::pb::v1;

/// How long a plugin may take to render connection strings.
const RENDER_TIMEOUT: Duration = Duration::from_secs(5);

impl App {
    /// The stored connection, its secrets, and the plugin's rendered
    /// connection strings; with a tunnel, its secrets too, and the `ssh`
    /// command line and local endpoint that use it.
    pub async fn resolve_connection(
        &self,
        name: &str,
    ) -> Result<v1::ResolveConnectionResponse, ServiceError> {
        let Opened {
            loaded,
            secrets,
            plugin,
            source,
            spec,
        } = self.open_for_plugin(name).await?;
        let tunnel = loaded.connection().tunnel.clone();
        // The tunnel's rendering needs the one destination it forwards.
        let (spec, tunnelled) = match &tunnel {
            Some(tunnel) => {
                let (spec, targets) = self.targets_of(&plugin, &source, spec).await?;
                let rendered = match targets.as_deref() {
                    Some([database]) => Some(ssh_command(
                        tunnel,
                        database,
                        secrets.contains_key(TUNNEL_KEY_SECRET),
                    )),
                    _ => None,
                };
                (spec, rendered)
            }
            None => (spec, None),
        };
        let request = plugin::RenderRequest {
            connection: Some(spec),
            include_secrets: true,
        };
        let (ssh_command, local_endpoint) = tunnelled.unwrap_or_default();
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
                ssh_command,
                local_endpoint,
            }),
            // A plugin that renders nothing still lets the caller have the parts.
            Err(CallError::Unimplemented { .. }) => {
                (!ssh_command.is_empty()).then(|| v1::RenderedConnection {
                    ssh_command,
                    local_endpoint,
                    ..Default::default()
                })
            }
            Err(error) => return Err(error.into()),
        };
        drop(request);
        let (named, tls_client_key_pem) = exposed(&secrets);
        let reveal = |entry: &str| {
            secrets
                .get(entry)
                .map(|value| value.expose_secret().to_owned())
                .unwrap_or_default()
        };
        Ok(v1::ResolveConnectionResponse {
            tunnel_private_key: reveal(TUNNEL_KEY_SECRET),
            tunnel_private_key_passphrase: reveal(TUNNEL_PASSPHRASE_SECRET),
            tunnel_password: reveal(TUNNEL_PASSWORD_SECRET),
            connection: Some(loaded.into_view()),
            rendered,
            secrets: named,
            tls_client_key_pem: tls_client_key_pem.unwrap_or_default(),
        })
    }
}
