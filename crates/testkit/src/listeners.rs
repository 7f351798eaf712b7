//! Loopback listeners that stand where a database should: one that records
//! every connection made to it (to prove nothing was), and one that speaks
//! another protocol (to prove its bytes never come back in a message).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A listener on 127.0.0.1 that accepts every connection, says nothing,
/// holds it, and records the client's port.
#[derive(Debug)]
pub struct Recorder {
    port: u16,
    clients: Arc<Mutex<Vec<u16>>>,
}

impl Recorder {
    /// Starts listening on a free loopback port.
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let clients: Arc<Mutex<Vec<u16>>> = Arc::default();
        let recorded = Arc::clone(&clients);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                let client = stream.peer_addr().map(|peer| peer.port()).unwrap_or(0);
                recorded.lock().unwrap().push(client);
                if held.len() < 64 {
                    held.push(stream);
                }
            }
        });
        Recorder { port, clients }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections were made to it before now.
    ///
    /// A connection the kernel accepted may not have reached the listener
    /// thread yet, so this connects once more itself and waits for that
    /// connection to be recorded: the accept queue is first in, first out,
    /// so every earlier connection is recorded by then.
    pub fn connections(&self) -> usize {
        let sentinel = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let own = sentinel.local_addr().unwrap().port();
        let started = Instant::now();
        loop {
            if let Some(position) = self.clients.lock().unwrap().iter().position(|c| *c == own) {
                return position;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the recorder never saw its own connection"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What [`foreign_server`] says: an HTTP error page with a banner.
pub const FOREIGN_REPLY: &str =
    "HTTP/1.1 400 Bad Request\r\nServer: leaky-banner/1.0\r\nContent-Length: 0\r\n\r\n";

/// What of [`FOREIGN_REPLY`] `message` quotes, if anything: a fragment of
/// its text, or one of its first bytes (`H`, `T`, `P`) printed as a number
/// the way drivers print a byte they did not expect (`72`, `0x48`).
pub fn quotes_foreign_reply(message: &str) -> Option<String> {
    const TEXT: &[&str] = &["HT", "Bad Request", "leaky", "banner"];
    const BYTES: &[&str] = &["72", "84", "80", "0x48", "0x54", "0x50"];
    if let Some(fragment) = TEXT.iter().find(|fragment| message.contains(*fragment)) {
        return Some((*fragment).to_owned());
    }
    message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|token| BYTES.contains(token))
        .map(str::to_owned)
}

/// A server on 127.0.0.1 that speaks HTTP, not the protocol a provider
/// expects: it sends [`FOREIGN_REPLY`] as soon as a client connects (as a
/// service that talks first would) and again after whatever the client
/// sends (as an HTTP server would), then closes. Returns its port.
pub fn foreign_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten().take(256) {
            std::thread::spawn(move || {
                let _ = stream.write_all(FOREIGN_REPLY.as_bytes());
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buffer = [0u8; 4096];
                if matches!(stream.read(&mut buffer), Ok(read) if read > 0) {
                    let _ = stream.write_all(FOREIGN_REPLY.as_bytes());
                }
            });
        }
    });
    port
}
