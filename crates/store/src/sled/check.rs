//! The offline consistency check (`connvault store verify`): reads every
//! entry of every tree, decodes it, and checks each index against the
//! records it indexes — the unique-name index, the tenants' connection
//! counters, the audit log's tenant index, the change log — and the change
//! sequence against the progress record.

use std::collections::{BTreeMap, HashMap};

use sled::Tree;

use super::{SledStore, audit_entry, change_entry, layout, progress};
use crate::{AuditRecord, ChangeKind, ConnectionRecord, Result, TenantRecord};

/// One record the check read, handed to the caller's own check (the store
/// cannot decode the values it keeps).
#[derive(Debug)]
#[non_exhaustive]
pub enum Visit<'a> {
    /// A tenant.
    Tenant(&'a TenantRecord),
    /// A connection.
    Connection(&'a ConnectionRecord),
    /// An audit entry.
    Audit(&'a AuditRecord),
}

/// How many entries of each kind the check read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCounts {
    /// Tenants.
    pub tenants: u64,
    /// Connections.
    pub connections: u64,
    /// Unique-name index entries.
    pub names: u64,
    /// Audit entries.
    pub audit_entries: u64,
    /// Change log entries.
    pub changes: u64,
    /// Cached metadata entries.
    pub cache_entries: u64,
}

/// What [`SledStore::check`] found.
#[derive(Debug, Clone, Default)]
pub struct StoreCheck {
    /// Entries read.
    pub counts: CheckCounts,
    /// Every inconsistency, one line each.
    pub problems: Vec<String>,
}

/// The last change the log holds for one connection.
struct LastChange {
    kind: ChangeKind,
    revision: u64,
    seq: u64,
}

/// Walks one tree; an entry sled cannot read is a problem, and ends the walk
/// (sled's iterator cannot step past it).
fn entries(tree: &Tree, what: &str, problems: &mut Vec<String>) -> Vec<(sled::IVec, sled::IVec)> {
    let mut out = Vec::new();
    for entry in tree.iter() {
        match entry {
            Ok(entry) => out.push(entry),
            Err(error) => {
                problems.push(format!(
                    "{what}: the store cannot read past entry {}: {error}",
                    out.len()
                ));
                break;
            }
        }
    }
    out
}

/// `(tenant, rest)` of a tenant-scoped key.
fn split_scoped(key: &[u8]) -> Option<(String, &[u8])> {
    let (&len, rest) = key.split_first()?;
    let (tenant, rest) = rest.split_at_checked(usize::from(len))?;
    let rest = rest.strip_prefix(&[0x00])?;
    Some((String::from_utf8(tenant.to_vec()).ok()?, rest))
}

impl SledStore {
    /// Reads every entry and checks every index (for `connvault store
    /// verify`, on a store no server is using). `visit` sees each record
    /// that decodes, for the caller's own checks of the values. Returns the
    /// counts and every problem found; an error only if the check could not run.
    pub fn check(&self, visit: &mut dyn FnMut(Visit<'_>)) -> Result<StoreCheck> {
        let mut check = StoreCheck::default();
        let counters = self.check_tenants(&mut check, visit);
        let connections = self.check_connections(&mut check, &counters, visit);
        self.check_names(&mut check, &connections);
        self.check_changes(&mut check, &connections);
        self.check_audit(&mut check, visit);
        check.counts.cache_entries = self.inner.cache.len() as u64;
        self.check_progress(&mut check)?;
        Ok(check)
    }

    /// Tenants and their connection counters.
    fn check_tenants(
        &self,
        check: &mut StoreCheck,
        visit: &mut dyn FnMut(Visit<'_>),
    ) -> BTreeMap<String, u64> {
        let mut counters = BTreeMap::new();
        for (key, stored) in entries(&self.inner.tenants, "tenants", &mut check.problems) {
            check.counts.tenants += 1;
            let Ok(tenant_id) = layout::utf8(&key, "tenant id") else {
                check
                    .problems
                    .push(format!("tenant key {key:?} is not UTF-8"));
                continue;
            };
            match layout::decode_tenant(&stored) {
                Ok((count, value)) => {
                    counters.insert(tenant_id.clone(), count);
                    visit(Visit::Tenant(&TenantRecord {
                        tenant_id,
                        value: value.to_vec(),
                    }));
                }
                Err(error) => check
                    .problems
                    .push(format!("tenant {tenant_id:?}: {error}")),
            }
        }
        counters
    }

    /// Connections: each decodes, belongs to a tenant, is counted and named;
    /// returns `(tenant, id) -> (name key, revision)`.
    fn check_connections(
        &self,
        check: &mut StoreCheck,
        counters: &BTreeMap<String, u64>,
        visit: &mut dyn FnMut(Visit<'_>),
    ) -> BTreeMap<(String, String), (String, u64)> {
        let mut found = BTreeMap::new();
        let mut per_tenant: BTreeMap<String, u64> = BTreeMap::new();
        for (key, stored) in entries(&self.inner.connections, "connections", &mut check.problems) {
            check.counts.connections += 1;
            let Ok((tenant_id, id)) = layout::split_connection_key(&key) else {
                check
                    .problems
                    .push(format!("connection key {key:?} is malformed"));
                continue;
            };
            let what = format!("connection {tenant_id}/{id}");
            *per_tenant.entry(tenant_id.clone()).or_default() += 1;
            if !counters.contains_key(&tenant_id) {
                check
                    .problems
                    .push(format!("{what}: its tenant does not exist"));
            }
            let entry = match layout::decode_connection(&stored) {
                Ok(entry) => entry,
                Err(error) => {
                    check.problems.push(format!("{what}: {error}"));
                    continue;
                }
            };
            let name_ok = layout::name_key(&tenant_id, entry.name)
                .ok()
                .and_then(|name_key| self.inner.names.get(name_key).ok().flatten())
                .is_some_and(|owner| owner.as_ref() == id.as_bytes());
            if !name_ok {
                check.problems.push(format!(
                    "{what}: the name index does not map {:?} to it",
                    entry.name
                ));
            }
            let record = entry.into_record(&tenant_id, id.clone());
            found.insert(
                (tenant_id, id),
                (record.display_name_key.clone(), record.revision),
            );
            visit(Visit::Connection(&record));
        }
        for (tenant_id, &counter) in counters {
            let actual = per_tenant.get(tenant_id).copied().unwrap_or(0);
            if actual != counter {
                check.problems.push(format!(
                    "tenant {tenant_id:?}: its counter says {counter} connection(s), the store holds {actual}"
                ));
            }
        }
        found
    }

    /// Every name index entry points to a connection with that name.
    fn check_names(
        &self,
        check: &mut StoreCheck,
        connections: &BTreeMap<(String, String), (String, u64)>,
    ) {
        for (key, owner) in entries(&self.inner.names, "name index", &mut check.problems) {
            check.counts.names += 1;
            let Some((tenant_id, name)) = split_scoped(&key) else {
                check
                    .problems
                    .push(format!("name index key {key:?} is malformed"));
                continue;
            };
            let name = String::from_utf8_lossy(name);
            let id = String::from_utf8_lossy(&owner).into_owned();
            match connections.get(&(tenant_id.clone(), id.clone())) {
                Some((stored_name, _)) if *stored_name == name => {}
                Some((stored_name, _)) => check.problems.push(format!(
                    "name index: {name:?} of tenant {tenant_id:?} points to {id}, which is named {stored_name:?}"
                )),
                None => check.problems.push(format!(
                    "name index: {name:?} of tenant {tenant_id:?} points to {id}, which does not exist"
                )),
            }
        }
    }

    /// The change log decodes and agrees with the connections: each one's
    /// last change is its current revision, and none said alive is missing.
    fn check_changes(
        &self,
        check: &mut StoreCheck,
        connections: &BTreeMap<(String, String), (String, u64)>,
    ) {
        let mut last: HashMap<(String, String), LastChange> = HashMap::new();
        for (key, value) in entries(&self.inner.changes, "change log", &mut check.problems) {
            check.counts.changes += 1;
            match change_entry::decode(&key, &value) {
                Ok(change) => {
                    last.insert(
                        (change.tenant_id, change.id),
                        LastChange {
                            kind: change.kind,
                            revision: change.revision,
                            seq: change.seq,
                        },
                    );
                }
                Err(error) => check
                    .problems
                    .push(format!("change log entry {key:?}: {error}")),
            }
        }
        for ((tenant_id, id), change) in &last {
            let present = connections.get(&(tenant_id.clone(), id.clone()));
            match (change.kind, present) {
                (ChangeKind::Deleted, Some(_)) => check.problems.push(format!(
                    "connection {tenant_id}/{id}: the change log deleted it (change {}), the store still holds it",
                    change.seq
                )),
                (ChangeKind::Deleted, None) => {}
                (_, None) => check.problems.push(format!(
                    "connection {tenant_id}/{id} is missing: the change log has it at revision {} (change {})",
                    change.revision, change.seq
                )),
                (_, Some((_, revision))) if *revision != change.revision => {
                    check.problems.push(format!(
                        "connection {tenant_id}/{id} is at revision {revision}, the change log at {} (change {})",
                        change.revision, change.seq
                    ))
                }
                _ => {}
            }
        }
        // Entries upgraded from the legacy layout (revision 1) predate the
        // change log; a later revision always wrote a change.
        for ((tenant_id, id), (_, revision)) in connections {
            if *revision > 1 && !last.contains_key(&(tenant_id.clone(), id.clone())) {
                check.problems.push(format!(
                    "connection {tenant_id}/{id} is at revision {revision} but the change log never mentions it"
                ));
            }
        }
    }

    /// Audit entries decode and the tenant index matches them both ways.
    fn check_audit(&self, check: &mut StoreCheck, visit: &mut dyn FnMut(Visit<'_>)) {
        let mut by_seq: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut indexed: Vec<(Vec<u8>, u64)> = Vec::new();
        for (key, value) in entries(&self.inner.audit, "audit log", &mut check.problems) {
            match key.first() {
                Some(&audit_entry::AUDIT_ENTRY) => {
                    check.counts.audit_entries += 1;
                    match audit_entry::decode(&key, &value) {
                        Ok(record) => {
                            let prefix =
                                layout::tenant_prefix(&record.tenant_id).unwrap_or_default();
                            by_seq.insert(record.seq, prefix);
                            visit(Visit::Audit(&record));
                        }
                        Err(error) => check.problems.push(format!("audit entry {key:?}: {error}")),
                    }
                }
                Some(&audit_entry::AUDIT_BY_TENANT) if key.len() > 9 => {
                    let (prefix, seq) = key[1..].split_at(key.len() - 9);
                    let seq = u64::from_be_bytes(<[u8; 8]>::try_from(seq).unwrap_or_default());
                    indexed.push((prefix.to_vec(), seq));
                }
                _ => check
                    .problems
                    .push(format!("audit log key {key:?} is malformed")),
            }
        }
        let mut has_index: BTreeMap<u64, bool> = by_seq.keys().map(|&seq| (seq, false)).collect();
        for (prefix, seq) in indexed {
            match by_seq.get(&seq) {
                Some(tenant_prefix) if *tenant_prefix == prefix => {
                    has_index.insert(seq, true);
                }
                _ => check.problems.push(format!(
                    "audit tenant index: entry {seq} is indexed under a tenant it does not belong to, or is missing"
                )),
            }
        }
        for (seq, indexed) in has_index {
            if !indexed {
                check.problems.push(format!(
                    "audit entry {seq} is missing from its tenant's index"
                ));
            }
        }
    }

    /// The change sequence against the progress record.
    fn check_progress(&self, check: &mut StoreCheck) -> Result<()> {
        if let super::Recovery::Lost(lost) = &self.inner.recovery {
            check.problems.push(lost.to_string());
        }
        let (staged, last_change) = progress::recovered(&self.inner.meta, &self.inner.changes)?;
        if let Some(staged) = staged
            && staged.last_change_seq > last_change
        {
            check.problems.push(format!(
                "the change log ends at {last_change}, but a commit covered change {}",
                staged.last_change_seq
            ));
        }
        Ok(())
    }
}
