//! Pagination (AIP-158): page sizes and opaque page tokens, shared by every list call.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connvault_crypto::Keyring;
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

/// What page tokens are sealed for: their key is derived for this alone.
const TOKEN_PURPOSE: &str = "page-token";
/// Positions are padded to a multiple of this, so a token's length says
/// little about the position it carries.
const PAD_TO: usize = 64;

/// An opaque token for `position` in the listing `query` describes:
/// AES-256-GCM under a key derived from the master key, with the query's
/// SHA-256 as associated data. It reveals nothing of the position (not even
/// its exact length) and is refused for any other query or after any change.
pub fn encode_page_token(
    keyring: &Keyring,
    query: &str,
    position: &str,
) -> Result<String, ServiceError> {
    let mut plain = position.as_bytes().to_vec();
    // ISO/IEC 7816-4 padding: a 0x80 marker, then zeros.
    plain.push(0x80);
    plain.resize(plain.len().div_ceil(PAD_TO) * PAD_TO, 0);
    let sealed = keyring
        .seal_opaque(TOKEN_PURPOSE, &fingerprint(query), &plain)
        .map_err(|_| ServiceError::Internal("a page token could not be sealed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(sealed))
}

/// The position in a token made by [`encode_page_token`] for the same query
/// (`None` for an empty token: the first page). Anything else, forged,
/// altered or from another query, is INVALID_ARGUMENT.
pub fn decode_page_token(
    keyring: &Keyring,
    token: &str,
    query: &str,
) -> Result<Option<String>, ServiceError> {
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
    let mut plain = keyring
        .open_opaque(TOKEN_PURPOSE, &fingerprint(query), &bytes)
        .map_err(|_| invalid())?;
    let marker = plain
        .iter()
        .rposition(|&byte| byte != 0)
        .ok_or_else(invalid)?;
    if plain[marker] != 0x80 {
        return Err(invalid());
    }
    plain.truncate(marker);
    String::from_utf8(plain).map(Some).map_err(|_| invalid())
}

fn fingerprint(query: &str) -> [u8; 32] {
    Sha256::digest(query.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(connvault_crypto::MasterKey::from_bytes([9; 32]), Vec::new()).unwrap()
    }

    #[test]
    fn tokens_belong_to_their_query() {
        let keyring = keyring();
        let token = encode_page_token(&keyring, "tenants", "acme").unwrap();
        assert_eq!(
            decode_page_token(&keyring, &token, "tenants")
                .unwrap()
                .as_deref(),
            Some("acme")
        );
        assert!(decode_page_token(&keyring, &token, "dataSources").is_err());
        assert!(decode_page_token(&keyring, "not base64!", "tenants").is_err());
        assert_eq!(decode_page_token(&keyring, "", "tenants").unwrap(), None);
        let other =
            Keyring::new(connvault_crypto::MasterKey::from_bytes([8; 32]), Vec::new()).unwrap();
        assert!(decode_page_token(&other, &token, "tenants").is_err());
    }

    #[test]
    fn tokens_hide_the_position_and_refuse_any_change() {
        let keyring = keyring();
        let position = "tenant-position-7f3a";
        let token = encode_page_token(&keyring, "tenants", position).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        // Not in the token text, nor in its bytes however decoded.
        let hex_position = hex::encode(position);
        for text in [
            token.clone(),
            String::from_utf8_lossy(&bytes).into_owned(),
            hex::encode(&bytes),
            base64::engine::general_purpose::STANDARD.encode(&bytes),
        ] {
            assert!(
                !text.contains(position) && !text.contains(&hex_position),
                "{text}"
            );
        }
        // Two tokens for the same position differ; lengths do not tell positions apart.
        assert_ne!(
            token,
            encode_page_token(&keyring, "tenants", position).unwrap()
        );
        assert_eq!(
            token.len(),
            encode_page_token(&keyring, "tenants", "b").unwrap().len()
        );
        for index in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[index] ^= 0x01;
            let forged = URL_SAFE_NO_PAD.encode(&flipped);
            let error = decode_page_token(&keyring, &forged, "tenants").unwrap_err();
            assert!(matches!(error, ServiceError::InvalidArgument(_)), "{index}");
        }
        // A token of the old format (base64 of fingerprint and position) is refused.
        let old = URL_SAFE_NO_PAD.encode("0123456789abcdef\nacme");
        assert!(decode_page_token(&keyring, &old, "tenants").is_err());
    }

    #[test]
    fn page_sizes_default_and_are_capped() {
        assert_eq!(page_size(0).unwrap(), PAGE_SIZE_DEFAULT);
        assert_eq!(page_size(i32::MAX).unwrap(), PAGE_SIZE_MAX);
        assert_eq!(page_size(7).unwrap(), 7);
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn the_longest_position_makes_a_token_within_the_request_bound() {
        // A display-name order position: the lowercased name (at most 4
        // bytes a character once lowercased; `İ` grows to 3), a separator, the id.
        let keyring = keyring();
        for widest in ['\u{10400}', 'İ', '字'] {
            let name: String =
                std::iter::repeat_n(widest, crate::bounds::MAX_CONNECTION_DISPLAY_NAME_CHARS)
                    .collect::<String>()
                    .to_lowercase();
            let position = format!("{name}\u{1f}{}", uuid::Uuid::now_v7());
            let token = encode_page_token(&keyring, "q", &position).unwrap();
            assert!(
                token.len() <= crate::bounds::MAX_PAGE_TOKEN_BYTES,
                "{widest}: {} bytes",
                token.len()
            );
        }
    }
}
