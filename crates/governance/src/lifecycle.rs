//! The client lifecycle: one state machine for every kind of client
//! (pre-registered, metadata document, dynamically registered), written once
//! (GOVERNANCE.md "Lifecycle", issue 13 §2).
//!
//! [`TABLE`] lists every legal move and who may make it. A move not in the
//! table is illegal for everyone; a move in the table is permitted only to
//! the capacities its row names. Nothing here touches storage: the
//! [`crate::Governance`] service checks a move with [`check`] and then asks
//! the store for a compare-and-set transition.

use crate::model::{GovernanceAction, Role};
use std::fmt;
use steward_core::LifecycleState::{self, Active, Expired, Pending, Revoked, Suspended};

/// Why the system (not a person) moves a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SystemCause {
    /// The policy decided (self-service return of an expired client).
    Policy,
    /// The client's metadata changed in a way the policy wants re-approved.
    Drift,
    /// A sweep found the document gone, a review overdue, or the client stale.
    Sweep,
    /// The access requests of a pending client expired undecided.
    RequestExpiry,
    /// The `steward` CLI: a trusted local operator working on the database
    /// directly (it bootstraps roles before any operator exists). It appears
    /// in no row of [`TABLE`], so it makes no lifecycle move; people act
    /// through the CLI with `--as USER`.
    Cli,
    /// A dynamically registered client deleting its own registration with
    /// its registration access token (RFC 7592 §2.3): it may end itself,
    /// never bring itself back.
    Deregistration,
}

impl SystemCause {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::Drift => "drift",
            Self::Sweep => "sweep",
            Self::RequestExpiry => "request_expiry",
            Self::Cli => "cli",
            Self::Deregistration => "deregistration",
        }
    }
}

impl fmt::Display for SystemCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One capacity in which a move may be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mover {
    Role(Role),
    /// An owner of this very client.
    Owner,
    System(SystemCause),
}

impl fmt::Display for Mover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Role(r) => f.write_str(r.as_str()),
            Self::Owner => f.write_str("owner"),
            Self::System(c) => write!(f, "system ({c})"),
        }
    }
}

/// Every capacity the one making a move holds (a person may be an operator
/// and an owner at once); a move is permitted when any of them is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capacities(pub Vec<Mover>);

impl Capacities {
    /// A person with `roles`, owning the client or not.
    pub fn person(roles: &[Role], owns_client: bool) -> Self {
        let mut c: Vec<Mover> = roles.iter().map(|r| Mover::Role(*r)).collect();
        if owns_client {
            c.push(Mover::Owner);
        }
        Self(c)
    }

    pub fn system(cause: SystemCause) -> Self {
        Self(vec![Mover::System(cause)])
    }
}

impl fmt::Display for Capacities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no role");
        }
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

/// One legal move and who may make it.
#[derive(Debug)]
pub struct Rule {
    pub from: LifecycleState,
    pub to: LifecycleState,
    pub movers: &'static [Mover],
}

const OPERATOR: Mover = Mover::Role(Role::Operator);
const APPROVER: Mover = Mover::Role(Role::Approver);

/// The transition table of GOVERNANCE.md, the only place it is written.
/// `revoked` appears in no `from`: it is final.
pub const TABLE: &[Rule] = &[
    Rule {
        from: Pending,
        to: Active,
        movers: &[APPROVER],
    },
    Rule {
        from: Pending,
        to: Revoked,
        movers: &[APPROVER, OPERATOR, Mover::System(SystemCause::Deregistration)],
    },
    Rule {
        from: Pending,
        to: Expired,
        movers: &[Mover::System(SystemCause::RequestExpiry)],
    },
    Rule {
        from: Active,
        to: Pending,
        movers: &[Mover::System(SystemCause::Drift)],
    },
    // An owner may pull the emergency brake on their own client, never release it alone.
    Rule {
        from: Active,
        to: Suspended,
        movers: &[APPROVER, OPERATOR, Mover::Owner],
    },
    Rule {
        from: Active,
        to: Revoked,
        movers: &[APPROVER, OPERATOR, Mover::System(SystemCause::Deregistration)],
    },
    Rule {
        from: Active,
        to: Expired,
        movers: &[Mover::System(SystemCause::Sweep)],
    },
    Rule {
        from: Suspended,
        to: Active,
        movers: &[APPROVER, OPERATOR],
    },
    Rule {
        from: Suspended,
        to: Revoked,
        movers: &[APPROVER, OPERATOR, Mover::System(SystemCause::Deregistration)],
    },
    Rule {
        from: Suspended,
        to: Expired,
        movers: &[Mover::System(SystemCause::Sweep)],
    },
    Rule {
        from: Expired,
        to: Active,
        movers: &[Mover::System(SystemCause::Policy), APPROVER],
    },
    Rule {
        from: Expired,
        to: Revoked,
        movers: &[APPROVER, OPERATOR],
    },
];

/// What a permitted move entails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub from: LifecycleState,
    pub to: LifecycleState,
    /// Revoke the client's refresh families and access tokens in the same
    /// transaction: entering `revoked` or `expired` ends every session,
    /// entering `suspended` keeps them so `resume` needs no new sign-in.
    pub revoke_families: bool,
    /// The audit action recording the move.
    pub action: GovernanceAction,
}

/// Why a move was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("a revoked client cannot become {to}: revoked is final")]
    RevokedIsFinal { to: LifecycleState },
    #[error("illegal transition from {from} to {to}")]
    Illegal {
        from: LifecycleState,
        to: LifecycleState,
    },
    #[error("moving a client from {from} to {to} needs one of: {needed}; the actor is {held}")]
    NotPermitted {
        from: LifecycleState,
        to: LifecycleState,
        needed: String,
        held: String,
    },
}

/// The row of the table for `from -> to`, if the move is legal at all.
pub fn rule(from: LifecycleState, to: LifecycleState) -> Option<&'static Rule> {
    TABLE.iter().find(|r| r.from == from && r.to == to)
}

/// Checks that `by` may move a client from `from` to `to`.
pub fn check(from: LifecycleState, to: LifecycleState, by: &Capacities) -> Result<Move, LifecycleError> {
    if from == Revoked {
        return Err(LifecycleError::RevokedIsFinal { to });
    }
    let Some(rule) = rule(from, to) else {
        return Err(LifecycleError::Illegal { from, to });
    };
    if !rule.movers.iter().any(|m| by.0.contains(m)) {
        return Err(LifecycleError::NotPermitted {
            from,
            to,
            needed: Capacities(rule.movers.to_vec()).to_string(),
            held: by.to_string(),
        });
    }
    Ok(Move {
        from,
        to,
        revoke_families: matches!(to, Revoked | Expired),
        action: action_for(from, to),
    })
}

fn action_for(from: LifecycleState, to: LifecycleState) -> GovernanceAction {
    match (from, to) {
        (Suspended, Active) => GovernanceAction::ClientResumed,
        (_, Active) => GovernanceAction::ClientActivated,
        (_, Pending) => GovernanceAction::ClientPending,
        (_, Suspended) => GovernanceAction::ClientSuspended,
        (_, Revoked) => GovernanceAction::ClientRevoked,
        (_, Expired) => GovernanceAction::ClientExpired,
    }
}

/// The state a client enters when Steward first meets it ("(new)" row of
/// the table): a `[[clients]]` entry is approved by the configuration that
/// declares it; a client from a quarantined domain waits for an approver;
/// everyone else starts active, and the policy decides what it may get.
pub fn initial_state(declared_in_configuration: bool, quarantined: bool) -> LifecycleState {
    if declared_in_configuration {
        Active
    } else if quarantined {
        Pending
    } else {
        Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [LifecycleState; 5] = [Pending, Active, Suspended, Revoked, Expired];

    fn operator() -> Capacities {
        Capacities::person(&[Role::Operator], false)
    }
    fn approver() -> Capacities {
        Capacities::person(&[Role::Approver], false)
    }
    fn owner() -> Capacities {
        Capacities::person(&[], true)
    }

    #[test]
    fn owner_may_suspend_but_not_resume_alone() {
        assert!(check(Active, Suspended, &owner()).is_ok());
        let err = check(Suspended, Active, &owner()).unwrap_err();
        assert!(matches!(err, LifecycleError::NotPermitted { .. }));
        assert!(err.to_string().contains("from suspended to active"), "{err}");
    }

    #[test]
    fn revoked_is_final() {
        for to in ALL {
            for by in [
                operator(),
                approver(),
                owner(),
                Capacities::system(SystemCause::Policy),
            ] {
                assert_eq!(
                    check(Revoked, to, &by),
                    Err(LifecycleError::RevokedIsFinal { to })
                );
            }
        }
    }

    #[test]
    fn illegal_move_names_from_and_to() {
        let err = check(Pending, Suspended, &operator()).unwrap_err();
        assert_eq!(
            err,
            LifecycleError::Illegal {
                from: Pending,
                to: Suspended
            }
        );
        assert_eq!(err.to_string(), "illegal transition from pending to suspended");
        // Staying put is not a move either.
        for s in [Pending, Active, Suspended, Expired] {
            assert!(matches!(
                check(s, s, &operator()),
                Err(LifecycleError::Illegal { .. })
            ));
        }
    }

    #[test]
    fn suspend_keeps_refresh_families_revoke_and_expire_end_them() {
        assert!(!check(Active, Suspended, &operator()).unwrap().revoke_families);
        assert!(check(Active, Revoked, &operator()).unwrap().revoke_families);
        assert!(check(Suspended, Revoked, &approver()).unwrap().revoke_families);
        let sweep = Capacities::system(SystemCause::Sweep);
        assert!(check(Active, Expired, &sweep).unwrap().revoke_families);
        assert!(!check(Suspended, Active, &operator()).unwrap().revoke_families);
    }

    #[test]
    fn only_an_approver_activates_a_pending_client() {
        assert!(check(Pending, Active, &approver()).is_ok());
        assert!(check(Pending, Active, &operator()).is_err());
        assert!(check(Pending, Active, &owner()).is_err());
        assert!(check(Pending, Active, &Capacities::system(SystemCause::Policy)).is_err());
    }

    #[test]
    fn auditors_move_nothing() {
        let auditor = Capacities::person(&[Role::Auditor], false);
        for from in ALL {
            for to in ALL {
                assert!(check(from, to, &auditor).is_err(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_cli_cause_moves_nothing() {
        let cli = Capacities::system(SystemCause::Cli);
        for from in ALL {
            for to in ALL {
                assert!(check(from, to, &cli).is_err(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn system_causes_make_only_their_own_moves() {
        let expiry = Capacities::system(SystemCause::RequestExpiry);
        assert!(check(Pending, Expired, &expiry).is_ok());
        assert!(check(Active, Expired, &expiry).is_err());
        let drift = Capacities::system(SystemCause::Drift);
        assert!(check(Active, Pending, &drift).is_ok());
        assert!(check(Active, Pending, &operator()).is_err());
        let policy = Capacities::system(SystemCause::Policy);
        assert!(check(Expired, Active, &policy).is_ok());
        assert!(check(Suspended, Active, &policy).is_err());
        // People never expire a client: that is the sweep's finding.
        assert!(check(Active, Expired, &operator()).is_err());
    }

    #[test]
    fn a_deregistering_client_may_only_end_itself() {
        let dereg = Capacities::system(SystemCause::Deregistration);
        for from in [Pending, Active, Suspended] {
            assert!(check(from, Revoked, &dereg).unwrap().revoke_families, "{from}");
        }
        assert!(check(Suspended, Active, &dereg).is_err());
        assert!(check(Expired, Active, &dereg).is_err());
        assert!(check(Active, Suspended, &dereg).is_err());
    }

    #[test]
    fn the_table_matches_governance_md_cell_by_cell() {
        // (from, to, who) exactly as GOVERNANCE.md's table, plus RFC 7592
        // self-deregistration (issue 14); every other cell is empty.
        let expected: &[(LifecycleState, LifecycleState, &str)] = &[
            (Pending, Active, "approver"),
            (Pending, Revoked, "approver, operator, system (deregistration)"),
            (Pending, Expired, "system (request_expiry)"),
            (Active, Pending, "system (drift)"),
            (Active, Suspended, "approver, operator, owner"),
            (Active, Revoked, "approver, operator, system (deregistration)"),
            (Active, Expired, "system (sweep)"),
            (Suspended, Active, "approver, operator"),
            (Suspended, Revoked, "approver, operator, system (deregistration)"),
            (Suspended, Expired, "system (sweep)"),
            (Expired, Active, "system (policy), approver"),
            (Expired, Revoked, "approver, operator"),
        ];
        for from in ALL {
            for to in ALL {
                let want = expected.iter().find(|(f, t, _)| *f == from && *t == to);
                let got = rule(from, to).map(|r| Capacities(r.movers.to_vec()).to_string());
                assert_eq!(got.as_deref(), want.map(|w| w.2), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn quarantined_newcomers_start_pending_declared_ones_active() {
        assert_eq!(initial_state(true, true), Active);
        assert_eq!(initial_state(false, true), Pending);
        assert_eq!(initial_state(false, false), Active);
    }
}
