//! The sled-backed [`Store`].

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional as _};
use sled::{IVec, Tree};

use crate::durability::Durability;
use crate::keys::{self, MAX_ID_LEN};
use crate::writer::{
    AUDIT_BY_TENANT, AuditBytes, Done, Trees, Write, Writer, audit_entry_key, sweep_prefix,
};
use crate::{
    AuditAppend, AuditRecord, ConnectionRecord, Result, StoreError, StoreOptions, TenantRecord,
};

/// How often a forced tenant delete rescans after racing a concurrent writer.
const DELETE_TENANT_ATTEMPTS: usize = 16;
/// Longest meta key.
const MAX_META_KEY_LEN: usize = 255;

/// Abort a sled transaction with a store error.
fn abort<T>(e: StoreError) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Turns a store error raised inside a transaction closure into an abort.
trait OrAbort<T> {
    fn or_abort(self) -> std::result::Result<T, ConflictableTransactionError<StoreError>>;
}

impl<T> OrAbort<T> for Result<T> {
    fn or_abort(self) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
        self.map_err(ConflictableTransactionError::Abort)
    }
}

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

fn open_error(path: &Path, e: sled::Error) -> StoreError {
    if let sled::Error::Io(io) = &e {
        // sled 0.34 reports a held `flock` as an `Other` error whose message
        // says "could not acquire lock"; the kernel's errno is EWOULDBLOCK.
        if io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().contains("could not acquire lock")
        {
            return StoreError::Locked {
                path: path.to_path_buf(),
            };
        }
    }
    e.into()
}

/// Range bounds covering every key that starts with `prefix` (a tenant
/// prefix, possibly extended), starting after `after` when given.
fn scoped_range(prefix: &[u8], after: Option<&[u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = match after {
        Some(after) => {
            let mut key = prefix.to_vec();
            key.extend_from_slice(after);
            Bound::Excluded(key)
        }
        None => Bound::Included(prefix.to_vec()),
    };
    (start, Bound::Excluded(keys::prefix_end(prefix)))
}

/// Every key starting with `prefix` (which need not end in `0x00`).
fn keys_with_prefix(tree: &Tree, prefix: &[u8]) -> Result<Vec<IVec>> {
    tree.scan_prefix(prefix)
        .keys()
        .map(|k| k.map_err(StoreError::from))
        .collect()
}

fn utf8(bytes: &[u8], what: &str) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("{what} is not UTF-8")))
}

/// Tenants, connections, their unique-name index, a small meta keyspace, an
/// append-only audit log and a per-connection cache, in one sled database.
///
/// Cheap to share: wrap it in an `Arc`. Every method may block on disk I/O.
pub struct Store {
    /// Declared first so it drops (and joins its threads, which hold the
    /// database) before the database does.
    writer: Writer,
    /// Whether writes wait for the disk ([`StoreOptions::durable`]).
    durable: bool,
    path: PathBuf,
    db: sled::Db,
    tenants: Tree,
    connections: Tree,
    names: Tree,
    meta: Tree,
    audit: Tree,
    cache: Tree,
    durability: Arc<Durability>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in directory `path`.
    ///
    /// sled holds an exclusive lock on the directory: if another process has
    /// it open this fails at once with [`StoreError::Locked`].
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path)?;
        let mut config = sled::Config::new().path(&path);
        if let Some(bytes) = options.cache_bytes {
            config = config.cache_capacity(bytes);
        }
        let db = config.open().map_err(|e| open_error(&path, e))?;
        let durability = Arc::new(Durability::new(&path, options.durable)?);
        let trees = Trees {
            tenants: db.open_tree("tenants")?,
            connections: db.open_tree("connections")?,
            names: db.open_tree("names")?,
            audit: db.open_tree("audit")?,
            cache: db.open_tree("cache")?,
        };
        let writer = Writer::start(db.clone(), trees.clone(), Arc::clone(&durability))?;
        Ok(Store {
            writer,
            durable: options.durable,
            tenants: trees.tenants,
            connections: trees.connections,
            names: trees.names,
            meta: db.open_tree("meta")?,
            audit: trees.audit,
            cache: trees.cache,
            db,
            durability,
            path,
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes run so far (each a sled flush plus fsync).
    pub fn flushes(&self) -> u64 {
        self.durability.flushes()
    }

    /// Writes acknowledged as durable so far; `durable_writes() / flushes()`
    /// is the group-commit batch size.
    pub fn durable_writes(&self) -> u64 {
        self.durability.durable_writes()
    }

    /// Transactions the writer has applied so far; each carries every
    /// connection write and audit append that was queued when it started, so
    /// `writes / write_batches()` is the batch size.
    pub fn write_batches(&self) -> u64 {
        self.writer.batches()
    }

    /// Waits until the calling thread's completed writes are durable.
    fn durable(&self) -> Result<()> {
        self.durability.wait(&self.db)
    }

    // ----- tenants -----

    /// Creates a tenant; [`StoreError::AlreadyExists`] if its id is taken.
    pub fn create_tenant(&self, record: &TenantRecord) -> Result<()> {
        keys::tenant_prefix(&record.tenant_id)?;
        keys::check_value(&record.value)?;
        let stored = keys::encode_tenant(0, &record.value);
        self.tenants
            .compare_and_swap(record.tenant_id.as_bytes(), None::<&[u8]>, Some(stored))?
            .map_err(|_| StoreError::AlreadyExists)?;
        self.durable()
    }

    /// Reads a tenant.
    pub fn get_tenant(&self, tenant_id: &str) -> Result<TenantRecord> {
        keys::tenant_prefix(tenant_id)?;
        let stored = self
            .tenants
            .get(tenant_id.as_bytes())?
            .ok_or(StoreError::TenantNotFound)?;
        let (_, value) = keys::decode_tenant(&stored)?;
        Ok(TenantRecord {
            tenant_id: tenant_id.to_owned(),
            value: value.to_vec(),
        })
    }

    /// Replaces a tenant's value if it still equals `expected_old_value`
    /// ([`StoreError::Conflict`] otherwise).
    pub fn update_tenant(&self, record: &TenantRecord, expected_old_value: &[u8]) -> Result<()> {
        keys::tenant_prefix(&record.tenant_id)?;
        keys::check_value(&record.value)?;
        let key = record.tenant_id.as_bytes();
        self.tenants
            .transaction(|tenants| {
                let Some(stored) = tenants.get(key)? else {
                    return abort(StoreError::TenantNotFound);
                };
                let (count, old) = keys::decode_tenant(&stored).or_abort()?;
                if old != expected_old_value {
                    return abort(StoreError::Conflict);
                }
                tenants.insert(key, keys::encode_tenant(count, &record.value))?;
                Ok(())
            })
            .map_err(tx_error)?;
        self.durable()
    }

    /// Tenants in id order, starting after `after`, at most `limit`.
    pub fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Vec<TenantRecord>> {
        let start = match after {
            Some(after) => Bound::Excluded(after.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.tenants
            .range((start, Bound::<Vec<u8>>::Unbounded))
            .take(limit)
            .map(|entry| {
                let (key, stored) = entry?;
                let (_, value) = keys::decode_tenant(&stored)?;
                Ok(TenantRecord {
                    tenant_id: utf8(&key, "tenant id")?,
                    value: value.to_vec(),
                })
            })
            .collect()
    }

    /// Number of connections of a tenant (a counter kept with the tenant: O(1)).
    pub fn tenant_connection_count(&self, tenant_id: &str) -> Result<u64> {
        keys::tenant_prefix(tenant_id)?;
        let stored = self
            .tenants
            .get(tenant_id.as_bytes())?
            .ok_or(StoreError::TenantNotFound)?;
        Ok(keys::decode_tenant(&stored)?.0)
    }

    /// Deletes a tenant. Without `force` it must have no connections
    /// ([`StoreError::TenantNotEmpty`]); with `force` the tenant, all its
    /// connections, their name index entries and cache entries go in one
    /// transaction. Returns the number of connections deleted.
    pub fn delete_tenant(&self, tenant_id: &str, force: bool) -> Result<u64> {
        let prefix = keys::tenant_prefix(tenant_id)?;
        let tenant_key = tenant_id.as_bytes();
        if !force {
            self.tenants
                .transaction(|tenants| {
                    let Some(stored) = tenants.get(tenant_key)? else {
                        return abort(StoreError::TenantNotFound);
                    };
                    let (count, _) = keys::decode_tenant(&stored).or_abort()?;
                    if count > 0 {
                        return abort(StoreError::TenantNotEmpty { connections: count });
                    }
                    tenants.remove(tenant_key)?;
                    Ok(())
                })
                .map_err(tx_error)?;
            self.durable()?;
            return Ok(0);
        }
        let mut attempt = 0;
        let deleted = loop {
            attempt += 1;
            // sled transactions cannot scan, so collect the keys first; the
            // transaction re-reads the tenant's connection counter and each
            // record, and a mismatch (a concurrent create, delete or rename)
            // aborts with Conflict and we rescan.
            let connection_keys = keys_with_prefix(&self.connections, &prefix)?;
            let name_keys = keys_with_prefix(&self.names, &prefix)?;
            let cache_keys = keys_with_prefix(&self.cache, &prefix)?;
            let result = (&self.tenants, &self.connections, &self.names, &self.cache)
                .transaction(|(tenants, connections, names, cache)| {
                    let Some(stored) = tenants.get(tenant_key)? else {
                        return abort(StoreError::TenantNotFound);
                    };
                    let (count, _) = keys::decode_tenant(&stored).or_abort()?;
                    if count != connection_keys.len() as u64 {
                        return abort(StoreError::Conflict);
                    }
                    for key in &connection_keys {
                        let Some(record) = connections.remove(key)? else {
                            return abort(StoreError::Conflict);
                        };
                        let (name, _) = keys::decode_connection(&record).or_abort()?;
                        names.remove(keys::name_key(tenant_id, name).or_abort()?)?;
                    }
                    for key in &name_keys {
                        names.remove(key)?;
                    }
                    for key in &cache_keys {
                        cache.remove(key)?;
                    }
                    tenants.remove(tenant_key)?;
                    Ok(count)
                })
                .map_err(tx_error);
            match result {
                Err(StoreError::Conflict) if attempt < DELETE_TENANT_ATTEMPTS => continue,
                other => break other?,
            }
        };
        // A cache entry written between the scan and the commit is an orphan
        // nothing can reach; sweep it (cache writes need the connection, so
        // no new one can appear now).
        self.sweep_cache(&prefix)?;
        self.durable()?;
        Ok(deleted)
    }

    // ----- connections -----

    fn check_connection(record: &ConnectionRecord) -> Result<()> {
        keys::tenant_prefix(&record.tenant_id)?;
        keys::check_len("connection id", record.id.as_bytes(), MAX_ID_LEN)?;
        keys::name_key(&record.tenant_id, &record.display_name_key)?;
        keys::check_value(&record.value)
    }

    fn create_write(record: &ConnectionRecord, audit: Option<AuditAppend<'_>>) -> Result<Write> {
        Self::check_connection(record)?;
        Ok(Write::CreateConnection {
            audit: audit.map(Self::audit_bytes).transpose()?,
            tenant_key: record.tenant_id.as_bytes().to_vec(),
            key: keys::connection_key(&record.tenant_id, &record.id)?,
            name_key: keys::name_key(&record.tenant_id, &record.display_name_key)?,
            id: record.id.as_bytes().to_vec(),
            stored: keys::encode_connection(&record.display_name_key, &record.value)?,
        })
    }

    /// Creates a connection and its unique-name index entry in one
    /// transaction. [`StoreError::TenantNotFound`] if the tenant does not
    /// exist; [`StoreError::AlreadyExists`] if the id or the display name is
    /// taken in this tenant.
    pub fn create_connection(&self, record: &ConnectionRecord) -> Result<()> {
        let write = Self::create_write(record, None)?;
        self.write_blocking(write, self.durable).map(drop)
    }

    /// [`Store::create_connection`] without blocking a thread; appends
    /// `audit` in the same transaction if the create succeeds and returns
    /// its sequence number.
    pub async fn create_connection_async(
        &self,
        record: &ConnectionRecord,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Option<u64>> {
        let write = Self::create_write(record, audit)?;
        Ok(self.write(write, self.durable).await?.seq)
    }

    /// Reads a connection; [`StoreError::NotFound`] if absent.
    pub fn get_connection(&self, tenant_id: &str, id: &str) -> Result<ConnectionRecord> {
        let key = keys::connection_key(tenant_id, id)?;
        let stored = self.connections.get(key)?.ok_or(StoreError::NotFound)?;
        let (name, value) = keys::decode_connection(&stored)?;
        Ok(ConnectionRecord {
            tenant_id: tenant_id.to_owned(),
            id: id.to_owned(),
            display_name_key: name.to_owned(),
            value: value.to_vec(),
        })
    }

    fn update_write(
        record: &ConnectionRecord,
        expected_old_value: &[u8],
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Write> {
        Self::check_connection(record)?;
        Ok(Write::UpdateConnection {
            audit: audit.map(Self::audit_bytes).transpose()?,
            tenant_id: record.tenant_id.clone(),
            key: keys::connection_key(&record.tenant_id, &record.id)?,
            id: record.id.as_bytes().to_vec(),
            display_name_key: record.display_name_key.clone(),
            new_name_key: keys::name_key(&record.tenant_id, &record.display_name_key)?,
            stored: keys::encode_connection(&record.display_name_key, &record.value)?,
            expected: expected_old_value.to_vec(),
        })
    }

    /// Compare-and-swap update: replaces the connection if its stored value
    /// still equals `expected_old_value` ([`StoreError::Conflict`] otherwise),
    /// moving its name index entry if the display name changed
    /// ([`StoreError::AlreadyExists`] if the new name is taken), all in one
    /// transaction.
    pub fn update_connection(
        &self,
        record: &ConnectionRecord,
        expected_old_value: &[u8],
    ) -> Result<()> {
        let write = Self::update_write(record, expected_old_value, None)?;
        self.write_blocking(write, self.durable).map(drop)
    }

    /// [`Store::update_connection`] without blocking a thread; appends
    /// `audit` in the same transaction if the update succeeds and returns
    /// its sequence number.
    pub async fn update_connection_async(
        &self,
        record: &ConnectionRecord,
        expected_old_value: &[u8],
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Option<u64>> {
        let write = Self::update_write(record, expected_old_value, audit)?;
        Ok(self.write(write, self.durable).await?.seq)
    }

    /// Deletes a connection and its name index entry; with `expected`, only
    /// if the stored value still equals it ([`StoreError::Conflict`]).
    pub fn delete_connection(
        &self,
        tenant_id: &str,
        id: &str,
        expected: Option<&[u8]>,
    ) -> Result<()> {
        let write = Self::delete_write(tenant_id, &[id], expected, None)?;
        self.write_blocking(write, self.durable).map(drop)
    }

    /// [`Store::delete_connection`] without blocking a thread; appends
    /// `audit` in the same transaction if the delete succeeds and returns
    /// its sequence number.
    pub async fn delete_connection_async(
        &self,
        tenant_id: &str,
        id: &str,
        expected: Option<&[u8]>,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Option<u64>> {
        let write = Self::delete_write(tenant_id, &[id], expected, audit)?;
        Ok(self.write(write, self.durable).await?.seq)
    }

    /// Deletes several connections of one tenant, all or nothing: if any is
    /// missing ([`StoreError::NotFound`]) none is deleted. Duplicate ids count
    /// once. Returns the number deleted.
    pub fn batch_delete<S: AsRef<str>>(&self, tenant_id: &str, ids: &[S]) -> Result<usize> {
        let ids: BTreeSet<&str> = ids.iter().map(AsRef::as_ref).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let write = Self::delete_write(tenant_id, &ids, None, None)?;
        Ok(self.write_blocking(write, self.durable)?.count)
    }

    fn delete_write(
        tenant_id: &str,
        ids: &[&str],
        expected: Option<&[u8]>,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Write> {
        keys::tenant_prefix(tenant_id)?;
        let keys = ids
            .iter()
            .map(|id| Ok((keys::connection_key(tenant_id, id)?, (*id).to_owned())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Write::DeleteConnections {
            audit: audit.map(Self::audit_bytes).transpose()?,
            tenant_id: tenant_id.to_owned(),
            keys,
            expected: expected.map(<[u8]>::to_vec),
        })
    }

    /// Queues a write and blocks until it is applied (and durable with `durable`).
    fn write_blocking(&self, write: Write, durable: bool) -> Result<Done> {
        self.writer.write_blocking(write, durable)
    }

    /// Queues a write and waits for it without blocking a thread.
    async fn write(&self, write: Write, durable: bool) -> Result<Done> {
        self.writer.write(write, durable).await
    }

    /// One page of a tenant's connections in id order (UUID v7: creation
    /// order), starting after `after_id`. A range scan from the cursor: the
    /// cost is the page, not the tenant's size.
    pub fn list_connections(
        &self,
        tenant_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConnectionRecord>> {
        let prefix = keys::tenant_prefix(tenant_id)?;
        self.connections
            .range(scoped_range(&prefix, after_id.map(str::as_bytes)))
            .take(limit)
            .map(|entry| {
                let (key, stored) = entry?;
                let (name, value) = keys::decode_connection(&stored)?;
                Ok(ConnectionRecord {
                    tenant_id: tenant_id.to_owned(),
                    id: utf8(&key[prefix.len()..], "connection id")?,
                    display_name_key: name.to_owned(),
                    value: value.to_vec(),
                })
            })
            .collect()
    }

    /// The id of the connection holding a display name in a tenant.
    pub fn find_connection_by_name(
        &self,
        tenant_id: &str,
        display_name_key: &str,
    ) -> Result<Option<String>> {
        let key = keys::name_key(tenant_id, display_name_key)?;
        self.names
            .get(key)?
            .map(|id| utf8(&id, "connection id"))
            .transpose()
    }

    // ----- meta -----

    /// Reads a meta value (e.g. the keyring's wrapped keys).
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        keys::check_len("meta key", key.as_bytes(), MAX_META_KEY_LEN)?;
        Ok(self.meta.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Writes a meta value.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        keys::check_len("meta key", key.as_bytes(), MAX_META_KEY_LEN)?;
        keys::check_value(value)?;
        self.meta.insert(key.as_bytes(), value)?;
        self.durable()
    }

    /// Compare-and-swap of a meta value: `expected == None` means "absent",
    /// `new == None` deletes. [`StoreError::Conflict`] if the current value
    /// differs from `expected`.
    pub fn cas_meta(&self, key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<()> {
        keys::check_len("meta key", key.as_bytes(), MAX_META_KEY_LEN)?;
        if let Some(new) = new {
            keys::check_value(new)?;
        }
        self.meta
            .compare_and_swap(key.as_bytes(), expected, new)?
            .map_err(|_| StoreError::Conflict)?;
        self.durable()
    }

    // ----- audit -----

    fn audit_bytes(audit: AuditAppend<'_>) -> Result<AuditBytes> {
        let tenant_prefix = keys::tenant_prefix(audit.tenant_id)?;
        keys::check_value(audit.value)?;
        Ok(AuditBytes {
            tenant_prefix,
            tenant_id: audit.tenant_id.to_owned(),
            value: audit.value.to_vec(),
        })
    }

    fn audit_write(tenant_id: &str, value: &[u8]) -> Result<Write> {
        let audit = AuditAppend { tenant_id, value };
        Ok(Write::AppendAudit(Self::audit_bytes(audit)?))
    }

    fn sequence(done: Done) -> Result<u64> {
        done.seq
            .ok_or_else(|| StoreError::Corrupt("an audit write returned no sequence".into()))
    }

    /// Appends an audit entry durably; returns its sequence number (from 1,
    /// increasing in append order, not necessarily contiguous).
    pub fn append_audit(&self, tenant_id: &str, value: &[u8]) -> Result<u64> {
        Self::sequence(self.write_blocking(Self::audit_write(tenant_id, value)?, self.durable)?)
    }

    /// Appends an audit entry without waiting for durability. sled keeps one
    /// ordered log for all trees, so the entry is durable once any later
    /// durable write is acknowledged: an event appended this way before a
    /// mutation is on disk whenever the mutation is.
    pub fn append_audit_buffered(&self, tenant_id: &str, value: &[u8]) -> Result<u64> {
        Self::sequence(self.write_blocking(Self::audit_write(tenant_id, value)?, false)?)
    }

    /// Appends an audit entry without blocking a thread: durably with
    /// `durable`, otherwise as [`Store::append_audit_buffered`] does.
    pub async fn append_audit_async(
        &self,
        tenant_id: &str,
        value: &[u8],
        durable: bool,
    ) -> Result<u64> {
        let write = Self::audit_write(tenant_id, value)?;
        Self::sequence(self.write(write, durable && self.durable).await?)
    }

    /// Deletes the audit entries with these sequence numbers (retention: the
    /// oldest go first). Entries already gone are skipped; returns how many
    /// were deleted. Not flushed on its own: the next durable write carries it.
    pub async fn delete_audit_async(&self, seqs: Vec<u64>) -> Result<usize> {
        if seqs.is_empty() {
            return Ok(0);
        }
        Ok(self.write(Write::DeleteAudit(seqs), false).await?.count)
    }

    /// [`Store::delete_audit_async`], blocking the calling thread.
    pub fn delete_audit(&self, seqs: Vec<u64>) -> Result<usize> {
        if seqs.is_empty() {
            return Ok(0);
        }
        Ok(self.write_blocking(Write::DeleteAudit(seqs), false)?.count)
    }

    /// Audit entries with `seq > after_seq` in order, at most `limit`, of one
    /// tenant or (with `None`) of all.
    pub fn list_audit(
        &self,
        tenant_id: Option<&str>,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        let start = Bound::Excluded(audit_entry_key(after_seq));
        match tenant_id {
            None => self
                .audit
                .range((start, Bound::Excluded(vec![AUDIT_BY_TENANT])))
                .take(limit)
                .map(|entry| {
                    let (key, value) = entry?;
                    decode_audit(&key, &value)
                })
                .collect(),
            Some(tenant_id) => {
                let mut prefix = vec![AUDIT_BY_TENANT];
                prefix.extend_from_slice(&keys::tenant_prefix(tenant_id)?);
                let mut start = prefix.clone();
                start.extend_from_slice(&after_seq.to_be_bytes());
                let mut end = prefix.clone();
                end.extend_from_slice(&[0xff; 9]);
                self.audit
                    .range((Bound::Excluded(start), Bound::Excluded(end)))
                    .keys()
                    .take(limit)
                    .map(|key| {
                        let key = key?;
                        let seq_bytes = key
                            .get(prefix.len()..)
                            .and_then(|b| <[u8; 8]>::try_from(b).ok())
                            .ok_or_else(|| StoreError::Corrupt("audit index key".into()))?;
                        let entry_key = audit_entry_key(u64::from_be_bytes(seq_bytes));
                        let value = self.audit.get(&entry_key)?.ok_or_else(|| {
                            StoreError::Corrupt("audit index points nowhere".into())
                        })?;
                        decode_audit(&entry_key, &value)
                    })
                    .collect()
            }
        }
    }

    // ----- cache -----

    /// Stores a cache entry of a connection (e.g. discovered metadata). The
    /// connection must exist ([`StoreError::NotFound`]); its entries go when it
    /// or its tenant is deleted.
    pub fn put_cache(
        &self,
        tenant_id: &str,
        connection_id: &str,
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        let connection_key = keys::connection_key(tenant_id, connection_id)?;
        let mut cache_key = keys::cache_prefix(tenant_id, connection_id)?;
        cache_key.extend_from_slice(key.as_bytes());
        keys::check_value(value)?;
        (&self.connections, &self.cache)
            .transaction(|(connections, cache)| {
                if connections.get(&connection_key)?.is_none() {
                    return abort(StoreError::NotFound);
                }
                cache.insert(cache_key.as_slice(), value)?;
                Ok(())
            })
            .map_err(tx_error)?;
        self.durable()
    }

    /// Reads a cache entry.
    pub fn get_cache(
        &self,
        tenant_id: &str,
        connection_id: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        let mut cache_key = keys::cache_prefix(tenant_id, connection_id)?;
        cache_key.extend_from_slice(key.as_bytes());
        Ok(self.cache.get(cache_key)?.map(|v| v.to_vec()))
    }

    /// Removes the cache entries of one connection, or of the whole tenant
    /// with `None`. Returns how many were removed.
    pub fn clear_cache(&self, tenant_id: &str, connection_id: Option<&str>) -> Result<usize> {
        let prefix = match connection_id {
            Some(id) => keys::cache_prefix(tenant_id, id)?,
            None => keys::tenant_prefix(tenant_id)?,
        };
        let removed = self.sweep_cache(&prefix)?;
        self.durable()?;
        Ok(removed)
    }

    fn sweep_cache(&self, prefix: &[u8]) -> Result<usize> {
        sweep_prefix(&self.cache, prefix)
    }
}

fn decode_audit(key: &[u8], value: &[u8]) -> Result<AuditRecord> {
    let corrupt = || StoreError::Corrupt("audit entry".into());
    let seq = key
        .get(1..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .ok_or_else(corrupt)?;
    let (tenant, value) = split_audit_entry(value)?;
    Ok(AuditRecord {
        seq: u64::from_be_bytes(seq),
        tenant_id: utf8(tenant, "audit tenant id")?,
        value: value.to_vec(),
    })
}

/// An audit entry's stored value: one length byte, the tenant id, the event.
fn split_audit_entry(value: &[u8]) -> Result<(&[u8], &[u8])> {
    let corrupt = || StoreError::Corrupt("audit entry".into());
    let (&len, rest) = value.split_first().ok_or_else(corrupt)?;
    let len = usize::from(len);
    if rest.len() < len {
        return Err(corrupt());
    }
    Ok(rest.split_at(len))
}

/// The tenant an audit entry is filed under (to find its index key).
pub(crate) fn audit_entry_tenant(value: &[u8]) -> Result<String> {
    let (tenant, _) = split_audit_entry(value)?;
    utf8(tenant, "audit tenant id")
}
