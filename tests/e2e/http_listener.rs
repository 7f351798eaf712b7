//! The HTTP listener (`--http-listen`) against the real server: its answer
//! to an unknown path, its head and body limits, the header timeout, the
//! connection limit, and turning it off.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{Options, Server};

fn http_socket(server: &Server) -> TcpStream {
    let addr = server.http_addr.trim_start_matches("http://");
    assert!(!addr.is_empty(), "no HTTP listener line");
    let socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    socket
}

/// Sends `request` and reads one response head and its body (the listener's
/// own answers carry a Content-Length).
fn exchange(socket: &mut TcpStream, request: &[u8]) -> String {
    socket.write_all(request).unwrap();
    read_response(socket)
}

fn read_response(socket: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        match socket.read(&mut buffer) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

fn server_with(args: &[&str], toml: &str) -> Server {
    Server::start_with(Options {
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        toml: toml.to_owned(),
        ..Options::default()
    })
}

#[test]
fn unknown_paths_get_404_with_the_safe_default_headers() {
    let server = Server::start();
    assert!(server.http_addr.starts_with("http://127.0.0.1:"));
    let mut socket = http_socket(&server);
    let response = exchange(
        &mut socket,
        b"GET /nothing-here HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    let lower = response.to_ascii_lowercase();
    for header in [
        "x-content-type-options: nosniff",
        "cache-control: no-store",
        "referrer-policy: no-referrer",
    ] {
        assert!(lower.contains(header), "{header} missing:\n{response}");
    }
    // Kept alive: a second request on the same connection is answered.
    let again = exchange(&mut socket, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(again.starts_with("HTTP/1.1 404"), "{again}");
}

#[test]
fn oversized_heads_and_bodies_are_refused() {
    let server = server_with(&[], "[http]\nmax_body_bytes = 1024\n");
    let mut socket = http_socket(&server);
    let big = format!(
        "POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4096\r\n\r\n{}",
        "a".repeat(4096)
    );
    let response = exchange(&mut socket, big.as_bytes());
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    let mut socket = http_socket(&server);
    let head = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Filler: {}\r\n\r\n",
        "b".repeat(64 * 1024)
    );
    // hyper answers 431 or closes once the head passes the buffer limit;
    // either way the request is never served.
    let _ = socket.write_all(head.as_bytes());
    let response = read_response(&mut socket);
    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 431"),
        "{response}"
    );
}

#[test]
fn a_client_that_never_finishes_its_head_is_closed() {
    let server = server_with(&[], "[http]\nheader_timeout_ms = 300\n");
    let mut socket = http_socket(&server);
    socket.write_all(b"GET / HTTP/1.1\r\nHost: loc").unwrap();
    // Closed (end of file, maybe after a 408) long before the 30 s read timeout.
    let mut received = Vec::new();
    let outcome = socket.read_to_end(&mut received);
    let text = String::from_utf8_lossy(&received);
    let closed = match &outcome {
        Ok(_) => true,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "not closed within 30 s: {outcome:?}");
    assert!(
        !text.contains(" 404 "),
        "the partial request was served: {text}"
    );
}

#[test]
fn connections_past_the_limit_wait_for_one_to_close() {
    let server = server_with(&[], "[http]\nmax_connections = 1\n");
    let mut first = http_socket(&server);
    let response = exchange(&mut first, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    let mut second = http_socket(&server);
    second
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    // While the first connection is open the second is not served.
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = second.read(&mut byte);
    assert!(early.is_err(), "served past the limit: {early:?}");
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let response = read_response(&mut second);
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}

#[test]
fn http_listen_off_starts_no_http_listener() {
    let server = server_with(&["--http-listen", "off"], "");
    assert!(server.http_addr.is_empty());
    let printed = server.stdout.lock().unwrap().join("\n");
    assert!(!printed.contains("http listening"), "{printed}");
}
