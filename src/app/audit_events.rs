//! Reading the audit log: a page of events, filtered by method and outcome.

use super::pagination::{decode_page_token, encode_page_token, page_size};
use crate::audit::AuditLog;
use crate::error::ServiceError;
use crate::pb::v1;

/// Events read from the log per batch while a filtered listing scans forward.
const BATCH: usize = 512;
/// Batches one call scans before it answers with what it found: a filter
/// that matches little cannot make one call read the whole log.
const MAX_BATCHES: usize = 64;

/// Which events a listing keeps; `None` keeps every value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The RPC method (`CreateConnection`).
    pub method: Option<String>,
    /// The outcome's code name (`OK`, `NOT_FOUND`).
    pub outcome: Option<String>,
}

impl AuditFilter {
    fn keeps(&self, event: &v1::AuditEvent) -> bool {
        self.method.as_ref().is_none_or(|m| *m == event.method)
            && self.outcome.as_ref().is_none_or(|o| *o == event.outcome)
    }
}

/// One page of the audit events of `tenant` (every tenant's with `None`),
/// oldest first, kept by `filter`; the page token is bound to the request's
/// parent and filter text.
pub async fn list_audit_events(
    log: &AuditLog,
    tenant: Option<String>,
    filter: &AuditFilter,
    request: &v1::ListAuditEventsRequest,
) -> Result<v1::ListAuditEventsResponse, ServiceError> {
    let size = page_size(request.page_size)?;
    let query = format!("audit|{}|{}", request.parent, request.filter);
    let mut after = match decode_page_token(log.keyring(), &request.page_token, &query)? {
        Some(position) => position
            .parse::<u64>()
            .map_err(|_| ServiceError::invalid("page_token", "is not valid"))?,
        None => 0,
    };
    let mut events = Vec::new();
    let mut more = false;
    // Filtered reads scan forward in bounded batches.
    for _ in 0..MAX_BATCHES {
        let batch = log.list(tenant.clone(), after, BATCH).await?;
        let exhausted = batch.len() < BATCH;
        for event in batch {
            after = event.sequence;
            if filter.keeps(&event) {
                if events.len() == size {
                    more = true;
                    break;
                }
                events.push(event);
            }
        }
        if more || exhausted {
            break;
        }
    }
    let next_page_token = match (more, events.last()) {
        (true, Some(last)) => encode_page_token(log.keyring(), &query, &last.sequence.to_string())?,
        _ => String::new(),
    };
    Ok(v1::ListAuditEventsResponse {
        events,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_keeps_what_every_set_condition_matches() {
        let event = v1::AuditEvent {
            method: "CreateConnection".into(),
            outcome: "OK".into(),
            ..Default::default()
        };
        assert!(AuditFilter::default().keeps(&event));
        let created = AuditFilter {
            method: Some("CreateConnection".into()),
            outcome: None,
        };
        assert!(created.keeps(&event));
        let failed = AuditFilter {
            outcome: Some("NOT_FOUND".into()),
            ..created
        };
        assert!(!failed.keeps(&event));
    }
}
