//! Roles and separation of duties (GOVERNANCE.md "Roles", issue 13 §4).
//!
//! The one who decides trust is never the one who benefits from it: nobody
//! approves a request they made, nor a request for a client they own —
//! unless the installation says it has a single person
//! (`governance.allow_self_approval`), and then the approval is marked
//! `self_approved` in the audit trail for whoever reviews it later.

use crate::model::{AccessRequest, GovernanceUser, Ownership, Role};

/// Why someone may not decide a request. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeparationError {
    #[error("user {user} is disabled")]
    Disabled { user: String },
    #[error("user {user} lacks the {role} role needed to {to}")]
    MissingRole {
        user: String,
        role: Role,
        to: &'static str,
    },
    #[error(
        "user {user} may not decide request {request}: they {why} (governance.allow_self_approval is off)"
    )]
    SelfApproval {
        user: String,
        request: String,
        why: &'static str,
    },
}

/// A user who may act at all: enabled.
pub fn enabled(user: &GovernanceUser) -> Result<(), SeparationError> {
    if user.disabled {
        return Err(SeparationError::Disabled {
            user: user.username.clone(),
        });
    }
    Ok(())
}

/// Requires `role` of `user` for the named purpose.
pub fn require_role(user: &GovernanceUser, role: Role, to: &'static str) -> Result<(), SeparationError> {
    enabled(user)?;
    if !user.has_role(role) {
        return Err(SeparationError::MissingRole {
            user: user.username.clone(),
            role,
            to,
        });
    }
    Ok(())
}

/// Requires one of `roles`, naming the first in the error.
pub fn require_any_role(
    user: &GovernanceUser,
    roles: &[Role],
    to: &'static str,
) -> Result<(), SeparationError> {
    enabled(user)?;
    match roles.iter().find(|r| user.has_role(**r)) {
        Some(_) => Ok(()),
        None => Err(SeparationError::MissingRole {
            user: user.username.clone(),
            role: roles.first().copied().unwrap_or(Role::Operator),
            to,
        }),
    }
}

/// Whether `approver` may decide `request` for a client owned as
/// `ownership`. `Ok(true)` means they may, but only because self-approval
/// is allowed: the approval must be marked `self_approved`.
pub fn check_decider(
    approver: &GovernanceUser,
    request: &AccessRequest,
    ownership: &Ownership,
    allow_self_approval: bool,
) -> Result<bool, SeparationError> {
    require_role(approver, Role::Approver, "decide access requests")?;
    let why = if approver.id == request.requested_by {
        Some("made it")
    } else if ownership.is_owner(&approver.id) {
        Some("own the client")
    } else {
        None
    };
    match why {
        None => Ok(false),
        Some(_) if allow_self_approval => Ok(true),
        Some(why) => Err(SeparationError::SelfApproval {
            user: approver.username.clone(),
            request: request.id.clone(),
            why,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Owner, OwnerKind, RequestState};
    use steward_core::UnixTime;

    fn user(id: &str, roles: &[Role]) -> GovernanceUser {
        GovernanceUser {
            id: id.into(),
            username: format!("{id}-name"),
            disabled: false,
            roles: roles.to_vec(),
        }
    }

    fn request(by: &str) -> AccessRequest {
        AccessRequest {
            id: "req1".into(),
            client_id: "c".into(),
            resource: "r".into(),
            scopes: vec!["s".into()],
            requested_by: by.into(),
            requested_by_name: format!("{by}-name"),
            justification: "need it".into(),
            metadata_digest: None,
            state: RequestState::Pending,
            created_at: UnixTime(0),
            expires_at: UnixTime(10),
            decided_by: None,
            decided_by_name: None,
            decided_at: None,
            decision_justification: None,
            granted_scopes: vec![],
            approval_expires_at: None,
        }
    }

    fn owned_by(id: &str) -> Ownership {
        Ownership {
            organization: None,
            contact: None,
            owners: vec![Owner {
                user_id: id.into(),
                username: format!("{id}-name"),
                kind: OwnerKind::Technical,
            }],
        }
    }

    #[test]
    fn self_approval_is_refused_by_default() {
        let a = user("alice", &[Role::Approver]);
        let err = check_decider(&a, &request("alice"), &Ownership::default(), false).unwrap_err();
        assert!(err.to_string().contains("made it"), "{err}");
        let err = check_decider(&a, &request("bob"), &owned_by("alice"), false).unwrap_err();
        assert!(err.to_string().contains("own the client"), "{err}");
    }

    #[test]
    fn allowed_self_approval_is_marked() {
        let a = user("alice", &[Role::Approver]);
        assert_eq!(
            check_decider(&a, &request("alice"), &Ownership::default(), true),
            Ok(true)
        );
        assert_eq!(
            check_decider(&a, &request("bob"), &Ownership::default(), true),
            Ok(false)
        );
    }

    #[test]
    fn only_approvers_decide_requests() {
        for roles in [&[Role::Operator][..], &[Role::Auditor], &[]] {
            let u = user("op", roles);
            let err = check_decider(&u, &request("bob"), &Ownership::default(), true).unwrap_err();
            assert!(matches!(
                err,
                SeparationError::MissingRole {
                    role: Role::Approver,
                    ..
                }
            ));
        }
    }

    #[test]
    fn disabled_approver_decides_nothing() {
        let mut a = user("alice", &[Role::Approver]);
        a.disabled = true;
        assert_eq!(
            check_decider(&a, &request("bob"), &Ownership::default(), false),
            Err(SeparationError::Disabled {
                user: "alice-name".into()
            })
        );
    }
}
