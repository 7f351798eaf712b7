//! The seam between the scheduler and the one call that reaches the plugin.
//!
//! The scheduler decides when and on which thread a call runs; a
//! [`Transport`] carries it to the plugin and back. Today the only transport
//! is the in-process library (`InProcess` in `raw.rs`); a
//! transport that runs the plugin in a child process fits here without the
//! scheduler changing.

use std::time::Duration;

use connvault_plugin_abi::Method;

use crate::error::CallError;

/// Carries one blocking call to a plugin and brings back its answer.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Calls `method` with the encoded `request` and returns the encoded
    /// response, refusing one longer than `limit` bytes.
    ///
    /// Runs on a worker thread and may block. `deadline` is the time the
    /// caller gives the call: a transport that can stop the work (a child
    /// process) may use it; the in-process library cannot, and the scheduler
    /// abandons the call at the deadline instead.
    fn call(
        &self,
        method: Method,
        request: &[u8],
        limit: usize,
        deadline: Duration,
    ) -> Result<Vec<u8>, CallError>;
}
