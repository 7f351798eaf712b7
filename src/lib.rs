//! connvault: keeps the connections a product needs to its customers' data
//! sources — databases, warehouses, brokers, SaaS APIs — for many tenants.
//!
//! The server (`connvault serve`) exposes `connvault.v1` over gRPC. Provider
//! logic lives in plugins ([`connvault_plugin_host`]); secrets are sealed with
//! AES-256-GCM ([`connvault_crypto`]) and stored behind the storage traits
//! of [`connvault_store`] (sled by default). This library is the server's core, split from the
//! binary so tests and benchmarks can drive it in-process.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod bounds;
pub mod clock;
pub mod codec;
pub mod config;
pub mod dev;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod keys_file;
pub mod listener;
pub mod master_key;
pub mod middleware;
pub mod names;
pub mod plugin_messages;
pub mod rate_limit;
pub mod record_format;
pub mod server;
pub mod store_setup;
pub mod text;
pub mod verify;

/// The hidden subcommand that makes `connvault` a plugin runner: the server
/// starts its own executable with it for each plugin under process isolation.
pub const RUNNER_SUBCOMMAND: &str = "plugin-runner";

/// Generated protobuf and gRPC code (modules mirror the proto packages).
pub mod pb {
    /// `connvault.*` packages.
    #[allow(missing_docs, clippy::all)]
    pub mod connvault {
        /// The public API, `connvault.v1`.
        pub mod v1 {
            tonic::include_proto!("connvault.v1");
        }
        /// The on-disk record format.
        pub mod storage {
            /// `connvault.storage.v1`.
            pub mod v1 {
                tonic::include_proto!("connvault.storage.v1");
            }
        }
    }
    pub use connvault::storage::v1 as storage;
    pub use connvault::v1;
    /// The encoded descriptor set of every proto above, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("connvault_descriptor");
}
