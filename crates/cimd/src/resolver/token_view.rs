//! What the token endpoint may trust of a metadata-document client.
//!
//! The token endpoint never fetches (ARCHITECTURE: "POST /token never
//! touches the network"), yet it must not trust a stored document forever:
//! after a client's document drops a compromised key, or disappears, the old
//! key must stop working within `max_cache_seconds`, whether or not anyone
//! goes through the authorization endpoint meanwhile. [`Resolver::for_token`]
//! answers from what is held and keeps it honest in the background:
//!
//! 1. A document whose origin answered definitively (404, invalid document,
//!    refused address) since it was last confirmed is refused
//!    ([`ResolveError::Withdrawn`]) until a fetch succeeds again.
//! 2. This node's cached entry: while fresh it is served. Once stale it is
//!    still served, and one background revalidation starts — but only while
//!    the origin confirmed it less than `max_cache_seconds` ago. Past that
//!    hard bound the client is refused with [`ResolveError::Unconfirmed`]
//!    (503 `temporarily_unavailable`): failing closed, until the
//!    revalidation succeeds.
//! 3. No entry on this node (a restart, another node did the fetch, a
//!    `no-store` document, eviction): the latest stored version, trusted
//!    until `max_cache_seconds` after its `last_seen_at` (the latest fetch
//!    that recorded it, on any node), with a background revalidation started
//!    so this node learns the document's standing. Past that, as in 2.
//!
//! The background revalidation is the resolver's own single-flight
//! resolution, so a 304, a changed document or a 404 takes effect exactly as
//! it would at the authorization endpoint; at most one is started per client
//! per `negative_cache_seconds`, and none while the URL is backing off after
//! a failure, so token requests cannot drive fetches.

use super::{Flight, Resolver};
use crate::client_id::ClientIdUrl;
use crate::resolve_error::ResolveError;
use crate::resolver::ResolvedClient;
use steward_core::UnixTime;

impl Resolver {
    /// The client as the token endpoint may trust it now, from held and
    /// stored data only (see the module documentation); `None` when no
    /// version of `id` was ever recorded.
    pub async fn for_token(&self, id: &ClientIdUrl) -> Result<Option<ResolvedClient>, ResolveError> {
        let key = id.as_str();
        let now = self.inner.clock.now();
        if let Some((until, reason)) = self.inner.withdrawn.get(key)
            && now < until
        {
            return Err(ResolveError::Withdrawn { reason });
        }
        if let Some(entry) = self.inner.cache.get(key) {
            if now < entry.client.fresh_until {
                self.maybe_refresh_early(id, &entry, now);
                return Ok(Some((*entry.client).clone()));
            }
            self.revalidate_in_background(id, now);
            return if self.confirmed_recently(entry.validated_at, now) {
                Ok(Some((*entry.client).clone()))
            } else {
                Err(self.unconfirmed())
            };
        }
        let Some(record) = self.inner.versions.latest(key).await? else {
            return Ok(None);
        };
        let last_seen = record.last_seen_at.max(record.fetched_at);
        let client = self.validated(id, record)?;
        self.revalidate_in_background(id, now);
        if self.confirmed_recently(last_seen, now) {
            Ok(Some(client))
        } else {
            Err(self.unconfirmed())
        }
    }

    /// Was the document confirmed by its origin less than `max_cache_seconds` ago?
    fn confirmed_recently(&self, confirmed_at: UnixTime, now: UnixTime) -> bool {
        let max = i64::try_from(self.inner.config.max_cache_seconds).unwrap_or(i64::MAX);
        now < confirmed_at.plus_secs(max)
    }

    fn unconfirmed(&self) -> ResolveError {
        ResolveError::Unconfirmed {
            retry_after_secs: self.inner.config.negative_cache_seconds.max(1),
        }
    }

    /// Starts one resolution of `id` off the request path, unless one was
    /// started within `negative_cache_seconds` or the URL is backing off.
    fn revalidate_in_background(&self, id: &ClientIdUrl, now: UnixTime) {
        let key = id.as_str();
        let spacing = i64::try_from(self.inner.config.negative_cache_seconds.max(1)).unwrap_or(i64::MAX);
        if self
            .inner
            .background
            .get(key)
            .is_some_and(|last| now < last.plus_secs(spacing))
        {
            return;
        }
        if self
            .inner
            .negative
            .get(key)
            .is_some_and(|failure| failure.is_active(now))
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.inner.background.insert(key.to_owned(), now);
        let this = self.clone();
        let id = id.clone();
        runtime.spawn(async move {
            let result = this.single_flight(&id, Flight::Needed).await;
            let label = match &result {
                Ok((_, outcome)) => outcome.label(),
                Err(e) => e.reason(),
            };
            metrics::counter!("steward_cimd_resolutions_total", "outcome" => label).increment(1);
        });
    }
}
