//! The keyring: versioned data keys wrapped under the master key.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hmac::Mac as _;
use rand::{RngCore as _, TryRngCore as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;
use zeroize::{Zeroize as _, Zeroizing};

use crate::master::KEY_LEN;
use crate::sealed::{NONCE_LEN, TAG_LEN};
use crate::{Aad, CryptoError, MasterKey, Result, Sealed, SecretMap};

mod derived;
mod tenant;

pub use tenant::TenantKey;

type HmacSha256 = hmac::Hmac<Sha256>;
type DataKey = Zeroizing<[u8; KEY_LEN]>;

/// Associated-data prefix of a wrapped data key (followed by its version).
const DEK_AAD: &[u8] = b"connvault-dek";
/// HMAC label of the key check value.
const KCV_LABEL: &[u8] = b"connvault-kcv";
/// HMAC label deriving the audit-log HMAC key from the master key.
const AUDIT_LABEL: &[u8] = b"connvault-audit-hmac-v1";
/// Length of the key check value.
pub const CHECK_VALUE_LEN: usize = 16;
/// Format byte of [`WrappedKey::to_bytes`] and [`WrappedKey::encode_list`].
const WRAPPED_V1: u8 = 1;
/// Format byte of a list whose keyring also has per-tenant keys kept
/// elsewhere ([`WrappedKey::encode_list_marked`]): an older version, which
/// knows only format 1, refuses it instead of losing those keys.
const WRAPPED_LIST_V2: u8 = 2;
/// Bound on a wrapped key's ciphertext (a real one is 48 bytes).
const MAX_WRAPPED_LEN: usize = 1024;

/// A data key encrypted (AES-256-GCM) under the master key, as persisted by
/// the store. The version is bound into the associated data, so a wrapped key
/// relabelled with another version fails to unwrap.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Data-key version, starting at 1.
    pub version: u32,
    /// Nonce of the wrapping.
    pub nonce: [u8; NONCE_LEN],
    /// The wrapped key and its tag.
    pub ciphertext: Vec<u8>,
}

impl WrappedKey {
    /// Encodes as `format(1) || version(u32 BE) || nonce(12) || len(u32 BE) || ciphertext`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21 + self.ciphertext.len());
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(WRAPPED_V1);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        // A wrapped key's ciphertext is 48 bytes; saturate rather than fail on
        // a hand-built absurd value, which then fails to decode.
        let len = u32::try_from(self.ciphertext.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
    }

    /// Decodes [`WrappedKey::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut rest = bytes;
        let key = Self::read(&mut rest)?;
        if !rest.is_empty() {
            return Err(CryptoError::MalformedWrappedKey);
        }
        Ok(key)
    }

    fn read(rest: &mut &[u8]) -> Result<Self> {
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(CryptoError::MalformedWrappedKey);
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head)
        };
        if take(1)? != [WRAPPED_V1] {
            return Err(CryptoError::MalformedWrappedKey);
        }
        let version = u32::from_be_bytes(to_array(take(4)?));
        let nonce: [u8; NONCE_LEN] = to_array(take(NONCE_LEN)?);
        let len = u32::from_be_bytes(to_array(take(4)?));
        let len = usize::try_from(len).map_err(|_| CryptoError::MalformedWrappedKey)?;
        if len > MAX_WRAPPED_LEN {
            return Err(CryptoError::MalformedWrappedKey);
        }
        let ciphertext = take(len)?.to_vec();
        Ok(Self {
            version,
            nonce,
            ciphertext,
        })
    }

    /// Encodes a whole keyring's wrapped keys into one value (for one store
    /// key): `format(1) || count(u32 BE) || each key's to_bytes()`.
    pub fn encode_list(keys: &[WrappedKey]) -> Vec<u8> {
        let mut out = vec![WRAPPED_V1];
        let count = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for key in keys {
            key.write(&mut out);
        }
        out
    }

    /// [`WrappedKey::encode_list`], marked (format 2) when `tenant_keys_elsewhere`:
    /// the keyring also has per-tenant keys, which only the key file holds.
    pub fn encode_list_marked(keys: &[WrappedKey], tenant_keys_elsewhere: bool) -> Vec<u8> {
        let mut out = Self::encode_list(keys);
        if tenant_keys_elsewhere {
            out[0] = WRAPPED_LIST_V2;
        }
        out
    }

    /// Whether an encoded list is marked as having per-tenant keys elsewhere.
    pub fn list_is_marked(bytes: &[u8]) -> bool {
        bytes.first() == Some(&WRAPPED_LIST_V2)
    }

    /// Decodes [`WrappedKey::encode_list`] or [`WrappedKey::encode_list_marked`] output.
    pub fn decode_list(bytes: &[u8]) -> Result<Vec<WrappedKey>> {
        if bytes.len() < 5 || (bytes[0] != WRAPPED_V1 && bytes[0] != WRAPPED_LIST_V2) {
            return Err(CryptoError::MalformedWrappedKey);
        }
        let count = u32::from_be_bytes(to_array(&bytes[1..5]));
        let mut rest = &bytes[5..];
        let mut keys = Vec::new();
        for _ in 0..count {
            keys.push(Self::read(&mut rest)?);
        }
        if !rest.is_empty() {
            return Err(CryptoError::MalformedWrappedKey);
        }
        Ok(keys)
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn to_array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

/// HMAC-SHA256 keyed with a 32-byte key.
fn hmac(key: &[u8; KEY_LEN]) -> HmacSha256 {
    // HMAC zero-pads a short key to the block size; doing it here lets us use
    // the infallible constructor.
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    block[..KEY_LEN].copy_from_slice(key);
    let mac = <HmacSha256 as hmac::Mac>::new(&block);
    block.as_mut_slice().zeroize();
    mac
}

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

fn dek_aad(version: u32) -> Vec<u8> {
    let mut aad = DEK_AAD.to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn wrap(master: &MasterKey, version: u32, key: &DataKey) -> Result<WrappedKey> {
    wrap_with(master, version, &dek_aad(version), key)
}

fn wrap_with(master: &MasterKey, version: u32, aad: &[u8], key: &DataKey) -> Result<WrappedKey> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ciphertext = cipher(master.bytes())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: key.as_slice(),
                aad,
            },
        )
        .map_err(|_| CryptoError::Seal)?;
    Ok(WrappedKey {
        version,
        nonce,
        ciphertext,
    })
}

fn unwrap_key(master: &MasterKey, wrapped: &WrappedKey) -> Result<DataKey> {
    unwrap_with(master, wrapped, &dek_aad(wrapped.version))
}

fn unwrap_with(master: &MasterKey, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
    let plain = Zeroizing::new(
        cipher(master.bytes())
            .decrypt(
                Nonce::from_slice(&wrapped.nonce),
                Payload {
                    msg: &wrapped.ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::WrongMasterKey)?,
    );
    if plain.len() != KEY_LEN {
        return Err(CryptoError::WrongMasterKey);
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&plain);
    Ok(key)
}

/// The master key plus every data key, unwrapped, by version.
///
/// The newest version is current: [`Keyring::seal`] uses it, and
/// [`Keyring::open`] accepts any version the keyring holds, so records can be
/// re-sealed online after [`Keyring::add_data_key`].
///
/// Besides the global data keys, a tenant may have keys of its own
/// ([`Keyring::add_tenant_key`]), one per version: a tenant's record is
/// sealed under the tenant's key of that version when there is one, else the
/// global key, so removing a tenant's keys ([`Keyring::remove_tenant`])
/// crypto-shreds whatever ciphertext of it is left anywhere.
#[derive(Clone)]
pub struct Keyring {
    master: MasterKey,
    keys: BTreeMap<u32, DataKey>,
    wrapped: Vec<WrappedKey>,
    tenants: tenant::TenantKeys,
    audit_key: DataKey,
}

impl Keyring {
    /// Unwraps the persisted data keys. Any key that fails to unwrap means the
    /// master key is wrong: [`CryptoError::WrongMasterKey`]. A version 0 or a
    /// duplicate version is [`CryptoError::InvalidKeyring`]. An empty list gives
    /// a keyring with no data key yet.
    pub fn new(master: MasterKey, wrapped_keys: Vec<WrappedKey>) -> Result<Keyring> {
        let mut keys = BTreeMap::new();
        for wrapped in &wrapped_keys {
            if wrapped.version == 0 {
                return Err(CryptoError::InvalidKeyring("data key version 0".to_owned()));
            }
            let key = unwrap_key(&master, wrapped)?;
            if keys.insert(wrapped.version, key).is_some() {
                return Err(CryptoError::InvalidKeyring(format!(
                    "duplicate data key version {}",
                    wrapped.version
                )));
            }
        }
        let mut wrapped = wrapped_keys;
        wrapped.sort_by_key(|k| k.version);
        let mut mac = hmac(master.bytes());
        mac.update(AUDIT_LABEL);
        let audit_key = Zeroizing::new(mac.finalize().into_bytes().into());
        Ok(Keyring {
            master,
            keys,
            wrapped,
            tenants: BTreeMap::new(),
            audit_key,
        })
    }

    /// The key check value of a master key: HMAC-SHA256(master,
    /// "connvault-kcv") truncated to 16 bytes. Persist it when the data is
    /// created; it reveals nothing about the key.
    pub fn check_value(master: &MasterKey) -> [u8; CHECK_VALUE_LEN] {
        let mut mac = hmac(master.bytes());
        mac.update(KCV_LABEL);
        let full = mac.finalize().into_bytes();
        to_array(&full[..CHECK_VALUE_LEN])
    }

    /// The check value of this keyring's master key ([`Keyring::check_value`]).
    pub fn master_check_value(&self) -> [u8; CHECK_VALUE_LEN] {
        Self::check_value(&self.master)
    }

    /// Checks a master key against a persisted check value (in constant time),
    /// so a server refuses a wrong key at start, before serving anything.
    pub fn verify_check_value(master: &MasterKey, stored: &[u8]) -> Result<()> {
        if stored.len() != CHECK_VALUE_LEN {
            return Err(CryptoError::InvalidKeyring(format!(
                "key check value must be {CHECK_VALUE_LEN} bytes, got {}",
                stored.len()
            )));
        }
        let mut mac = hmac(master.bytes());
        mac.update(KCV_LABEL);
        mac.verify_truncated_left(stored)
            .map_err(|_| CryptoError::WrongMasterKey)
    }

    /// Creates a random data key with version `max + 1` (1 for the first),
    /// makes it current and returns it wrapped, to be persisted by the caller
    /// (persist it *before* sealing anything with it).
    pub fn add_data_key(&mut self) -> Result<WrappedKey> {
        let version = match self.keys.keys().next_back() {
            None => 1,
            Some(max) => max.checked_add(1).ok_or_else(|| {
                CryptoError::InvalidKeyring("data key versions exhausted".to_owned())
            })?,
        };
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng
            .try_fill_bytes(key.as_mut())
            .map_err(|_| CryptoError::Rng)?;
        let wrapped = wrap(&self.master, version, &key)?;
        self.keys.insert(version, key);
        self.wrapped.push(wrapped.clone());
        Ok(wrapped)
    }

    /// The version new seals use, `None` before the first data key.
    pub fn current_version(&self) -> Option<u32> {
        self.keys.keys().next_back().copied()
    }

    /// Every data key, wrapped, in version order: what the store persists.
    pub fn wrapped_keys(&self) -> &[WrappedKey] {
        &self.wrapped
    }

    /// The key a tenant's value of `version` is sealed under: the tenant's
    /// own, else the global one.
    fn data_key(&self, tenant: &str, version: u32) -> Option<&DataKey> {
        match self.tenants.get(tenant).and_then(|keys| keys.get(&version)) {
            Some((key, _)) => Some(key),
            None => self.keys.get(&version),
        }
    }

    /// Wraps every global data key under a new master key (for master-key
    /// rotation; [`Keyring::rewrapped`] does the tenant keys too). No record
    /// needs re-sealing.
    pub fn rewrap(&self, new_master: &MasterKey) -> Result<Vec<WrappedKey>> {
        self.keys
            .iter()
            .map(|(version, key)| wrap(new_master, *version, key))
            .collect()
    }

    /// Seals a secret map with the current data key (the tenant's own of
    /// that version if it has one) and a fresh random nonce.
    pub fn seal(&self, aad: &Aad<'_>, secrets: &SecretMap) -> Result<Sealed> {
        let key_version = self.current_version().ok_or(CryptoError::NoDataKey)?;
        let key = self
            .data_key(aad.tenant, key_version)
            .ok_or(CryptoError::NoDataKey)?;
        let plain = secrets.to_bytes()?;
        if plain.len() + TAG_LEN > crate::sealed::MAX_CIPHERTEXT_LEN {
            return Err(CryptoError::Seal);
        }
        let aad_bytes = aad.encode(key_version).ok_or(CryptoError::Seal)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher(key)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad_bytes,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        Ok(Sealed {
            key_version,
            nonce,
            ciphertext,
        })
    }

    /// Opens a sealed secret map. Every failure — unknown key version, wrong
    /// associated data, tampered bytes, bad length, undecodable content — is
    /// the same [`CryptoError::Open`].
    pub fn open(&self, aad: &Aad<'_>, sealed: &Sealed) -> Result<SecretMap> {
        let key = self
            .data_key(aad.tenant, sealed.key_version)
            .ok_or(CryptoError::Open)?;
        if sealed.ciphertext.len() < TAG_LEN
            || sealed.ciphertext.len() > crate::sealed::MAX_CIPHERTEXT_LEN
        {
            return Err(CryptoError::Open);
        }
        let aad_bytes = aad.encode(sealed.key_version).ok_or(CryptoError::Open)?;
        let plain = Zeroizing::new(
            cipher(key)
                .decrypt(
                    Nonce::from_slice(&sealed.nonce),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad: &aad_bytes,
                    },
                )
                .map_err(|_| CryptoError::Open)?,
        );
        SecretMap::from_bytes(&plain).map_err(|_| CryptoError::Open)
    }

    /// Hex HMAC-SHA256 of a secret value under a key derived from the master
    /// key: lets an audit log say "same value as before" without the value.
    pub fn hmac_secret(&self, value: &SecretString) -> String {
        let mut mac = hmac(&self.audit_key);
        mac.update(value.expose_secret().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .field("tenants", &self.tenants.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
