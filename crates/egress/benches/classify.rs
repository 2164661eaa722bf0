//! The address classifier runs on every resolved address of every outbound
//! fetch (metadata documents, jwks_uri), before any connection is made. It
//! walks the IANA special-purpose tables and unwraps IPv6 forms that embed an
//! IPv4 address, so its cost is measured for each kind of input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use ipnet::IpNet;
use std::hint::black_box;
use std::net::IpAddr;
use steward_egress::address::check;

fn classify(c: &mut Criterion) {
    let none: Vec<IpNet> = Vec::new();
    let allow: Vec<IpNet> = vec!["10.20.0.0/16".parse().unwrap(), "127.0.0.2/32".parse().unwrap()];
    let cases: [(&str, &str, bool); 7] = [
        ("public_v4", "93.184.215.14", true),
        ("private_v4", "10.1.2.3", false),
        ("loopback_v4", "127.0.0.1", false),
        ("public_v6", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", true),
        ("v4_mapped_private", "::ffff:192.168.1.1", false),
        ("nat64_private", "64:ff9b::a01:203", false),
        ("unique_local_v6", "fd00::1", false),
    ];
    for (name, ip, ok) in cases {
        let ip: IpAddr = ip.parse().unwrap();
        c.bench_function(&format!("address_check/{name}"), |b| {
            b.iter(|| assert_eq!(check(black_box(ip), &none).is_ok(), ok))
        });
    }
    let allowed: IpAddr = "10.20.1.1".parse().unwrap();
    c.bench_function("address_check/allow_listed_private", |b| {
        b.iter(|| assert!(check(black_box(allowed), &allow).is_ok()))
    });
}

criterion_group!(benches, classify);
criterion_main!(benches);
