//! gRPC handlers: decode, admit the caller, call [`App`](crate::app::App),
//! audit. Nothing else: errors map to statuses in `crate::error`.

mod admin_api;
mod audit_api;
mod audited;
mod connection_api;
mod data_source_api;
pub mod guard;
mod tenant_api;

pub use admin_api::AdminApi;
pub use audit_api::AuditApi;
pub use audited::{Answer, Record};
pub use connection_api::ConnectionApi;
pub use data_source_api::DataSourceApi;
pub use guard::Guard;
pub use tenant_api::TenantApi;
