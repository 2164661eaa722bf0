//! The nouns of governance: who may act (roles, owners), what they act on
//! (access requests, approvals, the client's governance view) and the audit
//! event every state change writes in the same transaction as the change.
//!
//! These are the types the storage port ([`crate::port::GovernanceStore`])
//! reads and writes; the rules that use them live in their own modules.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use steward_core::client::UnknownVariant;
use steward_core::{ClientKind, LifecycleState, TrustTier, UnixTime};

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$t] = &[$(Self::$v),+];

            /// The stored and displayed form.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(UnknownVariant(other.to_owned())),
                }
            }
        }
    };
}

/// What a Steward user may do beyond signing in (GOVERNANCE.md "Roles").
/// Ownership of a client is not a role: it is per client ([`Owner`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the server: keys, domain lists, policy files; may suspend,
    /// resume and revoke clients and assign owners.
    Operator,
    /// The platform team that decides trust: approves and denies access
    /// requests (never their own, never for a client they own), suspends,
    /// resumes, revokes, assigns owners.
    Approver,
    /// Read-only: inventory and audit.
    Auditor,
}
str_enum!(Role { Operator => "operator", Approver => "approver", Auditor => "auditor" });

/// The two kinds of accountability a client needs: a business owner (the
/// sponsor who answers for why it exists) and a technical owner (who
/// answers for how it behaves).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    Business,
    Technical,
}
str_enum!(OwnerKind { Business => "business", Technical => "technical" });

/// One named person accountable for a client. A user may hold both kinds
/// for the same client (two entries).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    pub user_id: String,
    pub username: String,
    pub kind: OwnerKind,
}

/// Who answers for a client. `owners` are in the order they were added: on
/// succession the first remaining owner of a kind is the next one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    pub organization: Option<String>,
    /// An address for incidents (mail or URL); free text.
    pub contact: Option<String>,
    pub owners: Vec<Owner>,
}

impl Ownership {
    /// Owners of one kind, in succession order.
    pub fn of_kind(&self, kind: OwnerKind) -> impl Iterator<Item = &Owner> {
        self.owners.iter().filter(move |o| o.kind == kind)
    }

    /// Whether `user_id` owns the client in any capacity.
    pub fn is_owner(&self, user_id: &str) -> bool {
        self.owners.iter().any(|o| o.user_id == user_id)
    }

    /// At least one business and one technical owner (issue 13 §3).
    pub fn is_complete(&self) -> bool {
        self.of_kind(OwnerKind::Business).next().is_some()
            && self.of_kind(OwnerKind::Technical).next().is_some()
    }
}

/// A Steward user as governance sees them: identity, whether they may still
/// act, and their roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernanceUser {
    pub id: String,
    pub username: String,
    pub disabled: bool,
    pub roles: Vec<Role>,
}

impl GovernanceUser {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Who made a change: a signed-in person, or the system (for a cause).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The person's user id; `None` for the system.
    pub user_id: Option<String>,
    /// The person's username, or `system:<cause>`.
    pub username: String,
}

impl Actor {
    pub fn user(user: &GovernanceUser) -> Self {
        Self {
            user_id: Some(user.id.clone()),
            username: user.username.clone(),
        }
    }

    /// The system acting for `cause` (policy, drift, sweep, request_expiry,
    /// succession).
    pub fn system(cause: &str) -> Self {
        Self {
            user_id: None,
            username: system_actor(cause),
        }
    }
}

/// Where an access request stands. Only `Pending` may be decided; the
/// others are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
    /// Nobody decided before `expires_at`.
    Expired,
}
str_enum!(RequestState { Pending => "pending", Approved => "approved", Denied => "denied", Expired => "expired" });

/// A user's request that a client be given scopes the policy will not give
/// it on its own (issue 13 §7). Bound to the metadata digest it was made
/// against, so an approver decides on the document the user saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: String,
    pub client_id: String,
    /// The resource (RFC 8707 indicator) the scopes are for.
    pub resource: String,
    pub scopes: Vec<String>,
    /// The requesting user's id.
    pub requested_by: String,
    /// The requesting user's username (people are shown by username).
    pub requested_by_name: String,
    pub justification: String,
    /// Digest of the metadata version the request was made against.
    pub metadata_digest: Option<String>,
    pub state: RequestState,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub decided_by: Option<String>,
    pub decided_by_name: Option<String>,
    pub decided_at: Option<UnixTime>,
    pub decision_justification: Option<String>,
    /// What the approver granted (a subset of `scopes`); empty unless approved.
    pub granted_scopes: Vec<String>,
    /// When the resulting approval lapses, if the approver set an end.
    pub approval_expires_at: Option<UnixTime>,
}

/// Standing permission for a client to get `scopes` on `resource`, granted
/// on the metadata version whose digest is `metadata_digest`. A changed
/// document is a different client as far as an approval goes: the approval
/// does not carry over to another digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub client_id: String,
    pub resource: String,
    pub scopes: Vec<String>,
    pub metadata_digest: Option<String>,
    /// The approver's user id.
    pub approved_by: String,
    pub approved_at: UnixTime,
    pub expires_at: Option<UnixTime>,
    /// The access request it answered, if any.
    pub request_id: Option<String>,
    /// The approver requested it or owns the client, and the installation
    /// allows that (`governance.allow_self_approval`).
    pub self_approved: bool,
}

impl Approval {
    /// Whether this approval grants anything now for `resource` on the
    /// document whose digest is `digest`: same resource, exactly the same
    /// digest, not expired.
    pub fn is_valid_for(&self, resource: &str, digest: Option<&str>, now: UnixTime) -> bool {
        self.resource == resource
            && self.metadata_digest.as_deref() == digest
            && self.expires_at.is_none_or(|t| now < t)
    }
}

/// Everything governance needs to know about one client, read in one go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientView {
    pub client_id: String,
    pub kind: ClientKind,
    pub state: LifecycleState,
    pub tier: TrustTier,
    pub display_name: Option<String>,
    /// Registration data as stored (JSON text; `{}` for metadata documents).
    pub registration: String,
    /// The latest stored metadata document body (metadata-document clients).
    pub metadata_document: Option<String>,
    /// Content hash of the latest stored metadata version (metadata-document
    /// clients); `None` for the others, whose digest is that of `registration`.
    pub metadata_digest: Option<String>,
    pub first_seen: UnixTime,
    pub last_seen: UnixTime,
    pub ownership: Ownership,
    /// Every approval of the client, valid or not; the decision filters.
    pub approvals: Vec<Approval>,
    /// The client's governance revision when this view was read. Every
    /// write that could change the view moves it (the store's triggers), so
    /// a node may reuse a view while the revision it reads with the client's
    /// row is the same.
    #[serde(default)]
    pub revision: i64,
}

/// Which access requests to list; `None` fields do not filter. Rows come
/// newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub state: Option<RequestState>,
    pub client_id: Option<String>,
}

/// What an approver or a sweep decided about a pending request.
#[derive(Clone, Debug, PartialEq, Eq)]
// One value per decision, passed by reference to the store and never kept in
// bulk: boxing the approval would buy nothing and change the port's shape.
#[allow(clippy::large_enum_variant)]
pub enum RequestDecision {
    /// Grant: store the approval, add `assign_owners` (skipping any the
    /// client already has), and, when `activate_pending` is set and the
    /// client is `pending`, make it `active` — all with the request's change.
    Approve {
        approval: Approval,
        assign_owners: Vec<Owner>,
        activate_pending: bool,
    },
    Deny,
    /// Nobody decided in time (a sweep; `decided_by` is the system).
    Expire,
}

impl RequestDecision {
    /// The request state this decision leads to.
    pub fn resulting_state(&self) -> RequestState {
        match self {
            Self::Approve { .. } => RequestState::Approved,
            Self::Deny => RequestState::Denied,
            Self::Expire => RequestState::Expired,
        }
    }
}

/// What a governance audit event records (issue 13 §8). The string forms are
/// the audit trail's `action` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GovernanceAction {
    ClientActivated,
    ClientPending,
    ClientSuspended,
    ClientResumed,
    ClientRevoked,
    ClientExpired,
    OwnerAdded,
    OwnerRemoved,
    /// An owner's account was disabled or deleted; the next owner of the
    /// same kind answers now.
    OwnerSucceeded,
    /// An owner's account was disabled or deleted and no owner of that kind
    /// is left.
    ClientOrphaned,
    OrganizationSet,
    ContactSet,
    RolesSet,
    RequestOpened,
    RequestApproved,
    RequestDenied,
    RequestExpired,
    PolicyReloaded,
    PolicyReloadRefused,
}
str_enum!(GovernanceAction {
    ClientActivated => "client.activated",
    ClientPending => "client.pending",
    ClientSuspended => "client.suspended",
    ClientResumed => "client.resumed",
    ClientRevoked => "client.revoked",
    ClientExpired => "client.expired",
    OwnerAdded => "client.owner_added",
    OwnerRemoved => "client.owner_removed",
    OwnerSucceeded => "client.owner_succeeded",
    ClientOrphaned => "client.orphaned",
    OrganizationSet => "client.organization_set",
    ContactSet => "client.contact_set",
    RolesSet => "user.roles_set",
    RequestOpened => "request.opened",
    RequestApproved => "request.approved",
    RequestDenied => "request.denied",
    RequestExpired => "request.expired",
    PolicyReloaded => "policy.reloaded",
    PolicyReloadRefused => "policy.reload_refused",
});

/// The version of [`GovernanceEvent::audit_detail`]'s JSON shape.
pub const EVENT_DETAIL_VERSION: u32 = 1;

/// One governance audit event. The store writes it into the audit trail in
/// the same transaction as the change it records, so the trail never claims
/// a change that did not happen nor misses one that did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GovernanceEvent {
    pub at: UnixTime,
    /// The acting person's username, or `system:<cause>` (policy, drift,
    /// sweep, request_expiry, succession).
    pub actor: String,
    pub action: GovernanceAction,
    pub client_id: Option<String>,
    /// What else the event is about: a request id, a username.
    pub subject: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub reason: Option<String>,
    /// The policies that decided, when a policy decided.
    pub policy_ids: Vec<String>,
    /// Action-specific facts (scopes, owners, self_approved …). Never secrets.
    pub detail: serde_json::Value,
}

impl GovernanceEvent {
    /// An event with only the required parts; fill the rest with the
    /// builder methods.
    pub fn new(at: UnixTime, actor: impl Into<String>, action: GovernanceAction) -> Self {
        Self {
            at,
            actor: actor.into(),
            action,
            client_id: None,
            subject: None,
            before: None,
            after: None,
            reason: None,
            policy_ids: Vec::new(),
            detail: serde_json::Value::Null,
        }
    }

    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    pub fn states(mut self, before: impl fmt::Display, after: impl fmt::Display) -> Self {
        self.before = Some(before.to_string());
        self.after = Some(after.to_string());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn policies(mut self, ids: Vec<String>) -> Self {
        self.policy_ids = ids;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// The JSON the audit trail's `detail` column holds: a versioned object
    /// with `before`, `after`, `reason`, `policy_ids` and `detail`.
    pub fn audit_detail(&self) -> serde_json::Value {
        serde_json::json!({
            "v": EVENT_DETAIL_VERSION,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "policy_ids": self.policy_ids,
            "detail": self.detail,
        })
    }
}

/// The actor name of a change the system made for `cause`.
pub fn system_actor(cause: &str) -> String {
    format!("system:{cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(*r));
        }
        for k in OwnerKind::ALL {
            assert_eq!(k.as_str().parse::<OwnerKind>(), Ok(*k));
        }
        for s in RequestState::ALL {
            assert_eq!(s.as_str().parse::<RequestState>(), Ok(*s));
        }
        for a in GovernanceAction::ALL {
            assert_eq!(a.as_str().parse::<GovernanceAction>(), Ok(*a));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn approval_is_bound_to_resource_digest_and_expiry() {
        let a = Approval {
            id: "a1".into(),
            client_id: "c".into(),
            resource: "https://mcp.test/".into(),
            scopes: vec!["files:write".into()],
            metadata_digest: Some("d1".into()),
            approved_by: "u".into(),
            approved_at: UnixTime(0),
            expires_at: Some(UnixTime(100)),
            request_id: None,
            self_approved: false,
        };
        assert!(a.is_valid_for("https://mcp.test/", Some("d1"), UnixTime(99)));
        assert!(!a.is_valid_for("https://mcp.test/", Some("d1"), UnixTime(100)));
        assert!(!a.is_valid_for("https://mcp.test/", Some("d2"), UnixTime(1)));
        assert!(!a.is_valid_for("https://mcp.test/", None, UnixTime(1)));
        assert!(!a.is_valid_for("https://other.test/", Some("d1"), UnixTime(1)));
    }

    #[test]
    fn audit_detail_is_versioned_and_names_states_and_policies() {
        let e = GovernanceEvent::new(UnixTime(5), "alice", GovernanceAction::ClientSuspended)
            .client("c")
            .states(LifecycleState::Active, LifecycleState::Suspended)
            .reason("incident 42")
            .policies(vec!["p1".into()]);
        let d = e.audit_detail();
        assert_eq!(d["v"], 1);
        assert_eq!(d["before"], "active");
        assert_eq!(d["after"], "suspended");
        assert_eq!(d["reason"], "incident 42");
        assert_eq!(d["policy_ids"][0], "p1");
    }
}
