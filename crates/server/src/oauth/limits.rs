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
    /// Digest of the label and the keyed values: fixed size, and no user
    /// name or address is written to the database.
    key: String,
    max: u32,
}

impl Check {
    /// A limit of `max` attempts per window for the values in `parts`.
    pub fn new(limit: &'static str, parts: &[&str], max: u32) -> Check {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(limit.as_bytes());
        for p in parts {
            ctx.update(&[0]);
            ctx.update(p.as_bytes());
        }
        Check {
            limit,
            key: hex::encode(ctx.finish().as_ref()),
            max,
        }
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
    /// Per key: (window start, attempts counted in it), on this node.
    local: moka::sync::Cache<String, (i64, u32)>,
}

/// Attempts reserved for one request; say how it ended with
/// [`Reservation::succeeded`] or [`Reservation::failed`].
#[must_use = "a reservation must be settled"]
pub struct Reservation<'l> {
    limiter: &'l AttemptLimiter,
    window_start: i64,
    checks: Vec<Check>,
}

impl AttemptLimiter {
    pub fn new(window: Duration, sharing: Sharing) -> AttemptLimiter {
        let window = window.as_secs().max(1);
        AttemptLimiter {
            window: i64::try_from(window).unwrap_or(i64::MAX),
            sharing,
            local: moka::sync::Cache::builder()
                .max_capacity(100_000)
                // Memory only: an entry of an older window is ignored anyway.
                .time_to_live(Duration::from_secs(window.saturating_mul(2)))
                .build(),
        }
    }

    fn window_start(&self, now: UnixTime) -> i64 {
        now.0 - now.0.rem_euclid(self.window)
    }

    /// Takes one attempt on this node if the count is below `max`.
    fn take_local(&self, check: &Check, window_start: i64) -> bool {
        let mut taken = false;
        self.local.entry_by_ref(&check.key).and_compute_with(|entry| {
            let count = entry
                .map(|e| e.into_value())
                .filter(|(start, _)| *start == window_start)
                .map_or(0, |(_, n)| n);
            if count < check.max {
                taken = true;
                moka::ops::compute::Op::Put((window_start, count + 1))
            } else {
                moka::ops::compute::Op::Nop
            }
        });
        taken
    }

    fn give_back_local(&self, check: &Check, window_start: i64) {
        self.local
            .entry_by_ref(&check.key)
            .and_compute_with(|entry| match entry.map(|e| e.into_value()) {
                Some((start, n)) if start == window_start && n > 0 => {
                    moka::ops::compute::Op::Put((start, n - 1))
                }
                _ => moka::ops::compute::Op::Nop,
            });
    }

    /// Raises this node's count to the shared one learned from the database.
    fn learn(&self, check: &Check, window_start: i64, shared: u32) {
        self.local.entry_by_ref(&check.key).and_compute_with(|entry| {
            let count = entry
                .map(|e| e.into_value())
                .filter(|(start, _)| *start == window_start)
                .map_or(0, |(_, n)| n);
            moka::ops::compute::Op::Put((window_start, count.max(shared)))
        });
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
        let mut taken: Vec<Check> = Vec::with_capacity(checks.len());
        let mut stored = 0;
        let mut refusal = None;
        for check in checks {
            if !self.take_local(&check, window_start) {
                refusal = Some(Refused::Locked(check.limit));
                break;
            }
            taken.push(check);
        }
        if refusal.is_none() && self.sharing == Sharing::Strict {
            let end = UnixTime(window_start.saturating_add(self.window));
            for check in &taken {
                match store
                    .reserve_attempt(&check.key, UnixTime(window_start), end, check.max)
                    .await
                {
                    Ok(Some(_)) => stored += 1,
                    Ok(None) => {
                        // Another node counted the rest of this window.
                        self.learn(check, window_start, check.max);
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
                }
                reservation.give_back(store, stored).await;
                Err(refused)
            }
        }
    }
}

impl Reservation<'_> {
    /// The credential was right (or was never judged): nothing is counted.
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
        for check in &self.checks {
            let kept = counts(check.limit);
            match (limiter.sharing, kept) {
                (Sharing::Strict, true) => {}
                (Sharing::Strict, false) => {
                    limiter.give_back_local(check, start);
                    release(store, check, start).await;
                }
                (Sharing::Failures, true) => {
                    // Share the failure, and learn what other nodes counted.
                    match store
                        .reserve_attempt(&check.key, UnixTime(start), end, u32::MAX)
                        .await
                    {
                        Ok(Some(shared)) => limiter.learn(check, start, shared),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "could not share a failed attempt"),
                    }
                }
                (Sharing::Failures, false) => limiter.give_back_local(check, start),
            }
        }
    }

    /// Gives back every local reservation, and the first `stored` shared ones.
    async fn give_back(self, store: &dyn Store, stored: usize) {
        for (i, check) in self.checks.iter().enumerate() {
            self.limiter.give_back_local(check, self.window_start);
            if i < stored {
                release(store, check, self.window_start).await;
            }
        }
    }
}

async fn release(store: &dyn Store, check: &Check, window_start: i64) {
    if let Err(e) = store.release_attempt(&check.key, UnixTime(window_start)).await {
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
}
