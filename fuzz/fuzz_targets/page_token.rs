//! Page tokens: `[u16 query length][query][token text or sealed plaintext]`.
#![no_main]

use std::sync::LazyLock;

use connvault_crypto::{Keyring, MasterKey};
use libfuzzer_sys::fuzz_target;

static KEYRING: LazyLock<Keyring> =
    LazyLock::new(|| Keyring::new(MasterKey::from_bytes([6; 32]), Vec::new()).expect("keyring"));

fuzz_target!(|data: &[u8]| connvault::fuzzing::check_page_token(data, &KEYRING));
