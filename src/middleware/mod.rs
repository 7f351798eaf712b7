//! Tower layers around every RPC, one per file, composed once in
//! `server.rs` (outermost first: request id, authentication).

mod authenticate;
mod request_id;

pub use authenticate::{AuthenticateLayer, AuthenticateService, Caller};
pub use request_id::{RequestIdLayer, RequestIdService};
