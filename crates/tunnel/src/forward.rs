//! The local end of a tunnel: a loopback listener whose every accepted
//! connection is carried over a `direct-tcpip` channel of its own.

use std::sync::Arc;

use russh::Channel;
use russh::client::{Handle, Msg};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::Limits;
use crate::open::Client;

/// Accepts connections on `listener` and forwards each to `target` through
/// the session; `first` is the channel opened while the tunnel was checked,
/// used for the first connection. Runs until aborted (the tunnel's drop);
/// the forwarding tasks live in a set that goes with it.
pub(crate) async fn serve(
    listener: TcpListener,
    handle: Arc<Handle<Client>>,
    first: Channel<Msg>,
    target: (String, u16),
    limits: Limits,
) {
    let mut first = Some(first);
    let mut tasks = JoinSet::new();
    let mut accepted = 0usize;
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "tunnel listener failed");
                return;
            }
        };
        // Finished forwards leave the set as they end.
        while tasks.try_join_next().is_some() {}
        if accepted >= limits.max_channels {
            tracing::warn!(
                max = limits.max_channels,
                "tunnel refused a connection over its limit"
            );
            drop(socket);
            continue;
        }
        accepted += 1;
        let channel = match first.take() {
            Some(channel) => channel,
            None => match handle
                .channel_open_direct_tcpip(
                    target.0.as_str(),
                    u32::from(target.1),
                    peer.ip().to_string(),
                    u32::from(peer.port()),
                )
                .await
            {
                Ok(channel) => channel,
                Err(error) => {
                    tracing::debug!(%error, "the bastion did not open another channel");
                    drop(socket);
                    continue;
                }
            },
        };
        tasks.spawn(carry(socket, channel));
    }
}

/// Copies bytes both ways until either side closes.
async fn carry(mut socket: TcpStream, channel: Channel<Msg>) {
    let mut stream = channel.into_stream();
    if let Err(error) = tokio::io::copy_bidirectional(&mut socket, &mut stream).await {
        tracing::debug!(%error, "a tunnelled connection ended with an error");
    }
}
