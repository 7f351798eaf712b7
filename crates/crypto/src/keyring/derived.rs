//! Keys derived from the master key for jobs other than sealing records:
//! per-scope audit HMACs and small opaque tokens (page tokens).
//!
//! Each job gets its own key, `HMAC(master or audit key, label)`, so a value
//! made for one job is never valid for another and nothing here can open a
//! sealed record.

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead as _, Payload};
use hmac::Mac as _;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use super::{DataKey, Keyring, cipher, hmac};
use crate::master::KEY_LEN;
use crate::sealed::{NONCE_LEN, TAG_LEN};
use crate::{CryptoError, Result};

/// Label deriving a per-scope audit HMAC key from the audit key.
const SCOPE_LABEL: &[u8] = b"connvault-audit-scope-v1\0";
/// Label deriving an opaque-token key from the master key.
const OPAQUE_LABEL: &[u8] = b"connvault-opaque-v1\0";
/// Label deriving a purpose key (a signing key's seed) from the master key.
const PURPOSE_LABEL: &[u8] = b"connvault-purpose-key-v1\0";
/// The largest plaintext an opaque token carries.
pub const MAX_OPAQUE_LEN: usize = 4096;

fn derive(parent: &[u8; KEY_LEN], label: &[u8], name: &str) -> DataKey {
    let mut mac = hmac(parent);
    mac.update(label);
    mac.update(name.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

impl Keyring {
    /// 32 bytes derived from the master key for `purpose` alone (the seed of
    /// the form redirects' Ed25519 key): stable for a master key, unrelated
    /// between purposes, and useless for opening anything sealed.
    pub fn derive_key(&self, purpose: &str) -> Zeroizing<[u8; KEY_LEN]> {
        derive(self.master.bytes(), PURPOSE_LABEL, purpose)
    }

    /// Hex HMAC-SHA256 of a secret value under a key of its own for `scope`
    /// (a tenant): equal values in two scopes give unrelated HMACs, so an
    /// HMAC seen in one tenant's events says nothing about another's.
    pub fn hmac_secret_in(&self, scope: &str, value: &SecretString) -> String {
        let key = derive(&self.audit_key, SCOPE_LABEL, scope);
        let mut mac = hmac(&key);
        mac.update(value.expose_secret().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Encrypts a small value (AES-256-GCM, random nonce) under a key derived
    /// for `purpose`, bound to `context` as associated data: `nonce ||
    /// ciphertext`. It reveals nothing of `plain` but its length.
    pub fn seal_opaque(&self, purpose: &str, context: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        if plain.len() > MAX_OPAQUE_LEN {
            return Err(CryptoError::Seal);
        }
        let key = derive(self.master.bytes(), OPAQUE_LABEL, purpose);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher(&key)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens what [`Keyring::seal_opaque`] made for the same `purpose` and
    /// `context`; any other input is the one [`CryptoError::Open`].
    pub fn open_opaque(&self, purpose: &str, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN || sealed.len() > NONCE_LEN + TAG_LEN + MAX_OPAQUE_LEN
        {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let key = derive(self.master.bytes(), OPAQUE_LABEL, purpose);
        cipher(&key)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Keyring, MasterKey};
    use secrecy::SecretString;

    fn keyring(byte: u8) -> Keyring {
        Keyring::new(MasterKey::from_bytes([byte; 32]), Vec::new()).unwrap()
    }

    #[test]
    fn scoped_hmacs_differ_across_scopes_and_keys() {
        let value = SecretString::from("hunter2".to_owned());
        let ring = keyring(7);
        let a = ring.hmac_secret_in("a", &value);
        assert_eq!(a, ring.hmac_secret_in("a", &value));
        assert_ne!(a, ring.hmac_secret_in("b", &value));
        assert_ne!(a, ring.hmac_secret(&value));
        assert_ne!(a, keyring(8).hmac_secret_in("a", &value));
    }

    #[test]
    fn opaque_values_open_only_for_their_purpose_context_and_key() {
        let ring = keyring(7);
        let sealed = ring.seal_opaque("page", b"q1", b"position").unwrap();
        assert_eq!(
            ring.open_opaque("page", b"q1", &sealed).unwrap(),
            b"position"
        );
        assert!(ring.open_opaque("page", b"q2", &sealed).is_err());
        assert!(ring.open_opaque("other", b"q1", &sealed).is_err());
        assert!(keyring(8).open_opaque("page", b"q1", &sealed).is_err());
        for index in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[index] ^= 1;
            assert!(
                ring.open_opaque("page", b"q1", &flipped).is_err(),
                "{index}"
            );
        }
        assert!(ring.open_opaque("page", b"q1", &sealed[..20]).is_err());
        assert!(ring.seal_opaque("page", b"", &[0; 5000]).is_err());
    }
}
