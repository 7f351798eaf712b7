//! Errors from loading and calling plugins.

use std::time::Duration;

use connvault_plugin_abi::pb;

/// Why a plugin file was refused at load. Each names the problem plainly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// A symlink, directory or device instead of a regular file.
    #[error("not a regular file")]
    NotRegularFile,
    /// Writable by group or others: anyone could swap the code.
    #[error("file mode {mode:o} is writable by group or others")]
    Writable {
        /// The file's permission bits.
        mode: u32,
    },
    /// Larger than the host accepts.
    #[error("file is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The SHA-256 differs from the configured pin.
    #[error("SHA-256 {actual} does not match the pinned {pinned}")]
    PinMismatch {
        /// The file's digest.
        actual: String,
        /// The configured digest.
        pinned: String,
    },
    /// Pins are required and this file has none.
    #[error("no SHA-256 pin is configured for this file (SHA-256 {actual})")]
    Unpinned {
        /// The file's digest.
        actual: String,
    },
    /// Not an ELF shared object for this machine.
    #[error("not a loadable ELF shared object: {0}")]
    BadElf(String),
    /// `dlopen` refused the library (undefined symbol, missing dependency...).
    #[error("dlopen failed: {0}")]
    Dlopen(String),
    /// The entry symbol is missing.
    #[error("does not export connvault_plugin_entry_v1")]
    NoEntry,
    /// The descriptor breaks the ABI contract.
    #[error("bad descriptor: {0}")]
    BadDescriptor(String),
    /// The plugin's major version is not this host's.
    #[error("built for plugin ABI {major}.{minor}; this host speaks ABI {host}.x")]
    AbiMismatch {
        /// The plugin's major.
        major: u32,
        /// The plugin's minor.
        minor: u32,
        /// The host's major.
        host: u32,
    },
    /// `init` failed or did not return in time.
    #[error("init failed: {0}")]
    Init(String),
    /// The plugin's runner process could not be started, or could not load
    /// and confine the plugin (process isolation).
    #[error("in its runner: {0}")]
    Runner(String),
    /// `describe` failed or answered something invalid.
    #[error("describe failed: {0}")]
    Describe(String),
    /// The schema contradicts itself (see the schema lint in docs/plugins.md).
    #[error("schema refused: {0}")]
    Schema(String),
    /// Another loaded plugin has the same name.
    #[error("a plugin named {name} is already loaded")]
    DuplicatePlugin {
        /// The name both plugins give.
        name: String,
    },
    /// A data-source id or alias is already served by another plugin.
    #[error("data source {id:?} is already served by plugin {other}")]
    DuplicateDataSource {
        /// The id or alias.
        id: String,
        /// The plugin that serves it.
        other: String,
    },
}

/// Why a plugin call failed. [`CallError::grpc_code`] gives the status code to answer with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The plugin answered with an application error.
    #[error("{}", .error.message)]
    Application {
        /// The plugin's name.
        plugin: String,
        /// The error, as the plugin sent it (message capped).
        error: pb::Error,
    },
    /// The plugin does not implement the method.
    #[error("plugin {plugin} does not implement {method}")]
    Unimplemented {
        /// The plugin's name.
        plugin: String,
        /// The method.
        method: &'static str,
    },
    /// The plugin could not decode the request.
    #[error("plugin {plugin} could not decode the {method} request")]
    BadRequest {
        /// The plugin's name.
        plugin: String,
        /// The method.
        method: &'static str,
    },
    /// The plugin panicked; the panic was caught at the boundary.
    #[error("plugin {plugin} panicked during {method}")]
    Panicked {
        /// The plugin's name.
        plugin: String,
        /// The method.
        method: &'static str,
    },
    /// The plugin reported an internal failure or an unknown return code.
    #[error("plugin {plugin} failed during {method} (return code {code})")]
    Internal {
        /// The plugin's name.
        plugin: String,
        /// The method.
        method: &'static str,
        /// The raw return code.
        code: i32,
    },
    /// The response exceeded the host's cap.
    #[error("plugin {plugin} answered {method} with more than {limit} bytes")]
    OutputTooLarge {
        /// The plugin's name.
        plugin: String,
        /// The method.
        method: &'static str,
        /// The cap in bytes.
        limit: usize,
    },
    /// The response did not decode.
    #[error("plugin {plugin} answered {method} with a malformed response")]
    MalformedResponse {
        /// The plugin's name.
        plugin: String,
        /// The method.
        method: &'static str,
    },
    /// The plugin did not answer within the deadline; its thread is abandoned.
    #[error("plugin {plugin} did not answer {method} within {deadline:?}")]
    DeadlineExceeded {
        /// The plugin's name.
        plugin: String,
        /// The method.
        method: &'static str,
        /// The deadline it missed.
        deadline: Duration,
    },
    /// The call waited for an I/O worker until its deadline and never started.
    #[error("plugin {plugin} did not start {method} within {deadline:?}: {reason}")]
    Queued {
        /// The plugin's name.
        plugin: String,
        /// The method.
        method: &'static str,
        /// The deadline it missed.
        deadline: Duration,
        /// Why it waited: the tenant's own calls, or a full lane.
        reason: String,
    },
    /// The tenant already has as many calls waiting for this plugin's I/O
    /// workers as it may; the caller may retry once some have finished.
    #[error(
        "plugin {plugin} refused {method}: the tenant already has {limit} calls waiting for it"
    )]
    QueueFull {
        /// The plugin's name.
        plugin: String,
        /// The method.
        method: &'static str,
        /// The per-tenant queue limit.
        limit: usize,
    },
    /// The plugin cannot take calls now (its workers are held by hung calls).
    #[error("plugin {plugin} is unavailable: {reason}")]
    Unavailable {
        /// The plugin's name.
        plugin: String,
        /// Why.
        reason: String,
    },
}

impl CallError {
    /// The `google.rpc.Code` value a server should answer with.
    pub fn grpc_code(&self) -> i32 {
        match self {
            Self::Application { error, .. } => match error.code {
                code @ 1..=16 => code,
                _ => 13,
            },
            Self::Unimplemented { .. } => 12,
            Self::DeadlineExceeded { .. } | Self::Queued { .. } => 4,
            Self::QueueFull { .. } => 8,
            Self::Unavailable { .. } => 14,
            Self::BadRequest { .. }
            | Self::Panicked { .. }
            | Self::Internal { .. }
            | Self::OutputTooLarge { .. }
            | Self::MalformedResponse { .. } => 13,
        }
    }

    /// The offending field named by an application error, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Application { error, .. } if !error.field.is_empty() => Some(&error.field),
            _ => None,
        }
    }
}
