//! One loaded plugin: its description, and the calls the server makes to it.
//!
//! The work is split by job: [`load`] turns a verified file into a loaded,
//! initialised library; [`raw`] makes one call across the C ABI; [`ffi`] holds
//! the host callbacks the plugin calls into; [`scheduler`] runs calls on the
//! plugin's worker threads, in a lane for pure calls and one for I/O calls,
//! under permits and deadlines, through the [`transport`] seam; [`fair`]
//! shares the I/O workers among tenants.

mod fair;
mod ffi;
mod load;
mod raw;
mod scheduler;
mod stats;
mod transport;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use connvault_plugin_abi::{self as abi, Method, pb};
use prost::Message;
use tokio::sync::Semaphore;

pub use stats::{LaneStats, PluginStats};

use crate::error::{CallError, LoadError};
use crate::options::HostOptions;
use crate::verify;
use raw::InProcess;
use scheduler::{LaneSizes, Scheduler};

/// A loaded plugin. Never unloaded: Rust TLS destructors in an unloaded
/// library crash at thread exit, so the library and its memfd live forever.
pub struct Plugin {
    name: String,
    version: String,
    path: PathBuf,
    sha256: String,
    /// Set once at load, after `describe` answered and passed its checks.
    describe: OnceLock<pb::DescribeResponse>,
    stats: Arc<PluginStats>,
    scheduler: Scheduler<InProcess>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Verifies, loads and initialises the plugin at `path`.
    pub(crate) fn load(
        path: &Path,
        pin: Option<&str>,
        options: &HostOptions,
        global: Arc<Semaphore>,
    ) -> Result<Arc<Plugin>, LoadError> {
        let verified = verify::verify(path, pin, options.require_pins)?;
        let loaded = load::open(&verified, &load::file_name(path), options.load_timeout)?;
        let name = loaded.parts.name.clone();
        // A plugin that is not thread-safe gets one thread per lane, and
        // its calls never overlap (see `LaneSizes::serial`).
        let (pure_workers, io_workers) = if loaded.thread_safe {
            (
                options.pure_workers_per_plugin.max(1),
                options.workers_per_plugin.max(1),
            )
        } else {
            (1, 1)
        };
        let sizes = LaneSizes {
            pure_workers,
            io_workers,
            io_per_tenant: options.io_calls_per_tenant_for(io_workers),
            io_queue: options.io_queue_per_tenant,
            serial: !loaded.thread_safe,
        };
        let stats = Arc::new(PluginStats::default());
        let transport = InProcess::new(loaded.parts, Arc::clone(&stats));
        let scheduler = Scheduler::start(
            &name,
            transport,
            Arc::clone(&stats),
            sizes,
            options.output_limit,
            global,
        )
        .map_err(LoadError::Io)?;
        let plugin = Arc::new(Plugin {
            name: name.clone(),
            version: loaded.version,
            path: path.to_owned(),
            sha256: verified.sha256,
            describe: OnceLock::new(),
            stats,
            scheduler,
        });
        let request = pb::DescribeRequest {
            host_abi_minor: abi::ABI_MINOR,
        }
        .encode_to_vec();
        let bytes = plugin.scheduler.call_at_load(
            Method::Describe,
            request,
            options.describe_limit,
            options.load_timeout,
        )?;
        let mut describe = pb::DescribeResponse::decode(bytes.as_slice())
            .map_err(|_| LoadError::Describe("malformed response".into()))?;
        describe.name = name;
        describe.version = plugin.version.clone();
        crate::describe::check(&describe).map_err(LoadError::Describe)?;
        crate::schema::lint::lint(&describe).map_err(LoadError::Schema)?;
        let _ = plugin.describe.set(describe);
        Ok(plugin)
    }

    /// The plugin's name from its descriptor.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's version from its descriptor.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lowercase hex SHA-256 of the loaded bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// What the plugin said it serves, checked at load.
    pub fn description(&self) -> &pb::DescribeResponse {
        static UNDESCRIBED: pb::DescribeResponse = pb::DescribeResponse {
            name: String::new(),
            version: String::new(),
            data_sources: Vec::new(),
        };
        self.describe.get().unwrap_or(&UNDESCRIBED)
    }

    /// Call counters.
    pub fn stats(&self) -> &PluginStats {
        &self.stats
    }

    /// Whether calls were abandoned that still hold workers.
    pub fn degraded(&self) -> bool {
        self.scheduler.degraded()
    }

    /// Calls the plugin on the current thread, with no deadline: the raw ABI round trip.
    ///
    /// The server uses [`Plugin::call`]; this is for load-time calls and benchmarks.
    pub fn call_blocking(
        &self,
        method: Method,
        request: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, CallError> {
        self.scheduler
            .transport()
            .invoke(method as u32, method.name(), request, limit)
    }

    /// Calls a raw method id on the current thread (for ids this host does not know).
    pub fn call_raw(
        &self,
        method_id: u32,
        request: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, CallError> {
        let name = Method::from_raw(method_id).map_or("an unknown method", Method::name);
        self.scheduler
            .transport()
            .invoke(method_id, name, request, limit)
    }

    /// The most I/O calls (test, discover) one tenant has running on this plugin at once.
    pub fn io_calls_per_tenant(&self) -> usize {
        self.scheduler.io_per_tenant()
    }

    /// Calls the plugin for `tenant` on a worker thread of the method's lane
    /// within `deadline`: describe, validate and render on the pure lane;
    /// test and discover on the I/O lane, admitted fairly among tenants
    /// (`tenant` is only read there). A call that misses its deadline is
    /// abandoned: its worker stays with it until it returns, and the plugin
    /// reports itself degraded meanwhile.
    pub async fn call(
        self: &Arc<Self>,
        tenant: &str,
        method: Method,
        request: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, CallError> {
        self.scheduler.call(tenant, method, request, deadline).await
    }

    async fn typed<Req: Message, Resp: Message + Default>(
        self: &Arc<Self>,
        tenant: &str,
        method: Method,
        request: &Req,
        deadline: Duration,
    ) -> Result<Resp, CallError> {
        let bytes = self
            .call(tenant, method, request.encode_to_vec(), deadline)
            .await?;
        Resp::decode(bytes.as_slice()).map_err(|_| CallError::MalformedResponse {
            plugin: self.name.clone(),
            method: method.name(),
        })
    }
}

/// The calls the server makes to a provider, each bounded by a deadline.
///
/// The calls that reach a data source name the tenant they are made for: a
/// plugin's I/O workers are shared fairly among tenants.
pub trait ProviderClient: Send + Sync {
    /// Checks a connection against the data source's rules (no I/O).
    fn validate(
        &self,
        request: &pb::ValidateRequest,
        deadline: Duration,
    ) -> impl Future<Output = Result<pb::ValidateResponse, CallError>> + Send;
    /// Opens a real connection for `tenant` and reports each stage.
    fn test(
        &self,
        tenant: &str,
        request: &pb::TestRequest,
        deadline: Duration,
    ) -> impl Future<Output = Result<pb::TestResponse, CallError>> + Send;
    /// Lists what is behind a connection of `tenant`.
    fn discover(
        &self,
        tenant: &str,
        request: &pb::DiscoverRequest,
        deadline: Duration,
    ) -> impl Future<Output = Result<pb::DiscoverResponse, CallError>> + Send;
    /// Renders connection strings.
    fn render(
        &self,
        request: &pb::RenderRequest,
        deadline: Duration,
    ) -> impl Future<Output = Result<pb::RenderResponse, CallError>> + Send;
}

impl ProviderClient for Arc<Plugin> {
    async fn validate(
        &self,
        request: &pb::ValidateRequest,
        deadline: Duration,
    ) -> Result<pb::ValidateResponse, CallError> {
        self.typed("", Method::Validate, request, deadline).await
    }

    async fn test(
        &self,
        tenant: &str,
        request: &pb::TestRequest,
        deadline: Duration,
    ) -> Result<pb::TestResponse, CallError> {
        self.typed(tenant, Method::Test, request, deadline).await
    }

    async fn discover(
        &self,
        tenant: &str,
        request: &pb::DiscoverRequest,
        deadline: Duration,
    ) -> Result<pb::DiscoverResponse, CallError> {
        self.typed(tenant, Method::Discover, request, deadline)
            .await
    }

    async fn render(
        &self,
        request: &pb::RenderRequest,
        deadline: Duration,
    ) -> Result<pb::RenderResponse, CallError> {
        self.typed("", Method::Render, request, deadline).await
    }
}
