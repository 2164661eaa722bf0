//! The bridge between the CIMD library and Steward's database and audit
//! trail: versions are stored per client, the client gets an inventory
//! record when first seen, and a changed document (drift) is audited.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use steward_cimd::{NewVersion, VersionRecord, VersionStore, VersionStoreError};
use steward_core::{ClientKind, Clock, LifecycleState, TrustTier};
use steward_store::{ClientRecord, NewAuditEvent, NewMetadataVersion, Store, StoreError};

/// [`VersionStore`] over the database.
pub struct DbVersionStore {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl DbVersionStore {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
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
        let record = ClientRecord {
            client_id: client_id.to_owned(),
            kind: ClientKind::MetadataDocument,
            display_name: name.clone(),
            first_seen: now,
            last_seen: now,
            state: LifecycleState::Active,
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
        if let Some((action, detail)) = action {
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
    match steward_cimd::ClientIdUrl::parse(raw, &state.cimd_policy().url_rules()) {
        Ok(id) => Ok(id),
        Err(e) => {
            let error = steward_cimd::ResolveError::from(e);
            // The resolver counts its own outcomes; a URL it never saw is counted here.
            metrics::counter!("steward_cimd_resolutions_total", "outcome" => error.reason()).increment(1);
            record_refusal(state, raw, &error).await;
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
    let id = parse_client_id(state, raw).await?;
    let result = state.cimd.resolve(&id).await;
    if let Err(e) = &result {
        record_refusal(state, id.as_str(), e).await;
    }
    result
}

/// Longest client_id copied into an audit event: the id is attacker-chosen.
const AUDITED_ID_MAX: usize = 512;

/// Logs a refusal and writes it to the audit trail. A failure served from the
/// negative cache costs nothing to repeat and was audited when it happened,
/// so it is logged only; and the same refusal of the same id is audited once
/// per five minutes, so repeats cannot flood the log.
async fn record_refusal(state: &crate::state::AppState, raw: &str, e: &steward_cimd::ResolveError) {
    use steward_cimd::ResolveError;
    let client_id = truncate(raw, AUDITED_ID_MAX);
    tracing::info!(client_id, reason = e.reason(), "metadata document refused");
    if matches!(e, ResolveError::RecentFailure { .. }) {
        return;
    }
    let dedupe_key = format!("{} {client_id}", e.reason());
    if state.recent_rejections.contains_key(&dedupe_key) {
        return;
    }
    state.recent_rejections.insert(dedupe_key, ());
    let detail = json!({
        "reason": e.reason(),
        "transient": e.is_transient(),
        "problems": match e {
            ResolveError::Invalid(problems) => problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ResolveError::InvalidClientId(err) => vec![err.to_string()],
            _ => Vec::new(),
        },
        "truncated": client_id.len() < raw.len(),
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
