//! Our own DNS resolution, vetting every answer before anything connects.
//!
//! The system resolver (`getaddrinfo`) cannot be used: its answer would be
//! checked and then looked up again by the connecting code, and a rebinding
//! attacker answers the second lookup with 127.0.0.1 (MCP security best
//! practices: "pin the DNS result between check and connect"). Here the
//! vetted addresses ARE the connect targets, each fetch does one fresh
//! lookup (no cache: a TTL-0 rebinding answer must not be stretched by us
//! either), and one forbidden answer condemns the whole name, because the
//! attacker decides which of several answers a naive client would use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Name, ResolveError, TokioResolver};
use ipnet::IpNet;
use url::Host;

use crate::address;
use crate::config::EgressConfig;
use crate::error::{EgressConfigError, FetchError};

pub(crate) struct Resolver {
    inner: TokioResolver,
    budget: Duration,
}

impl Resolver {
    pub(crate) fn new(config: &EgressConfig) -> Result<Resolver, EgressConfigError> {
        let provider = TokioConnectionProvider::default();
        let mut builder = if config.dns_servers.is_empty() {
            TokioResolver::builder(provider).map_err(EgressConfigError::SystemDns)?
        } else {
            let mut servers = NameServerConfigGroup::new();
            for addr in &config.dns_servers {
                servers.push(NameServerConfig::new(*addr, Protocol::Udp));
                servers.push(NameServerConfig::new(*addr, Protocol::Tcp));
            }
            let resolver_config = ResolverConfig::from_parts(None, Vec::new(), servers);
            TokioResolver::builder_with_config(resolver_config, provider)
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.cache_size = 0;
        options.positive_max_ttl = Some(Duration::ZERO);
        options.negative_max_ttl = Some(Duration::ZERO);
        // /etc/hosts is operator configuration, not an answer we can vet in
        // advance; `localhost` is handled explicitly below instead.
        options.use_hosts_file = ResolveHosts::Never;
        // DNS gets at most half the fetch budget (enforced around the whole
        // lookup below: hickory's own timeouts are per connection attempt),
        // so an unresponsive nameserver is reported as a DNS failure rather
        // than eating the whole deadline.
        let budget = config.timeout / 2;
        options.timeout = options.timeout.min(budget);
        options.attempts = 1;
        Ok(Resolver {
            inner: builder.build(),
            budget,
        })
    }

    /// Resolve `host` to the socket addresses that may be contacted.
    ///
    /// Fails if ANY answer is special-purpose and not allow-listed.
    pub(crate) async fn vetted(
        &self,
        host: &Host<&str>,
        port: u16,
        allow: &[IpNet],
    ) -> Result<Vec<SocketAddr>, FetchError> {
        let ips = match host {
            // `url` already turned decimal, hex and octal IPv4 spellings into
            // an address, so `https://2130706433/` arrives here as 127.0.0.1.
            Host::Ipv4(v4) => vec![IpAddr::V4(*v4)],
            Host::Ipv6(v6) => vec![IpAddr::V6(*v6)],
            Host::Domain(name) => self.lookup(name).await?,
        };
        vet(&ips, allow)?;
        let mut addrs: Vec<SocketAddr> = Vec::with_capacity(ips.len());
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        Ok(addrs)
    }

    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, FetchError> {
        let bare = name.trim_end_matches('.').to_ascii_lowercase();
        // RFC 6761 §6.3: localhost names are loopback; never ask the network.
        if bare == "localhost" || bare.ends_with(".localhost") {
            return Ok(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        // Fully qualified: no search-domain expansion onto internal zones.
        let fqdn = Name::from_ascii(format!("{bare}."))
            .map_err(|_| FetchError::InvalidUrl("host is not a DNS name"))?;
        let both = async { tokio::join!(self.inner.ipv4_lookup(fqdn.clone()), self.inner.ipv6_lookup(fqdn)) };
        let (v4, v6) = tokio::time::timeout(self.budget, both)
            .await
            .map_err(|_| FetchError::DnsFailure(ResolveError::from("DNS lookup timed out")))?;
        let mut ips: Vec<IpAddr> = records(v4)?.into_iter().map(|a| IpAddr::V4(a.0)).collect();
        ips.extend(records(v6)?.into_iter().map(|aaaa| IpAddr::V6(aaaa.0)));
        if ips.is_empty() {
            return Err(FetchError::NoAddresses);
        }
        Ok(ips)
    }
}

/// "No such name" and "no records of this type" are empty answers; any other
/// failure fails the fetch (closed), even if the other family answered.
fn records<L, R>(result: Result<L, ResolveError>) -> Result<Vec<R>, FetchError>
where
    L: IntoIterator<Item = R>,
{
    match result {
        Ok(lookup) => Ok(lookup.into_iter().collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => Err(FetchError::DnsFailure(e)),
    }
}

/// Refuse the whole answer set if any address is forbidden.
pub(crate) fn vet(ips: &[IpAddr], allow: &[IpNet]) -> Result<(), FetchError> {
    for ip in ips {
        address::check(*ip, allow).map_err(|blocked| FetchError::BlockedAddress {
            ip: blocked.ip,
            range: blocked.range.name,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_forbidden_answer_condemns_the_set() {
        let allow: Vec<IpNet> = vec!["127.0.0.2/32".parse().unwrap()];
        let good: IpAddr = "127.0.0.2".parse().unwrap();
        let bad: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(vet(&[good], &allow).is_ok());
        match vet(&[good, bad], &allow) {
            Err(FetchError::BlockedAddress { ip, range }) => {
                assert_eq!(ip, bad);
                assert_eq!(range, "private-use");
            }
            other => panic!("expected BlockedAddress, got {other:?}"),
        }
    }
}
