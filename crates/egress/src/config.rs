//! Egress configuration.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

/// How Steward may reach the outside world.
#[derive(Clone, Debug)]
pub struct EgressConfig {
    /// Networks reachable even though they are special-purpose. Empty in
    /// production: CIMD -02 §8.6 allows the loopback exception for
    /// development only (SPEC_CHECKLIST §20.13: never automatic).
    pub allow_networks: Vec<IpNet>,
    /// Extra trust anchors (PEM file contents) in addition to webpki-roots.
    pub extra_root_certs_pem: Vec<Vec<u8>>,
    /// Nameservers (asked over UDP, then TCP); empty = system configuration.
    pub dns_servers: Vec<SocketAddr>,
    /// One deadline for DNS, connect, TLS, headers and body together, so a
    /// hostile host cannot hold a worker by being slow in any single phase.
    pub timeout: Duration,
    /// Default body cap (CIMD -01 §6.6 recommends 5 KB).
    pub max_document_bytes: usize,
    /// Cap on the response head (status line and headers).
    pub max_header_bytes: usize,
    /// Concurrent fetches allowed per host name.
    pub per_host_concurrency: usize,
    /// Fetches started per host name per rolling minute.
    pub per_host_per_minute: u32,
    /// Concurrent fetches allowed across all hosts. The per-host caps alone
    /// do not bound the total: an attacker naming many hosts (one wildcard
    /// DNS zone is enough) could otherwise hold every socket and worker.
    pub total_concurrency: usize,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            allow_networks: Vec::new(),
            extra_root_certs_pem: Vec::new(),
            dns_servers: Vec::new(),
            timeout: Duration::from_millis(3000),
            max_document_bytes: 5120,
            max_header_bytes: 16 * 1024,
            per_host_concurrency: 4,
            per_host_per_minute: 60,
            total_concurrency: 64,
        }
    }
}
