//! Creating a connection (or only checking one, with `validate_only`).

use std::collections::HashMap;

use connvault_store::AuditAppend;

use super::records::{name_taken, to_record};
use super::rules::check_secrets;
use super::secrets::{describe_secrets, take_secrets};
use crate::app::{App, stamped};
use crate::clock::timestamp_now;
use crate::error::ServiceError;
use crate::names::{connection_name, parse_tenant};
use crate::pb::v1;
use crate::plugin_messages::config_to_struct;

impl App {
    /// Creates a connection in `parent`; with `validate_only`, checks everything and stores nothing.
    pub async fn create_connection(
        &self,
        parent: &str,
        connection: Option<v1::Connection>,
        validate_only: bool,
    ) -> Result<v1::Connection, ServiceError> {
        let id = uuid::Uuid::now_v7().to_string();
        self.create_connection_audited(parent, connection, validate_only, &id, None)
            .await
            .map(|(connection, _)| connection)
    }

    /// [`App::create_connection`] with the new connection's id (a UUID v7)
    /// chosen by the caller, appending `audit` in the connection's own store
    /// transaction; returns the entry's sequence number when it was appended.
    pub async fn create_connection_audited(
        &self,
        parent: &str,
        connection: Option<v1::Connection>,
        validate_only: bool,
        id: &str,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<(v1::Connection, Option<u64>), ServiceError> {
        let tenant = parse_tenant(parent, "parent")?;
        let mut connection =
            connection.ok_or_else(|| ServiceError::invalid("connection", "is required"))?;
        self.require_tenant(&tenant, parent).await?;
        let mut violations = Vec::new();
        check_secrets(&connection.secrets, &mut violations);
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let secrets = take_secrets(&mut connection);
        let checked = self.check(&connection, &secrets).await?;

        let id = id.to_owned();
        let time = timestamp_now();
        let mut stored_connection = v1::Connection {
            name: connection_name(&tenant, &id),
            display_name: connection.display_name.clone(),
            data_source: checked.source.id.clone(),
            config: Some(config_to_struct(&checked.normalized)),
            secrets: HashMap::new(),
            secret_fields: Vec::new(),
            tls: connection.tls,
            tunnel: connection.tunnel,
            labels: connection.labels,
            product: connection.product.to_ascii_lowercase(),
            create_time: Some(time),
            update_time: Some(time),
            etag: String::new(),
            last_test: None,
        };
        describe_secrets(&mut stored_connection, &secrets);
        let name_key = stored_connection.display_name.to_lowercase();
        if validate_only {
            if self.name_in_use(&tenant, &name_key).await? {
                return Err(name_taken(&stored_connection.display_name, parent));
            }
            let connection = v1::Connection {
                name: String::new(),
                create_time: None,
                update_time: None,
                ..stored_connection
            };
            return Ok((connection, None));
        }
        let gate = self.keys.seal_guard().await;
        let sealed = self.seal(&tenant, &id, &secrets)?;
        let record = to_record(&tenant, &id, &stored_connection, &sealed);
        let sequence = self
            .insert(&record, audit, parent, &stored_connection.display_name)
            .await?;
        drop(gate);
        tracing::info!(tenant = %tenant, connection = %id, data_source = %checked.source.id, plugin = checked.plugin.name(), "connection created");
        // The answer is what was stored, as a read would decode it.
        Ok((stamped(stored_connection, &record.value), sequence))
    }
}
