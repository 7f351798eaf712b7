//! Key layout and value envelopes.
//!
//! Tenant-scoped keys start with `len(tenant) as u8 || tenant || 0x00`. The
//! length byte makes the prefix of tenant `a` (`01 61 00`) and of tenant `ab`
//! (`02 61 62 00`) differ in their first byte, so a prefix or range scan of one
//! tenant can never reach another's keys; the `0x00` gives a cheap exclusive
//! upper bound (`... 0x01`) for range scans.

use crate::{Result, StoreError};

/// Longest tenant id the key encoding accepts (its length is one byte).
pub const MAX_TENANT_ID_LEN: usize = 255;
/// Longest connection id (it is length-prefixed by one byte in cache keys).
pub const MAX_ID_LEN: usize = 255;
/// Longest normalised display-name key.
pub const MAX_NAME_KEY_LEN: usize = 1024;
/// Longest record value; protobuf records are a few kilobytes.
pub const MAX_VALUE_LEN: usize = 1 << 20;

const ENVELOPE_V1: u8 = 1;

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

/// Stored form of a connection: `1 || len(name_key)(u32 BE) || name_key || value`.
/// The name key is kept so an update or delete can move or drop the index entry.
pub(crate) fn encode_connection(name_key: &str, value: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(5 + name_key.len() + value.len());
    out.push(ENVELOPE_V1);
    let len = u32::try_from(name_key.len())
        .map_err(|_| StoreError::InvalidArgument("display name key too long".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(name_key.as_bytes());
    out.extend_from_slice(value);
    Ok(out)
}

/// Inverse of [`encode_connection`]: `(name_key, value)`.
pub(crate) fn decode_connection(bytes: &[u8]) -> Result<(&str, &[u8])> {
    let corrupt = || StoreError::Corrupt("connection record envelope".into());
    if bytes.len() < 5 || bytes[0] != ENVELOPE_V1 {
        return Err(corrupt());
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[1..5]);
    let len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| corrupt())?;
    let rest = &bytes[5..];
    if rest.len() < len {
        return Err(corrupt());
    }
    let (name, value) = rest.split_at(len);
    let name = std::str::from_utf8(name).map_err(|_| corrupt())?;
    Ok((name, value))
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
        let bytes = encode_connection("my db", b"\x00value").unwrap();
        assert_eq!(
            decode_connection(&bytes).unwrap(),
            ("my db", &b"\x00value"[..])
        );
        assert!(decode_connection(&bytes[..3]).is_err());
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
