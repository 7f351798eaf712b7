//! Page tokens and bearer tokens: nothing forged is accepted, and what the
//! server seals reads back.

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connvault_crypto::Keyring;
use secrecy::SecretString;

use super::segment;
use crate::auth::{AuthConfig, Verifier, load_keys, unix_now};
use crate::error::ServiceError;

/// The longest position a page token holds (4,096 sealed bytes, less the
/// padding marker).
const LONGEST_POSITION: usize = 4095;

/// Page tokens: a forged one is INVALID_ARGUMENT, a token sealed around any
/// bytes yields the padded position or INVALID_ARGUMENT, and a token the
/// server made reads back for its own query only.
pub fn check_page_token(bytes: &[u8], keyring: &Keyring) {
    let mut rest = bytes;
    let query = String::from_utf8_lossy(segment(&mut rest)).into_owned();
    let text = String::from_utf8_lossy(rest).into_owned();
    match crate::app::fuzzing::decode_page_token(keyring, &text, &query) {
        Ok(None) => assert!(text.is_empty(), "only an empty token is the first page"),
        Ok(Some(_)) => panic!("a forged page token was accepted"),
        Err(error) => assert!(
            matches!(error, ServiceError::InvalidArgument(_)),
            "{error:?}"
        ),
    }

    // Any plaintext under a genuine seal: only ISO/IEC 7816-4 padding of
    // UTF-8 reads as a position.
    let token = crate::app::fuzzing::seal_page_token(keyring, &query, rest).expect("seal");
    let expected = rest
        .iter()
        .rposition(|&byte| byte != 0)
        .filter(|&marker| rest[marker] == 0x80)
        .and_then(|marker| String::from_utf8(rest[..marker].to_vec()).ok());
    match crate::app::fuzzing::decode_page_token(keyring, &token, &query) {
        Ok(position) => assert_eq!(position, expected, "unpadding"),
        Err(error) => {
            assert!(expected.is_none(), "a well-padded token was refused");
            assert!(
                matches!(error, ServiceError::InvalidArgument(_)),
                "{error:?}"
            );
        }
    }

    // A token seals at most 4,096 bytes: the position and its padding marker.
    // Lists make far shorter positions (a 1,024-byte name key, a separator
    // and an id at most), so only longer ones may fail, and not by a panic.
    let token = match crate::app::fuzzing::encode_page_token(keyring, &query, &text) {
        Ok(token) => token,
        Err(error) => {
            assert!(
                text.len() > LONGEST_POSITION,
                "{} bytes: {error:?}",
                text.len()
            );
            assert!(matches!(error, ServiceError::Internal(_)), "{error:?}");
            return;
        }
    };
    let position = crate::app::fuzzing::decode_page_token(keyring, &token, &query)
        .expect("a genuine token reads");
    assert_eq!(position.as_deref(), Some(text.as_str()));
    let other = format!("{query}.");
    assert!(
        crate::app::fuzzing::decode_page_token(keyring, &token, &other).is_err(),
        "a token read for another query"
    );
}

/// A verifier with an HS256 secret, as a server configured with one.
pub struct TokenFixture {
    verifier: Verifier,
    secret: Vec<u8>,
    config: AuthConfig,
}

impl Default for TokenFixture {
    fn default() -> Self {
        let secret = b"fuzzing-secret-of-at-least-32-bytes!".to_vec();
        let config = AuthConfig::default();
        let shared = SecretString::from(String::from_utf8_lossy(&secret).into_owned());
        let keys = load_keys(&config, Some(&shared)).expect("keys");
        Self {
            verifier: Verifier::new(&config, Arc::new(RwLock::new(keys))),
            secret,
            config,
        }
    }
}

impl TokenFixture {
    /// The verifier, as the server configures it.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// A token of `header` and `claims` (any bytes) signed with the secret.
    pub fn signed(&self, header: &[u8], claims: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        format!("{input}.{}", self.sign(&input))
    }

    fn sign(&self, signing_input: &str) -> String {
        let key = jsonwebtoken::EncodingKey::from_secret(&self.secret);
        jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &key,
            jsonwebtoken::Algorithm::HS256,
        )
        .expect("sign")
    }
}

/// Bearer tokens. The first byte chooses: a raw token, accepted only if
/// its signature is the server's own; or a header and claims (any bytes)
/// signed with the server's secret, accepted only if the claims meet every
/// rule (`sub`, `iss`, `aud`, `exp`, the lifetime, no `crit`).
pub fn check_token(bytes: &[u8], fixture: &TokenFixture) {
    let Some((&mode, mut rest)) = bytes.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        if fixture.verifier.verify(&token).is_ok() {
            let (input, signature) = token.rsplit_once('.').expect("a token has a signature");
            assert_eq!(
                fixture.sign(input),
                signature,
                "a forged token was accepted"
            );
        }
        return;
    }
    let header = segment(&mut rest);
    let claims = rest;
    let token = fixture.signed(header, claims);
    let before = unix_now();
    let verified = fixture.verifier.verify(&token);
    let after = unix_now();
    let Ok(principal) = verified else {
        return;
    };
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).expect("an accepted header is JSON");
    assert!(!header.contains_key("crit"), "a crit header was accepted");
    let claims: serde_json::Value =
        serde_json::from_slice(claims).expect("accepted claims are JSON");
    let sub = claims["sub"].as_str().expect("sub");
    assert!(!sub.trim().is_empty(), "an empty sub was accepted");
    assert_eq!(principal.subject, sub);
    assert_eq!(claims["iss"].as_str(), Some(fixture.config.issuer.as_str()));
    assert_eq!(
        claims["aud"].as_str(),
        Some(fixture.config.audience.as_str())
    );
    let exp = claims["exp"].as_u64().expect("exp");
    let leeway = fixture.config.leeway_secs;
    assert!(
        exp.saturating_add(leeway) >= before,
        "an expired token was accepted"
    );
    let nbf = claims["nbf"].as_u64().expect("nbf");
    assert!(
        nbf <= after.saturating_add(leeway),
        "an immature token was accepted"
    );
    let start = claims["iat"].as_u64().map_or(after, |iat| iat.min(after));
    assert!(
        exp.saturating_sub(start) <= fixture.config.max_token_lifetime_secs + leeway,
        "a token living too long was accepted"
    );
}
