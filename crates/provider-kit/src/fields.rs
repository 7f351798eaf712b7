//! Field schemas every network provider declares the same way.

use connvault_plugin_sdk::schema::{self, FieldBuilder};

/// The server's host name or address: required, one DNS name or literal.
pub fn host() -> FieldBuilder {
    schema::string("host")
        .required()
        .label("Host")
        .pattern("[A-Za-z0-9._:%-]+")
        .pattern_message("must be a host name or an IP address")
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

/// Host rules the field's pattern cannot express: `db:5432` is a common
/// paste of host and port (an IPv6 literal has more than one colon).
pub fn check_host(host: &str, violations: &mut connvault_plugin_sdk::Violations) {
    let pasted_port = host
        .split_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()));
    if pasted_port {
        violations.add("config.host", "give the host only: put the port in `port`");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_port_is_refused_and_ipv6_is_not() {
        let mut violations = connvault_plugin_sdk::Violations::default();
        check_host("db.example:5432", &mut violations);
        assert_eq!(violations.0.len(), 1);
        let mut violations = connvault_plugin_sdk::Violations::default();
        check_host("::1", &mut violations);
        check_host("db.example", &mut violations);
        assert!(violations.is_empty());
    }
}
