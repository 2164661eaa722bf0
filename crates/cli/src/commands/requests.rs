//! `steward requests list|show|approve|deny`: access requests (issue 13
//! item 7). A request is opened at `/authorize` when the policy says a scope
//! needs approval; an approver decides it here, always with a
//! justification. Who may decide, what an approval may grant and which
//! owners it needs are the room's rules (`Governance::approve`, `deny`).

use anyhow::{Result, anyhow};
use serde_json::{Value, json};
use std::process::ExitCode;
use steward_core::{Clock, SystemClock, UnixTime};
use steward_governance::model::{AccessRequest, Approval, RequestFilter, RequestState};
use steward_governance::port::GovernanceStore;
use steward_governance::{ApproveOptions, GovernanceError, requests};
use steward_server::settings::Settings;

use super::date;
use super::room::{self, Output, parse_duration, parse_owner, time_json, words};

/// What `steward requests approve` was asked for.
pub struct ApproveArgs {
    pub id: String,
    pub actor: String,
    pub justification: String,
    pub scopes: Vec<String>,
    pub expires_in: Option<String>,
    pub owners: Vec<String>,
}

/// A request as JSON: people by username.
fn request_json(r: &AccessRequest, now: UnixTime) -> Value {
    json!({
        "id": r.id,
        "client_id": r.client_id,
        "resource": r.resource,
        "scopes": r.scopes,
        "state": r.state.as_str(),
        "requested_by": r.requested_by_name,
        "justification": r.justification,
        "metadata_digest": r.metadata_digest,
        "created_at": time_json(r.created_at),
        "expires_at": time_json(r.expires_at),
        "expired": r.state == RequestState::Pending && requests::is_expired(r, now),
        "decided_by": r.decided_by_name,
        "decided_at": r.decided_at.map(time_json),
        "decision_justification": r.decision_justification,
        "granted_scopes": r.granted_scopes,
        "approval_expires_at": r.approval_expires_at.map(time_json),
    })
}

/// The state column: a pending request past its expiry can no longer be
/// decided, whether or not the expiry sweep has marked it yet.
fn state_text(r: &AccessRequest, now: UnixTime) -> String {
    if r.state == RequestState::Pending && requests::is_expired(r, now) {
        "pending (expired)".to_owned()
    } else {
        r.state.to_string()
    }
}

fn parse_state(s: &str) -> Result<RequestState> {
    s.parse()
        .map_err(|_| anyhow!("unknown request state {s:?} (pending, approved, denied, expired)"))
}

pub async fn list(
    settings: Settings,
    state: Option<String>,
    client: Option<String>,
    output: Output,
) -> Result<ExitCode> {
    let filter = RequestFilter {
        state: state.as_deref().map(parse_state).transpose()?,
        client_id: client,
    };
    let store = room::store(&settings).await?;
    let all = store.list_access_requests(&filter).await?;
    let now = SystemClock.now();
    if output == Output::Json {
        room::print_json(&Value::Array(all.iter().map(|r| request_json(r, now)).collect()))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<30} {:<18} {:<20} {:<40} {:<30} SCOPES",
        "ID", "STATE", "REQUESTED BY", "CLIENT ID", "RESOURCE"
    );
    for r in &all {
        println!(
            "{:<30} {:<18} {:<20} {:<40} {:<30} {}",
            r.id,
            state_text(r, now),
            r.requested_by_name,
            r.client_id,
            r.resource,
            words(&r.scopes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(store: &dyn GovernanceStore, id: &str) -> Result<AccessRequest> {
    store
        .get_access_request(id)
        .await?
        .ok_or_else(|| GovernanceError::UnknownRequest(id.to_owned()).into())
}

fn print_request(r: &AccessRequest, now: UnixTime) {
    println!("id:             {}", r.id);
    println!("client_id:      {}", r.client_id);
    println!("resource:       {}", r.resource);
    println!("scopes:         {}", words(&r.scopes));
    println!("state:          {}", state_text(r, now));
    println!("requested by:   {}", r.requested_by_name);
    println!(
        "justification:  {}",
        if r.justification.is_empty() {
            "-"
        } else {
            &r.justification
        }
    );
    println!("metadata:       {}", r.metadata_digest.as_deref().unwrap_or("-"));
    println!("created:        {}", date(r.created_at));
    println!("expires:        {}", date(r.expires_at));
    if let Some(by) = &r.decided_by_name {
        println!("decided by:     {by}");
    }
    if let Some(at) = r.decided_at {
        println!("decided:        {}", date(at));
    }
    if let Some(j) = &r.decision_justification {
        println!("decision note:  {j}");
    }
    if r.state == RequestState::Approved {
        println!("granted scopes: {}", words(&r.granted_scopes));
        println!(
            "approval ends:  {}",
            r.approval_expires_at
                .map(date)
                .unwrap_or_else(|| "never".to_owned())
        );
    }
}

pub async fn show(settings: Settings, id: &str, output: Output) -> Result<ExitCode> {
    let store = room::store(&settings).await?;
    let r = get(store.as_ref(), id).await?;
    let now = SystemClock.now();
    match output {
        Output::Json => room::print_json(&request_json(&r, now))?,
        Output::Text => print_request(&r, now),
    }
    Ok(ExitCode::SUCCESS)
}

fn approval_json(a: &Approval) -> Value {
    json!({
        "id": a.id,
        "scopes": a.scopes,
        "metadata_digest": a.metadata_digest,
        "approved_at": time_json(a.approved_at),
        "expires_at": a.expires_at.map(time_json),
        "self_approved": a.self_approved,
    })
}

pub async fn approve(settings: Settings, args: ApproveArgs, output: Output) -> Result<ExitCode> {
    let owners = args
        .owners
        .iter()
        .map(|o| parse_owner(o))
        .collect::<Result<Vec<_>>>()?;
    let opts = ApproveOptions {
        scopes: (!args.scopes.is_empty()).then_some(args.scopes),
        expires_in_secs: args.expires_in.as_deref().map(parse_duration).transpose()?,
        owners,
    };
    let (store, room) = room::open(&settings).await?;
    let approval = room
        .approve(&args.id, &args.actor, &args.justification, &opts)
        .await?;
    let r = get(store.as_ref(), &args.id).await?;
    let now = SystemClock.now();
    match output {
        Output::Json => {
            let mut v = request_json(&r, now);
            v["approval"] = approval_json(&approval);
            room::print_json(&v)?;
        }
        Output::Text => {
            println!(
                "approved request {} for client {}: {} on {}",
                r.id,
                r.client_id,
                words(&approval.scopes),
                r.resource
            );
            println!(
                "approval {} ends {}",
                approval.id,
                approval
                    .expires_at
                    .map(date)
                    .unwrap_or_else(|| "never".to_owned())
            );
            if approval.self_approved {
                println!("marked self-approved in the audit trail (governance.allow_self_approval)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn deny(
    settings: Settings,
    id: &str,
    actor: &str,
    justification: &str,
    output: Output,
) -> Result<ExitCode> {
    let (store, room) = room::open(&settings).await?;
    room.deny(id, actor, justification).await?;
    let r = get(store.as_ref(), id).await?;
    match output {
        Output::Json => room::print_json(&request_json(&r, SystemClock.now()))?,
        Output::Text => println!("denied request {} for client {}", r.id, r.client_id),
    }
    Ok(ExitCode::SUCCESS)
}
