//! How long a fetched document may be served from cache.
//!
//! CIMD -01 §4.4: SHOULD honour RFC 9111 headers, MAY bound the lifetime.
//! Steward clamps to `[min_cache_seconds, max_cache_seconds]` (SPEC_CHECKLIST
//! §20.7, 300 s to 86400 s): the floor stops a `max-age=0` document from
//! turning every authorization into an outbound fetch (SEP-991 DDoS and the
//! -02 §9.1 privacy note), the ceiling makes removed redirect URIs and rotated
//! keys take effect within a day.

use std::time::UNIX_EPOCH;
use steward_core::UnixTime;

/// The caching headers of a response, as raw header values.
#[derive(Clone, Copy, Debug, Default)]
pub struct CachingHeaders<'a> {
    pub cache_control: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub date: Option<&'a str>,
    pub age: Option<&'a str>,
}

/// What the headers allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// `no-store` (RFC 9111 §5.2.2.5): use for the current flow, never keep.
    NoStore,
    /// `no-cache` (RFC 9111 §5.2.2.4): keep, but revalidate before every use.
    /// Not raised to the floor: the origin asked for revalidation, and a
    /// conditional request answered by 304 is cheap.
    AlwaysRevalidate,
    /// Fresh for this many seconds from now, already clamped.
    Fresh(u64),
}

/// Computes the freshness lifetime (RFC 9111 §4.2.1) minus the current age
/// (§4.2.3), clamped to `[min, max]`.
///
/// `max-age` wins over `Expires`; `s-maxage` is for shared caches and Steward
/// is a private cache of one origin server's answer, so it is ignored, and so
/// is `private`. A malformed `max-age` makes the response stale (§4.2.1: a
/// cache may "consider the response stale"), which the floor then raises.
/// Without any freshness information the floor applies.
pub fn freshness(h: &CachingHeaders<'_>, now: UnixTime, min: u64, max: u64) -> Freshness {
    let mut max_age: Option<Option<u64>> = None;
    if let Some(cc) = h.cache_control {
        for directive in cc.split(',') {
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") {
                return Freshness::NoStore;
            }
            if name.eq_ignore_ascii_case("no-cache") {
                return Freshness::AlwaysRevalidate;
            }
            if name.eq_ignore_ascii_case("max-age") && max_age.is_none() {
                max_age = Some(value.and_then(|v| v.parse::<u64>().ok()));
            }
        }
    }
    let lifetime = match max_age {
        Some(parsed) => parsed.unwrap_or(0),
        None => match h.expires {
            Some(expires) => {
                let base = h.date.and_then(http_date).unwrap_or(now.seconds());
                // An invalid Expires ("0", "-1") means already expired (§5.3).
                http_date(expires).map_or(0, |e| u64::try_from(e.saturating_sub(base)).unwrap_or(0))
            }
            None => min,
        },
    };
    let age = h.age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    Freshness::Fresh(lifetime.saturating_sub(age).clamp(min, max.max(min)))
}

fn http_date(s: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime(1_700_000_000);
    const MIN: u64 = 300;
    const MAX: u64 = 86_400;

    fn cc(v: &str) -> Freshness {
        let h = CachingHeaders {
            cache_control: Some(v),
            ..CachingHeaders::default()
        };
        freshness(&h, NOW, MIN, MAX)
    }

    fn date(t: i64) -> String {
        let st = UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(t).unwrap());
        httpdate::fmt_http_date(st)
    }

    #[test]
    fn max_age_is_clamped_to_the_floor() {
        assert_eq!(cc("max-age=10"), Freshness::Fresh(300));
        assert_eq!(cc("max-age=0"), Freshness::Fresh(300));
    }

    #[test]
    fn max_age_is_clamped_to_the_ceiling() {
        assert_eq!(cc("max-age=10000000"), Freshness::Fresh(86_400));
    }

    #[test]
    fn max_age_within_bounds_is_honoured() {
        assert_eq!(cc("public, max-age=600"), Freshness::Fresh(600));
        assert_eq!(cc("private, MAX-AGE=\"900\""), Freshness::Fresh(900));
        assert_eq!(cc("s-maxage=5, max-age=1200"), Freshness::Fresh(1200));
    }

    #[test]
    fn no_store_and_no_cache() {
        assert_eq!(cc("max-age=600, no-store"), Freshness::NoStore);
        assert_eq!(cc("no-cache"), Freshness::AlwaysRevalidate);
    }

    #[test]
    fn expires_minus_date() {
        let h = CachingHeaders {
            expires: Some(&date(NOW.0 + 7_200)),
            date: Some(&date(NOW.0 - 100)),
            ..CachingHeaders::default()
        };
        assert_eq!(freshness(&h, NOW, MIN, MAX), Freshness::Fresh(7_300));
    }

    #[test]
    fn expires_without_date_counts_from_now_and_invalid_expires_is_stale() {
        let e = date(NOW.0 + 1_000);
        let h = CachingHeaders {
            expires: Some(&e),
            ..CachingHeaders::default()
        };
        assert_eq!(freshness(&h, NOW, MIN, MAX), Freshness::Fresh(1_000));
        let h = CachingHeaders {
            expires: Some("0"),
            ..CachingHeaders::default()
        };
        assert_eq!(freshness(&h, NOW, MIN, MAX), Freshness::Fresh(300));
    }

    #[test]
    fn max_age_beats_expires_and_age_is_subtracted() {
        let e = date(NOW.0 + 50_000);
        let h = CachingHeaders {
            cache_control: Some("max-age=2000"),
            expires: Some(&e),
            age: Some("500"),
            ..CachingHeaders::default()
        };
        assert_eq!(freshness(&h, NOW, MIN, MAX), Freshness::Fresh(1_500));
    }

    #[test]
    fn malformed_max_age_is_stale_and_no_headers_get_the_floor() {
        assert_eq!(cc("max-age=soon"), Freshness::Fresh(300));
        assert_eq!(
            freshness(&CachingHeaders::default(), NOW, MIN, MAX),
            Freshness::Fresh(300)
        );
    }
}
