//! Bytes as a damaged or hostile data directory could hold them, read by
//! every decoder of stored data: records, the sled layout, sealed secrets,
//! wrapped keys, metadata cache entries, audit events.
#![no_main]

use std::sync::LazyLock;

use connvault_crypto::{Keyring, MasterKey};
use libfuzzer_sys::fuzz_target;

static KEYRING: LazyLock<Keyring> = LazyLock::new(|| {
    let mut keyring = Keyring::new(MasterKey::from_bytes([5; 32]), Vec::new()).expect("keyring");
    keyring.add_data_key().expect("data key");
    keyring
});

fuzz_target!(|data: &[u8]| connvault::fuzzing::check_stored_record(data, &KEYRING));
