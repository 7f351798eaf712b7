//! Tower layers around every RPC, one per file, composed once in
//! `server.rs` (outermost first: request id, authentication, framing).

mod authenticate;
mod framing;
mod request_id;

pub use authenticate::{AuthenticateLayer, AuthenticateService, Caller};
pub use framing::{FramingCheck, FramingLayer, FramingService};
pub use request_id::{RequestIdLayer, RequestIdService};
