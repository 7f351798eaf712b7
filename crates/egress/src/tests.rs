//! The merge order of [`Layers`] and the property that no IPv6 spelling of
//! an IPv4 address gets a different decision.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use crate::{Action, Layers, Rule};

fn rules(texts: &[&str]) -> Vec<Rule> {
    texts.iter().map(|text| text.parse().unwrap()).collect()
}

fn at(address: &str) -> SocketAddr {
    address.parse().unwrap()
}

#[test]
fn the_default_policy_denies_this_machine_and_link_local_and_allows_the_rest() {
    let listeners = [at("127.0.0.1:50051")];
    let policy = Layers {
        listeners: &listeners,
        ..Layers::default()
    }
    .policy();
    for (target, origin) in [
        ("127.0.0.1:5432", "built-in: loopback"),
        ("127.8.9.10:1", "built-in: loopback"),
        ("[::1]:5432", "built-in: loopback"),
        ("[::ffff:127.0.0.1]:5432", "built-in: loopback"),
        ("[::127.0.0.1]:5432", "built-in: loopback"),
        ("[64:ff9b::7f00:1]:5432", "built-in: loopback"),
        ("0.0.0.0:5432", "built-in: unspecified (\"this host\")"),
        ("[::]:5432", "built-in: unspecified (\"this host\")"),
        ("169.254.169.254:80", "built-in: link-local"),
        ("[::ffff:169.254.169.254]:80", "built-in: link-local"),
        ("[fe80::1]:80", "built-in: link-local"),
        ("[fd00:ec2::254]:80", "built-in: cloud metadata"),
        ("100.100.100.200:80", "built-in: cloud metadata"),
        ("224.0.0.1:5432", "built-in: multicast"),
        ("[ff02::1]:5432", "built-in: multicast"),
        ("255.255.255.255:5432", "built-in: reserved and broadcast"),
        ("127.0.0.1:50051", "built-in: this server's listener"),
    ] {
        let verdict = policy.check(None, at(target));
        assert!(!verdict.allowed(), "{target} allowed");
        let entry = verdict.entry.unwrap();
        assert_eq!(entry.origin, origin, "{target}");
    }
    for target in [
        "10.0.0.5:5432",
        "172.16.0.1:3306",
        "192.168.1.1:6379",
        "[fd12::5]:5432",
        "100.64.0.1:5432",
        "203.0.113.9:5432",
        "[2001:db8::5]:5432",
    ] {
        assert!(policy.check(None, at(target)).allowed(), "{target} denied");
    }
}

#[test]
fn dev_mode_allows_loopback_but_not_the_servers_own_listener() {
    let listeners = [at("0.0.0.0:50051")];
    let policy = Layers {
        listeners: &listeners,
        dev: true,
        ..Layers::default()
    }
    .policy();
    assert!(policy.check(None, at("127.0.0.1:5432")).allowed());
    assert!(policy.check(None, at("[::1]:5432")).allowed());
    // A wildcard listener is reachable at every local address.
    for target in ["127.0.0.1:50051", "127.0.0.2:50051", "0.0.0.0:50051"] {
        let verdict = policy.check(None, at(target));
        assert_eq!(
            verdict.entry.map(|entry| entry.origin).as_deref(),
            Some("built-in: this server's listener"),
            "{target}"
        );
    }
    assert!(!policy.check(None, at("169.254.169.254:80")).allowed());
}

#[test]
fn server_deny_beats_every_allow_and_only_a_server_allow_opens_a_listener() {
    let server_deny = rules(&["127.0.0.1:6379", "*.forbidden.example"]);
    let tenant_allow = rules(&["127.0.0.0/8", "*.forbidden.example", "127.0.0.1:50051"]);
    let listeners = [at("127.0.0.1:50051")];
    let layers = Layers {
        server_deny: &server_deny,
        tenant_allow: &tenant_allow,
        listeners: &listeners,
        ..Layers::default()
    };
    let policy = layers.policy();
    let denied = policy.check(None, at("127.0.0.1:6379"));
    assert_eq!(denied.to_string(), "egress.deny[0] `127.0.0.1:6379`");
    let by_name = policy.check(Some("db.forbidden.example"), at("10.0.0.1:5432"));
    assert_eq!(by_name.to_string(), "egress.deny[1] `*.forbidden.example`");
    let listener = policy.check(None, at("127.0.0.1:50051"));
    assert_eq!(
        listener.entry.map(|entry| entry.origin).as_deref(),
        Some("built-in: this server's listener")
    );
    let opened = policy.check(None, at("127.0.0.1:5432"));
    assert_eq!(opened.to_string(), "tenant egress.allow[0] `127.0.0.0/8`");

    let server_allow = rules(&["127.0.0.1:50051"]);
    let policy = Layers {
        server_allow: &server_allow,
        ..layers
    }
    .policy();
    assert!(policy.check(None, at("127.0.0.1:50051")).allowed());
}

#[test]
fn a_tenant_deny_beats_a_server_allow_and_the_default_can_be_deny() {
    let server_allow = rules(&["10.0.0.0/8"]);
    let tenant_deny = rules(&["10.9.0.0/16"]);
    let policy = Layers {
        server_allow: &server_allow,
        tenant_deny: &tenant_deny,
        default_deny: true,
        ..Layers::default()
    }
    .policy();
    assert!(policy.check(None, at("10.1.0.1:5432")).allowed());
    assert_eq!(
        policy.check(None, at("10.9.0.1:5432")).to_string(),
        "tenant egress.deny[0] `10.9.0.0/16`"
    );
    let outside = policy.check(None, at("192.0.2.1:5432"));
    assert_eq!(outside.action, Action::Deny);
    assert_eq!(outside.entry, None);
}

/// Every IPv6 spelling that carries an IPv4 address.
fn spellings(v4: Ipv4Addr) -> Vec<IpAddr> {
    let [a, b, c, d] = v4.octets();
    let low = [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])];
    let mut spellings = vec![
        IpAddr::V6(v4.to_ipv6_mapped()),
        IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, low[0], low[1])),
    ];
    // `::` and `::1` are IPv6's own addresses, not spellings of 0.0.0.0/0.0.0.1.
    if u32::from(v4) > 1 {
        spellings.push(IpAddr::V6(v4.to_ipv6_compatible()));
    }
    spellings
}

/// Rules of every kind, with networks drawn near the address under test so
/// that they match it often.
fn rule_strategy() -> impl Strategy<Value = String> {
    let v4_net = (any::<u32>(), 0u8..=32).prop_map(|(bits, prefix)| {
        let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        format!("{}/{prefix}", Ipv4Addr::from(bits & keep))
    });
    let mapped_net = (any::<u32>(), 96u8..=128).prop_map(|(bits, prefix)| {
        let mapped = u128::from(Ipv4Addr::from(bits).to_ipv6_mapped());
        let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
        format!("{}/{prefix}", Ipv6Addr::from(mapped & keep))
    });
    let builtin = prop::sample::select(vec![
        "127.0.0.0/8",
        "169.254.0.0/16",
        "10.0.0.0/8",
        "::1",
        "::/0",
        "fe80::/10",
        "*",
    ])
    .prop_map(str::to_owned);
    let destination = prop_oneof![v4_net, mapped_net, builtin];
    let ports = prop_oneof![
        Just(String::new()),
        (1u16..=65535).prop_map(|port| format!(":{port}")),
    ];
    (destination, ports).prop_map(|(destination, ports)| {
        if ports.is_empty() || !destination.contains(':') {
            format!("{destination}{ports}")
        } else {
            format!("[{destination}]{ports}")
        }
    })
}

proptest! {
    /// An IPv4 address and every IPv6 spelling of it get the same decision
    /// from any policy: the default one, and ones with random rules.
    #[test]
    fn ipv6_spellings_of_an_ipv4_address_are_decided_like_it(
        bits in prop_oneof![
            any::<u32>(),
            // Loopback, link-local and private: where the decisions differ.
            (0u32..1 << 24).prop_map(|low| 0x7f00_0000 | low),
            (0u32..1 << 16).prop_map(|low| 0xa9fe_0000 | low),
            (0u32..1 << 24).prop_map(|low| 0x0a00_0000 | low),
        ],
        port in 1u16..=65535,
        deny in prop::collection::vec(rule_strategy(), 0..4),
        allow in prop::collection::vec(rule_strategy(), 0..4),
        dev in any::<bool>(),
    ) {
        let deny: Vec<Rule> = deny.iter().map(|text| text.parse().unwrap()).collect();
        let allow: Vec<Rule> = allow.iter().map(|text| text.parse().unwrap()).collect();
        let policy = Layers {
            tenant_deny: &deny,
            tenant_allow: &allow,
            dev,
            ..Layers::default()
        }
        .policy();
        let v4 = Ipv4Addr::from(bits);
        let expected = policy.check(None, SocketAddr::new(IpAddr::V4(v4), port));
        for spelling in spellings(v4) {
            let verdict = policy.check(None, SocketAddr::new(spelling, port));
            prop_assert_eq!(&verdict, &expected, "{} vs {}", spelling, v4);
        }
    }
}
