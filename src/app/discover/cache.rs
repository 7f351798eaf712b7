//! The metadata cache: entries in the store's tenant-scoped cache tree,
//! keyed by connection and parameters, and their invalidation.

use std::time::{Duration, SystemTime};

use prost::Message;

use super::flight::FlightKey;
use crate::app::App;
use crate::error::ServiceError;
use crate::pb::v1;

/// First byte of a stored entry: its format version.
const ENTRY_V1: u8 = 1;

/// A stored entry: a version byte, then the encoded response.
pub(in crate::app) fn encode_entry(response: &v1::DiscoverMetadataResponse) -> Vec<u8> {
    let mut entry = Vec::with_capacity(1 + response.encoded_len());
    entry.push(ENTRY_V1);
    entry.extend_from_slice(&response.encode_to_vec());
    entry
}

/// The response a stored entry holds if it is readable and younger than `ttl`.
pub(in crate::app) fn decode_entry(
    entry: &[u8],
    ttl: Duration,
) -> Option<v1::DiscoverMetadataResponse> {
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

impl App {
    /// Bumps the epoch and clears the store under one lock.
    pub(super) async fn invalidate(
        &self,
        tenant: &str,
        id: Option<&str>,
    ) -> Result<usize, ServiceError> {
        let mut epoch = self.metadata.epoch.lock().await;
        *epoch += 1;
        Ok(self.store.clear_cache(tenant, id).await?)
    }

    /// A fresh cache entry, if there is one (and caching is on).
    pub(super) async fn cached(
        &self,
        tenant: &str,
        id: &str,
        cache_key: &str,
    ) -> Result<Option<v1::DiscoverMetadataResponse>, ServiceError> {
        let ttl = self.limits.metadata_ttl;
        if ttl.is_zero() {
            return Ok(None);
        }
        let entry = self.store.get_cache(tenant, id, cache_key).await?;
        Ok(entry.and_then(|entry| decode_entry(&entry, ttl)))
    }

    /// Caches a read's result unless an invalidation came after it started.
    /// A failure to cache is logged: the caller still gets the catalog.
    pub(super) async fn store_entry(
        &self,
        key: &FlightKey,
        response: &v1::DiscoverMetadataResponse,
    ) {
        let entry = encode_entry(response);
        let stored: Result<bool, ServiceError> = async {
            let epoch = self.metadata.epoch.lock().await;
            if *epoch != key.epoch {
                return Ok(false);
            }
            let put = self
                .store
                .put_cache(&key.tenant, &key.id, &key.cache_key, &entry);
            put.await?;
            Ok(true)
        }
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
    use super::*;
    use crate::clock::timestamp_now;

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
}
