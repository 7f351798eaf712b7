//! Upgrading connection entries written before the store kept revisions
//! and index fields. The store cannot read the caller's encoded records, so
//! the caller converts each one; the upgrade runs once, at start, before
//! anything is served, and a crash in the middle is harmless (each entry is
//! swapped on its own, and the next start finishes the rest).

use super::{SledStore, layout};
use crate::{ConnectionIndex, Result};

/// Meta key set once every connection entry has the current layout.
const LAYOUT_KEY: &str = "sled.layout";
/// The current layout of connection entries.
const LAYOUT_VERSION: &[u8] = b"2";

/// A connection entry in the legacy layout, as the upgrade hands it to the
/// caller's conversion.
#[derive(Debug, Clone, Copy)]
pub struct LegacyConnection<'a> {
    /// The tenant.
    pub tenant_id: &'a str,
    /// The connection id.
    pub id: &'a str,
    /// The display name key.
    pub display_name_key: &'a str,
    /// The caller's encoded record, as an older version wrote it.
    pub value: &'a [u8],
}

impl SledStore {
    /// Rewrites every connection entry still in the legacy layout with the
    /// index fields and value `convert` returns (at revision 1), then marks
    /// the store upgraded so later starts skip the scan. Returns how many
    /// entries were rewritten.
    pub fn upgrade_legacy<F>(&self, mut convert: F) -> Result<usize>
    where
        F: FnMut(LegacyConnection<'_>) -> Result<(ConnectionIndex, Vec<u8>)>,
    {
        if self.get_meta_now(LAYOUT_KEY)?.as_deref() == Some(LAYOUT_VERSION) {
            return Ok(0);
        }
        let mut upgraded = 0;
        for entry in self.inner.connections.iter() {
            let (key, stored) = entry?;
            let old = layout::decode_connection(&stored)?;
            if !old.is_legacy() {
                continue;
            }
            let (tenant_id, id) = layout::split_connection_key(&key)?;
            let (index, value) = convert(LegacyConnection {
                tenant_id: &tenant_id,
                id: &id,
                display_name_key: old.name,
                value: old.value,
            })?;
            let new = layout::encode_connection(old.name, 1, &index, &value)?;
            // Nothing else writes during the upgrade; the swap still refuses
            // to overwrite an entry that changed under it.
            let _held = self.writing();
            self.inner
                .connections
                .compare_and_swap(&key, Some(&stored), Some(new))?
                .map_err(|_| crate::StoreError::Conflict)?;
            upgraded += 1;
        }
        self.put_meta_blocking(LAYOUT_KEY, LAYOUT_VERSION)?;
        Ok(upgraded)
    }
}
