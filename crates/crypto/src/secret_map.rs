//! A map of secret field names to secret values.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::{CryptoError, Result};

/// Format version of [`SecretMap::to_bytes`].
const FORMAT_V1: u8 = 1;

/// Secret field name -> secret value (e.g. `password`, `tls_client_key`).
///
/// Values are [`SecretString`]s: zeroized on drop and never printed. `Debug`
/// shows which fields are set, with every value as `[redacted]`.
#[derive(Clone, Default)]
pub struct SecretMap {
    entries: BTreeMap<String, SecretString>,
}

impl SecretMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a field, returning its previous value.
    pub fn insert(&mut self, name: impl Into<String>, value: SecretString) -> Option<SecretString> {
        self.entries.insert(name.into(), value)
    }

    /// The value of a field.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.entries.get(name)
    }

    /// Removes a field, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<SecretString> {
        self.entries.remove(name)
    }

    /// Whether a field is set.
    pub fn contains_key(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Field names in sorted order (what a response may show).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Fields and values in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Deterministic encoding: a format byte, a `u32` count, then per entry in
    /// name order a `u32`-length-prefixed name and value (big-endian). The
    /// buffer is zeroized on drop.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let size = 5 + self
            .entries
            .iter()
            .map(|(k, v)| 8 + k.len() + v.expose_secret().len())
            .sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(size));
        out.push(FORMAT_V1);
        let count = u32::try_from(self.entries.len()).map_err(|_| CryptoError::Seal)?;
        out.extend_from_slice(&count.to_be_bytes());
        for (name, value) in &self.entries {
            put_lp(&mut out, name.as_bytes())?;
            put_lp(&mut out, value.expose_secret().as_bytes())?;
        }
        Ok(out)
    }

    /// Decodes [`SecretMap::to_bytes`] output. Refuses anything not in
    /// canonical form (unknown format, trailing bytes, unsorted or duplicate
    /// names, invalid UTF-8). The error carries no detail.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut reader = Reader(bytes);
        if reader.take(1)? != [FORMAT_V1] {
            return Err(CryptoError::Open);
        }
        let count = reader.u32()?;
        let mut entries = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let name = std::str::from_utf8(reader.lp()?).map_err(|_| CryptoError::Open)?;
            if last.as_deref().is_some_and(|prev| prev >= name) {
                return Err(CryptoError::Open);
            }
            let value = std::str::from_utf8(reader.lp()?).map_err(|_| CryptoError::Open)?;
            entries.insert(name.to_owned(), SecretString::from(value));
            last = Some(name.to_owned());
        }
        if !reader.0.is_empty() {
            return Err(CryptoError::Open);
        }
        Ok(Self { entries })
    }
}

fn put_lp(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| CryptoError::Seal)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// A bounds-checked cursor; every failure is the opaque open error.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(CryptoError::Open);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32> {
        let mut buf = [0u8; 4];
        buf.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(buf))
    }

    fn lp(&mut self) -> Result<&'a [u8]> {
        let len = usize::try_from(self.u32()?).map_err(|_| CryptoError::Open)?;
        self.take(len)
    }
}

impl fmt::Debug for SecretMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.keys().map(|k| (k, Redacted)))
            .finish()
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<K: Into<String>> FromIterator<(K, SecretString)> for SecretMap {
    fn from_iter<I: IntoIterator<Item = (K, SecretString)>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SecretMap {
        [
            ("password", SecretString::from("CANARY-pw-1234")),
            ("api_key", SecretString::from("CANARY-key-5678")),
            ("empty", SecretString::from("")),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn debug_shows_names_not_values() {
        let map = sample();
        let shown = format!("{map:?} {map:#?}");
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(
            shown.contains("password") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn encoding_is_deterministic_and_round_trips() {
        let a = sample();
        let mut reversed: Vec<_> = a.iter().map(|(k, v)| (k, v.clone())).collect();
        reversed.reverse();
        let b: SecretMap = reversed.into_iter().collect();
        assert_eq!(*a.to_bytes().unwrap(), *b.to_bytes().unwrap());
        let back = SecretMap::from_bytes(&a.to_bytes().unwrap()).unwrap();
        let pairs = |m: &SecretMap| {
            m.iter()
                .map(|(k, v)| (k.to_owned(), v.expose_secret().to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&a), pairs(&back));
        assert_eq!(
            SecretMap::from_bytes(&SecretMap::new().to_bytes().unwrap())
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn non_canonical_input_is_refused() {
        let bytes = sample().to_bytes().unwrap();
        let mut trailing = bytes.to_vec();
        trailing.push(0);
        assert!(SecretMap::from_bytes(&trailing).is_err());
        for cut in 0..bytes.len() {
            assert!(
                SecretMap::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // A huge declared length must not allocate or panic.
        let mut huge = vec![FORMAT_V1];
        huge.extend_from_slice(&1u32.to_be_bytes());
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(SecretMap::from_bytes(&huge).is_err());
        // Unsorted / duplicate names.
        let mut dup = vec![FORMAT_V1];
        dup.extend_from_slice(&2u32.to_be_bytes());
        for _ in 0..2 {
            put_lp(&mut dup, b"a").unwrap();
            put_lp(&mut dup, b"x").unwrap();
        }
        assert!(SecretMap::from_bytes(&dup).is_err());
    }
}
