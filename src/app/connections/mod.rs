//! Connections: create, get, update, delete, batch delete, test — one job per file.
//!
//! - [`rules`]: the field rules checked before a plugin sees a connection.
//! - [`secrets`]: the secret map, and the convention that keeps the TLS client
//!   key and the SSH tunnel's key, passphrase and password in it under
//!   names with a dot (`secrets::TLS_KEY_SECRET`, `secrets::TUNNEL_SECRETS`).
//! - [`sealing`]: sealing the secret map into a record and opening it again.
//! - [`records`]: every store call on connections, one small function each.
//! - [`check`]: the rules plus the plugin's validation of a whole connection.
//! - [`conform`]: the plugin's validate answer held to the plugin's own schema.
//! - [`spec`]: the plugin's view of a connection, and the one way a saved
//!   connection is loaded for a plugin call (test, resolve, discover).
//! - [`create`], [`get`], [`update`] (with [`mask`], the field-mask engine, and
//!   [`redirect`], the guard on where secrets are sent), [`delete`],
//!   [`test_connection`]: the RPCs.

mod check;
mod conform;
mod create;
mod delete;
mod get;
mod mask;
mod records;
mod redirect;
mod rules;
mod sealing;
mod secrets;
mod spec;
mod test_connection;
mod transfer;
mod update;

pub(super) use conform::conform;
pub(crate) use sealing::aad as secrets_aad;
pub(super) use secrets::{
    TUNNEL_KEY_SECRET, TUNNEL_PASSPHRASE_SECRET, TUNNEL_PASSWORD_SECRET, exposed,
};
pub(super) use spec::Opened;
