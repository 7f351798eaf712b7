//! Field schemas every network provider declares the same way.

use connvault_plugin_sdk::schema::{self, FieldBuilder};

/// The server's host name or address: required, one DNS name or literal.
pub fn host() -> FieldBuilder {
    schema::string("host")
        .required()
        .label("Host")
        .pattern("[A-Za-z0-9._:%-]+")
        .max_length(253)
        .description("Host name or IP address of the server.")
}

/// The server's TCP port, defaulting to `default`.
pub fn port(default: u16) -> FieldBuilder {
    schema::int("port")
        .label("Port")
        .range(1, 65535)
        .default_value(default)
        .description("TCP port the server listens on.")
}
