//! The HTTP listener: a second port beside gRPC, for what browsers and
//! plain HTTP clients use (the hosted connection forms; metrics, health and
//! a REST gateway can be added the same way). HTTP/1.1 only, axum on
//! hyper 1 (the stack tonic already builds on), with the gRPC port's TLS
//! settings and certificate reloading (`crate::listener`).
//!
//! - `serve.rs`: the accept loop, the connection limit, TLS, hyper's
//!   per-connection bounds, the connection age limit and graceful shutdown;
//! - `routes.rs`: **the one place routes are composed** ([`router`]), and
//!   the bounds every request meets (body size, time, common headers).
//!
//! Adding routes: write a function returning an `axum::Router` in the
//! area's own module and merge it in [`router`]; nothing here changes.

mod routes;
mod serve;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

pub use routes::{HttpContext, router};
pub use serve::{Running, start};

/// Where the HTTP listener listens: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListen {
    /// No HTTP listener.
    Off,
    /// Listen on this address (port 0: any free port).
    On(SocketAddr),
}

impl Default for HttpListen {
    fn default() -> Self {
        HttpListen::On(SocketAddr::from(([127, 0, 0, 1], 8080)))
    }
}

impl HttpListen {
    /// The address, `None` when off.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            HttpListen::Off => None,
            HttpListen::On(addr) => Some(addr),
        }
    }
}

/// Why an `http_listen` value was refused.
#[derive(Debug, thiserror::Error)]
#[error("expected an address such as 127.0.0.1:8080, or off")]
pub struct HttpListenError;

impl FromStr for HttpListen {
    type Err = HttpListenError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "off" | "none" | "" => Ok(HttpListen::Off),
            addr => addr
                .parse()
                .map(HttpListen::On)
                .map_err(|_| HttpListenError),
        }
    }
}

impl<'de> Deserialize<'de> for HttpListen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `[http]`: the bounds of the HTTP listener. Every one has a default; each
/// keeps a slow, idle or greedy client from holding more than its share.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Connections open at once; past it new connections wait in the
    /// kernel's backlog until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, TLS
    /// handshake included, and how long a kept-alive connection may sit
    /// idle between requests, in milliseconds.
    pub header_timeout_ms: u64,
    /// How long a request may take from its headers to the end of its
    /// response's head (body read included), in milliseconds: above the
    /// longest connection test a form may run.
    pub request_timeout_ms: u64,
    /// The largest request head (request line and headers), in bytes (at least 8192).
    pub max_header_bytes: usize,
    /// The largest request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Seconds a connection may live before it is closed after its current
    /// request (0: no limit).
    pub max_connection_age_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 1_024,
            header_timeout_ms: 10_000,
            request_timeout_ms: 90_000,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 256 * 1024,
            max_connection_age_secs: 600,
        }
    }
}

/// hyper refuses a read buffer below this.
const MIN_HEADER_BYTES: usize = 8192;

impl HttpConfig {
    /// A setting that cannot work, if any.
    pub fn problem(&self) -> Option<&'static str> {
        if self.max_connections == 0 {
            return Some("http.max_connections must be at least 1");
        }
        if self.header_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return Some("http.header_timeout_ms and http.request_timeout_ms must be above 0");
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Some("http.max_header_bytes must be at least 8192");
        }
        None
    }

    fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    fn max_connection_age(&self) -> Option<Duration> {
        (self.max_connection_age_secs > 0)
            .then(|| Duration::from_secs(self.max_connection_age_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_listen_parses_addresses_and_off() {
        assert_eq!("off".parse::<HttpListen>().ok(), Some(HttpListen::Off));
        assert_eq!(
            "127.0.0.1:0".parse::<HttpListen>().ok(),
            Some(HttpListen::On(SocketAddr::from(([127, 0, 0, 1], 0))))
        );
        assert!("localhost".parse::<HttpListen>().is_err());
        assert_eq!(
            HttpListen::default().addr(),
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        assert_eq!(HttpConfig::default().problem(), None);
        let small = HttpConfig {
            max_header_bytes: 100,
            ..HttpConfig::default()
        };
        assert!(small.problem().is_some());
        let none = HttpConfig {
            max_connections: 0,
            ..HttpConfig::default()
        };
        assert!(none.problem().is_some());
    }
}
