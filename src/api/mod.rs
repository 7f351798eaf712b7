//! gRPC handlers: admit the caller, decode, call [`App`](crate::app::App),
//! audit, map errors. Nothing else.

mod audit_api;
mod connection_api;
mod data_source_api;
pub mod guard;
mod tenant_api;

pub use audit_api::AuditApi;
pub use connection_api::ConnectionApi;
pub use data_source_api::DataSourceApi;
pub use guard::Guard;
pub use tenant_api::TenantApi;
