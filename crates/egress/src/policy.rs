//! A policy: rules in order, the first that matches decides, and a default
//! for a destination no rule matches. [`Layers`] builds one from the
//! server's settings, a tenant's rules and the built-in denials, in the one
//! order this crate defines.

use std::fmt;
use std::net::SocketAddr;

use crate::rule::{Destination, Net, Rule};

/// What a rule does with a destination it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The connection may be made.
    Allow,
    /// The connection must not be made.
    Deny,
}

/// One rule of a policy and where it comes from (`egress.deny[0]`,
/// `built-in: loopback`), which a refusal names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Allow or deny.
    pub action: Action,
    /// What it matches.
    pub rule: Rule,
    /// Where it comes from, in words safe to show.
    pub origin: String,
}

/// Rules in order (the first match decides) and the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    entries: Vec<Entry>,
    default: Action,
}

/// The decision about one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Allow or deny.
    pub action: Action,
    /// The rule that decided, with its origin; `None` when the default did.
    pub entry: Option<Entry>,
}

impl Verdict {
    /// Whether the connection may be made.
    pub fn allowed(&self) -> bool {
        self.action == Action::Allow
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some(entry) => write!(formatter, "{} `{}`", entry.origin, entry.rule),
            None => match self.action {
                Action::Allow => formatter.write_str("the default (allow)"),
                Action::Deny => formatter.write_str("the default (deny): no allow rule matches"),
            },
        }
    }
}

impl Policy {
    /// A policy with no rules that answers `default`.
    pub fn new(default: Action) -> Policy {
        Policy {
            entries: Vec::new(),
            default,
        }
    }

    /// Appends a rule (it loses to every rule before it).
    pub fn push(&mut self, action: Action, rule: Rule, origin: impl Into<String>) {
        self.entries.push(Entry {
            action,
            rule,
            origin: origin.into(),
        });
    }

    /// The rules in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// What a destination no rule matches gets.
    pub fn default_action(&self) -> Action {
        self.default
    }

    /// The decision for a connection to `address`, reached through the host
    /// name `host` (`None` when there is none): the first matching rule's, or
    /// the default.
    pub fn check(&self, host: Option<&str>, address: SocketAddr) -> Verdict {
        match self
            .entries
            .iter()
            .find(|entry| entry.rule.matches(host, address))
        {
            Some(entry) => Verdict {
                action: entry.action,
                entry: Some(entry.clone()),
            },
            None => Verdict {
                action: self.default,
                entry: None,
            },
        }
    }
}

/// The networks denied unless a rule allows them, by name. Loopback is first
/// so that `--dev` can leave it out.
pub const BUILT_IN_DENIALS: &[(&str, &[&str])] = &[
    ("loopback", &["127.0.0.0/8", "::1"]),
    ("unspecified (\"this host\")", &["0.0.0.0/8", "::"]),
    ("link-local", &["169.254.0.0/16", "fe80::/10"]),
    (
        "cloud metadata",
        &["169.254.169.254", "fd00:ec2::254", "100.100.100.200"],
    ),
    ("multicast", &["224.0.0.0/4", "ff00::/8"]),
    ("reserved and broadcast", &["240.0.0.0/4"]),
];

/// The layers of an effective policy, merged by [`Layers::policy`] in this
/// order (the first matching rule decides):
///
/// 1. the server's deny rules (`egress.deny`): nothing overrides them;
/// 2. the tenant's deny rules;
/// 3. the server's allow rules (`egress.allow`);
/// 4. the server's own listeners (only a server allow rule opens them);
/// 5. the tenant's allow rules;
/// 6. the built-in denials ([`BUILT_IN_DENIALS`]; loopback not in `--dev`);
/// 7. the default (`egress.default`, allow unless configured otherwise).
#[derive(Debug, Clone, Default)]
pub struct Layers<'a> {
    /// `egress.deny`.
    pub server_deny: &'a [Rule],
    /// `egress.allow`.
    pub server_allow: &'a [Rule],
    /// The tenant's deny rules.
    pub tenant_deny: &'a [Rule],
    /// The tenant's allow rules.
    pub tenant_allow: &'a [Rule],
    /// The addresses the server listens on.
    pub listeners: &'a [SocketAddr],
    /// Development mode: loopback is not denied by default.
    pub dev: bool,
    /// Deny what no rule matches (`egress.default = "deny"`).
    pub default_deny: bool,
}

impl Layers<'_> {
    /// The merged policy.
    pub fn policy(&self) -> Policy {
        let default = if self.default_deny {
            Action::Deny
        } else {
            Action::Allow
        };
        let mut policy = Policy::new(default);
        let layers = [
            (Action::Deny, self.server_deny, "egress.deny"),
            (Action::Deny, self.tenant_deny, "tenant egress.deny"),
            (Action::Allow, self.server_allow, "egress.allow"),
        ];
        for (action, rules, origin) in layers {
            for (index, rule) in rules.iter().enumerate() {
                policy.push(action, rule.clone(), format!("{origin}[{index}]"));
            }
        }
        for listener in self.listeners {
            policy.push(
                Action::Deny,
                listener_rule(*listener),
                "built-in: this server's listener",
            );
        }
        for (index, rule) in self.tenant_allow.iter().enumerate() {
            policy.push(
                Action::Allow,
                rule.clone(),
                format!("tenant egress.allow[{index}]"),
            );
        }
        for (name, networks) in BUILT_IN_DENIALS {
            if self.dev && *name == "loopback" {
                continue;
            }
            for network in *networks {
                if let Ok(rule) = network.parse::<Rule>() {
                    policy.push(Action::Deny, rule, format!("built-in: {name}"));
                }
            }
        }
        policy
    }
}

/// The rule naming a listener: its address and port, or — for a listener
/// on the unspecified address, reachable at every address of the machine —
/// every local address on its port.
fn listener_rule(listener: SocketAddr) -> Rule {
    let destination = if listener.ip().is_unspecified() {
        Destination::Local
    } else {
        let full = if listener.is_ipv4() { 32 } else { 128 };
        match Net::new(listener.ip(), full) {
            Ok(net) => Destination::Net(net),
            Err(_) => Destination::Local,
        }
    };
    Rule {
        destination,
        ports: crate::rule::Ports {
            first: listener.port(),
            last: listener.port(),
        },
    }
}
