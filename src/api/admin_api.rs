//! `connvault.v1.AdminService`: backups of the running server.

use std::io::Read as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use connvault_store::sled::SledStore;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::audited::{Answer, Record};
use super::guard::{Guard, permission_denied};
use crate::auth::{Role, TenantScope};
use crate::backup::{self, Spooled};
use crate::error::ServiceError;
use crate::pb::v1::{self, admin_service_server::AdminService};

/// Bytes of the backup file per streamed message.
const PIECE: usize = 1 << 20;
/// Messages read ahead of a slow client (each at most [`PIECE`]).
const READ_AHEAD: usize = 4;

/// Serves `AdminService`.
pub struct AdminApi {
    store: SledStore,
    data_dir: PathBuf,
    guard: Arc<Guard>,
}

impl AdminApi {
    /// Handlers backing up `store`, whose data directory (holding the key
    /// file, and the spooled backups) is `data_dir`.
    pub fn new(store: SledStore, data_dir: PathBuf, guard: Arc<Guard>) -> Self {
        Self {
            store,
            data_dir,
            guard,
        }
    }
}

impl Answer for Spooled {
    type Value = Self;

    fn into_value(self) -> Self {
        self
    }
}

/// The stream of a backup's pieces.
type BackupStream = Pin<Box<dyn Stream<Item = Result<v1::BackupResponse, Status>> + Send>>;

/// Reads the spooled file in pieces into `tx` until the client goes away.
fn stream_file(
    mut spooled: Spooled,
    tx: tokio::sync::mpsc::Sender<Result<v1::BackupResponse, Status>>,
) {
    let mut first = true;
    loop {
        let mut data = vec![0u8; PIECE];
        let read = match spooled.file.read(&mut data) {
            Ok(0) => return,
            Ok(read) => read,
            Err(error) => {
                tracing::error!(%error, "reading the spooled backup failed");
                let _ =
                    tx.blocking_send(Err(Status::internal("the backup could not be read back")));
                return;
            }
        };
        data.truncate(read);
        let piece = v1::BackupResponse {
            data,
            total_bytes: if first { spooled.len } else { 0 },
        };
        first = false;
        if tx.blocking_send(Ok(piece)).is_err() {
            return; // The client went away.
        }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    type BackupStream = BackupStream;

    async fn backup(
        &self,
        request: Request<v1::BackupRequest>,
    ) -> Result<Response<BackupStream>, Status> {
        let admitted = self
            .guard
            .admit(&request, &[Role::Admin], None, "backup")
            .await?;
        // The whole store holds every tenant: operators only.
        if admitted.principal.tenants != TenantScope::All {
            return Err(permission_denied(admitted.method()).into());
        }
        let store = self.store.clone();
        let data_dir = self.data_dir.clone();
        let spooled = self
            .guard
            .audited(admitted, Record::DurableOutcome, async move {
                tokio::task::spawn_blocking(move || backup::take(&store, &data_dir, &data_dir))
                    .await
                    .map_err(|error| ServiceError::Internal(format!("backup task: {error}")))?
                    .map_err(|error| {
                        tracing::error!(%error, "taking a backup failed");
                        ServiceError::Internal("the backup could not be taken".into())
                    })
            })
            .await?;
        tracing::info!(
            bytes = spooled.len,
            entries = spooled.entries,
            change = spooled.last_change_seq,
            "backup taken; streaming it"
        );
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        tokio::task::spawn_blocking(move || stream_file(spooled, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
