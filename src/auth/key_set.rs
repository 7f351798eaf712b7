//! The verification keys: an optional HS256 secret, PEM public keys and a JWKS file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::{AuthError, PublicKeyConfig};

/// Source of [`KeySet::generation`]: every key set built gets its own.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// Keys by `kid`, each pinned to one algorithm.
pub struct KeySet {
    /// The shared HS256 secret, used for tokens without a `kid`.
    pub(super) hs256: Option<DecodingKey>,
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    generation: u64,
}

impl Default for KeySet {
    fn default() -> Self {
        Self {
            hs256: None,
            by_kid: HashMap::new(),
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl KeySet {
    /// Which key set this is: tokens verified under another are checked again.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.hs256.is_none() && self.by_kid.is_empty()
    }

    /// The key for a token: by `kid` (its pinned algorithm must be the header's),
    /// or the HS256 secret for an HS256 token without a `kid`.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<(&DecodingKey, Algorithm)> {
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .filter(|(_, pinned)| *pinned == alg)
                .map(|(key, pinned)| (key, *pinned)),
            None if alg == Algorithm::HS256 => {
                self.hs256.as_ref().map(|key| (key, Algorithm::HS256))
            }
            None => None,
        }
    }

    /// A changed set is a new generation.
    fn renew(&mut self) {
        self.generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a PEM public key.
    pub fn add_pem(&mut self, config: &PublicKeyConfig) -> Result<(), AuthError> {
        let pem = std::fs::read(&config.pem_file).map_err(|error| {
            AuthError::Config(format!(
                "cannot read {}: {error}",
                config.pem_file.display()
            ))
        })?;
        let (key, alg) = match config.alg.as_str() {
            "RS256" => (DecodingKey::from_rsa_pem(&pem)?, Algorithm::RS256),
            "ES256" => (DecodingKey::from_ec_pem(&pem)?, Algorithm::ES256),
            "EdDSA" => (DecodingKey::from_ed_pem(&pem)?, Algorithm::EdDSA),
            other => {
                return Err(AuthError::Config(format!(
                    "key {}: algorithm {other} is not one of RS256, ES256, EdDSA",
                    config.kid
                )));
            }
        };
        self.by_kid.insert(config.kid.clone(), (key, alg));
        self.renew();
        Ok(())
    }

    /// Adds every key of a JWKS file that names its `kid` and `alg`.
    pub fn load_jwks(&mut self, path: &Path) -> Result<(), AuthError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            AuthError::Config(format!("cannot read {}: {error}", path.display()))
        })?;
        let set: JwkSet = serde_json::from_str(&text).map_err(|error| {
            AuthError::Config(format!("{} is not a JWKS: {error}", path.display()))
        })?;
        for jwk in &set.keys {
            let (Some(kid), Some(alg)) = (jwk.common.key_id.clone(), jwk.common.key_algorithm)
            else {
                continue;
            };
            let alg = match alg {
                jsonwebtoken::jwk::KeyAlgorithm::RS256 => Algorithm::RS256,
                jsonwebtoken::jwk::KeyAlgorithm::ES256 => Algorithm::ES256,
                jsonwebtoken::jwk::KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                _ => continue,
            };
            self.by_kid.insert(kid, (DecodingKey::from_jwk(jwk)?, alg));
        }
        self.renew();
        Ok(())
    }
}
