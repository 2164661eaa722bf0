//! Brute-force limits on logins (OAuth 2.1 §7.4.1 spirit) and on client
//! authentication (OAuth 2.1 §2.4.1: endpoints that take a secret MUST be
//! protected against brute force), built so the limits cannot be turned
//! against the people they protect (issue 11 items 10, 11 and 17).
//!
//! - **Keyed by account and source address.** The limit a stranger reaches
//!   first is the one for *their* address and the account they attack; the
//!   real user or client, arriving from elsewhere, is not locked out by it.
//!   A separate per-address limit (across accounts) stops one address
//!   spraying many accounts, and a much higher per-account ceiling (across
//!   addresses) still caps a distributed attack on one account. IPv6
//!   addresses count by their /64, which one subscriber usually holds whole.
//! - **Fixed windows.** A window starts at a multiple of its length; a
//!   failure never extends it, so a lockout always ends on time.
//! - **Reserve, then verify.** An attempt is counted before the credential is
//!   checked, atomically per key, and handed back when the credential was
//!   right. Checking a count and recording a failure later would let forty
//!   parallel guesses all pass a limit of five.
//! - **Shared across nodes.** [`Sharing::Strict`] reserves in the database
//!   too ([`steward_store::AttemptStore`]), so every node behind one
//!   database sees one count; used for logins, where the argon2 check costs
//!   far more than two small writes. [`Sharing::Failures`] reserves in memory
//!   only and writes to the database on failure, learning the shared count
//!   from that write: the client-secret check is one HMAC, and a round trip
//!   for every token request would dominate it. Per node this is exact; over
//!   `n` nodes an attacker who fires every guess in parallel at nodes that
//!   have not yet seen a failure for the key gets at most `n × limit`
//!   guesses per window (sequential guesses: `limit + n − 1`), against
//!   secrets of 256 random bits when Steward made them.
//!
//! Every refusal is counted in `steward_auth_lockouts_total{limit}`.

use std::net::IpAddr;
use std::time::Duration;

use aws_lc_rs::digest;
use steward_core::UnixTime;
use steward_store::{Store, StoreError};

/// How a limiter shares its counts with other nodes (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    Strict,
    Failures,
}

/// One limit applied to one attempt.
#[derive(Clone, Debug)]
pub struct Check {
    /// The metric label, from a fixed set (never attacker data).
    pub limit: &'static str,
    /// The label and the keyed values, NUL-separated. This node counts under
    /// a keyed hash of it; the database only ever sees [`Check::store_key`].
    joined: String,
    max: u32,
}

impl Check {
    /// A limit of `max` attempts per window for the values in `parts`.
    pub fn new(limit: &'static str, parts: &[&str], max: u32) -> Check {
        let mut joined =
            String::with_capacity(limit.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
        joined.push_str(limit);
        for p in parts {
            joined.push('\0');
            joined.push_str(p);
        }
        Check { limit, joined, max }
    }

    /// The shared counter's key: a SHA-256 digest of the label and values,
    /// fixed size, so no user name or address is written to the database.
    /// Computed only when the database is written (a failure, or
    /// [`Sharing::Strict`]), never on a successful client authentication.
    fn store_key(&self) -> String {
        hex::encode(digest::digest(&digest::SHA256, self.joined.as_bytes()).as_ref())
    }
}

/// The address an attempt is counted under: IPv4 as is, IPv6 by its /64
/// (an IPv4-mapped IPv6 address is its IPv4 address).
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The limits of one login: per address (first, so a refused address makes
/// no counter for the account), per account from that address, and the
/// per-account ceiling over all addresses.
pub fn login_checks(s: &crate::settings::LoginSettings, username: &str, ip: IpAddr) -> Vec<Check> {
    let addr = address_key(ip);
    vec![
        Check::new(LOGIN_ADDRESS, &[&addr], s.max_failures_per_address),
        Check::new(
            LOGIN_ACCOUNT_ADDRESS,
            &[username, &addr],
            s.max_failures_per_account,
        ),
        Check::new(LOGIN_ACCOUNT, &[username], s.max_failures_per_account_total),
    ]
}

/// The limits of one client authentication, in the same order as
/// [`login_checks`].
pub fn client_auth_checks(t: &crate::settings::TokenSettings, client_id: &str, ip: IpAddr) -> Vec<Check> {
    let addr = address_key(ip);
    vec![
        Check::new(CLIENT_ADDRESS, &[&addr], t.client_auth_max_failures_per_address),
        Check::new(
            CLIENT_CLIENT_ADDRESS,
            &[client_id, &addr],
            t.client_auth_max_failures,
        ),
        Check::new(CLIENT_CLIENT, &[client_id], t.client_auth_max_failures_total),
    ]
}

/// Limit labels (the `limit` label of `steward_auth_lockouts_total`).
pub const LOGIN_ADDRESS: &str = "login_address";
pub const LOGIN_ACCOUNT_ADDRESS: &str = "login_account_address";
pub const LOGIN_ACCOUNT: &str = "login_account";
pub const CLIENT_ADDRESS: &str = "client_auth_address";
pub const CLIENT_CLIENT_ADDRESS: &str = "client_auth_client_address";
pub const CLIENT_CLIENT: &str = "client_auth_client";

/// Why an attempt was refused before the credential was checked.
#[derive(Debug)]
pub enum Refused {
    /// A limit is reached; its label.
    Locked(&'static str),
    /// The shared counter could not be reached.
    Store(StoreError),
}

/// Attempt counters in fixed windows of one length.
pub struct AttemptLimiter {
    window: i64,
    sharing: Sharing,
    /// This node's counts (in-flight reservations plus failures).
    local: LocalCounts,
}

/// Attempts reserved for one request; say how it ended with
/// [`Reservation::succeeded`] or [`Reservation::failed`].
#[must_use = "a reservation must be settled"]
pub struct Reservation<'l> {
    limiter: &'l AttemptLimiter,
    window_start: i64,
    /// The checks taken, each with its local slot.
    checks: Vec<(Check, Slot)>,
}

/// Where one check is counted on this node: its keyed hash, and whether the
/// table had room for it (see [`LocalCounts`]).
#[derive(Clone, Copy, Debug)]
struct Slot {
    hash: u64,
    tracked: bool,
}

/// Per-node attempt counts: `(window start, count)` per keyed hash, in
/// mutex-guarded shards. A plain map rather than a general cache because
/// every client authentication passes through it twice (reserve, give
/// back): one short lock and no allocation each time. The hash is SipHash
/// under a per-process random key, so a stranger cannot aim collisions at
/// someone else's counter. An entry whose count returns to zero is removed,
/// so successful authentications leave nothing behind; the table holds only
/// keys with attempts in flight or failures counted. Bounded: when a shard
/// is full, entries of past windows go first, then those below their limit
/// (a lockout is kept longest); if it is still full the attempt proceeds
/// counted only in the database (a flood of that many distinct keys is the
/// per-address limits' and the shared counters' business).
struct LocalCounts {
    hasher: std::hash::RandomState,
    shards: Box<[std::sync::Mutex<std::collections::HashMap<u64, Count>>]>,
    per_shard: usize,
}

#[derive(Clone, Copy, Debug)]
struct Count {
    window_start: i64,
    n: u32,
    max: u32,
}

const SHARDS: usize = 16;
const CAPACITY: usize = 100_000;

impl LocalCounts {
    fn new() -> Self {
        Self {
            hasher: std::hash::RandomState::new(),
            shards: (0..SHARDS).map(|_| std::sync::Mutex::default()).collect(),
            per_shard: CAPACITY / SHARDS,
        }
    }

    fn hash(&self, check: &Check) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(check.joined.as_bytes())
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Count>> {
        // The low bits pick the shard; a poisoned shard only held counts.
        let i = (hash as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one attempt if the count is below `max`: `None` when refused.
    fn take(&self, check: &Check, window_start: i64) -> Option<Slot> {
        let hash = self.hash(check);
        let mut shard = self.shard(hash);
        if let Some(c) = shard.get_mut(&hash) {
            if c.window_start != window_start {
                *c = Count {
                    window_start,
                    n: 0,
                    max: check.max,
                };
            }
            if c.n >= check.max {
                return None;
            }
            c.n += 1;
            return Some(Slot { hash, tracked: true });
        }
        if check.max == 0 {
            return None;
        }
        if shard.len() >= self.per_shard {
            shard.retain(|_, c| c.window_start == window_start);
            if shard.len() >= self.per_shard {
                shard.retain(|_, c| c.n >= c.max);
            }
            if shard.len() >= self.per_shard {
                return Some(Slot { hash, tracked: false });
            }
        }
        shard.insert(
            hash,
            Count {
                window_start,
                n: 1,
                max: check.max,
            },
        );
        Some(Slot { hash, tracked: true })
    }

    fn give_back(&self, slot: Slot, window_start: i64) {
        if !slot.tracked {
            return;
        }
        let mut shard = self.shard(slot.hash);
        if let Some(c) = shard.get_mut(&slot.hash)
            && c.window_start == window_start
        {
            c.n = c.n.saturating_sub(1);
            if c.n == 0 {
                shard.remove(&slot.hash);
            }
        }
    }

    /// Raises this node's count to the shared one learned from the database.
    fn learn(&self, slot: Slot, check: &Check, window_start: i64, shared: u32) {
        if !slot.tracked {
            return;
        }
        let mut shard = self.shard(slot.hash);
        let c = shard.entry(slot.hash).or_insert(Count {
            window_start,
            n: 0,
            max: check.max,
        });
        if c.window_start != window_start {
            *c = Count {
                window_start,
                n: 0,
                max: check.max,
            };
        }
        c.n = c.n.max(shared);
    }
}

impl AttemptLimiter {
    pub fn new(window: Duration, sharing: Sharing) -> AttemptLimiter {
        let window = window.as_secs().max(1);
        AttemptLimiter {
            window: i64::try_from(window).unwrap_or(i64::MAX),
            sharing,
            local: LocalCounts::new(),
        }
    }

    fn window_start(&self, now: UnixTime) -> i64 {
        now.0 - now.0.rem_euclid(self.window)
    }

    /// Reserves one attempt under every check, in order, before the
    /// credential is verified. Refused (and nothing kept) if any limit is
    /// reached. Put the checks an attacker controls least first (the
    /// address): a refused attempt then creates no counter for the others.
    pub async fn reserve(
        &self,
        store: &dyn Store,
        now: UnixTime,
        checks: Vec<Check>,
    ) -> Result<Reservation<'_>, Refused> {
        let window_start = self.window_start(now);
        let mut taken: Vec<(Check, Slot)> = Vec::with_capacity(checks.len());
        let mut stored = 0;
        let mut refusal = None;
        for check in checks {
            match self.local.take(&check, window_start) {
                Some(slot) => taken.push((check, slot)),
                None => {
                    refusal = Some(Refused::Locked(check.limit));
                    break;
                }
            }
        }
        if refusal.is_none() && self.sharing == Sharing::Strict {
            let end = UnixTime(window_start.saturating_add(self.window));
            for (check, slot) in &taken {
                match store
                    .reserve_attempt(&check.store_key(), UnixTime(window_start), end, check.max)
                    .await
                {
                    Ok(Some(_)) => stored += 1,
                    Ok(None) => {
                        // Another node counted the rest of this window.
                        self.local.learn(*slot, check, window_start, check.max);
                        refusal = Some(Refused::Locked(check.limit));
                        break;
                    }
                    Err(e) => {
                        refusal = Some(Refused::Store(e));
                        break;
                    }
                }
            }
        }
        let reservation = Reservation {
            limiter: self,
            window_start,
            checks: taken,
        };
        match refusal {
            None => Ok(reservation),
            Some(refused) => {
                if let Refused::Locked(limit) = &refused {
                    metrics::counter!("steward_auth_lockouts_total", "limit" => *limit).increment(1);
                    crate::request_log::security_event("lockout", None, limit);
                }
                reservation.give_back(store, stored).await;
                Err(refused)
            }
        }
    }
}

impl Reservation<'_> {
    /// The attempt counts whatever its outcome (a rate limit rather than a
    /// failure limit): nothing is given back.
    pub fn keep(self) {}

    /// The credential was right (or was never judged): nothing is counted.
    /// With [`Sharing::Failures`] this touches no database and no digest.
    pub async fn succeeded(self, store: &dyn Store) {
        let stored = match self.limiter.sharing {
            Sharing::Strict => self.checks.len(),
            Sharing::Failures => 0,
        };
        self.give_back(store, stored).await;
    }

    /// The credential was wrong: the attempts stay counted under the checks
    /// whose label `counts` accepts, and are given back under the others
    /// (a replayed assertion is not a guess at the client's key, so it must
    /// not count against the client: issue 11 item 17).
    pub async fn failed(self, store: &dyn Store, counts: impl Fn(&'static str) -> bool) {
        let limiter = self.limiter;
        let start = self.window_start;
        let end = UnixTime(start.saturating_add(limiter.window));
        for (check, slot) in &self.checks {
            let kept = counts(check.limit);
            match (limiter.sharing, kept) {
                (Sharing::Strict, true) => {}
                (Sharing::Strict, false) => {
                    limiter.local.give_back(*slot, start);
                    release(store, check, start).await;
                }
                (Sharing::Failures, true) => {
                    // Share the failure, and learn what other nodes counted.
                    match store
                        .reserve_attempt(&check.store_key(), UnixTime(start), end, u32::MAX)
                        .await
                    {
                        Ok(Some(shared)) => limiter.local.learn(*slot, check, start, shared),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "could not share a failed attempt"),
                    }
                }
                (Sharing::Failures, false) => limiter.local.give_back(*slot, start),
            }
        }
    }

    /// Gives back every local reservation, and the first `stored` shared ones.
    async fn give_back(self, store: &dyn Store, stored: usize) {
        for (i, (check, slot)) in self.checks.iter().enumerate() {
            self.limiter.local.give_back(*slot, self.window_start);
            if i < stored {
                release(store, check, self.window_start).await;
            }
        }
    }
}

async fn release(store: &dyn Store, check: &Check, window_start: i64) {
    if let Err(e) = store
        .release_attempt(&check.store_key(), UnixTime(window_start))
        .await
    {
        tracing::warn!(error = %e, "could not release an attempt reservation");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn store() -> Arc<dyn Store> {
        steward_store::connect("sqlite::memory:").await.unwrap()
    }

    fn checks(max: u32) -> Vec<Check> {
        vec![Check::new("test", &["alice"], max)]
    }

    /// The window is fixed: failures at its very end do not push the
    /// lockout past the next window start.
    #[tokio::test]
    async fn lockout_window_is_fixed_and_not_extended_by_failures() {
        for sharing in [Sharing::Strict, Sharing::Failures] {
            let s = store().await;
            let l = AttemptLimiter::new(Duration::from_secs(60), sharing);
            // A window boundary (a multiple of 60).
            let t0 = UnixTime(1_800_000_000);
            for at in [0, 30, 59] {
                let r = l.reserve(&*s, t0.plus_secs(at), checks(3)).await.unwrap();
                r.failed(&*s, |_| true).await;
            }
            assert!(matches!(
                l.reserve(&*s, t0.plus_secs(59), checks(3)).await,
                Err(Refused::Locked("test"))
            ));
            // One second later a new window has begun, whatever came before.
            let r = l.reserve(&*s, t0.plus_secs(60), checks(3)).await.unwrap();
            r.succeeded(&*s).await;
        }
    }

    #[tokio::test]
    async fn a_right_credential_gives_its_reservation_back() {
        for sharing in [Sharing::Strict, Sharing::Failures] {
            let s = store().await;
            let l = AttemptLimiter::new(Duration::from_secs(60), sharing);
            let now = UnixTime(1_800_000_000);
            for _ in 0..10 {
                l.reserve(&*s, now, checks(2)).await.unwrap().succeeded(&*s).await;
            }
            l.reserve(&*s, now, checks(2))
                .await
                .unwrap()
                .failed(&*s, |_| true)
                .await;
            l.reserve(&*s, now, checks(2)).await.unwrap().succeeded(&*s).await;
        }
    }

    /// Parallel attempts are counted before any is verified: of forty
    /// concurrent reservations against a limit of five, five proceed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_attempts_are_reserved_before_verifying() {
        for sharing in [Sharing::Strict, Sharing::Failures] {
            let s = store().await;
            let l = Arc::new(AttemptLimiter::new(Duration::from_secs(60), sharing));
            let (go, _) = tokio::sync::broadcast::channel::<()>(1);
            let tasks: Vec<_> = (0..40)
                .map(|_| {
                    let (s, l, mut wait) = (s.clone(), l.clone(), go.subscribe());
                    tokio::spawn(async move {
                        let r = l.reserve(&*s, UnixTime(1_800_000_000), checks(5)).await;
                        let held = r.is_ok();
                        // Hold every reservation until all have tried.
                        let _ = wait.recv().await;
                        if let Ok(r) = r {
                            r.failed(&*s, |_| true).await;
                        }
                        held
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = go.send(());
            let mut passed = 0;
            for t in tasks {
                passed += usize::from(t.await.unwrap());
            }
            assert_eq!(passed, 5, "{sharing:?}");
        }
    }

    /// A refused attempt leaves no count behind under the other limits.
    #[tokio::test]
    async fn a_refused_attempt_is_not_counted_anywhere() {
        let s = store().await;
        let l = AttemptLimiter::new(Duration::from_secs(60), Sharing::Strict);
        let now = UnixTime(1_800_000_000);
        let pair = |acct: &str| {
            vec![
                Check::new("address", &["a"], 1),
                Check::new("account", &[acct], 1),
            ]
        };
        l.reserve(&*s, now, pair("x"))
            .await
            .unwrap()
            .failed(&*s, |_| true)
            .await;
        assert!(l.reserve(&*s, now, pair("y")).await.is_err());
        // "y" was never counted: only the address limit stops it.
        let alone = vec![Check::new("account", &["y"], 1)];
        l.reserve(&*s, now, alone).await.unwrap().succeeded(&*s).await;
    }

    #[test]
    fn ipv6_addresses_count_by_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7");
    }

    /// A successful attempt leaves no entry behind on this node, so a
    /// stream of good authentications cannot grow the table.
    #[tokio::test]
    async fn successful_attempts_leave_no_local_entry() {
        let s = store().await;
        let l = AttemptLimiter::new(Duration::from_secs(60), Sharing::Failures);
        let now = UnixTime(1_800_000_000);
        for i in 0..50 {
            let who = format!("client-{i}");
            l.reserve(&*s, now, vec![Check::new("t", &[&who], 3)])
                .await
                .unwrap()
                .succeeded(&*s)
                .await;
        }
        let held: usize = l.local.shards.iter().map(|m| m.lock().unwrap().len()).sum();
        assert_eq!(held, 0);
    }

    /// A full table keeps lockouts before anything else: flooding it with
    /// fresh keys does not lift a lockout already reached.
    #[tokio::test]
    async fn a_full_table_keeps_its_lockouts() {
        let s = store().await;
        let l = AttemptLimiter::new(Duration::from_secs(60), Sharing::Failures);
        let now = UnixTime(1_800_000_000);
        let locked = || vec![Check::new("t", &["victim-of-guessing"], 1)];
        l.reserve(&*s, now, locked())
            .await
            .unwrap()
            .failed(&*s, |_| true)
            .await;
        let mut held = Vec::new();
        for i in 0..(CAPACITY + CAPACITY / 4) {
            let who = format!("flood-{i}");
            if let Ok(r) = l.reserve(&*s, now, vec![Check::new("t", &[&who], 5)]).await {
                held.push(r);
            }
        }
        assert!(matches!(
            l.reserve(&*s, now, locked()).await,
            Err(Refused::Locked("t"))
        ));
        for r in held {
            r.succeeded(&*s).await;
        }
    }
}
