//! The key calls: data-key rotation, key status, master-key rewrap.

use connvault_crypto::{Keyring, MasterKey};
use zeroize::Zeroizing;

use super::App;
use crate::error::ServiceError;
use crate::live_keys::RotateError;
use crate::pb::v1;

/// Length of a master key.
const MASTER_KEY_LEN: usize = 32;

fn internal(what: &str, error: impl std::fmt::Display) -> ServiceError {
    tracing::error!(%error, "{what}");
    ServiceError::Internal(what.to_owned())
}

fn master_key(field: &str, bytes: Vec<u8>) -> Result<MasterKey, ServiceError> {
    let bytes = Zeroizing::new(bytes);
    let array: [u8; MASTER_KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
        ServiceError::invalid(field, format!("must be exactly {MASTER_KEY_LEN} bytes"))
    })?;
    Ok(MasterKey::from_bytes(array))
}

impl App {
    /// Makes a new data-key version current and starts re-sealing every
    /// record under it. FAILED_PRECONDITION while a rotation runs.
    pub async fn rotate_data_key(&self) -> Result<u32, ServiceError> {
        match self.keys.rotate().await {
            Ok(version) => Ok(version),
            Err(error @ RotateError::Running(_)) => {
                Err(ServiceError::FailedPrecondition(error.to_string()))
            }
            Err(error) => Err(internal("the data-key rotation could not start", error)),
        }
    }

    /// The versions, the records under each (counted now) and the rotation.
    pub async fn key_status(&self) -> Result<v1::KeyStatus, ServiceError> {
        let census = self.keys.census().await?;
        let keyring = self.keys.keyring();
        let current = keyring.current_version();
        let progress = self.keys.rotation();
        let versions = keyring
            .versions()
            .into_iter()
            .map(|version| v1::KeyVersion {
                version,
                current: Some(version) == current,
                records: census.by_version.get(&version).copied().unwrap_or(0),
                tenant_keys: u32::try_from(keyring.tenant_keys_of(version)).unwrap_or(u32::MAX),
            })
            .collect();
        let held = keyring.versions();
        let records_under_missing_versions = census
            .by_version
            .iter()
            .filter(|(version, _)| !held.contains(version))
            .map(|(_, count)| count)
            .sum();
        Ok(v1::KeyStatus {
            versions,
            rotating: progress.running,
            resealed: progress.resealed,
            unreadable: progress.unreadable,
            records_without_secrets: census.without_secrets,
            records_under_missing_versions,
        })
    }

    /// Wraps every data key anew under `new` (the caller proves it holds
    /// `current`, the key the server runs with). No record is rewritten.
    pub async fn rewrap_master_key(
        &self,
        current: Vec<u8>,
        new: Vec<u8>,
    ) -> Result<v1::RewrapMasterKeyResponse, ServiceError> {
        let current = master_key("current_master_key", current)?;
        let new = master_key("new_master_key", new)?;
        let keyring = self.keys.keyring();
        if Keyring::verify_check_value(&current, &keyring.master_check_value()).is_err() {
            return Err(ServiceError::invalid(
                "current_master_key",
                "is not the master key this server runs with",
            ));
        }
        if Keyring::verify_check_value(&new, &keyring.master_check_value()).is_ok() {
            return Err(ServiceError::invalid(
                "new_master_key",
                "is the master key this server already runs with",
            ));
        }
        let mut change = self.keys.change().await;
        change
            .rewrap(new)
            .await
            .map_err(|error| internal("the master key could not be replaced", error))?;
        let keyring = self.keys.keyring();
        let data_keys = keyring.wrapped_keys().len() + keyring.tenant_keys().len();
        tracing::info!(
            data_keys,
            "master key replaced: every data key wrapped anew; restart with the new master key"
        );
        Ok(v1::RewrapMasterKeyResponse {
            data_keys: u32::try_from(data_keys).unwrap_or(u32::MAX),
        })
    }
}
