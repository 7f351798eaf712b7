//! Bearer-token authentication and role/tenant authorization.
//!
//! Every RPC except health and reflection carries `authorization: Bearer
//! <JWT>`. The [`Verifier`] checks signature (algorithm pinned per key),
//! `exp`, `nbf`, `iss` and `aud`, refuses a `crit` header (no extension is
//! understood), an empty `sub` and a lifetime over
//! [`AuthConfig::max_token_lifetime_secs`]; the claims give the principal, the tenants
//! it may act in and its roles. Any failure is one UNAUTHENTICATED with the
//! same message, so a caller learns nothing about why.

mod key_set;
mod verifier;

use std::collections::BTreeSet;
use std::path::PathBuf;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use key_set::KeySet;
pub use verifier::Verifier;

/// The longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The longest `sub` a token may carry: it is written into every audit
/// event and log line of the caller's requests.
pub const MAX_SUBJECT_BYTES: usize = 256;
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
    /// Issued at; when absent, the lifetime bound counts from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
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
    /// The longest lifetime a token may claim, in seconds: `exp - iat`
    /// (`exp - now` without `iat`). A stolen token is worth at most this long.
    pub max_token_lifetime_secs: u64,
}

/// The default of [`AuthConfig::max_token_lifetime_secs`]: 24 hours.
pub const DEFAULT_MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "connvault".into(),
            audience: "connvault".into(),
            leeway_secs: 30,
            hs256_secret_file: None,
            keys: Vec::new(),
            jwks_file: None,
            max_token_lifetime_secs: DEFAULT_MAX_TOKEN_LIFETIME_SECS,
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
    /// A check beyond the library's failed: a `crit` header, an empty
    /// `sub`, a lifetime over the maximum.
    #[error("token refused: {0}")]
    Refused(&'static str),
    /// The configuration cannot be used.
    #[error("auth configuration: {0}")]
    Config(String),
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
            iat: Some(now),
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
