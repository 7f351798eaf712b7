//! `connvault.v1.AdminService`: backups of the running server, and tenant
//! export and import (age-encrypted).

use std::io::Read as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use connvault_store::sled::SledStore;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::audited::{Answer, Record};
use super::guard::{Guard, permission_denied};
use crate::app::App;
use crate::auth::{Role, TenantScope};
use crate::backup::envelope::{self, EnvelopeError, Identity, MAX_EXPORT_BYTES, Recipient};
use crate::backup::{self, Spooled};
use crate::error::ServiceError;
use crate::names::{parse_tenant, tenant_name};
use crate::pb::v1::{self, admin_service_server::AdminService};

/// Bytes of the backup file per streamed message.
const PIECE: usize = 1 << 20;
/// Messages read ahead of a slow client (each at most [`PIECE`]).
const READ_AHEAD: usize = 4;

/// Serves `AdminService`.
pub struct AdminApi {
    app: Arc<App>,
    store: SledStore,
    data_dir: PathBuf,
    guard: Arc<Guard>,
}

impl AdminApi {
    /// Handlers backing up `store`, whose data directory (holding the key
    /// file, and the spooled backups) is `data_dir`.
    pub fn new(app: Arc<App>, store: SledStore, data_dir: PathBuf, guard: Arc<Guard>) -> Self {
        Self {
            app,
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

/// An encrypted export, ready to stream.
pub struct Sealed {
    bytes: Vec<u8>,
    connections: usize,
}

impl Answer for Sealed {
    type Value = Self;

    fn into_value(self) -> Self {
        self
    }
}

impl Answer for v1::ImportTenantResponse {
    type Value = Self;

    fn into_value(self) -> Self {
        self
    }
}

/// The stream of a backup's pieces.
type BackupStream = Pin<Box<dyn Stream<Item = Result<v1::BackupResponse, Status>> + Send>>;
/// The stream of an export's pieces.
type ExportStream = Pin<Box<dyn Stream<Item = Result<v1::ExportTenantResponse, Status>> + Send>>;

/// An envelope failure in the API's words (the field it concerns).
fn envelope_error(error: EnvelopeError, field: &str) -> ServiceError {
    match error {
        EnvelopeError::Encrypt => ServiceError::Internal("encrypting the export failed".into()),
        other => ServiceError::invalid(field, other.to_string()),
    }
}

/// Runs blocking age work (scrypt takes about a second) off the runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ServiceError::Internal(format!("age task: {error}")))?
}

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
    type ExportTenantStream = ExportStream;

    async fn export_tenant(
        &self,
        request: Request<v1::ExportTenantRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        use v1::export_tenant_request::Recipient as Wire;
        let name = request.get_ref().name.clone();
        let tenant = parse_tenant(&name, "name")?;
        let admitted = self
            .guard
            .admit(&request, &[Role::Admin], Some(&tenant), &name)
            .await?;
        // The export holds the secrets: resolvers' business too.
        if !admitted.principal.has(Role::Resolver) {
            return Err(permission_denied(admitted.method()).into());
        }
        let recipient = match request.into_inner().recipient {
            Some(Wire::AgeRecipient(key)) => Recipient::X25519(key),
            Some(Wire::Passphrase(words)) if !words.is_empty() => {
                Recipient::Passphrase(words.into())
            }
            _ => {
                return Err(ServiceError::invalid(
                    "recipient",
                    "give age_recipient (age1...) or a non-empty passphrase",
                )
                .into());
            }
        };
        let app = Arc::clone(&self.app);
        let sealed = self
            .guard
            .audited(admitted, Record::DurableOutcome, async move {
                let (plaintext, connections) = app.export_tenant(&name).await?;
                let bytes = blocking(move || {
                    envelope::seal(&plaintext, recipient)
                        .map_err(|error| envelope_error(error, "age_recipient"))
                })
                .await?;
                Ok(Sealed { bytes, connections })
            })
            .await?;
        let total = sealed.bytes.len() as u64;
        let connections = u32::try_from(sealed.connections).unwrap_or(u32::MAX);
        let pieces: Vec<Result<v1::ExportTenantResponse, Status>> = sealed
            .bytes
            .chunks(PIECE)
            .enumerate()
            .map(|(index, data)| {
                Ok(v1::ExportTenantResponse {
                    data: data.to_vec(),
                    total_bytes: if index == 0 { total } else { 0 },
                    connections: if index == 0 { connections } else { 0 },
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(pieces))))
    }

    async fn import_tenant(
        &self,
        request: Request<tonic::Streaming<v1::ImportTenantRequest>>,
    ) -> Result<Response<v1::ImportTenantResponse>, Status> {
        use v1::import_tenant_request::Identity as Wire;
        let (metadata, extensions, mut stream) = request.into_parts();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| ServiceError::invalid("data", "the import carried no message"))?;
        // Admission reads the first message: its bounds, the caller. The
        // tenant is known only once the export is open, so the caller must
        // be an admin of every tenant or (checked below) of that one.
        let request = Request::from_parts(metadata, extensions, first);
        let admitted = self
            .guard
            .admit(&request, &[Role::Admin], None, "tenants/-")
            .await?;
        let mut first = request.into_inner();
        let identity = match first.identity.take() {
            Some(Wire::AgeIdentity(key)) => Identity::X25519(key.into()),
            Some(Wire::Passphrase(words)) if !words.is_empty() => {
                Identity::Passphrase(words.into())
            }
            _ => {
                return Err(ServiceError::invalid(
                    "identity",
                    "give age_identity (AGE-SECRET-KEY-1...) or the passphrase",
                )
                .into());
            }
        };
        let identity_field = match identity {
            Identity::X25519(_) => "age_identity",
            Identity::Passphrase(_) => "passphrase",
        };
        let skip_existing = first.skip_existing;
        let mut data = std::mem::take(&mut first.data);
        while let Some(piece) = stream.message().await? {
            crate::bounds::check(&piece)?;
            if data.len() + piece.data.len() > MAX_EXPORT_BYTES {
                return Err(ServiceError::invalid(
                    "data",
                    format!("the export is larger than {MAX_EXPORT_BYTES} bytes"),
                )
                .into());
            }
            data.extend_from_slice(&piece.data);
        }
        let plaintext = blocking(move || {
            envelope::open(&data, identity).map_err(|error| envelope_error(error, identity_field))
        })
        .await?;
        let tenant = connvault_tenant(&plaintext)?;
        let scope_all = admitted.principal.tenants == TenantScope::All;
        if !admitted.principal.may_enter(&tenant) {
            return Err(permission_denied(admitted.method()).into());
        }
        let mut admitted = admitted;
        admitted.set_resource(&tenant_name(&tenant));
        let app = Arc::clone(&self.app);
        let response = self
            .guard
            .audited(admitted, Record::Started, async move {
                app.import_tenant(&plaintext, skip_existing, scope_all)
                    .await
            })
            .await?;
        Ok(Response::new(response))
    }

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

/// The tenant id an export's plaintext names (INVALID_ARGUMENT if it does
/// not decode; the import decodes it in full later).
fn connvault_tenant(plaintext: &[u8]) -> Result<String, ServiceError> {
    use prost::Message as _;
    crate::pb::storage::TenantExport::decode(plaintext)
        .map(|export| export.tenant_id)
        .map_err(|_| ServiceError::invalid("data", "the export does not decode"))
}
