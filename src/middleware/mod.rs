//! Tower layers around every RPC, one per file.

mod request_id;

pub use request_id::{RequestIdLayer, RequestIdService};
