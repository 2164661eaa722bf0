//! Policy above identity, in Cedar (issue 13 §5).
//!
//! A valid `client_id` proves control of a URL, nothing more; what the
//! client may *get* is decided here, at every authorize, code redemption,
//! refresh, client_credentials and registration, per requested (resource,
//! scope). Nothing is cached across requests: a reload or a state change
//! takes effect at the very next one.
//!
//! Failure is closed: a policy that errors while evaluating refuses the
//! scope it was evaluated for (Cedar itself would skip an erroring policy,
//! which for a `forbid` would grant what the operator meant to forbid), and
//! the failure is reported in the decision so the caller logs and counts it.

mod entities;
pub mod load;

pub use load::{
    DEFAULT_POLICIES, LoadedPolicies, PolicyConfig, PolicyDiagnostic, PolicyError, PolicySource, SCHEMA_TEXT,
};

use crate::domains::DomainStatus;
use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision as CedarDecision, Entities, Request, Schema,
};
use entities::Names;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use steward_core::client::UnknownVariant;
use steward_core::{ClientKind, LifecycleState, TrustTier, UnixTime};

/// The protocol moments at which Steward asks the policy (Cedar actions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `GET /authorize`: a user is present.
    Authorize,
    /// `POST /token` with `authorization_code`.
    RedeemCode,
    /// `POST /token` with `refresh_token`.
    Refresh,
    /// `POST /token` with `client_credentials`.
    ClientCredentials,
    /// RFC 7591 registration (the scopes a client registers for).
    Register,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Self::Authorize,
        Self::RedeemCode,
        Self::Refresh,
        Self::ClientCredentials,
        Self::Register,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::RedeemCode => "redeem_code",
            Self::Refresh => "refresh",
            Self::ClientCredentials => "client_credentials",
            Self::Register => "register",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|a| a.as_str() == s)
            .copied()
            .ok_or_else(|| UnknownVariant(s.to_owned()))
    }
}

/// A protected resource as configured (`[[resources]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfo {
    pub uri: String,
    /// Every scope the resource defines; a scope outside it is refused as
    /// unknown. Empty: the resource does not enumerate its scopes.
    pub scopes: Vec<String>,
    /// What an unknown client may get without approval.
    pub self_service_scopes: Vec<String>,
}

/// Whether the client has an approval for this resource that counts now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStanding {
    /// No approval for this resource.
    None,
    /// At least one approval bound to the current digest and not expired.
    Current,
    /// Approvals exist, but for another digest or expired.
    Stale,
}

impl ApprovalStanding {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Current => "current",
            Self::Stale => "stale",
        }
    }
}

/// The client's attributes as the policy sees them (entity `Client`).
/// Built by [`crate::Governance`] from the stored view and the request's
/// facts; see docs/policy.md for each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientAttributes {
    pub client_id: String,
    pub kind: ClientKind,
    pub state: LifecycleState,
    pub tier: TrustTier,
    pub host: Option<String>,
    pub organization: Option<String>,
    /// Owners' usernames.
    pub owners: Vec<String>,
    /// A business and a technical owner.
    pub owned: bool,
    pub owners_required: bool,
    /// Declared by a `[[clients]]` entry.
    pub declared: bool,
    /// `client_uri` is same-origin with the `client_id` URL.
    pub same_origin: bool,
    /// Every redirect URI is loopback.
    pub loopback_only: bool,
    pub age_days: i64,
    pub domain_status: DomainStatus,
    /// Scopes approved for this resource on the current digest, unexpired.
    pub approved_scopes: Vec<String>,
    pub approval: ApprovalStanding,
    /// The digest of the metadata version this decision is about; an
    /// approval asked for now is bound to it.
    pub digest: Option<String>,
}

/// The signed-in user, when there is one (authorize).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserContext {
    pub id: String,
    pub username: String,
}

/// One question to the policy.
#[derive(Clone, Debug)]
pub struct DecisionInput<'a> {
    pub client: &'a ClientAttributes,
    pub action: Action,
    pub resource: &'a ResourceInfo,
    pub scopes: &'a [String],
    pub user: Option<&'a UserContext>,
    /// The address the request came from.
    pub address: Option<IpAddr>,
    pub now: UnixTime,
}

/// Why a scope was not granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// A `forbid` policy matched.
    Forbidden,
    /// No policy permits it, and no approval would.
    NotPermitted,
    /// No policy permits it now, but an approval would.
    NeedsApproval,
    /// A policy failed to evaluate: refused, fail closed.
    PolicyError,
    /// The resource does not define this scope.
    UnknownScope,
    /// Outside the ceiling of what backs a registration (a trusted
    /// software-statement issuer's `scopes`).
    BeyondCeiling,
}

impl RefusalReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::NotPermitted => "not_permitted",
            Self::NeedsApproval => "needs_approval",
            Self::PolicyError => "policy_error",
            Self::UnknownScope => "unknown_scope",
            Self::BeyondCeiling => "beyond_ceiling",
        }
    }
}

/// One refused scope, with the policies that refused it (the `forbid`s that
/// matched; for `needs_approval`, the policies an approval would satisfy;
/// for `policy_error`, the policies that failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub scope: String,
    pub reason: RefusalReason,
    pub policy_ids: Vec<String>,
}

/// An approval would grant `scopes`; it must be bound to `against`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalNeeded {
    pub scopes: Vec<String>,
    pub against: Option<String>,
}

/// A policy that failed to evaluate (the caller logs and counts it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFailure {
    pub scope: String,
    /// Empty when the request could not even be put to the policy.
    pub policy_id: String,
    pub message: String,
}

/// The answer every door obeys (GOVERNANCE.md "The question every door asks").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Scopes the client may have now, in the order asked.
    pub granted: Vec<String>,
    pub refused: Vec<Refusal>,
    pub approval: Option<ApprovalNeeded>,
    pub policy_errors: Vec<PolicyFailure>,
}

impl Decision {
    pub fn is_granted(&self, scope: &str) -> bool {
        self.granted.iter().any(|s| s == scope)
    }

    pub fn refusal(&self, scope: &str) -> Option<&Refusal> {
        self.refused.iter().find(|r| r.scope == scope)
    }
}

/// How one scope was decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeTrace {
    pub scope: String,
    pub granted: bool,
    /// Refused: why.
    pub reason: Option<RefusalReason>,
    /// The policies that made the decision (permits for a grant).
    pub policy_ids: Vec<String>,
}

/// `steward policy explain`: the decision and the policies behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub decision: Decision,
    pub scopes: Vec<ScopeTrace>,
    /// Policy id -> the source (file) it came from, for every id named above.
    pub origins: Vec<(String, String)>,
}

/// One client whose access a candidate policy set would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpactRow {
    pub client_id: String,
    pub resource: String,
    pub action: Action,
    pub gained: Vec<String>,
    pub lost: Vec<String>,
}

/// Decisions of one policy set by their exact input. Keyed by the input's
/// full serialization and compared whole (no hash stands in for equality,
/// so two inputs can never share an answer). Bounded: when full it is
/// emptied; entries of past seconds can never match again anyway, since
/// `now` is part of the key.
#[derive(Debug, Default)]
pub(crate) struct DecisionMemo {
    map: std::sync::Mutex<std::collections::HashMap<String, Decision>>,
}

const MEMO_CAPACITY: usize = 4096;

impl DecisionMemo {
    fn key(input: &DecisionInput<'_>) -> Option<String> {
        serde_json::to_string(&(
            input.action,
            input.client,
            input.resource,
            input.scopes,
            input.user,
            input.address,
            input.now.0,
        ))
        .ok()
    }

    fn get(&self, key: &str) -> Option<Decision> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: String, decision: &Decision) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MEMO_CAPACITY {
            map.clear();
        }
        map.insert(key, decision.clone());
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The policy engine: the schema, the running set (swapped whole on a
/// successful reload), and the evaluator.
#[derive(Debug)]
pub struct PolicyEngine {
    schema: Schema,
    running: RwLock<Arc<LoadedPolicies>>,
    authorizer: Authorizer,
    names: Names,
}

struct Evaluated {
    granted: bool,
    policy_ids: Vec<String>,
    failures: Vec<PolicyFailure>,
    forbidden: bool,
}

impl PolicyEngine {
    /// An engine running `sources` (validated).
    pub fn new(sources: Vec<PolicySource>) -> Result<Self, PolicyError> {
        let schema = load::schema()?;
        let loaded = load::load(&schema, sources)?;
        Ok(Self {
            names: Names::new().map_err(PolicyError::Schema)?,
            schema,
            running: RwLock::new(Arc::new(loaded)),
            authorizer: Authorizer::new(),
        })
    }

    /// An engine running only the default set.
    pub fn with_default_set() -> Result<Self, PolicyError> {
        Self::new(vec![PolicySource::default_set()])
    }

    /// The default set's text (`steward policy show-default`).
    pub fn show_default() -> &'static str {
        DEFAULT_POLICIES
    }

    /// Validates `sources` against the schema without touching the running
    /// set (`steward policy check`, and the candidate of `impact`).
    pub fn check(&self, sources: Vec<PolicySource>) -> Result<LoadedPolicies, PolicyError> {
        load::load(&self.schema, sources)
    }

    /// Replaces the running set with `sources` if they are valid. An invalid
    /// set is refused with its error and the running one stays.
    pub fn reload(&self, sources: Vec<PolicySource>) -> Result<Arc<LoadedPolicies>, PolicyError> {
        let loaded = Arc::new(self.check(sources)?);
        let mut guard = self.running.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::clone(&loaded);
        Ok(loaded)
    }

    /// The set deciding now.
    pub fn running(&self) -> Arc<LoadedPolicies> {
        Arc::clone(&self.running.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Decides with the running set. A decision is a pure function of the
    /// set and the whole input (client attributes, action, resource, scopes,
    /// user, address and `now` to the second), so the set remembers the
    /// decisions it made by that input: the token endpoint asks the same
    /// question for the same client many times a second, and evaluating
    /// Cedar costs tens of microseconds where the lookup costs one or two.
    pub fn decide(&self, input: &DecisionInput<'_>) -> Decision {
        let set = self.running();
        let key = DecisionMemo::key(input);
        if let Some(d) = key.as_deref().and_then(|k| set.memo.get(k)) {
            return d;
        }
        let decision = self.decide_with(&set, input).0;
        if let Some(k) = key {
            set.memo.put(k, &decision);
        }
        decision
    }

    /// Decides and says which policies made the decision.
    pub fn explain(&self, input: &DecisionInput<'_>) -> Explanation {
        let set = self.running();
        let (decision, scopes) = self.decide_with(&set, input);
        let mut origins: Vec<(String, String)> = scopes
            .iter()
            .flat_map(|t| t.policy_ids.iter())
            .chain(decision.refused.iter().flat_map(|r| r.policy_ids.iter()))
            .filter_map(|id| set.origin_of(id).map(|o| (id.clone(), o.to_owned())))
            .collect();
        origins.sort();
        origins.dedup();
        Explanation {
            decision,
            scopes,
            origins,
        }
    }

    /// Which grants `candidate` would change for `subjects` against the
    /// running set: each subject is decided twice, per action in `actions`,
    /// for every scope of its resource (or the scopes it lists).
    pub fn impact(
        &self,
        candidate: &LoadedPolicies,
        subjects: &[DecisionInput<'_>],
        actions: &[Action],
    ) -> Vec<ImpactRow> {
        let running = self.running();
        let mut rows = Vec::new();
        for s in subjects {
            for a in actions {
                let input = DecisionInput {
                    action: *a,
                    ..s.clone()
                };
                let before = self.decide_with(&running, &input).0.granted;
                let after = self.decide_with(candidate, &input).0.granted;
                let gained: Vec<String> = after.iter().filter(|x| !before.contains(x)).cloned().collect();
                let lost: Vec<String> = before.iter().filter(|x| !after.contains(x)).cloned().collect();
                if !gained.is_empty() || !lost.is_empty() {
                    rows.push(ImpactRow {
                        client_id: s.client.client_id.clone(),
                        resource: s.resource.uri.clone(),
                        action: *a,
                        gained,
                        lost,
                    });
                }
            }
        }
        rows
    }

    fn evaluate(
        &self,
        set: &LoadedPolicies,
        entities: &Entities,
        context: &Context,
        input: &DecisionInput<'_>,
        scope: &str,
    ) -> Evaluated {
        let fail = |message: String| Evaluated {
            granted: false,
            policy_ids: Vec::new(),
            failures: vec![PolicyFailure {
                scope: scope.to_owned(),
                policy_id: String::new(),
                message,
            }],
            forbidden: false,
        };
        let Some(action) = self.names.action(input.action) else {
            return fail(format!("action {} is not in the schema", input.action));
        };
        let request = match Request::new(
            self.names.client_uid(&input.client.client_id),
            action.clone(),
            self.names.scope_uid(&input.resource.uri, scope),
            context.clone(),
            None,
        ) {
            Ok(r) => r,
            Err(e) => return fail(e.to_string()),
        };
        let response = self.authorizer.is_authorized(&request, &set.set, entities);
        let failures: Vec<PolicyFailure> = response
            .diagnostics()
            .errors()
            .map(|e| PolicyFailure {
                scope: scope.to_owned(),
                policy_id: match e {
                    AuthorizationError::PolicyEvaluationError(p) => p.policy_id().to_string(),
                },
                message: e.to_string(),
            })
            .collect();
        let mut policy_ids: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
        policy_ids.sort();
        let allow = response.decision() == CedarDecision::Allow;
        Evaluated {
            granted: allow && failures.is_empty(),
            forbidden: !allow && !policy_ids.is_empty(),
            policy_ids,
            failures,
        }
    }

    /// The decision and its per-scope trace, with `set`.
    pub fn decide_with(
        &self,
        set: &LoadedPolicies,
        input: &DecisionInput<'_>,
    ) -> (Decision, Vec<ScopeTrace>) {
        let mut decision = Decision::default();
        let mut traces: Vec<ScopeTrace> = Vec::with_capacity(input.scopes.len());
        let mut asked: Vec<&str> = Vec::with_capacity(input.scopes.len());
        for s in input.scopes {
            if !asked.contains(&s.as_str()) {
                asked.push(s);
            }
        }
        let r = input.resource;
        let (known, unknown): (Vec<&str>, Vec<&str>) = asked
            .iter()
            .partition(|s| r.scopes.is_empty() || r.scopes.iter().any(|x| x == *s));
        for s in &unknown {
            refuse(
                &mut decision,
                &mut traces,
                s,
                RefusalReason::UnknownScope,
                Vec::new(),
            );
        }
        if known.is_empty() {
            return (decision, traces);
        }
        let (entities, context) = match entities::build(&self.names, input, input.client, &known) {
            Ok(x) => x,
            Err(message) => {
                for s in &known {
                    decision.policy_errors.push(PolicyFailure {
                        scope: (*s).to_owned(),
                        policy_id: String::new(),
                        message: message.clone(),
                    });
                    refuse(
                        &mut decision,
                        &mut traces,
                        s,
                        RefusalReason::PolicyError,
                        Vec::new(),
                    );
                }
                return (decision, traces);
            }
        };
        let mut denied: Vec<(&str, Evaluated)> = Vec::new();
        for s in &known {
            let e = self.evaluate(set, &entities, &context, input, s);
            if e.granted {
                decision.granted.push((*s).to_owned());
                traces.push(ScopeTrace {
                    scope: (*s).to_owned(),
                    granted: true,
                    reason: None,
                    policy_ids: e.policy_ids,
                });
            } else if !e.failures.is_empty() {
                let ids = e.failures.iter().map(|f| f.policy_id.clone()).collect();
                decision.policy_errors.extend(e.failures);
                refuse(&mut decision, &mut traces, s, RefusalReason::PolicyError, ids);
            } else {
                denied.push((s, e));
            }
        }
        let approvable = self.approvable(set, input, &denied);
        let mut needs = Vec::new();
        for (s, e) in denied {
            if let Some(ids) = approvable
                .iter()
                .find(|(x, _)| *x == s)
                .map(|(_, ids)| ids.clone())
            {
                needs.push(s.to_owned());
                refuse(&mut decision, &mut traces, s, RefusalReason::NeedsApproval, ids);
            } else if e.forbidden {
                refuse(
                    &mut decision,
                    &mut traces,
                    s,
                    RefusalReason::Forbidden,
                    e.policy_ids,
                );
            } else {
                refuse(
                    &mut decision,
                    &mut traces,
                    s,
                    RefusalReason::NotPermitted,
                    Vec::new(),
                );
            }
        }
        if !needs.is_empty() {
            decision.approval = Some(ApprovalNeeded {
                scopes: needs,
                against: input.client.digest.clone(),
            });
        }
        (decision, traces)
    }

    /// The refused scopes an approval would grant, with the policies that
    /// would then permit them: decides again as if the client held an
    /// approval for them on the current digest (and, pending, were made
    /// active by it, as approving a pending client's request does). A
    /// suspended, revoked or expired client cannot be approved into access.
    fn approvable(
        &self,
        set: &LoadedPolicies,
        input: &DecisionInput<'_>,
        denied: &[(&str, Evaluated)],
    ) -> Vec<(String, Vec<String>)> {
        let c = input.client;
        if denied.is_empty() || !c.state.in_use() {
            return Vec::new();
        }
        let mut hypothetical = c.clone();
        hypothetical.state = LifecycleState::Active;
        hypothetical.approval = ApprovalStanding::Current;
        for (s, _) in denied {
            if !hypothetical.approved_scopes.iter().any(|x| x == s) {
                hypothetical.approved_scopes.push((*s).to_owned());
            }
        }
        let scopes: Vec<&str> = denied.iter().map(|(s, _)| *s).collect();
        let Ok((entities, context)) = entities::build(&self.names, input, &hypothetical, &scopes) else {
            return Vec::new();
        };
        let input = DecisionInput {
            client: &hypothetical,
            ..input.clone()
        };
        scopes
            .iter()
            .filter_map(|s| {
                let e = self.evaluate(set, &entities, &context, &input, s);
                e.granted.then(|| ((*s).to_owned(), e.policy_ids))
            })
            .collect()
    }
}

fn refuse(
    decision: &mut Decision,
    traces: &mut Vec<ScopeTrace>,
    scope: &str,
    reason: RefusalReason,
    policy_ids: Vec<String>,
) {
    decision.refused.push(Refusal {
        scope: scope.to_owned(),
        reason,
        policy_ids: policy_ids.clone(),
    });
    traces.push(ScopeTrace {
        scope: scope.to_owned(),
        granted: false,
        reason: Some(reason),
        policy_ids,
    });
}

#[cfg(test)]
mod tests;
