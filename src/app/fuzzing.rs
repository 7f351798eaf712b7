//! The app's decoders of untrusted bytes, for `crate::fuzzing`: page
//! tokens, a plugin's validate and discover answers held to their rules, and
//! metadata cache entries. Each is the code the RPCs run, not a copy.

use std::collections::BTreeMap;
use std::time::Duration;

use connvault_crypto::{Keyring, SecretMap};
use connvault_plugin_abi::pb as plugin;

use crate::error::ServiceError;
use crate::pb::v1;

pub use super::pagination::{decode_page_token, encode_page_token};

/// A page token sealing `plain` as it is (no padding), for `query`.
pub fn seal_page_token(
    keyring: &Keyring,
    query: &str,
    plain: &[u8],
) -> Result<String, ServiceError> {
    super::pagination::seal_token(keyring, query, plain)
}

/// Holds a validate answer's `normalized` config, and the `secrets` about to
/// be sealed, to `source`'s schema, as a create or update does.
pub fn check_validate_answer(
    plugin_name: &str,
    source: &plugin::DataSource,
    sent: &BTreeMap<String, plugin::Value>,
    normalized: &BTreeMap<String, plugin::Value>,
    secrets: &SecretMap,
) -> Result<(), ServiceError> {
    super::connections::conform(plugin_name, source, sent, normalized, secrets)
}

/// A plugin's discover answer held to `request`'s limits, as the API answers it.
pub fn discover_catalog(
    request: &v1::DiscoverMetadataRequest,
    answer: plugin::DiscoverResponse,
) -> Result<v1::DiscoverMetadataResponse, ServiceError> {
    Ok(super::discover::Params::from_request(request)?.catalog(answer))
}

/// A stored metadata cache entry, if readable and younger than `ttl`.
pub fn decode_cache_entry(entry: &[u8], ttl: Duration) -> Option<v1::DiscoverMetadataResponse> {
    super::discover::decode_entry(entry, ttl)
}

/// The stored form of a metadata cache entry.
pub fn encode_cache_entry(response: &v1::DiscoverMetadataResponse) -> Vec<u8> {
    super::discover::encode_entry(response)
}
