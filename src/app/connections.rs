//! Connections: create, get, update, delete, batch delete, test.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use connvault_crypto::{Aad, Sealed, SecretMap};
use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::{Plugin, ProviderClient};
use connvault_store::{AuditAppend, ConnectionRecord, StoreError};
use prost::Message;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

use super::list::decode_connection;
use super::{App, check_labels, etag_of, stamped};
use crate::clock::timestamp_now;
use crate::error::{ServiceError, Violation};
use crate::names::{connection_name, parse_connection, parse_tenant};
use crate::pb::storage::StoredConnection;
use crate::pb::v1;
use crate::plugin_messages::{self, config_from_struct, config_to_struct, tls_to_plugin};

/// The secret-map entry holding a TLS client key (no field name contains a dot).
pub(super) const TLS_KEY_SECRET: &str = "tls.client_key_pem";
/// The most secrets a connection may carry.
const MAX_SECRETS: usize = 64;
/// The longest secret value accepted.
const MAX_SECRET_BYTES: usize = 64 * 1024;
/// The most connections one batch delete may name.
const MAX_BATCH: usize = 1000;
/// How often an update without an etag is tried before it gives up ABORTED.
/// Every round of racing updates has a winner, so this many racers on one
/// connection at once all get through.
const UPDATE_ATTEMPTS: u32 = 32;

fn aad<'a>(tenant: &'a str, id: &'a str) -> Aad<'a> {
    Aad {
        tenant,
        record_id: id,
        purpose: "connection-secrets",
    }
}

/// A connection read from the store, with the bytes its etag and CAS use.
pub(super) struct Loaded {
    tenant: String,
    id: String,
    value: Vec<u8>,
    stored: StoredConnection,
}

impl Loaded {
    fn connection(&self) -> &v1::Connection {
        static EMPTY: std::sync::OnceLock<v1::Connection> = std::sync::OnceLock::new();
        self.stored
            .connection
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }
}

/// A connection checked by its plugin and ready to store.
struct Checked {
    plugin: Arc<Plugin>,
    source: plugin::DataSource,
    normalized: BTreeMap<String, plugin::Value>,
}

fn check_display_name(name: &str, violations: &mut Vec<Violation>) {
    let length = name.chars().count();
    if !(3..=100).contains(&length) {
        violations.push(Violation {
            field: "connection.display_name".into(),
            description: "must be 3-100 characters".into(),
        });
    } else if name.trim() != name || name.chars().any(char::is_control) {
        violations.push(Violation {
            field: "connection.display_name".into(),
            description: "must not start or end with spaces or hold control characters".into(),
        });
    }
}

fn check_product(product: &str, violations: &mut Vec<Violation>) {
    let valid = product.is_empty()
        || (product.len() <= 100
            && product
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'));
    if !valid {
        violations.push(Violation {
            field: "connection.product".into(),
            description: "must be 1-100 of [A-Za-z0-9_-]".into(),
        });
    }
}

fn check_secrets(secrets: &HashMap<String, String>, violations: &mut Vec<Violation>) {
    if secrets.len() > MAX_SECRETS {
        violations.push(Violation {
            field: "connection.secrets".into(),
            description: format!("must have at most {MAX_SECRETS} entries"),
        });
    }
    for (name, value) in secrets {
        if value.len() > MAX_SECRET_BYTES {
            violations.push(Violation {
                field: format!("connection.secrets.{name}"),
                description: format!("must be at most {MAX_SECRET_BYTES} bytes"),
            });
        }
    }
}

fn to_secret_map(secrets: HashMap<String, String>, client_key: Option<String>) -> SecretMap {
    let mut map = SecretMap::new();
    for (name, value) in secrets {
        if !value.is_empty() {
            map.insert(name, SecretString::from(value));
        }
    }
    if let Some(key) = client_key.filter(|key| !key.is_empty()) {
        map.insert(TLS_KEY_SECRET, SecretString::from(key));
    }
    map
}

/// The plugin's view of a connection, secrets included (dropped right after the call).
pub(super) fn spec(
    source_id: &str,
    config: BTreeMap<String, plugin::Value>,
    secrets: &SecretMap,
    tls: Option<&v1::TlsConfig>,
) -> plugin::ConnectionSpec {
    let client_key = secrets
        .get(TLS_KEY_SECRET)
        .map(|key| key.expose_secret().to_owned());
    plugin::ConnectionSpec {
        data_source: source_id.to_owned(),
        config,
        secrets: secrets
            .iter()
            .filter(|(name, _)| *name != TLS_KEY_SECRET)
            .map(|(name, value)| (name.to_owned(), value.expose_secret().to_owned()))
            .collect(),
        tls: tls_to_plugin(tls, client_key.as_deref()),
    }
}

fn prefixed(violations: Vec<plugin::FieldViolation>) -> ServiceError {
    ServiceError::InvalidArgument(
        violations
            .into_iter()
            .map(|violation| Violation {
                field: format!("connection.{}", violation.field),
                description: violation.description,
            })
            .collect(),
    )
}

impl App {
    pub(super) fn find_source(&self, name: &str) -> Option<(Arc<Plugin>, plugin::DataSource)> {
        self.plugins
            .find(name)
            .map(|(plugin, source)| (Arc::clone(plugin), source.clone()))
    }

    /// Local checks plus the plugin's validation of a whole connection.
    async fn check(
        &self,
        connection: &v1::Connection,
        secrets: &SecretMap,
    ) -> Result<Checked, ServiceError> {
        let mut violations = Vec::new();
        check_display_name(&connection.display_name, &mut violations);
        check_labels(&connection.labels, "connection.labels", &mut violations);
        check_product(&connection.product, &mut violations);
        let source = match connection.data_source.as_str() {
            "" => {
                violations.push(Violation {
                    field: "connection.data_source".into(),
                    description: "is required".into(),
                });
                None
            }
            name => {
                let found = self.find_source(name);
                if found.is_none() {
                    violations.push(Violation {
                        field: "connection.data_source".into(),
                        description: "is not a data source of any loaded plugin (see ListDataSources)".into(),
                    });
                }
                found
            }
        };
        let config = match config_from_struct(connection.config.as_ref(), "connection.config") {
            Ok(config) => config,
            Err(mut bad) => {
                violations.append(&mut bad);
                BTreeMap::new()
            }
        };
        let Some((plugin, source)) = source else {
            return Err(ServiceError::InvalidArgument(violations));
        };
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let request = plugin::ValidateRequest {
            connection: Some(spec(&source.id, config, secrets, connection.tls.as_ref())),
            secrets_elided: false,
            secret_fields_present: Vec::new(),
        };
        let answer = plugin.validate(&request, self.limits.validate).await?;
        drop(request);
        if !answer.violations.is_empty() {
            return Err(prefixed(answer.violations));
        }
        Ok(Checked {
            plugin,
            source,
            normalized: answer.normalized_config,
        })
    }

    fn seal(&self, tenant: &str, id: &str, secrets: &SecretMap) -> Result<Vec<u8>, ServiceError> {
        self.keyring
            .seal(&aad(tenant, id), secrets)
            .map(|sealed| sealed.to_bytes())
            .map_err(|_| ServiceError::Internal("sealing failed".into()))
    }

    pub(super) fn open(&self, loaded: &Loaded) -> Result<SecretMap, ServiceError> {
        let unreadable = || {
            tracing::error!(tenant = %loaded.tenant, connection = %loaded.id, "stored secrets failed to open (corrupt, moved or sealed under another key)");
            ServiceError::DataLoss(format!(
                "the secrets of {} cannot be read back",
                connection_name(&loaded.tenant, &loaded.id)
            ))
        };
        if loaded.stored.sealed_secrets.is_empty() {
            return Ok(SecretMap::new());
        }
        let sealed = Sealed::from_bytes(&loaded.stored.sealed_secrets).map_err(|_| unreadable())?;
        self.keyring
            .open(&aad(&loaded.tenant, &loaded.id), &sealed)
            .map_err(|_| unreadable())
    }

    pub(super) async fn load(&self, name: &str, field: &str) -> Result<Loaded, ServiceError> {
        let (tenant, id) = parse_connection(name, field)?;
        let (t, i) = (tenant.clone(), id.clone());
        let record = self
            .read(|store| store.get_connection(&t, &i))
            .map_err(|error| error.naming_missing(name))?;
        let stored = StoredConnection::decode(record.value.as_slice())
            .map_err(|_| ServiceError::DataLoss(format!("{name} cannot be read back")))?;
        Ok(Loaded {
            tenant,
            id,
            value: record.value,
            stored,
        })
    }

    /// [`App::view`] without the copy, for a caller done with `loaded`.
    fn into_view(loaded: Loaded) -> v1::Connection {
        stamped(loaded.stored.connection, &loaded.value)
    }

    pub(super) fn view(&self, loaded: &Loaded) -> Result<v1::Connection, ServiceError> {
        Ok(stamped(loaded.stored.connection.clone(), &loaded.value))
    }

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
        self.require_tenant(&tenant, parent)?;
        let mut violations = Vec::new();
        check_secrets(&connection.secrets, &mut violations);
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let client_key = connection
            .tls
            .as_mut()
            .map(|tls| std::mem::take(&mut tls.client_key_pem));
        let secrets = to_secret_map(std::mem::take(&mut connection.secrets), client_key);
        let checked = self.check(&connection, &secrets).await?;

        let id = id.to_owned();
        let time = timestamp_now();
        let stored_connection = v1::Connection {
            name: connection_name(&tenant, &id),
            display_name: connection.display_name.clone(),
            data_source: checked.source.id.clone(),
            config: Some(config_to_struct(&checked.normalized)),
            secrets: HashMap::new(),
            secret_fields: secrets
                .keys()
                .filter(|name| *name != TLS_KEY_SECRET)
                .map(str::to_owned)
                .collect(),
            tls: connection.tls.map(|mut tls| {
                tls.client_key_set = secrets.contains_key(TLS_KEY_SECRET);
                tls
            }),
            labels: connection.labels,
            product: connection.product.to_ascii_lowercase(),
            create_time: Some(time),
            update_time: Some(time),
            etag: String::new(),
            last_test: None,
        };
        let name_key = stored_connection.display_name.to_lowercase();
        if validate_only {
            let (t, key) = (tenant.clone(), name_key.clone());
            if self
                .blocking(move |store| store.find_connection_by_name(&t, &key))
                .await?
                .is_some()
            {
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
        let stored = StoredConnection {
            connection: Some(stored_connection),
            sealed_secrets: self.seal(&tenant, &id, &secrets)?,
            revision: 1,
        };
        let record = ConnectionRecord {
            tenant_id: tenant.clone(),
            id: id.clone(),
            display_name_key: name_key,
            value: stored.encode_to_vec(),
        };
        let display_name = stored
            .connection
            .as_ref()
            .map(|c| c.display_name.clone())
            .unwrap_or_default();
        let sequence = self
            .store
            .create_connection_async(&record, audit)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| match error.store_error() {
                Some(StoreError::AlreadyExists) => name_taken(&display_name, parent),
                _ => error.naming_missing(parent),
            })?;
        tracing::info!(tenant = %tenant, connection = %id, data_source = %checked.source.id, plugin = checked.plugin.name(), "connection created");
        // The answer is what was stored, as a read would decode it.
        Ok((stamped(stored.connection, &record.value), sequence))
    }

    /// Gets a connection. Its sealed secrets are opened (and dropped) to prove they are intact.
    pub async fn get_connection(&self, name: &str) -> Result<v1::Connection, ServiceError> {
        let loaded = self.load(name, "name").await?;
        drop(self.open(&loaded)?);
        Ok(Self::into_view(loaded))
    }

    /// Updates the fields named in `mask`.
    pub async fn update_connection(
        &self,
        request: v1::UpdateConnectionRequest,
    ) -> Result<v1::Connection, ServiceError> {
        self.update_connection_audited(request, None)
            .await
            .map(|(connection, _)| connection)
    }

    /// [`App::update_connection`], appending `audit` in the update's own store
    /// transaction; returns the entry's sequence number when it was appended.
    ///
    /// A caller that sent no etag asked for "apply this patch to whatever is
    /// there": if another write lands between our read and our
    /// compare-and-swap, the patch is applied again to the new version rather
    /// than failing with ABORTED. With an etag, the conflict is the caller's.
    pub async fn update_connection_audited(
        &self,
        request: v1::UpdateConnectionRequest,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<(v1::Connection, Option<u64>), ServiceError> {
        if !request.etag.is_empty() {
            return self.update_once(request, audit).await;
        }
        let mut attempt = 1;
        loop {
            match self.update_once(request.clone(), audit).await {
                // Without an etag, ABORTED can only come from the lost compare-and-swap.
                Err(ServiceError::Aborted(_)) if attempt < UPDATE_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(
                        attempt,
                        "update raced another write; applying the patch again"
                    );
                }
                other => return other,
            }
        }
    }

    async fn update_once(
        &self,
        request: v1::UpdateConnectionRequest,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<(v1::Connection, Option<u64>), ServiceError> {
        let mut patch = request
            .connection
            .ok_or_else(|| ServiceError::invalid("connection", "is required"))?;
        let paths = request
            .update_mask
            .map(|mask| mask.paths)
            .unwrap_or_default();
        if paths.is_empty() {
            return Err(ServiceError::invalid(
                "update_mask",
                "is required: name the fields to change",
            ));
        }
        let loaded = self.load(&patch.name, "connection.name").await?;
        let current_etag = etag_of(&loaded.value);
        if !request.etag.is_empty() && request.etag != current_etag {
            return Err(ServiceError::Aborted(
                "etag does not match: the connection changed since it was read".into(),
            ));
        }
        let old = loaded.connection().clone();
        let mut next = old.clone();
        let mut secrets = self.open(&loaded)?;
        let old_secret_names: Vec<String> = secrets.keys().map(str::to_owned).collect();
        let mut resupplied: Vec<String> = Vec::new();
        let mut config_changed = false;
        let mut violations = Vec::new();
        check_secrets(&patch.secrets, &mut violations);
        let patch_key = patch
            .tls
            .as_mut()
            .map(|tls| std::mem::take(&mut tls.client_key_pem))
            .unwrap_or_default();

        for path in &paths {
            match path.as_str() {
                "display_name" => next.display_name = patch.display_name.clone(),
                "labels" => next.labels = patch.labels.clone(),
                "product" => next.product = patch.product.to_ascii_lowercase(),
                "config" => {
                    next.config = patch.config.clone();
                    config_changed = true;
                }
                "secrets" => {
                    let key = secrets.get(TLS_KEY_SECRET).cloned();
                    secrets = to_secret_map(patch.secrets.clone(), None);
                    if let Some(key) = key {
                        secrets.insert(TLS_KEY_SECRET, key);
                    }
                    resupplied.extend(
                        old_secret_names
                            .iter()
                            .filter(|n| *n != TLS_KEY_SECRET)
                            .cloned(),
                    );
                    config_changed = true;
                }
                "tls" => {
                    let mut tls = patch.tls.clone().unwrap_or_default();
                    tls.client_key_set = false;
                    next.tls = Some(tls);
                    config_changed = true;
                }
                "tls.client_key_pem" => {
                    secrets.remove(TLS_KEY_SECRET);
                    if !patch_key.is_empty() {
                        secrets.insert(TLS_KEY_SECRET, SecretString::from(patch_key.clone()));
                    }
                    resupplied.push(TLS_KEY_SECRET.into());
                    config_changed = true;
                }
                "data_source" => violations.push(Violation {
                    field: "update_mask".into(),
                    description: "data_source cannot change: create a new connection".into(),
                }),
                other => {
                    if let Some(key) = other.strip_prefix("config.") {
                        let mut config = next.config.clone().unwrap_or_default();
                        match patch.config.as_ref().and_then(|c| c.fields.get(key)) {
                            Some(value) => {
                                config.fields.insert(key.to_owned(), value.clone());
                            }
                            None => {
                                config.fields.remove(key);
                            }
                        }
                        next.config = Some(config);
                        config_changed = true;
                    } else if let Some(key) = other.strip_prefix("secrets.") {
                        secrets.remove(key);
                        if let Some(value) = patch.secrets.get(key).filter(|v| !v.is_empty()) {
                            secrets.insert(key, SecretString::from(value.clone()));
                        }
                        resupplied.push(key.to_owned());
                        config_changed = true;
                    } else if let Some(field) = other.strip_prefix("tls.") {
                        let tls = next.tls.get_or_insert_with(Default::default);
                        let from = patch.tls.clone().unwrap_or_default();
                        match field {
                            "mode" => tls.mode = from.mode,
                            "ca_pem" => tls.ca_pem = from.ca_pem,
                            "client_cert_pem" => tls.client_cert_pem = from.client_cert_pem,
                            "server_name" => tls.server_name = from.server_name,
                            _ => violations.push(Violation {
                                field: "update_mask".into(),
                                description: format!("{other} is not an updatable field"),
                            }),
                        }
                        config_changed = true;
                    } else {
                        violations.push(Violation {
                            field: "update_mask".into(),
                            description: format!("{other} is not an updatable field"),
                        });
                    }
                }
            }
        }
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let checked = self.check(&next, &secrets).await?;

        // A changed destination must come with the secrets: otherwise a stored
        // password could be pointed at another server and read off by a test.
        let old_config =
            config_from_struct(old.config.as_ref(), "connection.config").unwrap_or_default();
        let redirected: Vec<&String> = checked
            .source
            .secret_bound_fields
            .iter()
            .filter(|field| old_config.get(*field) != checked.normalized.get(*field))
            .collect();
        let tls_target_changed = old.tls.as_ref().map(|t| &t.server_name)
            != next.tls.as_ref().map(|t| &t.server_name)
            && old.tls.as_ref().is_some_and(|t| !t.server_name.is_empty());
        let unsent: Vec<&String> = old_secret_names
            .iter()
            .filter(|name| !resupplied.contains(name))
            .collect();
        if (!redirected.is_empty() || tls_target_changed) && !unsent.is_empty() {
            return Err(ServiceError::FailedPrecondition(format!(
                "this update changes where secrets are sent ({}); re-send the secrets ({}) in the same update",
                redirected
                    .iter()
                    .map(|f| f.as_str())
                    .chain(tls_target_changed.then_some("tls.server_name"))
                    .collect::<Vec<_>>()
                    .join(", "),
                unsent
                    .iter()
                    .map(|n| format!("secrets.{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }

        next.config = Some(config_to_struct(&checked.normalized));
        next.secret_fields = secrets
            .keys()
            .filter(|name| *name != TLS_KEY_SECRET)
            .map(str::to_owned)
            .collect();
        if let Some(tls) = next.tls.as_mut() {
            tls.client_key_set = secrets.contains_key(TLS_KEY_SECRET);
        }
        next.update_time = Some(timestamp_now());
        next.etag = String::new();
        if config_changed {
            next.last_test = None;
        }
        let stored = StoredConnection {
            connection: Some(next),
            sealed_secrets: self.seal(&loaded.tenant, &loaded.id, &secrets)?,
            revision: loaded.stored.revision + 1,
        };
        let updated = self.write_back(&loaded, stored, &patch.name, audit).await?;
        if config_changed {
            // The catalog was read through the old settings: drop it.
            self.forget_metadata(&loaded.tenant, &loaded.id).await;
        }
        Ok(updated)
    }

    async fn write_back(
        &self,
        loaded: &Loaded,
        stored: StoredConnection,
        name: &str,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<(v1::Connection, Option<u64>), ServiceError> {
        let display_name = stored
            .connection
            .as_ref()
            .map(|c| c.display_name.clone())
            .unwrap_or_default();
        let record = ConnectionRecord {
            tenant_id: loaded.tenant.clone(),
            id: loaded.id.clone(),
            display_name_key: display_name.to_lowercase(),
            value: stored.encode_to_vec(),
        };
        let value = record.value.clone();
        let expected = loaded.value.clone();
        let parent = crate::names::tenant_name(&loaded.tenant);
        let sequence = self
            .store
            .update_connection_async(&record, &expected, audit)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| match error.store_error() {
                Some(StoreError::AlreadyExists) => name_taken(&display_name, &parent),
                _ => error.naming_missing(name),
            })?;
        tracing::info!(tenant = %loaded.tenant, connection = %loaded.id, "connection updated");
        Ok((decode_connection(&value)?, sequence))
    }

    /// Deletes a connection (ABORTED if `etag` is set and stale).
    pub async fn delete_connection(&self, name: &str, etag: &str) -> Result<(), ServiceError> {
        self.delete_connection_audited(name, etag, None)
            .await
            .map(drop)
    }

    /// [`App::delete_connection`], appending `audit` in the delete's own store
    /// transaction; returns the entry's sequence number when it was appended.
    pub async fn delete_connection_audited(
        &self,
        name: &str,
        etag: &str,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Option<u64>, ServiceError> {
        let loaded = self.load(name, "name").await?;
        if !etag.is_empty() && etag != etag_of(&loaded.value) {
            return Err(ServiceError::Aborted(
                "etag does not match: the connection changed since it was read".into(),
            ));
        }
        let sequence = self
            .store
            .delete_connection_async(&loaded.tenant, &loaded.id, Some(&loaded.value), audit)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| error.naming_missing(name))?;
        tracing::info!(tenant = %loaded.tenant, connection = %loaded.id, "connection deleted");
        Ok(sequence)
    }

    /// Deletes the named connections of one tenant, all or nothing.
    pub async fn batch_delete_connections(
        &self,
        parent: &str,
        names: &[String],
    ) -> Result<(), ServiceError> {
        let tenant = parse_tenant(parent, "parent")?;
        if names.is_empty() || names.len() > MAX_BATCH {
            return Err(ServiceError::invalid(
                "names",
                format!("must name 1-{MAX_BATCH} connections"),
            ));
        }
        let mut ids = Vec::with_capacity(names.len());
        let mut violations = Vec::new();
        for (index, name) in names.iter().enumerate() {
            match parse_connection(name, &format!("names[{index}]")) {
                Ok((owner, id)) if owner == tenant => ids.push(id),
                Ok(_) => violations.push(Violation {
                    field: format!("names[{index}]"),
                    description: format!("is not in {parent}"),
                }),
                Err(ServiceError::InvalidArgument(mut bad)) => violations.append(&mut bad),
                Err(other) => return Err(other),
            }
        }
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let (t, count) = (tenant.clone(), ids.len());
        self.blocking(move |store| store.batch_delete(&t, &ids))
            .await
            .map_err(|error| {
                error.naming_missing("one or more of the named connections (nothing was deleted)")
            })?;
        tracing::info!(tenant = %tenant, count, "connections deleted in a batch");
        Ok(())
    }

    /// Tests a saved connection (recording the result on it) or an inline one.
    pub async fn test_connection(
        &self,
        request: v1::TestConnectionRequest,
    ) -> Result<v1::TestConnectionResponse, ServiceError> {
        let timeout = match request.timeout_ms {
            0 => self.limits.test_default,
            ms => Duration::from_millis(u64::from(ms)),
        };
        if timeout > self.limits.test_max {
            return Err(ServiceError::invalid(
                "timeout_ms",
                format!("must be at most {}", self.limits.test_max.as_millis()),
            ));
        }
        // The host's deadline leaves the plugin its full time plus a margin to answer.
        let host_deadline = timeout + Duration::from_secs(1);
        let deadline_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        match request.target {
            Some(v1::test_connection_request::Target::Name(name)) => {
                let loaded = self.load(&name, "name").await?;
                let secrets = self.open(&loaded)?;
                let connection = loaded.connection();
                let (plugin, source) =
                    self.find_source(&connection.data_source).ok_or_else(|| {
                        ServiceError::FailedPrecondition(format!(
                            "no loaded plugin serves data source {}",
                            connection.data_source
                        ))
                    })?;
                let config = config_from_struct(connection.config.as_ref(), "connection.config")
                    .map_err(ServiceError::InvalidArgument)?;
                let test = plugin::TestRequest {
                    connection: Some(spec(&source.id, config, &secrets, connection.tls.as_ref())),
                    deadline_ms,
                };
                drop(secrets);
                let result =
                    plugin_messages::test_response(plugin.test(&test, host_deadline).await?);
                drop(test);
                self.record_test(&name, &result).await;
                Ok(result)
            }
            Some(v1::test_connection_request::Target::Connection(mut connection)) => {
                let tenant = parse_tenant(&request.parent, "parent")?;
                self.require_tenant(&tenant, &request.parent)?;
                let client_key = connection
                    .tls
                    .as_mut()
                    .map(|tls| std::mem::take(&mut tls.client_key_pem));
                let secrets = to_secret_map(std::mem::take(&mut connection.secrets), client_key);
                let checked = self.check(&connection, &secrets).await?;
                let test = plugin::TestRequest {
                    connection: Some(spec(
                        &checked.source.id,
                        checked.normalized,
                        &secrets,
                        connection.tls.as_ref(),
                    )),
                    deadline_ms,
                };
                drop(secrets);
                Ok(plugin_messages::test_response(
                    checked.plugin.test(&test, host_deadline).await?,
                ))
            }
            None => Err(ServiceError::invalid(
                "target",
                "name or connection is required",
            )),
        }
    }

    /// A saved connection as its plugin sees it, secrets included (drop the
    /// spec right after the call): for plugin calls on stored connections.
    pub(super) async fn saved_spec(
        &self,
        name: &str,
    ) -> Result<(Arc<Plugin>, plugin::ConnectionSpec), ServiceError> {
        let loaded = self.load(name, "name").await?;
        let secrets = self.open(&loaded)?;
        let connection = loaded.connection();
        let (plugin, source) = self.find_source(&connection.data_source).ok_or_else(|| {
            ServiceError::FailedPrecondition(format!(
                "no loaded plugin serves data source {}",
                connection.data_source
            ))
        })?;
        let config = config_from_struct(connection.config.as_ref(), "connection.config")
            .map_err(ServiceError::InvalidArgument)?;
        let spec = spec(&source.id, config, &secrets, connection.tls.as_ref());
        Ok((plugin, spec))
    }

    /// Records a test result on a saved connection; a lost race is logged, not fatal.
    async fn record_test(&self, name: &str, result: &v1::TestConnectionResponse) {
        for _ in 0..3 {
            let Ok(loaded) = self.load(name, "name").await else {
                return;
            };
            let mut stored = loaded.stored.clone();
            if let Some(connection) = stored.connection.as_mut() {
                connection.last_test = Some(result.clone());
            }
            stored.revision += 1;
            match self
                .write_back(&loaded, stored, name, None)
                .await
                .map(|(connection, _)| connection)
            {
                Ok(_) => return,
                Err(ServiceError::Aborted(_)) => continue,
                Err(error) => {
                    tracing::warn!(connection = name, %error, "could not record the test result");
                    return;
                }
            }
        }
    }
}

fn name_taken(display_name: &str, parent: &str) -> ServiceError {
    ServiceError::AlreadyExists(format!(
        "a connection named {display_name:?} already exists in {parent}"
    ))
}
