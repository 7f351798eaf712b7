//! One call across the C ABI into a library loaded in this process: the
//! request and output buffers (`outcome.rs` says what each return code means).

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use connvault_plugin_abi::{CallFn, DestroyFn};

use super::ffi::SinkBuffer;
use super::outcome::RawAnswer;
use super::stats::PluginStats;
use super::transport::Transport;
use crate::error::CallError;

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
pub(crate) struct Parts {
    /// The plugin's name from its descriptor.
    pub(crate) name: String,
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
    pub(crate) fn new(parts: Parts, stats: Arc<PluginStats>) -> Self {
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
        let raw = self.raw_call(method_id, request, limit);
        super::outcome::outcome(&self.name, method_name, raw, limit, &self.stats)
    }

    /// Calls method `method_id` on the current thread: the return code and
    /// what the plugin wrote, at most `limit` bytes of it.
    pub(crate) fn raw_call(&self, method_id: u32, request: &[u8], limit: usize) -> RawAnswer {
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
        RawAnswer {
            code,
            overflowed: buffer.overflowed(),
            bytes: buffer.into_bytes(),
        }
    }
}

impl Transport for InProcess {
    fn call(
        &self,
        method_id: u32,
        method_name: &'static str,
        request: &[u8],
        limit: usize,
        // A call into a library on this thread cannot be interrupted: the
        // scheduler abandons it at the deadline instead.
        _end: Instant,
    ) -> Result<Vec<u8>, CallError> {
        self.invoke(method_id, method_name, request, limit)
    }

    fn lanes_share_instance(&self) -> bool {
        true
    }
}
