//! Failure counters for brute-force limits: failed logins per account and per
//! address (OAuth 2.1 §7.4.1 spirit, issue 4 point 2) and failed client
//! authentications per client (OAuth 2.1 §2.4.1: endpoints that take a
//! secret MUST be protected against brute force).
//!
//! Counting is one atomic upsert, so concurrent failures are never lost: a
//! read-then-write would let an attacker who fires guesses in parallel count
//! as a single failure.

use std::time::Duration;

/// Failures per key within a window that restarts at each failure.
pub struct FailureCounter {
    cache: moka::sync::Cache<String, u32>,
}

impl FailureCounter {
    pub fn new(window: Duration) -> FailureCounter {
        FailureCounter {
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window.max(Duration::from_secs(1)))
                .build(),
        }
    }

    /// Failures recorded for `key` in the current window.
    pub fn count(&self, key: &str) -> u32 {
        self.cache.get(key).unwrap_or(0)
    }

    /// Records one failure for `key`.
    pub fn record(&self, key: &str) {
        self.cache
            .entry(key.to_owned())
            .and_upsert_with(|e| e.map_or(1, |e| e.into_value().saturating_add(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::FailureCounter;
    use std::time::Duration;

    #[test]
    fn concurrent_failures_are_all_counted() {
        let c = std::sync::Arc::new(FailureCounter::new(Duration::from_secs(60)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        c.record("u:alice");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.count("u:alice"), 2000);
        assert_eq!(c.count("u:bob"), 0);
    }
}
