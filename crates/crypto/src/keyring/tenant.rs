//! Per-tenant data keys: wrapped with the tenant's id bound in, removable
//! one tenant at a time (crypto-shredding), and versions that retire.

use std::collections::BTreeMap;
use std::fmt;

use rand::TryRngCore as _;
use zeroize::Zeroizing;

use super::{DataKey, Keyring, WrappedKey, unwrap_with, wrap_with};
use crate::master::KEY_LEN;
use crate::{CryptoError, MasterKey, Result};

/// Associated-data prefix of a wrapped tenant key (then version, tenant).
const TENANT_DEK_AAD: &[u8] = b"connvault-tenant-dek\0";
/// Format byte of [`TenantKey::encode_list`].
const TENANT_LIST_V1: u8 = 1;
/// Bound on a tenant id inside a wrapped list (the server allows 64).
const MAX_TENANT_LEN: usize = 255;

/// A tenant's data key of one version, wrapped under the master key with
/// the tenant's id and the version in the associated data: relabelled with
/// another tenant or version it fails to unwrap.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantKey {
    /// The tenant.
    pub tenant: String,
    /// The wrapped key (its `version` is the data-key version).
    pub key: WrappedKey,
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKey")
            .field("tenant", &self.tenant)
            .field("version", &self.key.version)
            .finish_non_exhaustive()
    }
}

fn tenant_aad(tenant: &str, version: u32) -> Vec<u8> {
    let mut aad = TENANT_DEK_AAD.to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(tenant.as_bytes());
    aad
}

fn random_key() -> Result<DataKey> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::rngs::OsRng
        .try_fill_bytes(key.as_mut())
        .map_err(|_| CryptoError::Rng)?;
    Ok(key)
}

impl TenantKey {
    /// Encodes a list: `format(1) || count(u32 BE) || each (len(tenant)(u8)
    /// || tenant || WrappedKey::to_bytes())`.
    pub fn encode_list(keys: &[TenantKey]) -> Vec<u8> {
        let mut out = vec![TENANT_LIST_V1];
        let count = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for key in keys {
            // Tenant ids are at most 64 bytes; a longer one (never made by
            // the server) saturates and then fails to decode.
            let len = u8::try_from(key.tenant.len()).unwrap_or(u8::MAX);
            out.push(len);
            out.extend_from_slice(key.tenant.as_bytes());
            key.key.write(&mut out);
        }
        out
    }

    /// Decodes [`TenantKey::encode_list`] output (empty input: no keys).
    pub fn decode_list(bytes: &[u8]) -> Result<Vec<TenantKey>> {
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        if bytes.len() < 5 || bytes[0] != TENANT_LIST_V1 {
            return Err(CryptoError::MalformedWrappedKey);
        }
        let count = u32::from_be_bytes(super::to_array(&bytes[1..5]));
        let mut rest = &bytes[5..];
        let mut keys = Vec::new();
        for _ in 0..count {
            let (&len, tail) = rest.split_first().ok_or(CryptoError::MalformedWrappedKey)?;
            let len = usize::from(len);
            if len > MAX_TENANT_LEN || tail.len() < len {
                return Err(CryptoError::MalformedWrappedKey);
            }
            let (tenant, tail) = tail.split_at(len);
            let tenant = std::str::from_utf8(tenant)
                .map_err(|_| CryptoError::MalformedWrappedKey)?
                .to_owned();
            rest = tail;
            let key = WrappedKey::read(&mut rest)?;
            keys.push(TenantKey { tenant, key });
        }
        if !rest.is_empty() {
            return Err(CryptoError::MalformedWrappedKey);
        }
        Ok(keys)
    }
}

impl Keyring {
    /// Adds persisted tenant keys (from [`TenantKey::decode_list`]). A key
    /// that fails to unwrap means a wrong master key; a duplicate or a
    /// version 0 is [`CryptoError::InvalidKeyring`].
    pub fn with_tenant_keys(mut self, keys: Vec<TenantKey>) -> Result<Keyring> {
        for TenantKey { tenant, key } in keys {
            if key.version == 0 {
                return Err(CryptoError::InvalidKeyring("data key version 0".to_owned()));
            }
            let unwrapped = unwrap_with(&self.master, &key, &tenant_aad(&tenant, key.version))?;
            let versions = self.tenants.entry(tenant).or_default();
            if versions.insert(key.version, (unwrapped, key)).is_some() {
                return Err(CryptoError::InvalidKeyring(
                    "duplicate tenant data key".to_owned(),
                ));
            }
        }
        Ok(self)
    }

    /// Gives `tenant` a key of its own at the current version, unless it has
    /// one. Returns whether it added one (then persist
    /// [`Keyring::tenant_keys`] before sealing anything with it).
    pub fn add_tenant_key(&mut self, tenant: &str) -> Result<bool> {
        let version = self.current_version().ok_or(CryptoError::NoDataKey)?;
        self.add_tenant_key_at(tenant, version)
    }

    fn add_tenant_key_at(&mut self, tenant: &str, version: u32) -> Result<bool> {
        if self
            .tenants
            .get(tenant)
            .is_some_and(|keys| keys.contains_key(&version))
        {
            return Ok(false);
        }
        let key = random_key()?;
        let wrapped = wrap_with(&self.master, version, &tenant_aad(tenant, version), &key)?;
        self.tenants
            .entry(tenant.to_owned())
            .or_default()
            .insert(version, (key, wrapped));
        Ok(true)
    }

    /// Whether `tenant` has keys of its own.
    pub fn has_tenant_keys(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }

    /// The tenants that have keys of their own.
    pub fn keyed_tenants(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }

    /// Drops every key of `tenant` (zeroized): whatever the tenant sealed
    /// can no longer be opened by anyone. Returns whether it had any.
    pub fn remove_tenant(&mut self, tenant: &str) -> bool {
        self.tenants.remove(tenant).is_some()
    }

    /// Makes a new version current: a global data key, and a key of that
    /// version for every tenant in `tenants` (and every tenant that has keys
    /// already). Returns the new version; persist both lists before sealing.
    pub fn rotate<'a>(&mut self, tenants: impl IntoIterator<Item = &'a str>) -> Result<u32> {
        let wrapped = self.add_data_key()?;
        let version = wrapped.version;
        let mut all: Vec<String> = self.tenants.keys().cloned().collect();
        all.extend(tenants.into_iter().map(str::to_owned));
        for tenant in all {
            self.add_tenant_key_at(&tenant, version)?;
        }
        Ok(version)
    }

    /// Every version the keyring holds (global or a tenant's), ascending.
    pub fn versions(&self) -> Vec<u32> {
        let mut versions: Vec<u32> = self.keys.keys().copied().collect();
        versions.extend(self.tenants.values().flat_map(|keys| keys.keys().copied()));
        versions.sort_unstable();
        versions.dedup();
        versions
    }

    /// How many tenants hold a key of `version`.
    pub fn tenant_keys_of(&self, version: u32) -> usize {
        self.tenants
            .values()
            .filter(|keys| keys.contains_key(&version))
            .count()
    }

    /// Destroys every key (global and tenants') of `version`, which must
    /// not be current. Call it only once no record is sealed under it.
    pub fn remove_version(&mut self, version: u32) -> Result<()> {
        if Some(version) == self.current_version() {
            return Err(CryptoError::InvalidKeyring(
                "the current data key version cannot be removed".to_owned(),
            ));
        }
        self.keys.remove(&version);
        self.wrapped.retain(|key| key.version != version);
        for keys in self.tenants.values_mut() {
            keys.remove(&version);
        }
        self.tenants.retain(|_, keys| !keys.is_empty());
        Ok(())
    }

    /// Every tenant key, wrapped, in tenant then version order: what the key
    /// file persists.
    pub fn tenant_keys(&self) -> Vec<TenantKey> {
        self.tenants
            .iter()
            .flat_map(|(tenant, keys)| {
                keys.values().map(|(_, key)| TenantKey {
                    tenant: tenant.clone(),
                    key: key.clone(),
                })
            })
            .collect()
    }

    /// The same keyring under a new master key: every data key (global and
    /// tenants') wrapped anew, the check value, audit and token keys derived
    /// from the new master key. No record needs re-sealing.
    pub fn rewrapped(&self, new_master: MasterKey) -> Result<Keyring> {
        let wrapped = self.rewrap(&new_master)?;
        let mut tenants = Vec::new();
        for (tenant, keys) in &self.tenants {
            for (version, (key, _)) in keys {
                let key = wrap_with(&new_master, *version, &tenant_aad(tenant, *version), key)?;
                tenants.push(TenantKey {
                    tenant: tenant.clone(),
                    key,
                });
            }
        }
        Keyring::new(new_master, wrapped)?.with_tenant_keys(tenants)
    }
}

/// Keeps the map type in one place for the keyring's field.
pub(super) type TenantKeys = BTreeMap<String, BTreeMap<u32, (DataKey, WrappedKey)>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Aad, ExposeSecret as _, SecretMap, SecretString};

    fn aad(tenant: &str) -> Aad<'_> {
        Aad {
            tenant,
            record_id: "0190c0de-0000-7000-8000-000000000001",
            purpose: "connection-secrets",
        }
    }

    fn secrets() -> SecretMap {
        [("password", SecretString::from("CANARY"))]
            .into_iter()
            .collect()
    }

    fn password(map: &SecretMap) -> String {
        map.get("password")
            .map(|s| s.expose_secret().to_owned())
            .unwrap_or_default()
    }

    fn keyring(master: &MasterKey) -> Keyring {
        let mut keyring = Keyring::new(master.clone(), Vec::new()).unwrap();
        keyring.add_data_key().unwrap();
        keyring
    }

    fn reload(master: &MasterKey, keyring: &Keyring) -> Keyring {
        let global = WrappedKey::decode_list(&WrappedKey::encode_list(keyring.wrapped_keys()));
        let tenants = TenantKey::decode_list(&TenantKey::encode_list(&keyring.tenant_keys()));
        Keyring::new(master.clone(), global.unwrap())
            .unwrap()
            .with_tenant_keys(tenants.unwrap())
            .unwrap()
    }

    #[test]
    fn a_removed_tenant_key_shreds_its_ciphertext_for_good() {
        let master = MasterKey::generate().unwrap();
        let mut keyring = keyring(&master);
        assert!(keyring.add_tenant_key("acme").unwrap());
        assert!(!keyring.add_tenant_key("acme").unwrap());
        let sealed = keyring.seal(&aad("acme"), &secrets()).unwrap();
        // Not sealed under the global key: a keyring without the tenant's
        // key (but the same master and global key) cannot open it.
        let reloaded = reload(&master, &keyring);
        assert_eq!(
            password(&reloaded.open(&aad("acme"), &sealed).unwrap()),
            "CANARY"
        );
        let global_only = Keyring::new(master.clone(), keyring.wrapped_keys().to_vec()).unwrap();
        assert!(global_only.open(&aad("acme"), &sealed).is_err());
        assert!(keyring.remove_tenant("acme"));
        assert!(keyring.open(&aad("acme"), &sealed).is_err());
        assert!(
            reload(&master, &keyring)
                .open(&aad("acme"), &sealed)
                .is_err()
        );
        // A tenant of the same id made again gets a new key.
        keyring.add_tenant_key("acme").unwrap();
        assert!(keyring.open(&aad("acme"), &sealed).is_err());
    }

    #[test]
    fn a_tenant_key_relabelled_fails_to_unwrap() {
        let master = MasterKey::generate().unwrap();
        let mut keyring = keyring(&master);
        keyring.add_tenant_key("acme").unwrap();
        let mut keys = keyring.tenant_keys();
        keys[0].tenant = "other".into();
        let global = keyring.wrapped_keys().to_vec();
        assert!(matches!(
            Keyring::new(master.clone(), global.clone())
                .unwrap()
                .with_tenant_keys(keys),
            Err(CryptoError::WrongMasterKey)
        ));
        let wrong = MasterKey::generate().unwrap();
        let keys = keyring.tenant_keys();
        let only_tenants = Keyring::new(wrong, Vec::new()).unwrap();
        assert!(only_tenants.with_tenant_keys(keys).is_err());
    }

    #[test]
    fn rotation_keeps_old_versions_open_until_removed() {
        let master = MasterKey::generate().unwrap();
        let mut keyring = keyring(&master);
        keyring.add_tenant_key("acme").unwrap();
        let old_acme = keyring.seal(&aad("acme"), &secrets()).unwrap();
        // "legacy" has no key of its own: sealed under the global key.
        let old_legacy = keyring.seal(&aad("legacy"), &secrets()).unwrap();
        assert_eq!(keyring.rotate(["legacy"]).unwrap(), 2);
        assert_eq!(keyring.versions(), vec![1, 2]);
        assert_eq!(keyring.tenant_keys_of(2), 2);
        let new_legacy = keyring.seal(&aad("legacy"), &secrets()).unwrap();
        assert_eq!(new_legacy.key_version, 2);
        let keyring = reload(&master, &keyring);
        for (tenant, sealed) in [
            ("acme", &old_acme),
            ("legacy", &old_legacy),
            ("legacy", &new_legacy),
        ] {
            assert_eq!(
                password(&keyring.open(&aad(tenant), sealed).unwrap()),
                "CANARY"
            );
        }
        let mut keyring = keyring;
        assert!(keyring.remove_version(2).is_err());
        keyring.remove_version(1).unwrap();
        assert_eq!(keyring.versions(), vec![2]);
        assert!(keyring.open(&aad("acme"), &old_acme).is_err());
        assert!(keyring.open(&aad("legacy"), &old_legacy).is_err());
        assert_eq!(
            password(&keyring.open(&aad("legacy"), &new_legacy).unwrap()),
            "CANARY"
        );
    }

    #[test]
    fn rewrapped_opens_everything_and_the_old_master_does_not() {
        let master = MasterKey::generate().unwrap();
        let mut keyring = keyring(&master);
        keyring.add_tenant_key("acme").unwrap();
        let sealed = keyring.seal(&aad("acme"), &secrets()).unwrap();
        let new_master = MasterKey::generate().unwrap();
        let rewrapped = keyring.rewrapped(new_master.clone()).unwrap();
        let again = reload(&new_master, &rewrapped);
        assert_eq!(
            password(&again.open(&aad("acme"), &sealed).unwrap()),
            "CANARY"
        );
        assert!(
            Keyring::new(master, rewrapped.wrapped_keys().to_vec()).is_err(),
            "the old master key must not unwrap the new keyring"
        );
    }

    #[test]
    fn tenant_lists_reject_garbage() {
        assert!(TenantKey::decode_list(&[]).unwrap().is_empty());
        let master = MasterKey::generate().unwrap();
        let mut keyring = keyring(&master);
        keyring.add_tenant_key("acme").unwrap();
        let bytes = TenantKey::encode_list(&keyring.tenant_keys());
        for cut in 1..bytes.len() {
            assert!(TenantKey::decode_list(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(TenantKey::decode_list(&longer).is_err());
    }
}
