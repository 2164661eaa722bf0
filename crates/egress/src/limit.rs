//! Per-host limits on concurrent fetches and on fetches per minute, and one
//! global cap on concurrent fetches.
//!
//! Attackers choose the URLs Steward fetches. Without a per-host cap a single
//! slow host could hold every worker (starvation), and a flood of
//! authorization requests naming one victim URL would turn Steward into a
//! traffic reflector (SEP-991 "Risk: DDoS"). Per-host caps alone do not bound
//! the total: host names cost an attacker nothing (a wildcard DNS zone), so
//! the sum over hosts is capped too (issue 11 item 14). Refusal is immediate:
//! waiting would just move the starvation into a queue.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::FetchError;

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked hosts, idle ones are swept so the map stays bounded.
const SWEEP_THRESHOLD: usize = 1024;

#[derive(Default)]
struct HostState {
    active: usize,
    starts: VecDeque<Instant>,
}

/// Every host's state, and the fetches in flight across all of them.
#[derive(Default)]
struct Hosts {
    by_name: HashMap<String, HostState>,
    active: usize,
}

pub(crate) struct HostLimiter {
    concurrency: usize,
    per_minute: usize,
    total: usize,
    hosts: Arc<Mutex<Hosts>>,
}

impl HostLimiter {
    pub(crate) fn new(concurrency: usize, per_minute: u32, total: usize) -> Self {
        HostLimiter {
            concurrency,
            per_minute: usize::try_from(per_minute).unwrap_or(usize::MAX),
            total,
            hosts: Arc::default(),
        }
    }

    /// Reserve a fetch slot for `host`; the slot is released when the permit drops.
    pub(crate) fn acquire(&self, host: &str) -> Result<HostPermit, FetchError> {
        // A sliding one-minute window of fetch starts: elapsed monotonic time,
        // not an expiry of anything stored, and tokio's paused test clock drives it.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut guard = lock(&self.hosts);
        let hosts = &mut *guard;
        if hosts.active >= self.total {
            metrics::counter!("steward_egress_global_limit_refusals_total").increment(1);
            return Err(FetchError::RateLimited);
        }
        if hosts.by_name.len() > SWEEP_THRESHOLD {
            hosts.by_name.retain(|_, state| {
                prune(state, now);
                state.active > 0 || !state.starts.is_empty()
            });
        }
        let state = hosts.by_name.entry(host.to_owned()).or_default();
        prune(state, now);
        if state.active >= self.concurrency || state.starts.len() >= self.per_minute {
            return Err(FetchError::RateLimited);
        }
        state.active += 1;
        state.starts.push_back(now);
        hosts.active += 1;
        Ok(HostPermit {
            host: host.to_owned(),
            hosts: Arc::clone(&self.hosts),
        })
    }
}

fn prune(state: &mut HostState, now: Instant) {
    while state
        .starts
        .front()
        .is_some_and(|start| now.duration_since(*start) >= WINDOW)
    {
        state.starts.pop_front();
    }
}

fn lock(hosts: &Mutex<Hosts>) -> MutexGuard<'_, Hosts> {
    // The map holds counters only; a poisoned lock leaves them consistent enough.
    hosts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A held concurrency slot.
pub(crate) struct HostPermit {
    host: String,
    hosts: Arc<Mutex<Hosts>>,
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        let mut hosts = lock(&self.hosts);
        hosts.active = hosts.active.saturating_sub(1);
        if let Some(state) = hosts.by_name.get_mut(&self.host) {
            state.active = state.active.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_is_capped_per_host_and_released_on_drop() {
        let limiter = HostLimiter::new(2, 100, 100);
        let a = limiter.acquire("a.example").unwrap();
        let _b = limiter.acquire("a.example").unwrap();
        assert!(matches!(
            limiter.acquire("a.example"),
            Err(FetchError::RateLimited)
        ));
        // Another host is unaffected.
        let _c = limiter.acquire("b.example").unwrap();
        drop(a);
        assert!(limiter.acquire("a.example").is_ok());
    }

    /// Many hosts, each under its own cap, still share one global cap: host
    /// names are free to an attacker, so per-host caps alone bound nothing.
    #[test]
    fn concurrent_fetches_are_capped_across_all_hosts() {
        let limiter = HostLimiter::new(2, 100, 3);
        let held: Vec<_> = ["a.example", "b.example", "c.example"]
            .iter()
            .map(|h| limiter.acquire(h).unwrap())
            .collect();
        assert!(matches!(
            limiter.acquire("d.example"),
            Err(FetchError::RateLimited)
        ));
        drop(held);
        assert!(limiter.acquire("d.example").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn starts_per_minute_are_capped_in_a_rolling_window() {
        let limiter = HostLimiter::new(10, 3, 100);
        for _ in 0..3 {
            drop(limiter.acquire("a.example").unwrap());
        }
        assert!(matches!(
            limiter.acquire("a.example"),
            Err(FetchError::RateLimited)
        ));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(limiter.acquire("a.example").is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limiter.acquire("a.example").is_ok());
    }
}
