//! Tunnels through a real, throwaway OpenSSH server to a loopback echo
//! service: each step's success and each failure's category.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use connvault_testkit::servers::{Sshd, SshdOptions, free_port};
use connvault_tunnel::{Auth, Failure, HostKeys, Limits, TunnelConfig, TunnelError, open};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A loopback TCP service that echoes what it reads, one task per connection.
async fn echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

fn key_config(sshd: &Sshd, key: &str) -> TunnelConfig {
    TunnelConfig {
        host: "127.0.0.1".into(),
        port: sshd.port(),
        user: sshd.user().into(),
        auth: Auth::Key {
            key: SecretString::from(key.to_owned()),
            passphrase: None,
        },
        host_keys: HostKeys::Pinned(vec![sshd.host_fingerprint().to_owned()]),
    }
}

async fn dial(
    config: &TunnelConfig,
    target: SocketAddr,
) -> Result<connvault_tunnel::Tunnel, TunnelError> {
    let bastion: SocketAddr = format!("127.0.0.1:{}", config.port).parse().unwrap();
    open(
        config,
        &[bastion],
        ("127.0.0.1", target.port()),
        TIMEOUT,
        Limits { max_channels: 2 },
    )
    .await
}

/// Writes `text` through the tunnel's local end and reads it back.
async fn round_trip(local: SocketAddr, text: &[u8]) -> Vec<u8> {
    let mut socket = tokio::net::TcpStream::connect(local).await.unwrap();
    socket.write_all(text).await.unwrap();
    let mut back = vec![0; text.len()];
    socket.read_exact(&mut back).await.unwrap();
    back
}

#[tokio::test]
async fn a_pinned_bastion_forwards_each_connection_over_its_own_channel_up_to_the_limit() {
    let sshd = Sshd::start(SshdOptions::default());
    let target = echo().await;
    let tunnel = dial(&key_config(&sshd, sshd.client_key()), target)
        .await
        .unwrap();
    assert_eq!(tunnel.opened().host_key, sshd.host_fingerprint());
    let local = tunnel.local_addr();
    assert!(local.ip().is_loopback());
    assert_eq!(round_trip(local, b"first").await, b"first");
    assert_eq!(round_trip(local, b"second").await, b"second");
    // The third connection is over the limit: closed without a byte.
    let mut third = tokio::net::TcpStream::connect(local).await.unwrap();
    let mut buffer = [0u8; 1];
    let read = third.read(&mut buffer).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    let log = sshd.log();
    assert!(
        log.contains(&format!(
            "server_request_direct_tcpip: originator 127.0.0.1 port 0, target 127.0.0.1 port {}",
            target.port()
        )),
        "no forwarded channel in the sshd log:\n{log}"
    );
    tunnel.close().await;
    // Closed: nothing listens on the local end any more.
    assert!(tokio::net::TcpStream::connect(local).await.is_err());
}

#[tokio::test]
async fn an_encrypted_key_needs_its_passphrase() {
    let sshd = Sshd::start(SshdOptions {
        key_passphrase: Some("open sesame".into()),
        ..Default::default()
    });
    let target = echo().await;
    let mut config = key_config(&sshd, sshd.client_key());
    let missing = dial(&config, target).await.unwrap_err();
    assert_eq!(missing.failure, Failure::Config, "{missing}");
    config.auth = Auth::Key {
        key: SecretString::from(sshd.client_key().to_owned()),
        passphrase: Some(SecretString::from("open sesame")),
    };
    let tunnel = dial(&config, target).await.unwrap();
    assert_eq!(round_trip(tunnel.local_addr(), b"locked").await, b"locked");
}

#[tokio::test]
async fn each_failure_has_its_category_and_quotes_no_secret() {
    let sshd = Sshd::start(SshdOptions::default());
    let target = echo().await;

    let mut wrong_pin = key_config(&sshd, sshd.client_key());
    wrong_pin.host_keys = HostKeys::Pinned(vec![
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
    ]);
    let error = dial(&wrong_pin, target).await.unwrap_err();
    assert_eq!(error.failure, Failure::HostKey, "{error}");
    assert!(error.message.contains(sshd.host_fingerprint()), "{error}");

    let stranger = key_config(&sshd, sshd.unauthorized_key());
    let error = dial(&stranger, target).await.unwrap_err();
    assert_eq!(error.failure, Failure::Auth, "{error}");
    assert!(!error.message.contains("PRIVATE KEY"), "{error}");

    let mut closed = key_config(&sshd, sshd.client_key());
    closed.port = free_port();
    let error = dial(&closed, target).await.unwrap_err();
    assert_eq!(error.failure, Failure::Unreachable, "{error}");

    // Nothing listens on the database port behind the bastion.
    let nowhere: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let error = dial(&key_config(&sshd, sshd.client_key()), nowhere)
        .await
        .unwrap_err();
    assert_eq!(error.failure, Failure::Forward, "{error}");

    // Not an SSH server at all: the echo service answers the banner with itself.
    let mut not_ssh = key_config(&sshd, sshd.client_key());
    not_ssh.port = target.port();
    let error = dial(&not_ssh, target).await.unwrap_err();
    assert!(
        matches!(error.failure, Failure::Protocol | Failure::Timeout),
        "{error}"
    );
}

#[tokio::test]
async fn a_password_logs_in_and_a_wrong_one_is_an_auth_failure() {
    if !Sshd::password_supported() {
        eprintln!("skipped: password authentication against sshd needs root here");
        return;
    }
    let sshd = Sshd::start(SshdOptions {
        password: Some("tunnel p@ss".into()),
        ..Default::default()
    });
    let target = echo().await;
    let mut config = key_config(&sshd, sshd.client_key());
    config.auth = Auth::Password(SecretString::from("tunnel p@ss"));
    let tunnel = dial(&config, target).await.unwrap();
    assert_eq!(round_trip(tunnel.local_addr(), b"pw").await, b"pw");
    config.auth = Auth::Password(SecretString::from("wrong"));
    let error = dial(&config, target).await.unwrap_err();
    assert_eq!(error.failure, Failure::Auth, "{error}");
    assert!(!error.message.contains("wrong"), "{error}");
}
