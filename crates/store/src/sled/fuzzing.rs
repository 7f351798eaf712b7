//! Entry points for the fuzz targets (`fuzz/`) and the property tests below:
//! the sled layout's decoders, reachable from outside the crate. Not part of
//! the store's API: hidden from the docs, and free to change with the layout.
//!
//! Every function takes bytes as they could lie in a damaged or hostile data
//! directory and must answer with an error, never a panic.

use super::{audit_entry, change_entry, layout};
use crate::{AuditRecord, Change, ChangeKind, ConnectionIndex, Result};

/// A connection entry's envelope, decoded: the display name key, the
/// revision, the index fields (`None` for the legacy layout) and the
/// caller's record bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEntry {
    /// The display name key.
    pub name: String,
    /// The store's revision (0 for a legacy entry).
    pub revision: u64,
    /// The index fields; `None` for a legacy entry.
    pub index: Option<ConnectionIndex>,
    /// The caller's encoded record.
    pub value: Vec<u8>,
}

/// Decodes a stored connection entry (either layout).
pub fn decode_connection_entry(bytes: &[u8]) -> Result<ConnectionEntry> {
    let entry = layout::decode_connection(bytes)?;
    Ok(ConnectionEntry {
        name: entry.name.to_owned(),
        revision: entry.revision,
        index: entry.index,
        value: entry.value.to_vec(),
    })
}

/// Encodes a connection entry in the current layout (the index fields of a
/// legacy entry are written empty, as the upgrade would).
pub fn encode_connection_entry(entry: &ConnectionEntry) -> Result<Vec<u8>> {
    layout::encode_connection(
        &entry.name,
        entry.revision,
        &entry.index.clone().unwrap_or_default(),
        &entry.value,
    )
}

/// Decodes a stored tenant entry: `(connection_count, value)`.
pub fn decode_tenant_entry(bytes: &[u8]) -> Result<(u64, Vec<u8>)> {
    layout::decode_tenant(bytes).map(|(count, value)| (count, value.to_vec()))
}

/// Encodes a tenant entry.
pub fn encode_tenant_entry(count: u64, value: &[u8]) -> Vec<u8> {
    layout::encode_tenant(count, value)
}

/// Decodes an audit entry from its key and value.
pub fn decode_audit_entry(key: &[u8], value: &[u8]) -> Result<AuditRecord> {
    audit_entry::decode(key, value)
}

/// The tenant an audit entry is filed under.
pub fn audit_entry_tenant(value: &[u8]) -> Result<String> {
    audit_entry::tenant_of(value)
}

/// The key and value an audit entry is stored as.
pub fn encode_audit_entry(seq: u64, tenant_id: &str, value: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let bytes = audit_entry::AuditBytes::new(tenant_id, value)?;
    Ok((audit_entry::entry_key(seq), bytes.entry()))
}

/// Decodes a change-log entry from its key and value.
pub fn decode_change_entry(key: &[u8], value: &[u8]) -> Result<Change> {
    change_entry::decode(key, value)
}

/// The tenant bytes a change-log value names, read the way listings filter.
pub fn change_entry_tenant(value: &[u8]) -> Option<Vec<u8>> {
    change_entry::tenant_of(value).map(<[u8]>::to_vec)
}

/// The value a change is stored as.
pub fn encode_change_entry(
    kind: ChangeKind,
    tenant_id: &str,
    id: &str,
    revision: u64,
) -> Result<Vec<u8>> {
    change_entry::encode(kind, tenant_id, id, revision)
}

/// Splits a connection key into `(tenant, id)`.
pub fn split_connection_key(key: &[u8]) -> Result<(String, String)> {
    layout::split_connection_key(key)
}

/// The key of connection `id` of `tenant`.
pub fn connection_key(tenant: &str, id: &str) -> Result<Vec<u8>> {
    layout::connection_key(tenant, id)
}

/// Runs every decoder above on `bytes` (the key, where one is needed, is
/// cut from the front by the first byte), and checks that whatever decodes
/// encodes back to what was read. Panics only on a broken round trip: the
/// fuzz target and the property test share this one body, and a panic is
/// how either reports.
#[allow(clippy::expect_used)]
pub fn check_all(bytes: &[u8]) {
    if let Ok(entry) = decode_connection_entry(bytes) {
        let encoded = encode_connection_entry(&entry).expect("a decoded entry encodes");
        let again = decode_connection_entry(&encoded).expect("an encoded entry decodes");
        let current = ConnectionEntry {
            index: Some(entry.index.clone().unwrap_or_default()),
            ..entry
        };
        assert_eq!(again, current, "connection entry round trip");
    }
    if let Ok((count, value)) = decode_tenant_entry(bytes) {
        assert_eq!(encode_tenant_entry(count, &value), bytes, "tenant entry");
    }
    let (key, value) = match bytes.split_first() {
        Some((&cut, rest)) => rest.split_at(usize::from(cut).min(rest.len())),
        None => (&[][..], &[][..]),
    };
    if let Ok(record) = decode_audit_entry(key, value) {
        assert_eq!(
            audit_entry_tenant(value).ok().as_deref(),
            Some(record.tenant_id.as_str())
        );
        if !record.tenant_id.is_empty() {
            let (stored_key, stored) =
                encode_audit_entry(record.seq, &record.tenant_id, &record.value)
                    .expect("a decoded audit entry encodes");
            assert_eq!(stored, value, "audit entry value");
            assert_eq!(&stored_key[1..], &key[1..], "audit entry key");
        }
    }
    if let Ok(change) = decode_change_entry(key, value) {
        let stored =
            encode_change_entry(change.kind, &change.tenant_id, &change.id, change.revision)
                .expect("a decoded change encodes");
        assert_eq!(stored, value, "change entry");
        assert_eq!(
            change_entry_tenant(value).as_deref(),
            Some(change.tenant_id.as_bytes())
        );
    }
    if let Ok((tenant, id)) = split_connection_key(bytes) {
        if let Ok(key) = connection_key(&tenant, &id) {
            assert_eq!(key, bytes, "connection key");
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            check_all(&bytes);
        }

        #[test]
        fn connection_entries_round_trip(
            name in ".{0,40}",
            revision in any::<u64>(),
            data_source in "[a-z]{0,12}",
            labels in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
            update_time_nanos in any::<i64>(),
            value in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let entry = ConnectionEntry {
                name,
                revision,
                index: Some(ConnectionIndex {
                    data_source,
                    labels,
                    update_time_nanos,
                    ..ConnectionIndex::default()
                }),
                value,
            };
            let bytes = encode_connection_entry(&entry).unwrap();
            prop_assert_eq!(decode_connection_entry(&bytes).unwrap(), entry);
            check_all(&bytes);
            for cut in 0..bytes.len() {
                check_all(&bytes[..cut]);
            }
        }

        #[test]
        fn log_entries_round_trip(
            seq in any::<u64>(),
            tenant in "[a-z0-9_-]{1,64}",
            id in "[a-f0-9-]{1,36}",
            revision in any::<u64>(),
            kind in prop_oneof![
                Just(ChangeKind::Created),
                Just(ChangeKind::Updated),
                Just(ChangeKind::Deleted),
            ],
            event in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let (key, value) = encode_audit_entry(seq, &tenant, &event).unwrap();
            let record = decode_audit_entry(&key, &value).unwrap();
            prop_assert_eq!((record.seq, record.tenant_id, record.value), (seq, tenant.clone(), event));
            let value = encode_change_entry(kind, &tenant, &id, revision).unwrap();
            let change = decode_change_entry(&seq.to_be_bytes(), &value).unwrap();
            prop_assert_eq!(
                change,
                Change { seq, kind, tenant_id: tenant.clone(), id: id.clone(), revision }
            );
            let key = connection_key(&tenant, &id).unwrap();
            prop_assert_eq!(split_connection_key(&key).unwrap(), (tenant, id));
        }
    }
}
