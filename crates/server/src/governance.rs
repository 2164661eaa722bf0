//! The server's door into the governance room (`steward-governance`).
//!
//! Nothing here decides: this module turns `[governance]`, `[[resources]]`
//! and `[[clients]]` into the room's settings, asks the room at each
//! protocol request, and translates its answer into the protocol's own
//! terms (OAuth 2.1 errors, the granted `scope`). The rules themselves —
//! which scopes a client may get, who may approve, which lifecycle moves
//! are legal — live in the room, so the CLI and the admin API meet the same
//! ones (ARCHITECTURE.md "one decision point").

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use steward_core::scope::ScopeSet;
use steward_core::{Clock, ErrorCode, OAuthError};
use steward_governance::domains::{DomainLists, DomainStatus};
use steward_governance::facts::ClientFacts;
use steward_governance::model::{ClientView, OwnerKind};
use steward_governance::ownership::OwnerRequirement;
use steward_governance::policy::{PolicyConfig, RefusalReason};
use steward_governance::{
    Action, DecideRequest, Decision, Governance, GovernanceSettings, ResourceInfo, UserContext,
};
use steward_store::Store;

use crate::settings::{SettingError, Settings};

/// The room's settings from Steward's configuration.
///
/// Self-service scopes (issue 13 item 5): a `[[resources]]` entry's
/// `self_service_scopes`, else those of its scopes that are in
/// `default_scopes`. With no `[[resources]]` at all the issuer is the only
/// resource and it enumerates no scopes; its self-service scopes are the
/// `default_scopes`, so even a zero-configuration server gives an unknown
/// client only what it would get without asking.
pub fn settings_for(s: &Settings) -> Result<GovernanceSettings, SettingError> {
    let g = &s.governance;
    let domains =
        DomainLists::parse(&g.domains.allow, &g.domains.deny, &g.domains.quarantine).map_err(|e| {
            SettingError {
                key: "governance.domains",
                reason: e.to_string(),
            }
        })?;
    let owner_requirement = match g.owners_required.as_str() {
        "above_self_service" => OwnerRequirement::AboveSelfService,
        "all_undeclared" => OwnerRequirement::AllUndeclared,
        "never" => OwnerRequirement::Never,
        other => {
            return Err(SettingError {
                key: "governance.owners_required",
                reason: format!("{other:?} is not one of above_self_service, all_undeclared, never"),
            });
        }
    };
    if g.request_expiry_days == 0 {
        return Err(SettingError {
            key: "governance.request_expiry_days",
            reason: "must be at least 1".to_owned(),
        });
    }
    let mut resources: Vec<ResourceInfo> = s
        .resources
        .iter()
        .map(|r| {
            let scopes: Vec<String> = r.scopes.keys().cloned().collect();
            let self_service = match &r.self_service_scopes {
                Some(list) => list.clone(),
                None if scopes.is_empty() => s.default_scopes.clone(),
                None => s
                    .default_scopes
                    .iter()
                    .filter(|d| scopes.contains(d))
                    .cloned()
                    .collect(),
            };
            ResourceInfo {
                uri: r.uri.clone(),
                scopes,
                self_service_scopes: self_service,
            }
        })
        .collect();
    for (r, info) in s.resources.iter().zip(&resources) {
        if let Some(bad) = info
            .self_service_scopes
            .iter()
            .find(|x| !info.scopes.is_empty() && !info.scopes.contains(x))
        {
            return Err(SettingError {
                key: "resources.self_service_scopes",
                reason: format!("{bad:?} is not one of the scopes of resource {:?}", r.uri),
            });
        }
    }
    if resources.is_empty() {
        resources.push(ResourceInfo {
            uri: s.effective_issuer(),
            scopes: Vec::new(),
            self_service_scopes: s.default_scopes.clone(),
        });
    }
    for c in &s.clients {
        for o in &c.owners {
            parse_owner(o).map_err(|reason| SettingError {
                key: "clients.owners",
                reason: format!("client {:?}: {reason}", c.client_id),
            })?;
        }
    }
    let declared: BTreeSet<String> = s.clients.iter().map(|c| c.client_id.clone()).collect();
    Ok(GovernanceSettings {
        allow_self_approval: g.allow_self_approval,
        domains,
        request_expiry_secs: i64::from(g.request_expiry_days) * 86_400,
        owner_requirement,
        declared_clients: declared,
        resources,
        policy: PolicyConfig {
            include_default: g.include_default_policies,
            files: g.policy_files.clone(),
        },
    })
}

/// `"alice:business"` → (`alice`, business): the form `[[clients]]`
/// owners and `steward requests approve --owner` share.
pub fn parse_owner(entry: &str) -> Result<(String, OwnerKind), String> {
    let (user, kind) = entry
        .rsplit_once(':')
        .ok_or_else(|| format!("owner {entry:?} must be USER:business or USER:technical"))?;
    let kind = match kind {
        "business" => OwnerKind::Business,
        "technical" => OwnerKind::Technical,
        other => return Err(format!("owner kind {other:?} must be business or technical")),
    };
    if user.is_empty() {
        return Err(format!("owner {entry:?} names no user"));
    }
    Ok((user.to_owned(), kind))
}

/// Builds the room over `store`, loading the configured policy set (an
/// invalid set refuses the start, naming the file and position).
pub fn build(
    settings: &Settings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> Result<Governance, String> {
    let g = settings_for(settings).map_err(|e| e.to_string())?;
    Governance::new(g, store, clock).map_err(|e| e.to_string())
}

/// The host of a metadata-document `client_id`, as the domain lists
/// compare it (lowercase).
pub fn client_id_host(client_id: &str) -> Option<String> {
    url::Url::parse(client_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
}

/// Is this metadata-document host refused outright by the domain lists
/// (denied, or missing from a non-empty allow list)? Checked before any
/// DNS lookup or fetch (issue 13 item 6).
pub fn host_refused(governance: &Governance, host: &str) -> bool {
    matches!(
        governance.check_host(host),
        DomainStatus::Denied | DomainStatus::NotAllowed
    )
}

/// The policy's view of the user `user_id` (`None` when there is no such
/// user), read once per node: ids and usernames never change.
pub async fn user_context(
    state: &crate::state::AppState,
    user_id: &str,
) -> Result<Option<UserContext>, steward_store::StoreError> {
    if let Some(username) = state.oauth.usernames.get(user_id) {
        return Ok(Some(UserContext {
            id: user_id.to_owned(),
            username,
        }));
    }
    let Some(u) = state.store.get_user(user_id).await? else {
        return Ok(None);
    };
    state.oauth.usernames.insert(u.id.clone(), u.username.clone());
    Ok(Some(UserContext {
        id: u.id,
        username: u.username,
    }))
}

/// A client's governance view with the facts derived from it, as one node
/// holds it between requests (see `oauth::OAuth::views`): deriving the
/// facts parses the client's document, so it is done once per revision.
#[derive(Debug)]
pub struct HeldView {
    pub view: ClientView,
    pub facts: ClientFacts,
}

impl HeldView {
    pub fn new(view: ClientView) -> Self {
        Self {
            facts: ClientFacts::derive(&view),
            view,
        }
    }
}

/// What the room decided for one protocol request, in the protocol's terms.
pub enum Outcome {
    /// These scopes (possibly fewer than asked: OAuth 2.1 §3.2.3 lets the
    /// server grant less, and the response says what was granted).
    Granted(ScopeSet),
    /// Some asked-for scopes need an approver's decision.
    NeedsApproval { granted: ScopeSet, needed: Vec<String> },
}

/// One question at a protocol endpoint.
pub struct Ask<'a> {
    pub client_id: &'a str,
    /// The client's view as read with its record during this request;
    /// `None`: read it now.
    pub view: Option<&'a HeldView>,
    pub action: Action,
    pub resource: &'a str,
    pub scopes: &'a ScopeSet,
    pub user: Option<&'a UserContext>,
    pub address: Option<IpAddr>,
}

/// Asks the room. A request whose every scope is refused is
/// `invalid_scope`; a policy that fails to evaluate refuses (fail closed),
/// is logged and counted in `steward_policy_errors_total`.
pub async fn ask(governance: &Governance, q: &Ask<'_>) -> Result<Outcome, OAuthError> {
    let scopes: Vec<String> = q.scopes.iter().map(str::to_owned).collect();
    let req = DecideRequest {
        client_id: q.client_id,
        action: q.action,
        resource: q.resource,
        scopes: &scopes,
        user: q.user,
        address: q.address,
        facts: q.view.map(|h| &h.facts),
    };
    let decision = match q.view {
        Some(held) => governance.decide_for(&held.view, &req),
        None => governance.decide(&req).await,
    }
    .map_err(|e| {
        tracing::error!(error = %e, client_id = q.client_id, "governance decision failed");
        OAuthError::server_error()
    })?;
    outcome(q, &decision)
}

fn outcome(q: &Ask<'_>, d: &Decision) -> Result<Outcome, OAuthError> {
    if !d.policy_errors.is_empty() {
        metrics::counter!("steward_policy_errors_total").increment(d.policy_errors.len() as u64);
        for f in &d.policy_errors {
            tracing::error!(client_id = q.client_id, failure = ?f, "a policy failed to evaluate: refused");
        }
    }
    for r in &d.refused {
        metrics::counter!("steward_policy_refusals_total", "action" => q.action.as_str(), "reason" => reason_label(r.reason))
            .increment(1);
    }
    let granted = ScopeSet::from_tokens(d.granted.iter().cloned()).map_err(|_| OAuthError::server_error())?;
    if let Some(a) = &d.approval
        && !a.scopes.is_empty()
    {
        return Ok(Outcome::NeedsApproval {
            granted,
            needed: a.scopes.clone(),
        });
    }
    if !q.scopes.is_empty() && granted.is_empty() {
        tracing::warn!(
            client_id = q.client_id,
            action = q.action.as_str(),
            refused = ?d.refused.iter().map(|r| (&r.scope, reason_label(r.reason))).collect::<Vec<_>>(),
            "policy denial"
        );
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "the authorization server's policy grants none of the requested scopes to this client",
        ));
    }
    Ok(Outcome::Granted(granted))
}

fn reason_label(r: RefusalReason) -> &'static str {
    match r {
        RefusalReason::Forbidden => "forbidden",
        RefusalReason::NotPermitted => "not_permitted",
        RefusalReason::NeedsApproval => "needs_approval",
        RefusalReason::PolicyError => "policy_error",
        RefusalReason::UnknownScope => "unknown_scope",
        RefusalReason::BeyondCeiling => "beyond_ceiling",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ResourceSettings;

    #[test]
    fn self_service_defaults_to_the_resources_default_scopes() {
        let mut s = Settings {
            default_scopes: vec!["read".into(), "other".into()],
            ..Settings::default()
        };
        s.resources.push(ResourceSettings {
            uri: "https://mcp.example/mcp".into(),
            name: "m".into(),
            scopes: [
                ("read".to_owned(), "r".to_owned()),
                ("write".to_owned(), "w".to_owned()),
            ]
            .into(),
            ..Default::default()
        });
        let g = settings_for(&s).unwrap();
        assert_eq!(g.resources[0].self_service_scopes, vec!["read".to_owned()]);
        s.resources[0].self_service_scopes = Some(vec!["nope".into()]);
        assert_eq!(settings_for(&s).unwrap_err().key, "resources.self_service_scopes");
    }

    #[test]
    fn without_resources_the_issuer_is_the_resource_and_default_scopes_are_self_service() {
        let s = Settings {
            default_scopes: vec!["mcp".into()],
            ..Settings::default()
        };
        let g = settings_for(&s).unwrap();
        assert_eq!(g.resources.len(), 1);
        assert_eq!(g.resources[0].uri, s.effective_issuer());
        assert_eq!(g.resources[0].self_service_scopes, vec!["mcp".to_owned()]);
    }

    #[test]
    fn bad_governance_settings_name_their_key() {
        let mut s = Settings::default();
        s.governance.owners_required = "sometimes".into();
        assert_eq!(settings_for(&s).unwrap_err().key, "governance.owners_required");
        let mut s = Settings::default();
        s.governance.domains.deny = vec!["*.".into()];
        assert_eq!(settings_for(&s).unwrap_err().key, "governance.domains");
        let mut s = Settings::default();
        s.clients.push(crate::settings::ClientSettings {
            client_id: "x".into(),
            owners: vec!["alice:boss".into()],
            ..Default::default()
        });
        assert_eq!(settings_for(&s).unwrap_err().key, "clients.owners");
    }

    #[test]
    fn owners_parse_as_user_and_kind() {
        assert_eq!(
            parse_owner("alice:business").unwrap(),
            ("alice".into(), OwnerKind::Business)
        );
        assert_eq!(
            parse_owner("bob:technical").unwrap(),
            ("bob".into(), OwnerKind::Technical)
        );
        assert!(parse_owner("bob").is_err());
        assert!(parse_owner(":technical").is_err());
    }
}
