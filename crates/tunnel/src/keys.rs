//! Checking tunnel settings without a network: host key fingerprints and
//! private keys.

use russh::keys::{HashAlg, PrivateKey, PublicKey};
use secrecy::{ExposeSecret, SecretString};

use crate::{Failure, TunnelError};

/// Length of an unpadded base64 SHA-256 digest.
const DIGEST_CHARS: usize = 43;

/// Checks that `text` is a SHA256 fingerprint as OpenSSH prints it:
/// `SHA256:` and 43 characters of unpadded base64.
pub fn check_fingerprint(text: &str) -> Result<(), String> {
    let Some(digest) = text.strip_prefix("SHA256:") else {
        return Err("must start with `SHA256:` (as `ssh-keygen -l -E sha256` prints it)".into());
    };
    let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    if digest.len() != DIGEST_CHARS || !digest.bytes().all(base64) {
        return Err(format!(
            "must be `SHA256:` and {DIGEST_CHARS} characters of unpadded base64"
        ));
    }
    Ok(())
}

/// The SHA256 fingerprint of a public key, OpenSSH's way.
pub(crate) fn fingerprint_of(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Reads a private key; CONFIG when it does not read, in words that never
/// quote it.
pub(crate) fn decode(
    key: &SecretString,
    passphrase: Option<&SecretString>,
) -> Result<PrivateKey, TunnelError> {
    russh::keys::decode_secret_key(
        key.expose_secret(),
        passphrase.map(|passphrase| passphrase.expose_secret()),
    )
    .map_err(|error| {
        let message = match error {
            russh::keys::Error::KeyIsEncrypted => {
                "the tunnel's private key is encrypted: its passphrase is missing"
            }
            _ if passphrase.is_some() => {
                "the tunnel's private key cannot be read (not an OpenSSH, PKCS#8 or PEM key, or a wrong passphrase)"
            }
            _ => "the tunnel's private key cannot be read (not an OpenSSH, PKCS#8 or PEM key)",
        };
        TunnelError::new(Failure::Config, message)
    })
}

/// Checks that `key` reads as a private key with `passphrase`; the error
/// says why in words that never quote the key.
pub fn check_private_key(
    key: &SecretString,
    passphrase: Option<&SecretString>,
) -> Result<(), String> {
    decode(key, passphrase)
        .map(drop)
        .map_err(|error| error.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_openssh_sha256() {
        let good = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        assert_eq!(check_fingerprint(good), Ok(()));
        for bad in [
            "",
            "uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48",
            "SHA256:short",
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s=",
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2!",
        ] {
            assert!(check_fingerprint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_that_does_not_read_is_never_quoted() {
        let text = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key-SECRETMATERIAL\n-----END OPENSSH PRIVATE KEY-----\n";
        let error = check_private_key(&SecretString::from(text), None).unwrap_err();
        assert!(!error.contains("SECRETMATERIAL"), "{error}");
    }
}
