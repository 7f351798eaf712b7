//! connvault's egress policy: which destinations a connection test or a
//! metadata discovery may connect to.
//!
//! A [`Rule`] names destinations — an IP network, a host name, a domain,
//! this machine, or anything — and optionally ports. A [`Policy`] is rules in
//! order with an allow or deny each; the first that matches a destination
//! decides, and a default decides the rest. [`Layers`] merges the server's
//! rules, a tenant's rules, the server's own listeners and the built-in
//! denials (loopback, link-local and cloud metadata, unspecified, multicast,
//! reserved) into one policy, in the one order documented there.
//!
//! Addresses are matched in their [`canonical`](addr::canonical) form: an
//! IPv4-mapped, IPv4-compatible or NAT64 IPv6 address is matched as the IPv4
//! address it carries, so `::ffff:127.0.0.1` is loopback like `127.0.0.1`.
//!
//! The server checks every address a target resolves to before it calls a
//! plugin; the plugin side (the SDK) checks every address it dials against
//! the same policy, sent with the request. Both use this crate.
//!
//! ```
//! use connvault_egress::{Layers, Rule};
//!
//! let allow: Vec<Rule> = vec!["127.0.0.1:6379".parse().unwrap()];
//! let policy = Layers { tenant_allow: &allow, ..Layers::default() }.policy();
//! // The tenant's rule opens one loopback port ...
//! assert!(policy.check(None, "127.0.0.1:6379".parse().unwrap()).allowed());
//! // ... the rest of loopback stays denied, in any spelling ...
//! let refused = policy.check(None, "[::ffff:127.0.0.1]:5432".parse().unwrap());
//! assert_eq!(refused.to_string(), "built-in: loopback `127.0.0.0/8`");
//! // ... and a customer's database on a private network is allowed.
//! assert!(policy.check(Some("db.internal"), "10.0.0.5:5432".parse().unwrap()).allowed());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod addr;
mod policy;
mod rule;

pub use policy::{Action, BUILT_IN_DENIALS, Entry, Layers, Policy, Verdict};
pub use rule::{Destination, MAX_RULE_LEN, Net, Ports, Rule, RuleError};

#[cfg(test)]
mod tests;
