//! Resource names (`tenants/{t}`, `tenants/{t}/connections/{id}`) and the rules for ids.

use crate::error::ServiceError;

/// Whether `id` is a valid tenant id: 1-64 of `[A-Za-z0-9_-]`.
pub fn valid_tenant_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// The audit log files events without a tenant (refused, unauthenticated)
/// under this id, and `tenants/-` means "every tenant" (AIP-159) in
/// `ListAuditEvents`: a tenant of this id would share one and be unreachable
/// through the other.
pub const NO_TENANT: &str = "-";

/// Ids that have a meaning of their own and cannot name a tenant.
pub const RESERVED_TENANT_IDS: &[&str] = &[NO_TENANT];

/// Whether `id` is reserved (see [`RESERVED_TENANT_IDS`]).
pub fn reserved_tenant_id(id: &str) -> bool {
    RESERVED_TENANT_IDS.contains(&id)
}

/// `tenants/{tenant_id}`.
pub fn tenant_name(tenant_id: &str) -> String {
    format!("tenants/{tenant_id}")
}

/// `tenants/{tenant_id}/connections/{id}`.
pub fn connection_name(tenant_id: &str, id: &str) -> String {
    format!("tenants/{tenant_id}/connections/{id}")
}

/// The tenant a resource name points into, read from the name alone (no lookup),
/// or `None` when the name does not start with a valid `tenants/{id}`.
pub fn tenant_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("tenants/")?;
    let tenant = rest.split('/').next()?;
    valid_tenant_id(tenant).then_some(tenant)
}

/// Parses `tenants/{tenant_id}`; `field` names the request field for the error.
pub fn parse_tenant(name: &str, field: &str) -> Result<String, ServiceError> {
    match name.strip_prefix("tenants/") {
        Some(id) if valid_tenant_id(id) => Ok(id.to_owned()),
        _ => Err(ServiceError::invalid(
            field,
            "must be tenants/{tenant_id} with a tenant id of 1-64 of [A-Za-z0-9_-]",
        )),
    }
}

/// Parses `tenants/{tenant_id}/connections/{uuid}` into (tenant, id).
pub fn parse_connection(name: &str, field: &str) -> Result<(String, String), ServiceError> {
    let invalid = || {
        ServiceError::invalid(
            field,
            "must be tenants/{tenant_id}/connections/{connection_id}",
        )
    };
    let rest = name.strip_prefix("tenants/").ok_or_else(invalid)?;
    let (tenant, id) = rest.split_once("/connections/").ok_or_else(invalid)?;
    if !valid_tenant_id(tenant) || uuid::Uuid::try_parse(id).is_err() {
        return Err(invalid());
    }
    Ok((tenant.to_owned(), id.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_reject() {
        assert_eq!(
            parse_tenant("tenants/acme_1-x", "name").unwrap(),
            "acme_1-x"
        );
        for bad in [
            "tenants/",
            "tenant/a",
            "tenants/a/b",
            "tenants/a b",
            &"x".repeat(70),
        ] {
            assert!(parse_tenant(bad, "name").is_err(), "{bad}");
        }
        let id = uuid::Uuid::now_v7().to_string();
        let name = connection_name("a", &id);
        assert_eq!(parse_connection(&name, "name").unwrap(), ("a".into(), id));
        assert!(parse_connection("tenants/a/connections/not-a-uuid", "name").is_err());
        assert!(parse_connection("tenants/a/connections/", "name").is_err());
    }

    #[test]
    fn reserved_ids_are_valid_ids_with_another_meaning() {
        assert!(reserved_tenant_id("-") && valid_tenant_id("-"));
        assert!(!reserved_tenant_id("a-") && !reserved_tenant_id("--"));
    }
}
