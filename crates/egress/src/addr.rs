//! Addresses as the policy sees them.
//!
//! One IPv4 destination has several IPv6 spellings that reach it:
//! IPv4-mapped (`::ffff:127.0.0.1`, which a dual-stack socket connects to
//! 127.0.0.1), IPv4-compatible (`::127.0.0.1`, deprecated) and the NAT64
//! well-known prefix (`64:ff9b::127.0.0.1`, which a NAT64 gateway translates).
//! Every rule is matched against the IPv4 address such a spelling carries,
//! so no rule can be stepped around by writing the address another way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// The NAT64 well-known prefix `64:ff9b::/96` (RFC 6052), first 96 bits.
const NAT64: [u16; 6] = [0x64, 0xff9b, 0, 0, 0, 0];

/// The IPv4 address an IPv6 address carries, if it is IPv4-mapped,
/// IPv4-compatible (except `::` and `::1`, which are IPv6's own unspecified
/// and loopback addresses) or in the NAT64 well-known prefix.
pub fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = address.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = address.segments();
    let [a, b] = [segments[6].to_be_bytes(), segments[7].to_be_bytes()];
    let carried = Ipv4Addr::new(a[0], a[1], b[0], b[1]);
    if segments[..6] == NAT64 {
        return Some(carried);
    }
    let compatible = segments[..6].iter().all(|segment| *segment == 0);
    (compatible && u32::from(carried) > 1).then_some(carried)
}

/// The address every rule is matched against: the IPv4 address an IPv6
/// spelling carries (see [`embedded_v4`]), otherwise the address itself.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `address` belongs to this machine: unspecified (which connects to
/// the machine itself), or assigned to one of its interfaces, found by
/// binding a UDP socket to it (which sends nothing and succeeds only for a
/// local address).
pub fn is_local(address: IpAddr) -> bool {
    let address = canonical(address);
    address.is_unspecified()
        || address.is_loopback()
        || UdpSocket::bind(SocketAddr::new(address, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn every_ipv6_spelling_of_an_ipv4_address_is_that_address() {
        let loopback = Ipv4Addr::new(127, 0, 0, 1);
        for spelling in ["::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1"] {
            assert_eq!(embedded_v4(v6(spelling)), Some(loopback), "{spelling}");
        }
        // IPv6's own unspecified and loopback addresses stay IPv6.
        assert_eq!(embedded_v4(v6("::")), None);
        assert_eq!(embedded_v4(v6("::1")), None);
        assert_eq!(embedded_v4(v6("2001:db8::1")), None);
        assert_eq!(
            canonical(IpAddr::V6(v6("::ffff:10.1.2.3"))),
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))
        );
    }

    #[test]
    fn loopback_and_unspecified_are_local_and_a_documentation_address_is_not() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(is_local("127.0.0.9".parse().unwrap()));
        assert!(is_local("0.0.0.0".parse().unwrap()));
        assert!(is_local("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_local("192.0.2.1".parse().unwrap()));
    }
}
