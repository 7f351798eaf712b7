//! `connvault keys …`: the key verbs of the command line. Offline ones work
//! on a stopped server's data directory; online ones call `KeyService` on a
//! running server with an operator's bearer token.

use std::path::Path;

use connvault_crypto::{Keyring, MasterKey};
use tonic::transport::{Channel, Endpoint};

use crate::live_keys::LiveKeys;
use crate::master_key::{self, KeyError};
use crate::pb::v1;
use crate::pb::v1::key_service_client::KeyServiceClient;
use crate::store_setup::{self, OpenError};

/// Why a key verb failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyCliError {
    /// The data directory could not be opened (locked: a server runs on it).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A key problem (wrong master key, key file...).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The old and new master keys are the same.
    #[error("the new master key is the one the data directory is already sealed with")]
    SameKey,
    /// The server address is not one to send master keys to in the clear.
    #[error(
        "{0}: master keys are sent only to a server on loopback over plain HTTP (the CLI has no TLS); run `connvault keys rewrap --data-dir` on the stopped server, or call KeyService/RewrapMasterKey over TLS"
    )]
    NotLoopback(String),
    /// The server could not be reached or refused the call.
    #[error("{0}")]
    Call(String),
}

/// Re-wraps the data keys of the stopped server's `data_dir` from `old`
/// to `new`: the key file and the store's copy change, no record does.
/// Returns how many data keys were wrapped anew.
pub async fn rewrap_offline(
    data_dir: &Path,
    old: MasterKey,
    new: MasterKey,
) -> Result<usize, KeyCliError> {
    master_key::check_key_file(&old, data_dir)?;
    if Keyring::verify_check_value(&new, &Keyring::check_value(&old)).is_ok() {
        return Err(KeyCliError::SameKey);
    }
    let path = data_dir.join("store");
    let store = tokio::task::spawn_blocking(move || {
        store_setup::open_sled(&path, connvault_store::sled::SledOptions::default())
    })
    .await
    .map_err(|error| KeyCliError::Call(format!("store task failed: {error}")))?
    .map_err(OpenError::from)?;
    let store: std::sync::Arc<dyn connvault_store::Store> = std::sync::Arc::new(store);
    let (keyring, _) = master_key::open_keyring(store.as_ref(), old, data_dir, false).await?;
    let keys = LiveKeys::new(store, keyring, data_dir);
    keys.change().await.rewrap(new).await?;
    let keyring = keys.keyring();
    Ok(keyring.wrapped_keys().len() + keyring.tenant_keys().len())
}

/// A `KeyService` client of `server` sending `token`.
pub async fn client(
    server: &str,
    token: &str,
) -> Result<
    KeyServiceClient<
        tonic::service::interceptor::InterceptedService<
            Channel,
            impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + use<>,
        >,
    >,
    KeyCliError,
> {
    let channel = Endpoint::from_shared(server.to_owned())
        .map_err(|error| KeyCliError::Call(format!("{server}: {error}")))?
        .connect()
        .await
        .map_err(|error| KeyCliError::Call(format!("{server}: {error}")))?;
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| KeyCliError::Call("the token is not a valid header value".into()))?;
    Ok(KeyServiceClient::with_interceptor(
        channel,
        move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
            Ok(request)
        },
    ))
}

fn call_error(status: tonic::Status) -> KeyCliError {
    KeyCliError::Call(format!("{:?}: {}", status.code(), status.message()))
}

/// `KeyService.RotateDataKey`.
pub async fn rotate(server: &str, token: &str) -> Result<v1::KeyStatus, KeyCliError> {
    client(server, token)
        .await?
        .rotate_data_key(v1::RotateDataKeyRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(call_error)
}

/// `KeyService.GetKeyStatus`.
pub async fn status(server: &str, token: &str) -> Result<v1::KeyStatus, KeyCliError> {
    client(server, token)
        .await?
        .get_key_status(v1::GetKeyStatusRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(call_error)
}

/// `KeyService.RewrapMasterKey`, to a server on loopback only (the keys
/// travel in the request).
pub async fn rewrap_online(
    server: &str,
    token: &str,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<u32, KeyCliError> {
    let uri: tonic::codegen::http::Uri = server
        .parse()
        .map_err(|_| KeyCliError::NotLoopback(server.to_owned()))?;
    let loopback = uri.host().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if uri.scheme_str() != Some("http") || !loopback {
        return Err(KeyCliError::NotLoopback(server.to_owned()));
    }
    let request = v1::RewrapMasterKeyRequest {
        current_master_key: old.expose_bytes().to_vec(),
        new_master_key: new.expose_bytes().to_vec(),
    };
    client(server, token)
        .await?
        .rewrap_master_key(request)
        .await
        .map(|response| response.into_inner().data_keys)
        .map_err(call_error)
}

/// The status as the CLI prints it.
pub fn describe(status: &v1::KeyStatus) -> String {
    let mut out = String::new();
    for version in &status.versions {
        out.push_str(&format!(
            "version {}{}: {} record(s), {} tenant key(s)\n",
            version.version,
            if version.current { " (current)" } else { "" },
            version.records,
            version.tenant_keys
        ));
    }
    out.push_str(&format!(
        "rotation: {}; {} record(s) re-sealed since the server started, {} unreadable\n{} record(s) without secrets, {} under a version no longer held\n",
        if status.rotating { "RUNNING" } else { "idle" },
        status.resealed,
        status.unreadable,
        status.records_without_secrets,
        status.records_under_missing_versions
    ));
    out
}
