//! What a plugin's return code and output mean: the one mapping to a
//! response or a [`CallError`], whether the call ran in this process or in a
//! runner.

use std::sync::atomic::Ordering;

use connvault_plugin_abi::{ReturnCode, pb};
use prost::Message;

use super::stats::PluginStats;
use crate::error::CallError;

/// The longest application-error message kept from a plugin.
const MAX_ERROR_MESSAGE: usize = 1024;

/// The longest field name kept from a plugin's application error.
const MAX_ERROR_FIELD: usize = 256;

/// A call's raw result: the return code and the bytes the plugin wrote.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    /// The return code.
    pub(crate) code: i32,
    /// Whether the plugin tried to write more than the limit.
    pub(crate) overflowed: bool,
    /// What it wrote, at most the limit.
    pub(crate) bytes: Vec<u8>,
}

/// Maps `raw`, the answer of plugin `plugin` to `method`, to its response
/// or error. The return code is authoritative; output past `limit` is refused.
pub(crate) fn outcome(
    plugin: &str,
    method: &'static str,
    raw: RawAnswer,
    limit: usize,
    stats: &PluginStats,
) -> Result<Vec<u8>, CallError> {
    let name = || plugin.to_owned();
    if raw.overflowed || raw.bytes.len() > limit {
        return Err(CallError::OutputTooLarge {
            plugin: name(),
            method,
            limit,
        });
    }
    match ReturnCode::from_raw(raw.code) {
        Some(ReturnCode::Ok) => Ok(raw.bytes),
        Some(ReturnCode::AppError) => match application_error(&raw.bytes) {
            Some(error) => Err(CallError::Application {
                plugin: name(),
                error,
            }),
            None => Err(CallError::MalformedResponse {
                plugin: name(),
                method,
            }),
        },
        Some(ReturnCode::Unimplemented) => Err(CallError::Unimplemented {
            plugin: name(),
            method,
        }),
        Some(ReturnCode::BadRequest) => Err(CallError::BadRequest {
            plugin: name(),
            method,
        }),
        Some(ReturnCode::Panic) => {
            stats.panics.fetch_add(1, Ordering::Relaxed);
            // ABI 1.1: the output may hold an `Error` with the panic's message.
            let message = application_error(&raw.bytes)
                .map(|error| error.message)
                .filter(|message| stats.log_panic_messages && !message.is_empty());
            match message {
                Some(message) => tracing::error!(
                    plugin,
                    method,
                    panic = %message,
                    "plugin panicked; the panic was caught at the boundary"
                ),
                None => tracing::error!(
                    plugin,
                    method,
                    "plugin panicked; the panic was caught at the boundary"
                ),
            }
            Err(CallError::Panicked {
                plugin: name(),
                method,
            })
        }
        Some(ReturnCode::OutputLimit) => Err(CallError::OutputTooLarge {
            plugin: name(),
            method,
            limit,
        }),
        Some(ReturnCode::Internal) | None => Err(CallError::Internal {
            plugin: name(),
            method,
            code: raw.code,
        }),
    }
}

/// The application error a plugin wrote with `AppError`, its message and
/// field cut to what the host keeps; `None` if the bytes are not an `Error`.
pub(crate) fn application_error(bytes: &[u8]) -> Option<pb::Error> {
    let mut error = pb::Error::decode(bytes).ok()?;
    truncate_on_char(&mut error.message, MAX_ERROR_MESSAGE);
    truncate_on_char(&mut error.field, MAX_ERROR_FIELD);
    Some(error)
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
