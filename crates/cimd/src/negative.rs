//! Remembering recent failures so a broken or unreachable document server is
//! not hammered by every authorization attempt (CIMD -01 §4.4 forbids caching
//! errors as if they were documents; this cache only delays the next try).
//!
//! The delay doubles with each consecutive failure of one URL, from
//! `negative_cache_seconds` up to `negative_cache_max_seconds`, and resets on
//! the next success. It never hides a usable document: the resolver consults
//! it only when no fresh entry exists (see `Resolver::resolve`).

use crate::problem::Problem;
use crate::resolve_error::ResolveError;
use std::sync::Arc;
use steward_core::UnixTime;

#[derive(Debug)]
pub(crate) struct Failure {
    pub consecutive: u32,
    pub until: UnixTime,
    pub reason: &'static str,
    pub transient: bool,
    /// For invalid documents, the problems, so a repeat gets the same answer.
    pub problems: Option<Vec<Problem>>,
}

impl Failure {
    pub fn is_active(&self, now: UnixTime) -> bool {
        now < self.until
    }

    pub fn to_error(&self, now: UnixTime) -> ResolveError {
        match &self.problems {
            Some(p) => ResolveError::Invalid(p.clone()),
            None => ResolveError::RecentFailure {
                reason: self.reason,
                transient: self.transient,
                retry_after_secs: u64::try_from(now.until(self.until)).unwrap_or(0).max(1),
            },
        }
    }
}

/// Bounded by entry count (moka), so spraying random client ids cannot grow it.
pub(crate) struct NegativeCache {
    entries: moka::sync::Cache<String, Arc<Failure>>,
    base: u64,
    cap: u64,
}

impl NegativeCache {
    pub fn new(max_entries: u64, base: u64, cap: u64) -> Self {
        Self {
            entries: moka::sync::Cache::new(max_entries.max(1)),
            base: base.max(1),
            cap: cap.max(base).max(1),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Failure>> {
        self.entries.get(key)
    }

    /// Records one more failure and returns it.
    pub fn note(
        &self,
        key: &str,
        now: UnixTime,
        reason: &'static str,
        transient: bool,
        problems: Option<Vec<Problem>>,
    ) -> Arc<Failure> {
        let consecutive = self
            .entries
            .get(key)
            .map_or(1, |f| f.consecutive.saturating_add(1));
        let failure = Arc::new(Failure {
            consecutive,
            until: now.plus_secs(i64::try_from(self.backoff(consecutive)).unwrap_or(i64::MAX)),
            reason,
            transient,
            problems,
        });
        self.entries.insert(key.to_owned(), Arc::clone(&failure));
        failure
    }

    pub fn clear(&self, key: &str) {
        self.entries.invalidate(key);
    }

    /// `base · 2^(n-1)`, capped.
    pub fn backoff(&self, consecutive: u32) -> u64 {
        let shift = consecutive.saturating_sub(1).min(32);
        self.base.saturating_mul(1u64 << shift).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let n = NegativeCache::new(10, 5, 300);
        let got: Vec<u64> = (1..=9).map(|i| n.backoff(i)).collect();
        assert_eq!(got, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(n.backoff(u32::MAX), 300);
    }

    #[test]
    fn consecutive_failures_accumulate_until_cleared() {
        let n = NegativeCache::new(10, 5, 300);
        let t = UnixTime(1_000);
        assert_eq!(n.note("k", t, "timeout", true, None).until, UnixTime(1_005));
        assert_eq!(n.note("k", t, "timeout", true, None).until, UnixTime(1_010));
        let third = n.note("k", t, "timeout", true, None);
        assert_eq!(third.consecutive, 3);
        assert!(third.is_active(UnixTime(1_019)));
        assert!(!third.is_active(UnixTime(1_020)));
        n.clear("k");
        assert_eq!(n.note("k", t, "timeout", true, None).consecutive, 1);
    }
}
