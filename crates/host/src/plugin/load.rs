//! Loading a verified plugin file: the sealed memfd, `dlopen`, the descriptor
//! checks and `init` under a time limit.

use std::ffi::c_void;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use connvault_plugin_abi::{
    self as abi, DESCRIPTOR_V1_0_SIZE, EntryFn, HostTable, InitFn, PluginDescriptor,
};

use super::ffi;
use super::raw::{Instance, Parts};
use crate::error::LoadError;
use crate::verify::Verified;

/// A library that loaded, passed its descriptor checks and was initialised.
pub(crate) struct Loaded {
    /// Everything a raw call needs.
    pub(crate) parts: Parts,
    /// The plugin's version from its descriptor.
    pub(crate) version: String,
    /// Whether the plugin may be called from several threads at once.
    pub(crate) thread_safe: bool,
}

/// Loads exactly `verified`'s bytes (named `file_name` for `dlopen`), checks
/// the descriptor and runs `init` within `init_timeout`.
pub(super) fn open(
    verified: &Verified,
    file_name: &str,
    init_timeout: Duration,
) -> Result<Loaded, LoadError> {
    open_memfd(seal(&verified.bytes, file_name)?, init_timeout)
}

/// Copies `bytes` into a memfd named `file_name` and seals it: what is
/// loaded from it is exactly what was checked, even if the file on disk
/// changes in between.
pub(crate) fn seal(bytes: &[u8], file_name: &str) -> Result<memfd::Memfd, LoadError> {
    let memfd = memfd::MemfdOptions::default()
        .allow_sealing(true)
        .close_on_exec(true)
        .create(file_name)
        .map_err(|error| LoadError::Io(std::io::Error::other(error.to_string())))?;
    std::io::Write::write_all(&mut memfd.as_file(), bytes)?;
    memfd
        .add_seals(&[
            memfd::FileSeal::SealShrink,
            memfd::FileSeal::SealGrow,
            memfd::FileSeal::SealWrite,
            memfd::FileSeal::SealSeal,
        ])
        .map_err(|error| LoadError::Io(std::io::Error::other(error.to_string())))?;
    Ok(memfd)
}

/// Loads the library in the sealed `memfd`, checks the descriptor and runs
/// `init` within `init_timeout`. The memfd stays open for the life of the
/// process, as `dlopen` dedups by name.
pub(crate) fn open_memfd(memfd: memfd::Memfd, init_timeout: Duration) -> Result<Loaded, LoadError> {
    let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&memfd));

    // SAFETY: loading runs the library's initialisers: the bytes passed the
    // file, pin and ELF checks above; RTLD_NOW refuses undefined symbols
    // now instead of crashing on first call; RTLD_LOCAL keeps its symbols
    // out of other plugins' way.
    let library = unsafe {
        libloading::os::unix::Library::open(
            Some(&fd_path),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .map_err(|error| LoadError::Dlopen(error.to_string()))?;

    // SAFETY: the symbol, if present, has the `EntryFn` type by the ABI contract.
    let entry: EntryFn = unsafe { library.get::<EntryFn>(abi::ENTRY_SYMBOL) }
        .map(|symbol| *symbol)
        .map_err(|_| LoadError::NoEntry)?;
    // SAFETY: calling the entry function is the ABI's first step; it takes no arguments.
    let descriptor_ptr = unsafe { entry() };
    let descriptor = checked_descriptor(&library, descriptor_ptr)?;
    // SAFETY: descriptor strings point into the library's static data.
    let name = unsafe { bounded_c_str(descriptor.name, "name") }?;
    // SAFETY: as above.
    let version = unsafe { bounded_c_str(descriptor.version, "version") }?;
    let (Some(init), Some(call_fn)) = (descriptor.init, descriptor.call) else {
        return Err(LoadError::BadDescriptor(
            "init or call is a null function pointer".into(),
        ));
    };
    if descriptor.destroy.is_none() {
        return Err(LoadError::BadDescriptor(
            "destroy is a null function pointer".into(),
        ));
    }
    let thread_safe = descriptor.flags & abi::FLAG_THREAD_SAFE != 0;
    let destroy = descriptor.destroy;

    let instance = init_with_timeout(init, &name, init_timeout)?;
    Ok(Loaded {
        parts: Parts {
            name,
            call_fn,
            instance,
            destroy,
            library,
            memfd,
        },
        version,
        thread_safe,
    })
}

/// Checks the descriptor's header (magic, size, major version) before the
/// rest of it is read.
///
/// The returned reference points into `_library`'s static data, so it
/// borrows the library.
fn checked_descriptor(
    _library: &libloading::os::unix::Library,
    descriptor_ptr: *const PluginDescriptor,
) -> Result<&PluginDescriptor, LoadError> {
    if descriptor_ptr.is_null() {
        return Err(LoadError::BadDescriptor(
            "the entry function returned null".into(),
        ));
    }
    // Read the fixed header first: a short descriptor must not be read whole.
    // SAFETY: every descriptor starts with magic (u64) and size (u32).
    let (magic, size) = unsafe {
        (
            std::ptr::read_unaligned(descriptor_ptr.cast::<u64>()),
            std::ptr::read_unaligned(descriptor_ptr.cast::<u8>().add(8).cast::<u32>()),
        )
    };
    if magic != abi::MAGIC {
        return Err(LoadError::BadDescriptor(format!(
            "bad magic {magic:#018x}, expected {:#018x}",
            abi::MAGIC
        )));
    }
    if (size as usize) < DESCRIPTOR_V1_0_SIZE {
        return Err(LoadError::BadDescriptor(format!(
            "descriptor is {size} bytes; ABI 1.0 needs at least {DESCRIPTOR_V1_0_SIZE}"
        )));
    }
    // SAFETY: the plugin declared at least the 1.0 size, so the whole struct is readable.
    let descriptor: &PluginDescriptor = unsafe { &*descriptor_ptr };
    if descriptor.abi_major != abi::ABI_MAJOR {
        return Err(LoadError::AbiMismatch {
            major: descriptor.abi_major,
            minor: descriptor.abi_minor,
            host: abi::ABI_MAJOR,
        });
    }
    Ok(descriptor)
}

/// Reads a NUL-terminated string of at most 256 bytes.
///
/// # Safety
/// `ptr` must point to readable memory up to its NUL or 256 bytes.
unsafe fn bounded_c_str(ptr: *const std::ffi::c_char, what: &str) -> Result<String, LoadError> {
    if ptr.is_null() {
        return Err(LoadError::BadDescriptor(format!("{what} is null")));
    }
    let mut bytes = Vec::new();
    for offset in 0..256 {
        // SAFETY: the caller guarantees readable memory until the NUL.
        let byte = unsafe { *ptr.cast::<u8>().add(offset) };
        if byte == 0 {
            return String::from_utf8(bytes)
                .map_err(|_| LoadError::BadDescriptor(format!("{what} is not UTF-8")));
        }
        bytes.push(byte);
    }
    Err(LoadError::BadDescriptor(format!(
        "{what} is longer than 255 bytes"
    )))
}

/// Runs `init` on a thread of its own, so that a plugin hanging in it is
/// refused after `timeout` instead of stalling start-up.
fn init_with_timeout(init: InitFn, name: &str, timeout: Duration) -> Result<Instance, LoadError> {
    let table = ffi::host_table(name) as *const HostTable as usize;
    let (sender, receiver) = mpsc::channel();
    let started = Instant::now();
    std::thread::Builder::new()
        .name(format!("plugin-{name}-init"))
        .spawn(move || {
            let mut instance: *mut c_void = std::ptr::null_mut();
            // SAFETY: the host table is leaked and lives forever; `instance` is a valid slot.
            let code = unsafe { init(table as *const HostTable, &mut instance) };
            let _ = sender.send((code, instance as usize));
        })
        .map_err(LoadError::Io)?;
    match receiver.recv_timeout(timeout) {
        Ok((0, instance)) => Ok(Instance(instance as *mut c_void)),
        Ok((code, _)) => Err(LoadError::Init(format!("returned code {code}"))),
        Err(_) => Err(LoadError::Init(format!(
            "did not return within {:?}",
            started.elapsed()
        ))),
    }
}

/// The file name `path` gives `dlopen` (and `/proc/self/fd` listings).
pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}
