//! The stable C ABI between connvault and its provider plugins.
//!
//! A plugin is a shared library that exports one function, [`ENTRY_SYMBOL`]
//! (`connvault_plugin_entry_v1`), returning a pointer to a static
//! [`PluginDescriptor`]. The host calls `init` once with a [`HostTable`], then
//! `call(instance, method, request, sink)` for every request: the request is a
//! protobuf message from [`pb`] and the plugin writes its protobuf answer into
//! the host-owned [`OutputSink`]. No Rust type, allocator or trait object
//! crosses the boundary, so the host and a plugin may use different compilers,
//! allocators or languages. `include/connvault_plugin.h` is the same contract
//! in C; a test keeps the two in sync.
//!
//! # Versioning
//! A *minor* change appends fields to the end of a descriptor or host table
//! (readers gate on the `size` field), adds method ids (old plugins answer
//! [`ReturnCode::Unimplemented`]) or adds protobuf fields with new tags.
//! Anything else is a new *major*: a new entry symbol and a new proto package.
//!
//! ```
//! use connvault_plugin_abi::{Method, ReturnCode, ABI_MAJOR};
//! assert_eq!(ABI_MAJOR, 1);
//! assert_eq!(Method::from_raw(2), Some(Method::Validate));
//! assert_eq!(ReturnCode::from_raw(0), Some(ReturnCode::Ok));
//! ```

use std::ffi::{c_char, c_void};

/// Protobuf messages that cross the ABI (`proto/connvault/plugin/v1/plugin.proto`).
#[allow(missing_docs, clippy::doc_lazy_continuation)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/connvault.plugin.v1.rs"));
}

/// `"CNVPLUG1"` read as a little-endian `u64`: the first field of every descriptor.
pub const MAGIC: u64 = u64::from_le_bytes(*b"CNVPLUG1");
/// Major ABI version: a host loads only plugins of the same major.
pub const ABI_MAJOR: u32 = 1;
/// Minor ABI version of this crate: additions only.
pub const ABI_MINOR: u32 = 1;
/// Name of the one symbol a plugin exports, NUL-terminated for `dlsym`.
pub const ENTRY_SYMBOL: &[u8] = b"connvault_plugin_entry_v1\0";
/// Descriptor flag: `call` may run on several threads at once.
pub const FLAG_THREAD_SAFE: u32 = 1;

/// Log levels passed to [`HostTable::log`].
pub mod log_level {
    /// An error the operator should see.
    pub const ERROR: u32 = 1;
    /// Something unexpected but handled.
    pub const WARN: u32 = 2;
    /// Normal progress.
    pub const INFO: u32 = 3;
    /// Detail for debugging.
    pub const DEBUG: u32 = 4;
    /// Everything.
    pub const TRACE: u32 = 5;
}

/// The function a plugin exports under [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDescriptor;
/// Creates the plugin instance; writes it to `instance_out`; returns a [`ReturnCode`].
pub type InitFn =
    unsafe extern "C" fn(host: *const HostTable, instance_out: *mut *mut c_void) -> i32;
/// Answers one request; writes the response through `sink`; returns a [`ReturnCode`].
pub type CallFn = unsafe extern "C" fn(
    instance: *mut c_void,
    method: u32,
    request: *const u8,
    request_len: usize,
    sink: *const OutputSink,
) -> i32;
/// Releases the instance (the host calls it at most once, at shutdown).
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);
/// Appends bytes to the host's output buffer; returns 0, or non-zero once the cap is exceeded.
pub type WriteFn = unsafe extern "C" fn(ctx: *mut c_void, bytes: *const u8, len: usize) -> i32;
/// Host log callback: `level` from [`log_level`], a UTF-8 message of `len` bytes.
pub type LogFn = unsafe extern "C" fn(ctx: *mut c_void, level: u32, message: *const u8, len: usize);

/// The static description a plugin's entry function returns (ABI 1.0 layout).
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// Always [`MAGIC`].
    pub magic: u64,
    /// `size_of::<PluginDescriptor>()` as the plugin was built; later minors append fields.
    pub size: u32,
    /// [`ABI_MAJOR`] the plugin was built for.
    pub abi_major: u32,
    /// [`ABI_MINOR`] the plugin was built for.
    pub abi_minor: u32,
    /// Bit set of `FLAG_*`.
    pub flags: u32,
    /// NUL-terminated UTF-8 plugin name.
    pub name: *const c_char,
    /// NUL-terminated UTF-8 plugin version.
    pub version: *const c_char,
    /// Creates the instance.
    pub init: Option<InitFn>,
    /// Answers requests.
    pub call: Option<CallFn>,
    /// Releases the instance.
    pub destroy: Option<DestroyFn>,
}

// SAFETY: a descriptor is immutable static data: its pointers point at static
// NUL-terminated strings and functions, which any thread may read.
unsafe impl Sync for PluginDescriptor {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for PluginDescriptor {}

/// What the host gives a plugin at `init` (ABI 1.0 layout).
#[repr(C)]
#[derive(Debug)]
pub struct HostTable {
    /// `size_of::<HostTable>()` as the host was built; plugins gate on it for later fields.
    pub size: u32,
    /// The host's [`ABI_MINOR`].
    pub abi_minor: u32,
    /// Opaque host context for `log`.
    pub ctx: *mut c_void,
    /// Writes a log line through the host's logger. May be null.
    pub log: Option<LogFn>,
}

/// Where a plugin writes its response: a host-owned, capped buffer.
#[repr(C)]
#[derive(Debug)]
pub struct OutputSink {
    /// Opaque host context for `write`.
    pub ctx: *mut c_void,
    /// Appends bytes; non-zero means the host's cap was exceeded and the bytes were dropped.
    pub write: WriteFn,
}

/// What `init` and `call` return. The return code is authoritative.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnCode {
    /// Success: the output holds the method's response message.
    Ok = 0,
    /// An application error: the output holds a `pb::Error`.
    AppError = 1,
    /// The plugin does not implement this method.
    Unimplemented = 2,
    /// The request bytes could not be decoded.
    BadRequest = 3,
    /// The plugin panicked; the panic was caught at the boundary.
    Panic = 4,
    /// Any other plugin failure.
    Internal = 5,
    /// The output sink refused bytes because of its cap.
    OutputLimit = 6,
}

impl ReturnCode {
    /// Maps a raw return value; `None` for a value this ABI does not define.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::Ok,
            1 => Self::AppError,
            2 => Self::Unimplemented,
            3 => Self::BadRequest,
            4 => Self::Panic,
            5 => Self::Internal,
            6 => Self::OutputLimit,
            _ => return None,
        })
    }
}

/// The method a `call` asks for.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `DescribeRequest` -> `DescribeResponse`.
    Describe = 1,
    /// `ValidateRequest` -> `ValidateResponse`.
    Validate = 2,
    /// `TestRequest` -> `TestResponse`.
    Test = 3,
    /// `DiscoverRequest` -> `DiscoverResponse`.
    Discover = 4,
    /// `RenderRequest` -> `RenderResponse`.
    Render = 5,
}

impl Method {
    /// Maps a raw method id; `None` for an id this ABI version does not define.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::Describe,
            2 => Self::Validate,
            3 => Self::Test,
            4 => Self::Discover,
            5 => Self::Render,
            _ => return None,
        })
    }

    /// Lowercase name for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Describe => "describe",
            Self::Validate => "validate",
            Self::Test => "test",
            Self::Discover => "discover",
            Self::Render => "render",
        }
    }
}

/// Size of the ABI 1.0 descriptor: the least a host accepts.
pub const DESCRIPTOR_V1_0_SIZE: usize = std::mem::size_of::<PluginDescriptor>();

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layout_is_the_documented_one() {
        assert_eq!(size_of::<PluginDescriptor>(), 64);
        assert_eq!(offset_of!(PluginDescriptor, magic), 0);
        assert_eq!(offset_of!(PluginDescriptor, size), 8);
        assert_eq!(offset_of!(PluginDescriptor, name), 24);
        assert_eq!(offset_of!(PluginDescriptor, destroy), 56);
        assert_eq!(size_of::<HostTable>(), 24);
        assert_eq!(size_of::<OutputSink>(), 16);
    }

    #[test]
    fn raw_values_round_trip() {
        for code in 0..7 {
            assert_eq!(ReturnCode::from_raw(code).map(|c| c as i32), Some(code));
        }
        assert_eq!(ReturnCode::from_raw(7), None);
        for id in 1..6 {
            assert_eq!(Method::from_raw(id).map(|m| m as u32), Some(id));
        }
        assert_eq!(Method::from_raw(0), None);
    }
}
