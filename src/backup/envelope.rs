//! The age envelope of a tenant export (age-encryption.org/v1, the `age`
//! crate): to an X25519 recipient or a passphrase.

use std::io::{Read as _, Write as _};

use secrecy::SecretString;
use zeroize::Zeroizing;

/// The largest export accepted for import (ciphertext and plaintext).
pub const MAX_EXPORT_BYTES: usize = 256 << 20;

/// Whom an export is encrypted to.
pub enum Recipient {
    /// An X25519 recipient, `age1...`.
    X25519(String),
    /// A passphrase (age's scrypt recipient).
    Passphrase(SecretString),
}

/// What opens an export.
pub enum Identity {
    /// An X25519 identity, `AGE-SECRET-KEY-1...`.
    X25519(SecretString),
    /// The passphrase it was encrypted with.
    Passphrase(SecretString),
}

/// Why an envelope could not be made or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The recipient is not an age X25519 recipient.
    #[error("not an age X25519 recipient (age1...)")]
    BadRecipient,
    /// The identity is not an age X25519 identity.
    #[error("not an age X25519 identity (AGE-SECRET-KEY-1...)")]
    BadIdentity,
    /// The identity or passphrase does not open this export (or it is not
    /// an age file, or it was changed).
    #[error("the identity does not open this export (wrong key or passphrase, or not an export)")]
    NotOpened,
    /// Over [`MAX_EXPORT_BYTES`].
    #[error("the export is larger than {MAX_EXPORT_BYTES} bytes")]
    TooLarge,
    /// Encryption failed.
    #[error("encrypting the export failed")]
    Encrypt,
}

/// Encrypts `plaintext` to `recipient` (blocking: scrypt takes about a second).
pub fn seal(plaintext: &[u8], recipient: Recipient) -> Result<Vec<u8>, EnvelopeError> {
    let encryptor = match recipient {
        Recipient::X25519(key) => {
            let key: age::x25519::Recipient = key
                .trim()
                .parse()
                .map_err(|_| EnvelopeError::BadRecipient)?;
            age::Encryptor::with_recipients(std::iter::once(&key as &dyn age::Recipient))
                .map_err(|_| EnvelopeError::Encrypt)?
        }
        Recipient::Passphrase(passphrase) => age::Encryptor::with_user_passphrase(passphrase),
    };
    let mut out = Vec::with_capacity(plaintext.len() + 1024);
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|_| EnvelopeError::Encrypt)?;
    writer
        .write_all(plaintext)
        .map_err(|_| EnvelopeError::Encrypt)?;
    writer.finish().map_err(|_| EnvelopeError::Encrypt)?;
    Ok(out)
}

/// Decrypts an export with `identity` (blocking), reading at most
/// [`MAX_EXPORT_BYTES`] of plaintext.
pub fn open(ciphertext: &[u8], identity: Identity) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    use secrecy::ExposeSecret as _;
    let decryptor =
        age::Decryptor::new_buffered(ciphertext).map_err(|_| EnvelopeError::NotOpened)?;
    let mut reader = match identity {
        Identity::X25519(key) => {
            let key: age::x25519::Identity = key
                .expose_secret()
                .trim()
                .parse()
                .map_err(|_| EnvelopeError::BadIdentity)?;
            decryptor.decrypt(std::iter::once(&key as &dyn age::Identity))
        }
        Identity::Passphrase(passphrase) => {
            let identity = age::scrypt::Identity::new(passphrase);
            decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
        }
    }
    .map_err(|_| EnvelopeError::NotOpened)?;
    let mut plaintext = Zeroizing::new(Vec::new());
    (&mut reader)
        .take(MAX_EXPORT_BYTES as u64 + 1)
        .read_to_end(&mut plaintext)
        .map_err(|_| EnvelopeError::NotOpened)?;
    if plaintext.len() > MAX_EXPORT_BYTES {
        return Err(EnvelopeError::TooLarge);
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn opens_with_the_right_identity_only() {
        let key = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let sealed = seal(b"tenant", Recipient::X25519(key.to_public().to_string())).unwrap();
        let opened = open(
            &sealed,
            Identity::X25519(SecretString::from(
                key.to_string().expose_secret().to_owned(),
            )),
        )
        .unwrap();
        assert_eq!(opened.as_slice(), b"tenant");
        let wrong = open(
            &sealed,
            Identity::X25519(SecretString::from(
                other.to_string().expose_secret().to_owned(),
            )),
        );
        assert!(matches!(wrong, Err(EnvelopeError::NotOpened)));
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        let key_text = SecretString::from(key.to_string().expose_secret().to_owned());
        assert!(matches!(
            open(&changed, Identity::X25519(key_text)),
            Err(EnvelopeError::NotOpened)
        ));
        assert!(matches!(
            seal(b"x", Recipient::X25519("age1nope".into())),
            Err(EnvelopeError::BadRecipient)
        ));
    }
}
