//! The one boundary between API messages and stored records.
//!
//! Stored records have their own messages (`connvault.storage.v1`, format
//! 2), so a change to the public API is never a change to the data on disk.
//! Records written before format 2 wrapped the public messages (format 1:
//! `StoredConnection`, `StoredTenant`); they are still read, and connection
//! entries are rewritten once at start ([`upgrade_legacy_connection`]).

use connvault_store::sled::LegacyConnection;
use connvault_store::{ConnectionIndex, StoreError};
use prost::Message;

use crate::error::ServiceError;
use crate::pb::storage::{
    ConnectionRecord, EgressRecord, FormSettingsRecord, FormatProbe, StageRecord,
    StoredConnection as LegacyConnectionRecord, StoredTenant as LegacyTenantRecord, TenantRecord,
    TestRecord, TlsRecord, TunnelRecord,
};
use crate::pb::v1;

/// The format this version writes.
pub const FORMAT: u32 = 2;

/// A connection as read from the store: the API view without its name and
/// etag (the caller knows both), and the sealed secrets.
#[derive(Debug, Clone, Default)]
pub struct StoredConnection {
    /// The connection, secrets empty and `secret_fields` set.
    pub connection: v1::Connection,
    /// `Sealed` bytes of the secret map (empty: no secrets).
    pub sealed_secrets: Vec<u8>,
}

fn unreadable(what: &str) -> ServiceError {
    ServiceError::DataLoss(format!("the stored {what} cannot be read"))
}

/// The format of stored bytes (1 for records that predate format 2).
fn format_of(value: &[u8]) -> Option<u32> {
    let format = FormatProbe::decode(value).ok()?.format;
    Some(if format == 0 { 1 } else { format })
}

/// Reads a stored connection of any known format.
pub fn decode_connection(value: &[u8]) -> Result<StoredConnection, ServiceError> {
    match format_of(value) {
        Some(1) => {
            let legacy =
                LegacyConnectionRecord::decode(value).map_err(|_| unreadable("connection"))?;
            Ok(StoredConnection {
                connection: legacy.connection.unwrap_or_default(),
                sealed_secrets: legacy.sealed_secrets,
            })
        }
        Some(FORMAT) => {
            let mut record =
                ConnectionRecord::decode(value).map_err(|_| unreadable("connection"))?;
            let sealed_secrets = std::mem::take(&mut record.sealed_secrets);
            Ok(StoredConnection {
                connection: connection_from_record(record),
                sealed_secrets,
            })
        }
        _ => Err(unreadable("connection")),
    }
}

/// Encodes a connection (secrets already sealed into `sealed_secrets`; the
/// connection's own `secrets`, name and etag are not stored).
pub fn encode_connection(connection: &v1::Connection, sealed_secrets: &[u8]) -> Vec<u8> {
    let tls = connection.tls.as_ref().map(|tls| TlsRecord {
        mode: tls.mode,
        ca_pem: tls.ca_pem.clone(),
        client_cert_pem: tls.client_cert_pem.clone(),
        server_name: tls.server_name.clone(),
        client_key_set: tls.client_key_set,
    });
    let tunnel = connection.tunnel.as_ref().map(|tunnel| TunnelRecord {
        host: tunnel.host.clone(),
        port: tunnel.port,
        user: tunnel.user.clone(),
        host_key_fingerprints: tunnel.host_key_fingerprints.clone(),
        local_port: tunnel.local_port,
        private_key_set: tunnel.private_key_set,
        private_key_passphrase_set: tunnel.private_key_passphrase_set,
        password_set: tunnel.password_set,
    });
    let last_test = connection.last_test.as_ref().map(|test| TestRecord {
        success: test.success,
        stages: test
            .stages
            .iter()
            .map(|stage| StageRecord {
                stage: stage.stage,
                status: stage.status,
                duration_us: stage.duration_us,
                message: stage.message.clone(),
            })
            .collect(),
        error_category: test.error_category,
        message: test.message.clone(),
        server_version: test.server_version.clone(),
        duration_us: test.duration_us,
        test_time: test.test_time,
    });
    ConnectionRecord {
        format: FORMAT,
        display_name: connection.display_name.clone(),
        data_source: connection.data_source.clone(),
        config: connection.config.clone(),
        secret_fields: connection.secret_fields.clone(),
        tls,
        labels: connection.labels.clone(),
        product: connection.product.clone(),
        create_time: connection.create_time,
        update_time: connection.update_time,
        last_test,
        sealed_secrets: sealed_secrets.to_vec(),
        tunnel,
    }
    .encode_to_vec()
}

fn connection_from_record(record: ConnectionRecord) -> v1::Connection {
    v1::Connection {
        display_name: record.display_name,
        data_source: record.data_source,
        config: record.config,
        secret_fields: record.secret_fields,
        tls: record.tls.map(|tls| v1::TlsConfig {
            mode: tls.mode,
            ca_pem: tls.ca_pem,
            client_cert_pem: tls.client_cert_pem,
            client_key_pem: String::new(),
            server_name: tls.server_name,
            client_key_set: tls.client_key_set,
        }),
        tunnel: record.tunnel.map(|tunnel| v1::SshTunnel {
            host: tunnel.host,
            port: tunnel.port,
            user: tunnel.user,
            host_key_fingerprints: tunnel.host_key_fingerprints,
            local_port: tunnel.local_port,
            private_key_set: tunnel.private_key_set,
            private_key_passphrase_set: tunnel.private_key_passphrase_set,
            password_set: tunnel.password_set,
            ..Default::default()
        }),
        labels: record.labels,
        product: record.product,
        create_time: record.create_time,
        update_time: record.update_time,
        last_test: record.last_test.map(|test| v1::TestConnectionResponse {
            success: test.success,
            stages: test
                .stages
                .into_iter()
                .map(|stage| v1::StageResult {
                    stage: stage.stage,
                    status: stage.status,
                    duration_us: stage.duration_us,
                    message: stage.message,
                })
                .collect(),
            error_category: test.error_category,
            message: test.message,
            server_version: test.server_version,
            duration_us: test.duration_us,
            test_time: test.test_time,
        }),
        ..v1::Connection::default()
    }
}

/// What a list query filters and orders a connection by.
pub fn connection_index(connection: &v1::Connection) -> ConnectionIndex {
    let update_time = connection.update_time.unwrap_or_default();
    ConnectionIndex {
        data_source: connection.data_source.clone(),
        product: connection.product.clone(),
        labels: connection
            .labels
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        update_time_nanos: update_time
            .seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(update_time.nanos)),
    }
}

/// Rewrites a connection stored in format 1 as format 2, with its index
/// fields (for [`connvault_store::sled::SledStore::upgrade_legacy`]).
pub fn upgrade_legacy_connection(
    legacy: LegacyConnection<'_>,
) -> Result<(ConnectionIndex, Vec<u8>), StoreError> {
    let view = decode_connection(legacy.value).map_err(|_| {
        StoreError::Corrupt(format!(
            "connection {} of tenant {} cannot be read",
            legacy.id, legacy.tenant_id
        ))
    })?;
    let index = connection_index(&view.connection);
    Ok((
        index,
        encode_connection(&view.connection, &view.sealed_secrets),
    ))
}

/// Reads a stored tenant of any known format (its name and etag unset).
pub fn decode_tenant(value: &[u8]) -> Result<v1::Tenant, ServiceError> {
    match format_of(value) {
        Some(1) => {
            let legacy = LegacyTenantRecord::decode(value).map_err(|_| unreadable("tenant"))?;
            Ok(legacy.tenant.unwrap_or_default())
        }
        Some(FORMAT) => {
            let record = TenantRecord::decode(value).map_err(|_| unreadable("tenant"))?;
            Ok(v1::Tenant {
                display_name: record.display_name,
                labels: record.labels,
                create_time: record.create_time,
                update_time: record.update_time,
                egress: record.egress.map(|egress| v1::EgressPolicy {
                    allow: egress.allow,
                    deny: egress.deny,
                }),
                forms: record.forms.map(|forms| v1::FormSettings {
                    allowed_redirect_origins: forms.allowed_redirect_origins,
                    allowed_data_sources: forms.allowed_data_sources,
                    frame_ancestors: forms.frame_ancestors,
                    branding_display_name: forms.branding_display_name,
                    accent_color: forms.accent_color,
                }),
                ..v1::Tenant::default()
            })
        }
        _ => Err(unreadable("tenant")),
    }
}

/// Encodes a tenant (its name and etag are not stored).
pub fn encode_tenant(tenant: &v1::Tenant) -> Vec<u8> {
    TenantRecord {
        format: FORMAT,
        display_name: tenant.display_name.clone(),
        labels: tenant.labels.clone(),
        create_time: tenant.create_time,
        update_time: tenant.update_time,
        egress: tenant
            .egress
            .as_ref()
            .filter(|egress| !egress.allow.is_empty() || !egress.deny.is_empty())
            .map(|egress| EgressRecord {
                allow: egress.allow.clone(),
                deny: egress.deny.clone(),
            }),
        forms: tenant
            .forms
            .as_ref()
            .filter(|forms| **forms != v1::FormSettings::default())
            .map(|forms| FormSettingsRecord {
                allowed_redirect_origins: forms.allowed_redirect_origins.clone(),
                allowed_data_sources: forms.allowed_data_sources.clone(),
                frame_ancestors: forms.frame_ancestors.clone(),
                branding_display_name: forms.branding_display_name.clone(),
                accent_color: forms.accent_color.clone(),
            }),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> v1::Connection {
        let mut labels = std::collections::HashMap::new();
        labels.insert("env".to_owned(), "prod".to_owned());
        v1::Connection {
            display_name: "Orders".into(),
            data_source: "postgresql".into(),
            config: Some(prost_types::Struct::default()),
            secret_fields: vec!["password".into()],
            tls: Some(v1::TlsConfig {
                mode: 4,
                ca_pem: "ca".into(),
                client_cert_pem: "cert".into(),
                client_key_pem: String::new(),
                server_name: "db".into(),
                client_key_set: true,
            }),
            tunnel: Some(v1::SshTunnel {
                host: "bastion.example".into(),
                port: 2222,
                user: "tunnel".into(),
                host_key_fingerprints: vec![
                    "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into(),
                ],
                local_port: 15432,
                private_key_set: true,
                private_key_passphrase_set: true,
                password_set: false,
                ..Default::default()
            }),
            labels,
            product: "reporting".into(),
            create_time: Some(prost_types::Timestamp {
                seconds: 10,
                nanos: 5,
            }),
            update_time: Some(prost_types::Timestamp {
                seconds: 20,
                nanos: 7,
            }),
            last_test: Some(v1::TestConnectionResponse {
                success: true,
                stages: vec![v1::StageResult {
                    stage: 2,
                    status: 1,
                    duration_us: 9,
                    message: "ok".into(),
                }],
                error_category: 1,
                message: "fine".into(),
                server_version: "16".into(),
                duration_us: 11,
                test_time: Some(prost_types::Timestamp {
                    seconds: 30,
                    nanos: 0,
                }),
            }),
            ..v1::Connection::default()
        }
    }

    #[test]
    fn format_2_round_trips_every_stored_field() {
        let bytes = encode_connection(&connection(), b"sealed");
        let view = decode_connection(&bytes).unwrap();
        assert_eq!(view.connection, connection());
        assert_eq!(view.sealed_secrets, b"sealed");
        assert_eq!(format_of(&bytes), Some(FORMAT));
    }

    #[test]
    fn format_1_records_are_read_and_upgraded() {
        // Bytes exactly as the previous version wrote them.
        let legacy = LegacyConnectionRecord {
            connection: Some(v1::Connection {
                name: "tenants/acme/connections/1".into(),
                etag: String::new(),
                ..connection()
            }),
            sealed_secrets: b"sealed".to_vec(),
            revision: 3,
        }
        .encode_to_vec();
        assert_eq!(format_of(&legacy), Some(1));
        let view = decode_connection(&legacy).unwrap();
        assert_eq!(view.connection.display_name, "Orders");
        assert_eq!(view.sealed_secrets, b"sealed");
        let (index, upgraded) = upgrade_legacy_connection(LegacyConnection {
            tenant_id: "acme",
            id: "1",
            display_name_key: "orders",
            value: &legacy,
        })
        .unwrap();
        assert_eq!(index.data_source, "postgresql");
        assert_eq!(index.update_time_nanos, 20_000_000_007);
        assert_eq!(index.labels.get("env").map(String::as_str), Some("prod"));
        let view = decode_connection(&upgraded).unwrap();
        assert_eq!(view.connection, connection());
        let tenant = LegacyTenantRecord {
            tenant: Some(v1::Tenant {
                display_name: "Acme".into(),
                ..v1::Tenant::default()
            }),
            revision: 1,
        }
        .encode_to_vec();
        assert_eq!(decode_tenant(&tenant).unwrap().display_name, "Acme");
    }

    #[test]
    fn a_tenants_egress_rules_round_trip_and_none_store_nothing() {
        let tenant = v1::Tenant {
            display_name: "Acme".into(),
            egress: Some(v1::EgressPolicy {
                allow: vec!["127.0.0.1:6379".into()],
                deny: vec!["10.9.0.0/16".into()],
            }),
            ..v1::Tenant::default()
        };
        assert_eq!(decode_tenant(&encode_tenant(&tenant)).unwrap(), tenant);
        // No rules, or empty ones, are stored as before they existed.
        let plain = v1::Tenant {
            display_name: "Acme".into(),
            ..v1::Tenant::default()
        };
        let empty = v1::Tenant {
            egress: Some(v1::EgressPolicy::default()),
            ..plain.clone()
        };
        assert_eq!(encode_tenant(&plain), encode_tenant(&empty));
        assert_eq!(decode_tenant(&encode_tenant(&plain)).unwrap(), plain);
    }

    #[test]
    fn garbage_is_data_loss_not_a_panic() {
        for bytes in [&b"\xff\xff\xff"[..], b"\x7a\x01", b"\x78\x09"] {
            assert!(matches!(
                decode_connection(bytes),
                Err(ServiceError::DataLoss(_))
            ));
        }
    }
}
