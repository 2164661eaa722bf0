//! An in-memory [`GovernanceStore`] for the service's unit tests, honouring
//! the port's contract: compare-and-set, and the event written with (and
//! only with) the change it records.

use crate::model::{
    AccessRequest, Actor, Approval, ClientView, GovernanceEvent, GovernanceUser, Owner, OwnerKind,
    RequestDecision, RequestFilter, RequestState, Role,
};
use crate::port::{Decided, GovernanceStore, OwnerChange, PortError, Transition};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;
use steward_core::{LifecycleState, UnixTime};

#[derive(Default)]
pub(crate) struct State {
    pub users: BTreeMap<String, GovernanceUser>,
    pub clients: BTreeMap<String, ClientView>,
    pub requests: BTreeMap<String, AccessRequest>,
    pub events: Vec<GovernanceEvent>,
    /// Client ids whose refresh families were revoked.
    pub revoked_families: Vec<String>,
    /// When set, `get_access_request` answers this snapshot: a read taken
    /// before a concurrent decider committed (the race of two approvers).
    pub stale_request: Option<AccessRequest>,
    /// When set, `client_view` answers this snapshot (a read taken before
    /// a concurrent lifecycle change committed).
    pub stale_client: Option<ClientView>,
}

#[derive(Default)]
pub(crate) struct FakeStore(pub Mutex<State>);

impl FakeStore {
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut g = self.0.lock().unwrap();
        f(&mut g)
    }
}

#[async_trait]
impl GovernanceStore for FakeStore {
    async fn user_by_name(&self, username: &str) -> Result<Option<GovernanceUser>, PortError> {
        Ok(self.with(|s| s.users.values().find(|u| u.username == username).cloned()))
    }
    async fn user_by_id(&self, user_id: &str) -> Result<Option<GovernanceUser>, PortError> {
        Ok(self.with(|s| s.users.get(user_id).cloned()))
    }
    async fn set_roles(
        &self,
        user_id: &str,
        roles: &[Role],
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        Ok(self.with(|s| match s.users.get_mut(user_id) {
            Some(u) => {
                u.roles = roles.to_vec();
                s.events.push(event.clone());
                true
            }
            None => false,
        }))
    }
    async fn client_view(&self, client_id: &str) -> Result<Option<ClientView>, PortError> {
        Ok(self.with(|s| match &s.stale_client {
            Some(c) if c.client_id == client_id => Some(c.clone()),
            _ => s.clients.get(client_id).cloned(),
        }))
    }
    async fn list_client_views(&self) -> Result<Vec<ClientView>, PortError> {
        Ok(self.with(|s| s.clients.values().cloned().collect()))
    }
    async fn clients_owned_by(&self, user_id: &str) -> Result<Vec<String>, PortError> {
        Ok(self.with(|s| {
            s.clients
                .values()
                .filter(|c| c.ownership.is_owner(user_id))
                .map(|c| c.client_id.clone())
                .collect()
        }))
    }
    async fn transition_client(
        &self,
        client_id: &str,
        expected_from: LifecycleState,
        to: LifecycleState,
        revoke_families: bool,
        _now: UnixTime,
        event: &GovernanceEvent,
    ) -> Result<Transition, PortError> {
        Ok(self.with(|s| {
            let Some(c) = s.clients.get_mut(client_id) else {
                return Transition::Unknown;
            };
            if c.state != expected_from {
                return Transition::Conflict { actual: c.state };
            }
            c.state = to;
            if revoke_families {
                s.revoked_families.push(client_id.to_owned());
            }
            s.events.push(event.clone());
            Transition::Applied
        }))
    }
    async fn add_owner(
        &self,
        client_id: &str,
        owner: &Owner,
        event: &GovernanceEvent,
    ) -> Result<OwnerChange, PortError> {
        Ok(self.with(|s| {
            let Some(c) = s.clients.get_mut(client_id) else {
                return OwnerChange::UnknownClient;
            };
            if c.ownership
                .owners
                .iter()
                .any(|o| o.user_id == owner.user_id && o.kind == owner.kind)
            {
                return OwnerChange::Unchanged;
            }
            c.ownership.owners.push(owner.clone());
            s.events.push(event.clone());
            OwnerChange::Applied
        }))
    }
    async fn remove_owner(
        &self,
        client_id: &str,
        user_id: &str,
        kind: Option<OwnerKind>,
        event: &GovernanceEvent,
    ) -> Result<OwnerChange, PortError> {
        Ok(self.with(|s| {
            let Some(c) = s.clients.get_mut(client_id) else {
                return OwnerChange::UnknownClient;
            };
            let before = c.ownership.owners.len();
            c.ownership
                .owners
                .retain(|o| !(o.user_id == user_id && kind.is_none_or(|k| k == o.kind)));
            if c.ownership.owners.len() == before {
                return OwnerChange::Unchanged;
            }
            s.events.push(event.clone());
            OwnerChange::Applied
        }))
    }
    async fn set_organization(
        &self,
        client_id: &str,
        organization: Option<&str>,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        Ok(self.with(|s| match s.clients.get_mut(client_id) {
            Some(c) => {
                c.ownership.organization = organization.map(str::to_owned);
                s.events.push(event.clone());
                true
            }
            None => false,
        }))
    }
    async fn set_contact(
        &self,
        client_id: &str,
        contact: Option<&str>,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        Ok(self.with(|s| match s.clients.get_mut(client_id) {
            Some(c) => {
                c.ownership.contact = contact.map(str::to_owned);
                s.events.push(event.clone());
                true
            }
            None => false,
        }))
    }
    async fn create_access_request(
        &self,
        request: &AccessRequest,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        Ok(self.with(|s| {
            if !s.clients.contains_key(&request.client_id) {
                return false;
            }
            s.requests.insert(request.id.clone(), request.clone());
            s.events.push(event.clone());
            true
        }))
    }
    async fn get_access_request(&self, id: &str) -> Result<Option<AccessRequest>, PortError> {
        Ok(self.with(|s| match &s.stale_request {
            Some(r) if r.id == id => Some(r.clone()),
            _ => s.requests.get(id).cloned(),
        }))
    }
    async fn list_access_requests(&self, filter: &RequestFilter) -> Result<Vec<AccessRequest>, PortError> {
        Ok(self.with(|s| {
            let mut v: Vec<AccessRequest> = s
                .requests
                .values()
                .filter(|r| filter.state.is_none_or(|st| r.state == st))
                .filter(|r| filter.client_id.as_ref().is_none_or(|c| &r.client_id == c))
                .cloned()
                .collect();
            v.sort_by_key(|r| std::cmp::Reverse(r.created_at));
            v
        }))
    }
    async fn decide_access_request(
        &self,
        id: &str,
        expected: RequestState,
        decision: &RequestDecision,
        decided_by: &Actor,
        justification: &str,
        now: UnixTime,
        event: &GovernanceEvent,
    ) -> Result<Decided, PortError> {
        Ok(self.with(|s| {
            let Some(r) = s.requests.get_mut(id) else {
                return Decided::Unknown;
            };
            if r.state != expected {
                return Decided::Conflict { actual: r.state };
            }
            r.state = decision.resulting_state();
            r.decided_by = decided_by.user_id.clone();
            r.decided_by_name = Some(decided_by.username.clone());
            r.decided_at = Some(now);
            r.decision_justification = Some(justification.to_owned());
            let client_id = r.client_id.clone();
            if let RequestDecision::Approve {
                approval,
                assign_owners,
                activate_pending,
            } = decision
            {
                r.granted_scopes = approval.scopes.clone();
                r.approval_expires_at = approval.expires_at;
                if let Some(c) = s.clients.get_mut(&client_id) {
                    c.approvals.push(approval.clone());
                    for o in assign_owners {
                        if !c
                            .ownership
                            .owners
                            .iter()
                            .any(|x| x.user_id == o.user_id && x.kind == o.kind)
                        {
                            c.ownership.owners.push(o.clone());
                        }
                    }
                    if *activate_pending && c.state == LifecycleState::Pending {
                        c.state = LifecycleState::Active;
                    }
                }
            }
            s.events.push(event.clone());
            Decided::Applied
        }))
    }
    async fn approvals_for_client(&self, client_id: &str) -> Result<Vec<Approval>, PortError> {
        Ok(self.with(|s| {
            s.clients
                .get(client_id)
                .map(|c| c.approvals.clone())
                .unwrap_or_default()
        }))
    }
    async fn append_event(&self, event: &GovernanceEvent) -> Result<(), PortError> {
        self.with(|s| s.events.push(event.clone()));
        Ok(())
    }
}
