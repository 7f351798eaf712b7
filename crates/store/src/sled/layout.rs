//! Key layout and value envelopes.
//!
//! Tenant-scoped keys start with `len(tenant) as u8 || tenant || 0x00`. The
//! length byte makes the prefix of tenant `a` (`01 61 00`) and of tenant `ab`
//! (`02 61 62 00`) differ in their first byte, so a prefix or range scan of one
//! tenant can never reach another's keys; the `0x00` gives a cheap exclusive
//! upper bound (`... 0x01`) for range scans.

use std::collections::BTreeMap;

use prost::Message as _;

use crate::{
    ConnectionIndex, MAX_ID_LEN, MAX_NAME_KEY_LEN, MAX_TENANT_ID_LEN, MAX_VALUE_LEN, Result,
    StoreError,
};

// The length limits fit this layout: a tenant id and a connection id are
// length-prefixed by one byte.
const _: () = assert!(MAX_TENANT_ID_LEN <= 255 && MAX_ID_LEN <= 255);

/// Tenants, and connections written before the store kept revisions and
/// index fields (read, and upgraded by [`super::SledStore::upgrade_legacy`]).
const ENVELOPE_V1: u8 = 1;
/// Connections with their revision and index fields.
const ENVELOPE_V2: u8 = 2;

/// The index fields of a connection entry, protobuf-encoded so the layout
/// can gain fields compatibly (new tags).
#[derive(Clone, PartialEq, prost::Message)]
struct IndexFields {
    #[prost(string, tag = "1")]
    data_source: String,
    #[prost(string, tag = "2")]
    product: String,
    #[prost(btree_map = "string, string", tag = "3")]
    labels: BTreeMap<String, String>,
    #[prost(int64, tag = "4")]
    update_time_nanos: i64,
}

pub(crate) fn check_len(what: &str, bytes: &[u8], max: usize) -> Result<()> {
    if bytes.is_empty() || bytes.len() > max {
        return Err(StoreError::InvalidArgument(format!(
            "{what} must be 1 to {max} bytes long, got {}",
            bytes.len()
        )));
    }
    Ok(())
}

pub(crate) fn check_value(bytes: &[u8]) -> Result<()> {
    if bytes.len() > MAX_VALUE_LEN {
        return Err(StoreError::InvalidArgument(format!(
            "value must be at most {MAX_VALUE_LEN} bytes, got {}",
            bytes.len()
        )));
    }
    Ok(())
}

/// `len(tenant) as u8 || tenant || 0x00`.
pub(crate) fn tenant_prefix(tenant: &str) -> Result<Vec<u8>> {
    check_len("tenant id", tenant.as_bytes(), MAX_TENANT_ID_LEN)?;
    let mut key = Vec::with_capacity(tenant.len() + 2 + 40);
    key.push(
        u8::try_from(tenant.len())
            .map_err(|_| StoreError::InvalidArgument("tenant id too long".into()))?,
    );
    key.extend_from_slice(tenant.as_bytes());
    key.push(0x00);
    Ok(key)
}

/// Exclusive upper bound of every key starting with `prefix` (a tenant prefix,
/// which ends in `0x00`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = 0x01;
    }
    end
}

/// Tenant prefix followed by `tail`.
pub(crate) fn scoped(tenant: &str, tail: &[u8]) -> Result<Vec<u8>> {
    let mut key = tenant_prefix(tenant)?;
    key.extend_from_slice(tail);
    Ok(key)
}

/// Key of a connection: tenant prefix || id.
pub(crate) fn connection_key(tenant: &str, id: &str) -> Result<Vec<u8>> {
    check_len("connection id", id.as_bytes(), MAX_ID_LEN)?;
    scoped(tenant, id.as_bytes())
}

/// Inverse of [`connection_key`]: `(tenant, id)`.
pub(crate) fn split_connection_key(key: &[u8]) -> Result<(String, String)> {
    let corrupt = || StoreError::Corrupt("connection key".into());
    let (&len, rest) = key.split_first().ok_or_else(corrupt)?;
    let (tenant, rest) = rest
        .split_at_checked(usize::from(len))
        .ok_or_else(corrupt)?;
    let id = rest.strip_prefix(&[0x00]).ok_or_else(corrupt)?;
    Ok((utf8(tenant, "tenant id")?, utf8(id, "connection id")?))
}

/// Key of a display name in the unique-name index: tenant prefix || name key.
pub(crate) fn name_key(tenant: &str, name: &str) -> Result<Vec<u8>> {
    check_len("display name key", name.as_bytes(), MAX_NAME_KEY_LEN)?;
    scoped(tenant, name.as_bytes())
}

/// Prefix of a connection's cache entries: tenant prefix || len(id) || id.
pub(crate) fn cache_prefix(tenant: &str, id: &str) -> Result<Vec<u8>> {
    check_len("connection id", id.as_bytes(), MAX_ID_LEN)?;
    let mut key = tenant_prefix(tenant)?;
    key.push(
        u8::try_from(id.len())
            .map_err(|_| StoreError::InvalidArgument("connection id too long".into()))?,
    );
    key.extend_from_slice(id.as_bytes());
    Ok(key)
}

/// Stored form of a tenant: `1 || connection_count(u64 BE) || value`.
pub(crate) fn encode_tenant(count: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + value.len());
    out.push(ENVELOPE_V1);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Inverse of [`encode_tenant`]: `(connection_count, value)`.
pub(crate) fn decode_tenant(bytes: &[u8]) -> Result<(u64, &[u8])> {
    if bytes.len() < 9 || bytes[0] != ENVELOPE_V1 {
        return Err(StoreError::Corrupt("tenant record envelope".into()));
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&bytes[1..9]);
    Ok((u64::from_be_bytes(count), &bytes[9..]))
}

/// Decodes UTF-8 read from the store.
pub(crate) fn utf8(bytes: &[u8], what: &str) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("{what} is not UTF-8")))
}

/// A connection entry as stored.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// The display name key (kept so an update or delete can move or drop
    /// the name index entry).
    pub(crate) name: &'a str,
    /// The store's revision (0 for a legacy entry).
    pub(crate) revision: u64,
    /// The index fields (`None` for a legacy entry, which has none).
    pub(crate) index: Option<ConnectionIndex>,
    /// The caller's encoded record.
    pub(crate) value: &'a [u8],
}

impl Entry<'_> {
    /// Whether the entry predates revisions and index fields.
    pub(crate) fn is_legacy(&self) -> bool {
        self.index.is_none()
    }

    /// The record this entry holds (a legacy entry with empty index fields).
    pub(crate) fn into_record(self, tenant_id: &str, id: String) -> crate::ConnectionRecord {
        crate::ConnectionRecord {
            tenant_id: tenant_id.to_owned(),
            id,
            display_name_key: self.name.to_owned(),
            index: self.index.unwrap_or_default(),
            revision: self.revision,
            value: self.value.to_vec(),
        }
    }
}

fn push_len(out: &mut Vec<u8>, len: usize, what: &str) -> Result<()> {
    let len =
        u32::try_from(len).map_err(|_| StoreError::InvalidArgument(format!("{what} too long")))?;
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Stored form of a connection: `2 || len(name)(u32 BE) || name ||
/// revision(u64 BE) || len(index)(u32 BE) || index || value`.
pub(crate) fn encode_connection(
    name_key: &str,
    revision: u64,
    index: &ConnectionIndex,
    value: &[u8],
) -> Result<Vec<u8>> {
    let fields = IndexFields {
        data_source: index.data_source.clone(),
        product: index.product.clone(),
        labels: index.labels.clone(),
        update_time_nanos: index.update_time_nanos,
    }
    .encode_to_vec();
    let mut out = Vec::with_capacity(17 + name_key.len() + fields.len() + value.len());
    out.push(ENVELOPE_V2);
    push_len(&mut out, name_key.len(), "display name key")?;
    out.extend_from_slice(name_key.as_bytes());
    out.extend_from_slice(&revision.to_be_bytes());
    push_len(&mut out, fields.len(), "index fields")?;
    out.extend_from_slice(&fields);
    out.extend_from_slice(value);
    Ok(out)
}

/// Splits `len` bytes off the front of `bytes`.
fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
    if bytes.len() < len {
        return None;
    }
    let (head, rest) = bytes.split_at(len);
    *bytes = rest;
    Some(head)
}

fn take_u32(bytes: &mut &[u8]) -> Option<usize> {
    let raw = <[u8; 4]>::try_from(take(bytes, 4)?).ok()?;
    usize::try_from(u32::from_be_bytes(raw)).ok()
}

/// Inverse of [`encode_connection`]; also reads the legacy layout
/// `1 || len(name)(u32 BE) || name || value`.
pub(crate) fn decode_connection(bytes: &[u8]) -> Result<Entry<'_>> {
    let corrupt = || StoreError::Corrupt("connection record envelope".into());
    let (&version, mut rest) = bytes.split_first().ok_or_else(corrupt)?;
    if version != ENVELOPE_V1 && version != ENVELOPE_V2 {
        return Err(corrupt());
    }
    let name_len = take_u32(&mut rest).ok_or_else(corrupt)?;
    let name = std::str::from_utf8(take(&mut rest, name_len).ok_or_else(corrupt)?)
        .map_err(|_| corrupt())?;
    if version == ENVELOPE_V1 {
        return Ok(Entry {
            name,
            revision: 0,
            index: None,
            value: rest,
        });
    }
    let revision = <[u8; 8]>::try_from(take(&mut rest, 8).ok_or_else(corrupt)?)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt())?;
    let fields_len = take_u32(&mut rest).ok_or_else(corrupt)?;
    let fields = IndexFields::decode(take(&mut rest, fields_len).ok_or_else(corrupt)?)
        .map_err(|_| corrupt())?;
    Ok(Entry {
        name,
        revision,
        index: Some(ConnectionIndex {
            data_source: fields.data_source,
            product: fields.product,
            labels: fields.labels,
            update_time_nanos: fields.update_time_nanos,
        }),
        value: rest,
    })
}

/// The legacy layout, for tests that build a store as older versions wrote it.
#[cfg(test)]
pub(crate) fn encode_legacy_connection(name_key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![ENVELOPE_V1];
    out.extend_from_slice(&(name_key.len() as u32).to_be_bytes());
    out.extend_from_slice(name_key.as_bytes());
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_prefixes_do_not_nest() {
        let a = tenant_prefix("a").unwrap();
        let ab = tenant_prefix("ab").unwrap();
        assert!(!ab.starts_with(&a) && !a.starts_with(&ab));
        // No key of tenant `ab` lies within tenant `a`'s scan range.
        let key_ab = connection_key("ab", "x").unwrap();
        assert!(!(key_ab.as_slice() >= a.as_slice() && key_ab < prefix_end(&a)));
        // A tenant id containing the separator cannot forge another prefix.
        let tricky = tenant_prefix("a\u{0}b").unwrap();
        assert!(!tricky.starts_with(&a));
    }

    #[test]
    fn envelopes_round_trip() {
        let index = ConnectionIndex {
            data_source: "postgresql".into(),
            product: "reporting".into(),
            labels: [("env".to_owned(), "prod".to_owned())].into(),
            update_time_nanos: -5,
        };
        let bytes = encode_connection("my db", 7, &index, b"\x00value").unwrap();
        let entry = decode_connection(&bytes).unwrap();
        assert_eq!(
            (entry.name, entry.revision, entry.index, entry.value),
            ("my db", 7, Some(index), &b"\x00value"[..])
        );
        for cut in 0..bytes.len() - 6 {
            assert!(decode_connection(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let legacy = encode_legacy_connection("old", b"v1 value");
        let entry = decode_connection(&legacy).unwrap();
        assert_eq!(
            (entry.name, entry.revision, entry.value),
            ("old", 0, &b"v1 value"[..])
        );
        assert!(entry.is_legacy());
        let bytes = encode_tenant(42, b"v");
        assert_eq!(decode_tenant(&bytes).unwrap(), (42, &b"v"[..]));
        assert!(decode_tenant(b"\x02").is_err());
    }

    #[test]
    fn lengths_are_checked() {
        assert!(tenant_prefix("").is_err());
        assert!(tenant_prefix(&"t".repeat(256)).is_err());
        assert!(tenant_prefix(&"t".repeat(255)).is_ok());
        assert!(connection_key("t", "").is_err());
    }
}
