//! Form links: created by a partner's backend, opened once by a browser,
//! completed by a save, revoked, or left to expire. The state is a record
//! in the store's meta keyspace (`form_link/{tenant}/{link}`), changed only
//! by compare-and-swap so two browsers racing on one link cannot both open it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;

use super::token::LinkToken;
use super::{DEFAULT_LINK_TTL_SECS, MAX_LINK_TTL_SECS, MAX_REDIRECT_URL_BYTES, MAX_STATE_BYTES};
use super::{redirect_allowed, settings::MAX_FORM_DATA_SOURCES};
use crate::app::{App, check_labels};
use crate::clock::timestamp_now;
use crate::error::{ServiceError, Violation};
use crate::names::{connection_name, parse_connection, parse_tenant, tenant_name};
use crate::pb::storage::FormLinkRecord;
use crate::pb::v1;
use crate::pb::v1::form_link::State;

/// How often a state change retries a lost compare-and-swap.
const CAS_ATTEMPTS: usize = 8;

/// The state of a link as a page sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Already opened or completed: a link works once.
    Used,
    /// Past its expiry.
    Expired,
    /// Revoked by the partner.
    Revoked,
    /// Not a token this server made, or its link is gone.
    Invalid,
}

/// A link just opened: what its form needs.
#[derive(Debug, Clone)]
pub struct OpenedLink {
    /// The link's stored record.
    pub record: FormLinkRecord,
}

fn meta_key(tenant_id: &str, link_id: &str) -> String {
    format!("form_link/{tenant_id}/{link_id}")
}

/// `tenants/{tenant}/formLinks/{link}`.
pub fn link_name(tenant_id: &str, link_id: &str) -> String {
    format!("{}/formLinks/{link_id}", tenant_name(tenant_id))
}

fn parse_link(name: &str) -> Result<(String, String), ServiceError> {
    let invalid =
        || ServiceError::invalid("name", "must be tenants/{tenant_id}/formLinks/{link_id}");
    let (tenant, link) = name.split_once("/formLinks/").ok_or_else(invalid)?;
    let tenant = parse_tenant(tenant, "name").map_err(|_| invalid())?;
    if uuid::Uuid::try_parse(link).is_err() {
        return Err(invalid());
    }
    Ok((tenant, link.to_ascii_lowercase()))
}

fn unix(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The state as it stands now: a pending link past its expiry is expired.
fn effective_state(record: &FormLinkRecord, now: i64) -> State {
    let state = State::try_from(record.link_state).unwrap_or(State::Pending);
    let expired = record.expire_time.is_some_and(|time| time.seconds <= now);
    if state == State::Pending && expired {
        State::Expired
    } else {
        state
    }
}

/// The API's view of a link (never its token: `url` is set on creation only).
fn to_api(record: &FormLinkRecord, now: i64) -> v1::FormLink {
    let flow = if record.edit {
        v1::form_link::Flow::Edit(v1::EditFlow {
            connection: record.connection.clone(),
        })
    } else {
        v1::form_link::Flow::Create(v1::CreateFlow {
            data_source: record.data_source.clone(),
            display_name: record.display_name.clone(),
            editable_name: record.editable_name,
            labels: record.labels.clone(),
            product: record.product.clone(),
        })
    };
    v1::FormLink {
        name: link_name(&record.tenant_id, &record.link_id),
        url: String::new(),
        expire_time: record.expire_time,
        state: effective_state(record, now) as i32,
        redirect_url: record.redirect_url.clone(),
        flow: Some(flow),
        require_test: record.require_test,
        create_time: record.create_time,
        connection: if record.edit || record.link_state == State::Completed as i32 {
            record.connection.clone()
        } else {
            String::new()
        },
    }
}

fn now_unix() -> i64 {
    unix(SystemTime::now())
}

impl App {
    /// Creates a form link (see `FormLinkService.CreateFormLink`).
    pub async fn create_form_link(
        &self,
        request: v1::CreateFormLinkRequest,
    ) -> Result<v1::FormLink, ServiceError> {
        let tenant_id = parse_tenant(&request.parent, "parent")?;
        let tenant = self.get_tenant(&request.parent).await?;
        let Some(settings) = tenant.forms.clone() else {
            return Err(ServiceError::FailedPrecondition(format!(
                "{} has no form settings: set `forms` with UpdateTenant first",
                request.parent
            )));
        };
        let Some(base_url) = self.form_base_url().map(str::to_owned) else {
            return Err(ServiceError::FailedPrecondition(
                "the HTTP listener is off (--http-listen): forms cannot be served".into(),
            ));
        };
        let mut violations = Vec::new();
        let mut invalid = |field: &str, description: String| {
            violations.push(Violation {
                field: field.into(),
                description,
            })
        };
        if request.redirect_url.is_empty() {
            invalid("redirect_url", "is required".into());
        } else if request.redirect_url.len() > MAX_REDIRECT_URL_BYTES
            || !redirect_allowed(&settings, &request.redirect_url)
        {
            invalid(
                "redirect_url",
                "must be an absolute URL under one of the tenant's forms.allowed_redirect_origins"
                    .into(),
            );
        }
        if request.state.len() > MAX_STATE_BYTES {
            invalid("state", format!("must be at most {MAX_STATE_BYTES} bytes"));
        }
        let ttl = match request.ttl {
            None => Duration::from_secs(DEFAULT_LINK_TTL_SECS),
            Some(ttl)
                if ttl.seconds > 0 && ttl.seconds as u64 <= MAX_LINK_TTL_SECS && ttl.nanos >= 0 =>
            {
                Duration::from_secs(ttl.seconds as u64)
            }
            Some(_) => {
                invalid(
                    "ttl",
                    format!("must be between 1 s and {MAX_LINK_TTL_SECS} s"),
                );
                Duration::ZERO
            }
        };
        let mut record = FormLinkRecord {
            tenant_id: tenant_id.clone(),
            link_id: uuid::Uuid::now_v7().to_string(),
            redirect_url: request.redirect_url.clone(),
            state: request.state.clone(),
            link_state: State::Pending as i32,
            require_test: request.require_test,
            ..FormLinkRecord::default()
        };
        match request.flow {
            None => invalid("flow", "is required: `create` or `edit`".into()),
            Some(v1::create_form_link_request::Flow::Create(create)) => {
                let allowed = &settings.allowed_data_sources;
                if create.data_source.is_empty() {
                    if allowed.is_empty() {
                        invalid(
                            "create.data_source",
                            "is required: the tenant's forms.allowed_data_sources is empty".into(),
                        );
                    }
                } else if !allowed
                    .iter()
                    .any(|id| id.eq_ignore_ascii_case(&create.data_source))
                {
                    invalid(
                        "create.data_source",
                        "must be one of the tenant's forms.allowed_data_sources".into(),
                    );
                } else if self.plugins().find(&create.data_source).is_none() {
                    invalid(
                        "create.data_source",
                        "no loaded plugin serves this data source".into(),
                    );
                }
                if create.display_name.chars().count()
                    > crate::bounds::MAX_CONNECTION_DISPLAY_NAME_CHARS
                {
                    invalid("create.display_name", "is too long".into());
                }
                if create.product.len() > crate::bounds::MAX_PRODUCT_BYTES {
                    invalid("create.product", "is too long".into());
                }
                check_labels(&create.labels, "create.labels", &mut violations);
                record.data_source = create.data_source.to_ascii_lowercase();
                record.display_name = create.display_name;
                record.editable_name = create.editable_name || record.display_name.is_empty();
                record.labels = create.labels;
                record.product = create.product;
            }
            Some(v1::create_form_link_request::Flow::Edit(edit)) => {
                match parse_connection(&edit.connection, "edit.connection") {
                    Ok((owner, id)) if owner == tenant_id => {
                        record.edit = true;
                        record.connection = connection_name(&owner, &id);
                    }
                    Ok(_) => invalid(
                        "edit.connection",
                        "must be a connection of the link's tenant".into(),
                    ),
                    Err(ServiceError::InvalidArgument(found)) => violations.extend(found),
                    Err(other) => return Err(other),
                }
            }
        }
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        debug_assert!(settings.allowed_data_sources.len() <= MAX_FORM_DATA_SOURCES);
        if record.edit {
            // NOT_FOUND now rather than a broken page later.
            self.get_connection(&record.connection).await?;
        }
        let created = timestamp_now();
        let expire = SystemTime::now() + ttl;
        record.create_time = Some(created);
        record.update_time = Some(created);
        record.expire_time = Some(prost_types::Timestamp::from(expire));
        let token = LinkToken {
            tenant_id: tenant_id.clone(),
            link_id: record.link_id.clone(),
            expire_unix: unix(expire),
            edit: record.edit,
            connection: record.connection.clone(),
            redirect_url: record.redirect_url.clone(),
        }
        .seal(&self.keyring())
        .ok_or_else(|| ServiceError::Internal("cannot seal a form link token".into()))?;
        self.store
            .cas_meta(
                &meta_key(&tenant_id, &record.link_id),
                None,
                Some(&record.encode_to_vec()),
            )
            .await?;
        let mut link = to_api(&record, now_unix());
        link.url = format!("{base_url}/forms/{token}");
        Ok(link)
    }

    pub(super) async fn link_record(
        &self,
        tenant_id: &str,
        link_id: &str,
    ) -> Result<Option<FormLinkRecord>, ServiceError> {
        let Some(bytes) = self.store.get_meta(&meta_key(tenant_id, link_id)).await? else {
            return Ok(None);
        };
        FormLinkRecord::decode(bytes.as_slice())
            .map(Some)
            .map_err(|_| ServiceError::DataLoss("a form link cannot be read".into()))
    }

    /// Reads a link (see `FormLinkService.GetFormLink`).
    pub async fn get_form_link(&self, name: &str) -> Result<v1::FormLink, ServiceError> {
        let (tenant_id, link_id) = parse_link(name)?;
        let record = self
            .link_record(&tenant_id, &link_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(name.to_owned()))?;
        Ok(to_api(&record, now_unix()))
    }

    /// Changes a link's record with `change` (which sees the effective
    /// state) under compare-and-swap, retried when another change won.
    pub(super) async fn change_link<T>(
        &self,
        tenant_id: &str,
        link_id: &str,
        mut change: impl FnMut(&mut FormLinkRecord, State) -> Result<T, ServiceError>,
    ) -> Result<(T, FormLinkRecord), ServiceError> {
        let key = meta_key(tenant_id, link_id);
        for _ in 0..CAS_ATTEMPTS {
            let Some(old) = self.store.get_meta(&key).await? else {
                return Err(ServiceError::NotFound(link_name(tenant_id, link_id)));
            };
            let mut record = FormLinkRecord::decode(old.as_slice())
                .map_err(|_| ServiceError::DataLoss("a form link cannot be read".into()))?;
            let state = effective_state(&record, now_unix());
            let answer = change(&mut record, state)?;
            record.update_time = Some(timestamp_now());
            match self
                .store
                .cas_meta(&key, Some(&old), Some(&record.encode_to_vec()))
                .await
            {
                Ok(()) => return Ok((answer, record)),
                Err(connvault_store::StoreError::Conflict) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(ServiceError::Aborted(
            "the form link changed concurrently; retry".into(),
        ))
    }

    /// Revokes a pending or opened link (see `FormLinkService.RevokeFormLink`).
    pub async fn revoke_form_link(&self, name: &str) -> Result<v1::FormLink, ServiceError> {
        let (tenant_id, link_id) = parse_link(name)?;
        let ((), record) = self
            .change_link(&tenant_id, &link_id, |record, state| match state {
                State::Pending | State::Opened | State::Revoked => {
                    record.link_state = State::Revoked as i32;
                    record.staged_secrets.clear();
                    Ok(())
                }
                State::Completed => Err(ServiceError::FailedPrecondition(
                    "the link is completed: its connection exists; delete that instead".into(),
                )),
                State::Expired | State::Unspecified => Err(ServiceError::FailedPrecondition(
                    "the link has expired".into(),
                )),
            })
            .await?;
        Ok(to_api(&record, now_unix()))
    }

    /// Opens a link from its URL's token, once: pending becomes opened.
    /// Anything else is the page's refusal, and changes nothing.
    pub async fn open_form_link(&self, token: &str) -> Result<OpenedLink, LinkState> {
        let token = LinkToken::open(&self.keyring(), token).ok_or(LinkState::Invalid)?;
        if token.expire_unix <= now_unix() {
            return Err(LinkState::Expired);
        }
        let outcome = self
            .change_link(&token.tenant_id, &token.link_id, |record, state| {
                // The token must match the record it names in every binding.
                // (A completed create link names the connection it made.)
                if record.redirect_url != token.redirect_url
                    || record.edit != token.edit
                    || (record.edit && record.connection != token.connection)
                {
                    return Err(ServiceError::NotFound(String::new()));
                }
                match state {
                    State::Pending => {
                        record.link_state = State::Opened as i32;
                        Ok(())
                    }
                    State::Revoked => Err(ServiceError::PermissionDenied(String::new())),
                    State::Expired => Err(ServiceError::DeadlineExceeded(String::new())),
                    _ => Err(ServiceError::FailedPrecondition(String::new())),
                }
            })
            .await;
        match outcome {
            Ok(((), record)) => Ok(OpenedLink { record }),
            Err(ServiceError::PermissionDenied(_)) => Err(LinkState::Revoked),
            Err(ServiceError::DeadlineExceeded(_)) => Err(LinkState::Expired),
            Err(ServiceError::FailedPrecondition(_)) => Err(LinkState::Used),
            Err(ServiceError::NotFound(_)) => Err(LinkState::Invalid),
            Err(error) => {
                tracing::error!(%error, "opening a form link failed");
                Err(LinkState::Invalid)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_parse_and_reject() {
        let id = uuid::Uuid::now_v7().to_string();
        let name = link_name("acme", &id);
        assert_eq!(parse_link(&name).unwrap(), ("acme".into(), id));
        for bad in [
            "tenants/acme/formLinks/x",
            "tenants/a b/formLinks/0190b1d2-0000-7000-8000-000000000000",
            "formLinks/0190b1d2-0000-7000-8000-000000000000",
        ] {
            assert!(parse_link(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pending_link_past_its_expiry_is_expired() {
        let record = FormLinkRecord {
            link_state: State::Pending as i32,
            expire_time: Some(prost_types::Timestamp {
                seconds: 100,
                nanos: 0,
            }),
            ..FormLinkRecord::default()
        };
        assert_eq!(effective_state(&record, 99), State::Pending);
        assert_eq!(effective_state(&record, 100), State::Expired);
        let revoked = FormLinkRecord {
            link_state: State::Revoked as i32,
            ..record
        };
        assert_eq!(effective_state(&revoked, 200), State::Revoked);
    }
}
