//! One error type for the governance room. Each message is one line naming
//! the thing (issue 13 "Bad input and failure"); in every case nothing
//! changed.

use crate::lifecycle::LifecycleError;
use crate::model::RequestState;
use crate::policy::PolicyError;
use crate::port::PortError;
use crate::separation::SeparationError;
use steward_core::LifecycleState;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GovernanceError {
    #[error("unknown client {0}")]
    UnknownClient(String),
    #[error("unknown access request {0}")]
    UnknownRequest(String),
    #[error("unknown user {0}")]
    UnknownUser(String),
    #[error("unknown role {0:?} (operator, approver, auditor)")]
    UnknownRole(String),
    #[error("unknown resource {0}")]
    UnknownResource(String),
    #[error("scope {scope} is not defined by resource {resource}")]
    UnknownScope { resource: String, scope: String },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Separation(#[from] SeparationError),
    #[error("user {user} may not {what} client {client}: {why}")]
    NotPermitted {
        user: String,
        what: &'static str,
        client: String,
        why: &'static str,
    },
    #[error("access request {id} expired at {expires_at} and can no longer be decided")]
    RequestExpired { id: String, expires_at: i64 },
    #[error("access request {id} is already {state}")]
    RequestDecided { id: String, state: RequestState },
    #[error("client {client} is {state}: {why}")]
    ClientState {
        client: String,
        state: LifecycleState,
        why: &'static str,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("scope {scope} was not requested in access request {id}: an approval may only narrow")]
    NotRequested { id: String, scope: String },
    #[error("client {client} needs a business and a technical owner to be {purpose}; assign them")]
    OwnersRequired { client: String, purpose: &'static str },
    #[error("a justification is required to {0}")]
    JustificationRequired(&'static str),
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] PortError),
}
