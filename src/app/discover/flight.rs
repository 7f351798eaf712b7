//! The single flight: concurrent reads of one connection with the same
//! parameters share one plugin call. The first caller starts the read as a
//! task of its own, so a caller that goes away does not cancel it for the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::params::{HOST_MARGIN, Params};
use crate::app::App;
use crate::error::ServiceError;
use crate::pb::v1;

/// What a finished read hands to every caller waiting on it.
type Outcome = Result<Arc<v1::DiscoverMetadataResponse>, ServiceError>;
/// A read in progress: its id and the channel its outcome is published on.
type Flight = (u64, watch::Receiver<Option<Outcome>>);

/// Identifies reads that may share one plugin call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct FlightKey {
    /// The connection's tenant.
    pub(super) tenant: String,
    /// The connection's id.
    pub(super) id: String,
    /// The parameters' cache key.
    pub(super) cache_key: String,
    /// Whether the read skips the cache.
    pub(super) refresh: bool,
    /// Reads started before an invalidation are not joined after it.
    pub(super) epoch: u64,
}

/// The in-flight reads and the invalidation epoch.
#[derive(Debug, Default)]
pub(in crate::app) struct MetadataState {
    /// Reads in progress, each with the channel its outcome is published on.
    pub(super) flights: Mutex<HashMap<FlightKey, Flight>>,
    /// Bumped by every invalidation. Held while a read stores its result and
    /// while an invalidation clears the store, so the two never interleave.
    /// An async lock: it is held across the store call.
    pub(super) epoch: tokio::sync::Mutex<u64>,
    /// Ids of reads, so a finished read removes only its own map entry.
    pub(super) next_flight: AtomicU64,
    /// Plugin `discover` calls made (for logs and tests).
    pub(super) plugin_calls: AtomicU64,
}

impl MetadataState {
    /// The current invalidation epoch.
    pub(super) async fn epoch(&self) -> u64 {
        *self.epoch.lock().await
    }
}

/// DEADLINE_EXCEEDED for a caller that stopped waiting on a shared read.
fn deadline_exceeded(timeout: Duration) -> ServiceError {
    ServiceError::DeadlineExceeded(format!(
        "metadata discovery did not finish within {timeout:?}"
    ))
}

impl App {
    /// Joins the read `key` in flight, or starts it (reading connection
    /// `name` with `params`), and waits at most `timeout` (plus the host's
    /// margin) for its outcome.
    pub(super) async fn join_flight(
        self: &Arc<Self>,
        key: FlightKey,
        name: &str,
        params: Params,
        timeout: Duration,
    ) -> Result<v1::DiscoverMetadataResponse, ServiceError> {
        let mut receiver = {
            let mut flights = self
                .metadata
                .flights
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match flights.get(&key) {
                Some((_, receiver)) => receiver.clone(),
                None => {
                    let flight = self.metadata.next_flight.fetch_add(1, Ordering::Relaxed);
                    let (sender, receiver) = watch::channel(None);
                    flights.insert(key.clone(), (flight, receiver.clone()));
                    let app = Arc::clone(self);
                    let name = name.to_owned();
                    tokio::spawn(async move {
                        let outcome = app
                            .read_catalog(&name, &key, &params, timeout)
                            .await
                            .map(Arc::new);
                        // Unpublish before answering: a caller arriving later
                        // finds the cache (or starts a fresh read), never a
                        // finished flight's leftovers.
                        let mut flights = app
                            .metadata
                            .flights
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        if flights.get(&key).is_some_and(|(id, _)| *id == flight) {
                            flights.remove(&key);
                        }
                        drop(flights);
                        let _ = sender.send(Some(outcome));
                    });
                    receiver
                }
            }
        };
        let waited =
            tokio::time::timeout(timeout + HOST_MARGIN, receiver.wait_for(Option::is_some))
                .await
                .map_err(|_| deadline_exceeded(timeout))?
                .map_err(|_| {
                    ServiceError::Internal("a metadata read ended without an answer".into())
                })?
                .clone();
        match waited {
            Some(Ok(response)) => Ok(response.as_ref().clone()),
            Some(Err(error)) => Err(error),
            None => Err(ServiceError::Internal(
                "a metadata read ended without an answer".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use connvault_plugin_host::CallError;

    use super::*;

    #[test]
    fn shared_errors_keep_their_status() {
        let original = ServiceError::from(CallError::DeadlineExceeded {
            plugin: "p".into(),
            method: "discover",
            deadline: Duration::from_secs(1),
        });
        let copy = tonic::Status::from(original.clone());
        assert_eq!(copy.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(copy.message(), original.to_string());
        let copy = tonic::Status::from(ServiceError::NotFound("x".into()).clone());
        assert_eq!(copy.code(), tonic::Code::NotFound);
        assert_eq!(
            tonic::Status::from(deadline_exceeded(Duration::from_secs(1))).code(),
            tonic::Code::DeadlineExceeded
        );
    }
}
