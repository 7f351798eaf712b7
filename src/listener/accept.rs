//! The accept loop: takes a connection permit, accepts, and starts the
//! socket's handshake; pauses (without spinning or flooding the log) when
//! accepting fails, and waits when the connection limit is reached.

use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use super::conn::Connection;
use super::handshake::Handshaking;
use super::limits::Backoff;

/// Errors that concern one connection the client already gave up on; the
/// next accept is unaffected, so no pause.
fn concerns_one_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Accepts until the receiving end of `ready` is dropped (the server stopped
/// taking connections): then the listening socket closes.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    connections: Arc<Semaphore>,
    max_connections: usize,
    handshaking: Arc<Handshaking>,
    ready: mpsc::Sender<Connection>,
) {
    let mut backoff = Backoff::new();
    loop {
        // The permit travels with the connection and returns when it closes,
        // so established connections and handshakes count alike.
        let permit = match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(suppressed) = handshaking.logs.at_limit.admit() {
                    tracing::warn!(
                        max_connections,
                        suppressed,
                        "at the connection limit: new connections wait until one closes (listener.max_connections)"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&connections).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_closed) => return,
                    },
                    () = ready.closed() => return,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = ready.closed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => {
                backoff.reset();
                pair
            }
            Err(error) if concerns_one_connection(&error) => {
                if let Some(suppressed) = handshaking.logs.accept_aborted.admit() {
                    tracing::debug!(%error, suppressed, "a connection was gone before it was accepted");
                }
                continue;
            }
            Err(error) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once only spins.
                let pause = backoff.next_pause();
                if let Some(suppressed) = handshaking.logs.accept_failed.admit() {
                    tracing::warn!(%error, ?pause, suppressed, "accepting a connection failed; pausing before the next try");
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {},
                    () = ready.closed() => return,
                }
                continue;
            }
        };
        // Without TCP_NODELAY small responses wait on delayed ACKs (~40 ms each).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::trace!(%error, "cannot set TCP_NODELAY");
        }
        let slot = handshaking.admit();
        tokio::spawn(Arc::clone(&handshaking).run(stream, remote, permit, slot, ready.clone()));
    }
}
