//! A fake SQL Server front door: it answers the TDS pre-login, runs the TLS
//! handshake inside pre-login packets (TLS 1.2, as SQL Server does for TDS
//! 7.x), reads the LOGIN7 message and refuses it with error 18456. It
//! records what the login carried, so tests see what tiberius sent through
//! the plugin's transport. It is not a SQL Server: nothing after the login.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use connvault_plugin_sqlserver::tds::{self, END_OF_MESSAGE, HEADER, PRELOGIN, REPLY};
use connvault_testkit::fakes;
use connvault_testkit::servers::Pem;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// The server's ENCRYPTION answers.
pub const ENCRYPT_ON: u8 = 0x01;
pub const ENCRYPT_NOT_SUP: u8 = 0x02;
pub const ENCRYPT_REQ: u8 = 0x03;

/// What a LOGIN7 message carried.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Login {
    pub user: String,
    pub password: String,
    pub app_name: String,
    pub server_name: String,
    pub database: String,
    pub read_only: bool,
    /// Whether it arrived through TLS.
    pub encrypted: bool,
}

/// How the fake answers.
#[derive(Clone)]
pub struct Options {
    /// The ENCRYPTION option of its pre-login answer.
    pub encryption: u8,
    /// Its certificate, for TLS.
    pub certificate: Option<Pem>,
    /// Whether it says the instance name did not match.
    pub wrong_instance: bool,
}

/// Starts the fake; returns its port and the logins it receives.
pub fn start(options: Options) -> (u16, Receiver<Login>) {
    let config = options.certificate.as_ref().map(tls12_config);
    let (sender, receiver) = channel();
    let port = fakes::serve(move |stream| {
        let _ = serve(stream, &options, config.clone(), &sender);
    });
    (port, receiver)
}

fn tls12_config(pem: &Pem) -> Arc<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pem.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pem.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    Arc::new(config)
}

/// Reads one TDS message (packets up to end-of-message): its type and payload.
fn read_message(stream: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        stream.read_exact(&mut header)?;
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let mut body = vec![0u8; length.saturating_sub(HEADER)];
        stream.read_exact(&mut body)?;
        payload.extend_from_slice(&body);
        if header[1] & END_OF_MESSAGE != 0 {
            return Ok((header[0], payload));
        }
    }
}

fn answer(options: &Options) -> Vec<u8> {
    // VERSION 16.0.1000, ENCRYPTION, INSTOPT, THREADID (empty), MARS.
    let values: [&[u8]; 5] = [
        &[16, 0, 0x03, 0xe8, 0, 0],
        &[options.encryption],
        &[u8::from(options.wrong_instance)],
        &[],
        &[0],
    ];
    let table_len = values.len() * 5 + 1;
    let mut table = Vec::new();
    let mut data = Vec::new();
    for (token, value) in [0u8, 1, 2, 3, 4].iter().zip(values) {
        table.push(*token);
        table.extend_from_slice(&((table_len + data.len()) as u16).to_be_bytes());
        table.extend_from_slice(&(value.len() as u16).to_be_bytes());
        data.extend_from_slice(value);
    }
    table.push(0xff);
    table.extend_from_slice(&data);
    tds::packet(REPLY, &table)
}

fn serve(
    mut stream: TcpStream,
    options: &Options,
    config: Option<Arc<rustls::ServerConfig>>,
    logins: &Sender<Login>,
) -> std::io::Result<()> {
    let (kind, request) = read_message(&mut stream)?;
    assert_eq!(kind, PRELOGIN);
    let client_encryption = client_encryption(&request);
    stream.write_all(&answer(options))?;
    let tls = options.encryption != ENCRYPT_NOT_SUP && client_encryption != ENCRYPT_NOT_SUP;
    match (tls, config) {
        (true, Some(config)) => {
            let connection = handshake(&mut stream, config)?;
            let mut encrypted = rustls::StreamOwned::new(connection, stream);
            login(&mut encrypted, true, logins)
        }
        (true, None) => Ok(()),
        (false, _) => login(&mut stream, false, logins),
    }
}

fn client_encryption(request: &[u8]) -> u8 {
    let mut at = 0;
    while request[at] != 0xff {
        if request[at] == 0x01 {
            let offset = usize::from(u16::from_be_bytes([request[at + 1], request[at + 2]]));
            return request[offset];
        }
        at += 5;
    }
    ENCRYPT_NOT_SUP
}

/// The server side of TLS in pre-login packets.
fn handshake(
    stream: &mut TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> std::io::Result<rustls::ServerConnection> {
    let mut connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    loop {
        if connection.wants_write() {
            let mut flight = Vec::new();
            while connection.wants_write() {
                connection.write_tls(&mut flight)?;
            }
            stream.write_all(&tds::packet(PRELOGIN, &flight))?;
            continue;
        }
        if !connection.is_handshaking() {
            return Ok(connection);
        }
        let (kind, payload) = read_message(stream)?;
        assert_eq!(kind, PRELOGIN, "TLS handshake packets are PRELOGIN packets");
        connection.read_tls(&mut &payload[..])?;
        connection
            .process_new_packets()
            .map_err(std::io::Error::other)?;
    }
}

fn utf16(payload: &[u8], field: usize, password: bool) -> String {
    let offset = usize::from(u16::from_le_bytes([payload[field], payload[field + 1]]));
    let chars = usize::from(u16::from_le_bytes([payload[field + 2], payload[field + 3]]));
    let mut bytes = payload[offset..offset + chars * 2].to_vec();
    if password {
        // MS-TDS 2.2.6.4: each byte had its nibbles swapped, then XORed with 0xA5.
        for byte in &mut bytes {
            *byte ^= 0xa5;
            *byte = byte.rotate_left(4);
        }
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    String::from_utf16(&units).unwrap()
}

fn login(
    stream: &mut (impl Read + Write),
    encrypted: bool,
    logins: &Sender<Login>,
) -> std::io::Result<()> {
    let (kind, payload) = read_message(stream)?;
    assert_eq!(kind, 0x10, "a LOGIN7 message");
    let _ = logins.send(Login {
        user: utf16(&payload, 40, false),
        password: utf16(&payload, 44, true),
        app_name: utf16(&payload, 48, false),
        server_name: utf16(&payload, 52, false),
        database: utf16(&payload, 68, false),
        read_only: payload[26] & 0x20 != 0,
        encrypted,
    });
    stream.write_all(&login_failed())?;
    stream.flush()
}

fn us_varchar(text: &str, wide_length: bool) -> Vec<u8> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut bytes = if wide_length {
        (units.len() as u16).to_le_bytes().to_vec()
    } else {
        vec![units.len() as u8]
    };
    for unit in units {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

/// An ERROR token (18456, "Login failed") and a DONE token with the error bit.
fn login_failed() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18456u32.to_le_bytes());
    body.push(1); // state
    body.push(14); // class
    body.extend(us_varchar(
        "Login failed for user 'CANARY-server-text'.",
        true,
    ));
    body.extend(us_varchar("fake", false));
    body.extend(us_varchar("", false));
    body.extend_from_slice(&1u32.to_le_bytes());
    let mut tokens = vec![0xaa];
    tokens.extend_from_slice(&(body.len() as u16).to_le_bytes());
    tokens.extend(body);
    tokens.push(0xfd);
    tokens.extend_from_slice(&0x0002u16.to_le_bytes());
    tokens.extend_from_slice(&0u16.to_le_bytes());
    tokens.extend_from_slice(&0u64.to_le_bytes());
    tds::packet(REPLY, &tokens)
}
