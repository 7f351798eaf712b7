//! SSH tunnels: a connection may reach its data source through a bastion.
//!
//! - [`rules`]: the tunnel's fields checked before it is stored or tested.
//! - [`route`]: opening the tunnel for one test or discovery (the TUNNEL
//!   stage), and the grant that points the plugin at its local end.
//! - [`render`]: the `ssh -L` command line and local endpoint `ResolveConnection` returns.
//!
//! The SSH client itself is `connvault-tunnel`; docs/providers.md
//! ("SSH tunnels") and docs/security.md ("Host key pinning") describe it.

mod render;
mod route;
mod rules;

pub(in crate::app) use self::render::ssh_command;
pub(in crate::app) use self::route::{Route, tunnel_failed_error, tunnel_failed_test};
pub(in crate::app) use self::rules::{check_tunnel, one_target};
