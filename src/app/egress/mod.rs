//! The egress policy at the server: before a plugin is asked to test or
//! discover a connection, every destination the connection names is
//! resolved once here and checked against the merged policy (the server's
//! rules, the tenant's, the server's own listeners, the built-in denials);
//! a refused destination is PERMISSION_DENIED and the plugin is not called.
//! Otherwise the plugin gets the approved addresses and the policy in the
//! request (`EgressGrant`), and connects only there: it never resolves the
//! host name again, so DNS cannot answer differently the second time.
//!
//! - [`targets`]: where a call would connect, as the plugin's validate
//!   answer says, or read from `host`/`port` fields for older plugins.
//! - [`resolve`]: resolving, checking and building the grant.
//!
//! docs/security.md ("Egress") states the policy and its order.

mod resolve;
mod targets;

use std::net::SocketAddr;
use std::sync::RwLock;

use connvault_egress::{Layers, Policy, Rule};

use super::App;
use crate::config::{EgressConfig, EgressDefault};
use crate::error::{ServiceError, Violation};
use crate::pb::v1;

pub(in crate::app) use self::resolve::{Granted, unresolved_test};
pub(in crate::app) use self::targets::{Target, targets};

/// Most rules in a tenant's `allow` or `deny` list.
pub const MAX_TENANT_RULES: usize = 64;

/// The server's egress settings, parsed from its configuration.
#[derive(Debug, Clone, Default)]
pub struct EgressSettings {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    default_deny: bool,
    dev: bool,
    allow_undeclared_targets: bool,
}

impl EgressSettings {
    /// Parses `config`'s rules; the error names the first bad rule by its
    /// setting and position (`egress.allow[2]`).
    pub fn from_config(config: &EgressConfig, dev: bool) -> Result<Self, String> {
        let parse = |rules: &[String], setting: &str| {
            rules
                .iter()
                .enumerate()
                .map(|(index, text)| {
                    text.parse::<Rule>()
                        .map_err(|error| format!("{setting}[{index}] `{text}` {error}"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            allow: parse(&config.allow, "egress.allow")?,
            deny: parse(&config.deny, "egress.deny")?,
            default_deny: config.default == EgressDefault::Deny,
            dev,
            allow_undeclared_targets: config.allow_undeclared_targets,
        })
    }
}

/// The egress settings and the addresses this server listens on.
#[derive(Debug, Default)]
pub(super) struct EgressState {
    settings: EgressSettings,
    listeners: RwLock<Vec<SocketAddr>>,
}

impl EgressState {
    pub(super) fn new(settings: EgressSettings) -> Self {
        Self {
            settings,
            listeners: RwLock::default(),
        }
    }
}

/// A tenant's rules, checked: each list at most [`MAX_TENANT_RULES`] rules,
/// each rule valid; violations name `path.allow[i]` / `path.deny[i]`.
pub fn check_tenant_rules(egress: &v1::EgressPolicy, path: &str, violations: &mut Vec<Violation>) {
    for (list, name) in [(&egress.allow, "allow"), (&egress.deny, "deny")] {
        if list.len() > MAX_TENANT_RULES {
            violations.push(Violation {
                field: format!("{path}.{name}"),
                description: format!("must have at most {MAX_TENANT_RULES} rules"),
            });
            continue;
        }
        for (index, text) in list.iter().enumerate() {
            if let Err(error) = text.parse::<Rule>() {
                violations.push(Violation {
                    field: format!("{path}.{name}[{index}]"),
                    description: format!("{error}"),
                });
            }
        }
    }
}

/// A stored tenant's rules. They were checked when written; one that no
/// longer parses restricts rather than widens: an allow rule is dropped, a
/// deny rule denies everything.
fn stored_rules(texts: &[String], deny: bool) -> Vec<Rule> {
    texts
        .iter()
        .filter_map(|text| match text.parse::<Rule>() {
            Ok(rule) => Some(rule),
            Err(_) if deny => Some(Rule::any_port(connvault_egress::Destination::Any)),
            Err(_) => None,
        })
        .collect()
}

impl App {
    /// Uses `settings` for every test and discovery (the default denies
    /// loopback, link-local and the other built-in destinations).
    pub fn with_egress(mut self, settings: EgressSettings) -> Self {
        self.egress = EgressState::new(settings);
        self
    }

    /// Records the addresses the server listens on: only a server allow
    /// rule lets a test reach them.
    pub fn set_listeners(&self, listeners: &[SocketAddr]) {
        if let Ok(mut current) = self.egress.listeners.write() {
            *current = listeners.to_vec();
        }
    }

    /// Whether the server runs with `--dev` (a tunnel may then pin no host key).
    pub(in crate::app) fn egress_dev(&self) -> bool {
        self.egress.settings.dev
    }

    /// The merged policy for a call in `tenant`.
    async fn egress_policy(&self, tenant: &str) -> Result<Policy, ServiceError> {
        let name = crate::names::tenant_name(tenant);
        let stored = self.get_tenant(&name).await?.egress.unwrap_or_default();
        let tenant_allow = stored_rules(&stored.allow, false);
        let tenant_deny = stored_rules(&stored.deny, true);
        let listeners = self
            .egress
            .listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let settings = &self.egress.settings;
        Ok(Layers {
            server_deny: &settings.deny,
            server_allow: &settings.allow,
            tenant_deny: &tenant_deny,
            tenant_allow: &tenant_allow,
            listeners: &listeners,
            dev: settings.dev,
            default_deny: settings.default_deny,
        }
        .policy())
    }
}
