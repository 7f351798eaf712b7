//! Hosted connection forms: the links a partner creates (`links.rs`), the
//! token a link's URL carries (`token.rs`), the tenant's settings and the
//! redirect rule (`settings.rs`), and the key redirects are signed with.
//!
//! A link's token is sealed with AES-256-GCM under a key derived from the
//! master key for this purpose alone (`Keyring::seal_opaque`): it cannot be
//! forged or altered, and it says nothing to whoever holds it. The link's
//! state lives in the store's meta keyspace; the token is checked against it
//! on every use, so revoking or using a link ends it whatever the token says.
//!
//! Redirects back to the partner are signed with Ed25519 under a key whose
//! seed is derived from the master key (`Keyring::derive_key`): the same
//! key for as long as the master key lives, published (public half only) at
//! `GET /v1/forms/keys` as a JWK set so partners verify without a secret.

mod links;
mod session;
mod settings;
mod token;

use std::sync::OnceLock;

pub use links::{LinkState, OpenedLink, link_name};
pub use settings::{check_settings, origin_of, redirect_allowed, valid_colour};
pub use token::LinkToken;

/// The size limits of a tenant's form settings.
pub mod settings_bounds {
    pub use super::settings::{
        MAX_BRANDING_CHARS, MAX_FORM_DATA_SOURCES, MAX_ORIGIN_BYTES, MAX_ORIGINS,
    };
}

use ring::signature::{Ed25519KeyPair, KeyPair};

use super::App;

/// Default lifetime of a link (CData's links live 3 minutes).
pub const DEFAULT_LINK_TTL_SECS: u64 = 180;
/// Longest lifetime a link may ask for.
pub const MAX_LINK_TTL_SECS: u64 = 3600;
/// Longest `redirect_url`, in bytes.
pub const MAX_REDIRECT_URL_BYTES: usize = 2000;
/// Longest partner `state`, in bytes.
pub const MAX_STATE_BYTES: usize = 500;

/// What the forms need beyond the rest of the app, set once at start.
#[derive(Default)]
pub struct FormsState {
    base_url: OnceLock<String>,
    signing: OnceLock<Ed25519KeyPair>,
}

/// The purpose the redirect key's seed is derived for.
const SIGNING_PURPOSE: &str = "form-redirect-ed25519-v1";

/// The public verification key, as a JWK.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublicJwk {
    /// `OKP`.
    pub kty: &'static str,
    /// `Ed25519`.
    pub crv: &'static str,
    /// The key's id: the first 16 hex digits of SHA-256 of the public key.
    pub kid: String,
    /// `EdDSA`.
    pub alg: &'static str,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// The public key, base64url without padding.
    pub x: String,
}

impl App {
    /// Sets the URL form links point at (`https://forms.example.com`, or the
    /// HTTP listener's own address); links cannot be created before.
    pub fn set_form_base_url(&self, url: &str) {
        let _ = self
            .forms
            .base_url
            .set(url.trim_end_matches('/').to_owned());
    }

    fn form_base_url(&self) -> Option<&str> {
        self.forms.base_url.get().map(String::as_str)
    }

    fn signing_key(&self) -> Option<&Ed25519KeyPair> {
        if self.forms.signing.get().is_none() {
            let seed = self.keyring().derive_key(SIGNING_PURPOSE);
            match Ed25519KeyPair::from_seed_unchecked(&seed[..]) {
                Ok(pair) => {
                    let _ = self.forms.signing.set(pair);
                }
                Err(error) => tracing::error!(%error, "cannot make the form redirect key"),
            }
        }
        self.forms.signing.get()
    }

    /// The key redirects are verified with.
    pub fn form_public_key(&self) -> Option<PublicJwk> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let public = self.signing_key()?.public_key().as_ref().to_vec();
        Some(PublicJwk {
            kty: "OKP",
            crv: "Ed25519",
            kid: hex::encode(&sha2::Sha256::digest(&public)[..8]),
            alg: "EdDSA",
            use_: "sig",
            x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public),
        })
    }

    /// Signs `message` with the redirect key: base64url, no padding.
    pub fn sign_form_redirect(&self, message: &[u8]) -> Option<String> {
        use base64::Engine as _;
        let signature = self.signing_key()?.sign(message);
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// The bytes a redirect's signature covers: every parameter it carries, in
/// a fixed order, each on its own line (none may hold a newline: the
/// redirect URL is checked, names are plain, `state` is percent-encoded
/// by whoever reads it back from the query string).
pub fn redirect_message(
    redirect_url: &str,
    link: &str,
    connection: &str,
    outcome: &str,
    state: &str,
) -> Vec<u8> {
    format!(
        "connvault-form-redirect-v1\n{redirect_url}\n{link}\n{connection}\n{outcome}\n{}",
        state.replace('\n', "%0A")
    )
    .into_bytes()
}
