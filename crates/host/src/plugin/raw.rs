//! One call across the C ABI into a library loaded in this process: the
//! request and output buffers, and what each return code means.

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use connvault_plugin_abi::{CallFn, DestroyFn, Method, ReturnCode, pb};
use prost::Message;

use super::ffi::SinkBuffer;
use super::stats::PluginStats;
use super::transport::Transport;
use crate::error::CallError;

/// The longest application-error message kept from a plugin.
const MAX_ERROR_MESSAGE: usize = 1024;

/// The longest field name kept from a plugin's application error.
const MAX_ERROR_FIELD: usize = 256;

/// A plugin instance pointer; the plugin promises (`FLAG_THREAD_SAFE`) or the
/// host ensures (one call at a time) that calls through it are sound from any thread.
#[derive(Clone, Copy)]
pub(super) struct Instance(pub(super) *mut c_void);
// SAFETY: the pointer is only passed back to the plugin's own `call`, which is
// thread-safe by flag, or serialised by the scheduler's lock when it is not.
unsafe impl Send for Instance {}
// SAFETY: as above.
unsafe impl Sync for Instance {}

/// A plugin library loaded into this process, and the instance its `init` made.
///
/// Never unloaded: Rust TLS destructors in an unloaded library crash at
/// thread exit, so the library and its memfd live forever.
pub(crate) struct InProcess {
    name: String,
    call_fn: CallFn,
    instance: Instance,
    stats: Arc<PluginStats>,
    _destroy: Option<DestroyFn>,
    _library: ManuallyDrop<libloading::os::unix::Library>,
    _memfd: ManuallyDrop<memfd::Memfd>,
}

/// What loading (`load.rs`) hands over to make an [`InProcess`].
pub(super) struct Parts {
    /// The plugin's name from its descriptor.
    pub(super) name: String,
    /// The descriptor's `call`.
    pub(super) call_fn: CallFn,
    /// What `init` returned.
    pub(super) instance: Instance,
    /// The descriptor's `destroy` (kept, never called: plugins are never unloaded).
    pub(super) destroy: Option<DestroyFn>,
    /// The library the function pointers point into.
    pub(super) library: libloading::os::unix::Library,
    /// The sealed memfd the library was loaded from.
    pub(super) memfd: memfd::Memfd,
}

impl InProcess {
    /// Takes ownership of a loaded library; calls count into `stats`.
    pub(super) fn new(parts: Parts, stats: Arc<PluginStats>) -> Self {
        Self {
            name: parts.name,
            call_fn: parts.call_fn,
            instance: parts.instance,
            stats,
            _destroy: parts.destroy,
            _library: ManuallyDrop::new(parts.library),
            _memfd: ManuallyDrop::new(parts.memfd),
        }
    }

    /// Calls method `method_id` on the current thread and maps its return code.
    pub(super) fn invoke(
        &self,
        method_id: u32,
        method_name: &'static str,
        request: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, CallError> {
        let mut buffer = SinkBuffer::new(limit);
        let sink = buffer.sink();
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `instance` came from this plugin's `init`; `request` and
        // `sink` outlive the call; `buffer` is only touched through the sink
        // until the call returns.
        let code = unsafe {
            (self.call_fn)(
                self.instance.0,
                method_id,
                request.as_ptr(),
                request.len(),
                &sink,
            )
        };
        let plugin = || self.name.clone();
        if buffer.overflowed() {
            return Err(CallError::OutputTooLarge {
                plugin: plugin(),
                method: method_name,
                limit,
            });
        }
        match ReturnCode::from_raw(code) {
            Some(ReturnCode::Ok) => Ok(buffer.into_bytes()),
            Some(ReturnCode::AppError) => {
                let mut error = pb::Error::decode(buffer.bytes()).map_err(|_| {
                    CallError::MalformedResponse {
                        plugin: plugin(),
                        method: method_name,
                    }
                })?;
                truncate_on_char(&mut error.message, MAX_ERROR_MESSAGE);
                truncate_on_char(&mut error.field, MAX_ERROR_FIELD);
                Err(CallError::Application {
                    plugin: plugin(),
                    error,
                })
            }
            Some(ReturnCode::Unimplemented) => Err(CallError::Unimplemented {
                plugin: plugin(),
                method: method_name,
            }),
            Some(ReturnCode::BadRequest) => Err(CallError::BadRequest {
                plugin: plugin(),
                method: method_name,
            }),
            Some(ReturnCode::Panic) => {
                self.stats.panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(plugin = %self.name, method = method_name, "plugin panicked; the panic was caught at the boundary");
                Err(CallError::Panicked {
                    plugin: plugin(),
                    method: method_name,
                })
            }
            Some(ReturnCode::OutputLimit) => Err(CallError::OutputTooLarge {
                plugin: plugin(),
                method: method_name,
                limit,
            }),
            Some(ReturnCode::Internal) | None => Err(CallError::Internal {
                plugin: plugin(),
                method: method_name,
                code,
            }),
        }
    }
}

impl Transport for InProcess {
    fn call(
        &self,
        method: Method,
        request: &[u8],
        limit: usize,
        // A call into a library on this thread cannot be interrupted: the
        // scheduler abandons it at the deadline instead.
        _deadline: Duration,
    ) -> Result<Vec<u8>, CallError> {
        self.invoke(method as u32, method.name(), request, limit)
    }
}

/// Cuts `text` to at most `max` bytes without splitting a character.
fn truncate_on_char(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_on_char;

    #[test]
    fn truncation_never_splits_a_character() {
        let mut text = "aé".to_owned();
        truncate_on_char(&mut text, 2);
        assert_eq!(text, "a");
        let mut short = "abc".to_owned();
        truncate_on_char(&mut short, 8);
        assert_eq!(short, "abc");
    }
}
