//! Deadline-bounded network steps shared by the stages of a connection test.
//!
//! Every stage runs on the plugin's private runtime under the time left on
//! the host's deadline, so a server that accepts TCP and never answers costs
//! at most the deadline, reported as TIMEOUT rather than a hang.

use std::future::Future;
use std::net::SocketAddr;

use connvault_plugin_sdk::pb::ErrorCategory;
use connvault_plugin_sdk::{Connection, Deadline, PluginError, StageError, block_on, code};
use tokio::net::TcpStream;

/// Runs `future` to completion unless `deadline` passes first (then TIMEOUT).
pub fn bounded<T>(
    deadline: Deadline,
    what: &str,
    future: impl Future<Output = Result<T, StageError>>,
) -> Result<T, StageError> {
    let remaining = deadline.remaining();
    if remaining.is_zero() {
        return Err(timed_out(what));
    }
    // The timer must be created inside the runtime, hence the async block.
    match block_on(async move { tokio::time::timeout(remaining, future).await }) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_elapsed)) => Err(timed_out(what)),
        Err(error) => Err(StageError::new(ErrorCategory::Internal, error.0.message)),
    }
}

/// The TIMEOUT error for a step that did not finish in time.
pub fn timed_out(what: &str) -> StageError {
    StageError::new(
        ErrorCategory::Timeout,
        format!("{what} did not finish before the deadline"),
    )
}

/// The addresses to connect to for `host` and `port`: the ones the host
/// approved for this call (no second DNS lookup, which could answer with an
/// address the host never checked), else a fresh resolution whose every
/// address the call's egress grant must permit.
pub async fn resolve(
    connection: &Connection<'_>,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, StageError> {
    if let Some(approved) = connection.egress.approved(host, port) {
        if approved.is_empty() {
            return Err(StageError::new(
                ErrorCategory::Dns,
                format!("host {host:?} resolved to no address"),
            ));
        }
        return Ok(approved);
    }
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| {
            StageError::new(
                ErrorCategory::Dns,
                format!("could not resolve host {host:?}: {error}"),
            )
        })?
        .collect();
    if addresses.is_empty() {
        return Err(StageError::new(
            ErrorCategory::Dns,
            format!("host {host:?} resolved to no address"),
        ));
    }
    // One refused address refuses the host: a name that mixes an allowed and
    // a refused address must not be tried address by address.
    for address in &addresses {
        refuse_unless_permitted(connection, host, *address)?;
    }
    Ok(addresses)
}

/// PERMISSION (nothing sent) unless the call's egress grant permits `address`.
pub fn refuse_unless_permitted(
    connection: &Connection<'_>,
    host: &str,
    address: SocketAddr,
) -> Result<(), StageError> {
    connection
        .egress
        .permits(host, address)
        .map_err(|refusal| StageError::new(ErrorCategory::Permission, refusal.0))
}

/// Connects to the first of `addresses` (found for `host`) that accepts a
/// TCP connection, after checking each against the call's egress grant: an
/// address the grant refuses is never dialled.
pub async fn connect(
    connection: &Connection<'_>,
    host: &str,
    addresses: &[SocketAddr],
) -> Result<TcpStream, StageError> {
    for address in addresses {
        refuse_unless_permitted(connection, host, *address)?;
    }
    let mut last = String::from("no address to connect to");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // Small request/response exchanges: do not wait for Nagle.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => last = format!("could not connect to {address}: {}", io_problem(&error)),
        }
    }
    Err(StageError::new(ErrorCategory::Unreachable, last))
}

/// An I/O failure in words of our own, by its kind: the text of an error
/// can carry what the other side sent (a driver's parse error wrapped in an
/// `io::Error`), its kind cannot.
pub fn io_problem(error: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused",
        ErrorKind::ConnectionReset => "the server reset the connection",
        ErrorKind::ConnectionAborted => "the connection was aborted",
        ErrorKind::UnexpectedEof => "the server closed the connection",
        ErrorKind::BrokenPipe => "the server closed the connection",
        ErrorKind::TimedOut => "timed out",
        ErrorKind::HostUnreachable => "no route to the host",
        ErrorKind::NetworkUnreachable => "the network is unreachable",
        ErrorKind::AddrNotAvailable => "the address is not available",
        ErrorKind::PermissionDenied => "the operating system refused the connection",
        ErrorKind::InvalidData => "the server sent data that could not be read",
        _ => "an I/O error",
    }
}

/// Text the remote side sent (a database's own error message), fit to show:
/// printable characters only, at most [`REMOTE_TEXT_MAX`] of them. Use it
/// only for a message the protocol delivered as a well-formed error, never
/// for bytes that failed to parse.
pub fn remote_text(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(REMOTE_TEXT_MAX)
        .collect();
    if text.chars().count() > REMOTE_TEXT_MAX {
        shown.push('…');
    }
    shown
}

/// The most characters of a remote error message [`remote_text`] keeps.
pub const REMOTE_TEXT_MAX: usize = 200;

/// The result of the previous stage; the report runs a stage only when every earlier one succeeded.
pub fn prior<T>(value: Option<T>) -> Result<T, StageError> {
    value.ok_or_else(|| StageError::new(ErrorCategory::Internal, "an earlier stage failed"))
}

/// Turns a failed stage into the error a non-test call (discover) returns.
pub fn plugin_error(error: StageError) -> PluginError {
    let (code, retryable) = match error.category {
        ErrorCategory::Dns | ErrorCategory::Unreachable => (code::UNAVAILABLE, true),
        ErrorCategory::Timeout => (code::DEADLINE_EXCEEDED, true),
        ErrorCategory::Auth => (code::UNAUTHENTICATED, false),
        ErrorCategory::Permission => (code::PERMISSION_DENIED, false),
        ErrorCategory::Config => (code::INVALID_ARGUMENT, false),
        ErrorCategory::Tls | ErrorCategory::Protocol => (code::FAILED_PRECONDITION, false),
        _ => (code::INTERNAL, false),
    };
    let mut plugin_error = PluginError::new(code, error.message);
    plugin_error.0.retryable = retryable;
    plugin_error
}

/// A TCP port from config, which the schema has already range-checked.
pub fn port(value: Option<i64>, default: u16) -> u16 {
    value
        .and_then(|port| u16::try_from(port).ok())
        .unwrap_or(default)
}

/// Translates a discover glob (`*`, `?`) into a SQL `LIKE` pattern escaped with `\`.
pub fn glob_to_like(glob: &str) -> String {
    if glob.is_empty() {
        return "%".to_owned();
    }
    let mut like = String::with_capacity(glob.len());
    for character in glob.chars() {
        match character {
            '*' => like.push('%'),
            '?' => like.push('_'),
            '%' | '_' | '\\' => {
                like.push('\\');
                like.push(character);
            }
            other => like.push(other),
        }
    }
    like
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_escaped_like_patterns() {
        assert_eq!(glob_to_like(""), "%");
        assert_eq!(glob_to_like("or*"), "or%");
        assert_eq!(glob_to_like("a_b?"), "a\\_b_");
    }

    /// What a TestConnection of a saved connection does with a host that does
    /// not resolve (`db.acme.internal`, the README's example): the host calls
    /// the provider from several plain worker threads at once, each of which
    /// runs `bounded` (hence `block_on`) on the shared plugin runtime. That is
    /// a DNS failure (or a TIMEOUT where the resolver is slow), never a panic.
    #[test]
    fn an_unresolvable_host_is_a_stage_failure_on_every_worker() {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let source = connvault_plugin_sdk::schema::data_source("t", "T").build();
                    let spec = connvault_plugin_sdk::pb::ConnectionSpec::default();
                    let connection = connvault_plugin_sdk::check(&source, spec, &[])
                        .map_err(|_| StageError::new(ErrorCategory::Internal, "spec"))?;
                    bounded(
                        Deadline::from_millis(5_000),
                        "resolving the host",
                        resolve(&connection, "db.acme.internal", 5432),
                    )
                })
            })
            .collect();
        for worker in workers {
            let outcome = worker.join();
            assert!(outcome.is_ok(), "bounded panicked");
            if let Ok(outcome) = outcome {
                let category = outcome.err().map(|error| error.category);
                assert!(
                    matches!(category, Some(ErrorCategory::Dns | ErrorCategory::Timeout)),
                    "{category:?}"
                );
            }
        }
    }

    /// The timer is made inside the runtime (the async block), so a step that
    /// outlives the deadline is a TIMEOUT, and one called with no time left
    /// never reaches the runtime.
    #[test]
    fn a_step_past_the_deadline_times_out() {
        let slow = bounded(Deadline::from_millis(20), "waiting", async {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            Ok(())
        });
        assert_eq!(
            slow.err().map(|error| error.category),
            Some(ErrorCategory::Timeout)
        );
        let deadline = Deadline::from_millis(1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let late = bounded(deadline, "waiting", async { Ok(()) });
        assert_eq!(late, Err(timed_out("waiting")));
    }
}
