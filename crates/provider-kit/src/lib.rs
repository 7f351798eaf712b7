//! The steps connvault's first-party providers share.
//!
//! Each provider plugin (PostgreSQL, MySQL, Redis, JDBC) runs its connection
//! test as stages; what they have in common lives here so that there is one
//! copy of it:
//!
//! - [`engine`]: the connection test itself (open, probe, authorize, close)
//!   and the session behind discovery, over an [`engine::Engine`] that each
//!   provider implements for its driver;
//! - [`session`]: the staged opening (resolve, connect, TLS, authenticate)
//!   for providers whose driver takes a ready stream, over a
//!   [`session::Handshake`];
//! - [`fields`]: the `host` and `port` fields of a network data source;
//! - [`net`]: deadline-bounded steps on the plugin's private runtime
//!   ([`net::bounded`]), resolving and connecting within the call's egress
//!   grant (the host's approved addresses, never a second DNS lookup; every
//!   address checked before it is dialled), describing failures without the
//!   peer's bytes, and turning a failed stage into the error a non-test call
//!   returns;
//! - [`tls`]: the rustls client configuration for a connection's TLS mode, and
//!   the checks `validate` runs on its PEM material.
//!
//! Each provider keeps its own protocol logic (what it sends, how it reads the
//! server's errors) in its plugin; a server's error is quoted only when the
//! protocol delivered it as one, through [`net::remote_text`].
//!
//! ```
//! use connvault_plugin_sdk::{Connection, Deadline, StageError, TestReport};
//! use connvault_provider_kit::engine::{self, Engine};
//!
//! /// An engine whose server is always up and always answers "1.0".
//! struct Always;
//!
//! impl Engine for Always {
//!     type Session = ();
//!     fn open(&self, _: &Connection, _: Deadline, _: &mut TestReport) -> Option<()> {
//!         Some(())
//!     }
//!     fn probe(&self, _: &mut (), _: Deadline) -> Result<String, StageError> {
//!         Ok("1.0".into())
//!     }
//! }
//!
//! let source = connvault_plugin_sdk::schema::data_source("always", "Always").build();
//! let spec = connvault_plugin_sdk::pb::ConnectionSpec::default();
//! let connection = connvault_plugin_sdk::check(&source, spec, &[]).unwrap();
//! let response = engine::test(&Always, &connection, Deadline::from_millis(1000));
//! assert!(response.success);
//! assert_eq!(response.server_version, "1.0");
//! ```
#![forbid(unsafe_code)]

pub mod engine;
pub mod fields;
pub mod net;
pub mod session;
pub mod tls;
