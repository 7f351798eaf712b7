//! Metadata discovery: the schemas, tables and columns behind a connection,
//! read through its plugin's `discover` and cached per connection.
//!
//! - [`params`]: the request's filters and limits after defaults and caps,
//!   and the cache key they make.
//! - [`cache`]: entries live in the store's tenant-scoped cache tree, keyed
//!   by the connection and a hash of the request's effective filters and
//!   limits, so no tenant can reach another's entries. An entry older than
//!   the TTL is a miss; `refresh` skips the cache.
//! - [`flight`]: concurrent reads of one connection with the same filters
//!   share one plugin call (single flight): the first caller starts the read
//!   as a task of its own, so a caller that goes away does not cancel it for
//!   the others.
//! - Invalidation (an update of what the catalog was read through, a clear)
//!   bumps an epoch under the same lock a read takes to store its result: a
//!   read that started before an invalidation never caches what it found.

mod cache;
mod flight;
mod params;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use connvault_plugin_abi::pb as plugin;
use connvault_plugin_host::ProviderClient;

use self::flight::FlightKey;
use self::params::HOST_MARGIN;
use super::App;
use super::connections::Opened;
use super::egress::Granted;
use super::tunnel::{Route, tunnel_failed_error};
use crate::error::ServiceError;
use crate::names::{parse_connection, parse_tenant};
use crate::pb::v1;

pub(super) use self::cache::{decode_entry, encode_entry};
pub(super) use self::flight::MetadataState;
pub(in crate::app) use self::params::Params;

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
            let hit = self.cached(&tenant, &id, &cache_key).await?;
            if let Some(metrics) = self.metrics()
                && !self.limits.metadata_ttl.is_zero()
            {
                metrics.cache_lookup(hit.is_some());
            }
            if let Some(hit) = hit {
                return Ok(hit);
            }
        }

        let key = FlightKey {
            tenant,
            id,
            cache_key,
            refresh: request.refresh,
            epoch: self.metadata.epoch().await,
        };
        self.join_flight(key, &request.name, params, timeout).await
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
                self.require_connection(&tenant, &id, &name).await?;
                (tenant, Some(id))
            }
            Some(Target::Parent(parent)) => {
                let tenant = parse_tenant(&parent, "parent")?;
                self.require_tenant(&tenant, &parent).await?;
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
        let started = std::time::Instant::now();
        let Opened {
            loaded,
            secrets,
            plugin,
            source,
            spec,
        } = self.open_for_plugin(name).await?;
        let (spec, targets) = self.targets_of(&plugin, &source, spec).await?;
        let route = self
            .route(
                &key.tenant,
                (plugin.name(), &source.id),
                loaded.connection().tunnel.as_ref(),
                &secrets,
                targets,
                timeout,
            )
            .await?;
        drop(secrets);
        let (egress, tunnel) = match route {
            Route::Direct(Granted::Approved(grant)) => (grant, None),
            Route::Direct(Granted::Unresolved { category, message }) => {
                return Err(if category == plugin::ErrorCategory::Timeout {
                    ServiceError::DeadlineExceeded(message)
                } else {
                    ServiceError::Unavailable(message)
                });
            }
            Route::TunnelFailed { stage, category } => {
                return Err(tunnel_failed_error(&stage, category));
            }
            Route::Tunnelled { tunnel, grant, .. } => (grant, Some(tunnel)),
        };
        let timeout = timeout.saturating_sub(started.elapsed());
        if timeout.is_zero() {
            return Err(ServiceError::DeadlineExceeded(
                "resolving the host did not finish before the deadline".to_owned(),
            ));
        }
        let request = params.plugin_request(spec, timeout, egress);
        self.metadata.plugin_calls.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let answer = crate::metrics::observe_plugin_call(
            self.metrics(),
            plugin.name(),
            "discover",
            plugin.discover(&key.tenant, &request, timeout + HOST_MARGIN),
        )
        .await;
        drop(request);
        if let Some(tunnel) = tunnel {
            tunnel.close().await;
        }
        let response = params.catalog(answer?);
        tracing::debug!(tenant = %key.tenant, connection = %key.id, elapsed = ?started.elapsed(), schemas = response.schemas.len(), truncated = response.truncated, "metadata discovered");
        if !self.limits.metadata_ttl.is_zero() {
            self.store_entry(key, &response).await;
        }
        Ok(response)
    }
}
