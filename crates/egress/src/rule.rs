//! One rule: which destinations (a network, a host name, this machine or
//! anything) on which ports.
//!
//! The syntax, one string per rule:
//!
//! | rule | matches |
//! | --- | --- |
//! | `10.0.0.0/8`, `192.0.2.7`, `fd00::/8`, `::1` | an address in the network (a bare address is a /32 or /128) |
//! | `db.example.com` | that host name, whatever it resolves to |
//! | `*.example.com` | any name under `example.com` (not `example.com` itself) |
//! | `local` | any address of this machine (its interfaces, loopback, unspecified) |
//! | `*` | any destination |
//!
//! followed by an optional `:port` or `:first-last` range (`*` for every
//! port): `10.0.0.0/8:5432`, `db.example.com:5432-5439`, `*:6379`. An IPv6
//! network with a port goes in brackets: `[fd00::/8]:5432`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::addr::{canonical, is_local};

/// The longest rule accepted, in bytes.
pub const MAX_RULE_LEN: usize = 300;

/// Why a rule did not parse; the message quotes nothing but the rule's own syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The rule is empty.
    #[error("is empty")]
    Empty,
    /// The rule is longer than [`MAX_RULE_LEN`].
    #[error("is longer than {MAX_RULE_LEN} bytes")]
    TooLong,
    /// The port part is not a port, a `first-last` range or `*`.
    #[error("has a port that is not 1-65535, a range `first-last` of them, or `*`")]
    Port,
    /// A network's prefix length is too long for its address family.
    #[error("has a prefix length longer than the address")]
    Prefix,
    /// A network has bits set past its prefix length.
    #[error("has address bits set past the prefix length (write the network's first address)")]
    HostBits,
    /// An IPv6 address in brackets is not an address or a network.
    #[error("has brackets around something that is not an IPv6 address or network")]
    Brackets,
    /// The destination is not an address, a network, a host name, `local` or `*`.
    #[error("is not an address, a network, a host name, `*.domain`, `local` or `*`")]
    Destination,
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    address: IpAddr,
    prefix: u8,
}

impl Net {
    /// The network `address/prefix`; IPv4-mapped IPv6 networks of prefix
    /// 96 or more become the IPv4 network they carry, so they match the
    /// addresses [`canonical`] gives.
    pub fn new(address: IpAddr, prefix: u8) -> Result<Net, RuleError> {
        let bits = if address.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(RuleError::Prefix);
        }
        if mask(address, prefix) != address {
            return Err(RuleError::HostBits);
        }
        if let IpAddr::V6(v6) = address
            && prefix >= 96
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Ok(Net {
                address: IpAddr::V4(v4),
                prefix: prefix - 96,
            });
        }
        Ok(Net { address, prefix })
    }

    /// Whether `address` (taken as given: callers pass [`canonical`] forms) is in the network.
    pub fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.address.is_ipv4() && mask(address, self.prefix) == self.address
    }
}

impl fmt::Display for Net {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.address.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(formatter, "{}", self.address)
        } else {
            write!(formatter, "{}/{}", self.address, self.prefix)
        }
    }
}

/// `address` with every bit past `prefix` cleared.
fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & keep))
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    }
}

/// Which destinations a rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Any destination (`*`).
    Any,
    /// Any address of this machine (`local`).
    Local,
    /// An address in a network.
    Net(Net),
    /// Exactly this host name (lowercase, no trailing dot).
    Name(String),
    /// Any name ending in `.` followed by this domain (`*.example.com`).
    Under(String),
}

/// An inclusive range of TCP ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The first port.
    pub first: u16,
    /// The last port.
    pub last: u16,
}

impl Ports {
    /// Every port.
    pub const ALL: Ports = Ports {
        first: 1,
        last: u16::MAX,
    };

    fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

/// One rule: destinations and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which destinations.
    pub destination: Destination,
    /// Which ports.
    pub ports: Ports,
}

impl Rule {
    /// A rule naming `destination` on every port.
    pub fn any_port(destination: Destination) -> Rule {
        Rule {
            destination,
            ports: Ports::ALL,
        }
    }

    /// Whether the rule matches a connection to `address`, reached through
    /// the host name `host` (`None`, or an address literal, when there is none).
    pub fn matches(&self, host: Option<&str>, address: SocketAddr) -> bool {
        if !self.ports.contains(address.port()) {
            return false;
        }
        match &self.destination {
            Destination::Any => true,
            Destination::Local => is_local(address.ip()),
            Destination::Net(net) => net.contains(canonical(address.ip())),
            Destination::Name(name) => host.and_then(normal_name).as_deref() == Some(name),
            Destination::Under(domain) => host.and_then(normal_name).is_some_and(|host| {
                host.strip_suffix(domain.as_str())
                    .is_some_and(|below| !below.is_empty())
            }),
        }
    }
}

/// A host name as rules compare it (lowercase, no trailing dot); `None` for
/// an address literal, which only address rules match.
fn normal_name(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Whether `name` is a DNS name: dot-separated labels of letters, digits,
/// `-` and `_`, each 1-63 bytes, at most 253 in all.
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn parse_net(text: &str) -> Option<Result<Net, RuleError>> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let full = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => full,
        Some(prefix) => match prefix.parse::<u8>() {
            Ok(prefix) => prefix,
            Err(_) => return Some(Err(RuleError::Prefix)),
        },
    };
    Some(Net::new(address, prefix))
}

fn parse_destination(text: &str) -> Result<Destination, RuleError> {
    if text == "*" {
        return Ok(Destination::Any);
    }
    if text.eq_ignore_ascii_case("local") {
        return Ok(Destination::Local);
    }
    if let Some(net) = parse_net(text) {
        return net.map(Destination::Net);
    }
    let lower = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if let Some(domain) = lower.strip_prefix("*.") {
        return if is_dns_name(domain) {
            Ok(Destination::Under(format!(".{domain}")))
        } else {
            Err(RuleError::Destination)
        };
    }
    if is_dns_name(&lower) {
        Ok(Destination::Name(lower))
    } else {
        Err(RuleError::Destination)
    }
}

fn parse_ports(text: &str) -> Result<Ports, RuleError> {
    if text == "*" {
        return Ok(Ports::ALL);
    }
    let port = |text: &str| match text.parse::<u16>() {
        Ok(port) if port > 0 && !text.starts_with('+') => Ok(port),
        _ => Err(RuleError::Port),
    };
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (port(first)?, port(last)?),
        None => {
            let only = port(text)?;
            (only, only)
        }
    };
    if first > last {
        return Err(RuleError::Port);
    }
    Ok(Ports { first, last })
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Rule, RuleError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RuleError::Empty);
        }
        if text.len() > MAX_RULE_LEN {
            return Err(RuleError::TooLong);
        }
        let (destination, ports) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or(RuleError::Brackets)?;
            let destination = match parse_net(inside) {
                Some(Ok(net)) if inside.contains(':') => Destination::Net(net),
                Some(Err(error)) => return Err(error),
                _ => return Err(RuleError::Brackets),
            };
            let ports = match after {
                "" => Ports::ALL,
                after => parse_ports(after.strip_prefix(':').ok_or(RuleError::Port)?)?,
            };
            (destination, ports)
        } else if text.matches(':').count() >= 2 {
            // An IPv6 address or network without a port.
            (parse_destination(text)?, Ports::ALL)
        } else if let Some((destination, ports)) = text.split_once(':') {
            (parse_destination(destination)?, parse_ports(ports)?)
        } else {
            (parse_destination(text)?, Ports::ALL)
        };
        Ok(Rule { destination, ports })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracket = matches!(&self.destination, Destination::Net(net) if net.address.is_ipv6())
            && self.ports != Ports::ALL;
        match &self.destination {
            Destination::Any => formatter.write_str("*")?,
            Destination::Local => formatter.write_str("local")?,
            Destination::Net(net) if bracket => write!(formatter, "[{net}]")?,
            Destination::Net(net) => write!(formatter, "{net}")?,
            Destination::Name(name) => formatter.write_str(name)?,
            Destination::Under(domain) => write!(formatter, "*{domain}")?,
        }
        match self.ports {
            Ports::ALL => Ok(()),
            Ports { first, last } if first == last => write!(formatter, ":{first}"),
            Ports { first, last } => write!(formatter, ":{first}-{last}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn at(address: &str) -> SocketAddr {
        address.parse().unwrap()
    }

    #[test]
    fn rules_print_back_as_they_parse() {
        for text in [
            "10.0.0.0/8",
            "192.0.2.7",
            "fd00::/8",
            "::1",
            "[fd00::/8]:5432",
            "[::1]:1-1024",
            "db.example.com",
            "db.example.com:5432-5439",
            "*.example.com:5432",
            "local:50051",
            "*",
            "*:6379",
        ] {
            assert_eq!(rule(text).to_string(), text);
        }
        assert_eq!(rule(" DB.Example.COM. ").to_string(), "db.example.com");
        assert_eq!(rule("10.0.0.0/8:*").to_string(), "10.0.0.0/8");
        assert_eq!(rule("::ffff:127.0.0.0/104").to_string(), "127.0.0.0/8");
    }

    #[test]
    fn malformed_rules_say_what_is_wrong() {
        for (text, error) in [
            ("", RuleError::Empty),
            ("10.0.0.1/8", RuleError::HostBits),
            ("10.0.0.0/33", RuleError::Prefix),
            ("fd00::/129", RuleError::Prefix),
            ("10.0.0.0/8:0", RuleError::Port),
            ("10.0.0.0/8:70000", RuleError::Port),
            ("10.0.0.0/8:9-1", RuleError::Port),
            ("db:+5", RuleError::Port),
            ("[10.0.0.1]:5", RuleError::Brackets),
            ("[::1", RuleError::Brackets),
            ("[::1]5432", RuleError::Port),
            ("db example", RuleError::Destination),
            ("*.", RuleError::Destination),
            ("a..b", RuleError::Destination),
            ("http://db", RuleError::Port),
        ] {
            assert_eq!(text.parse::<Rule>(), Err(error), "{text}");
        }
        assert_eq!("x".repeat(301).parse::<Rule>(), Err(RuleError::TooLong));
    }

    #[test]
    fn networks_names_and_ports_match_what_they_say() {
        let net = rule("10.0.0.0/8:5432");
        assert!(net.matches(None, at("10.1.2.3:5432")));
        assert!(net.matches(None, at("[::ffff:10.1.2.3]:5432")));
        assert!(!net.matches(None, at("10.1.2.3:5433")));
        assert!(!net.matches(None, at("11.0.0.1:5432")));

        let name = rule("db.example.com");
        assert!(name.matches(Some("DB.example.com."), at("192.0.2.1:1")));
        assert!(!name.matches(Some("other.example.com"), at("192.0.2.1:1")));
        assert!(!name.matches(None, at("192.0.2.1:1")));

        let under = rule("*.example.com");
        assert!(under.matches(Some("a.b.example.com"), at("192.0.2.1:1")));
        assert!(!under.matches(Some("example.com"), at("192.0.2.1:1")));
        assert!(!under.matches(Some("badexample.com"), at("192.0.2.1:1")));

        // A name rule never matches an address literal written as the host.
        assert!(!rule("127.0.0.1.nip.io").matches(Some("127.0.0.1"), at("127.0.0.1:1")));
        assert!(rule("*").matches(None, at("[2001:db8::1]:1")));
        assert!(rule("local").matches(None, at("127.0.0.1:1")));
        assert!(!rule("local").matches(None, at("192.0.2.1:1")));
    }
}
