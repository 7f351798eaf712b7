//! The form session: a cookie holding, sealed under a key of its own, the
//! link it belongs to, its CSRF token and its expiry (30 minutes). Nothing
//! is kept in memory, so a restart does not end a session and a flood of
//! opened links costs no server memory; the link's stored state decides
//! whether the session may still act.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connvault_crypto::Keyring;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "cv_form";
/// How long a session lasts, in seconds.
pub const SESSION_SECS: i64 = 30 * 60;
const PURPOSE: &str = "form-session-v1";
const CONTEXT: &[u8] = b"connvault form session";

/// What a session cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The tenant.
    #[serde(rename = "t")]
    pub tenant_id: String,
    /// The link.
    #[serde(rename = "l")]
    pub link_id: String,
    /// The CSRF token every form of this session carries.
    #[serde(rename = "c")]
    pub csrf: String,
    /// Seconds since the epoch when it ends.
    #[serde(rename = "e")]
    pub expire_unix: i64,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs() as i64)
        .unwrap_or(0)
}

impl Session {
    /// A new session for a link just opened.
    pub fn new(tenant_id: &str, link_id: &str) -> Session {
        let mut csrf = [0u8; 24];
        // The system's generator does not fail on Linux; were it to, the
        // token would be empty and every submission refused.
        if SystemRandom::new().fill(&mut csrf).is_err() {
            tracing::error!("no randomness for a form session's CSRF token");
        }
        Session {
            tenant_id: tenant_id.to_owned(),
            link_id: link_id.to_owned(),
            csrf: URL_SAFE_NO_PAD.encode(csrf),
            expire_unix: now() + SESSION_SECS,
        }
    }

    /// The `Set-Cookie` value.
    pub fn cookie(&self, keyring: &Keyring) -> Option<String> {
        let plain = serde_json::to_vec(self).ok()?;
        let sealed = keyring.seal_opaque(PURPOSE, CONTEXT, &plain).ok()?;
        Some(format!(
            "{COOKIE}={}; Path=/forms; Max-Age={SESSION_SECS}; Secure; HttpOnly; SameSite=Strict",
            URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// The session a request's `Cookie` header carries, if any is valid now.
    pub fn from_cookie_header(keyring: &Keyring, header: &str) -> Option<Session> {
        let value = header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value)?;
        if value.len() > 4096 {
            return None;
        }
        let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
        let plain = keyring.open_opaque(PURPOSE, CONTEXT, &sealed).ok()?;
        let session: Session = serde_json::from_slice(&plain).ok()?;
        (session.expire_unix > now()).then_some(session)
    }

    /// Whether `submitted` is this session's CSRF token (compared through
    /// digests, so the comparison's time says nothing of the token).
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        Sha256::digest(self.csrf.as_bytes()) == Sha256::digest(submitted.as_bytes())
    }
}
