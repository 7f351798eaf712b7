//! How the audit log lies in its sled tree.
//!
//! `0x00 || seq(u64 BE)` holds an entry: one length byte, the tenant id, the
//! encoded event. `0x01 || tenant prefix || seq(u64 BE)` (empty value)
//! indexes entries by tenant, so a tenant's listing is a range scan.

use super::layout;
use crate::{AuditRecord, Result, StoreError};

/// First byte of an entry key.
pub(crate) const AUDIT_ENTRY: u8 = 0x00;
/// First byte of a tenant index key.
pub(crate) const AUDIT_BY_TENANT: u8 = 0x01;

/// An audit entry to append, its keys already checked.
pub(crate) struct AuditBytes {
    pub(crate) tenant_prefix: Vec<u8>,
    pub(crate) tenant_id: String,
    pub(crate) value: Vec<u8>,
}

impl AuditBytes {
    /// Checks and copies an entry to append.
    pub(crate) fn new(tenant_id: &str, value: &[u8]) -> Result<Self> {
        let tenant_prefix = layout::tenant_prefix(tenant_id)?;
        layout::check_value(value)?;
        Ok(AuditBytes {
            tenant_prefix,
            tenant_id: tenant_id.to_owned(),
            value: value.to_vec(),
        })
    }

    /// The entry's stored value.
    pub(crate) fn entry(&self) -> Vec<u8> {
        let mut entry = Vec::with_capacity(1 + self.tenant_id.len() + self.value.len());
        // The prefix starts with the tenant id's length byte.
        entry.push(self.tenant_prefix[0]);
        entry.extend_from_slice(self.tenant_id.as_bytes());
        entry.extend_from_slice(&self.value);
        entry
    }

    /// The tenant index key of entry `seq`.
    pub(crate) fn index_key(&self, seq: u64) -> Vec<u8> {
        tenant_index_key(&self.tenant_prefix, seq)
    }
}

/// The key of audit entry `seq`.
pub(crate) fn entry_key(seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(AUDIT_ENTRY);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `0x01 || tenant prefix || seq`.
pub(crate) fn tenant_index_key(tenant_prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut index = Vec::with_capacity(1 + tenant_prefix.len() + 8);
    index.push(AUDIT_BY_TENANT);
    index.extend_from_slice(tenant_prefix);
    index.extend_from_slice(&seq.to_be_bytes());
    index
}

/// Decodes an entry from its key and value.
pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<AuditRecord> {
    let corrupt = || StoreError::Corrupt("audit entry".into());
    let seq = key
        .get(1..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .ok_or_else(corrupt)?;
    let (tenant, value) = split(value)?;
    Ok(AuditRecord {
        seq: u64::from_be_bytes(seq),
        tenant_id: layout::utf8(tenant, "audit tenant id")?,
        value: value.to_vec(),
    })
}

/// An entry's stored value: one length byte, the tenant id, the event.
fn split(value: &[u8]) -> Result<(&[u8], &[u8])> {
    let corrupt = || StoreError::Corrupt("audit entry".into());
    let (&len, rest) = value.split_first().ok_or_else(corrupt)?;
    let len = usize::from(len);
    if rest.len() < len {
        return Err(corrupt());
    }
    Ok(rest.split_at(len))
}

/// The tenant an entry is filed under (to find its index key).
pub(crate) fn tenant_of(value: &[u8]) -> Result<String> {
    let (tenant, _) = split(value)?;
    layout::utf8(tenant, "audit tenant id")
}
