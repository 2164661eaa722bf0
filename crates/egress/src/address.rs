//! Special-purpose address classification (SSRF defence).
//!
//! CIMD -01 §6.5 / -02 §8.6 require that Steward never fetches a URL that
//! resolves to an RFC 6890 special-use address, and MCP's security guidance
//! adds "do not write your own IP parsers" (so parsing is left to `std` and
//! `url`), "block private, loopback, link-local". This module is the table:
//! the IANA IPv4 and IPv6 Special-Purpose Address Registries in full, plus
//! multicast and the deprecated IPv4-compatible and site-local blocks.
//!
//! Decision (SPEC_CHECKLIST §20.13): every entry is blocked, including the
//! ranges that are "globally reachable" in the registry (e.g. 64:ff9b::/96,
//! 2002::/16, AS112). Wrapper ranges that carry an IPv4 address
//! (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) are blocked as ranges
//! AND judged by the IPv4 inside them: an operator who allow-lists a NAT64
//! prefix still cannot reach 64:ff9b::7f00:1 (127.0.0.1) through it, because
//! the embedded address must pass on its own. The only way to reach a listed
//! address is an explicit `allow_networks` entry (development, tests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// One row of the special-purpose table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialRange {
    pub network: IpNet,
    pub name: &'static str,
    pub rfc: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8, name: &'static str, rfc: &'static str) -> SpecialRange {
    SpecialRange {
        network: IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)),
        name,
        rfc,
    }
}

const fn v6(segments: [u16; 8], prefix: u8, name: &'static str, rfc: &'static str) -> SpecialRange {
    let [a, b, c, d, e, f, g, h] = segments;
    SpecialRange {
        network: IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)),
        name,
        rfc,
    }
}

/// The IANA IPv4 Special-Purpose Address Registry, plus multicast.
pub static IPV4_SPECIAL: &[SpecialRange] = &[
    v4(0, 0, 0, 0, 8, "this network", "RFC 791"),
    v4(0, 0, 0, 0, 32, "this host on this network", "RFC 1122"),
    v4(10, 0, 0, 0, 8, "private-use", "RFC 1918"),
    v4(100, 64, 0, 0, 10, "shared address space", "RFC 6598"),
    v4(127, 0, 0, 0, 8, "loopback", "RFC 1122"),
    v4(169, 254, 0, 0, 16, "link local", "RFC 3927"),
    v4(172, 16, 0, 0, 12, "private-use", "RFC 1918"),
    v4(192, 0, 0, 0, 24, "IETF protocol assignments", "RFC 6890"),
    v4(192, 0, 0, 0, 29, "IPv4 service continuity prefix", "RFC 7335"),
    v4(192, 0, 0, 8, 32, "IPv4 dummy address", "RFC 7600"),
    v4(192, 0, 0, 9, 32, "port control protocol anycast", "RFC 7723"),
    v4(192, 0, 0, 10, 32, "TURN anycast", "RFC 8155"),
    v4(192, 0, 0, 170, 32, "NAT64/DNS64 discovery", "RFC 8880"),
    v4(192, 0, 0, 171, 32, "NAT64/DNS64 discovery", "RFC 8880"),
    v4(192, 0, 2, 0, 24, "documentation (TEST-NET-1)", "RFC 5737"),
    v4(192, 31, 196, 0, 24, "AS112-v4", "RFC 7535"),
    v4(192, 52, 193, 0, 24, "AMT", "RFC 7450"),
    v4(192, 88, 99, 0, 24, "deprecated 6to4 relay anycast", "RFC 7526"),
    v4(192, 168, 0, 0, 16, "private-use", "RFC 1918"),
    v4(192, 175, 48, 0, 24, "direct delegation AS112 service", "RFC 7534"),
    v4(198, 18, 0, 0, 15, "benchmarking", "RFC 2544"),
    v4(198, 51, 100, 0, 24, "documentation (TEST-NET-2)", "RFC 5737"),
    v4(203, 0, 113, 0, 24, "documentation (TEST-NET-3)", "RFC 5737"),
    v4(224, 0, 0, 0, 4, "multicast", "RFC 5771"),
    v4(240, 0, 0, 0, 4, "reserved", "RFC 1112"),
    v4(255, 255, 255, 255, 32, "limited broadcast", "RFC 919"),
];

/// The IANA IPv6 Special-Purpose Address Registry, plus multicast, the
/// deprecated IPv4-compatible block and deprecated site-local.
pub static IPV6_SPECIAL: &[SpecialRange] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified", "RFC 4291"),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback", "RFC 4291"),
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4-compatible (deprecated)",
        "RFC 4291",
    ),
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped", "RFC 4291"),
    v6(
        [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4-IPv6 translation (NAT64)",
        "RFC 6052",
    ),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "IPv4-IPv6 translation (local-use NAT64)",
        "RFC 8215",
    ),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only", "RFC 6666"),
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, "dummy IPv6 prefix", "RFC 9780"),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments",
        "RFC 2928",
    ),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo", "RFC 4380"),
    v6(
        [0x2001, 1, 0, 0, 0, 0, 0, 1],
        128,
        "port control protocol anycast",
        "RFC 7723",
    ),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, "TURN anycast", "RFC 8155"),
    v6(
        [0x2001, 1, 0, 0, 0, 0, 0, 3],
        128,
        "DNS-SD service registration protocol anycast",
        "RFC 9665",
    ),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "benchmarking", "RFC 5180"),
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, "AMT", "RFC 7450"),
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, "AS112-v6", "RFC 7535"),
    v6(
        [0x2001, 0x10, 0, 0, 0, 0, 0, 0],
        28,
        "deprecated ORCHID",
        "RFC 4843",
    ),
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2", "RFC 7343"),
    v6(
        [0x2001, 0x30, 0, 0, 0, 0, 0, 0],
        28,
        "drone remote ID entity tags",
        "RFC 9374",
    ),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation", "RFC 3849"),
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4", "RFC 3056"),
    v6(
        [0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0],
        48,
        "direct delegation AS112 service",
        "RFC 7534",
    ),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation", "RFC 9637"),
    v6(
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "segment routing (SRv6) SIDs",
        "RFC 9602",
    ),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique-local", "RFC 4193"),
    v6(
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        "link-local unicast",
        "RFC 4291",
    ),
    v6(
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        "site-local (deprecated)",
        "RFC 3879",
    ),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast", "RFC 4291"),
];

/// The most specific table entry containing `ip`, if any.
///
/// Longest-prefix match, so 192.0.0.9 reports "port control protocol
/// anycast" rather than the enclosing /24, whatever the table order.
pub fn special_purpose(ip: IpAddr) -> Option<&'static SpecialRange> {
    let table = match ip {
        IpAddr::V4(_) => IPV4_SPECIAL,
        IpAddr::V6(_) => IPV6_SPECIAL,
    };
    table
        .iter()
        .filter(|r| r.network.contains(&ip))
        .max_by_key(|r| r.network.prefix_len())
}

/// How an IPv6 address carries an IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2): dual-stack sockets connect to the IPv4 host.
    Ipv4Mapped,
    /// `::a.b.c.d` (RFC 4291 §2.5.5.1, deprecated).
    Ipv4Compatible,
    /// `64:ff9b::a.b.c.d` (RFC 6052 well-known prefix, last 32 bits).
    Nat64,
    /// `64:ff9b:1::/48` (RFC 8215) with the RFC 6052 §2.2 /48 layout:
    /// bits 48..63 and 72..87 hold the IPv4 address, bits 64..71 are zero.
    Nat64Local,
    /// `2002:AABB:CCDD::/48` (RFC 3056): bits 16..47 hold the IPv4 address.
    SixToFour,
    /// `2001:0::/32` (RFC 4380 §4): the client IPv4 is the bitwise NOT of the last 32 bits.
    Teredo,
}

/// The IPv4 address an IPv6 address carries, if it is of an embedding form.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<(Embedding, Ipv4Addr)> {
    let o = ip.octets();
    let seg = ip.segments();
    let last32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if seg[..5] == [0; 5] && seg[5] == 0xffff {
        Some((Embedding::Ipv4Mapped, last32))
    } else if seg[..6] == [0; 6] && u32::from(last32) > 1 {
        // :: and ::1 are unspecified and loopback, not IPv4-compatible (RFC 4291 §2.5.5.1).
        Some((Embedding::Ipv4Compatible, last32))
    } else if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some((Embedding::Nat64, last32))
    } else if seg[..3] == [0x64, 0xff9b, 1] {
        Some((Embedding::Nat64Local, Ipv4Addr::new(o[6], o[7], o[9], o[10])))
    } else if seg[0] == 0x2002 {
        Some((Embedding::SixToFour, Ipv4Addr::new(o[2], o[3], o[4], o[5])))
    } else if seg[..2] == [0x2001, 0] {
        Some((Embedding::Teredo, Ipv4Addr::from(!u32::from(last32))))
    } else {
        None
    }
}

/// Why an address may not be contacted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub ip: IpAddr,
    /// The range that matched: the embedded IPv4's range when that is what
    /// failed, otherwise the address's own range.
    pub range: &'static SpecialRange,
    /// Set when the verdict comes from an IPv4 address carried inside `ip`.
    pub embedded: Option<(Embedding, Ipv4Addr)>,
}

/// Decide whether `ip` may be contacted.
///
/// Allowed only if (a) `ip` matches no table entry or lies inside an
/// `allow` network, and (b) for embedding forms, the carried IPv4 also
/// passes (a). An allow entry is matched literally: allowing 127.0.0.2/32
/// does not allow `::ffff:127.0.0.2`.
pub fn check(ip: IpAddr, allow: &[IpNet]) -> Result<(), Blocked> {
    let allowed = |addr: IpAddr| allow.iter().any(|net| net.contains(&addr));
    if let IpAddr::V6(v6) = ip
        && let Some((embedding, inner)) = embedded_ipv4(v6)
        && let Some(range) = special_purpose(IpAddr::V4(inner))
        && !allowed(IpAddr::V4(inner))
    {
        return Err(Blocked {
            ip,
            range,
            embedded: Some((embedding, inner)),
        });
    }
    if let Some(range) = special_purpose(ip)
        && !allowed(ip)
    {
        return Err(Blocked {
            ip,
            range,
            embedded: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn name_of(s: &str) -> Option<&'static str> {
        special_purpose(ip(s)).map(|r| r.name)
    }

    fn last_address(net: IpNet) -> IpAddr {
        net.broadcast()
    }

    #[test]
    fn every_table_entry_blocks_its_first_and_last_address() {
        for range in IPV4_SPECIAL.iter().chain(IPV6_SPECIAL) {
            for addr in [range.network.network(), last_address(range.network)] {
                let blocked =
                    check(addr, &[]).expect_err(&format!("{addr} ({}) must be blocked", range.name));
                assert_eq!(blocked.ip, addr);
                assert!(range.network.contains(&addr));
            }
            // The most specific entry reports itself for its own network address.
            let own = special_purpose(range.network.network()).unwrap();
            assert!(
                own.network.prefix_len() >= range.network.prefix_len(),
                "{}",
                range.name
            );
            assert!(range.rfc.starts_with("RFC "), "{}", range.name);
        }
    }

    #[test]
    fn ipv4_registry_entries_are_named() {
        let cases = [
            ("0.1.2.3", "this network"),
            ("0.0.0.0", "this host on this network"),
            ("10.20.30.40", "private-use"),
            ("100.64.0.1", "shared address space"),
            ("100.127.255.255", "shared address space"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.169.254", "link local"),
            ("172.16.0.1", "private-use"),
            ("172.31.255.255", "private-use"),
            ("192.0.0.1", "IPv4 service continuity prefix"),
            ("192.0.0.8", "IPv4 dummy address"),
            ("192.0.0.9", "port control protocol anycast"),
            ("192.0.0.10", "TURN anycast"),
            ("192.0.0.170", "NAT64/DNS64 discovery"),
            ("192.0.0.171", "NAT64/DNS64 discovery"),
            ("192.0.0.100", "IETF protocol assignments"),
            ("192.0.2.1", "documentation (TEST-NET-1)"),
            ("192.31.196.1", "AS112-v4"),
            ("192.52.193.1", "AMT"),
            ("192.88.99.1", "deprecated 6to4 relay anycast"),
            ("192.168.1.1", "private-use"),
            ("192.175.48.1", "direct delegation AS112 service"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation (TEST-NET-2)"),
            ("203.0.113.9", "documentation (TEST-NET-3)"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.254", "reserved"),
            ("255.255.255.255", "limited broadcast"),
        ];
        for (addr, name) in cases {
            assert_eq!(name_of(addr), Some(name), "{addr}");
            assert!(check(ip(addr), &[]).is_err(), "{addr}");
        }
    }

    #[test]
    fn ipv6_registry_entries_are_named() {
        let cases = [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::2", "IPv4-compatible (deprecated)"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("64:ff9b::808:808", "IPv4-IPv6 translation (NAT64)"),
            ("64:ff9b:1::1", "IPv4-IPv6 translation (local-use NAT64)"),
            ("100::1", "discard-only"),
            ("100:0:0:1::1", "dummy IPv6 prefix"),
            ("2001:0:4136:e378::1", "Teredo"),
            ("2001:1::1", "port control protocol anycast"),
            ("2001:1::2", "TURN anycast"),
            ("2001:1::3", "DNS-SD service registration protocol anycast"),
            ("2001:1::4", "IETF protocol assignments"),
            ("2001:1ff::1", "IETF protocol assignments"),
            ("2001:2::1", "benchmarking"),
            ("2001:3::1", "AMT"),
            ("2001:4:112::1", "AS112-v6"),
            ("2001:10::1", "deprecated ORCHID"),
            ("2001:20::1", "ORCHIDv2"),
            ("2001:30::1", "drone remote ID entity tags"),
            ("2001:db8::1", "documentation"),
            ("2002:808:808::1", "6to4"),
            ("2620:4f:8000::1", "direct delegation AS112 service"),
            ("3fff:fff::1", "documentation"),
            ("5f00::1", "segment routing (SRv6) SIDs"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local unicast"),
            ("febf::1", "link-local unicast"),
            ("fec0::1", "site-local (deprecated)"),
            ("ff02::1", "multicast"),
        ];
        for (addr, name) in cases {
            assert_eq!(name_of(addr), Some(name), "{addr}");
            assert!(check(ip(addr), &[]).is_err(), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2001:200::1",
            "2003::1",
            "2620:4f:8001::1",
            "3fff:1000::1",
            "fbff::1",
        ] {
            assert_eq!(check(ip(addr), &[]), Ok(()), "{addr}");
            assert_eq!(special_purpose(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn embedded_ipv4_is_extracted_for_every_form() {
        let cases = [
            ("::ffff:127.0.0.1", Embedding::Ipv4Mapped, "127.0.0.1"),
            ("::127.0.0.1", Embedding::Ipv4Compatible, "127.0.0.1"),
            ("::10.1.2.3", Embedding::Ipv4Compatible, "10.1.2.3"),
            ("64:ff9b::7f00:1", Embedding::Nat64, "127.0.0.1"),
            // RFC 6052 /48 layout: 192.0.2.33 -> 64:ff9b:1:c000:2:2100::
            ("64:ff9b:1:c000:2:2100::", Embedding::Nat64Local, "192.0.2.33"),
            ("64:ff9b:1:7f00:0:100::", Embedding::Nat64Local, "127.0.0.1"),
            ("2002:a00:1::1", Embedding::SixToFour, "10.0.0.1"),
            ("2002:c0a8:101::", Embedding::SixToFour, "192.168.1.1"),
            // RFC 4380 §4 example: client 192.0.2.45 obfuscated as 3fff:fdd2.
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                Embedding::Teredo,
                "192.0.2.45",
            ),
            ("2001:0:4136:e378::80ff:fffe", Embedding::Teredo, "127.0.0.1"),
        ];
        for (addr, embedding, inner) in cases {
            let v6: Ipv6Addr = addr.parse().unwrap();
            assert_eq!(
                embedded_ipv4(v6),
                Some((embedding, inner.parse().unwrap())),
                "{addr}"
            );
        }
        assert_eq!(embedded_ipv4("::".parse().unwrap()), None);
        assert_eq!(embedded_ipv4("::1".parse().unwrap()), None);
        assert_eq!(embedded_ipv4("2606:4700::1111".parse().unwrap()), None);
    }

    #[test]
    fn embedded_special_ipv4_is_reported_even_when_the_wrapper_is_allowed() {
        let all_v6: Vec<IpNet> = vec!["::/0".parse().unwrap()];
        for (addr, inner_name) in [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link local"),
            ("::10.0.0.1", "private-use"),
            ("64:ff9b::a9fe:a9fe", "link local"),
            ("64:ff9b:1:7f00:0:100::", "loopback"),
            ("2002:c0a8:101::1", "private-use"),
            ("2001:0:4136:e378::80ff:fffe", "loopback"),
        ] {
            for allow in [&[][..], &all_v6[..]] {
                let blocked = check(ip(addr), allow).unwrap_err();
                assert_eq!(blocked.range.name, inner_name, "{addr}");
                assert!(blocked.embedded.is_some(), "{addr}");
            }
        }
    }

    #[test]
    fn wrappers_are_blocked_even_around_public_ipv4() {
        for (addr, name) in [
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("::8.8.8.8", "IPv4-compatible (deprecated)"),
            ("64:ff9b::808:808", "IPv4-IPv6 translation (NAT64)"),
            ("64:ff9b:1:808:8:800::", "IPv4-IPv6 translation (local-use NAT64)"),
            ("2002:808:808::1", "6to4"),
            ("2001:0:4136:e378::f7f7:f7f7", "Teredo"),
        ] {
            let blocked = check(ip(addr), &[]).unwrap_err();
            assert_eq!(blocked.range.name, name, "{addr}");
            assert_eq!(blocked.embedded, None, "{addr}");
        }
        // An operator who allow-lists the NAT64 prefix reaches public IPv4 through it.
        let nat64: Vec<IpNet> = vec!["64:ff9b::/96".parse().unwrap()];
        assert_eq!(check(ip("64:ff9b::808:808"), &nat64), Ok(()));
    }

    #[test]
    fn allow_networks_open_exactly_what_they_list() {
        let allow: Vec<IpNet> = vec!["127.0.0.2/32".parse().unwrap(), "::1/128".parse().unwrap()];
        assert_eq!(check(ip("127.0.0.2"), &allow), Ok(()));
        assert_eq!(check(ip("::1"), &allow), Ok(()));
        assert!(check(ip("127.0.0.1"), &allow).is_err());
        assert!(check(ip("127.0.0.3"), &allow).is_err());
        // Literal match only: the mapped form of an allowed IPv4 is still blocked.
        assert_eq!(
            check(ip("::ffff:127.0.0.2"), &allow).unwrap_err().range.name,
            "IPv4-mapped"
        );
        // Allowing the embedded IPv4 and the wrapper both is explicit consent.
        let both: Vec<IpNet> = vec!["127.0.0.2/32".parse().unwrap(), "::ffff:0:0/96".parse().unwrap()];
        assert_eq!(check(ip("::ffff:127.0.0.2"), &both), Ok(()));
    }
}
