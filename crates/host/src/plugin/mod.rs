//! One loaded plugin: its description, and the calls the server makes to it.
//!
//! The work is split by job: [`load`] turns a verified file into a loaded,
//! initialised library; [`raw`] makes one call across the C ABI and
//! [`outcome`] says what its return code means; [`ffi`] holds the host
//! callbacks the plugin calls into; [`scheduler`] runs calls on the
//! plugin's worker threads, in a lane for pure calls and one for I/O calls,
//! under permits and deadlines, through the [`transport`] seam, to the
//! library in this process or to runner processes ([`process`]); [`fair`]
//! shares the I/O workers among tenants.

mod fair;
mod ffi;
mod inventory;
mod load;
mod outcome;
pub mod process;
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

pub use inventory::{PluginInfo, PluginState};
pub use stats::{LaneStats, LastError, PluginStats};

pub(crate) use ffi::forward_logs;
pub(crate) use load::open_memfd;
pub(crate) use outcome::application_error;
pub(crate) use raw::InProcess;

use crate::error::{CallError, LoadError};
use crate::options::{HostOptions, Isolation};
use crate::verify;
use scheduler::{LaneSizes, Scheduler};
use transport::{AnyTransport, Transport};

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
    isolation: Isolation,
    scheduler: Scheduler<AnyTransport>,
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
        let file_name = load::file_name(path);
        let isolation = options.isolation_for(&file_name);
        let stats = Arc::new(PluginStats {
            log_panic_messages: options.log_panic_messages,
            ..PluginStats::default()
        });
        let (name, version, thread_safe, transport) = match isolation {
            Isolation::InProcess => {
                let loaded = load::open(&verified, &file_name, options.load_timeout)?;
                let name = loaded.parts.name.clone();
                let transport = InProcess::new(loaded.parts, Arc::clone(&stats));
                (
                    name,
                    loaded.version,
                    loaded.thread_safe,
                    AnyTransport::InProcess(transport),
                )
            }
            Isolation::Process => {
                let loaded = process::Runners::start(
                    process::Plugin {
                        file_name: &file_name,
                        memfd: load::seal(&verified.bytes, &file_name)?,
                        sha256: &verified.sha256,
                    },
                    options,
                    Arc::clone(&stats),
                )?;
                (
                    loaded.name,
                    loaded.version,
                    loaded.thread_safe,
                    AnyTransport::Process(loaded.runners),
                )
            }
        };
        // A plugin that is not thread-safe gets one thread per lane, and
        // its calls never overlap (see `LaneSizes::serial`).
        let (pure_workers, io_workers) = if thread_safe {
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
            // Runners of the two lanes hold an instance each: only calls
            // into one instance must not overlap.
            serial: !thread_safe && transport.lanes_share_instance(),
        };
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
            version,
            path: path.to_owned(),
            sha256: verified.sha256,
            describe: OnceLock::new(),
            stats,
            isolation,
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
        let describe = crate::describe::decode(&bytes, &name, &plugin.version)?;
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

    /// Where the plugin runs: in this process, or in runner processes.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Whether calls were abandoned that still hold workers.
    pub fn degraded(&self) -> bool {
        self.scheduler.degraded()
    }

    /// Calls the plugin on the current thread, with no deadline: the raw ABI
    /// round trip (through its runner, under process isolation).
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
            .call(method as u32, method.name(), request, limit, far_future())
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
            .call(method_id, name, request, limit, far_future())
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

/// An end no call reaches: for the calls made with no deadline.
fn far_future() -> std::time::Instant {
    std::time::Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
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
