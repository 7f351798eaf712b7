//! One loaded plugin: its library, instance, description and call workers.

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use connvault_plugin_abi::{
    self as abi, CallFn, DESCRIPTOR_V1_0_SIZE, DestroyFn, EntryFn, HostTable, InitFn, Method,
    OutputSink, PluginDescriptor, ReturnCode, pb,
};
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{CallError, HostOptions, LoadError, verify};

/// The longest application-error message kept from a plugin.
const MAX_ERROR_MESSAGE: usize = 1024;

/// A plugin instance pointer; the plugin promises (`FLAG_THREAD_SAFE`) or the
/// host ensures (one worker) that calls through it are sound from any thread.
#[derive(Clone, Copy)]
struct Instance(*mut c_void);
// SAFETY: the pointer is only passed back to the plugin's own `call`, which is
// thread-safe by flag, or serialised onto one worker thread when it is not.
unsafe impl Send for Instance {}
// SAFETY: as above.
unsafe impl Sync for Instance {}

/// Counters that say how a plugin is doing.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Calls made.
    pub calls: AtomicU64,
    /// Calls abandoned at their deadline.
    pub abandoned: AtomicU64,
    /// Abandoned calls that have not returned yet (each holds a worker).
    pub hung: AtomicUsize,
    /// Calls that panicked inside the plugin.
    pub panics: AtomicU64,
}

type Job = Box<dyn FnOnce() + Send>;

/// A loaded plugin. Never unloaded: Rust TLS destructors in an unloaded
/// library crash at thread exit, so the library and its memfd live forever.
pub struct Plugin {
    name: String,
    version: String,
    path: PathBuf,
    sha256: String,
    /// Set once at load, after `describe` answered and passed its checks.
    describe: std::sync::OnceLock<pb::DescribeResponse>,
    call_fn: CallFn,
    instance: Instance,
    options: HostOptions,
    workers: usize,
    permits: Arc<Semaphore>,
    global: Arc<Semaphore>,
    jobs: Mutex<mpsc::Sender<Job>>,
    stats: PluginStats,
    _destroy: Option<DestroyFn>,
    _library: ManuallyDrop<libloading::os::unix::Library>,
    _memfd: ManuallyDrop<memfd::Memfd>,
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

/// Host state the plugin's log callback reaches through `ctx`.
struct LogContext {
    plugin: String,
}

unsafe extern "C" fn host_log(ctx: *mut c_void, level: u32, message: *const u8, len: usize) {
    // SAFETY: `ctx` is the leaked `LogContext` made in `load`; it lives forever.
    let Some(context) = (unsafe { ctx.cast::<LogContext>().as_ref() }) else {
        return;
    };
    if message.is_null() {
        return;
    }
    // SAFETY: the plugin passes `len` readable bytes at `message` (ABI contract).
    let bytes = unsafe { std::slice::from_raw_parts(message, len.min(4096)) };
    let text = String::from_utf8_lossy(bytes);
    let plugin = context.plugin.as_str();
    match level {
        abi::log_level::ERROR => tracing::error!(target: "connvault::plugin", plugin, "{text}"),
        abi::log_level::WARN => tracing::warn!(target: "connvault::plugin", plugin, "{text}"),
        abi::log_level::INFO => tracing::info!(target: "connvault::plugin", plugin, "{text}"),
        abi::log_level::DEBUG => tracing::debug!(target: "connvault::plugin", plugin, "{text}"),
        _ => tracing::trace!(target: "connvault::plugin", plugin, "{text}"),
    }
}

/// The host-side state behind an [`OutputSink`].
struct SinkBuffer {
    bytes: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

unsafe extern "C" fn sink_write(ctx: *mut c_void, bytes: *const u8, len: usize) -> i32 {
    // SAFETY: `ctx` is the `SinkBuffer` owned by `call_blocking` for the call's duration.
    let Some(buffer) = (unsafe { ctx.cast::<SinkBuffer>().as_mut() }) else {
        return 1;
    };
    if buffer.overflowed || buffer.bytes.len().saturating_add(len) > buffer.limit {
        buffer.overflowed = true;
        return 1;
    }
    if len > 0 {
        if bytes.is_null() {
            return 1;
        }
        // SAFETY: the plugin passes `len` readable bytes (ABI contract).
        buffer
            .bytes
            .extend_from_slice(unsafe { std::slice::from_raw_parts(bytes, len) });
    }
    0
}

/// Cuts `text` to at most `max` bytes without splitting a character.
fn truncate_on_char(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Reads a NUL-terminated string of at most 256 bytes.
///
/// # Safety
/// `ptr` must point to readable memory up to its NUL or 256 bytes.
unsafe fn bounded_c_str(ptr: *const std::ffi::c_char, what: &str) -> Result<String, LoadError> {
    if ptr.is_null() {
        return Err(LoadError::BadDescriptor(format!("{what} is null")));
    }
    let mut bytes = Vec::new();
    for offset in 0..256 {
        // SAFETY: the caller guarantees readable memory until the NUL.
        let byte = unsafe { *ptr.cast::<u8>().add(offset) };
        if byte == 0 {
            return String::from_utf8(bytes)
                .map_err(|_| LoadError::BadDescriptor(format!("{what} is not UTF-8")));
        }
        bytes.push(byte);
    }
    Err(LoadError::BadDescriptor(format!(
        "{what} is longer than 255 bytes"
    )))
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
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();

        // Load exactly the verified bytes: a memfd closes the gap between the
        // check and dlopen. It stays open forever, as dlopen dedups by name.
        let memfd = memfd::MemfdOptions::default()
            .allow_sealing(true)
            .close_on_exec(true)
            .create(&file_name)
            .map_err(|error| LoadError::Io(std::io::Error::other(error.to_string())))?;
        std::io::Write::write_all(&mut memfd.as_file(), &verified.bytes)?;
        memfd
            .add_seals(&[
                memfd::FileSeal::SealShrink,
                memfd::FileSeal::SealGrow,
                memfd::FileSeal::SealWrite,
                memfd::FileSeal::SealSeal,
            ])
            .map_err(|error| LoadError::Io(std::io::Error::other(error.to_string())))?;
        let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&memfd));

        // SAFETY: loading runs the library's initialisers: the bytes passed the
        // file, pin and ELF checks above; RTLD_NOW refuses undefined symbols
        // now instead of crashing on first call; RTLD_LOCAL keeps its symbols
        // out of other plugins' way.
        let library = unsafe {
            libloading::os::unix::Library::open(
                Some(&fd_path),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
            )
        }
        .map_err(|error| LoadError::Dlopen(error.to_string()))?;

        // SAFETY: the symbol, if present, has the `EntryFn` type by the ABI contract.
        let entry: EntryFn = unsafe { library.get::<EntryFn>(abi::ENTRY_SYMBOL) }
            .map(|symbol| *symbol)
            .map_err(|_| LoadError::NoEntry)?;
        // SAFETY: calling the entry function is the ABI's first step; it takes no arguments.
        let descriptor_ptr = unsafe { entry() };
        if descriptor_ptr.is_null() {
            return Err(LoadError::BadDescriptor(
                "the entry function returned null".into(),
            ));
        }
        // Read the fixed header first: a short descriptor must not be read whole.
        // SAFETY: every descriptor starts with magic (u64) and size (u32).
        let (magic, size) = unsafe {
            (
                std::ptr::read_unaligned(descriptor_ptr.cast::<u64>()),
                std::ptr::read_unaligned(descriptor_ptr.cast::<u8>().add(8).cast::<u32>()),
            )
        };
        if magic != abi::MAGIC {
            return Err(LoadError::BadDescriptor(format!(
                "bad magic {magic:#018x}, expected {:#018x}",
                abi::MAGIC
            )));
        }
        if (size as usize) < DESCRIPTOR_V1_0_SIZE {
            return Err(LoadError::BadDescriptor(format!(
                "descriptor is {size} bytes; ABI 1.0 needs at least {DESCRIPTOR_V1_0_SIZE}"
            )));
        }
        // SAFETY: the plugin declared at least the 1.0 size, so the whole struct is readable.
        let descriptor: &PluginDescriptor = unsafe { &*descriptor_ptr };
        if descriptor.abi_major != abi::ABI_MAJOR {
            return Err(LoadError::AbiMismatch {
                major: descriptor.abi_major,
                minor: descriptor.abi_minor,
                host: abi::ABI_MAJOR,
            });
        }
        // SAFETY: descriptor strings point into the library's static data.
        let name = unsafe { bounded_c_str(descriptor.name, "name") }?;
        // SAFETY: as above.
        let version = unsafe { bounded_c_str(descriptor.version, "version") }?;
        let (Some(init), Some(call_fn)) = (descriptor.init, descriptor.call) else {
            return Err(LoadError::BadDescriptor(
                "init or call is a null function pointer".into(),
            ));
        };
        if descriptor.destroy.is_none() {
            return Err(LoadError::BadDescriptor(
                "destroy is a null function pointer".into(),
            ));
        }
        let thread_safe = descriptor.flags & abi::FLAG_THREAD_SAFE != 0;

        let instance = init_with_timeout(init, &name, options.load_timeout)?;
        let workers = if thread_safe {
            options.workers_per_plugin.max(1)
        } else {
            1
        };
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..workers {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("plugin-{name}-{index}"))
                .spawn(move || {
                    loop {
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(LoadError::Io)?;
        }

        let plugin = Arc::new(Plugin {
            name: name.clone(),
            version,
            path: path.to_owned(),
            sha256: verified.sha256,
            describe: std::sync::OnceLock::new(),
            call_fn,
            instance,
            options: options.clone(),
            workers,
            permits: Arc::new(Semaphore::new(workers)),
            global,
            jobs: Mutex::new(sender),
            stats: PluginStats::default(),
            _destroy: descriptor.destroy,
            _library: ManuallyDrop::new(library),
            _memfd: ManuallyDrop::new(memfd),
        });
        // `describe` runs on a worker like any call, so a plugin that hangs in
        // it is refused after the load timeout instead of stalling start-up.
        let request = pb::DescribeRequest {
            host_abi_minor: abi::ABI_MINOR,
        }
        .encode_to_vec();
        let (sender, receiver) = mpsc::channel();
        let job: Job = {
            let plugin = Arc::clone(&plugin);
            let limit = options.describe_limit;
            Box::new(move || {
                let _ = sender.send(plugin.call_blocking(Method::Describe, &request, limit));
            })
        };
        plugin
            .jobs
            .lock()
            .map_err(|_| LoadError::Describe("the worker queue is poisoned".into()))?
            .send(job)
            .map_err(|_| LoadError::Describe("the workers stopped".into()))?;
        let bytes = receiver
            .recv_timeout(options.load_timeout)
            .map_err(|_| {
                LoadError::Describe(format!("did not answer within {:?}", options.load_timeout))
            })?
            .map_err(|error| LoadError::Describe(error.to_string()))?;
        let mut describe = pb::DescribeResponse::decode(bytes.as_slice())
            .map_err(|_| LoadError::Describe("malformed response".into()))?;
        describe.name = name;
        describe.version = plugin.version.clone();
        crate::describe::check(&describe).map_err(LoadError::Describe)?;
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
        self.stats.hung.load(Ordering::Relaxed) > 0
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
        self.invoke(method as u32, method.name(), request, limit)
    }

    /// Calls a raw method id on the current thread (for ids this host does not know).
    pub fn call_raw(
        &self,
        method_id: u32,
        request: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, CallError> {
        let name = Method::from_raw(method_id).map_or("an unknown method", Method::name);
        self.invoke(method_id, name, request, limit)
    }

    fn invoke(
        &self,
        method_id: u32,
        method_name: &'static str,
        request: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, CallError> {
        let mut buffer = SinkBuffer {
            bytes: Vec::new(),
            limit,
            overflowed: false,
        };
        let sink = OutputSink {
            ctx: (&mut buffer as *mut SinkBuffer).cast(),
            write: sink_write,
        };
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `instance` came from this plugin's `init`; `request` and
        // `sink` outlive the call; `buffer` is only touched through the sink
        // until the call returns.
        let code = unsafe {
            (self.call_fn)(
                self.instance.0,
                method_id,
                request.as_ptr(),
                request.len(),
                &sink,
            )
        };
        let plugin = || self.name.clone();
        if buffer.overflowed {
            return Err(CallError::OutputTooLarge {
                plugin: plugin(),
                method: method_name,
                limit,
            });
        }
        match ReturnCode::from_raw(code) {
            Some(ReturnCode::Ok) => Ok(buffer.bytes),
            Some(ReturnCode::AppError) => {
                let mut error = pb::Error::decode(buffer.bytes.as_slice()).map_err(|_| {
                    CallError::MalformedResponse {
                        plugin: plugin(),
                        method: method_name,
                    }
                })?;
                truncate_on_char(&mut error.message, MAX_ERROR_MESSAGE);
                truncate_on_char(&mut error.field, 256);
                Err(CallError::Application {
                    plugin: plugin(),
                    error,
                })
            }
            Some(ReturnCode::Unimplemented) => Err(CallError::Unimplemented {
                plugin: plugin(),
                method: method_name,
            }),
            Some(ReturnCode::BadRequest) => Err(CallError::BadRequest {
                plugin: plugin(),
                method: method_name,
            }),
            Some(ReturnCode::Panic) => {
                self.stats.panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(plugin = %self.name, method = method_name, "plugin panicked; the panic was caught at the boundary");
                Err(CallError::Panicked {
                    plugin: plugin(),
                    method: method_name,
                })
            }
            Some(ReturnCode::OutputLimit) => Err(CallError::OutputTooLarge {
                plugin: plugin(),
                method: method_name,
                limit,
            }),
            Some(ReturnCode::Internal) | None => Err(CallError::Internal {
                plugin: plugin(),
                method: method_name,
                code,
            }),
        }
    }

    /// Calls the plugin on one of its worker threads, under its permit and the
    /// global permit, within `deadline`. A call that misses its deadline is
    /// abandoned: its worker stays with it until it returns, and the plugin
    /// reports itself degraded meanwhile.
    pub async fn call(
        self: &Arc<Self>,
        method: Method,
        request: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let end = tokio::time::Instant::now() + deadline;
        let missed = || CallError::DeadlineExceeded {
            plugin: self.name.clone(),
            method: method.name(),
            deadline,
        };
        if self.stats.hung.load(Ordering::Acquire) >= self.workers {
            return Err(CallError::Unavailable {
                plugin: self.name.clone(),
                reason: "every worker is held by a call that did not return".into(),
            });
        }
        let plugin_permit: OwnedSemaphorePermit =
            tokio::time::timeout_at(end, Arc::clone(&self.permits).acquire_owned())
                .await
                .map_err(|_| missed())?
                .map_err(|_| self.unavailable("shutting down"))?;
        let global_permit: OwnedSemaphorePermit =
            tokio::time::timeout_at(end, Arc::clone(&self.global).acquire_owned())
                .await
                .map_err(|_| missed())?
                .map_err(|_| self.unavailable("shutting down"))?;

        // 0: running, 1: finished, 2: abandoned by the caller.
        let state = Arc::new(AtomicU8::new(0));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let job: Job = {
            let plugin = Arc::clone(self);
            let state = Arc::clone(&state);
            let limit = self.options.output_limit;
            Box::new(move || {
                let result = plugin.call_blocking(method, &request, limit);
                if state
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    plugin.stats.hung.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(plugin = %plugin.name, method = method.name(), "an abandoned plugin call returned; its worker is free again");
                }
                drop((plugin_permit, global_permit));
                let _ = sender.send(result);
            })
        };
        self.jobs
            .lock()
            .map_err(|_| self.unavailable("its worker queue is poisoned"))?
            .send(job)
            .map_err(|_| self.unavailable("its workers have stopped"))?;

        match tokio::time::timeout_at(end, receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.unavailable("the worker dropped the call")),
            Err(_) => {
                if state
                    .compare_exchange(0, 2, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.stats.hung.fetch_add(1, Ordering::AcqRel);
                    self.stats.abandoned.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(plugin = %self.name, method = method.name(), ?deadline, "plugin call missed its deadline and was abandoned; plugin marked degraded");
                    Err(missed())
                } else {
                    Err(missed())
                }
            }
        }
    }

    fn unavailable(&self, reason: &str) -> CallError {
        CallError::Unavailable {
            plugin: self.name.clone(),
            reason: reason.to_owned(),
        }
    }

    async fn typed<Req: Message, Resp: Message + Default>(
        self: &Arc<Self>,
        method: Method,
        request: &Req,
        deadline: Duration,
    ) -> Result<Resp, CallError> {
        let bytes = self.call(method, request.encode_to_vec(), deadline).await?;
        Resp::decode(bytes.as_slice()).map_err(|_| CallError::MalformedResponse {
            plugin: self.name.clone(),
            method: method.name(),
        })
    }
}

fn init_with_timeout(init: InitFn, name: &str, timeout: Duration) -> Result<Instance, LoadError> {
    let log_context = Box::leak(Box::new(LogContext {
        plugin: name.to_owned(),
    }));
    let host_table: &'static HostTable = Box::leak(Box::new(HostTable {
        size: std::mem::size_of::<HostTable>() as u32,
        abi_minor: abi::ABI_MINOR,
        ctx: (log_context as *mut LogContext).cast(),
        log: Some(host_log),
    }));
    let table = host_table as *const HostTable as usize;
    let (sender, receiver) = mpsc::channel();
    let started = Instant::now();
    std::thread::Builder::new()
        .name(format!("plugin-{name}-init"))
        .spawn(move || {
            let mut instance: *mut c_void = std::ptr::null_mut();
            // SAFETY: the host table is leaked and lives forever; `instance` is a valid slot.
            let code = unsafe { init(table as *const HostTable, &mut instance) };
            let _ = sender.send((code, instance as usize));
        })
        .map_err(LoadError::Io)?;
    match receiver.recv_timeout(timeout) {
        Ok((0, instance)) => Ok(Instance(instance as *mut c_void)),
        Ok((code, _)) => Err(LoadError::Init(format!("returned code {code}"))),
        Err(_) => Err(LoadError::Init(format!(
            "did not return within {:?}",
            started.elapsed()
        ))),
    }
}

/// The calls the server makes to a provider, each bounded by a deadline.
pub trait ProviderClient: Send + Sync {
    /// Checks a connection against the data source's rules (no I/O).
    fn validate(
        &self,
        request: &pb::ValidateRequest,
        deadline: Duration,
    ) -> impl Future<Output = Result<pb::ValidateResponse, CallError>> + Send;
    /// Opens a real connection and reports each stage.
    fn test(
        &self,
        request: &pb::TestRequest,
        deadline: Duration,
    ) -> impl Future<Output = Result<pb::TestResponse, CallError>> + Send;
    /// Lists what is behind a connection.
    fn discover(
        &self,
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
        self.typed(Method::Validate, request, deadline).await
    }

    async fn test(
        &self,
        request: &pb::TestRequest,
        deadline: Duration,
    ) -> Result<pb::TestResponse, CallError> {
        self.typed(Method::Test, request, deadline).await
    }

    async fn discover(
        &self,
        request: &pb::DiscoverRequest,
        deadline: Duration,
    ) -> Result<pb::DiscoverResponse, CallError> {
        self.typed(Method::Discover, request, deadline).await
    }

    async fn render(
        &self,
        request: &pb::RenderRequest,
        deadline: Duration,
    ) -> Result<pb::RenderResponse, CallError> {
        self.typed(Method::Render, request, deadline).await
    }
}
