//! The plugin's view of a connection, and the one way a saved connection is
//! loaded for a plugin call: load, open its secrets, find its plugin, parse
//! its config, build the spec.

use std::collections::BTreeMap;
use std::sync::Arc;

use connvault_crypto::SecretMap;
use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::{Plugin, ProviderClient};

use super::check::prefixed;
use super::records::Loaded;
use super::secrets::exposed;
use crate::app::App;
use crate::app::egress::{Target, targets};
use crate::error::ServiceError;
use crate::pb::v1;
use crate::plugin_messages::{config_from_struct, tls_to_plugin};

/// The plugin's view of a connection, secrets included (drop it right after the call).
pub(super) fn spec(
    source_id: &str,
    config: BTreeMap<String, plugin::Value>,
    secrets: &SecretMap,
    tls: Option<&v1::TlsConfig>,
) -> plugin::ConnectionSpec {
    let (secrets, client_key) = exposed(secrets);
    plugin::ConnectionSpec {
        data_source: source_id.to_owned(),
        config,
        secrets,
        tls: tls_to_plugin(tls, client_key.as_deref()),
    }
}

/// A saved connection opened for a plugin call. It holds secrets in plain
/// text (`secrets` and `spec`): drop it, or what is kept of it, right after the call.
pub(in crate::app) struct Opened {
    /// The stored connection.
    pub(in crate::app) loaded: Loaded,
    /// Its opened secrets.
    pub(in crate::app) secrets: SecretMap,
    /// The plugin serving its data source.
    pub(in crate::app) plugin: Arc<Plugin>,
    /// The data source, as its plugin describes it.
    pub(in crate::app) source: plugin::DataSource,
    /// The connection as the plugin sees it.
    pub(in crate::app) spec: plugin::ConnectionSpec,
}

impl App {
    /// The loaded plugin serving data source `name` (an id or an alias), and the source.
    pub(super) fn find_source(&self, name: &str) -> Option<(Arc<Plugin>, plugin::DataSource)> {
        self.plugins()
            .find(name)
            .map(|(plugin, source)| (Arc::clone(plugin), source.clone()))
    }

    /// Saved connection `name` ready for a plugin call (test, resolve, discover).
    pub(in crate::app) async fn open_for_plugin(&self, name: &str) -> Result<Opened, ServiceError> {
        let loaded = self.load(name, "name").await?;
        let secrets = self.open(&loaded)?;
        let connection = loaded.connection();
        let (plugin, source) = self.find_source(&connection.data_source).ok_or_else(|| {
            ServiceError::FailedPrecondition(format!(
                "no loaded plugin serves data source {}",
                connection.data_source
            ))
        })?;
        let config = config_from_struct(connection.config.as_ref(), "connection.config")
            .map_err(ServiceError::InvalidArgument)?;
        let spec = spec(&source.id, config, &secrets, connection.tls.as_ref());
        Ok(Opened {
            loaded,
            secrets,
            plugin,
            source,
            spec,
        })
    }

    /// Where a call through `plugin` for `spec` would connect: the plugin's
    /// validate answer says (or, for an older plugin, the `host`/`port`
    /// fields). `spec` goes into the validate request and comes back out,
    /// so its secrets are not copied. A connection the plugin no longer
    /// accepts is INVALID_ARGUMENT, as its test would be.
    pub(in crate::app) async fn targets_of(
        &self,
        plugin: &Arc<Plugin>,
        source: &plugin::DataSource,
        spec: plugin::ConnectionSpec,
    ) -> Result<(plugin::ConnectionSpec, Option<Vec<Target>>), ServiceError> {
        let mut request = plugin::ValidateRequest {
            connection: Some(spec),
            secrets_elided: false,
            secret_fields_present: Vec::new(),
        };
        let answer = crate::metrics::observe_plugin_call(
            self.metrics(),
            plugin.name(),
            "validate",
            plugin.validate(&request, self.limits.validate),
        )
        .await;
        let spec = request.connection.take().unwrap_or_default();
        let answer = answer?;
        if !answer.violations.is_empty() {
            return Err(prefixed(answer.violations));
        }
        let targets = targets(
            plugin.name(),
            source,
            &answer.normalized_config,
            answer.targets.as_ref(),
        )?;
        Ok((spec, targets))
    }
}
