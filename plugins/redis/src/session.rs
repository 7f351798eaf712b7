//! Redis's steps of the staged session and test: TLS, `AUTH`, the probe and
//! the keyspace summary; the order of the stages lives in
//! [`connvault_provider_kit`].
//!
//! TLS is done here with rustls so that it is its own stage; the encrypted (or
//! plain) stream is then handed to redis-rs, whose connection setup sends
//! `AUTH` and `SELECT`.

use connvault_plugin_sdk::pb::{self, ErrorCategory, TlsMode};
use connvault_plugin_sdk::{Connection, Deadline, StageError, TestReport};
use connvault_provider_kit::engine::Engine;
use connvault_provider_kit::session::{self, Handshake, Stream};
use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, ProtocolVersion, RedisConnectionInfo};
use tokio::net::TcpStream;

use crate::{DEFAULT_PORT, Redis, net, tls};

impl Engine for Redis {
    type Session = MultiplexedConnection;

    /// Runs resolve, connect, TLS and `AUTH`/`SELECT`.
    fn open(
        &self,
        connection: &Connection,
        deadline: Deadline,
        report: &mut TestReport,
    ) -> Option<MultiplexedConnection> {
        session::open(self, connection, DEFAULT_PORT, deadline, report)
    }

    /// `PING`, then the version from `INFO server`.
    fn probe(
        &self,
        conn: &mut MultiplexedConnection,
        deadline: Deadline,
    ) -> Result<String, StageError> {
        probe(conn, deadline)
    }
}

impl Handshake for Redis {
    type Session = MultiplexedConnection;

    async fn start_tls(
        &self,
        stream: TcpStream,
        connection: &Connection<'_>,
        mode: TlsMode,
    ) -> Result<Stream, StageError> {
        // Redis has no in-band TLS negotiation: `prefer` can only mean "try TLS".
        let config = tls::client_config(&connection.tls, mode)?;
        let name = tls::server_name(&connection.tls, connection.str("host"))?;
        let peer = stream.peer_addr().ok();
        let handshake = tokio_rustls::TlsConnector::from(config).connect(name, stream);
        tokio::pin!(handshake);
        let map = |outcome: std::io::Result<_>| match outcome {
            Ok(encrypted) => Ok(Box::new(encrypted) as Stream),
            Err(error) => Err(tls::handshake_error(&error)),
        };
        tokio::select! {
            outcome = &mut handshake => return map(outcome),
            () = tokio::time::sleep(PLAIN_CHECK_AFTER) => {}
        }
        // A plain-text Redis reads our ClientHello as an unfinished inline command
        // and waits forever. Ask on a second socket whether the port speaks plain
        // RESP, so the answer is "no TLS here" rather than a timeout.
        let Some(peer) = peer else {
            return map(handshake.await);
        };
        tokio::select! {
            outcome = &mut handshake => map(outcome),
            true = speaks_plain_resp(connection, peer) => Err(StageError::new(
                ErrorCategory::Tls,
                "the server answers plain-text Redis on this port, but TLS is required",
            )),
        }
    }

    async fn authenticate(
        &self,
        stream: Stream,
        connection: &Connection<'_>,
    ) -> Result<MultiplexedConnection, StageError> {
        let username = connection.str("username");
        let info = RedisConnectionInfo {
            db: connection.int("database").unwrap_or(0),
            username: (!username.is_empty()).then(|| username.to_owned()),
            password: connection.secret("password").map(str::to_owned),
            protocol: ProtocolVersion::RESP2,
        };
        let (conn, driver) = MultiplexedConnection::new(&info, stream)
            .await
            .map_err(|error| classify(&error, "logging in"))?;
        tokio::spawn(driver);
        Ok(conn)
    }
}

/// How long a TLS handshake may take before we check for a plain-text server.
const PLAIN_CHECK_AFTER: std::time::Duration = std::time::Duration::from_millis(300);

/// Whether `peer` answers `PING` in plain RESP (`+PONG` or an `-ERR`/`-NOAUTH`).
/// The second socket goes through the same egress check as the first.
async fn speaks_plain_resp(connection: &Connection<'_>, peer: std::net::SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut probe) = net::connect(connection, connection.str("host"), &[peer]).await else {
        return false;
    };
    if probe.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    matches!(probe.read_u8().await, Ok(b'+' | b'-'))
}

/// `PING`, then the version from `INFO server`.
pub fn probe(conn: &mut MultiplexedConnection, deadline: Deadline) -> Result<String, StageError> {
    net::bounded(deadline, "the probe", async {
        let pong: String = redis::cmd("PING")
            .query_async(conn)
            .await
            .map_err(|error| classify(&error, "PING"))?;
        if pong != "PONG" {
            return Err(StageError::new(
                ErrorCategory::Protocol,
                "PING did not answer PONG",
            ));
        }
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(conn)
            .await
            .map_err(|error| classify(&error, "INFO server"))?;
        Ok(net::remote_text(
            info_field(&info, "redis_version").unwrap_or("unknown"),
        ))
    })
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Discovery for Redis: one schema per non-empty database (`db0`...) holding a
/// `keyspace` entry whose row estimate is the key count.
pub fn keyspace(
    conn: &mut MultiplexedConnection,
    request: &pb::DiscoverRequest,
    deadline: Deadline,
) -> Result<pb::DiscoverResponse, StageError> {
    let info: String = net::bounded(deadline, "INFO keyspace", async {
        redis::cmd("INFO")
            .arg("keyspace")
            .query_async(conn)
            .await
            .map_err(|error| classify(&error, "INFO keyspace"))
    })?;
    let max = if request.max_schemas == 0 {
        100
    } else {
        request.max_schemas as usize
    };
    let mut schemas = Vec::new();
    let mut truncated = false;
    // Lines look like `db0:keys=3,expires=0,avg_ttl=0`.
    for line in info.lines() {
        let Some((name, stats)) = line.trim().split_once(':') else {
            continue;
        };
        if !name.starts_with("db") || !glob_matches(&request.schema_filter, name) {
            continue;
        }
        if schemas.len() == max {
            truncated = true;
            break;
        }
        let keys = stats
            .split(',')
            .find_map(|pair| pair.strip_prefix("keys="))
            .and_then(|keys| keys.parse::<i64>().ok());
        schemas.push(pb::Schema {
            name: name.to_owned(),
            tables: vec![pb::Table {
                name: "keyspace".to_owned(),
                kind: "keyspace".to_owned(),
                estimated_rows: keys,
                columns: Vec::new(),
            }],
        });
    }
    Ok(pb::DiscoverResponse { schemas, truncated })
}

/// Glob matching with `*` and `?`; an empty glob matches everything.
fn glob_matches(glob: &str, text: &str) -> bool {
    fn matches(glob: &[char], text: &[char]) -> bool {
        match (glob.first(), text.first()) {
            (None, None) => true,
            (Some('*'), _) => {
                matches(&glob[1..], text) || (!text.is_empty() && matches(glob, &text[1..]))
            }
            (Some('?'), Some(_)) => matches(&glob[1..], &text[1..]),
            (Some(g), Some(t)) if g == t => matches(&glob[1..], &text[1..]),
            _ => false,
        }
    }
    if glob.is_empty() {
        return true;
    }
    let glob: Vec<char> = glob.chars().collect();
    let text: Vec<char> = text.chars().collect();
    matches(&glob, &text)
}

/// Maps a redis-rs error to a category and a message of our own words.
///
/// Only an error reply (`-CODE message`), which a server speaking RESP sent
/// as such, is quoted (code and message, printable and bounded: Redis never
/// echoes the password). Anything else — bytes that did not parse, a reply
/// of the wrong type — is described, never quoted: it could be the banner or
/// the answer of some other service on that port.
fn classify(error: &redis::RedisError, doing: &str) -> StageError {
    let code = error.code().unwrap_or("");
    let detail = error.detail().unwrap_or("");
    let category = match error.kind() {
        ErrorKind::AuthenticationFailed => ErrorCategory::Auth,
        _ if code == "WRONGPASS" || code == "NOAUTH" => ErrorCategory::Auth,
        _ if code == "NOPERM" => ErrorCategory::Permission,
        ErrorKind::IoError => ErrorCategory::Unreachable,
        ErrorKind::ResponseError if detail.contains("DB index is out of range") => {
            ErrorCategory::Config
        }
        _ => ErrorCategory::Protocol,
    };
    let what = match error.kind() {
        ErrorKind::ParseError => "the server did not speak the Redis protocol".to_owned(),
        ErrorKind::TypeError => "the server answered with a reply of an unexpected type".to_owned(),
        ErrorKind::AuthenticationFailed => "the server refused the credentials".to_owned(),
        ErrorKind::IoError if error.is_timeout() => "the connection timed out".to_owned(),
        ErrorKind::IoError if error.is_connection_dropped() => {
            "the server closed the connection".to_owned()
        }
        ErrorKind::IoError => "the connection failed".to_owned(),
        _ if !code.is_empty() => {
            let well_formed = code.len() <= 32
                && code
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            let code = if well_formed { code } else { "an error" };
            format!("the server answered {code}: {}", net::remote_text(detail))
        }
        _ => error.category().to_owned(),
    };
    StageError::new(category, format!("{doing} failed: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match() {
        assert!(glob_matches("", "db0"));
        assert!(glob_matches("db*", "db12"));
        assert!(glob_matches("db?", "db1"));
        assert!(!glob_matches("db?", "db12"));
    }

    #[test]
    fn info_fields_are_found() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(info_field(info, "redis_version"), Some("7.0.15"));
    }
}
