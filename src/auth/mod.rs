//! Bearer-token authentication and role/tenant authorization.
//!
//! Every RPC except health and reflection carries `authorization: Bearer
//! <JWT>`. The [`Verifier`] checks signature (algorithm pinned per key),
//! `exp`, `nbf`, `iss` and `aud`; the claims give the principal, the tenants
//! it may act in and its roles. Any failure is one UNAUTHENTICATED with the
//! same message, so a caller learns nothing about why.

mod keys;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use keys::KeySet;

/// The longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The most verified tokens remembered at once (each about 200 bytes).
pub const MAX_VERIFIED_TOKENS: usize = 4096;
/// The one message every authentication failure carries.
pub const UNAUTHENTICATED: &str = "missing or invalid bearer token";

/// What a principal may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Get and list connections; data sources.
    Reader,
    /// Create, update, delete, test and discover connections (and read them).
    Writer,
    /// Resolve connections: receive their secrets.
    Resolver,
    /// Tenants, the audit log, key rotation, plugin reload.
    Admin,
}

impl Role {
    fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "reader" => Role::Reader,
            "writer" => Role::Writer,
            "resolver" => Role::Resolver,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// The tenants a principal may act in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant (`*`, operators only: honoured with the admin role).
    All,
    /// These tenants.
    Only(BTreeSet<String>),
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub subject: String,
    /// Where it may act.
    pub tenants: TenantScope,
    /// What it may do.
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// Whether it holds `role` (a writer may also read).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || (role == Role::Reader && self.roles.contains(&Role::Writer))
    }

    /// Whether it may act in `tenant`.
    pub fn may_enter(&self, tenant: &str) -> bool {
        match &self.tenants {
            TenantScope::All => true,
            TenantScope::Only(tenants) => tenants.contains(tenant),
        }
    }
}

/// The claims connvault reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The principal.
    pub sub: String,
    /// One tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Several tenants, or `["*"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<String>>,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before (seconds since the epoch).
    pub nbf: u64,
    /// Issued at.
    pub iat: u64,
}

impl Claims {
    fn principal(self) -> Principal {
        let roles: BTreeSet<Role> = self.roles.iter().filter_map(|r| Role::parse(r)).collect();
        let mut named: BTreeSet<String> = self.tenants.unwrap_or_default().into_iter().collect();
        named.extend(self.tenant);
        let tenants = if named.contains("*") {
            if roles.contains(&Role::Admin) {
                TenantScope::All
            } else {
                // `*` is for operators only: without admin it grants nothing.
                TenantScope::Only(BTreeSet::new())
            }
        } else {
            TenantScope::Only(named)
        };
        Principal {
            subject: self.sub,
            tenants,
            roles,
        }
    }
}

/// Token verification settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock leeway for `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// A file holding the HS256 shared secret (or set `CONNVAULT_JWT_HS256_SECRET`).
    pub hs256_secret_file: Option<PathBuf>,
    /// Public keys in PEM files, each pinned to one algorithm and selected by `kid`.
    pub keys: Vec<PublicKeyConfig>,
    /// A JWKS file of public keys (reloaded when it changes).
    pub jwks_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "connvault".into(),
            audience: "connvault".into(),
            leeway_secs: 30,
            hs256_secret_file: None,
            keys: Vec::new(),
            jwks_file: None,
        }
    }
}

/// A public key from a PEM file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    /// The `kid` that selects it.
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// The PEM file.
    pub pem_file: PathBuf,
}

/// Why authentication failed (logged at debug level; the caller sees one message).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `authorization: Bearer` metadata.
    #[error("no bearer token")]
    Missing,
    /// Larger than [`MAX_TOKEN_BYTES`].
    #[error("token too large")]
    TooLarge,
    /// No key for the token's `kid`/algorithm.
    #[error("no key for this token")]
    UnknownKey,
    /// Signature, claims or format rejected.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The configuration cannot be used.
    #[error("auth configuration: {0}")]
    Config(String),
}

/// Verifies bearer tokens against the configured keys.
pub struct Verifier {
    keys: Arc<RwLock<KeySet>>,
    issuer: String,
    audience: String,
    leeway: u64,
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

/// Signs HS256 tokens (dev mode and `connvault token`).
pub struct Minter {
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl Minter {
    /// A minter for a shared secret.
    pub fn new(secret: &SecretString, config: &AuthConfig) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.expose_secret().as_bytes()),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }
    }

    /// A token for `subject` in `tenants` with `roles`, valid for `ttl_secs` from `now`.
    pub fn mint(
        &self,
        subject: &str,
        tenants: &[String],
        roles: &[Role],
        now: u64,
        ttl_secs: u64,
    ) -> Result<String, AuthError> {
        let claims = Claims {
            sub: subject.to_owned(),
            tenant: None,
            tenants: Some(tenants.to_vec()),
            roles: roles
                .iter()
                .map(|role| {
                    match role {
                        Role::Reader => "reader",
                        Role::Writer => "writer",
                        Role::Resolver => "resolver",
                        Role::Admin => "admin",
                    }
                    .to_owned()
                })
                .collect(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl_secs,
            nbf: now,
            iat: now,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.key,
        )?)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Builds the verifier's key set from the config (and the HS256 secret, if any).
pub fn load_keys(config: &AuthConfig, hs256: Option<&SecretString>) -> Result<KeySet, AuthError> {
    let mut keys = KeySet::default();
    if let Some(secret) = hs256 {
        if secret.expose_secret().len() < 32 {
            return Err(AuthError::Config(
                "the HS256 secret must be at least 32 bytes".into(),
            ));
        }
        keys.hs256 = Some(DecodingKey::from_secret(secret.expose_secret().as_bytes()));
    }
    for key in &config.keys {
        keys.add_pem(key)?;
    }
    if let Some(path) = &config.jwks_file {
        keys.load_jwks(path)?;
    }
    if keys.is_empty() {
        return Err(AuthError::Config(
            "no verification key: set CONNVAULT_JWT_HS256_SECRET, auth.hs256_secret_file, auth.keys or auth.jwks_file (or run with --dev)".into(),
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

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
