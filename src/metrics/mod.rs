//! Prometheus metrics: one registry per server, the families the server
//! records into, and the text a scrape of `/metrics` gets.
//!
//! Labels only take bounded values: gRPC service and method names the
//! server implements (anything else is `unknown`), status code names, the
//! names of loaded plugins, fixed outcome names. Never a tenant or a
//! resource name.

mod plugins;
mod rpc;
mod store;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use connvault_plugin_host::PluginHost;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

pub use plugins::{call_outcome, observe_plugin_call};
pub use rpc::{MetricsLayer, MetricsService};
pub use store::{StoreObserver, refresh_resource_counts};

/// Latency buckets in seconds: half a millisecond (a cached get) to half a
/// minute (a connection test at its longest default).
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Write-batch size buckets: the store's writer takes at most 256 writes at once.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// `service`, `method` and `code` of one finished RPC.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// Fully qualified service, e.g. `connvault.v1.ConnectionService`.
    pub service: &'static str,
    /// Method name, e.g. `GetConnection`.
    pub method: &'static str,
    /// The gRPC status code's name, e.g. `OK`, `NOT_FOUND`.
    pub code: &'static str,
}

/// `service` and `method` of an RPC.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// Fully qualified service.
    pub service: &'static str,
    /// Method name.
    pub method: &'static str,
}

/// `plugin`, `method` and `outcome` of one plugin call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginCallLabels {
    /// The plugin's name (of the loaded set).
    pub plugin: String,
    /// `validate`, `test`, `discover` or `render`.
    pub method: &'static str,
    /// `ok` or why the call failed (`deadline_exceeded`, `queue_full`...).
    pub outcome: &'static str,
}

/// `plugin` and `method` of a plugin call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginMethodLabels {
    /// The plugin's name.
    pub plugin: String,
    /// The method.
    pub method: &'static str,
}

/// `plugin` and `state` of a loaded plugin.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginStateLabels {
    /// The plugin's name.
    pub plugin: String,
    /// `healthy` or `degraded`.
    pub state: &'static str,
}

/// `plugin` alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    /// The plugin's name.
    pub plugin: String,
}

/// `result` of a discovery cache lookup.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// The labels of `connvault_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Every metric the server records, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// RPCs finished, by service, method and code.
    pub requests: Family<RpcLabels, Counter>,
    /// RPC latency to the last byte of the answer, by service and method.
    pub request_seconds: LatencyFamily<MethodLabels>,
    /// Plugin calls finished, by plugin, method and outcome.
    pub plugin_calls: Family<PluginCallLabels, Counter>,
    /// Plugin call latency, by plugin and method.
    pub plugin_call_seconds: LatencyFamily<PluginMethodLabels>,
    /// 1 for each plugin's current state, 0 for the other.
    pub plugin_state: Family<PluginStateLabels, Gauge>,
    /// Times a plugin's runner was started again after it ended.
    pub plugin_runner_restarts: Family<PluginLabels, Gauge>,
    /// Writes per store transaction.
    pub store_write_batch: Histogram,
    /// Time of each durable flush (sled flush, fsync, progress mark).
    pub store_flush_seconds: Histogram,
    /// Audit events that could not be written (the request failed with them).
    pub audit_write_failures: Counter,
    /// Discovery cache lookups, by hit or miss.
    pub discovery_cache: Family<CacheLabels, Counter>,
    /// Tenants in the store (refreshed in the background).
    pub tenants: Gauge,
    /// Connections in the store (refreshed in the background).
    pub connections: Gauge,
    plugins: OnceLock<Arc<PluginHost>>,
}

impl Metrics {
    /// A registry with every family registered and build info set.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("connvault");
        let requests = Family::<RpcLabels, Counter>::default();
        registry.register(
            "grpc_requests",
            "gRPC requests finished, by service, method and status code",
            requests.clone(),
        );
        let request_seconds: LatencyFamily<MethodLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "grpc_request_duration",
            "gRPC request latency, from the request's arrival to the answer's last byte",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let plugin_calls = Family::<PluginCallLabels, Counter>::default();
        registry.register(
            "plugin_calls",
            "Plugin calls finished, by plugin, method and outcome",
            plugin_calls.clone(),
        );
        let plugin_call_seconds: LatencyFamily<PluginMethodLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "plugin_call_duration",
            "Plugin call latency, queueing for a worker included",
            Unit::Seconds,
            plugin_call_seconds.clone(),
        );
        let plugin_state = Family::<PluginStateLabels, Gauge>::default();
        registry.register(
            "plugin_state",
            "1 for the state each loaded plugin is in (healthy, or degraded: abandoned calls hold workers)",
            plugin_state.clone(),
        );
        let plugin_runner_restarts = Family::<PluginLabels, Gauge>::default();
        registry.register(
            "plugin_runner_restarts",
            "Times a plugin's runner process was started again after it ended",
            plugin_runner_restarts.clone(),
        );
        let store_write_batch = Histogram::new(BATCH_BUCKETS);
        registry.register(
            "store_write_batch_size",
            "Writes applied together in one store transaction",
            store_write_batch.clone(),
        );
        let store_flush_seconds = Histogram::new(LATENCY_BUCKETS);
        registry.register_with_unit(
            "store_durable_flush_duration",
            "Time of each durable flush of the store (flush, fsync, progress mark)",
            Unit::Seconds,
            store_flush_seconds.clone(),
        );
        let audit_write_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Audit events that could not be written; each failed its request",
            audit_write_failures.clone(),
        );
        let discovery_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "discovery_cache_lookups",
            "Metadata discovery cache lookups, by result (hit or miss)",
            discovery_cache.clone(),
        );
        let tenants = Gauge::default();
        registry.register("tenants", "Tenants in the store", tenants.clone());
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Connections in the store, over all tenants",
            connections.clone(),
        );
        registry.register(
            "build",
            "The running connvault's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Self {
            registry,
            requests,
            request_seconds,
            plugin_calls,
            plugin_call_seconds,
            plugin_state,
            plugin_runner_restarts,
            store_write_batch,
            store_flush_seconds,
            audit_write_failures,
            discovery_cache,
            tenants,
            connections,
            plugins: OnceLock::new(),
        }
    }

    /// Gives the scrape the loaded plugins, whose state it reads each time.
    pub fn watch_plugins(&self, plugins: Arc<PluginHost>) {
        let _ = self.plugins.set(plugins);
    }

    /// Counts one discovery cache lookup.
    pub fn cache_lookup(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.discovery_cache
            .get_or_create(&CacheLabels { result })
            .inc();
    }

    /// Records one finished RPC.
    pub fn rpc(
        &self,
        service: &'static str,
        method: &'static str,
        code: &'static str,
        took: Duration,
    ) {
        self.requests
            .get_or_create(&RpcLabels {
                service,
                method,
                code,
            })
            .inc();
        self.request_seconds
            .get_or_create(&MethodLabels { service, method })
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric now.
    pub fn encode(&self) -> String {
        if let Some(host) = self.plugins.get() {
            plugins::refresh_states(self, host);
        }
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug
        // in a label, and a scrape then gets what was encoded before it.
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::error!(%error, "encoding the metrics failed");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests;
