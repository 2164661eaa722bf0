//! client_id URL validation: every /authorize and /token request of a
//! metadata-document client parses its client_id under the CIMD rules before
//! any cache lookup, so accepted and refused ids are both measured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use steward_cimd::{ClientIdUrl, UrlRules, looks_like_metadata_document_id};

fn client_id(c: &mut Criterion) {
    let rules = UrlRules::default();
    c.bench_function("client_id/looks_like_document", |b| {
        b.iter(|| looks_like_metadata_document_id(black_box("https://app.example/oauth/client.json")))
    });
    c.bench_function("client_id/valid", |b| {
        b.iter(|| ClientIdUrl::parse(black_box("https://app.example/oauth/client.json"), &rules).unwrap())
    });
    c.bench_function("client_id/valid_with_port", |b| {
        b.iter(|| ClientIdUrl::parse(black_box("https://app.example:8443/c/client.json"), &rules).unwrap())
    });
    for (name, id) in [
        ("refused_query", "https://app.example/client.json?x=1"),
        ("refused_dot_segment", "https://app.example/a/../client.json"),
        ("refused_ip_host", "https://10.0.0.1/client.json"),
        ("refused_http", "http://app.example/client.json"),
    ] {
        c.bench_function(&format!("client_id/{name}"), |b| {
            b.iter(|| assert!(ClientIdUrl::parse(black_box(id), &rules).is_err()))
        });
    }
}

criterion_group!(benches, client_id);
criterion_main!(benches);
