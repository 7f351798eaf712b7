//! The key file `keys.v1` in the data directory: the key check value and
//! the wrapped data keys, outside the store.
//!
//! The store keeps a copy, but a damaged store can lose it — and a store
//! that lost its keyring would accept any master key and seal new secrets
//! under a new one. The file is written once, atomically (a temporary file
//! written and `fsync`ed, renamed over, the directory `fsync`ed), and carries
//! a SHA-256 of its contents, so damage is told apart from a wrong key.
//!
//! Layout: `magic "cvkeys\0\x01" || len(check)(u32 BE) || check ||
//! len(wrapped)(u32 BE) || wrapped (the store's encoding of the wrapped key
//! list) || SHA-256 of everything before`.
//!
//! Format 2 (magic `"cvkeys\0\x02"`), written when the keyring has
//! per-tenant keys, adds `len(tenant)(u32 BE) || tenant keys
//! (`TenantKey::encode_list`)` before the digest. The tenant keys live only
//! here, never in the store: a log-structured store keeps old values in its
//! file after a delete, so a key deleted there would not be gone, while this
//! file is replaced whole (crypto-shredding a deleted tenant). Format 1 is
//! still read (and written while no tenant has a key).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The key file's name inside the data directory.
pub const KEYS_FILE: &str = "keys.v1";

const MAGIC: [u8; 8] = *b"cvkeys\x00\x01";
const MAGIC_V2: [u8; 8] = *b"cvkeys\x00\x02";
const DIGEST_LEN: usize = 32;
/// Far above any real keyring: about 100 bytes per tenant and version, so
/// some 160,000 tenant keys.
const MAX_FILE_LEN: u64 = 16 << 20;

/// The keyring as the key file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// The master key's check value.
    pub check_value: Vec<u8>,
    /// The wrapped data keys (`WrappedKey::encode_list`).
    pub wrapped_keys: Vec<u8>,
    /// The wrapped per-tenant keys (`TenantKey::encode_list`; empty: none).
    /// Only the key file holds them.
    pub tenant_keys: Vec<u8>,
}

/// What reading the key file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFileRead {
    /// No key file: a new data directory, or one written by an older version.
    Absent,
    /// A sound key file.
    Present(KeyFile),
    /// A file whose checksum or layout is wrong.
    Damaged,
}

/// The key file of `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEYS_FILE)
}

impl KeyFile {
    /// Whether the parts the store keeps a copy of (check value, global
    /// keys) are the same.
    pub fn same_store_part(&self, other: &KeyFile) -> bool {
        self.check_value == other.check_value && self.wrapped_keys == other.wrapped_keys
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            MAGIC.len()
                + 12
                + self.check_value.len()
                + self.wrapped_keys.len()
                + self.tenant_keys.len()
                + DIGEST_LEN,
        );
        let mut parts = vec![&self.check_value, &self.wrapped_keys];
        if self.tenant_keys.is_empty() {
            out.extend_from_slice(&MAGIC);
        } else {
            out.extend_from_slice(&MAGIC_V2);
            parts.push(&self.tenant_keys);
        }
        for part in parts {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part);
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    fn decode(bytes: &[u8]) -> Option<KeyFile> {
        let body_len = bytes.len().checked_sub(DIGEST_LEN)?;
        let (body, digest) = bytes.split_at(body_len);
        if Sha256::digest(body).as_slice() != digest {
            return None;
        }
        let (mut rest, v2) = match body.strip_prefix(&MAGIC) {
            Some(rest) => (rest, false),
            None => (body.strip_prefix(&MAGIC_V2)?, true),
        };
        let mut part = || {
            let (len, tail) = rest.split_at_checked(4)?;
            let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
            let (value, tail) = tail.split_at_checked(len)?;
            rest = tail;
            Some(value.to_vec())
        };
        let check_value = part()?;
        let wrapped_keys = part()?;
        let tenant_keys = if v2 { part()? } else { Vec::new() };
        rest.is_empty().then_some(KeyFile {
            check_value,
            wrapped_keys,
            tenant_keys,
        })
    }
}

/// Reads the key file of `data_dir`.
pub fn read(data_dir: &Path) -> std::io::Result<KeyFileRead> {
    let path = path(data_dir);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(KeyFileRead::Absent);
        }
        Err(error) => return Err(error),
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE_LEN), &mut bytes)?;
    Ok(match KeyFile::decode(&bytes) {
        Some(keys) => KeyFileRead::Present(keys),
        None => KeyFileRead::Damaged,
    })
}

/// Writes the key file of `data_dir` atomically (mode 0600).
pub fn write(data_dir: &Path, keys: &KeyFile) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = data_dir.join(format!("{KEYS_FILE}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&keys.encode())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path(data_dir))?;
    std::fs::File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_flip_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), KeyFileRead::Absent);
        for tenant_keys in [Vec::new(), vec![3; 90]] {
            let keys = KeyFile {
                check_value: vec![1; 16],
                wrapped_keys: vec![2; 70],
                tenant_keys,
            };
            write(dir.path(), &keys).unwrap();
            assert_eq!(
                read(dir.path()).unwrap(),
                KeyFileRead::Present(keys.clone())
            );
            let bytes = std::fs::read(path(dir.path())).unwrap();
            let magic = if keys.tenant_keys.is_empty() {
                MAGIC
            } else {
                MAGIC_V2
            };
            assert_eq!(bytes[..8], magic);
            for at in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[at] ^= 0x01;
                assert_eq!(KeyFile::decode(&bad), None, "flip at {at}");
            }
            for cut in 0..bytes.len() {
                assert_eq!(KeyFile::decode(&bytes[..cut]), None, "cut at {cut}");
            }
        }
    }
}
