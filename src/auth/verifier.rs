//! Checking a bearer token: signature under the pinned key, the claims, and
//! a memory of tokens already checked so a busy caller is not re-verified on
//! every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use sha2::{Digest, Sha256};

use super::{
    AuthConfig, AuthError, Claims, KeySet, MAX_SUBJECT_BYTES, MAX_TOKEN_BYTES, MAX_VERIFIED_TOKENS,
    Principal, unix_now,
};

/// Verifies bearer tokens against the configured keys.
pub struct Verifier {
    keys: Arc<RwLock<KeySet>>,
    issuer: String,
    audience: String,
    leeway: u64,
    max_lifetime: u64,
    verified: Mutex<VerifiedTokens>,
}

/// Tokens that passed a full check, by SHA-256 of the token.
///
/// A service calls with the same token for minutes; checking its signature
/// and parsing its JSON again on every call was the largest part of a read's
/// CPU. A remembered token is still held to its own `exp` and `nbf`, and
/// only under the key set that verified it: a key reload forgets them all.
/// Failed tokens are never remembered. The digest, not the token, is the
/// key, so the map holds nothing a caller could replay.
#[derive(Default)]
struct VerifiedTokens {
    generation: u64,
    by_digest: HashMap<[u8; 32], Verified>,
}

struct Verified {
    principal: Arc<Principal>,
    not_before: u64,
    expires: u64,
}

impl VerifiedTokens {
    fn remember(&mut self, generation: u64, digest: [u8; 32], verified: Verified, now: u64) {
        if generation != self.generation {
            self.by_digest.clear();
            self.generation = generation;
        }
        if self.by_digest.len() >= MAX_VERIFIED_TOKENS {
            self.by_digest.retain(|_, entry| entry.expires >= now);
            if self.by_digest.len() >= MAX_VERIFIED_TOKENS {
                self.by_digest.clear();
            }
        }
        self.by_digest.insert(digest, verified);
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier over `keys`.
    pub fn new(config: &AuthConfig, keys: Arc<RwLock<KeySet>>) -> Self {
        Self {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_secs,
            max_lifetime: config.max_token_lifetime_secs,
            verified: Mutex::new(VerifiedTokens::default()),
        }
    }

    /// Checks a token and returns its principal.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        self.verify_at(token, unix_now())
    }

    /// [`Verifier::verify`] at `now` (seconds since the epoch) for a
    /// remembered token; a full check always uses the real clock.
    fn verify_at(&self, token: &str, now: u64) -> Result<Arc<Principal>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let keys = self.keys.read().map_err(|_| AuthError::UnknownKey)?;
        if let Some(principal) = self.remembered(keys.generation(), &digest, now)? {
            return Ok(principal);
        }
        let header = jsonwebtoken::decode_header(token)?;
        refuse_critical_extensions(token)?;
        let (key, algorithm) = keys
            .find(header.kid.as_deref(), header.alg)
            .ok_or(AuthError::UnknownKey)?;
        // The key's own algorithm is the only one accepted: an HS256 token
        // signed with an RSA public key's bytes never meets an RSA key as HMAC.
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)?.claims;
        self.check_claims(&claims, unix_now())?;
        let (not_before, expires) = (claims.nbf, claims.exp);
        let principal = Arc::new(claims.principal());
        if let Ok(mut verified) = self.verified.lock() {
            let entry = Verified {
                principal: Arc::clone(&principal),
                not_before,
                expires,
            };
            verified.remember(keys.generation(), digest, entry, now);
        }
        Ok(principal)
    }

    /// What `jsonwebtoken` does not check: a subject, and a bounded
    /// lifetime. The lifetime counts from the earlier of `iat` and now, so a
    /// future `iat` cannot stretch it; the leeway absorbs the issuer's clock.
    fn check_claims(&self, claims: &Claims, now: u64) -> Result<(), AuthError> {
        if claims.sub.trim().is_empty() {
            return Err(AuthError::Refused("empty sub"));
        }
        if claims.sub.len() > MAX_SUBJECT_BYTES {
            return Err(AuthError::Refused("sub longer than 256 bytes"));
        }
        let start = claims.iat.map_or(now, |iat| iat.min(now));
        if claims.exp.saturating_sub(start) > self.max_lifetime.saturating_add(self.leeway) {
            return Err(AuthError::Refused("lifetime over the configured maximum"));
        }
        Ok(())
    }

    /// The principal of a token verified before under this key set, if it is
    /// still within its validity (with the same leeway as a full check).
    fn remembered(
        &self,
        generation: u64,
        digest: &[u8; 32],
        now: u64,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        let Ok(verified) = self.verified.lock() else {
            return Ok(None);
        };
        if verified.generation != generation {
            return Ok(None);
        }
        let Some(entry) = verified.by_digest.get(digest) else {
            return Ok(None);
        };
        if entry.expires.saturating_add(self.leeway) < now {
            return Err(AuthError::Invalid(
                jsonwebtoken::errors::ErrorKind::ExpiredSignature.into(),
            ));
        }
        if entry.not_before > now.saturating_add(self.leeway) {
            return Err(AuthError::Invalid(
                jsonwebtoken::errors::ErrorKind::ImmatureSignature.into(),
            ));
        }
        Ok(Some(Arc::clone(&entry.principal)))
    }
}

/// Refuses a token whose protected header has `crit` (RFC 7515 §4.1.11): it
/// names extensions the recipient must understand, and this server
/// understands none. `jsonwebtoken` 9 has no `crit` field and silently drops
/// it, so the header is read here as plain JSON.
fn refuse_critical_extensions(token: &str) -> Result<(), AuthError> {
    let malformed = || AuthError::Invalid(jsonwebtoken::errors::ErrorKind::InvalidToken.into());
    let encoded = token.split('.').next().ok_or_else(malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| malformed())?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    if header.contains_key("crit") {
        return Err(AuthError::Refused(
            "crit header names an extension not understood",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Minter, Role, load_keys};
    use secrecy::SecretString;

    fn setup() -> (Minter, Verifier) {
        let config = AuthConfig::default();
        let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
        let keys = load_keys(&config, Some(&secret)).unwrap();
        (
            Minter::new(&secret, &config),
            Verifier::new(&config, Arc::new(RwLock::new(keys))),
        )
    }

    #[test]
    fn a_minted_token_verifies_and_star_needs_admin() {
        let (minter, verifier) = setup();
        let token = minter
            .mint("svc", &["acme".into()], &[Role::Writer], unix_now(), 60)
            .unwrap();
        let principal = verifier.verify(&token).unwrap();
        assert_eq!(principal.subject, "svc");
        assert!(principal.may_enter("acme") && !principal.may_enter("other"));
        assert!(principal.has(Role::Reader) && !principal.has(Role::Resolver));
        let star = minter
            .mint("x", &["*".into()], &[Role::Writer], unix_now(), 60)
            .unwrap();
        assert!(!verifier.verify(&star).unwrap().may_enter("acme"));
        let operator = minter
            .mint("op", &["*".into()], &[Role::Admin], unix_now(), 60)
            .unwrap();
        assert!(verifier.verify(&operator).unwrap().may_enter("acme"));
    }

    fn signed(header: serde_json::Value, claims: serde_json::Value) -> String {
        let head = URL_SAFE_NO_PAD.encode(header.to_string());
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let key = jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
        let signature = jsonwebtoken::crypto::sign(
            format!("{head}.{body}").as_bytes(),
            &key,
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        format!("{head}.{body}.{signature}")
    }

    fn claims(now: u64) -> serde_json::Value {
        serde_json::json!({
            "sub": "svc", "tenants": ["acme"], "roles": ["reader"], "iss": "connvault",
            "aud": "connvault", "exp": now + 60, "nbf": now, "iat": now,
        })
    }

    #[test]
    fn a_crit_header_is_refused_whatever_it_lists() {
        let (_, verifier) = setup();
        let now = unix_now();
        let plain = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        assert!(verifier.verify(&signed(plain, claims(now))).is_ok());
        for crit in [
            serde_json::json!(["exp"]),
            serde_json::json!(["x-unknown"]),
            serde_json::json!([]),
            serde_json::json!("b64"),
        ] {
            let header =
                serde_json::json!({"alg": "HS256", "typ": "JWT", "crit": crit, "b64": true});
            let error = verifier.verify(&signed(header, claims(now))).unwrap_err();
            assert!(matches!(error, AuthError::Refused(_)), "{crit}: {error}");
        }
    }

    #[test]
    fn an_empty_subject_is_refused() {
        let (_, verifier) = setup();
        let header = serde_json::json!({"alg": "HS256"});
        for sub in ["", "  "] {
            let mut body = claims(unix_now());
            body["sub"] = sub.into();
            let error = verifier.verify(&signed(header.clone(), body)).unwrap_err();
            assert!(matches!(error, AuthError::Refused("empty sub")), "{error}");
        }
    }

    #[test]
    fn an_overlong_subject_is_refused() {
        let (_, verifier) = setup();
        let header = serde_json::json!({"alg": "HS256"});
        let mut body = claims(unix_now());
        body["sub"] = "s".repeat(crate::auth::MAX_SUBJECT_BYTES).into();
        assert!(
            verifier
                .verify(&signed(header.clone(), body.clone()))
                .is_ok()
        );
        body["sub"] = "s".repeat(crate::auth::MAX_SUBJECT_BYTES + 1).into();
        let error = verifier.verify(&signed(header, body)).unwrap_err();
        assert!(matches!(error, AuthError::Refused(_)), "{error}");
    }

    #[test]
    fn the_lifetime_is_bounded_with_or_without_iat() {
        let (minter, verifier) = setup();
        let max = crate::auth::DEFAULT_MAX_TOKEN_LIFETIME_SECS;
        let now = unix_now();
        let header = serde_json::json!({"alg": "HS256"});
        let long = minter
            .mint("svc", &["acme".into()], &[Role::Reader], now, max + 3600)
            .unwrap();
        assert!(matches!(verifier.verify(&long), Err(AuthError::Refused(_))));
        let at_max = minter
            .mint("svc", &["acme".into()], &[Role::Reader], now, max)
            .unwrap();
        assert!(verifier.verify(&at_max).is_ok());
        // No iat: counted from now.
        let mut body = claims(now);
        body.as_object_mut().unwrap().remove("iat");
        body["exp"] = (now + max + 3600).into();
        assert!(matches!(
            verifier.verify(&signed(header.clone(), body.clone())),
            Err(AuthError::Refused(_))
        ));
        body["exp"] = (now + 600).into();
        assert!(
            verifier
                .verify(&signed(header.clone(), body.clone()))
                .is_ok()
        );
        // An iat in the future does not stretch it.
        body["iat"] = (now + max).into();
        body["exp"] = (now + max + 600).into();
        assert!(matches!(
            verifier.verify(&signed(header, body)),
            Err(AuthError::Refused(_))
        ));
        // The bound is a setting.
        let config = AuthConfig {
            max_token_lifetime_secs: 30,
            ..AuthConfig::default()
        };
        let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
        let short = Verifier::new(
            &config,
            Arc::new(RwLock::new(load_keys(&config, Some(&secret)).unwrap())),
        );
        let token = minter
            .mint("svc", &["acme".into()], &[Role::Reader], now, 120)
            .unwrap();
        assert!(matches!(short.verify(&token), Err(AuthError::Refused(_))));
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let (minter, verifier) = setup();
        let now = unix_now();
        let token = minter
            .mint("svc", &["acme".into()], &[Role::Reader], now, 60)
            .unwrap();
        assert!(verifier.verify_at(&token, now).is_ok());
        assert!(
            verifier.verify_at(&token, now + 60 + 30).is_ok(),
            "within leeway"
        );
        let error = verifier.verify_at(&token, now + 60 + 31).unwrap_err();
        assert!(
            matches!(&error, AuthError::Invalid(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature),
            "{error}"
        );
    }

    #[test]
    fn a_key_reload_forgets_remembered_tokens() {
        let (minter, verifier) = setup();
        let token = minter
            .mint("svc", &["acme".into()], &[Role::Reader], unix_now(), 60)
            .unwrap();
        assert!(verifier.verify(&token).is_ok());
        let other = SecretString::from("another-secret-of-32-bytes-or-more".to_owned());
        let reloaded = load_keys(&AuthConfig::default(), Some(&other)).unwrap();
        *verifier.keys.write().unwrap() = reloaded;
        assert!(verifier.verify(&token).is_err());
    }

    #[test]
    fn failed_tokens_are_not_remembered_and_the_memory_is_bounded() {
        let (minter, verifier) = setup();
        assert!(verifier.verify("not.a.token").is_err());
        assert_eq!(verifier.verified.lock().unwrap().by_digest.len(), 0);
        let now = unix_now();
        for n in 0..MAX_VERIFIED_TOKENS + 10 {
            let token = minter
                .mint(
                    &format!("svc{n}"),
                    &["acme".into()],
                    &[Role::Reader],
                    now,
                    60,
                )
                .unwrap();
            assert_eq!(verifier.verify(&token).unwrap().subject, format!("svc{n}"));
        }
        assert!(verifier.verified.lock().unwrap().by_digest.len() <= MAX_VERIFIED_TOKENS);
    }
}
