//! A plugin-private tokio runtime for async drivers.
//!
//! A plugin carries its own copy of tokio, whose thread-locals are not the
//! host's: it cannot use the server's runtime. [`block_on`] runs a future on a
//! runtime owned by the plugin, created on first use.

use std::future::Future;
use std::sync::OnceLock;

use crate::PluginError;

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// Runs `future` to completion on the plugin's own runtime.
///
/// Call it from a provider method (the host calls those on its own threads,
/// never from inside an async context).
pub fn block_on<F: Future>(future: F) -> Result<F::Output, PluginError> {
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("connvault-plugin-rt")
            .enable_all()
            .build()
            .map_err(|error| error.to_string())
    });
    match runtime {
        Ok(runtime) => Ok(runtime.block_on(future)),
        Err(error) => Err(PluginError::internal(format!(
            "could not start the plugin runtime: {error}"
        ))),
    }
}
