//! What the form page does to its link after opening it: check it is still
//! open, keep the secrets typed before a test (sealed), remember which
//! configuration passed its test, and complete it.

use connvault_crypto::{Aad, Sealed, SecretMap};
use secrecy::ExposeSecret as _;

use super::links::LinkState;
use crate::app::App;
use crate::error::ServiceError;
use crate::pb::storage::FormLinkRecord;
use crate::pb::v1::form_link::State;

fn staged_aad<'a>(tenant: &'a str, link: &'a str) -> Aad<'a> {
    Aad {
        tenant,
        record_id: link,
        purpose: "form-link-secrets",
    }
}

impl App {
    /// The record of a link whose form is open; a link revoked, completed
    /// or gone meanwhile is the page's refusal.
    pub async fn open_link_record(
        &self,
        tenant_id: &str,
        link_id: &str,
    ) -> Result<FormLinkRecord, LinkState> {
        match self.link_record(tenant_id, link_id).await {
            Ok(Some(record)) => match State::try_from(record.link_state) {
                Ok(State::Opened) => Ok(record),
                Ok(State::Revoked) => Err(LinkState::Revoked),
                _ => Err(LinkState::Used),
            },
            Ok(None) => Err(LinkState::Invalid),
            Err(error) => {
                tracing::error!(%error, "reading a form link failed");
                Err(LinkState::Invalid)
            }
        }
    }

    /// The secrets staged on a link (empty when none or unreadable).
    pub fn staged_secrets(&self, record: &FormLinkRecord) -> SecretMap {
        if record.staged_secrets.is_empty() {
            return SecretMap::new();
        }
        Sealed::from_bytes(&record.staged_secrets)
            .and_then(|sealed| {
                self.keyring()
                    .open(&staged_aad(&record.tenant_id, &record.link_id), &sealed)
            })
            .unwrap_or_default()
    }

    /// Keeps `secrets` on the open link (replacing what was staged), and
    /// `tested_digest` when a test passed.
    pub async fn stage_on_link(
        &self,
        tenant_id: &str,
        link_id: &str,
        secrets: &SecretMap,
        tested_digest: Option<String>,
    ) -> Result<(), ServiceError> {
        let sealed = if secrets.is_empty() {
            Vec::new()
        } else {
            self.keyring()
                .seal(&staged_aad(tenant_id, link_id), secrets)
                .map_err(|_| ServiceError::Internal("cannot seal staged secrets".into()))?
                .to_bytes()
        };
        self.change_link(tenant_id, link_id, |record, state| {
            if state != State::Opened {
                return Err(ServiceError::FailedPrecondition(
                    "the link is not open".into(),
                ));
            }
            record.staged_secrets = sealed.clone();
            record.tested_digest = tested_digest.clone().unwrap_or_default();
            Ok(())
        })
        .await
        .map(drop)
    }

    /// A digest of a configuration and its secrets, keyed per link: equal
    /// for the same input on the same link, and says nothing of the secrets.
    pub fn form_digest(&self, link_id: &str, canonical: &str, secrets: &SecretMap) -> String {
        let mut text = canonical.to_owned();
        let mut names: Vec<&str> = secrets.keys().collect();
        names.sort_unstable();
        for name in names {
            if let Some(value) = secrets.get(name) {
                text.push('\n');
                text.push_str(name);
                text.push('=');
                text.push_str(value.expose_secret());
            }
        }
        self.keyring().hmac_secret_in(
            &format!("form-link/{link_id}"),
            &secrecy::SecretString::from(text),
        )
    }

    /// Completes an open link with the connection it made or changed (empty
    /// when cancelled); fails if it was revoked or completed meanwhile.
    pub async fn complete_form_link(
        &self,
        tenant_id: &str,
        link_id: &str,
        connection: &str,
    ) -> Result<FormLinkRecord, ServiceError> {
        self.change_link(tenant_id, link_id, |record, state| {
            if state != State::Opened {
                return Err(ServiceError::FailedPrecondition(
                    "the link is not open".into(),
                ));
            }
            record.link_state = State::Completed as i32;
            record.staged_secrets.clear();
            record.tested_digest.clear();
            if !connection.is_empty() {
                record.connection = connection.to_owned();
            }
            Ok(())
        })
        .await
        .map(|((), record)| record)
    }
}
