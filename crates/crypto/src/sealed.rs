//! Sealed values and the associated data that binds them to their place.

use crate::{CryptoError, Result};

/// Format byte of [`Sealed::to_bytes`].
const SEALED_V1: u8 = 1;
/// Domain separation for the associated data of sealed secret maps.
const AAD_DOMAIN: &[u8] = b"connvault-seal-v1";
/// AES-GCM nonce length (96 bits).
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Largest ciphertext accepted: secret maps are passwords and TLS material,
/// a few kilobytes; anything near this bound is garbage or an attack.
pub const MAX_CIPHERTEXT_LEN: usize = 1 << 20;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// Where a sealed value belongs. Encoded unambiguously (length-prefixed) with
/// the data-key version into the AES-GCM associated data, so a ciphertext
/// copied to another tenant, record, purpose or key version fails to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aad<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// Record id (the connection's UUID).
    pub record_id: &'a str,
    /// What the sealed value is, e.g. `"connection.secrets"`.
    pub purpose: &'a str,
}

impl Aad<'_> {
    /// The associated-data bytes for a given key version. `None` only if a
    /// field is longer than 4 GiB.
    pub(crate) fn encode(&self, key_version: u32) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(
            AAD_DOMAIN.len() + 16 + self.tenant.len() + self.record_id.len() + self.purpose.len(),
        );
        out.extend_from_slice(AAD_DOMAIN);
        out.extend_from_slice(&key_version.to_be_bytes());
        for field in [self.tenant, self.record_id, self.purpose] {
            let len = u32::try_from(field.len()).ok()?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        Some(out)
    }
}

/// A sealed secret map: the data-key version, the nonce and the AES-GCM
/// ciphertext (tag included).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Version of the data key that sealed this value; rotation re-seals every
    /// value whose version is not the keyring's current one.
    pub key_version: u32,
    /// The random 96-bit nonce used for this seal.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// Encodes as `format(1) || key_version(u32 BE) || nonce(12) || ciphertext`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.ciphertext.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&self.key_version.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Decodes [`Sealed::to_bytes`] output. Any malformed input (unknown
    /// format, too short, absurdly long) is the opaque [`CryptoError::Open`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER_LEN + TAG_LEN || bytes.len() > HEADER_LEN + MAX_CIPHERTEXT_LEN {
            return Err(CryptoError::Open);
        }
        let (header, ciphertext) = bytes.split_at(HEADER_LEN);
        if header[0] != SEALED_V1 {
            return Err(CryptoError::Open);
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&header[1..5]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[5..]);
        Ok(Self {
            key_version: u32::from_be_bytes(version),
            nonce,
            ciphertext: ciphertext.to_vec(),
        })
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_version", &self.key_version)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_is_unambiguous() {
        let a = Aad {
            tenant: "ab",
            record_id: "c",
            purpose: "p",
        };
        let b = Aad {
            tenant: "a",
            record_id: "bc",
            purpose: "p",
        };
        assert_ne!(a.encode(1), b.encode(1));
        assert_ne!(a.encode(1), a.encode(2));
    }

    #[test]
    fn sealed_bytes_round_trip_and_bounds() {
        let sealed = Sealed {
            key_version: 7,
            nonce: [3; NONCE_LEN],
            ciphertext: vec![9; 40],
        };
        assert_eq!(Sealed::from_bytes(&sealed.to_bytes()).unwrap(), sealed);
        assert!(matches!(Sealed::from_bytes(&[]), Err(CryptoError::Open)));
        assert!(matches!(
            Sealed::from_bytes(&[SEALED_V1; 20]),
            Err(CryptoError::Open)
        ));
        let mut other_format = sealed.to_bytes();
        other_format[0] = 2;
        assert!(matches!(
            Sealed::from_bytes(&other_format),
            Err(CryptoError::Open)
        ));
        let huge = vec![SEALED_V1; HEADER_LEN + MAX_CIPHERTEXT_LEN + 1];
        assert!(matches!(Sealed::from_bytes(&huge), Err(CryptoError::Open)));
    }
}
