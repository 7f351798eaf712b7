//! Metadata discovery: the schemas, tables and columns behind a connection,
//! read through its plugin's `discover` and cached per connection.
//!
//! - The cache lives in the store's tenant-scoped cache tree, keyed by the
//!   connection and a hash of the request's effective filters and limits, so
//!   no tenant can reach another's entries. An entry older than the TTL is a
//!   miss; `refresh` skips the cache.
//! - Concurrent reads of one connection with the same filters share one
//!   plugin call (single flight): the first caller starts the read as a task
//!   of its own, so a caller that goes away does not cancel it for the others.
//! - Invalidation (an update of what the catalog was read through, a clear)
//!   bumps an epoch under the same lock a read takes to store its result: a
//!   read that started before an invalidation never caches what it found.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::ProviderClient;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::App;
use crate::clock::timestamp_now;
use crate::error::{ServiceError, Violation};
use crate::names::{parse_connection, parse_tenant};
use crate::pb::v1;

/// Schemas returned when a request leaves `max_schemas` at 0, and the most it may ask for.
pub const DEFAULT_SCHEMAS: u32 = 100;
/// The server's cap on `max_schemas`.
pub const MAX_SCHEMAS: u32 = 1000;
/// Tables returned when a request leaves `max_tables` at 0.
pub const DEFAULT_TABLES: u32 = 1000;
/// The server's cap on `max_tables`.
pub const MAX_TABLES: u32 = 10_000;
/// Columns per table when a request leaves `max_columns_per_table` at 0; also the cap.
pub const MAX_COLUMNS: u32 = 1000;
/// The longest filter accepted.
const MAX_FILTER_CHARS: usize = 256;
/// Cache entries of this feature start with this key prefix (other features may cache too).
const CACHE_KEY_PREFIX: &str = "metadata/v1/";
/// First byte of a stored entry: its format version.
const ENTRY_V1: u8 = 1;
/// Time the host gives a plugin past the deadline it passes in, to answer.
const HOST_MARGIN: Duration = Duration::from_secs(1);

/// What a finished read hands to every caller waiting on it.
type Outcome = Result<Arc<v1::DiscoverMetadataResponse>, ServiceError>;
/// A read in progress: its id and the channel its outcome is published on.
type Flight = (u64, watch::Receiver<Option<Outcome>>);

/// Identifies reads that may share one plugin call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FlightKey {
    tenant: String,
    id: String,
    cache_key: String,
    refresh: bool,
    /// Reads started before an invalidation are not joined after it.
    epoch: u64,
}

/// The in-flight reads and the invalidation epoch.
#[derive(Debug, Default)]
pub(super) struct MetadataState {
    /// Reads in progress, each with the channel its outcome is published on.
    flights: Mutex<HashMap<FlightKey, Flight>>,
    /// Bumped by every invalidation. Held while a read stores its result and
    /// while an invalidation clears the store, so the two never interleave.
    epoch: Arc<Mutex<u64>>,
    /// Ids of reads, so a finished read removes only its own map entry.
    next_flight: AtomicU64,
    /// Plugin `discover` calls made (for logs and tests).
    plugin_calls: AtomicU64,
}

impl MetadataState {
    fn epoch(&self) -> u64 {
        *self.epoch.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The request's filters and limits after defaults and caps: what a cache entry answers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Params {
    schema_filter: String,
    table_filter: String,
    max_schemas: u32,
    max_tables: u32,
    max_columns: u32,
    include_columns: bool,
}

impl Params {
    fn from_request(request: &v1::DiscoverMetadataRequest) -> Result<Self, ServiceError> {
        let mut violations = Vec::new();
        for (field, value) in [
            ("schema_filter", &request.schema_filter),
            ("table_filter", &request.table_filter),
        ] {
            if value.chars().count() > MAX_FILTER_CHARS || value.chars().any(char::is_control) {
                violations.push(Violation {
                    field: field.into(),
                    description: format!(
                        "must be a glob of at most {MAX_FILTER_CHARS} characters without control characters"
                    ),
                });
            }
        }
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let bound = |requested: u32, default: u32, cap: u32| match requested {
            0 => default,
            n => n.min(cap),
        };
        Ok(Self {
            schema_filter: request.schema_filter.clone(),
            table_filter: request.table_filter.clone(),
            max_schemas: bound(request.max_schemas, DEFAULT_SCHEMAS, MAX_SCHEMAS),
            max_tables: bound(request.max_tables, DEFAULT_TABLES, MAX_TABLES),
            max_columns: bound(request.max_columns_per_table, MAX_COLUMNS, MAX_COLUMNS),
            include_columns: request.include_columns,
        })
    }

    /// The cache key: a hash of every parameter, each length-prefixed so no
    /// two parameter sets encode alike.
    fn cache_key(&self) -> String {
        let mut hash = Sha256::new();
        for text in [&self.schema_filter, &self.table_filter] {
            hash.update((text.len() as u64).to_be_bytes());
            hash.update(text.as_bytes());
        }
        for number in [self.max_schemas, self.max_tables, self.max_columns] {
            hash.update(number.to_be_bytes());
        }
        hash.update([u8::from(self.include_columns)]);
        format!("{CACHE_KEY_PREFIX}{}", hex::encode(&hash.finalize()[..16]))
    }

    fn plugin_request(
        &self,
        connection: plugin::ConnectionSpec,
        timeout: Duration,
    ) -> plugin::DiscoverRequest {
        plugin::DiscoverRequest {
            connection: Some(connection),
            deadline_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            schema_filter: self.schema_filter.clone(),
            table_filter: self.table_filter.clone(),
            max_schemas: self.max_schemas,
            max_tables: self.max_tables,
            max_columns_per_table: self.max_columns,
            include_columns: self.include_columns,
        }
    }

    /// The plugin's catalog, held to this request's limits whatever the
    /// plugin returned (a plugin may ignore them).
    fn catalog(&self, answer: plugin::DiscoverResponse) -> v1::DiscoverMetadataResponse {
        let mut truncated = answer.truncated;
        let mut tables_left = self.max_tables as usize;
        let mut schemas = Vec::new();
        for schema in answer.schemas {
            if schemas.len() >= self.max_schemas as usize {
                truncated = true;
                break;
            }
            if schema.tables.len() > tables_left {
                truncated = true;
            }
            let tables = schema
                .tables
                .into_iter()
                .take(tables_left)
                .map(|table| {
                    let mut columns = if self.include_columns {
                        table.columns
                    } else {
                        Vec::new()
                    };
                    if columns.len() > self.max_columns as usize {
                        columns.truncate(self.max_columns as usize);
                        truncated = true;
                    }
                    v1::CatalogTable {
                        name: table.name,
                        kind: table.kind,
                        estimated_rows: table.estimated_rows,
                        columns: columns
                            .into_iter()
                            .map(|column| v1::CatalogColumn {
                                name: column.name,
                                data_type: column.data_type,
                                nullable: column.nullable,
                                position: column.position,
                            })
                            .collect(),
                    }
                })
                .collect::<Vec<_>>();
            tables_left -= tables.len();
            schemas.push(v1::CatalogSchema {
                name: schema.name,
                tables,
            });
        }
        v1::DiscoverMetadataResponse {
            schemas,
            truncated,
            fetched_time: Some(timestamp_now()),
            from_cache: false,
        }
    }
}

/// A stored entry: a version byte, then the encoded response.
fn encode_entry(response: &v1::DiscoverMetadataResponse) -> Vec<u8> {
    let mut entry = Vec::with_capacity(1 + response.encoded_len());
    entry.push(ENTRY_V1);
    entry.extend_from_slice(&response.encode_to_vec());
    entry
}

/// The response a stored entry holds if it is readable and younger than `ttl`.
fn decode_entry(entry: &[u8], ttl: Duration) -> Option<v1::DiscoverMetadataResponse> {
    let (&version, body) = entry.split_first()?;
    if version != ENTRY_V1 {
        return None;
    }
    let mut response = v1::DiscoverMetadataResponse::decode(body).ok()?;
    let fetched = SystemTime::try_from(response.fetched_time?).ok()?;
    // A fetch time in the future (clock stepped back) counts as expired.
    let age = SystemTime::now().duration_since(fetched).ok()?;
    if age >= ttl {
        return None;
    }
    response.from_cache = true;
    Some(response)
}

/// DEADLINE_EXCEEDED for a caller that stopped waiting on a shared read.
fn deadline_exceeded(timeout: Duration) -> ServiceError {
    ServiceError::DeadlineExceeded(format!(
        "metadata discovery did not finish within {timeout:?}"
    ))
}

impl App {
    /// Lists the schemas, tables and columns behind a saved connection: from
    /// the cache when a fresh entry answers the same filters and limits,
    /// otherwise through the plugin (one call for every concurrent caller).
    pub async fn discover_metadata(
        self: &Arc<Self>,
        request: v1::DiscoverMetadataRequest,
    ) -> Result<v1::DiscoverMetadataResponse, ServiceError> {
        let (tenant, id) = parse_connection(&request.name, "name")?;
        let params = Params::from_request(&request)?;
        let timeout = match request.timeout_ms {
            0 => self.limits.discover_default,
            ms => Duration::from_millis(u64::from(ms)),
        };
        if timeout > self.limits.test_max {
            return Err(ServiceError::invalid(
                "timeout_ms",
                format!("must be at most {}", self.limits.test_max.as_millis()),
            ));
        }
        let cache_key = params.cache_key();
        // Entries exist only for existing connections (a delete sweeps them and
        // a write needs the connection), so a hit needs no other read.
        if !request.refresh {
            if let Some(hit) = self.cached(&tenant, &id, &cache_key).await? {
                return Ok(hit);
            }
        }

        let key = FlightKey {
            tenant,
            id,
            cache_key,
            refresh: request.refresh,
            epoch: self.metadata.epoch(),
        };
        let mut receiver = {
            let mut flights = self
                .metadata
                .flights
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match flights.get(&key) {
                Some((_, receiver)) => receiver.clone(),
                None => {
                    let flight = self.metadata.next_flight.fetch_add(1, Ordering::Relaxed);
                    let (sender, receiver) = watch::channel(None);
                    flights.insert(key.clone(), (flight, receiver.clone()));
                    let app = Arc::clone(self);
                    let name = request.name.clone();
                    tokio::spawn(async move {
                        let outcome = app
                            .read_catalog(&name, &key, &params, timeout)
                            .await
                            .map(Arc::new);
                        // Unpublish before answering: a caller arriving later
                        // finds the cache (or starts a fresh read), never a
                        // finished flight's leftovers.
                        let mut flights = app
                            .metadata
                            .flights
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        if flights.get(&key).is_some_and(|(id, _)| *id == flight) {
                            flights.remove(&key);
                        }
                        drop(flights);
                        let _ = sender.send(Some(outcome));
                    });
                    receiver
                }
            }
        };
        let waited =
            tokio::time::timeout(timeout + HOST_MARGIN, receiver.wait_for(Option::is_some))
                .await
                .map_err(|_| deadline_exceeded(timeout))?
                .map_err(|_| {
                    ServiceError::Internal("a metadata read ended without an answer".into())
                })?
                .clone();
        match waited {
            Some(Ok(response)) => Ok(response.as_ref().clone()),
            Some(Err(error)) => Err(error),
            None => Err(ServiceError::Internal(
                "a metadata read ended without an answer".into(),
            )),
        }
    }

    /// Drops the cached metadata of one connection (`name`) or of a tenant
    /// (`parent`); returns how many entries went. NOT_FOUND for a connection
    /// or tenant that does not exist.
    pub async fn clear_metadata_cache(
        &self,
        request: v1::ClearMetadataCacheRequest,
    ) -> Result<u64, ServiceError> {
        use v1::clear_metadata_cache_request::Target;
        let (tenant, id) = match request.target {
            Some(Target::Name(name)) => {
                let (tenant, id) = parse_connection(&name, "name")?;
                let (t, i) = (tenant.clone(), id.clone());
                self.read(|store| store.get_connection(&t, &i))
                    .map_err(|error| error.naming_missing(&name))?;
                (tenant, Some(id))
            }
            Some(Target::Parent(parent)) => {
                let tenant = parse_tenant(&parent, "parent")?;
                self.require_tenant(&tenant, &parent)?;
                (tenant, None)
            }
            None => {
                return Err(ServiceError::invalid(
                    "target",
                    "name or parent is required",
                ));
            }
        };
        let cleared = self.invalidate(&tenant, id.as_deref()).await?;
        tracing::info!(tenant = %tenant, connection = id.as_deref().unwrap_or("*"), cleared, "metadata cache cleared");
        Ok(cleared as u64)
    }

    /// Drops a connection's cached metadata after a change to what it was read
    /// through; a failure is logged (the change itself is already stored).
    pub(super) async fn forget_metadata(&self, tenant: &str, id: &str) {
        if let Err(error) = self.invalidate(tenant, Some(id)).await {
            tracing::error!(tenant, connection = id, %error, "could not drop the metadata cache");
        }
    }

    /// How many plugin `discover` calls this server made.
    pub fn discover_calls(&self) -> u64 {
        self.metadata.plugin_calls.load(Ordering::Relaxed)
    }

    /// Bumps the epoch and clears the store under one lock.
    async fn invalidate(&self, tenant: &str, id: Option<&str>) -> Result<usize, ServiceError> {
        let epoch = Arc::clone(&self.metadata.epoch);
        let (tenant, id) = (tenant.to_owned(), id.map(str::to_owned));
        self.blocking(move |store| {
            let mut epoch = epoch.lock().unwrap_or_else(PoisonError::into_inner);
            *epoch += 1;
            store.clear_cache(&tenant, id.as_deref())
        })
        .await
    }

    /// A fresh cache entry, if there is one (and caching is on).
    async fn cached(
        &self,
        tenant: &str,
        id: &str,
        cache_key: &str,
    ) -> Result<Option<v1::DiscoverMetadataResponse>, ServiceError> {
        let ttl = self.limits.metadata_ttl;
        if ttl.is_zero() {
            return Ok(None);
        }
        let (t, i, k) = (tenant.to_owned(), id.to_owned(), cache_key.to_owned());
        let entry = self
            .blocking(move |store| store.get_cache(&t, &i, &k))
            .await?;
        Ok(entry.and_then(|entry| decode_entry(&entry, ttl)))
    }

    /// One shared read: the cache once more (a read that finished just before
    /// this one started has filled it), else the plugin, then the cache.
    async fn read_catalog(
        &self,
        name: &str,
        key: &FlightKey,
        params: &Params,
        timeout: Duration,
    ) -> Result<v1::DiscoverMetadataResponse, ServiceError> {
        if !key.refresh {
            if let Some(hit) = self.cached(&key.tenant, &key.id, &key.cache_key).await? {
                return Ok(hit);
            }
        }
        let super::connections::Opened { plugin, spec, .. } = self.open_for_plugin(name).await?;
        let request = params.plugin_request(spec, timeout);
        self.metadata.plugin_calls.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let answer = plugin.discover(&request, timeout + HOST_MARGIN).await;
        drop(request);
        let response = params.catalog(answer?);
        tracing::debug!(tenant = %key.tenant, connection = %key.id, elapsed = ?started.elapsed(), schemas = response.schemas.len(), truncated = response.truncated, "metadata discovered");
        if !self.limits.metadata_ttl.is_zero() {
            self.store_entry(key, &response).await;
        }
        Ok(response)
    }

    /// Caches a read's result unless an invalidation came after it started.
    /// A failure to cache is logged: the caller still gets the catalog.
    async fn store_entry(&self, key: &FlightKey, response: &v1::DiscoverMetadataResponse) {
        let epoch = Arc::clone(&self.metadata.epoch);
        let entry = encode_entry(response);
        let (tenant, id, cache_key, started) = (
            key.tenant.clone(),
            key.id.clone(),
            key.cache_key.clone(),
            key.epoch,
        );
        let stored = self
            .blocking(move |store| {
                let epoch = epoch.lock().unwrap_or_else(PoisonError::into_inner);
                if *epoch != started {
                    return Ok(false);
                }
                store.put_cache(&tenant, &id, &cache_key, &entry)?;
                Ok(true)
            })
            .await;
        match stored {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(tenant = %key.tenant, connection = %key.id, "metadata not cached: invalidated during the read");
            }
            // Deleted during the read: nothing to cache.
            Err(ServiceError::NotFound(_)) => {}
            Err(error) => {
                tracing::warn!(tenant = %key.tenant, connection = %key.id, %error, "could not cache metadata");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use connvault_plugin_host::CallError;

    use super::*;

    fn table(name: &str, columns: usize) -> plugin::Table {
        plugin::Table {
            name: name.into(),
            kind: "table".into(),
            estimated_rows: Some(3),
            columns: (1..=columns)
                .map(|position| plugin::Column {
                    name: format!("c{position}"),
                    data_type: "integer".into(),
                    nullable: true,
                    position: position as u32,
                })
                .collect(),
        }
    }

    fn params(request: v1::DiscoverMetadataRequest) -> Params {
        Params::from_request(&request).unwrap()
    }

    #[test]
    fn limits_default_and_are_capped() {
        let p = params(v1::DiscoverMetadataRequest::default());
        assert_eq!(
            (p.max_schemas, p.max_tables, p.max_columns),
            (DEFAULT_SCHEMAS, DEFAULT_TABLES, MAX_COLUMNS)
        );
        let p = params(v1::DiscoverMetadataRequest {
            max_schemas: u32::MAX,
            max_tables: u32::MAX,
            max_columns_per_table: u32::MAX,
            ..Default::default()
        });
        assert_eq!(
            (p.max_schemas, p.max_tables, p.max_columns),
            (MAX_SCHEMAS, MAX_TABLES, MAX_COLUMNS)
        );
        let bad = Params::from_request(&v1::DiscoverMetadataRequest {
            table_filter: "x".repeat(MAX_FILTER_CHARS + 1),
            schema_filter: "a\nb".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(bad, ServiceError::InvalidArgument(v) if v.len() == 2));
    }

    #[test]
    fn cache_keys_differ_for_every_parameter() {
        let base = v1::DiscoverMetadataRequest::default();
        let variants = [
            v1::DiscoverMetadataRequest {
                schema_filter: "a".into(),
                ..base.clone()
            },
            v1::DiscoverMetadataRequest {
                table_filter: "a".into(),
                ..base.clone()
            },
            v1::DiscoverMetadataRequest {
                max_tables: 5,
                ..base.clone()
            },
            v1::DiscoverMetadataRequest {
                max_schemas: 5,
                ..base.clone()
            },
            v1::DiscoverMetadataRequest {
                max_columns_per_table: 5,
                ..base.clone()
            },
            v1::DiscoverMetadataRequest {
                include_columns: true,
                ..base.clone()
            },
        ];
        let mut keys: Vec<String> = variants
            .iter()
            .map(|r| params(r.clone()).cache_key())
            .collect();
        keys.push(params(base.clone()).cache_key());
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
        // `refresh` and `timeout_ms` do not change what is cached.
        let same = v1::DiscoverMetadataRequest {
            refresh: true,
            timeout_ms: 5,
            ..base.clone()
        };
        assert_eq!(params(same).cache_key(), params(base).cache_key());
        // Filters are length-prefixed: ("ab", "") and ("a", "b") differ.
        let one = params(v1::DiscoverMetadataRequest {
            schema_filter: "ab".into(),
            ..Default::default()
        });
        let two = params(v1::DiscoverMetadataRequest {
            schema_filter: "a".into(),
            table_filter: "b".into(),
            ..Default::default()
        });
        assert_ne!(one.cache_key(), two.cache_key());
    }

    #[test]
    fn a_plugin_ignoring_the_limits_is_cut_to_them() {
        let p = params(v1::DiscoverMetadataRequest {
            max_schemas: 2,
            max_tables: 3,
            max_columns_per_table: 2,
            include_columns: true,
            ..Default::default()
        });
        let answer = plugin::DiscoverResponse {
            schemas: vec![
                plugin::Schema {
                    name: "a".into(),
                    tables: vec![table("t1", 1), table("t2", 5)],
                },
                plugin::Schema {
                    name: "b".into(),
                    tables: vec![table("t3", 1), table("t4", 1)],
                },
                plugin::Schema {
                    name: "c".into(),
                    tables: vec![],
                },
            ],
            truncated: false,
        };
        let catalog = p.catalog(answer.clone());
        assert!(catalog.truncated);
        let shape: Vec<(String, Vec<(String, usize)>)> = catalog
            .schemas
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.tables
                        .iter()
                        .map(|t| (t.name.clone(), t.columns.len()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (
                    "a".to_owned(),
                    vec![("t1".to_owned(), 1), ("t2".to_owned(), 2)]
                ),
                ("b".to_owned(), vec![("t3".to_owned(), 1)]),
            ]
        );
        // Within the limits nothing is cut; columns go unless asked for.
        let p = params(v1::DiscoverMetadataRequest::default());
        let catalog = p.catalog(answer);
        assert!(!catalog.truncated);
        assert_eq!(catalog.schemas.len(), 3);
        assert!(
            catalog.schemas[0]
                .tables
                .iter()
                .all(|t| t.columns.is_empty())
        );
    }

    #[test]
    fn entries_expire_and_say_they_came_from_the_cache() {
        let response = v1::DiscoverMetadataResponse {
            schemas: vec![v1::CatalogSchema {
                name: "s".into(),
                tables: vec![],
            }],
            truncated: true,
            fetched_time: Some(timestamp_now()),
            from_cache: false,
        };
        let entry = encode_entry(&response);
        let hit = decode_entry(&entry, Duration::from_secs(60)).unwrap();
        assert!(hit.from_cache);
        assert_eq!(hit.schemas, response.schemas);
        assert!(hit.truncated);
        assert!(decode_entry(&entry, Duration::ZERO).is_none());
        let old = v1::DiscoverMetadataResponse {
            fetched_time: Some(prost_types::Timestamp::from(
                SystemTime::now() - Duration::from_secs(120),
            )),
            ..response
        };
        assert!(decode_entry(&encode_entry(&old), Duration::from_secs(60)).is_none());
        assert!(decode_entry(b"\x07junk", Duration::from_secs(60)).is_none());
        assert!(decode_entry(b"", Duration::from_secs(60)).is_none());
    }

    #[test]
    fn shared_errors_keep_their_status() {
        let original = ServiceError::from(CallError::DeadlineExceeded {
            plugin: "p".into(),
            method: "discover",
            deadline: Duration::from_secs(1),
        });
        let copy = tonic::Status::from(original.clone());
        assert_eq!(copy.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(copy.message(), original.to_string());
        let copy = tonic::Status::from(ServiceError::NotFound("x".into()).clone());
        assert_eq!(copy.code(), tonic::Code::NotFound);
        assert_eq!(
            tonic::Status::from(deadline_exceeded(Duration::from_secs(1))).code(),
            tonic::Code::DeadlineExceeded
        );
    }
}
