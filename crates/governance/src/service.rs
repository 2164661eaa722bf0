//! The `Governance` service: the operations every door calls (the server's
//! protocol endpoints to decide, the CLI and the admin API to change state),
//! so a rule is written once and separation of duties cannot be skipped by
//! choosing another door (ARCHITECTURE.md "one decision point").

use crate::domains::{DomainLists, DomainStatus};
use crate::error::GovernanceError;
use crate::facts::ClientFacts;
use crate::lifecycle::{self, Capacities, SystemCause};
use crate::model::{
    AccessRequest, Actor, Approval, ClientView, GovernanceAction, GovernanceEvent, GovernanceUser, Owner,
    OwnerKind, RequestDecision, RequestFilter, RequestState, Role,
};
use crate::ownership::{self, OwnerRequirement, OwnershipStatus};
use crate::policy::{
    Action, ApprovalStanding, ClientAttributes, Decision, DecisionInput, Explanation, ImpactRow,
    LoadedPolicies, PolicyConfig, PolicyEngine, PolicySource, ResourceInfo, UserContext,
};
use crate::port::{Decided, GovernanceStore, OwnerChange, Transition};
use crate::requests;
use crate::separation;
use serde_json::json;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use steward_core::{Clock, LifecycleState, UnixTime};

/// Governance settings (`[governance]`; docs/configuration.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GovernanceSettings {
    /// `governance.allow_self_approval` (default false): a single-person
    /// installation may approve its own requests; each is marked.
    pub allow_self_approval: bool,
    /// `governance.domains.{allow,deny,quarantine}`.
    pub domains: DomainLists,
    /// `governance.request_expiry` (default 14 days), in seconds.
    pub request_expiry_secs: i64,
    /// `governance.owners_required` (default `above_self_service`).
    pub owner_requirement: OwnerRequirement,
    /// The `client_id`s of `[[clients]]` entries: approved by configuration.
    pub declared_clients: BTreeSet<String>,
    /// The `[[resources]]` entries with their self-service scopes.
    pub resources: Vec<ResourceInfo>,
    /// `governance.policy_files`, `governance.include_default_policies`.
    pub policy: PolicyConfig,
}

impl Default for GovernanceSettings {
    fn default() -> Self {
        Self {
            allow_self_approval: false,
            domains: DomainLists::default(),
            request_expiry_secs: requests::DEFAULT_REQUEST_EXPIRY_SECS,
            owner_requirement: OwnerRequirement::default(),
            declared_clients: BTreeSet::new(),
            resources: Vec::new(),
            policy: PolicyConfig::default(),
        }
    }
}

/// One question from a protocol endpoint.
#[derive(Clone, Debug)]
pub struct DecideRequest<'a> {
    pub client_id: &'a str,
    pub action: Action,
    pub resource: &'a str,
    pub scopes: &'a [String],
    pub user: Option<&'a UserContext>,
    pub address: Option<IpAddr>,
    /// Facts about the exact metadata version in use (the token endpoint
    /// passes those of the version the user consented to); `None`: derived
    /// from the latest stored version.
    pub facts: Option<&'a ClientFacts>,
}

/// How an approval is given (`steward requests approve`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApproveOptions {
    /// Narrow to these scopes (a subset of those requested).
    pub scopes: Option<Vec<String>>,
    /// The approval lapses this many seconds after it is given.
    pub expires_in_secs: Option<i64>,
    /// Owners to assign, by username.
    pub owners: Vec<(String, OwnerKind)>,
}

/// What happened to one ownership when its holder left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuccessionReport {
    pub client_id: String,
    pub kind: OwnerKind,
    /// The username now answering; `None`: the client is orphaned.
    pub successor: Option<String>,
}

/// The governance room's entry point.
pub struct Governance {
    engine: PolicyEngine,
    settings: GovernanceSettings,
    store: Arc<dyn GovernanceStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance")
            .field("settings", &self.settings)
            .field("policies", &self.engine.running().policy_ids())
            .finish()
    }
}

/// Who is acting: a person by username, or the system for a cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By<'a> {
    User(&'a str),
    System(SystemCause),
}

impl Governance {
    /// Loads the configured policy set (refusing to start on an invalid one).
    pub fn new(
        settings: GovernanceSettings,
        store: Arc<dyn GovernanceStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, GovernanceError> {
        let engine = PolicyEngine::new(settings.policy.sources()?)?;
        Ok(Self {
            engine,
            settings,
            store,
            clock,
        })
    }

    pub fn settings(&self) -> &GovernanceSettings {
        &self.settings
    }

    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    // --- deciding -----------------------------------------------------------

    /// The domain-list status of a `client_id` host: callers refuse a denied
    /// host before any DNS lookup or fetch.
    pub fn check_host(&self, host: &str) -> DomainStatus {
        self.settings.domains.status(host)
    }

    /// Approved by the configuration that declares it (issue 13 item 3): a
    /// `[[clients]]` entry. A client created with `steward clients create`
    /// is not declared: it gets what the policy gives it (self-service
    /// scopes) until an approver approves more, like any other client.
    fn declared(&self, view: &ClientView) -> bool {
        self.settings.declared_clients.contains(&view.client_id)
    }

    fn resource(&self, uri: &str) -> Result<&ResourceInfo, GovernanceError> {
        self.settings
            .resources
            .iter()
            .find(|r| r.uri == uri)
            .ok_or_else(|| GovernanceError::UnknownResource(uri.to_owned()))
    }

    /// The client's attributes for the policy, for `resource` at `now`.
    pub fn attributes(
        &self,
        view: &ClientView,
        facts: &ClientFacts,
        resource: &str,
        now: UnixTime,
    ) -> ClientAttributes {
        let declared = self.declared(view);
        let digest = facts.digest.as_deref();
        let for_resource: Vec<&Approval> = view.approvals.iter().filter(|a| a.resource == resource).collect();
        let mut approved: Vec<String> = Vec::new();
        for a in for_resource
            .iter()
            .filter(|a| a.is_valid_for(resource, digest, now))
        {
            for s in &a.scopes {
                if !approved.contains(s) {
                    approved.push(s.clone());
                }
            }
        }
        let approval = match (for_resource.is_empty(), approved.is_empty()) {
            (true, _) => ApprovalStanding::None,
            (false, false) => ApprovalStanding::Current,
            (false, true) => ApprovalStanding::Stale,
        };
        ClientAttributes {
            client_id: view.client_id.clone(),
            kind: view.kind,
            state: view.state,
            tier: view.tier,
            host: facts.host.clone(),
            organization: view.ownership.organization.clone(),
            owners: view.ownership.owners.iter().map(|o| o.username.clone()).collect(),
            owned: view.ownership.is_complete(),
            owners_required: ownership::owners_required(view, declared, self.settings.owner_requirement),
            declared,
            same_origin: facts.same_origin,
            loopback_only: facts.loopback_only,
            age_days: view.first_seen.until(now).max(0) / 86_400,
            domain_status: self
                .settings
                .domains
                .status_of_client(facts.host.as_deref(), declared),
            approved_scopes: approved,
            approval,
            digest: facts.digest.clone(),
        }
    }

    async fn view(&self, client_id: &str) -> Result<ClientView, GovernanceError> {
        self.store
            .client_view(client_id)
            .await?
            .ok_or_else(|| GovernanceError::UnknownClient(client_id.to_owned()))
    }

    /// The one question: may this client get these scopes on this resource
    /// now? Evaluated at every request; nothing cached.
    pub async fn decide(&self, req: &DecideRequest<'_>) -> Result<Decision, GovernanceError> {
        let view = self.view(req.client_id).await?;
        self.decide_for(&view, req)
    }

    /// [`Self::decide`] for a caller that already holds the client's view.
    pub fn decide_for(
        &self,
        view: &ClientView,
        req: &DecideRequest<'_>,
    ) -> Result<Decision, GovernanceError> {
        Ok(self.engine.decide(&self.input(view, req)?.as_input(req)))
    }

    /// The decision and the policies that made it, without side effects.
    pub async fn explain(&self, req: &DecideRequest<'_>) -> Result<Explanation, GovernanceError> {
        let view = self.view(req.client_id).await?;
        let prepared = self.input(&view, req)?;
        Ok(self.engine.explain(&prepared.as_input(req)))
    }

    fn input<'s>(
        &'s self,
        view: &ClientView,
        req: &DecideRequest<'_>,
    ) -> Result<Prepared<'s>, GovernanceError> {
        let resource = self.resource(req.resource)?;
        let now = self.clock.now();
        let derived;
        let facts = match req.facts {
            Some(f) => f,
            None => {
                derived = ClientFacts::derive(view);
                &derived
            }
        };
        Ok(Prepared {
            client: self.attributes(view, facts, &resource.uri, now),
            resource,
            now,
        })
    }

    // --- policy files -------------------------------------------------------

    /// Validates the configured default set plus `files` (`steward policy check`).
    pub fn policy_check(&self, files: &[PathBuf]) -> Result<LoadedPolicies, GovernanceError> {
        Ok(self.engine.check(self.candidate_sources(files)?)?)
    }

    fn candidate_sources(&self, files: &[PathBuf]) -> Result<Vec<PolicySource>, GovernanceError> {
        Ok(PolicyConfig {
            include_default: self.settings.policy.include_default,
            files: files.to_vec(),
        }
        .sources()?)
    }

    /// Rereads the configured policy files and swaps them in if valid; an
    /// invalid set is refused with its error and the running one stays. Both
    /// outcomes are audited.
    pub async fn reload(&self, actor: &str) -> Result<Vec<String>, GovernanceError> {
        let now = self.clock.now();
        let result = self
            .settings
            .policy
            .sources()
            .map_err(GovernanceError::from)
            .and_then(|s| self.engine.reload(s).map_err(GovernanceError::from));
        match result {
            Ok(set) => {
                let ids = set.policy_ids();
                let e =
                    GovernanceEvent::new(now, actor, GovernanceAction::PolicyReloaded).policies(ids.clone());
                self.store.append_event(&e).await?;
                Ok(ids)
            }
            Err(err) => {
                let e = GovernanceEvent::new(now, actor, GovernanceAction::PolicyReloadRefused)
                    .reason(err.to_string());
                self.store.append_event(&e).await?;
                Err(err)
            }
        }
    }

    /// What the candidate set `files` would change for every client in the
    /// inventory, per configured resource and action (`steward policy impact`).
    pub async fn impact(&self, files: &[PathBuf]) -> Result<Vec<ImpactRow>, GovernanceError> {
        let candidate = self.policy_check(files)?;
        let now = self.clock.now();
        let views = self.store.list_client_views().await?;
        let mut rows = Vec::new();
        for v in &views {
            let facts = ClientFacts::derive(v);
            for r in &self.settings.resources {
                let attrs = self.attributes(v, &facts, &r.uri, now);
                let input = DecisionInput {
                    client: &attrs,
                    action: Action::Authorize,
                    resource: r,
                    scopes: &r.scopes,
                    user: None,
                    address: None,
                    now,
                };
                rows.extend(self.engine.impact(&candidate, &[input], Action::ALL));
            }
        }
        Ok(rows)
    }

    // --- people -------------------------------------------------------------

    async fn user(&self, username: &str) -> Result<GovernanceUser, GovernanceError> {
        self.store
            .user_by_name(username)
            .await?
            .ok_or_else(|| GovernanceError::UnknownUser(username.to_owned()))
    }

    /// Sets a user's roles. A person needs the operator role; the local CLI
    /// (a trusted operator on the database) acts as `Actor::system("cli")`.
    pub async fn set_roles(
        &self,
        actor: By<'_>,
        username: &str,
        roles: &[Role],
    ) -> Result<(), GovernanceError> {
        let actor_name = match actor {
            By::User(a) => {
                let a = self.user(a).await?;
                separation::require_role(&a, Role::Operator, "assign roles")?;
                a.username
            }
            By::System(c) => crate::model::system_actor(c.as_str()),
        };
        let target = self.user(username).await?;
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let e = GovernanceEvent::new(self.clock.now(), actor_name, GovernanceAction::RolesSet)
            .subject(&target.username)
            .detail(json!({ "before": target.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(), "after": names }));
        if !self.store.set_roles(&target.id, &roles, &e).await? {
            return Err(GovernanceError::UnknownUser(username.to_owned()));
        }
        Ok(())
    }

    /// Parses a role name, naming it when unknown.
    pub fn parse_role(s: &str) -> Result<Role, GovernanceError> {
        s.parse().map_err(|_| GovernanceError::UnknownRole(s.to_owned()))
    }

    // --- lifecycle ----------------------------------------------------------

    /// Suspends the client: an emergency brake any operator, approver or
    /// owner of the client may pull. Refresh families are kept.
    pub async fn suspend(&self, client_id: &str, actor: &str, reason: &str) -> Result<(), GovernanceError> {
        self.transition(client_id, LifecycleState::Suspended, By::User(actor), reason)
            .await
    }

    /// Resumes a suspended client (operator or approver; never its owner alone).
    pub async fn resume(&self, client_id: &str, actor: &str, reason: &str) -> Result<(), GovernanceError> {
        self.transition(client_id, LifecycleState::Active, By::User(actor), reason)
            .await
    }

    /// Revokes the client for good, with its refresh families and tokens.
    pub async fn revoke(&self, client_id: &str, actor: &str, reason: &str) -> Result<(), GovernanceError> {
        self.transition(client_id, LifecycleState::Revoked, By::User(actor), reason)
            .await
    }

    /// Expires the client (a sweep's or a request expiry's finding).
    pub async fn expire(
        &self,
        client_id: &str,
        cause: SystemCause,
        reason: &str,
    ) -> Result<(), GovernanceError> {
        self.transition(client_id, LifecycleState::Expired, By::System(cause), reason)
            .await
    }

    /// Moves the client to `to`, if the table lets `by` make that move from
    /// the state it is in; compare-and-set, audited in the same transaction.
    pub async fn transition(
        &self,
        client_id: &str,
        to: LifecycleState,
        by: By<'_>,
        reason: &str,
    ) -> Result<(), GovernanceError> {
        let reason = requests::justification(reason, "change a client's state")?;
        let view = self.view(client_id).await?;
        let (capacities, actor) = match by {
            By::User(name) => {
                let u = self.user(name).await?;
                separation::enabled(&u)?;
                (
                    Capacities::person(&u.roles, view.ownership.is_owner(&u.id)),
                    u.username,
                )
            }
            By::System(c) => (Capacities::system(c), crate::model::system_actor(c.as_str())),
        };
        let mv = lifecycle::check(view.state, to, &capacities)?;
        if to == LifecycleState::Active && matches!(by, By::User(_)) {
            let declared = self.declared(&view);
            if ownership::owners_required(&view, declared, self.settings.owner_requirement)
                && !view.ownership.is_complete()
            {
                return Err(GovernanceError::OwnersRequired {
                    client: client_id.to_owned(),
                    purpose: "active",
                });
            }
        }
        let now = self.clock.now();
        let e = GovernanceEvent::new(now, actor, mv.action)
            .client(client_id)
            .states(mv.from, mv.to)
            .reason(reason)
            .detail(json!({ "revoked_refresh_families": mv.revoke_families }));
        match self
            .store
            .transition_client(client_id, mv.from, mv.to, mv.revoke_families, now, &e)
            .await?
        {
            Transition::Applied => Ok(()),
            Transition::Conflict { actual } => Err(GovernanceError::Conflict(format!(
                "client {client_id} changed concurrently: it is now {actual}, not {}; nothing changed",
                mv.from
            ))),
            Transition::Unknown => Err(GovernanceError::UnknownClient(client_id.to_owned())),
        }
    }

    // --- ownership ----------------------------------------------------------

    /// Where the client stands with its owners (`steward clients show`).
    pub fn ownership_status(&self, view: &ClientView) -> OwnershipStatus {
        let declared = self.declared(view);
        ownership::status(
            &view.ownership,
            ownership::owners_required(view, declared, self.settings.owner_requirement),
        )
    }

    /// Adds `username` as an owner of `kind`. Operators and approvers assign
    /// owners; an owner may add a co-owner.
    pub async fn add_owner(
        &self,
        client_id: &str,
        username: &str,
        kind: OwnerKind,
        actor: &str,
    ) -> Result<(), GovernanceError> {
        let view = self.view(client_id).await?;
        let a = self.user(actor).await?;
        separation::enabled(&a)?;
        if !(a.has_role(Role::Operator) || a.has_role(Role::Approver) || view.ownership.is_owner(&a.id)) {
            return Err(GovernanceError::NotPermitted {
                user: a.username,
                what: "assign owners of",
                client: client_id.to_owned(),
                why: "it takes an operator, an approver or an owner of the client",
            });
        }
        let u = self.user(username).await?;
        separation::enabled(&u)?;
        let owner = Owner {
            user_id: u.id,
            username: u.username,
            kind,
        };
        let e = GovernanceEvent::new(self.clock.now(), a.username, GovernanceAction::OwnerAdded)
            .client(client_id)
            .subject(&owner.username)
            .detail(json!({ "kind": kind.as_str() }));
        match self.store.add_owner(client_id, &owner, &e).await? {
            OwnerChange::Applied => Ok(()),
            OwnerChange::Unchanged => Err(GovernanceError::InvalidInput(format!(
                "user {} is already a {kind} owner of client {client_id}",
                owner.username
            ))),
            OwnerChange::UnknownClient => Err(GovernanceError::UnknownClient(client_id.to_owned())),
        }
    }

    /// Several owner changes at once (`steward clients owners ID --add …
    /// --remove …`): every one is checked against the client as it is —
    /// the actor's right to make it, the user, whether it would change
    /// anything, no user named twice — before any is written, so one bad
    /// argument changes nothing. Then the additions, then the removals,
    /// each with its own audit event. Returns how many changes were made.
    pub async fn change_owners(
        &self,
        client_id: &str,
        adds: &[(String, OwnerKind)],
        removes: &[(String, Option<OwnerKind>)],
        actor: &str,
    ) -> Result<usize, GovernanceError> {
        let view = self.view(client_id).await?;
        let a = self.user(actor).await?;
        separation::enabled(&a)?;
        if !removes.is_empty() {
            separation::require_any_role(&a, &[Role::Operator, Role::Approver], "remove owners")?;
        }
        let may_add =
            a.has_role(Role::Operator) || a.has_role(Role::Approver) || view.ownership.is_owner(&a.id);
        if !adds.is_empty() && !may_add {
            return Err(GovernanceError::NotPermitted {
                user: a.username,
                what: "assign owners of",
                client: client_id.to_owned(),
                why: "it takes an operator, an approver or an owner of the client",
            });
        }
        // One user may be added in both capacities, but not twice in one,
        // and not added and removed by the same command.
        let mut added = std::collections::BTreeSet::new();
        for (name, kind) in adds {
            if !added.insert((name.as_str(), kind.as_str())) {
                return Err(GovernanceError::InvalidInput(format!(
                    "user {name} is named twice as a {kind} owner"
                )));
            }
        }
        let mut removed = std::collections::BTreeSet::new();
        for (name, _) in removes {
            if !removed.insert(name.as_str()) || added.iter().any(|(a, _)| a == name) {
                return Err(GovernanceError::InvalidInput(format!(
                    "user {name} is named twice; add or remove each user once"
                )));
            }
        }
        for (username, kind) in adds {
            let u = self.user(username).await?;
            separation::enabled(&u)?;
            if view
                .ownership
                .owners
                .iter()
                .any(|o| o.user_id == u.id && o.kind == *kind)
            {
                return Err(GovernanceError::InvalidInput(format!(
                    "user {username} is already a {kind} owner of client {client_id}"
                )));
            }
        }
        for (username, kind) in removes {
            let u = self.user(username).await?;
            let owns = view
                .ownership
                .owners
                .iter()
                .any(|o| o.user_id == u.id && kind.is_none_or(|k| o.kind == k));
            if !owns {
                return Err(GovernanceError::InvalidInput(match kind {
                    Some(k) => format!("user {username} is not a {k} owner of client {client_id}"),
                    None => format!("user {username} does not own client {client_id}"),
                }));
            }
        }
        for (username, kind) in adds {
            self.add_owner(client_id, username, *kind, actor).await?;
        }
        for (username, kind) in removes {
            self.remove_owner(client_id, username, *kind, actor).await?;
        }
        Ok(adds.len() + removes.len())
    }

    /// Applies a `[[clients]]` entry's `organization` and `owners`: the
    /// configuration that declares a client is its approval (issue 13 item
    /// 3), so this acts as the system (`system:config`), adds the owners it
    /// names that are missing and sets the organization when it differs.
    /// Owners added by people are left alone. Returns how many changes it made.
    pub async fn apply_configured_ownership(
        &self,
        client_id: &str,
        organization: Option<&str>,
        owners: &[(String, OwnerKind)],
    ) -> Result<usize, GovernanceError> {
        let view = self.view(client_id).await?;
        let actor = crate::model::system_actor("config");
        let now = self.clock.now();
        let mut changes = 0;
        if let Some(org) = organization.filter(|o| !o.is_empty())
            && view.ownership.organization.as_deref() != Some(org)
        {
            let e = GovernanceEvent::new(now, &actor, GovernanceAction::OrganizationSet)
                .client(client_id)
                .detail(json!({ "organization": org }));
            if !self.store.set_organization(client_id, Some(org), &e).await? {
                return Err(GovernanceError::UnknownClient(client_id.to_owned()));
            }
            changes += 1;
        }
        for (username, kind) in owners {
            let u = self.user(username).await?;
            if view
                .ownership
                .owners
                .iter()
                .any(|o| o.user_id == u.id && o.kind == *kind)
            {
                continue;
            }
            separation::enabled(&u)?;
            let owner = Owner {
                user_id: u.id,
                username: u.username,
                kind: *kind,
            };
            let e = GovernanceEvent::new(now, &actor, GovernanceAction::OwnerAdded)
                .client(client_id)
                .subject(&owner.username)
                .detail(json!({ "kind": kind.as_str(), "source": "configuration" }));
            match self.store.add_owner(client_id, &owner, &e).await? {
                OwnerChange::Applied => changes += 1,
                OwnerChange::Unchanged => {}
                OwnerChange::UnknownClient => {
                    return Err(GovernanceError::UnknownClient(client_id.to_owned()));
                }
            }
        }
        Ok(changes)
    }

    /// Removes `username`'s ownership (of `kind`, or every kind). Operators
    /// and approvers only.
    pub async fn remove_owner(
        &self,
        client_id: &str,
        username: &str,
        kind: Option<OwnerKind>,
        actor: &str,
    ) -> Result<(), GovernanceError> {
        let a = self.user(actor).await?;
        separation::require_any_role(&a, &[Role::Operator, Role::Approver], "remove owners")?;
        let view = self.view(client_id).await?;
        let u = self.user(username).await?;
        let e = GovernanceEvent::new(self.clock.now(), a.username, GovernanceAction::OwnerRemoved)
            .client(client_id)
            .subject(&u.username)
            .detail(json!({ "kind": kind.map(OwnerKind::as_str) }));
        if !view.ownership.is_owner(&u.id) {
            return Err(GovernanceError::InvalidInput(format!(
                "user {username} does not own client {client_id}"
            )));
        }
        match self.store.remove_owner(client_id, &u.id, kind, &e).await? {
            OwnerChange::Applied => Ok(()),
            OwnerChange::Unchanged => Err(GovernanceError::InvalidInput(format!(
                "user {username} does not own client {client_id} in that capacity"
            ))),
            OwnerChange::UnknownClient => Err(GovernanceError::UnknownClient(client_id.to_owned())),
        }
    }

    /// Sets the accountable organization and the incident contact
    /// (operators and approvers).
    pub async fn set_accountability(
        &self,
        client_id: &str,
        organization: Option<&str>,
        contact: Option<&str>,
        actor: &str,
    ) -> Result<(), GovernanceError> {
        let a = self.user(actor).await?;
        separation::require_any_role(
            &a,
            &[Role::Operator, Role::Approver],
            "set a client's organization",
        )?;
        let now = self.clock.now();
        if let Some(org) = organization {
            let e = GovernanceEvent::new(now, &a.username, GovernanceAction::OrganizationSet)
                .client(client_id)
                .detail(json!({ "organization": org }));
            let org = Some(org).filter(|o| !o.is_empty());
            if !self.store.set_organization(client_id, org, &e).await? {
                return Err(GovernanceError::UnknownClient(client_id.to_owned()));
            }
        }
        if let Some(c) = contact {
            let e = GovernanceEvent::new(now, &a.username, GovernanceAction::ContactSet)
                .client(client_id)
                .detail(json!({ "contact": c }));
            let c = Some(c).filter(|o| !o.is_empty());
            if !self.store.set_contact(client_id, c, &e).await? {
                return Err(GovernanceError::UnknownClient(client_id.to_owned()));
            }
        }
        Ok(())
    }

    /// A user's account was disabled or deleted (call before deleting):
    /// each of their ownerships passes to the next owner of the same kind,
    /// or the client is orphaned. Each step audited.
    pub async fn on_user_disabled(&self, username: &str) -> Result<Vec<SuccessionReport>, GovernanceError> {
        let u = self.user(username).await?;
        let now = self.clock.now();
        let actor = crate::model::system_actor("succession");
        let mut out = Vec::new();
        for client_id in self.store.clients_owned_by(&u.id).await? {
            let Some(view) = self.store.client_view(&client_id).await? else {
                continue;
            };
            for s in ownership::succession(&view.ownership, &u.id) {
                let successor = s.successor.as_ref().map(|o| o.username.clone());
                let action = if successor.is_some() {
                    GovernanceAction::OwnerSucceeded
                } else {
                    GovernanceAction::ClientOrphaned
                };
                let e = GovernanceEvent::new(now, &actor, action)
                    .client(&client_id)
                    .subject(&u.username)
                    .reason(format!("the account of {} was disabled", u.username))
                    .detail(json!({ "kind": s.kind.as_str(), "successor": successor }));
                self.store
                    .remove_owner(&client_id, &u.id, Some(s.kind), &e)
                    .await?;
                out.push(SuccessionReport {
                    client_id: client_id.clone(),
                    kind: s.kind,
                    successor,
                });
            }
        }
        Ok(out)
    }

    // --- access requests ----------------------------------------------------

    /// Opens an access request for scopes the policy said need approval
    /// (`/authorize`, the pending page). An identical pending request of the
    /// same user is returned instead of a duplicate.
    #[allow(clippy::too_many_arguments)] // the request's own fields
    pub async fn open_request(
        &self,
        client_id: &str,
        resource: &str,
        scopes: &[String],
        user: &UserContext,
        justification: &str,
        digest: Option<String>,
    ) -> Result<AccessRequest, GovernanceError> {
        let view = self.view(client_id).await?;
        if matches!(view.state, LifecycleState::Revoked) {
            return Err(GovernanceError::ClientState {
                client: client_id.to_owned(),
                state: view.state,
                why: "no access can be requested for it",
            });
        }
        let r = self.resource(resource)?;
        if scopes.is_empty() {
            return Err(GovernanceError::InvalidInput(
                "an access request names at least one scope".into(),
            ));
        }
        for s in scopes {
            if !r.scopes.is_empty() && !r.scopes.contains(s) {
                return Err(GovernanceError::UnknownScope {
                    resource: resource.to_owned(),
                    scope: s.clone(),
                });
            }
        }
        let justification = justification.trim();
        if justification.chars().count() > requests::MAX_JUSTIFICATION_CHARS {
            return Err(GovernanceError::InvalidInput(
                "the justification is too long".into(),
            ));
        }
        let digest = digest.or_else(|| ClientFacts::derive(&view).digest);
        let now = self.clock.now();
        let pending = self
            .store
            .list_access_requests(&RequestFilter {
                state: Some(RequestState::Pending),
                client_id: Some(client_id.to_owned()),
            })
            .await?;
        if let Some(same) = pending.into_iter().find(|p| {
            p.requested_by == user.id
                && p.resource == resource
                && p.metadata_digest == digest
                && !requests::is_expired(p, now)
                && scopes.iter().all(|s| p.scopes.contains(s))
        }) {
            return Ok(same);
        }
        let mut unique: Vec<String> = Vec::with_capacity(scopes.len());
        for s in scopes {
            if !unique.contains(s) {
                unique.push(s.clone());
            }
        }
        let req = AccessRequest {
            id: requests::new_id("req"),
            client_id: client_id.to_owned(),
            resource: resource.to_owned(),
            scopes: unique,
            requested_by: user.id.clone(),
            requested_by_name: user.username.clone(),
            justification: justification.to_owned(),
            metadata_digest: digest,
            state: RequestState::Pending,
            created_at: now,
            expires_at: now.plus_secs(self.settings.request_expiry_secs),
            decided_by: None,
            decided_by_name: None,
            decided_at: None,
            decision_justification: None,
            granted_scopes: Vec::new(),
            approval_expires_at: None,
        };
        let e = GovernanceEvent::new(now, &user.username, GovernanceAction::RequestOpened)
            .client(client_id)
            .subject(&req.id)
            .detail(
                json!({ "resource": resource, "scopes": req.scopes, "metadata_digest": req.metadata_digest }),
            );
        if !self.store.create_access_request(&req, &e).await? {
            return Err(GovernanceError::UnknownClient(client_id.to_owned()));
        }
        Ok(req)
    }

    async fn request(&self, id: &str) -> Result<AccessRequest, GovernanceError> {
        self.store
            .get_access_request(id)
            .await?
            .ok_or_else(|| GovernanceError::UnknownRequest(id.to_owned()))
    }

    /// Approves a pending request: only by an approver who neither made it
    /// nor owns the client (unless self-approval is allowed, then marked),
    /// with a justification, optionally narrowing the scopes and setting an
    /// end; owners assigned here count toward the owners an approval above
    /// self-service requires. A pending client becomes active with it.
    pub async fn approve(
        &self,
        id: &str,
        approver: &str,
        justification: &str,
        opts: &ApproveOptions,
    ) -> Result<Approval, GovernanceError> {
        let justification = requests::justification(justification, "approve an access request")?;
        let req = self.request(id).await?;
        let now = self.clock.now();
        requests::decidable(&req, now)?;
        let a = self.user(approver).await?;
        let view = self.view(&req.client_id).await?;
        let self_approved =
            separation::check_decider(&a, &req, &view.ownership, self.settings.allow_self_approval)?;
        if !view.state.in_use() {
            return Err(GovernanceError::ClientState {
                client: req.client_id.clone(),
                state: view.state,
                why: "only an active or pending client's requests can be approved",
            });
        }
        let granted = requests::granted_scopes(&req, opts.scopes.as_deref())?;
        if let Some(secs) = opts.expires_in_secs
            && secs <= 0
        {
            return Err(GovernanceError::InvalidInput(
                "an approval's expiry must be in the future".into(),
            ));
        }
        let mut assign = Vec::with_capacity(opts.owners.len());
        for (name, kind) in &opts.owners {
            let u = self.user(name).await?;
            separation::enabled(&u)?;
            assign.push(Owner {
                user_id: u.id,
                username: u.username,
                kind: *kind,
            });
        }
        let mut after = view.ownership.clone();
        for o in &assign {
            if !after
                .owners
                .iter()
                .any(|x| x.user_id == o.user_id && x.kind == o.kind)
            {
                after.owners.push(o.clone());
            }
        }
        let resource = self.resource(&req.resource)?;
        let above_self_service = granted.iter().any(|s| !resource.self_service_scopes.contains(s));
        let declared = self.declared(&view);
        if above_self_service
            && !declared
            && self.settings.owner_requirement != OwnerRequirement::Never
            && !after.is_complete()
        {
            return Err(GovernanceError::OwnersRequired {
                client: req.client_id.clone(),
                purpose: "approved above self-service",
            });
        }
        let activate_pending = view.state == LifecycleState::Pending;
        if activate_pending {
            lifecycle::check(
                LifecycleState::Pending,
                LifecycleState::Active,
                &Capacities::person(&a.roles, false),
            )?;
        }
        let approval = Approval {
            id: requests::new_id("apr"),
            client_id: req.client_id.clone(),
            resource: req.resource.clone(),
            scopes: granted.clone(),
            metadata_digest: req.metadata_digest.clone(),
            approved_by: a.id.clone(),
            approved_at: now,
            expires_at: opts.expires_in_secs.map(|s| now.plus_secs(s)),
            request_id: Some(req.id.clone()),
            self_approved,
        };
        let mut e = GovernanceEvent::new(now, &a.username, GovernanceAction::RequestApproved)
            .client(&req.client_id)
            .subject(&req.id)
            .reason(&justification)
            .detail(json!({
                "resource": req.resource,
                "requested_scopes": req.scopes,
                "granted_scopes": granted,
                "requested_by": req.requested_by_name,
                "metadata_digest": req.metadata_digest,
                "approval_expires_at": approval.expires_at,
                "owners_assigned": assign.iter().map(|o| json!({"username": o.username, "kind": o.kind.as_str()})).collect::<Vec<_>>(),
                "self_approved": self_approved,
            }));
        if activate_pending {
            e = e.states(LifecycleState::Pending, LifecycleState::Active);
        }
        let decision = RequestDecision::Approve {
            approval: approval.clone(),
            assign_owners: assign,
            activate_pending,
        };
        self.finish(&req, &decision, &Actor::user(&a), &justification, now, &e)
            .await?;
        Ok(approval)
    }

    /// Denies a pending request (an approver, with a justification).
    pub async fn deny(&self, id: &str, approver: &str, justification: &str) -> Result<(), GovernanceError> {
        let justification = requests::justification(justification, "deny an access request")?;
        let req = self.request(id).await?;
        let now = self.clock.now();
        requests::decidable(&req, now)?;
        let a = self.user(approver).await?;
        separation::require_role(&a, Role::Approver, "decide access requests")?;
        let e = GovernanceEvent::new(now, &a.username, GovernanceAction::RequestDenied)
            .client(&req.client_id)
            .subject(&req.id)
            .reason(&justification)
            .detail(json!({ "resource": req.resource, "scopes": req.scopes, "requested_by": req.requested_by_name }));
        self.finish(
            &req,
            &RequestDecision::Deny,
            &Actor::user(&a),
            &justification,
            now,
            &e,
        )
        .await
    }

    async fn finish(
        &self,
        req: &AccessRequest,
        decision: &RequestDecision,
        by: &Actor,
        justification: &str,
        now: UnixTime,
        e: &GovernanceEvent,
    ) -> Result<(), GovernanceError> {
        match self
            .store
            .decide_access_request(
                &req.id,
                RequestState::Pending,
                decision,
                by,
                justification,
                now,
                e,
            )
            .await?
        {
            Decided::Applied => Ok(()),
            Decided::Conflict { actual } => Err(GovernanceError::Conflict(format!(
                "access request {} was decided concurrently: it is {actual}; nothing changed",
                req.id
            ))),
            Decided::Unknown => Err(GovernanceError::UnknownRequest(req.id.clone())),
        }
    }

    /// The scopes of `needed` an approver has already decided against for
    /// this client and resource on its current metadata digest: denied, or
    /// narrowed away from an approval. The authorization endpoint drops
    /// them rather than send the user to ask again, so that after a
    /// narrowing approval "the same authorization request succeeds for the
    /// approved scopes" (issue 13 item 7). A changed document (another
    /// digest) reopens the question.
    pub async fn already_decided(
        &self,
        client_id: &str,
        resource: &str,
        needed: &[String],
    ) -> Result<Vec<String>, GovernanceError> {
        let view = self.view(client_id).await?;
        let digest = ClientFacts::derive(&view).digest;
        let decided = self
            .store
            .list_access_requests(&RequestFilter {
                state: None,
                client_id: Some(client_id.to_owned()),
            })
            .await?;
        let settled: BTreeSet<&str> = decided
            .iter()
            .filter(|r| r.resource == resource && r.metadata_digest == digest)
            .filter(|r| matches!(r.state, RequestState::Approved | RequestState::Denied))
            .flat_map(|r| {
                r.scopes
                    .iter()
                    .filter(|s| !r.granted_scopes.contains(s))
                    .map(String::as_str)
            })
            .collect();
        Ok(needed
            .iter()
            .filter(|s| settled.contains(s.as_str()))
            .cloned()
            .collect())
    }

    /// The request-expiry sweep: marks undecided requests past their expiry
    /// `expired`, and moves a pending client whose every request has expired
    /// to `expired`. Returns the ids of the requests it expired.
    pub async fn expire_requests(&self) -> Result<Vec<String>, GovernanceError> {
        let now = self.clock.now();
        let by = Actor::system(SystemCause::RequestExpiry.as_str());
        let pending = self
            .store
            .list_access_requests(&RequestFilter {
                state: Some(RequestState::Pending),
                client_id: None,
            })
            .await?;
        let mut expired = Vec::new();
        let mut clients = BTreeSet::new();
        for r in pending.iter().filter(|r| requests::is_expired(r, now)) {
            let e = GovernanceEvent::new(now, &by.username, GovernanceAction::RequestExpired)
                .client(&r.client_id)
                .subject(&r.id)
                .states(RequestState::Pending, RequestState::Expired);
            if let Decided::Applied = self
                .store
                .decide_access_request(
                    &r.id,
                    RequestState::Pending,
                    &RequestDecision::Expire,
                    &by,
                    "expired undecided",
                    now,
                    &e,
                )
                .await?
            {
                expired.push(r.id.clone());
                clients.insert(r.client_id.clone());
            }
        }
        for c in clients {
            let still = pending
                .iter()
                .any(|r| r.client_id == c && !requests::is_expired(r, now));
            let Some(view) = self.store.client_view(&c).await? else {
                continue;
            };
            if !still && view.state == LifecycleState::Pending {
                match self
                    .transition(
                        &c,
                        LifecycleState::Expired,
                        By::System(SystemCause::RequestExpiry),
                        "its access requests expired undecided",
                    )
                    .await
                {
                    Ok(()) | Err(GovernanceError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(expired)
    }
}

/// A decision's inputs that the service prepares (attributes, resource, time).
struct Prepared<'s> {
    client: ClientAttributes,
    resource: &'s ResourceInfo,
    now: UnixTime,
}

impl Prepared<'_> {
    fn as_input<'a>(&'a self, req: &'a DecideRequest<'a>) -> DecisionInput<'a> {
        DecisionInput {
            client: &self.client,
            action: req.action,
            resource: self.resource,
            scopes: req.scopes,
            user: req.user,
            address: req.address,
            now: self.now,
        }
    }
}
