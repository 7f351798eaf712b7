//! Updating a connection: the fields an update mask names, under an etag or
//! retried against concurrent writes.

use connvault_store::AuditAppend;

use super::mask::{self, Patched};
use super::redirect::{Redirect, check_redirect, tunnel_secrets};
use super::rules::check_secrets;
use super::secrets::{TLS_KEY_SECRET, describe_secrets};
use crate::app::{App, etag_of};
use crate::clock::timestamp_now;
use crate::error::ServiceError;
use crate::pb::v1;
use crate::plugin_messages::config_to_struct;

/// How often an update without an etag is tried before it gives up ABORTED.
/// Every round of racing updates has a winner, so this many racers on one
/// connection at once all get through.
const UPDATE_ATTEMPTS: u32 = 32;

impl App {
    /// Updates the fields named in `mask`.
    pub async fn update_connection(
        &self,
        request: v1::UpdateConnectionRequest,
    ) -> Result<v1::Connection, ServiceError> {
        self.update_connection_audited(request, None)
            .await
            .map(|(connection, _)| connection)
    }

    /// [`App::update_connection`], appending `audit` in the update's own store
    /// transaction; returns the entry's sequence number when it was appended.
    ///
    /// A caller that sent no etag asked for "apply this patch to whatever is
    /// there": if another write lands between our read and our
    /// compare-and-swap, the patch is applied again to the new version rather
    /// than failing with ABORTED. With an etag, the conflict is the caller's.
    pub async fn update_connection_audited(
        &self,
        request: v1::UpdateConnectionRequest,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<(v1::Connection, Option<u64>), ServiceError> {
        if !request.etag.is_empty() {
            return self.update_once(request, audit).await;
        }
        let mut attempt = 1;
        loop {
            match self.update_once(request.clone(), audit).await {
                // Without an etag, ABORTED can only come from the lost compare-and-swap.
                Err(ServiceError::Aborted(_)) if attempt < UPDATE_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(
                        attempt,
                        "update raced another write; applying the patch again"
                    );
                }
                other => return other,
            }
        }
    }

    /// One attempt: read, apply the mask, check, guard the secrets'
    /// destination, compare-and-swap.
    async fn update_once(
        &self,
        request: v1::UpdateConnectionRequest,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<(v1::Connection, Option<u64>), ServiceError> {
        let mut patch = request
            .connection
            .ok_or_else(|| ServiceError::invalid("connection", "is required"))?;
        let paths = request
            .update_mask
            .map(|mask| mask.paths)
            .unwrap_or_default();
        if paths.is_empty() {
            return Err(ServiceError::invalid(
                "update_mask",
                "is required: name the fields to change",
            ));
        }
        let loaded = self.load(&patch.name, "connection.name").await?;
        let current_etag = etag_of(&loaded.value);
        if !request.etag.is_empty() && request.etag != current_etag {
            return Err(ServiceError::Aborted(
                "etag does not match: the connection changed since it was read".into(),
            ));
        }
        let old = loaded.connection();
        let secrets = self.open(&loaded)?;
        let old_secret_names: Vec<String> = secrets.keys().map(str::to_owned).collect();
        let old_key = secrets.get(TLS_KEY_SECRET).cloned();
        let old_secrets = secrets.clone();
        let mut violations = Vec::new();
        check_secrets(&patch.secrets, &mut violations);
        let Patched {
            mut next,
            secrets,
            resupplied,
            config_changed,
        } = mask::apply(
            &paths,
            &mut patch,
            old,
            secrets,
            &old_secret_names,
            &mut violations,
        );
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let checked = self.check(&next, &secrets).await?;
        check_redirect(
            &Redirect {
                old,
                next: &next,
                source: &checked.source,
                normalized: &checked.normalized,
                old_key: old_key.as_ref(),
                next_key: secrets.get(TLS_KEY_SECRET),
                old_tunnel: tunnel_secrets(&old_secrets),
                next_tunnel: tunnel_secrets(&secrets),
            },
            &old_secret_names,
            &resupplied,
        )?;

        next.config = Some(config_to_struct(&checked.normalized));
        describe_secrets(&mut next, &secrets);
        next.update_time = Some(timestamp_now());
        next.etag = String::new();
        if config_changed {
            next.last_test = None;
        }
        let gate = self.keys.seal_guard().await;
        let sealed = self.seal(&loaded.tenant, &loaded.id, &secrets)?;
        let updated = self
            .write_back(&loaded, &next, &sealed, &patch.name, audit)
            .await?;
        drop(gate);
        if config_changed {
            // The catalog was read through the old settings: drop it.
            self.forget_metadata(&loaded.tenant, &loaded.id).await;
        }
        Ok(updated)
    }
}
