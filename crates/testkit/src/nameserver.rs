//! A UDP DNS server on loopback answering A/AAAA queries from a table.
//!
//! The egress client does its own resolution, so SSRF and DNS-rebinding
//! defences can only be tested with a nameserver the test controls: one that
//! answers a public-looking name with a forbidden address, or changes its
//! answer between two lookups (`set_sequence`). Answers carry TTL 0 so no
//! well-behaved cache may reuse them. The wire format (RFC 1035 §4) is parsed
//! by hand; only what a stub resolver sends is supported.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;

#[derive(Default)]
struct Entry {
    /// The nth lookup gets `sequence[n]`; the last element repeats.
    sequence: Vec<Vec<IpAddr>>,
    /// Queries seen per record type; indexes `sequence` separately for A and
    /// AAAA because a resolver sends both for one lookup.
    a_queries: usize,
    aaaa_queries: usize,
    queries: usize,
}

#[derive(Default)]
struct Table {
    names: Mutex<HashMap<String, Entry>>,
}

impl Table {
    fn names(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.names.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A loopback UDP nameserver. Unknown names get NXDOMAIN.
pub struct TestNameserver {
    addr: SocketAddr,
    table: Arc<Table>,
    task: JoinHandle<()>,
}

impl TestNameserver {
    /// Bind UDP on `ip` with an OS-chosen port.
    pub async fn start(ip: IpAddr) -> TestNameserver {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .expect("bind nameserver");
        let addr = socket.local_addr().expect("nameserver address");
        let table = Arc::new(Table::default());
        let task = tokio::spawn(serve(socket, Arc::clone(&table)));
        TestNameserver { addr, table, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Always answer `name` with `answers` (A from the IPv4 ones, AAAA from the IPv6 ones).
    pub fn set(&self, name: &str, answers: Vec<IpAddr>) {
        self.set_sequence(name, vec![answers]);
    }

    /// The nth lookup of `name` gets the nth set; the last set repeats.
    /// A and AAAA queries are counted separately, so one resolution asking
    /// both record types consumes one step of the sequence.
    pub fn set_sequence(&self, name: &str, answers: Vec<Vec<IpAddr>>) {
        let mut names = self.table.names();
        let entry = names.entry(normalize(name)).or_default();
        entry.sequence = answers;
        entry.a_queries = 0;
        entry.aaaa_queries = 0;
    }

    /// Query packets received for `name`, of any record type (a resolver
    /// asking A and AAAA for one lookup counts 2). Counted for unknown names too.
    pub fn queries(&self, name: &str) -> usize {
        self.table.names().get(&normalize(name)).map_or(0, |e| e.queries)
    }
}

impl Drop for TestNameserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn serve(socket: UdpSocket, table: Arc<Table>) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&table, &buf[..len]) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// A parsed single-question query.
struct Question<'a> {
    id: [u8; 2],
    rd: bool,
    name: String,
    qtype: u16,
    qclass: u16,
    /// The raw question section (QNAME, QTYPE, QCLASS), echoed in the reply.
    raw: &'a [u8],
}

fn parse(packet: &[u8]) -> Option<Question<'_>> {
    let header = packet.get(..12)?;
    let is_response = header[2] & 0x80 != 0;
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    if is_response || qdcount != 1 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*packet.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (top bits set) never appear in a query's question.
        if len > 63 {
            return None;
        }
        let label = packet.get(pos..pos + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
    }
    let fixed = packet.get(pos..pos + 4)?;
    Some(Question {
        id: [header[0], header[1]],
        rd: header[2] & 0x01 != 0,
        name: labels.join("."),
        qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
        raw: packet.get(12..pos + 4)?,
    })
}

fn answer(table: &Table, packet: &[u8]) -> Option<Vec<u8>> {
    let Some(question) = parse(packet) else {
        // Reply FORMERR if at least the ID is readable, so the client fails fast.
        let id = packet.get(..2)?;
        return Some(reply_header([id[0], id[1]], false, RCODE_FORMERR, 0, 0));
    };
    let ips = {
        let mut names = table.names();
        // Unknown names get an entry too, so `queries` counts them.
        let entry = names.entry(question.name.clone()).or_default();
        entry.queries += 1;
        if entry.sequence.is_empty() {
            None
        } else {
            let counter = match question.qtype {
                TYPE_A => Some(&mut entry.a_queries),
                TYPE_AAAA => Some(&mut entry.aaaa_queries),
                _ => None,
            };
            let step = counter.map_or(0, |c| {
                *c += 1;
                *c - 1
            });
            let set = entry
                .sequence
                .get(step)
                .or(entry.sequence.last())
                .cloned()
                .unwrap_or_default();
            Some(
                set.into_iter()
                    .filter(|ip| question.qclass == CLASS_IN && matches_type(*ip, question.qtype))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let (rcode, ips) = match ips {
        Some(ips) => (0, ips),
        None => (RCODE_NXDOMAIN, Vec::new()),
    };
    let ancount = u16::try_from(ips.len()).ok()?;
    let mut reply = reply_header(question.id, question.rd, rcode, 1, ancount);
    reply.extend_from_slice(question.raw);
    for ip in ips {
        // Owner name: compression pointer to the question name at offset 12.
        reply.extend_from_slice(&[0xC0, 0x0C]);
        let (rtype, rdata) = match ip {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        reply.extend_from_slice(&rtype.to_be_bytes());
        reply.extend_from_slice(&CLASS_IN.to_be_bytes());
        reply.extend_from_slice(&0u32.to_be_bytes()); // TTL 0: never cacheable.
        reply.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
        reply.extend_from_slice(&rdata);
    }
    Some(reply)
}

fn matches_type(ip: IpAddr, qtype: u16) -> bool {
    matches!((ip, qtype), (IpAddr::V4(_), TYPE_A) | (IpAddr::V6(_), TYPE_AAAA))
}

fn reply_header(id: [u8; 2], rd: bool, rcode: u8, qdcount: u16, ancount: u16) -> Vec<u8> {
    let mut header = Vec::with_capacity(512);
    header.extend_from_slice(&id);
    // QR=1, OPCODE=0 (QUERY), AA=1, TC=0, RD copied.
    header.push(0x84 | u8::from(rd));
    // RA=1, Z=0, RCODE.
    header.push(0x80 | (rcode & 0x0F));
    header.extend_from_slice(&qdcount.to_be_bytes());
    header.extend_from_slice(&ancount.to_be_bytes());
    header.extend_from_slice(&0u16.to_be_bytes());
    header.extend_from_slice(&0u16.to_be_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(u8::try_from(label.len()).unwrap());
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    #[tokio::test]
    async fn answers_a_and_aaaa_and_nxdomain_over_udp() {
        let ns = TestNameserver::start("127.0.0.1".parse().unwrap()).await;
        ns.set(
            "Cimd.Test",
            vec!["127.0.0.2".parse().unwrap(), "::1".parse().unwrap()],
        );
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = [0u8; 512];

        client
            .send_to(&query("cimd.test", TYPE_A), ns.addr())
            .await
            .unwrap();
        let n = client.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..2], &[0x12, 0x34]);
        assert_eq!(buf[3] & 0x0F, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 1, "one A answer");
        assert_eq!(&buf[n - 4..n], &[127, 0, 0, 2]);

        client
            .send_to(&query("cimd.test", TYPE_AAAA), ns.addr())
            .await
            .unwrap();
        let n = client.recv(&mut buf).await.unwrap();
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 1, "one AAAA answer");
        assert_eq!(&buf[n - 16..n], &std::net::Ipv6Addr::LOCALHOST.octets());

        client
            .send_to(&query("unknown.test", TYPE_A), ns.addr())
            .await
            .unwrap();
        client.recv(&mut buf).await.unwrap();
        assert_eq!(buf[3] & 0x0F, RCODE_NXDOMAIN);

        assert_eq!(ns.queries("cimd.test"), 2);
        assert_eq!(ns.queries("unknown.test"), 1);
    }

    #[test]
    fn sequence_advances_per_record_type_and_last_repeats() {
        let table = Table::default();
        table.names().insert(
            "r.test".into(),
            Entry {
                sequence: vec![
                    vec!["10.0.0.1".parse().unwrap()],
                    vec!["10.0.0.2".parse().unwrap()],
                ],
                ..Entry::default()
            },
        );
        let last_octet = |reply: Vec<u8>| reply[reply.len() - 1];
        assert_eq!(last_octet(answer(&table, &query("r.test", TYPE_A)).unwrap()), 1);
        // The AAAA query of the same lookup does not consume the A sequence.
        answer(&table, &query("r.test", TYPE_AAAA)).unwrap();
        assert_eq!(last_octet(answer(&table, &query("r.test", TYPE_A)).unwrap()), 2);
        assert_eq!(last_octet(answer(&table, &query("r.test", TYPE_A)).unwrap()), 2);
    }

    #[test]
    fn garbage_gets_formerr_and_truncated_packets_no_reply() {
        let table = Table::default();
        let reply = answer(&table, &[0xAB, 0xCD, 0x01]).unwrap();
        assert_eq!(reply[3] & 0x0F, RCODE_FORMERR);
        assert!(answer(&table, &[0xAB]).is_none());
    }
}
