//! The `extern "C"` thunks [`export_provider!`](crate::export_provider) wires up.
//!
//! Since Rust 1.81 a panic unwinding out of an `extern "C"` function aborts the
//! process, so every entry runs under `catch_unwind`, and a panic payload is
//! dropped under a second one (its destructor may panic too).

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use prost::Message;

use crate::abi::{HostTable, Method, OutputSink, ReturnCode};
use crate::egress::Egress;
use crate::{Connection, Deadline, PluginError, Provider, Violations, check, pb};

/// A provider and the description it gave at `init`.
pub struct Instance<P> {
    provider: P,
    describe: pb::DescribeResponse,
}

fn guarded(run: impl FnOnce() -> ReturnCode) -> i32 {
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(code) => code as i32,
        Err(payload) => {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            ReturnCode::Panic as i32
        }
    }
}

/// The longest panic message handed to the host.
const MAX_PANIC_MESSAGE: usize = 1024;

thread_local! {
    /// The message of the last panic on this thread, for the host (ABI 1.1).
    static PANIC_MESSAGE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn install_panic_hook() {
    // The default hook prints the panic message, which may quote data the
    // provider was handling; the log gets the location only. The message
    // goes to the host with the PANIC return code, and the host logs it
    // only when told to (in development).
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|location| format!("{}:{}", location.file(), location.line()))
            .unwrap_or_default();
        crate::log::error(&format!("plugin panicked at {location}"));
        let payload = info.payload();
        let mut message = payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        if message.len() > MAX_PANIC_MESSAGE {
            let mut end = MAX_PANIC_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let _ = PANIC_MESSAGE.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = Some(format!("{message} (at {location})"));
            }
        });
    }));
}

/// Writes the caught panic's message to `sink` as an `Error` (ABI 1.1:
/// the output of a PANIC return), if this thread recorded one.
fn hand_over_panic(sink: *const OutputSink) {
    let message = PANIC_MESSAGE
        .try_with(|slot| slot.try_borrow_mut().ok().and_then(|mut slot| slot.take()))
        .ok()
        .flatten();
    // SAFETY: the host passes a valid sink or null.
    if let (Some(message), Some(sink)) = (message, unsafe { sink.as_ref() }) {
        let error = pb::Error {
            code: crate::code::INTERNAL,
            message,
            ..pb::Error::default()
        };
        let _ = catch_unwind(AssertUnwindSafe(|| {
            write(sink, &error.encode_to_vec(), ReturnCode::Panic)
        }));
    }
}

/// `init`: builds the provider, remembers the host's logger and the description.
///
/// # Safety
/// The host passes a valid (or null) host table and a valid `instance_out`.
pub unsafe extern "C" fn init<P: Provider + Default>(
    host: *const HostTable,
    instance_out: *mut *mut c_void,
) -> i32 {
    guarded(|| {
        if instance_out.is_null() {
            return ReturnCode::BadRequest;
        }
        // SAFETY: the host's contract: `host` is null or valid for the process's life.
        unsafe { crate::log::install(host) };
        install_panic_hook();
        let provider = P::default();
        let describe = pb::DescribeResponse {
            name: String::new(),
            version: String::new(),
            data_sources: provider.data_sources(),
        };
        let instance = Box::new(Instance { provider, describe });
        // SAFETY: checked non-null above; the host owns the pointer slot.
        unsafe { *instance_out = Box::into_raw(instance).cast() };
        ReturnCode::Ok
    })
}

/// `destroy`: drops the instance.
///
/// # Safety
/// `instance` came from `init` and is not used afterwards.
pub unsafe extern "C" fn destroy<P: Provider>(instance: *mut c_void) {
    let _ = guarded(|| {
        if !instance.is_null() {
            // SAFETY: `instance` was made by `Box::into_raw` in `init`.
            drop(unsafe { Box::from_raw(instance.cast::<Instance<P>>()) });
        }
        ReturnCode::Ok
    });
}

/// `call`: decodes the request, dispatches, encodes the answer into the sink.
///
/// # Safety
/// `instance` came from `init`; `request` points to `request_len` readable
/// bytes; `sink` points to a valid sink for the duration of the call.
pub unsafe extern "C" fn call<P: Provider>(
    instance: *mut c_void,
    method: u32,
    request: *const u8,
    request_len: usize,
    sink: *const OutputSink,
) -> i32 {
    let code = guarded(|| {
        // SAFETY: the host passes the instance `init` returned, or null.
        let Some(instance) = (unsafe { instance.cast::<Instance<P>>().as_ref() }) else {
            return ReturnCode::BadRequest;
        };
        // SAFETY: the host passes a valid sink or null.
        let Some(sink) = (unsafe { sink.as_ref() }) else {
            return ReturnCode::BadRequest;
        };
        let request = if request_len == 0 {
            &[][..]
        } else if request.is_null() {
            return ReturnCode::BadRequest;
        } else {
            // SAFETY: the host guarantees `request_len` readable bytes at `request`.
            unsafe { std::slice::from_raw_parts(request, request_len) }
        };
        let Some(method) = Method::from_raw(method) else {
            return ReturnCode::Unimplemented;
        };
        match dispatch(instance, method, request) {
            Ok(bytes) => write(sink, &bytes, ReturnCode::Ok),
            Err(Failure::BadRequest) => ReturnCode::BadRequest,
            Err(Failure::App(error)) => {
                if error.0.code == crate::code::UNIMPLEMENTED {
                    return ReturnCode::Unimplemented;
                }
                write(sink, &error.0.encode_to_vec(), ReturnCode::AppError)
            }
        }
    });
    if code == ReturnCode::Panic as i32 {
        hand_over_panic(sink);
    }
    code
}

fn write(sink: &OutputSink, bytes: &[u8], code: ReturnCode) -> ReturnCode {
    // SAFETY: the sink's contract: `write` accepts any live buffer.
    let status = unsafe { (sink.write)(sink.ctx, bytes.as_ptr(), bytes.len()) };
    if status == 0 {
        code
    } else {
        ReturnCode::OutputLimit
    }
}

enum Failure {
    BadRequest,
    App(PluginError),
}

impl From<PluginError> for Failure {
    fn from(error: PluginError) -> Self {
        Failure::App(error)
    }
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, Failure> {
    M::decode(bytes).map_err(|_| Failure::BadRequest)
}

fn dispatch<P: Provider>(
    instance: &Instance<P>,
    method: Method,
    request: &[u8],
) -> Result<Vec<u8>, Failure> {
    let provider = &instance.provider;
    Ok(match method {
        Method::Describe => {
            let _: pb::DescribeRequest = decode(request)?;
            instance.describe.encode_to_vec()
        }
        Method::Validate => {
            let request: pb::ValidateRequest = decode(request)?;
            let spec = request.connection.unwrap_or_default();
            let source = find_source(instance, &spec.data_source)?;
            let response = match check(source, spec, &request.secret_fields_present) {
                Err(violations) => pb::ValidateResponse {
                    violations: violations.0,
                    ..Default::default()
                },
                Ok(mut connection) => {
                    let mut violations = Violations::default();
                    provider.validate(&connection, &mut violations);
                    let targets = if violations.is_empty() {
                        provider
                            .targets(&connection)
                            .map(|targets| pb::NetworkTargets { targets })
                    } else {
                        None
                    };
                    pb::ValidateResponse {
                        violations: violations.0,
                        normalized_config: std::mem::take(&mut connection.config),
                        targets,
                    }
                }
            };
            response.encode_to_vec()
        }
        Method::Test => {
            let request: pb::TestRequest = decode(request)?;
            let deadline = Deadline::from_millis(request.deadline_ms);
            let mut connection = checked(instance, request.connection)?;
            connection.egress = Egress::from_grant(request.egress);
            provider.test(&connection, deadline)?.encode_to_vec()
        }
        Method::Discover => {
            let request: pb::DiscoverRequest = decode(request)?;
            let deadline = Deadline::from_millis(request.deadline_ms);
            let mut connection = checked(instance, request.connection.clone())?;
            connection.egress = Egress::from_grant(request.egress.clone());
            provider
                .discover(&connection, &request, deadline)?
                .encode_to_vec()
        }
        Method::Render => {
            let request: pb::RenderRequest = decode(request)?;
            let connection = checked(instance, request.connection)?;
            provider
                .render(&connection, request.include_secrets)?
                .encode_to_vec()
        }
    })
}

fn find_source<'a, P>(instance: &'a Instance<P>, id: &str) -> Result<&'a pb::DataSource, Failure> {
    instance
        .describe
        .data_sources
        .iter()
        .find(|source| source.id == id)
        .ok_or_else(|| {
            Failure::App(PluginError::invalid_argument(
                "data_source",
                "this plugin does not serve that data source",
            ))
        })
}

fn checked<P: Provider>(
    instance: &Instance<P>,
    spec: Option<pb::ConnectionSpec>,
) -> Result<Connection<'_>, Failure> {
    let spec = spec.unwrap_or_default();
    let source = find_source(instance, &spec.data_source)?;
    let connection = check(source, spec, &[]).map_err(|violations| {
        let first = violations.0.into_iter().next().unwrap_or_default();
        Failure::App(PluginError::invalid_argument(
            first.field,
            first.description,
        ))
    })?;
    let mut violations = Violations::default();
    instance.provider.validate(&connection, &mut violations);
    if let Some(first) = violations.0.into_iter().next() {
        return Err(Failure::App(PluginError::invalid_argument(
            first.field,
            first.description,
        )));
    }
    Ok(connection)
}
