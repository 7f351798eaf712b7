//! gRPC handlers: decode, call [`App`](crate::app::App), map errors. Nothing else.

mod connection_api;
mod data_source_api;
mod tenant_api;

pub use connection_api::ConnectionApi;
pub use data_source_api::DataSourceApi;
pub use tenant_api::TenantApi;
