//! Write connvault provider plugins in Rust.
//!
//! Implement [`Provider`] and call [`export_provider!`]: the macro emits the
//! plugin's single exported symbol and thunks that decode requests, check the
//! connection against your schema, call your code under `catch_unwind`, and
//! encode the answer. Build the crate as a `cdylib` named
//! `connvault_plugin_<name>` and put it in the server's plugin directory.
//!
//! ```
//! use connvault_plugin_sdk::{
//!     export_provider, pb, schema, Connection, Deadline, PluginError, Provider, StageError,
//!     TestReport, Violations,
//! };
//! use pb::{ErrorCategory, Stage};
//!
//! #[derive(Default)]
//! struct Echo;
//!
//! impl Provider for Echo {
//!     fn data_sources(&self) -> Vec<pb::DataSource> {
//!         vec![schema::data_source("echo", "Echo server")
//!             .aliases(&["ECHO"])
//!             .field(schema::string("host").required())
//!             .field(schema::int("port").range(1, 65535).default_value(7))
//!             .field(schema::secret("password"))
//!             .secret_bound(&["host", "port"])
//!             .build()]
//!     }
//!
//!     fn validate(&self, connection: &Connection, violations: &mut Violations) {
//!         if connection.str("host") == "localhost." {
//!             violations.add("config.host", "drop the trailing dot");
//!         }
//!     }
//!
//!     fn test(&self, connection: &Connection, deadline: Deadline) -> Result<pb::TestResponse, PluginError> {
//!         let mut report = TestReport::new();
//!         let address = format!("{}:{}", connection.str("host"), connection.int("port").unwrap_or(7));
//!         report.stage(Stage::Connect, || {
//!             let addr = address.parse().map_err(|_| StageError::new(ErrorCategory::Dns, "not an address"))?;
//!             std::net::TcpStream::connect_timeout(&addr, deadline.remaining())
//!                 .map_err(|e| StageError::new(ErrorCategory::Unreachable, e.to_string()))
//!         });
//!         Ok(report.finish())
//!     }
//!
//!     fn render(&self, connection: &Connection, include_secrets: bool) -> Result<pb::RenderResponse, PluginError> {
//!         let password = if include_secrets { connection.secret("password").unwrap_or("") } else { "REDACTED" };
//!         Ok(pb::RenderResponse {
//!             uri: format!("echo://:{password}@{}:{}", connection.str("host"), connection.int("port").unwrap_or(7)),
//!             ..Default::default()
//!         })
//!     }
//! }
//!
//! export_provider!(Echo);
//! # fn main() {}
//! ```

pub use connvault_plugin_abi as abi;
pub use connvault_plugin_abi::pb;

mod connection;
pub mod egress;
mod error;
pub mod log;
mod report;
mod runtime;
pub mod schema;
#[doc(hidden)]
pub mod shim;

pub use connection::{Connection, Violations, check, host_and_port};
pub use error::{PluginError, code};
pub use report::{Deadline, StageError, TestReport};
pub use runtime::block_on;

/// What a provider implements. Every method but `data_sources` has a default.
///
/// The shim checks each connection against the data source's schema before
/// calling `validate`, `test`, `discover` or `render`, so these see only
/// well-typed config with defaults applied.
pub trait Provider: Send + Sync + 'static {
    /// The data sources this provider serves and their field schemas.
    fn data_sources(&self) -> Vec<pb::DataSource>;

    /// Checks beyond the schema (cross-field rules). Pure: no I/O.
    fn validate(&self, connection: &Connection, violations: &mut Violations) {
        let _ = (connection, violations);
    }

    /// Where `test` and `discover` would connect for `connection`, reported
    /// with every successful `validate` so the host can check its egress
    /// policy before it calls them (`None`: the provider cannot say, and the
    /// host refuses to test it unless configured otherwise).
    ///
    /// The default, [`host_and_port`], reports the `host` and `port` config
    /// fields when the schema has both; a provider that connects elsewhere
    /// (a URL field, several hosts) or nowhere (`Some(vec![])`) says so here.
    fn targets(&self, connection: &Connection) -> Option<Vec<pb::NetworkTarget>> {
        host_and_port(connection)
    }

    /// Opens a real connection within `deadline` and reports each stage.
    ///
    /// Connect only where [`Connection::egress`] permits: to the addresses
    /// the host approved, never to a fresh resolution of the host name.
    fn test(
        &self,
        connection: &Connection,
        deadline: Deadline,
    ) -> Result<pb::TestResponse, PluginError> {
        let _ = (connection, deadline);
        Err(PluginError::unimplemented("test"))
    }

    /// Lists schemas, tables and columns within the request's limits.
    fn discover(
        &self,
        connection: &Connection,
        request: &pb::DiscoverRequest,
        deadline: Deadline,
    ) -> Result<pb::DiscoverResponse, PluginError> {
        let _ = (connection, request, deadline);
        Err(PluginError::unimplemented("discover"))
    }

    /// Renders connection strings; secrets only when `include_secrets`.
    fn render(
        &self,
        connection: &Connection,
        include_secrets: bool,
    ) -> Result<pb::RenderResponse, PluginError> {
        let _ = (connection, include_secrets);
        Err(PluginError::unimplemented("render"))
    }
}

/// Exports a [`Provider`] (a type implementing `Default`) as a connvault plugin.
///
/// Emits the `connvault_plugin_entry_v1` symbol and its static descriptor,
/// named after the crate (`CARGO_PKG_NAME`, `CARGO_PKG_VERSION`). Refuses to
/// compile with `panic = "abort"`: a panic must be caught at the boundary.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        #[cfg(panic = "abort")]
        compile_error!(
            "connvault plugins must be built with panic = \"unwind\": a panic is caught at the plugin boundary so the server keeps serving"
        );

        /// The connvault plugin entry point.
        #[unsafe(no_mangle)]
        pub extern "C" fn connvault_plugin_entry_v1() -> *const $crate::abi::PluginDescriptor {
            static DESCRIPTOR: $crate::abi::PluginDescriptor = $crate::abi::PluginDescriptor {
                magic: $crate::abi::MAGIC,
                size: ::core::mem::size_of::<$crate::abi::PluginDescriptor>() as u32,
                abi_major: $crate::abi::ABI_MAJOR,
                abi_minor: $crate::abi::ABI_MINOR,
                flags: $crate::abi::FLAG_THREAD_SAFE,
                name: concat!(env!("CARGO_PKG_NAME"), "\0").as_ptr().cast(),
                version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast(),
                init: Some($crate::shim::init::<$provider>),
                call: Some($crate::shim::call::<$provider>),
                destroy: Some($crate::shim::destroy::<$provider>),
            };
            &DESCRIPTOR
        }
    };
}
