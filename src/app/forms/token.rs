//! The token a link's URL carries: what the link binds (tenant, link,
//! flow, connection, redirect URL, expiry), sealed so that it can be
//! neither read nor altered nor forged without the master key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connvault_crypto::Keyring;
use serde::{Deserialize, Serialize};

/// The purpose the token key is derived for.
const PURPOSE: &str = "form-link-v1";
/// Associated data: a token made for anything else never opens as a link.
const CONTEXT: &[u8] = b"connvault form link token";
/// The longest token accepted from a URL, in characters.
pub const MAX_TOKEN_CHARS: usize = 8192;

/// What a link's token binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkToken {
    /// The tenant.
    #[serde(rename = "t")]
    pub tenant_id: String,
    /// The link.
    #[serde(rename = "l")]
    pub link_id: String,
    /// Seconds since the epoch after which the link no longer opens.
    #[serde(rename = "e")]
    pub expire_unix: i64,
    /// An edit link (else a create link).
    #[serde(rename = "k")]
    pub edit: bool,
    /// The connection an edit link changes, empty for a create link.
    #[serde(rename = "c")]
    pub connection: String,
    /// Where the user is sent back.
    #[serde(rename = "r")]
    pub redirect_url: String,
}

impl LinkToken {
    /// The token as it goes into a URL (base64url, no padding).
    pub fn seal(&self, keyring: &Keyring) -> Option<String> {
        let plain = serde_json::to_vec(self).ok()?;
        let sealed = keyring.seal_opaque(PURPOSE, CONTEXT, &plain).ok()?;
        Some(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Opens a token from a URL; `None` for anything this server did not
    /// make (tampered, truncated, another server's, another purpose's).
    pub fn open(keyring: &Keyring, text: &str) -> Option<LinkToken> {
        if text.len() > MAX_TOKEN_CHARS {
            return None;
        }
        let sealed = URL_SAFE_NO_PAD.decode(text).ok()?;
        let plain = keyring.open_opaque(PURPOSE, CONTEXT, &sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connvault_crypto::MasterKey;

    fn keyring(byte: u8) -> Keyring {
        let mut ring = Keyring::new(MasterKey::from_bytes([byte; 32]), Vec::new()).unwrap();
        ring.add_data_key().unwrap();
        ring
    }

    #[test]
    fn a_token_opens_only_untouched_and_on_its_own_server() {
        let ring = keyring(7);
        let token = LinkToken {
            tenant_id: "acme".into(),
            link_id: "l1".into(),
            expire_unix: 1_900_000_000,
            edit: false,
            connection: String::new(),
            redirect_url: "https://app.example.com/done".into(),
        };
        let text = token.seal(&ring).unwrap();
        assert!(!text.contains("acme") && !text.contains("example"));
        assert_eq!(LinkToken::open(&ring, &text), Some(token));
        // Any changed character, a truncation, another master key: refused.
        let mut bytes = text.clone().into_bytes();
        let middle = bytes.len() / 2;
        bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(LinkToken::open(&ring, &tampered), None);
        assert_eq!(LinkToken::open(&ring, &text[..text.len() - 2]), None);
        assert_eq!(LinkToken::open(&keyring(8), &text), None);
        assert_eq!(LinkToken::open(&ring, "not a token"), None);
    }
}
