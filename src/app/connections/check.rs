//! Checking a whole connection: the local field rules, then its plugin's
//! validation, then the plugin's answer against the plugin's own schema.

use std::collections::BTreeMap;
use std::sync::Arc;

use connvault_crypto::SecretMap;
use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::{Plugin, ProviderClient};

use super::conform::conform;
use super::rules::{check_display_name, check_product};
use super::spec::spec;
use crate::app::egress::targets;
use crate::app::tunnel::{check_tunnel, one_target};
use crate::app::{App, check_labels};
use crate::error::{ServiceError, Violation};
use crate::pb::v1;
use crate::plugin_messages::config_from_struct;

/// A connection checked by its plugin and ready to store.
pub(super) struct Checked {
    /// The plugin serving its data source.
    pub(super) plugin: Arc<Plugin>,
    /// The data source.
    pub(super) source: plugin::DataSource,
    /// The config as the plugin normalised it (defaults filled in).
    pub(super) normalized: BTreeMap<String, plugin::Value>,
    /// Where its test would connect, as the plugin reported (`None`: not said).
    pub(super) targets: Option<plugin::NetworkTargets>,
}

/// The plugin's violations, with paths relative to the request's `connection`.
pub(super) fn prefixed(violations: Vec<plugin::FieldViolation>) -> ServiceError {
    ServiceError::InvalidArgument(
        violations
            .into_iter()
            .map(|violation| Violation {
                field: format!("connection.{}", violation.field),
                description: violation.description,
            })
            .collect(),
    )
}

impl App {
    /// Local checks plus the plugin's validation of a whole connection.
    pub(super) async fn check(
        &self,
        connection: &v1::Connection,
        secrets: &SecretMap,
    ) -> Result<Checked, ServiceError> {
        let mut violations = Vec::new();
        check_display_name(&connection.display_name, &mut violations);
        check_labels(&connection.labels, "connection.labels", &mut violations);
        check_product(&connection.product, &mut violations);
        let source = match connection.data_source.as_str() {
            "" => {
                violations.push(Violation {
                    field: "connection.data_source".into(),
                    description: "is required".into(),
                });
                None
            }
            name => {
                let found = self.find_source(name);
                if found.is_none() {
                    violations.push(Violation {
                        field: "connection.data_source".into(),
                        description: "is not a data source of any loaded plugin (see ListDataSources)".into(),
                    });
                }
                found
            }
        };
        let config = match config_from_struct(connection.config.as_ref(), "connection.config") {
            Ok(config) => config,
            Err(mut bad) => {
                violations.append(&mut bad);
                BTreeMap::new()
            }
        };
        let Some((plugin, source)) = source else {
            return Err(ServiceError::InvalidArgument(violations));
        };
        if let Some(tunnel) = &connection.tunnel {
            check_tunnel(tunnel, secrets, &source, self.egress_dev(), &mut violations);
        }
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let mut request = plugin::ValidateRequest {
            connection: Some(spec(&source.id, config, secrets, connection.tls.as_ref())),
            secrets_elided: false,
            secret_fields_present: Vec::new(),
        };
        let answer = crate::metrics::observe_plugin_call(
            self.metrics(),
            plugin.name(),
            "validate",
            plugin.validate(&request, self.limits.validate),
        )
        .await?;
        // Only the config is kept from the request: its secrets go with the rest.
        let sent = request
            .connection
            .take()
            .map(|spec| spec.config)
            .unwrap_or_default();
        drop(request);
        if !answer.violations.is_empty() {
            return Err(prefixed(answer.violations));
        }
        conform(
            plugin.name(),
            &source,
            &sent,
            &answer.normalized_config,
            secrets,
        )?;
        if connection.tunnel.is_some() {
            let reached = targets(
                plugin.name(),
                &source,
                &answer.normalized_config,
                answer.targets.as_ref(),
            )?
            .map_or(0, |targets| targets.len());
            if let Some(violation) = one_target(reached) {
                return Err(ServiceError::InvalidArgument(vec![violation]));
            }
        }
        Ok(Checked {
            plugin,
            source,
            normalized: answer.normalized_config,
            targets: answer.targets,
        })
    }
}
