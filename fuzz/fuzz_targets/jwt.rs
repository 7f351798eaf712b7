//! Bearer tokens: `[0][token]` raw, or `[1][u16 len][header][claims]`
//! signed with the verifier's own HS256 secret.
#![no_main]

use std::sync::LazyLock;

use connvault::fuzzing::TokenFixture;
use libfuzzer_sys::fuzz_target;

static FIXTURE: LazyLock<TokenFixture> = LazyLock::new(TokenFixture::default);

fuzz_target!(|data: &[u8]| connvault::fuzzing::check_token(data, &FIXTURE));
