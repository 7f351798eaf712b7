//! The field rules a connection must meet before its plugin sees it.

use std::collections::HashMap;

use crate::bounds::{
    MAX_CONNECTION_DISPLAY_NAME_CHARS, MAX_PRODUCT_BYTES, MAX_SECRET_BYTES, MAX_SECRETS,
};
use crate::error::Violation;

/// A display name: 3-100 characters, no surrounding spaces, no control characters.
pub(super) fn check_display_name(name: &str, violations: &mut Vec<Violation>) {
    let length = name.chars().count();
    if !(3..=MAX_CONNECTION_DISPLAY_NAME_CHARS).contains(&length) {
        violations.push(Violation {
            field: "connection.display_name".into(),
            description: format!("must be 3-{MAX_CONNECTION_DISPLAY_NAME_CHARS} characters"),
        });
    } else if name.trim() != name || name.chars().any(char::is_control) {
        violations.push(Violation {
            field: "connection.display_name".into(),
            description: "must not start or end with spaces or hold control characters".into(),
        });
    }
}

/// A product: empty, or 1-100 of `[A-Za-z0-9_-]` (stored lowercased).
pub(super) fn check_product(product: &str, violations: &mut Vec<Violation>) {
    let valid = product.is_empty()
        || (product.len() <= MAX_PRODUCT_BYTES
            && product
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'));
    if !valid {
        violations.push(Violation {
            field: "connection.product".into(),
            description: "must be 1-100 of [A-Za-z0-9_-]".into(),
        });
    }
}

/// A request's secrets: how many, and how large each is.
pub(super) fn check_secrets(secrets: &HashMap<String, String>, violations: &mut Vec<Violation>) {
    if secrets.len() > MAX_SECRETS {
        violations.push(Violation {
            field: "connection.secrets".into(),
            description: format!("must have at most {MAX_SECRETS} entries"),
        });
    }
    for (name, value) in secrets {
        if value.len() > MAX_SECRET_BYTES {
            violations.push(Violation {
                field: format!("connection.secrets.{name}"),
                description: format!("must be at most {MAX_SECRET_BYTES} bytes"),
            });
        }
    }
}
