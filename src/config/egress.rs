//! The `[egress]` section: where tests and discovery may connect.

use serde::Deserialize;

/// The server's egress policy (see docs/security.md, "Egress"): rules in
/// `connvault_egress` syntax (`10.0.0.0/8`, `db.example.com:5432`,
/// `*.corp.example`, `local`, `*`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    /// Destinations to allow, even those the built-in rules deny.
    pub allow: Vec<String>,
    /// Destinations to deny; nothing overrides them.
    pub deny: Vec<String>,
    /// What a destination no rule matches gets.
    pub default: EgressDefault,
    /// Test and discover data sources that do not say where they connect
    /// (the policy is then enforced only by the plugin, if at all).
    pub allow_undeclared_targets: bool,
}

/// What a destination no egress rule matches gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum EgressDefault {
    /// Allowed (customers' databases live anywhere, private networks included).
    #[default]
    Allow,
    /// Denied: only what an allow rule names may be reached.
    Deny,
}
