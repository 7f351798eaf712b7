//! The store's writer (batch sizes, durable flushes) and the tenant and
//! connection counts, which the store does not keep: a background task
//! counts them every [`COUNT_EVERY`].

use std::sync::Arc;
use std::time::Duration;

use connvault_store::Store;
use connvault_store::sled::WriteObserver;

use super::Metrics;

/// How often the tenants and connections gauges are recounted: a scrape
/// never walks the store, and the count costs one read per tenant.
pub const COUNT_EVERY: Duration = Duration::from_secs(15);

/// Tenants read per page while counting.
const PAGE: usize = 500;

/// Records the store writer's batches and flushes into [`Metrics`].
#[derive(Debug)]
pub struct StoreObserver(pub Arc<Metrics>);

impl WriteObserver for StoreObserver {
    fn batch_applied(&self, writes: usize) {
        self.0.store_write_batch.observe(writes as f64);
    }

    fn durable_flush(&self, _writes: usize, took: Duration) {
        self.0.store_flush_seconds.observe(took.as_secs_f64());
    }
}

/// Counts tenants and connections now and every [`COUNT_EVERY`] after,
/// until the task is dropped with the runtime.
pub async fn refresh_resource_counts(metrics: Arc<Metrics>, store: Arc<dyn Store>) {
    let mut ticker = tokio::time::interval(COUNT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match count(store.as_ref()).await {
            Ok((tenants, connections)) => {
                metrics.tenants.set(saturating(tenants));
                metrics.connections.set(saturating(connections));
            }
            Err(error) => tracing::warn!(%error, "counting tenants and connections failed"),
        }
    }
}

fn saturating(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

async fn count(store: &dyn Store) -> Result<(u64, u64), connvault_store::StoreError> {
    let mut tenants = 0u64;
    let mut connections = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = store.list_tenants(after.as_deref(), PAGE).await?;
        for tenant in &page {
            tenants += 1;
            connections += store.tenant_connection_count(&tenant.tenant_id).await?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.tenant_id.clone()),
            _ => return Ok((tenants, connections)),
        }
    }
}
