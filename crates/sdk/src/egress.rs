//! Where a plugin call may connect: the host's [`pb::EgressGrant`], read
//! once per call, and the checks a provider makes before it dials.
//!
//! The host resolves each target a connection reports (see
//! [`Provider::targets`](crate::Provider::targets)), checks every address
//! against its egress policy, and sends the approved addresses with the
//! request. A provider then:
//!
//! 1. takes a target's addresses from [`Egress::approved`] instead of
//!    resolving its host name again (a second lookup could answer with an
//!    address the host never checked: DNS rebinding);
//! 2. calls [`Egress::permits`] for every address right before it connects,
//!    and sends nothing to an address it refuses.
//!
//! A host older than the grant sends none: then nothing is restricted.

use std::net::{IpAddr, SocketAddr};

use connvault_egress::{Action, Destination, Policy, Rule};

use crate::pb;

/// Why an address may not be dialled, in words safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A target the host approved and the addresses it approved for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Approved {
    host: String,
    port: u16,
    /// The port to dial: `port`, or the local end of the host's SSH tunnel.
    dial_port: u16,
    addresses: Vec<IpAddr>,
}

/// What the host lets one call connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Egress {
    /// `None`: the host sent no grant (an older host), nothing is restricted.
    grant: Option<Grant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    approved: Vec<Approved>,
    /// `None`: only approved addresses may be dialled.
    policy: Option<Policy>,
}

/// Host names compare without case and without a trailing dot.
fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

impl Egress {
    /// Reads the host's grant. Whatever cannot be read restricts more, never
    /// less: an address that does not parse is left out, an allow rule that
    /// does not parse is dropped, a deny rule that does not parse denies
    /// everything.
    pub fn from_grant(grant: Option<pb::EgressGrant>) -> Egress {
        let Some(grant) = grant else {
            return Egress::default();
        };
        let approved = grant
            .approved
            .into_iter()
            .map(|target| {
                let port = u16::try_from(target.port).unwrap_or(0);
                let dial_port = match target.dial_port {
                    0 => port,
                    other => u16::try_from(other).unwrap_or(0),
                };
                Approved {
                    host: target.host,
                    port,
                    dial_port,
                    addresses: target
                        .addresses
                        .iter()
                        .filter_map(|address| address.parse().ok())
                        .collect(),
                }
            })
            .collect();
        let policy = grant.policy.map(|policy| {
            let default = match pb::EgressAction::try_from(policy.default_action) {
                Ok(pb::EgressAction::Allow) => Action::Allow,
                _ => Action::Deny,
            };
            let mut read = Policy::new(default);
            for rule in policy.rules {
                let action = match pb::EgressAction::try_from(rule.action) {
                    Ok(pb::EgressAction::Allow) => Action::Allow,
                    _ => Action::Deny,
                };
                match (rule.pattern.parse::<Rule>(), action) {
                    (Ok(parsed), _) => read.push(action, parsed, rule.origin),
                    (Err(_), Action::Allow) => {}
                    (Err(_), Action::Deny) => read.push(
                        Action::Deny,
                        Rule::any_port(Destination::Any),
                        format!("{} (a rule this plugin cannot read)", rule.origin),
                    ),
                }
            }
            read
        });
        Egress {
            grant: Some(Grant { approved, policy }),
        }
    }

    /// Whether the host sent a grant (so connections are restricted).
    pub fn is_restricted(&self) -> bool {
        self.grant.is_some()
    }

    /// The addresses the host approved for `host` and `port`, to connect to
    /// instead of resolving `host`; `None` when it approved none for them.
    /// Their port is the one to dial: `port`, or the local end of an SSH
    /// tunnel the host opened to `host` and `port` (keep presenting `host`
    /// for TLS).
    pub fn approved(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let grant = self.grant.as_ref()?;
        grant
            .approved
            .iter()
            .find(|target| target.port == port && same_host(&target.host, host))
            .map(|target| {
                target
                    .addresses
                    .iter()
                    .map(|address| SocketAddr::new(*address, target.dial_port))
                    .collect()
            })
    }

    /// Whether the call may connect to `address`, reached through the host
    /// name `host`: an approved address always may; with approved targets
    /// nothing else may; otherwise the policy decides.
    pub fn permits(&self, host: &str, address: SocketAddr) -> Result<(), Refusal> {
        let Some(grant) = &self.grant else {
            return Ok(());
        };
        let approved = |target: &Approved| {
            target.dial_port == address.port() && target.addresses.contains(&address.ip())
        };
        if grant.approved.iter().any(approved) {
            return Ok(());
        }
        if !grant.approved.is_empty() {
            return Err(Refusal(format!(
                "{address} is not among the addresses the host approved for this call"
            )));
        }
        let Some(policy) = &grant.policy else {
            return Err(Refusal(format!(
                "the host approved no address for this call, so {address} may not be used"
            )));
        };
        let verdict = policy.check(Some(host), address);
        if verdict.allowed() {
            Ok(())
        } else {
            Err(Refusal(format!(
                "the egress policy refuses {address} ({verdict})"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn rule(action: pb::EgressAction, pattern: &str) -> pb::EgressRule {
        pb::EgressRule {
            action: action as i32,
            pattern: pattern.into(),
            origin: "test".into(),
        }
    }

    #[test]
    fn without_a_grant_nothing_is_restricted() {
        let egress = Egress::from_grant(None);
        assert!(!egress.is_restricted());
        assert_eq!(egress.approved("db", 5432), None);
        assert!(egress.permits("db", at("127.0.0.1:1")).is_ok());
    }

    #[test]
    fn approved_addresses_are_the_only_ones_a_call_may_dial() {
        let egress = Egress::from_grant(Some(pb::EgressGrant {
            approved: vec![pb::ApprovedTarget {
                host: "DB.example.".into(),
                port: 5432,
                addresses: vec!["10.0.0.5".into(), "not an address".into()],
                dial_port: 0,
            }],
            policy: Some(pb::EgressPolicy {
                rules: vec![],
                default_action: pb::EgressAction::Allow as i32,
            }),
        }));
        assert_eq!(
            egress.approved("db.example", 5432),
            Some(vec![at("10.0.0.5:5432")])
        );
        assert_eq!(egress.approved("db.example", 5433), None);
        assert!(egress.permits("db.example", at("10.0.0.5:5432")).is_ok());
        // Not approved, even though the policy would allow it.
        assert!(egress.permits("db.example", at("10.0.0.6:5432")).is_err());
        assert!(egress.permits("db.example", at("10.0.0.5:5433")).is_err());
    }

    #[test]
    fn a_tunnelled_target_is_dialled_on_its_local_port_only() {
        let egress = Egress::from_grant(Some(pb::EgressGrant {
            approved: vec![pb::ApprovedTarget {
                host: "db.internal".into(),
                port: 5432,
                addresses: vec!["127.0.0.1".into()],
                dial_port: 40123,
            }],
            policy: None,
        }));
        assert_eq!(
            egress.approved("db.internal", 5432),
            Some(vec![at("127.0.0.1:40123")])
        );
        assert!(egress.permits("db.internal", at("127.0.0.1:40123")).is_ok());
        assert!(egress.permits("db.internal", at("127.0.0.1:5432")).is_err());
    }

    #[test]
    fn without_approved_targets_the_policy_decides_and_unreadable_rules_restrict() {
        let egress = Egress::from_grant(Some(pb::EgressGrant {
            approved: vec![],
            policy: Some(pb::EgressPolicy {
                rules: vec![
                    rule(pb::EgressAction::Deny, "127.0.0.0/8"),
                    rule(pb::EgressAction::Allow, "future-syntax!!"),
                ],
                default_action: pb::EgressAction::Allow as i32,
            }),
        }));
        let refusal = egress
            .permits("localhost", at("127.0.0.1:6379"))
            .unwrap_err();
        assert_eq!(
            refusal.0,
            "the egress policy refuses 127.0.0.1:6379 (test `127.0.0.0/8`)"
        );
        assert!(egress.permits("db", at("10.0.0.1:6379")).is_ok());

        let unreadable = Egress::from_grant(Some(pb::EgressGrant {
            approved: vec![],
            policy: Some(pb::EgressPolicy {
                rules: vec![rule(pb::EgressAction::Deny, "future-syntax!!")],
                default_action: pb::EgressAction::Allow as i32,
            }),
        }));
        assert!(unreadable.permits("db", at("10.0.0.1:6379")).is_err());
        // No policy and no approved address: nothing may be dialled.
        let empty = Egress::from_grant(Some(pb::EgressGrant::default()));
        assert!(empty.permits("db", at("10.0.0.1:6379")).is_err());
    }
}
