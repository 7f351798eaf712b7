//! Checks a plugin file before anything of it runs.
//!
//! `dlopen` runs a library's initialisers, and a file truncated inside a
//! loadable segment makes `dlopen` itself die of SIGBUS. So the bytes are read
//! once, checked (ownership bits, size, SHA-256 pin, ELF header and every
//! `PT_LOAD` inside the file), and exactly those bytes are what gets loaded.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use elf::ElfBytes;
use elf::abi::{ET_DYN, PT_LOAD};
use elf::endian::AnyEndian;
use sha2::{Digest, Sha256};

use crate::error::LoadError;

/// The largest plugin file accepted.
pub const MAX_PLUGIN_BYTES: u64 = 256 << 20;

/// A plugin file's verified bytes and digest.
pub struct Verified {
    /// The file's contents, as checked.
    pub bytes: Vec<u8>,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
}

/// Reads and checks `path`. `pin` is the expected SHA-256 (hex), if configured.
pub fn verify(path: &Path, pin: Option<&str>, require_pin: bool) -> Result<Verified, LoadError> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| {
            if error.raw_os_error() == Some(libc::ELOOP) {
                LoadError::NotRegularFile
            } else {
                LoadError::Io(error)
            }
        })?;
    let metadata = file.metadata()?;
    if !metadata.file_type().is_file() {
        return Err(LoadError::NotRegularFile);
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(LoadError::Writable { mode });
    }
    if metadata.size() > MAX_PLUGIN_BYTES {
        return Err(LoadError::TooLarge {
            size: metadata.size(),
            limit: MAX_PLUGIN_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.size()).unwrap_or(0));
    file.take(MAX_PLUGIN_BYTES + 1).read_to_end(&mut bytes)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    match pin {
        Some(pinned) if !pinned.eq_ignore_ascii_case(&sha256) => {
            return Err(LoadError::PinMismatch {
                actual: sha256,
                pinned: pinned.to_owned(),
            });
        }
        None if require_pin => return Err(LoadError::Unpinned { actual: sha256 }),
        _ => {}
    }
    check_elf(&bytes)?;
    Ok(Verified { bytes, sha256 })
}

fn host_machine() -> u16 {
    if cfg!(target_arch = "x86_64") {
        elf::abi::EM_X86_64
    } else if cfg!(target_arch = "aarch64") {
        elf::abi::EM_AARCH64
    } else {
        0
    }
}

/// Checks the ELF header and that every loadable segment lies inside the file.
pub fn check_elf(bytes: &[u8]) -> Result<(), LoadError> {
    let elf = ElfBytes::<AnyEndian>::minimal_parse(bytes).map_err(|error| match error {
        elf::ParseError::SliceReadError(_) => {
            LoadError::BadElf(format!("truncated or corrupt file ({error})"))
        }
        error => LoadError::BadElf(error.to_string()),
    })?;
    if elf.ehdr.e_type != ET_DYN {
        return Err(LoadError::BadElf("not a shared object (ET_DYN)".into()));
    }
    let machine = host_machine();
    if machine != 0 && elf.ehdr.e_machine != machine {
        return Err(LoadError::BadElf(format!(
            "built for machine {}, this host is {machine}",
            elf.ehdr.e_machine
        )));
    }
    let segments = elf
        .segments()
        .ok_or_else(|| LoadError::BadElf("no program headers".into()))?;
    let length = bytes.len() as u64;
    let mut loads = 0;
    for segment in segments.iter().filter(|segment| segment.p_type == PT_LOAD) {
        loads += 1;
        let end = segment.p_offset.checked_add(segment.p_filesz);
        if end.is_none_or(|end| end > length) {
            return Err(LoadError::BadElf(format!(
                "a loadable segment ends past the end of the file ({length} bytes): truncated?"
            )));
        }
    }
    if loads == 0 {
        return Err(LoadError::BadElf("no loadable segment".into()));
    }
    Ok(())
}
