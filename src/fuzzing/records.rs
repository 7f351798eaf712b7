//! What the data directory holds, read back from any bytes.

use std::time::Duration;

use connvault_crypto::{Aad, Keyring, MasterKey, Sealed, SecretMap, WrappedKey};
use connvault_store::sled::LegacyConnection;
use prost::Message;
use prost_types::value::Kind;

use crate::pb::v1;
use crate::record_format;

/// Whether a config holds a NaN, which equals nothing, itself included.
fn has_nan(connection: &v1::Connection) -> bool {
    fn value_has_nan(value: &prost_types::Value) -> bool {
        match &value.kind {
            Some(Kind::NumberValue(number)) => number.is_nan(),
            Some(Kind::StructValue(inner)) => inner.fields.values().any(value_has_nan),
            Some(Kind::ListValue(list)) => list.values.iter().any(value_has_nan),
            _ => false,
        }
    }
    connection
        .config
        .as_ref()
        .is_some_and(|config| config.fields.values().any(value_has_nan))
}

/// Stored connections and tenants (either format): what decodes, once
/// written in the current format, reads back the same, without a secret or
/// a name in it.
fn check_records(bytes: &[u8]) {
    if let Ok(stored) = record_format::decode_connection(bytes) {
        let encoded = record_format::encode_connection(&stored.connection, &stored.sealed_secrets);
        let once = record_format::decode_connection(&encoded).expect("a written record reads");
        assert!(
            once.connection.secrets.is_empty(),
            "a stored record carries no secret"
        );
        assert!(
            once.connection
                .tls
                .as_ref()
                .is_none_or(|tls| tls.client_key_pem.is_empty()),
            "a stored record carries no TLS key"
        );
        assert_eq!(once.sealed_secrets, stored.sealed_secrets);
        let again = record_format::encode_connection(&once.connection, &once.sealed_secrets);
        let twice = record_format::decode_connection(&again).expect("a rewritten record reads");
        assert!(
            twice.connection == once.connection || has_nan(&once.connection),
            "format 2 keeps every stored field"
        );
        let upgraded = record_format::upgrade_legacy_connection(LegacyConnection {
            tenant_id: "t",
            id: "i",
            display_name_key: "n",
            value: bytes,
        })
        .expect("a readable record upgrades");
        let view = record_format::decode_connection(&upgraded.1).expect("an upgrade reads");
        assert!(view.connection == once.connection || has_nan(&once.connection));
    } else {
        assert!(
            record_format::upgrade_legacy_connection(LegacyConnection {
                tenant_id: "t",
                id: "i",
                display_name_key: "n",
                value: bytes,
            })
            .is_err(),
            "an unreadable record is not upgraded"
        );
    }
    if let Ok(tenant) = record_format::decode_tenant(bytes) {
        let once = record_format::decode_tenant(&record_format::encode_tenant(&tenant))
            .expect("a written tenant reads");
        let twice = record_format::decode_tenant(&record_format::encode_tenant(&once))
            .expect("a rewritten tenant reads");
        assert_eq!(once, twice, "format 2 keeps every stored tenant field");
    }
}

/// Sealed secret maps and wrapped data keys: canonical encodings, and
/// nothing opens without the key.
fn check_sealed(bytes: &[u8], keyring: &Keyring) {
    if let Ok(sealed) = Sealed::from_bytes(bytes) {
        assert_eq!(sealed.to_bytes(), bytes, "sealed bytes are canonical");
        let aad = Aad {
            tenant: "acme",
            record_id: "0190c0de-0000-7000-8000-000000000001",
            purpose: "connection",
        };
        assert!(
            keyring.open(&aad, &sealed).is_err(),
            "forged secrets opened"
        );
    }
    if let Ok(map) = SecretMap::from_bytes(bytes) {
        let encoded = map.to_bytes().expect("a decoded map encodes");
        assert_eq!(encoded.as_slice(), bytes, "secret maps are canonical");
    }
    if let Ok(keys) = WrappedKey::decode_list(bytes) {
        assert_eq!(
            WrappedKey::encode_list(&keys),
            bytes,
            "key lists are canonical"
        );
        let any = !keys.is_empty();
        let opened = Keyring::new(MasterKey::from_bytes([3; 32]), keys);
        assert!(!any || opened.is_err(), "forged data keys unwrapped");
    }
}

/// Every decoder of stored bytes: the server's records, the sled layout,
/// sealed secrets and wrapped keys, metadata cache entries and audit events.
pub fn check_stored_record(bytes: &[u8], keyring: &Keyring) {
    check_records(bytes);
    connvault_store::sled::fuzzing::check_all(bytes);
    check_sealed(bytes, keyring);
    if let Some(entry) = crate::app::fuzzing::decode_cache_entry(bytes, Duration::from_secs(3600)) {
        assert!(entry.from_cache);
    }
    let _ = v1::AuditEvent::decode(bytes);
}
