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
    async fn ensure_client(&self, client_id: &str, body: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let name = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("client_name").and_then(Value::as_str).map(str::to_owned));
        match self.store.get_client(client_id).await? {
            Some(mut existing) => {
                existing.last_seen = now;
                existing.updated_at = now;
                if name.is_some() {
                    existing.display_name = name;
                }
                self.store.upsert_client(&existing).await?;
                Ok(false)
            }
            None => {
                let record = ClientRecord {
                    client_id: client_id.to_owned(),
                    kind: ClientKind::MetadataDocument,
                    display_name: name,
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
                self.store.upsert_client(&record).await?;
                Ok(true)
            }
        }
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

/// Resolves a metadata-document client for an interactive flow, writing a
/// `client.metadata_rejected` audit event when a fetch was made and failed or
/// the document was refused. Failures that cost an attacker nothing to
/// repeat — a malformed client_id, or a failure served from the negative
/// cache — are counted in metrics only, and the same refusal of the same
/// document is audited once per five minutes, so they cannot flood the log.
pub async fn resolve_and_audit(
    state: &crate::state::AppState,
    id: &steward_cimd::ClientIdUrl,
) -> Result<Arc<steward_cimd::ResolvedClient>, steward_cimd::ResolveError> {
    use steward_cimd::ResolveError;
    let result = state.cimd.resolve(id).await;
    if let Err(e) = &result {
        let dedupe_key = format!("{} {}", e.reason(), id.as_str());
        let worth_auditing = !matches!(
            e,
            ResolveError::InvalidClientId(_) | ResolveError::RecentFailure { .. }
        ) && !state.recent_rejections.contains_key(&dedupe_key);
        if worth_auditing {
            state.recent_rejections.insert(dedupe_key, ());
            let detail = json!({
                "reason": e.reason(),
                "transient": e.is_transient(),
                "problems": match e {
                    ResolveError::Invalid(problems) => problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    _ => Vec::new(),
                },
            });
            let event = NewAuditEvent {
                at: state.clock.now(),
                actor: "steward".to_owned(),
                action: "client.metadata_rejected".to_owned(),
                client_id: Some(id.as_str().to_owned()),
                subject: None,
                detail: detail.to_string(),
            };
            if let Err(err) = state.store.append_audit(&event).await {
                tracing::warn!(error = %err, "could not write audit event");
            }
        }
        tracing::info!(
            client_id = id.as_str(),
            reason = e.reason(),
            "metadata document refused"
        );
    }
    result
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
    fn drift_lists_changed_members() {
        let a = r#"{"client_name":"A","redirect_uris":["https://a/cb"],"x":1}"#;
        let b = r#"{"client_name":"A","redirect_uris":["https://evil/cb"],"y":1}"#;
        assert_eq!(changed_members(a, b), vec!["redirect_uris", "x", "y"]);
    }
}
