//! The bridge between the CIMD library and Steward's database and audit
//! trail: versions are stored per client, the client gets an inventory
//! record when first seen, and a changed document (drift) is audited.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use steward_cimd::{NewVersion, VersionRecord, VersionStore, VersionStoreError};
use steward_core::{ClientKind, Clock, LifecycleState, TrustTier, UnixTime};
use steward_store::{ClientRecord, NewAuditEvent, NewMetadataVersion, Store, StoreError};

use crate::request_id::RequestId;

/// [`VersionStore`] over the database.
pub struct DbVersionStore {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    limits: UnusedLimits,
    /// A client from a quarantined host is created `pending` (issue 13 item 6).
    domains: steward_governance::domains::DomainLists,
}

/// Bounds on what anonymous requests can make Steward persist (issue 11
/// item 12): a metadata-document client is stored when its document is
/// first fetched, before anyone signs in for it, so whoever hosts documents
/// can create clients and versions at will. Those nobody uses are capped in
/// number, keep only their newest versions, and are reaped by the purge.
#[derive(Clone, Copy, Debug)]
pub struct UnusedLimits {
    /// `cimd.max_unused_clients`
    pub max_clients: u64,
    /// `cimd.max_unused_versions`
    pub max_versions: u32,
}

impl DbVersionStore {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        limits: UnusedLimits,
        domains: steward_governance::domains::DomainLists,
    ) -> Self {
        Self {
            store,
            clock,
            limits,
            domains,
        }
    }

    /// Creates the inventory record of a metadata-document client the first
    /// time it is seen, and keeps its display name and last-seen time current.
    ///
    /// Targeted writes only: a fetch used to read the whole record and write
    /// it back, which silently undid a suspension made in between (issue 13
    /// §9). `refresh_client_metadata` never writes the lifecycle state, and
    /// `insert_client` creates the record only if nobody else just did.
    async fn ensure_client(&self, client_id: &str, body: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let name = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("client_name").and_then(Value::as_str).map(str::to_owned));
        if self
            .store
            .refresh_client_metadata(client_id, name.as_deref(), now)
            .await?
        {
            return Ok(false);
        }
        // Refusing here (a transient failure) keeps the inventory
        // bounded; clients already known, used or not, are unaffected.
        if self.store.count_unused_metadata_clients().await? >= self.limits.max_clients {
            metrics::counter!("steward_cimd_unused_client_cap_refusals_total").increment(1);
            return Err(StoreError::Database {
                reason: "too many metadata-document clients nobody has used yet",
                source: "cimd.max_unused_clients reached".into(),
            });
        }
        let record = ClientRecord {
            client_id: client_id.to_owned(),
            kind: ClientKind::MetadataDocument,
            display_name: name.clone(),
            first_seen: now,
            last_seen: now,
            // A quarantined host's client awaits an approver; any other
            // starts active and gets what the policy gives it.
            state: match crate::governance::client_id_host(client_id) {
                Some(h)
                    if self.domains.status(&h) == steward_governance::domains::DomainStatus::Quarantined =>
                {
                    LifecycleState::Pending
                }
                _ => LifecycleState::Active,
            },
            owner_organization: None,
            owner_business: None,
            owner_technical: None,
            owner_contact: None,
            // A metadata document proves control of a URL, nothing more.
            trust_tier: TrustTier::Unverified,
            secret_hash: None,
            registration: "{}".to_owned(),
            created_at: now,
            updated_at: now,
        };
        if self.store.insert_client(&record).await? {
            return Ok(true);
        }
        // Another node created it between the two statements.
        self.store
            .refresh_client_metadata(client_id, name.as_deref(), now)
            .await?;
        Ok(false)
    }
}

fn unavailable(e: StoreError) -> VersionStoreError {
    VersionStoreError::Unavailable(Box::new(e))
}

fn to_record(v: steward_store::MetadataVersion) -> VersionRecord {
    VersionRecord {
        id: v.id,
        client_id: v.client_id,
        content_hash: v.content_hash,
        body: v.body,
        fetched_at: v.fetched_at,
        last_seen_at: v.last_seen_at,
        etag: v.etag,
        last_modified: v.last_modified,
        peer_addr: v.peer_addr.unwrap_or_default(),
    }
}

#[async_trait]
impl VersionStore for DbVersionStore {
    async fn record(&self, v: NewVersion) -> Result<VersionRecord, VersionStoreError> {
        let created = self
            .ensure_client(&v.client_id, &v.body)
            .await
            .map_err(unavailable)?;
        let previous = self
            .store
            .latest_metadata_version(&v.client_id)
            .await
            .map_err(unavailable)?;
        let stored = self
            .store
            .record_metadata_version(&NewMetadataVersion {
                client_id: v.client_id.clone(),
                content_hash: v.content_hash.clone(),
                body: v.body.clone(),
                fetched_at: v.fetched_at,
                etag: v.etag.clone(),
                last_modified: v.last_modified.clone(),
                peer_addr: Some(v.peer_addr.clone()),
            })
            .await
            .map_err(unavailable)?;
        // A document that changes at every fetch must not grow the history of
        // a client nobody uses without bound (a used client keeps it all).
        if let Err(e) = self
            .store
            .trim_unused_metadata_versions(&v.client_id, self.limits.max_versions)
            .await
        {
            tracing::warn!(error = %e, "could not trim unused metadata versions");
        }
        let action = match &previous {
            None if created => Some((
                "client.discovered",
                json!({ "version_id": stored.id, "peer": v.peer_addr }),
            )),
            Some(p) if p.content_hash != stored.content_hash && p.id != stored.id => Some((
                "client.metadata_changed",
                json!({ "previous_version_id": p.id, "version_id": stored.id, "changed": changed_members(&p.body, &stored.body) }),
            )),
            _ => None,
        };
        let is_new = previous
            .as_ref()
            .is_none_or(|p| p.content_hash != stored.content_hash && p.id != stored.id);
        // Issue 11 item 4: entries Steward will not use are dropped, not
        // fatal; the operator hears of each once, with the version that has them.
        let dropped = (is_new && !v.dropped_redirect_uris.is_empty()).then(|| {
            (
                "client.redirect_uris_dropped",
                json!({ "version_id": stored.id, "dropped": v.dropped_redirect_uris }),
            )
        });
        for (action, detail) in action.into_iter().chain(dropped) {
            let event = NewAuditEvent {
                at: self.clock.now(),
                actor: "steward".to_owned(),
                action: action.to_owned(),
                client_id: Some(v.client_id.clone()),
                subject: None,
                detail: detail.to_string(),
            };
            if let Err(e) = self.store.append_audit(&event).await {
                tracing::warn!(error = %e, "could not write audit event");
            }
        }
        Ok(to_record(stored))
    }

    async fn latest(&self, client_id: &str) -> Result<Option<VersionRecord>, VersionStoreError> {
        Ok(self
            .store
            .latest_metadata_version(client_id)
            .await
            .map_err(unavailable)?
            .map(to_record))
    }

    async fn get(&self, version_id: i64) -> Result<Option<VersionRecord>, VersionStoreError> {
        Ok(self
            .store
            .get_metadata_version(version_id)
            .await
            .map_err(unavailable)?
            .map(to_record))
    }
}

/// Parses a metadata-document `client_id` under the current rules. A refusal
/// goes through the same path as every other CIMD refusal: counted in
/// `steward_cimd_resolutions_total{outcome=<reason>}` and audited (see
/// [`record_refusal`]).
pub async fn parse_client_id(
    state: &crate::state::AppState,
    raw: &str,
) -> Result<steward_cimd::ClientIdUrl, steward_cimd::ResolveError> {
    parse_client_id_for(state, raw, None).await
}

async fn parse_client_id_for(
    state: &crate::state::AppState,
    raw: &str,
    request_id: Option<&RequestId>,
) -> Result<steward_cimd::ClientIdUrl, steward_cimd::ResolveError> {
    match steward_cimd::ClientIdUrl::parse(raw, &state.cimd_policy().url_rules()) {
        Ok(id) => Ok(id),
        Err(e) => {
            let error = steward_cimd::ResolveError::from(e);
            // The resolver counts its own outcomes; a URL it never saw is counted here.
            metrics::counter!("steward_cimd_resolutions_total", "outcome" => error.reason()).increment(1);
            record_refusal(state, raw, &error, request_id).await;
            Err(error)
        }
    }
}

/// Resolves a metadata-document client for an interactive flow from the raw
/// `client_id`, writing a `client.metadata_rejected` audit event when the id
/// is refused, when a fetch was made and failed, or when the document was
/// refused (see [`record_refusal`]).
pub async fn resolve_and_audit(
    state: &crate::state::AppState,
    raw: &str,
) -> Result<Arc<steward_cimd::ResolvedClient>, steward_cimd::ResolveError> {
    resolve_for_request(state, raw, None).await
}

/// [`resolve_and_audit`] for one browser request: a refusal's log line and
/// audit event carry `request_id`, the id the error page shows the user, so
/// the details the page withholds can be found (issue 11 item 3).
pub async fn resolve_for_request(
    state: &crate::state::AppState,
    raw: &str,
    request_id: Option<&RequestId>,
) -> Result<Arc<steward_cimd::ResolvedClient>, steward_cimd::ResolveError> {
    let id = parse_client_id_for(state, raw, request_id).await?;
    let mut result = state.cimd.resolve(&id).await;
    // The purge reaps clients nobody used (with their versions), possibly
    // on another node, while this node's cache still holds the document: a
    // consent would then point at a version that is gone. Fetch it again,
    // which stores the client and version anew.
    if let Ok(resolved) = &result
        && matches!(
            state.store.get_metadata_version(resolved.version_id).await,
            Ok(None)
        )
    {
        state.cimd.invalidate(&id);
        result = state.cimd.resolve(&id).await;
    }
    if let Err(e) = &result {
        record_refusal(state, id.as_str(), e, request_id).await;
    }
    result
}

/// Longest client_id copied into an audit event: the id is attacker-chosen.
const AUDITED_ID_MAX: usize = 512;

/// Longest host name kept as an aggregation key (DNS names are at most 253).
const AUDITED_HOST_MAX: usize = 255;

/// The host that refusals of `raw` are aggregated under: the URL's host, or
/// `*` when there is none to be read.
fn refusal_host(raw: &str) -> String {
    url::Url::parse(raw)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| truncate(h, AUDITED_HOST_MAX).to_ascii_lowercase())
        })
        .unwrap_or_else(|| OTHER_HOSTS.to_owned())
}

/// The aggregate for hosts beyond `cimd.refusal_audit_max_hosts`.
const OTHER_HOSTS: &str = "*";

/// Refusals counted since the window's first one was audited.
struct Pending {
    window_start: i64,
    count: u64,
}

/// Aggregates refused-document audit events per host, reason and fixed
/// window (issue 11 item 12): each distinct invalid `client_id` used to write
/// an audit row, so anonymous requests could fill the database. Now the
/// first refusal of a host and reason in a window is audited in full
/// (`client.metadata_rejected`), the others are counted and written as one
/// `client.metadata_rejected_aggregate` event when the window is over; at
/// most `max_hosts` hosts are tracked per window, the rest share `*`. So a
/// window adds at most `2 × (max_hosts + 1) × reasons` rows per node,
/// whatever the traffic; the purge deletes them after
/// `purge.refusal_retention_secs`.
pub struct RefusalAudit {
    window: i64,
    max_hosts: u64,
    state: std::sync::Mutex<Aggregates>,
}

#[derive(Default)]
struct Aggregates {
    by_host: std::collections::HashMap<(String, &'static str), Pending>,
    window_start: i64,
    hosts_in_window: u64,
}

/// An aggregate ready to be written.
struct Ended {
    host: String,
    reason: &'static str,
    window_start: i64,
    count: u64,
}

impl RefusalAudit {
    pub fn new(window_secs: u64, max_hosts: u64) -> Self {
        Self {
            window: i64::try_from(window_secs.max(1)).unwrap_or(i64::MAX),
            max_hosts: max_hosts.max(1),
            state: std::sync::Mutex::new(Aggregates::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Aggregates> {
        // Counters only: a poisoned lock leaves them usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes one refusal; `Some(host)` when it is the first of its host and
    /// reason in this window and must be audited in full. Aggregates of
    /// windows that are over are returned to be written.
    fn note(&self, host: String, reason: &'static str, now: UnixTime) -> (Option<String>, Vec<Ended>) {
        let window_start = now.0 - now.0.rem_euclid(self.window);
        let mut a = self.lock();
        let mut ended = Vec::new();
        if a.window_start != window_start {
            a.window_start = window_start;
            a.hosts_in_window = 0;
            ended = drain_ended(&mut a.by_host, window_start);
        }
        let mut host = host;
        if !a.by_host.contains_key(&(host.clone(), reason)) && a.hosts_in_window >= self.max_hosts {
            host = OTHER_HOSTS.to_owned();
        }
        let first = match a.by_host.get_mut(&(host.clone(), reason)) {
            Some(p) if p.window_start == window_start => {
                p.count += 1;
                false
            }
            _ => {
                if host != OTHER_HOSTS {
                    a.hosts_in_window += 1;
                }
                a.by_host.insert(
                    (host.clone(), reason),
                    Pending {
                        window_start,
                        count: 0,
                    },
                );
                true
            }
        };
        (first.then_some(host), ended)
    }

    /// Aggregates of windows over at `now`, removed from memory.
    fn ended(&self, now: UnixTime) -> Vec<Ended> {
        let window_start = now.0 - now.0.rem_euclid(self.window);
        drain_ended(&mut self.lock().by_host, window_start)
    }
}

fn drain_ended(
    by_host: &mut std::collections::HashMap<(String, &'static str), Pending>,
    current: i64,
) -> Vec<Ended> {
    let mut ended = Vec::new();
    by_host.retain(|(host, reason), p| {
        if p.window_start >= current {
            return true;
        }
        if p.count > 0 {
            ended.push(Ended {
                host: host.clone(),
                reason,
                window_start: p.window_start,
                count: p.count,
            });
        }
        false
    });
    ended
}

/// Writes the aggregates of refusal windows that are over (the scheduled
/// purge calls this each pass; a new window's first refusal does too).
pub async fn flush_refusals(state: &crate::state::AppState) {
    let ended = state.refusals.ended(state.clock.now());
    write_aggregates(state, ended).await;
}

async fn write_aggregates(state: &crate::state::AppState, ended: Vec<Ended>) {
    for e in ended {
        let event = NewAuditEvent {
            at: state.clock.now(),
            actor: "steward".to_owned(),
            action: "client.metadata_rejected_aggregate".to_owned(),
            client_id: None,
            subject: None,
            detail: json!({
                "host": e.host,
                "reason": e.reason,
                "window_start": e.window_start,
                "window_secs": state.refusals.window,
                "count": e.count,
            })
            .to_string(),
        };
        if let Err(err) = state.store.append_audit(&event).await {
            tracing::warn!(error = %err, "could not write audit event");
        }
    }
}

/// Logs a refusal and audits it, aggregated per host and window (see
/// [`RefusalAudit`]). A failure served from the negative cache costs nothing
/// to repeat and was audited when it happened, so it is logged only.
async fn record_refusal(
    state: &crate::state::AppState,
    raw: &str,
    e: &steward_cimd::ResolveError,
    request_id: Option<&RequestId>,
) {
    use steward_cimd::ResolveError;
    let client_id = truncate(raw, AUDITED_ID_MAX);
    let rid = request_id.map(RequestId::as_str);
    // The details (resolved addresses, connection and TLS failures, the
    // document's own text) belong here and in the audit trail, never on the
    // page an anonymous visitor sees.
    tracing::warn!(
        event = "metadata_document_refused",
        request_id = rid,
        client_id,
        reason = e.reason(),
        error = %e,
        "metadata document refused"
    );
    if matches!(e, ResolveError::RecentFailure { .. }) {
        return;
    }
    let (first, ended) = state
        .refusals
        .note(refusal_host(raw), e.reason(), state.clock.now());
    write_aggregates(state, ended).await;
    let Some(host) = first else {
        return;
    };
    let detail = json!({
        "host": host,
        "reason": e.reason(),
        "transient": e.is_transient(),
        "problems": match e {
            ResolveError::Invalid(problems) => problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ResolveError::InvalidClientId(err) => vec![err.to_string()],
            _ => Vec::new(),
        },
        "truncated": client_id.len() < raw.len(),
        "request_id": rid,
    });
    let event = NewAuditEvent {
        at: state.clock.now(),
        actor: "steward".to_owned(),
        action: "client.metadata_rejected".to_owned(),
        client_id: Some(client_id.to_owned()),
        subject: None,
        detail: detail.to_string(),
    };
    if let Err(err) = state.store.append_audit(&event).await {
        tracing::warn!(error = %err, "could not write audit event");
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Top-level members whose values differ between two documents: the drift
/// an operator reviews (redirect_uris, jwks, client_name …).
pub fn changed_members(old: &str, new: &str) -> Vec<String> {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) = (
        serde_json::from_str::<Value>(old),
        serde_json::from_str::<Value>(new),
    ) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| a.get(k) != b.get(k)).collect()
}

/// The checker's report as JSON for the admin API.
pub fn report_json(report: &steward_cimd::CheckReport) -> Value {
    json!({
        "ok": report.ok,
        "problems": report.problems.iter().map(|p| json!({
            "rule": p.rule,
            "member": p.member,
            "message": p.message,
        })).collect::<Vec<_>>(),
        "warnings": report.warnings,
        "verdict": report.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audited_ids_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("https://h/c", 512), "https://h/c");
        assert_eq!(truncate("https://h/é", 11), "https://h/");
    }

    #[test]
    fn drift_lists_changed_members() {
        let a = r#"{"client_name":"A","redirect_uris":["https://a/cb"],"x":1}"#;
        let b = r#"{"client_name":"A","redirect_uris":["https://evil/cb"],"y":1}"#;
        assert_eq!(changed_members(a, b), vec!["redirect_uris", "x", "y"]);
    }
}
