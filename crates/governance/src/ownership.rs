//! Ownership: every client maps to an accountable organisation and named
//! people (issue 13 §3), and keeps mapping to someone when people leave.
//!
//! Pure rules over [`Ownership`]: who succeeds a departing owner, whether a
//! client is owned, unowned (a `[[clients]]` entry without owners: the
//! operator answers for it) or orphaned (it needs owners and lacks one), and
//! which clients need owners at all to be active.

use crate::model::{ClientView, Owner, OwnerKind, Ownership};
use serde::{Deserialize, Serialize};
use steward_core::TrustTier;

/// Which clients must have a complete ownership (a business and a technical
/// owner) to be `active` or to be approved above self-service
/// (`governance.owners_required`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerRequirement {
    /// Any client above the self-service tier (a tier above `unverified`,
    /// or holding an approval) that is not declared in configuration.
    #[default]
    AboveSelfService,
    /// Every client not declared in configuration.
    AllUndeclared,
    /// No client (a single-person installation).
    Never,
}

impl OwnerRequirement {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AboveSelfService => "above_self_service",
            Self::AllUndeclared => "all_undeclared",
            Self::Never => "never",
        }
    }
}

/// Whether the client is above the self-service tier: trusted beyond what an
/// unknown client gets, by its tier or by an approval.
pub fn above_self_service(view: &ClientView) -> bool {
    view.tier != TrustTier::Unverified || !view.approvals.is_empty()
}

/// Whether `view` must have complete ownership. A `[[clients]]` entry is
/// approved by the configuration that declares it, so it never needs owners
/// (without them it shows as unowned, with the operator accountable).
pub fn owners_required(view: &ClientView, declared: bool, rule: OwnerRequirement) -> bool {
    if declared {
        return false;
    }
    match rule {
        OwnerRequirement::AboveSelfService => above_self_service(view),
        OwnerRequirement::AllUndeclared => true,
        OwnerRequirement::Never => false,
    }
}

/// How a client stands with its owners, as the inventory shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum OwnershipStatus {
    /// A business and a technical owner.
    Owned,
    /// No owners and none required: the operator is accountable.
    Unowned,
    /// Owners are required (or some were named) and a kind is missing.
    Orphaned { missing: Vec<OwnerKind> },
}

impl OwnershipStatus {
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Owned => "owned",
            Self::Unowned => "unowned",
            Self::Orphaned { .. } => "orphaned",
        }
    }
}

/// The kinds with no owner.
pub fn missing_kinds(o: &Ownership) -> Vec<OwnerKind> {
    OwnerKind::ALL
        .iter()
        .copied()
        .filter(|k| o.of_kind(*k).next().is_none())
        .collect()
}

/// The client's ownership status. A client that once had owners and lost
/// one kind is orphaned even when owners are not required: someone named it
/// accountable and that person is gone.
pub fn status(o: &Ownership, required: bool) -> OwnershipStatus {
    let missing = missing_kinds(o);
    if missing.is_empty() {
        OwnershipStatus::Owned
    } else if o.owners.is_empty() && !required {
        OwnershipStatus::Unowned
    } else {
        OwnershipStatus::Orphaned { missing }
    }
}

/// What happens to one of the departing user's ownerships.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Succession {
    pub kind: OwnerKind,
    /// The next owner of the same kind, who answers now; `None`: orphaned.
    pub successor: Option<Owner>,
}

/// When `user_id`'s account is disabled or deleted, each kind they owned
/// passes to the next owner of that kind (the first other owner of that kind
/// in the order added). One entry per kind they held.
pub fn succession(o: &Ownership, user_id: &str) -> Vec<Succession> {
    OwnerKind::ALL
        .iter()
        .copied()
        .filter(|k| o.of_kind(*k).any(|x| x.user_id == user_id))
        .map(|kind| Succession {
            kind,
            successor: o.of_kind(kind).find(|x| x.user_id != user_id).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Approval;
    use steward_core::{ClientKind, LifecycleState, UnixTime};

    fn owner(id: &str, kind: OwnerKind) -> Owner {
        Owner {
            user_id: id.into(),
            username: format!("user-{id}"),
            kind,
        }
    }

    fn ownership(owners: Vec<Owner>) -> Ownership {
        Ownership {
            organization: Some("Acme".into()),
            contact: None,
            owners,
        }
    }

    pub(crate) fn view(tier: TrustTier) -> ClientView {
        ClientView {
            client_id: "https://agent.example.com/client.json".into(),
            kind: ClientKind::MetadataDocument,
            state: LifecycleState::Active,
            tier,
            display_name: None,
            registration: "{}".into(),
            metadata_document: None,
            metadata_digest: Some("d1".into()),
            first_seen: UnixTime(0),
            last_seen: UnixTime(0),
            ownership: Ownership::default(),
            approvals: vec![],
            revision: 0,
        }
    }

    #[test]
    fn disabled_owner_is_succeeded_by_the_next_owner_of_the_same_kind() {
        let o = ownership(vec![
            owner("a", OwnerKind::Business),
            owner("t", OwnerKind::Technical),
            owner("b", OwnerKind::Business),
            owner("c", OwnerKind::Business),
        ]);
        assert_eq!(
            succession(&o, "a"),
            vec![Succession {
                kind: OwnerKind::Business,
                successor: Some(owner("b", OwnerKind::Business))
            }]
        );
    }

    #[test]
    fn last_owner_of_a_kind_leaving_orphans_the_client() {
        let o = ownership(vec![
            owner("a", OwnerKind::Business),
            owner("a", OwnerKind::Technical),
        ]);
        let s = succession(&o, "a");
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|x| x.successor.is_none()));
        let after = ownership(vec![owner("b", OwnerKind::Business)]);
        assert_eq!(
            status(&after, false),
            OwnershipStatus::Orphaned {
                missing: vec![OwnerKind::Technical]
            }
        );
    }

    #[test]
    fn an_owner_of_another_kind_does_not_succeed() {
        let o = ownership(vec![
            owner("a", OwnerKind::Technical),
            owner("b", OwnerKind::Business),
        ]);
        assert_eq!(succession(&o, "a")[0].successor, None);
    }

    #[test]
    fn declared_client_without_owners_is_unowned_not_orphaned() {
        let v = view(TrustTier::Trusted);
        assert!(!owners_required(&v, true, OwnerRequirement::AboveSelfService));
        assert_eq!(status(&v.ownership, false), OwnershipStatus::Unowned);
    }

    #[test]
    fn owners_required_above_self_service_by_default() {
        let mut v = view(TrustTier::Unverified);
        assert!(!owners_required(&v, false, OwnerRequirement::default()));
        v.approvals.push(Approval {
            id: "a".into(),
            client_id: v.client_id.clone(),
            resource: "r".into(),
            scopes: vec!["s".into()],
            metadata_digest: None,
            approved_by: "u".into(),
            approved_at: UnixTime(0),
            expires_at: None,
            request_id: None,
            self_approved: false,
        });
        assert!(owners_required(&v, false, OwnerRequirement::default()));
        assert!(owners_required(
            &view(TrustTier::Verified),
            false,
            OwnerRequirement::default()
        ));
        assert!(!owners_required(
            &view(TrustTier::Verified),
            false,
            OwnerRequirement::Never
        ));
        assert!(owners_required(
            &view(TrustTier::Unverified),
            false,
            OwnerRequirement::AllUndeclared
        ));
        assert_eq!(
            status(&Ownership::default(), true),
            OwnershipStatus::Orphaned {
                missing: vec![OwnerKind::Business, OwnerKind::Technical]
            }
        );
    }
}
