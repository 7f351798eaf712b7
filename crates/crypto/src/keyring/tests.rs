//! The keyring's unit tests.
use super::*;

const AAD: Aad<'static> = Aad {
    tenant: "acme",
    record_id: "0190c0de-0000-7000-8000-000000000001",
    purpose: "connection.secrets",
};

fn secrets() -> SecretMap {
    [
        ("password", SecretString::from("CANARY-password")),
        ("tls_key", SecretString::from("-----BEGIN KEY----- CANARY")),
    ]
    .into_iter()
    .collect()
}

fn keyring() -> Keyring {
    let mut keyring = Keyring::new(MasterKey::generate().unwrap(), Vec::new()).unwrap();
    keyring.add_data_key().unwrap();
    keyring
}

fn exposed(map: &SecretMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| (k.to_owned(), v.expose_secret().to_owned()))
        .collect()
}

#[test]
fn round_trip_through_bytes() {
    let keyring = keyring();
    let sealed = keyring.seal(&AAD, &secrets()).unwrap();
    assert_eq!(sealed.key_version, 1);
    let bytes = sealed.to_bytes();
    assert!(!String::from_utf8_lossy(&bytes).contains("CANARY"));
    let opened = keyring
        .open(&AAD, &Sealed::from_bytes(&bytes).unwrap())
        .unwrap();
    assert_eq!(exposed(&opened), exposed(&secrets()));
    let empty = keyring.seal(&AAD, &SecretMap::new()).unwrap();
    assert!(keyring.open(&AAD, &empty).unwrap().is_empty());
}

#[test]
fn seal_without_data_key_fails() {
    let keyring = Keyring::new(MasterKey::generate().unwrap(), Vec::new()).unwrap();
    assert_eq!(keyring.current_version(), None);
    assert!(matches!(
        keyring.seal(&AAD, &secrets()),
        Err(CryptoError::NoDataKey)
    ));
}

#[test]
fn wrong_aad_fails_opaquely() {
    let keyring = keyring();
    let sealed = keyring.seal(&AAD, &secrets()).unwrap();
    for aad in [
        Aad {
            tenant: "acme2",
            ..AAD
        },
        Aad {
            record_id: "0190c0de-0000-7000-8000-000000000002",
            ..AAD
        },
        Aad {
            purpose: "other",
            ..AAD
        },
    ] {
        assert!(matches!(
            keyring.open(&aad, &sealed),
            Err(CryptoError::Open)
        ));
    }
}

#[test]
fn wrong_or_unknown_version_fails_opaquely() {
    let mut keyring = keyring();
    keyring.add_data_key().unwrap();
    assert_eq!(keyring.current_version(), Some(2));
    let sealed = keyring.seal(&AAD, &secrets()).unwrap();
    assert_eq!(sealed.key_version, 2);
    // Relabelled with another known version: the AAD (and key) differ.
    let relabelled = Sealed {
        key_version: 1,
        ..sealed.clone()
    };
    assert!(matches!(
        keyring.open(&AAD, &relabelled),
        Err(CryptoError::Open)
    ));
    let unknown = Sealed {
        key_version: 99,
        ..sealed
    };
    assert!(matches!(
        keyring.open(&AAD, &unknown),
        Err(CryptoError::Open)
    ));
}

#[test]
fn old_version_still_opens_after_rotation() {
    let mut keyring = keyring();
    let v1 = keyring.seal(&AAD, &secrets()).unwrap();
    keyring.add_data_key().unwrap();
    let v2 = keyring.seal(&AAD, &secrets()).unwrap();
    assert_eq!((v1.key_version, v2.key_version), (1, 2));
    assert_eq!(
        exposed(&keyring.open(&AAD, &v1).unwrap()),
        exposed(&secrets())
    );
    assert_eq!(
        exposed(&keyring.open(&AAD, &v2).unwrap()),
        exposed(&secrets())
    );
}

#[test]
fn every_flipped_bit_fails_opaquely() {
    let keyring = keyring();
    let bytes = keyring.seal(&AAD, &secrets()).unwrap().to_bytes();
    for i in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        let result = Sealed::from_bytes(&tampered).and_then(|s| keyring.open(&AAD, &s));
        assert!(matches!(result, Err(CryptoError::Open)), "byte {i}");
    }
    let truncated =
        Sealed::from_bytes(&bytes[..bytes.len() - 1]).and_then(|s| keyring.open(&AAD, &s));
    assert!(matches!(truncated, Err(CryptoError::Open)));
    assert_eq!(CryptoError::Open.to_string(), "cannot open sealed secrets");
}

#[test]
fn two_seals_differ() {
    let keyring = keyring();
    let a = keyring.seal(&AAD, &secrets()).unwrap();
    let b = keyring.seal(&AAD, &secrets()).unwrap();
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn reload_with_same_master_key_and_refuse_wrong_one() {
    let master = MasterKey::generate().unwrap();
    let master_b64 = master.to_base64();
    let check = Keyring::check_value(&master);
    let mut keyring = Keyring::new(master, Vec::new()).unwrap();
    keyring.add_data_key().unwrap();
    keyring.add_data_key().unwrap();
    let sealed = keyring.seal(&AAD, &secrets()).unwrap();
    let persisted = WrappedKey::encode_list(keyring.wrapped_keys());

    let same = MasterKey::from_base64(master_b64.expose_secret()).unwrap();
    Keyring::verify_check_value(&same, &check).unwrap();
    let reloaded = Keyring::new(same, WrappedKey::decode_list(&persisted).unwrap()).unwrap();
    assert_eq!(reloaded.current_version(), Some(2));
    assert_eq!(
        exposed(&reloaded.open(&AAD, &sealed).unwrap()),
        exposed(&secrets())
    );

    let wrong = MasterKey::generate().unwrap();
    assert!(matches!(
        Keyring::verify_check_value(&wrong, &check),
        Err(CryptoError::WrongMasterKey)
    ));
    assert!(matches!(
        Keyring::new(wrong, WrappedKey::decode_list(&persisted).unwrap()),
        Err(CryptoError::WrongMasterKey)
    ));
}

#[test]
fn relabelled_wrapped_key_is_refused() {
    let master = MasterKey::generate().unwrap();
    let b64 = master.to_base64();
    let mut keyring = Keyring::new(master, Vec::new()).unwrap();
    let mut wrapped = keyring.add_data_key().unwrap();
    wrapped.version = 2;
    let master = MasterKey::from_base64(b64.expose_secret()).unwrap();
    assert!(matches!(
        Keyring::new(master, vec![wrapped]),
        Err(CryptoError::WrongMasterKey)
    ));
}

#[test]
fn duplicate_versions_are_refused() {
    let master = MasterKey::generate().unwrap();
    let b64 = master.to_base64();
    let mut keyring = Keyring::new(master, Vec::new()).unwrap();
    let wrapped = keyring.add_data_key().unwrap();
    let master = MasterKey::from_base64(b64.expose_secret()).unwrap();
    assert!(matches!(
        Keyring::new(master, vec![wrapped.clone(), wrapped]),
        Err(CryptoError::InvalidKeyring(_))
    ));
}

#[test]
fn rewrap_under_new_master_keeps_records_readable() {
    let keyring = keyring();
    let sealed = keyring.seal(&AAD, &secrets()).unwrap();
    let new_master = MasterKey::generate().unwrap();
    let rewrapped = keyring.rewrap(&new_master).unwrap();
    let again = Keyring::new(new_master, rewrapped).unwrap();
    assert_eq!(
        exposed(&again.open(&AAD, &sealed).unwrap()),
        exposed(&secrets())
    );
}

#[test]
fn wrapped_key_bytes_round_trip() {
    let mut keyring = keyring();
    let wrapped = keyring.add_data_key().unwrap();
    assert_eq!(
        WrappedKey::from_bytes(&wrapped.to_bytes()).unwrap(),
        wrapped
    );
    let list = WrappedKey::encode_list(keyring.wrapped_keys());
    assert_eq!(
        WrappedKey::decode_list(&list).unwrap(),
        keyring.wrapped_keys()
    );
    assert!(WrappedKey::decode_list(&list[..list.len() - 1]).is_err());
    assert!(WrappedKey::from_bytes(&[]).is_err());
}

#[test]
fn hmac_secret_is_stable_and_hides_the_value() {
    let keyring = keyring();
    let a = keyring.hmac_secret(&SecretString::from("CANARY-value"));
    let b = keyring.hmac_secret(&SecretString::from("CANARY-value"));
    let c = keyring.hmac_secret(&SecretString::from("other"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 64);
    assert!(!a.contains("CANARY"));
    // Another master key gives another HMAC.
    assert_ne!(
        a,
        self::keyring().hmac_secret(&SecretString::from("CANARY-value"))
    );
}

#[test]
fn debug_never_shows_keys_or_secrets() {
    let keyring = keyring();
    let shown = format!("{keyring:?} {:?}", keyring.wrapped_keys());
    assert!(shown.contains("versions"));
    let sealed = keyring.seal(&AAD, &secrets()).unwrap();
    assert!(!format!("{sealed:?}").contains("CANARY"));
}
