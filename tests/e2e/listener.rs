//! The listener's limits against the real server: thousands of sockets that
//! never speak, handshakes that never finish, the connection limit, the
//! maximum connection age, and plaintext on a non-loopback address.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{Options, Server};

fn socket_addr(server: &Server) -> String {
    server.addr.trim_start_matches("http://").to_owned()
}

/// Waits (up to `bound`, generous) for the server to close `socket`: true
/// when a read returned end-of-file or a reset.
fn closed_by_server(socket: &mut TcpStream, bound: Duration) -> bool {
    socket.set_read_timeout(Some(bound)).unwrap();
    let mut byte = [0u8; 1];
    match socket.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

async fn health(server: &Server) -> Result<(), tonic::Status> {
    HealthClient::new(server.channel().await)
        .check(HealthCheckRequest::default())
        .await
        .map(drop)
}

/// The server log without its colour codes, so `key=value` fields can be matched.
fn plain_log(server: &Server) -> String {
    let text = server.log_text();
    let mut plain = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("\x1b[") {
        plain.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    plain.push_str(rest);
    plain
}

fn log_lines(server: &Server) -> usize {
    server.log_text().lines().count()
}

/// The incident: more TCP connections that never send the HTTP/2 preface
/// than the server has file descriptors. With the default limits a
/// legitimate client is still served and the log grows by a bounded number
/// of lines, not one per socket (nor one per failed accept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_silent_sockets_neither_starve_clients_nor_flood_the_log() {
    const SILENT: usize = 3_000;
    const SERVER_OPEN_FILES: u64 = 2_000;
    // This process holds the sockets: it needs the descriptors too.
    let open_files = connvault::listener::raise_open_file_limit();
    assert!(
        open_files.is_none_or(|limit| limit > SILENT as u64 + 200),
        "the test needs an open-file limit above {SILENT}: {open_files:?}"
    );
    let server = Server::start_with(Options {
        open_files: Some(SERVER_OPEN_FILES),
        ..Options::default()
    });
    let addr = socket_addr(&server);
    let log = plain_log(&server);
    assert!(
        log.contains("limit=2000") && log.contains("max_connections=1744"),
        "the server runs under the lower limit, its connection limit fitted:\n{log}"
    );
    let before = log_lines(&server);

    let started = Instant::now();
    let mut silent = Vec::with_capacity(SILENT);
    let target: std::net::SocketAddr = addr.parse().unwrap();
    for opened in 0..SILENT {
        // A server that stopped accepting (EMFILE) lets the backlog fill and
        // connects time out.
        let socket =
            TcpStream::connect_timeout(&target, Duration::from_secs(60)).unwrap_or_else(|error| {
                panic!("socket {opened}: {error}; the server stopped accepting")
            });
        silent.push(socket);
    }
    let opened_in = started.elapsed();

    let started = Instant::now();
    // Generous for a loaded 2-core machine; the default handshake timeout
    // is 10 s, so a server that made clients wait for silent sockets to
    // time out would still pass a bound of minutes only by luck.
    tokio::time::timeout(Duration::from_secs(60), health(&server))
        .await
        .expect("a legitimate call is served while thousands of silent sockets are open")
        .unwrap();
    let served_in = started.elapsed();
    let mut tenants = server.tenants().await;
    tenants
        .list_tenants(connvault::pb::v1::ListTenantsRequest::default())
        .await
        .unwrap();

    // The oldest silent sockets made way for newer ones: the server closed them.
    assert!(
        closed_by_server(&mut silent[0], Duration::from_secs(60)),
        "the oldest silent socket is closed"
    );
    let written = log_lines(&server) - before;
    eprintln!(
        "{SILENT} silent sockets opened in {opened_in:?}; health served in {served_in:?}; {written} log lines"
    );
    // A line per refusal would be thousands; the throttle allows about one
    // per kind of refusal per second.
    assert!(
        written < 300,
        "{written} log lines for {SILENT} silent sockets:\n{}",
        server.log_text()
    );
    drop(silent);
}

/// A socket that connects and sends nothing, or half a preface, is closed
/// by the server at the handshake timeout.
#[test]
fn the_handshake_timeout_closes_sockets_that_do_not_start_http2() {
    let server = Server::start_with(Options {
        args: vec!["--handshake-timeout-ms".into(), "300".into()],
        ..Options::default()
    });
    let addr = socket_addr(&server);
    let mut silent = TcpStream::connect(&addr).unwrap();
    let mut partial = TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut partial, b"PRI * HTTP/2.0\r\n").unwrap();
    assert!(closed_by_server(&mut silent, Duration::from_secs(60)));
    assert!(closed_by_server(&mut partial, Duration::from_secs(60)));
    assert!(
        log_shows(&server, "did not complete its handshake in time"),
        "{}",
        server.log_text()
    );
}

/// Whether the server's log shows `text` within a generous bound: the line
/// may be written just after the socket it is about has closed.
fn log_shows(server: &Server, text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log_text().contains(text) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// With every handshake slot taken, a new socket closes the oldest handshake
/// at once, long before the (here ten-minute) handshake timeout.
#[test]
fn a_full_handshake_budget_closes_the_oldest_socket() {
    let server = Server::start_with(Options {
        args: ["--max-handshakes", "4", "--handshake-timeout-ms", "600000"]
            .map(String::from)
            .to_vec(),
        ..Options::default()
    });
    let addr = socket_addr(&server);
    let mut sockets: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Four handshakes fill the budget; the fifth pushes the first out.
    let _fifth = TcpStream::connect(&addr).unwrap();
    assert!(
        closed_by_server(&mut sockets[0], Duration::from_secs(60)),
        "the oldest handshake is closed for the newcomer"
    );
    assert!(log_shows(&server, "every handshake slot is taken"));
}

/// At `--max-connections`, a new connection waits until one closes, and is
/// then served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_new_clients_wait_for_a_free_slot() {
    let server = Server::start_with(Options {
        args: vec!["--max-connections".into(), "2".into()],
        ..Options::default()
    });
    let mut first = HealthClient::new(server.channel().await);
    first.check(HealthCheckRequest::default()).await.unwrap();
    let second = HealthClient::new(server.channel().await);
    second
        .clone()
        .check(HealthCheckRequest::default())
        .await
        .unwrap();

    let waiting = tokio::spawn({
        let addr = server.addr.clone();
        async move {
            let channel = tonic::transport::Channel::from_shared(addr)
                .unwrap()
                .connect()
                .await
                .unwrap();
            HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
        }
    });
    // While two connections are open the third is not served. (A slow
    // machine can only make this wait longer, never make it pass wrongly.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served past the limit of 2"
    );
    assert!(server.log_text().contains("at the connection limit"));

    drop(first);
    let served = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the waiting client is served once a connection closes")
        .unwrap();
    served.unwrap();
    drop(second);
}

/// Plaintext on an address other hosts reach is refused at start, before
/// the data directory is touched, unless TLS, --dev or
/// --insecure-plaintext says otherwise.
#[test]
fn plaintext_on_a_non_loopback_address_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&data)
        .env(
            "CONNVAULT_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .env_remove("CONNVAULT_DEV")
        .env_remove("CONNVAULT_INSECURE_PLAINTEXT")
        .env_remove("CONNVAULT_TLS_CERT_FILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to serve plaintext on 0.0.0.0:0")
            && stderr.contains("--insecure-plaintext"),
        "{stderr}"
    );
    assert!(!data.exists(), "nothing was created");
}

/// Reads HTTP/2 frames from `socket` until a GOAWAY arrives (true) or the
/// connection ends or `bound` passes without one (false).
fn goaway_arrives(socket: &mut TcpStream, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        let mut header = [0u8; 9];
        if socket.read_exact(&mut header).is_err() {
            return false;
        }
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        if socket.read_exact(&mut payload).is_err() {
            return false;
        }
        const GOAWAY: u8 = 0x7;
        if header[3] == GOAWAY {
            return true;
        }
    }
}

/// A client that completed its handshake and then holds the connection
/// without a request (and, here, without pings to answer) is asked to go
/// away once the connection reaches its maximum age, and the server closes
/// it: no slot is held forever.
#[test]
fn an_idle_connection_is_sent_away_at_its_maximum_age() {
    let server = Server::start_with(Options {
        args: [
            "--max-connection-age-secs",
            "1",
            "--http2-keepalive-interval-secs",
            "0",
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    });
    let mut idle = TcpStream::connect(socket_addr(&server)).unwrap();
    let empty_settings = [0u8, 0, 0, 0x4, 0, 0, 0, 0, 0];
    std::io::Write::write_all(&mut idle, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    std::io::Write::write_all(&mut idle, &empty_settings).unwrap();
    // Acknowledge the server's SETTINGS once they arrive, as every client
    // does: hyper closes a connection still in its handshake without a GOAWAY.
    let mut header = [0u8; 9];
    idle.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    idle.read_exact(&mut header).unwrap();
    assert_eq!(header[3], 0x4, "the server speaks first with SETTINGS");
    let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    idle.read_exact(&mut vec![0u8; length]).unwrap();
    let settings_ack = [0u8, 0, 0, 0x4, 0x1, 0, 0, 0, 0];
    std::io::Write::write_all(&mut idle, &settings_ack).unwrap();
    assert!(
        goaway_arrives(&mut idle, Duration::from_secs(60)),
        "the server sends GOAWAY at the connection's maximum age"
    );
    assert!(
        drained_to_the_end(&mut idle, Duration::from_secs(60)),
        "the server closes the connection after its GOAWAY"
    );
}

/// Answers the server's pings, as any HTTP/2 client does, until the server
/// closes `socket` (true) or `bound` passes (false).
fn drained_to_the_end(socket: &mut TcpStream, bound: Duration) -> bool {
    const PING: u8 = 0x6;
    const ACK: u8 = 0x1;
    let deadline = Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        let mut header = [0u8; 9];
        match socket.read_exact(&mut header) {
            Ok(()) => {}
            Err(error) => {
                return matches!(
                    error.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                );
            }
        }
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        if socket.read_exact(&mut payload).is_err() {
            return true;
        }
        if header[3] == PING && header[4] & ACK == 0 {
            let mut pong = vec![0u8, 0, 8, PING, ACK, 0, 0, 0, 0];
            pong.extend_from_slice(&payload);
            if std::io::Write::write_all(socket, &pong).is_err() {
                return true;
            }
        }
    }
}
