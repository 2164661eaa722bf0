//! The `register` action (issue 14 §1): which scopes a client being
//! registered may hold. Identity is not trust: what a dynamically
//! registered client *says* it needs is a claim, and the policy decides
//! what it may ever ask for — its scope ceiling. Scopes still need the
//! `authorize` decision at every request; a ceiling scope that needs an
//! approval is kept, so an approver can grant it later without the client
//! registering again.

use crate::model::{ClientView, Ownership};
use crate::policy::{Action, RefusalReason};
use crate::service::{DecideRequest, Governance};
use crate::{ClientFacts, GovernanceError};
use std::net::IpAddr;
use steward_core::{ClientKind, LifecycleState, TrustTier, UnixTime};

/// The outcome for a registration's requested scopes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrableScopes {
    /// The ceiling to register, in the order first met.
    pub accepted: Vec<String>,
    /// Requested scopes left out, with why.
    pub dropped: Vec<(String, RefusalReason)>,
    /// The policies that dropped them.
    pub policy_ids: Vec<String>,
}

/// What the `register` action judges for a new registration: a `dynamic`
/// client that does not exist yet — `active`, its tier from what backed it
/// (an initial access token's, or `unverified`), no owners, no approvals —
/// whose facts are derived from its registration document.
pub fn new_registration(client_id: &str, tier: TrustTier, registration: &str, now: UnixTime) -> ClientView {
    ClientView {
        client_id: client_id.to_owned(),
        kind: ClientKind::Dynamic,
        state: LifecycleState::Active,
        tier,
        display_name: None,
        registration: registration.to_owned(),
        metadata_document: None,
        metadata_digest: None,
        first_seen: now,
        last_seen: now,
        ownership: Ownership::default(),
        approvals: Vec::new(),
        revision: 0,
    }
}

/// What the `register` action judges for an update (RFC 7592 §2.2): the
/// stored client — its state, tier, owners and approvals — with the new
/// registration as its latest document, so its facts and digest are the
/// new one's (an approval bound to the old digest no longer counts).
pub fn updated_registration(mut view: ClientView, registration: String) -> ClientView {
    view.metadata_document = Some(registration.clone());
    view.metadata_digest = None;
    view.registration = registration;
    view
}

impl Governance {
    /// Decides the scope ceiling of `candidate` (a client not stored yet, or
    /// one re-registering), asked with its registration document.
    ///
    /// `requested: None` — the request named no `scope` — is the set of
    /// every resource's self-service scopes the policy grants, never
    /// "everything". Named scopes are kept when the policy grants them or an
    /// approval would; a scope no resource defines, or one a policy forbids,
    /// is dropped (RFC 7591 §3.2.1 lets the server replace requested metadata).
    ///
    /// `ceiling` is what backs the registration allows at most (a trusted
    /// software-statement issuer's scopes): a scope outside it is dropped as
    /// `beyond_ceiling` before the policy is asked — the policy can narrow a
    /// backer's grant, never widen it.
    pub fn registrable_scopes(
        &self,
        candidate: &ClientView,
        requested: Option<&[String]>,
        ceiling: Option<&[String]>,
        address: Option<IpAddr>,
    ) -> Result<RegistrableScopes, GovernanceError> {
        let facts = ClientFacts::derive(candidate);
        let mut out = RegistrableScopes::default();
        let mut defined: Vec<String> = Vec::new();
        let within = |s: &String| ceiling.is_none_or(|c| c.contains(s));
        if let (Some(req), Some(_)) = (requested, ceiling) {
            for s in req.iter().filter(|s| !within(s)) {
                out.dropped.push((s.clone(), RefusalReason::BeyondCeiling));
                defined.push(s.clone());
            }
        }
        for resource in &self.settings().resources {
            let ask: Vec<String> = match requested {
                None => resource
                    .self_service_scopes
                    .iter()
                    .filter(|s| within(s))
                    .cloned()
                    .collect(),
                Some(req) => req
                    .iter()
                    .filter(|s| resource.scopes.is_empty() || resource.scopes.contains(s))
                    .filter(|s| within(s))
                    .cloned()
                    .collect(),
            };
            if ask.is_empty() {
                continue;
            }
            defined.extend(ask.iter().cloned());
            let decision = self.decide_for(
                candidate,
                &DecideRequest {
                    client_id: &candidate.client_id,
                    action: Action::Register,
                    resource: &resource.uri,
                    scopes: &ask,
                    user: None,
                    address,
                    facts: Some(&facts),
                },
            )?;
            let keep_pending = requested.is_some();
            for s in &decision.granted {
                push_unique(&mut out.accepted, s);
            }
            for r in &decision.refused {
                if keep_pending && r.reason == RefusalReason::NeedsApproval {
                    push_unique(&mut out.accepted, &r.scope);
                } else {
                    out.dropped.push((r.scope.clone(), r.reason));
                    for p in &r.policy_ids {
                        push_unique(&mut out.policy_ids, p);
                    }
                }
            }
        }
        if let Some(req) = requested {
            for s in req {
                if !defined.contains(s) {
                    out.dropped.push((s.clone(), RefusalReason::UnknownScope));
                }
            }
        }
        // A scope granted on one resource is not dropped for another.
        out.dropped.retain(|(s, _)| !out.accepted.contains(s));
        out.dropped.dedup();
        Ok(out)
    }
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_owned());
    }
}
