//! Support for the fuzz targets in `fuzz/` and the property tests that run
//! the same checks in the normal suite. Not part of the library's API:
//! hidden from the docs, and free to change.
//!
//! One `check_*` function per family of decoders of untrusted bytes; each
//! runs the server's own code on the bytes and panics only when an answer
//! breaks a rule the server promises (a forged token accepted, a record that
//! does not read back as it was written, an INTERNAL answer to a request).
//! A panic is how the fuzzer and the property test report.
//!
//! - [`check_stored_record`]: what the data directory holds (records, the
//!   sled layout, sealed secrets, wrapped keys, cache entries, audit events);
//! - [`check_page_token`]: page tokens, forged or sealed around any bytes;
//! - [`check_plugin_answer`]: what a plugin answers (describe, validate,
//!   test, discover, application errors);
//! - [`check_token`]: bearer tokens, raw or signed around any header and claims;
//! - [`rpc::RpcFixture`]: every RPC's request, decoded and served by the real
//!   handlers over a real store and plugin.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod answers;
mod records;
pub mod rpc;
mod seeds;
mod tokens;

#[cfg(test)]
mod tests;

pub use crate::app::fuzzing::{
    check_validate_answer, decode_cache_entry, decode_page_token, discover_catalog,
    encode_cache_entry, encode_page_token, seal_page_token,
};
pub use answers::check_plugin_answer;
pub use records::check_stored_record;
pub use seeds::seed_inputs;
pub use tokens::{TokenFixture, check_page_token, check_token};

/// Splits a `u16` (little-endian) length-prefixed segment off the front of
/// `bytes`: how one fuzz input carries several values.
pub fn segment<'a>(bytes: &mut &'a [u8]) -> &'a [u8] {
    let len = match bytes {
        [low, high, ..] => usize::from(u16::from_le_bytes([*low, *high])),
        _ => 0,
    };
    let rest = bytes.get(2..).unwrap_or_default();
    let (head, tail) = rest.split_at(len.min(rest.len()));
    *bytes = tail;
    head
}
