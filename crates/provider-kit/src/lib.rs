//! The network and TLS steps connvault's first-party providers share.
//!
//! Each provider plugin (PostgreSQL, MySQL, Redis, JDBC) runs its connection
//! test as stages; the steps they have in common live here so that there is
//! one copy of them:
//!
//! - [`fields`]: the `host` and `port` fields of a network data source;
//! - [`net`]: deadline-bounded steps on the plugin's private runtime
//!   ([`net::bounded`]), resolving and connecting, and turning a failed stage
//!   into the error a non-test call returns;
//! - [`tls`]: the rustls client configuration for a connection's TLS mode, and
//!   the checks `validate` runs on its PEM material.
//!
//! Each provider keeps its own protocol logic (what it sends, how it reads the
//! server's errors) in its plugin.

pub mod fields;
pub mod net;
pub mod tls;
