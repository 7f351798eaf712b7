//! The master key: loading, generating and writing it.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use rand::TryRngCore as _;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::{CryptoError, Result};

/// Length of a master key in bytes.
pub(crate) const KEY_LEN: usize = 32;

/// Largest key file we read: a base64 key with whitespace fits easily.
const MAX_KEY_FILE_LEN: u64 = 1024;

/// A 256-bit master key. Zeroized on drop; `Debug` prints `[redacted]`.
///
/// The master key never seals records itself: it wraps the data keys held by a
/// [`Keyring`](crate::Keyring), so changing it re-wraps a few keys and touches
/// no record.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    /// Builds a key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Decodes a base64 key (standard alphabet, padding optional, surrounding
    /// whitespace ignored). It must decode to exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self> {
        let text = text.trim();
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| STANDARD_NO_PAD.decode(text))
                .map_err(|_| CryptoError::MasterKeyEncoding)?,
        );
        Self::from_slice(&decoded)
    }

    fn from_slice(bytes: &[u8]) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::MasterKeyLength(bytes.len()));
        }
        key.copy_from_slice(bytes);
        Ok(Self(key))
    }

    /// Generates a fresh key from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng
            .try_fill_bytes(key.as_mut())
            .map_err(|_| CryptoError::Rng)?;
        Ok(Self(key))
    }

    /// Loads a key file holding either base64 text or exactly 32 raw bytes.
    ///
    /// On Unix a file readable or writable by group or other is refused with
    /// [`CryptoError::InsecureKeyFile`]: a key anyone on the host can read
    /// protects nothing.
    pub fn load_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io_err = |source| CryptoError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        // Check the permissions of the file we opened, not of the path, so a
        // swap between the check and the read cannot slip a different file in.
        let meta = file.metadata().map_err(io_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(CryptoError::InsecureKeyFile {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        if !meta.is_file() {
            return Err(io_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let mut contents = Zeroizing::new(Vec::with_capacity(64));
        file.take(MAX_KEY_FILE_LEN + 1)
            .read_to_end(&mut contents)
            .map_err(io_err)?;
        if contents.len() as u64 > MAX_KEY_FILE_LEN {
            return Err(CryptoError::MasterKeyLength(contents.len()));
        }
        // 32 bytes can never be a base64 encoding of 32 bytes (that takes 43+
        // characters), so the two formats cannot be confused.
        if contents.len() == KEY_LEN {
            return Self::from_slice(&contents);
        }
        let text = std::str::from_utf8(&contents).map_err(|_| CryptoError::MasterKeyEncoding)?;
        Self::from_base64(text)
    }

    /// Generates a key and writes it, base64-encoded, to a new file with mode
    /// 0600. Fails if the file already exists. Meant for `--dev` mode.
    pub fn create_dev_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io_err = |source| CryptoError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        let key = Self::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io_err)?;
        let mut text = Zeroizing::new(STANDARD.encode(key.0.as_ref()));
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        Ok(key)
    }

    /// The key, base64-encoded (standard alphabet, padded).
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.0.as_ref()))
    }

    /// The raw key, for a caller that must hand it on (the key CLI sending
    /// it to a server on loopback). Keep the copy short-lived and zeroized.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn base64_round_trip_and_length_check() {
        let key = MasterKey::generate().unwrap();
        let text = key.to_base64();
        let again = MasterKey::from_base64(text.expose_secret()).unwrap();
        assert_eq!(key.bytes(), again.bytes());
        let unpadded = text.expose_secret().trim_end_matches('=').to_owned();
        assert_eq!(
            MasterKey::from_base64(&unpadded).unwrap().bytes(),
            key.bytes()
        );
        assert!(matches!(
            MasterKey::from_base64(&STANDARD.encode([1u8; 31])),
            Err(CryptoError::MasterKeyLength(31))
        ));
        assert!(matches!(
            MasterKey::from_base64(&STANDARD.encode([1u8; 33])),
            Err(CryptoError::MasterKeyLength(33))
        ));
        assert!(matches!(
            MasterKey::from_base64("not base64 !!"),
            Err(CryptoError::MasterKeyEncoding)
        ));
    }

    #[test]
    fn debug_is_redacted() {
        let key = MasterKey::from_bytes(*b"CANARY-CANARY-CANARY-CANARY-1234");
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(!shown.contains(key.to_base64().expose_secret()), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn dev_file_is_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::create_dev_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(MasterKey::load_file(&path).unwrap().bytes(), key.bytes());
        // create_new: never overwrite an existing key.
        assert!(matches!(
            MasterKey::create_dev_file(&path),
            Err(CryptoError::KeyFile { .. })
        ));
    }

    #[test]
    fn raw_key_file_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.key");
        std::fs::write(&path, [7u8; 32]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        assert_eq!(MasterKey::load_file(&path).unwrap().bytes(), &[7u8; 32]);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("open.key");
        let key = MasterKey::generate().unwrap();
        std::fs::write(&path, key.to_base64().expose_secret()).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = MasterKey::load_file(&path).unwrap_err();
            assert!(
                matches!(err, CryptoError::InsecureKeyFile { mode: m, .. } if m == mode),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(message.contains("chmod 600"), "{message}");
            assert!(message.contains("open.key"), "{message}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(MasterKey::load_file(&path).unwrap().bytes(), key.bytes());
    }
}
