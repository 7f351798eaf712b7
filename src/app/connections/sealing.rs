//! Sealing a connection's secret map into its record, and opening it again.

use connvault_crypto::{Aad, Sealed, SecretMap};

use super::records::Loaded;
use crate::app::App;
use crate::error::ServiceError;
use crate::names::connection_name;

/// Binds a ciphertext to its tenant and connection: moved to another record,
/// it fails to open.
pub(crate) fn aad<'a>(tenant: &'a str, id: &'a str) -> Aad<'a> {
    Aad {
        tenant,
        record_id: id,
        purpose: "connection-secrets",
    }
}

impl App {
    /// Seals `secrets` for connection `id` of `tenant`.
    pub(super) fn seal(
        &self,
        tenant: &str,
        id: &str,
        secrets: &SecretMap,
    ) -> Result<Vec<u8>, ServiceError> {
        self.keyring()
            .seal(&aad(tenant, id), secrets)
            .map(|sealed| sealed.to_bytes())
            .map_err(|_| ServiceError::Internal("sealing failed".into()))
    }

    /// Opens a loaded connection's secrets. Every failure is one DATA_LOSS
    /// (no oracle saying why); the log says which connection.
    pub(super) fn open(&self, loaded: &Loaded) -> Result<SecretMap, ServiceError> {
        let unreadable = || {
            tracing::error!(tenant = %loaded.tenant, connection = %loaded.id, "stored secrets failed to open (corrupt, moved or sealed under another key)");
            ServiceError::DataLoss(format!(
                "the secrets of {} cannot be read back",
                connection_name(&loaded.tenant, &loaded.id)
            ))
        };
        if loaded.stored.sealed_secrets.is_empty() {
            return Ok(SecretMap::new());
        }
        let sealed = Sealed::from_bytes(&loaded.stored.sealed_secrets).map_err(|_| unreadable())?;
        self.keyring()
            .open(&aad(&loaded.tenant, &loaded.id), &sealed)
            .map_err(|_| unreadable())
    }
}
