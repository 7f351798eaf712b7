//! Pagination (AIP-158): page sizes and opaque page tokens, shared by every list call.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::ServiceError;

/// Page size when a request asks for none.
pub const PAGE_SIZE_DEFAULT: usize = 50;
/// The largest page served; larger requests are coerced down (AIP-158).
pub const PAGE_SIZE_MAX: usize = 1000;

/// Validates and defaults a page size.
pub fn page_size(requested: i32) -> Result<usize, ServiceError> {
    match requested {
        size if size < 0 => Err(ServiceError::invalid("page_size", "must not be negative")),
        0 => Ok(PAGE_SIZE_DEFAULT),
        size => Ok((size as usize).min(PAGE_SIZE_MAX)),
    }
}

/// An opaque token carrying a position and a fingerprint of the query it belongs to.
pub fn encode_simple_token(query: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}\n{position}", fingerprint(query)))
}

/// Decodes a token made by [`encode_simple_token`] for the same query.
pub fn decode_simple_token(token: &str, query: &str) -> Result<Option<String>, ServiceError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        ServiceError::invalid(
            "page_token",
            "is not a token from a previous page of this same request",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (print, position) = text.split_once('\n').ok_or_else(invalid)?;
    if print != fingerprint(query) {
        return Err(invalid());
    }
    Ok(Some(position.to_owned()))
}

fn fingerprint(query: &str) -> String {
    hex::encode(&Sha256::digest(query.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_belong_to_their_query() {
        let token = encode_simple_token("tenants", "acme");
        assert_eq!(
            decode_simple_token(&token, "tenants").unwrap().as_deref(),
            Some("acme")
        );
        assert!(decode_simple_token(&token, "dataSources").is_err());
        assert!(decode_simple_token("not base64!", "tenants").is_err());
        assert_eq!(decode_simple_token("", "tenants").unwrap(), None);
    }

    #[test]
    fn page_sizes_default_and_are_capped() {
        assert_eq!(page_size(0).unwrap(), PAGE_SIZE_DEFAULT);
        assert_eq!(page_size(i32::MAX).unwrap(), PAGE_SIZE_MAX);
        assert_eq!(page_size(7).unwrap(), 7);
        assert!(page_size(-1).is_err());
    }
}
