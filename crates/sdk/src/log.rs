//! Log lines that go through the host's logger (and its redaction rules).

use std::sync::OnceLock;

use crate::abi::{HostTable, LogFn, log_level};

struct HostLog {
    ctx: usize,
    log: LogFn,
}

static HOST_LOG: OnceLock<HostLog> = OnceLock::new();

/// Remembers the host's log callback; called by the export shim at `init`.
///
/// # Safety
/// `host` must be null or point to a valid [`HostTable`] whose `ctx` stays valid
/// for the life of the process (the host's contract).
pub(crate) unsafe fn install(host: *const HostTable) {
    // SAFETY: the caller guarantees `host` is null or valid.
    let Some(table) = (unsafe { host.as_ref() }) else {
        return;
    };
    if (table.size as usize) < std::mem::size_of::<HostTable>() {
        return;
    }
    if let Some(log) = table.log {
        let _ = HOST_LOG.set(HostLog {
            ctx: table.ctx as usize,
            log,
        });
    }
}

fn write(level: u32, message: &str) {
    if let Some(host) = HOST_LOG.get() {
        // SAFETY: the host keeps `ctx` and `log` valid for the process's life;
        // the message pointer and length describe a live UTF-8 buffer.
        unsafe { (host.log)(host.ctx as *mut _, level, message.as_ptr(), message.len()) }
    }
}

/// Logs an error. Never pass a secret.
pub fn error(message: &str) {
    write(log_level::ERROR, message);
}

/// Logs a warning. Never pass a secret.
pub fn warn(message: &str) {
    write(log_level::WARN, message);
}

/// Logs progress. Never pass a secret.
pub fn info(message: &str) {
    write(log_level::INFO, message);
}

/// Logs detail for debugging. Never pass a secret.
pub fn debug(message: &str) {
    write(log_level::DEBUG, message);
}
