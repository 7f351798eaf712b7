//! How the change log lies in its sled tree: `seq(u64 BE)` ->
//! `kind(u8) || revision(u64 BE) || len(tenant)(u8) || tenant || id`.

use super::layout;
use crate::{Change, ChangeKind, Result, StoreError};

fn kind_byte(kind: ChangeKind) -> u8 {
    match kind {
        ChangeKind::Created => 1,
        ChangeKind::Updated => 2,
        ChangeKind::Deleted => 3,
    }
}

/// The stored value of a change.
pub(crate) fn encode(
    kind: ChangeKind,
    tenant_id: &str,
    id: &str,
    revision: u64,
) -> Result<Vec<u8>> {
    let tenant_len = u8::try_from(tenant_id.len())
        .map_err(|_| StoreError::InvalidArgument("tenant id too long".into()))?;
    let mut value = Vec::with_capacity(10 + tenant_id.len() + id.len());
    value.push(kind_byte(kind));
    value.extend_from_slice(&revision.to_be_bytes());
    value.push(tenant_len);
    value.extend_from_slice(tenant_id.as_bytes());
    value.extend_from_slice(id.as_bytes());
    Ok(value)
}

/// Decodes a change from its key and value.
pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Change> {
    let corrupt = || StoreError::Corrupt("change log entry".into());
    let seq = <[u8; 8]>::try_from(key).map_err(|_| corrupt())?;
    let (&kind, rest) = value.split_first().ok_or_else(corrupt)?;
    let kind = match kind {
        1 => ChangeKind::Created,
        2 => ChangeKind::Updated,
        3 => ChangeKind::Deleted,
        _ => return Err(corrupt()),
    };
    let (revision, rest) = rest.split_at_checked(8).ok_or_else(corrupt)?;
    let revision = <[u8; 8]>::try_from(revision).map_err(|_| corrupt())?;
    let (&tenant_len, rest) = rest.split_first().ok_or_else(corrupt)?;
    let (tenant, id) = rest
        .split_at_checked(usize::from(tenant_len))
        .ok_or_else(corrupt)?;
    Ok(Change {
        seq: u64::from_be_bytes(seq),
        kind,
        tenant_id: layout::utf8(tenant, "change tenant id")?,
        id: layout::utf8(id, "change connection id")?,
        revision: u64::from_be_bytes(revision),
    })
}

/// The tenant a stored change is about (for per-tenant listing).
pub(crate) fn tenant_of(value: &[u8]) -> Option<&[u8]> {
    let rest = value.get(9..)?;
    let (&len, rest) = rest.split_first()?;
    rest.get(..usize::from(len))
}
