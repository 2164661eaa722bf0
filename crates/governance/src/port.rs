//! The storage port: what governance needs from a database, and nothing
//! else. `steward-store` implements it on SQLite and PostgreSQL.
//!
//! Contract for every implementation:
//! - Each method that changes state takes the [`GovernanceEvent`] that
//!   records the change and writes it into the audit trail **in the same
//!   transaction** (issue 13 §8): either both land or neither does. When the
//!   change is not applied (a conflict, an unknown row) the event is not
//!   written either.
//! - Changes are targeted updates guarded by the state the caller saw
//!   (compare-and-set), never read-modify-write of whole records, so a
//!   concurrent suspension cannot be undone by another writer (issue 13 §9)
//!   and exactly one of two concurrent approvers wins (§10).
//! - A store that cannot be reached answers [`PortError::Unavailable`];
//!   anything else that goes wrong is [`PortError::Storage`].

use crate::model::{
    AccessRequest, Actor, Approval, ClientView, GovernanceEvent, GovernanceUser, Owner, OwnerKind,
    RequestDecision, RequestFilter, RequestState, Role,
};
use async_trait::async_trait;
use steward_core::{LifecycleState, UnixTime};

/// Why the store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The database is unreachable or timed out; retrying may help.
    #[error("governance storage is unavailable: {0}")]
    Unavailable(String),
    /// Any other storage failure (a constraint, corrupt data).
    #[error("governance storage failed: {0}")]
    Storage(String),
}

/// The outcome of a compare-and-set lifecycle move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The client was in `expected_from` and is now in `to`.
    Applied,
    /// The client was not in `expected_from` (someone else moved it first);
    /// nothing changed.
    Conflict { actual: LifecycleState },
    /// No such client; nothing changed.
    Unknown,
}

/// The outcome of a compare-and-set decision on an access request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decided {
    /// The request was in the expected state and now carries the decision.
    Applied,
    /// The request was already decided (by a concurrent approver, or it
    /// expired); nothing changed.
    Conflict { actual: RequestState },
    /// No such request; nothing changed.
    Unknown,
}

/// The outcome of adding or removing an owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerChange {
    Applied,
    /// Adding: the user already owns the client in that capacity.
    /// Removing: the user does not own it in that capacity. Nothing changed.
    Unchanged,
    /// No such client; nothing changed.
    UnknownClient,
}

#[async_trait]
pub trait GovernanceStore: Send + Sync {
    // --- users and roles ---------------------------------------------------

    /// The user with this username, with their roles and disabled flag.
    async fn user_by_name(&self, username: &str) -> Result<Option<GovernanceUser>, PortError>;

    /// The user with this id, with their roles and disabled flag.
    async fn user_by_id(&self, user_id: &str) -> Result<Option<GovernanceUser>, PortError>;

    /// Replaces the user's roles with `roles` and writes `event`, atomically.
    /// `false` (and no event) if the user does not exist.
    async fn set_roles(
        &self,
        user_id: &str,
        roles: &[Role],
        event: &GovernanceEvent,
    ) -> Result<bool, PortError>;

    // --- clients -----------------------------------------------------------

    /// The client's governance view: kind, state, tier, registration, latest
    /// metadata version (body and digest), first and last seen, organization,
    /// contact, owners (in the order added) and every approval.
    async fn client_view(&self, client_id: &str) -> Result<Option<ClientView>, PortError>;

    /// Every client's view, ordered by `client_id` (policy impact, sweeps,
    /// the inventory).
    async fn list_client_views(&self) -> Result<Vec<ClientView>, PortError>;

    /// The ids of the clients `user_id` owns in any capacity (succession).
    async fn clients_owned_by(&self, user_id: &str) -> Result<Vec<String>, PortError>;

    /// Moves the client from `expected_from` to `to` only if it is in
    /// `expected_from` now (compare-and-set), setting its `updated_at` to
    /// `now`. When `revoke_families` is set, in the same transaction revokes
    /// every refresh-token family and access token of the client (revoked
    /// and expired clients; a suspension keeps them). Writes `event` in the
    /// same transaction. On `Conflict` or `Unknown` nothing is written.
    async fn transition_client(
        &self,
        client_id: &str,
        expected_from: LifecycleState,
        to: LifecycleState,
        revoke_families: bool,
        now: UnixTime,
        event: &GovernanceEvent,
    ) -> Result<Transition, PortError>;

    /// Adds `owner` after the client's existing owners (succession order),
    /// with `event`, atomically.
    async fn add_owner(
        &self,
        client_id: &str,
        owner: &Owner,
        event: &GovernanceEvent,
    ) -> Result<OwnerChange, PortError>;

    /// Removes `user_id`'s ownership of the client of `kind`, or of every
    /// kind when `kind` is `None`, with `event`, atomically.
    async fn remove_owner(
        &self,
        client_id: &str,
        user_id: &str,
        kind: Option<OwnerKind>,
        event: &GovernanceEvent,
    ) -> Result<OwnerChange, PortError>;

    /// Sets (or with `None` clears) the accountable organization, with
    /// `event`, atomically. `false` (and no event) for an unknown client.
    async fn set_organization(
        &self,
        client_id: &str,
        organization: Option<&str>,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError>;

    /// Sets (or clears) the incident contact, with `event`, atomically.
    /// `false` (and no event) for an unknown client.
    async fn set_contact(
        &self,
        client_id: &str,
        contact: Option<&str>,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError>;

    // --- access requests and approvals -------------------------------------

    /// Stores a new request (state `pending`) with `event`, atomically.
    /// `false` (and no event) when the client does not exist.
    async fn create_access_request(
        &self,
        request: &AccessRequest,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError>;

    async fn get_access_request(&self, id: &str) -> Result<Option<AccessRequest>, PortError>;

    /// Matching requests, newest first.
    async fn list_access_requests(&self, filter: &RequestFilter) -> Result<Vec<AccessRequest>, PortError>;

    /// Records a decision on request `id` only if it is in `expected` now
    /// (compare-and-set; exactly one of two concurrent deciders gets
    /// `Applied`). Sets the state to `decision.resulting_state()`,
    /// `decided_by` (the actor's user id, `None` for the system),
    /// `decided_by_name` (its username), `decided_at = now` and
    /// `decision_justification`; for `Approve` also `granted_scopes` and
    /// `approval_expires_at` from the approval, inserts the approval, adds
    /// `assign_owners` the client lacks, and when `activate_pending` is set
    /// moves the client from `pending` to `active` (only from `pending`).
    /// All of it and `event` in one transaction.
    #[allow(clippy::too_many_arguments)] // one atomic operation; each argument is part of it
    async fn decide_access_request(
        &self,
        id: &str,
        expected: RequestState,
        decision: &RequestDecision,
        decided_by: &Actor,
        justification: &str,
        now: UnixTime,
        event: &GovernanceEvent,
    ) -> Result<Decided, PortError>;

    /// The client's approvals, oldest first.
    async fn approvals_for_client(&self, client_id: &str) -> Result<Vec<Approval>, PortError>;

    // --- events without a stored change -------------------------------------

    /// Appends an event that records no row change of its own (a policy
    /// reload, a refused reload).
    async fn append_event(&self, event: &GovernanceEvent) -> Result<(), PortError>;
}
