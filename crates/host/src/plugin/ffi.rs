//! The host side of the C ABI that the plugin calls into: the host table with
//! its log callback (given to `init`) and the output sink (given to each call).
//!
//! Everything here is reached from plugin code through raw pointers, so each
//! callback checks what it can (null pointers, lengths) and trusts only the
//! ABI contract for the rest.

use std::ffi::c_void;
use std::sync::OnceLock;

use connvault_plugin_abi::{self as abi, HostTable, OutputSink};

/// The most bytes of one log message kept; a longer one is cut, not refused.
const MAX_LOG_MESSAGE: usize = 4096;

/// Where plugin log lines go instead of this process's logger: a runner
/// sends them to the host.
type LogForward = Box<dyn Fn(u32, &[u8]) + Send + Sync>;

static FORWARD: OnceLock<LogForward> = OnceLock::new();

/// Sends every plugin log line to `forward` from now on (set once, in a runner).
pub(crate) fn forward_logs(forward: LogForward) {
    let _ = FORWARD.set(forward);
}

/// Host state the plugin's log callback reaches through `ctx`.
struct LogContext {
    plugin: String,
}

unsafe extern "C" fn host_log(ctx: *mut c_void, level: u32, message: *const u8, len: usize) {
    // SAFETY: `ctx` is the leaked `LogContext` made in `host_table`; it lives forever.
    let Some(context) = (unsafe { ctx.cast::<LogContext>().as_ref() }) else {
        return;
    };
    if message.is_null() {
        return;
    }
    // SAFETY: the plugin passes `len` readable bytes at `message` (ABI contract).
    let bytes = unsafe { std::slice::from_raw_parts(message, len.min(MAX_LOG_MESSAGE)) };
    if let Some(forward) = FORWARD.get() {
        forward(level, bytes);
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    let plugin = context.plugin.as_str();
    match level {
        abi::log_level::ERROR => tracing::error!(target: "connvault::plugin", plugin, "{text}"),
        abi::log_level::WARN => tracing::warn!(target: "connvault::plugin", plugin, "{text}"),
        abi::log_level::INFO => tracing::info!(target: "connvault::plugin", plugin, "{text}"),
        abi::log_level::DEBUG => tracing::debug!(target: "connvault::plugin", plugin, "{text}"),
        _ => tracing::trace!(target: "connvault::plugin", plugin, "{text}"),
    }
}

/// The host table handed to the plugin `name`'s `init`.
///
/// Leaked on purpose: the plugin may keep the pointer (and log through it)
/// for as long as the process runs, and plugins are never unloaded.
pub(super) fn host_table(name: &str) -> &'static HostTable {
    let log_context = Box::leak(Box::new(LogContext {
        plugin: name.to_owned(),
    }));
    Box::leak(Box::new(HostTable {
        size: std::mem::size_of::<HostTable>() as u32,
        abi_minor: abi::ABI_MINOR,
        ctx: (log_context as *mut LogContext).cast(),
        log: Some(host_log),
    }))
}

/// The host-side state behind an [`OutputSink`]: what one call wrote, up to its limit.
pub(super) struct SinkBuffer {
    bytes: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl SinkBuffer {
    /// An empty buffer that accepts at most `limit` bytes.
    pub(super) fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
            overflowed: false,
        }
    }

    /// The sink the plugin writes through. The caller must keep `self` in
    /// place and untouched until the call that uses the sink has returned.
    pub(super) fn sink(&mut self) -> OutputSink {
        OutputSink {
            ctx: (self as *mut SinkBuffer).cast(),
            write: sink_write,
        }
    }

    /// Whether the plugin tried to write more than the limit.
    pub(super) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The bytes written.
    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

unsafe extern "C" fn sink_write(ctx: *mut c_void, bytes: *const u8, len: usize) -> i32 {
    // SAFETY: `ctx` is the `SinkBuffer` owned by the raw call for the call's duration.
    let Some(buffer) = (unsafe { ctx.cast::<SinkBuffer>().as_mut() }) else {
        return 1;
    };
    if buffer.overflowed || buffer.bytes.len().saturating_add(len) > buffer.limit {
        buffer.overflowed = true;
        return 1;
    }
    if len > 0 {
        if bytes.is_null() {
            return 1;
        }
        // SAFETY: the plugin passes `len` readable bytes (ABI contract).
        buffer
            .bytes
            .extend_from_slice(unsafe { std::slice::from_raw_parts(bytes, len) });
    }
    0
}
