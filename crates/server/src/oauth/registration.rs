//! Dynamic Client Registration endpoints (RFC 7591 §3, RFC 7592 §2;
//! issue 14): `POST /register`, and `GET`/`PUT`/`DELETE` on
//! `/register/{client_id}` with the registration access token.
//!
//! The rules are `steward_dcr`'s (what a request may say, what each mode
//! admits) and the governance room's (the `register` action decides the
//! scope ceiling; lifecycle moves go through it). This module joins them
//! to HTTP and the store, and answers every refusal in RFC 7591's terms
//! with nothing stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;
use steward_cimd::KeySetLookup;
use steward_core::secret::token_hash;
use steward_core::{ClientKind, LifecycleState, RedirectUriRules, UnixTime};
use steward_dcr::{
    Backing, IssuedCredentials, IssuerKeys, Purpose, Refusal, RegisteredMetadata, RegistrationError,
    RequestRules, RequestedMetadata, TrustedIssuer, admit, dedupe_key, parse_request, statement,
};
use steward_governance::By;
use steward_governance::lifecycle::SystemCause;
use steward_governance::model::ClientView;
use steward_governance::registration;
use steward_jose::StatementError;
use steward_store::{ClientRecord, DcrRegistration, NewAuditEvent, NewRegistration, RegisterOutcome};

use crate::client_address::ClientAddress;
use crate::error::WebError;
use crate::oauth::client_auth::{hash_client_secret, verify_client_secret};
use crate::oauth::limits::{self, AttemptLimiter, Check, Refused, Sharing};
use crate::state::AppState;

/// The path of the registration endpoint, relative to the issuer.
pub const REGISTER_PATH: &str = "/register";

/// Largest registration request body: a real one is a few hundred bytes;
/// the cap keeps an anonymous write path from being a storage sink.
pub const MAX_REGISTRATION_BYTES: usize = 64 * 1024;

/// Limit labels (`steward_auth_lockouts_total{limit}`).
pub const DCR_ADDRESS: &str = "dcr_address";
pub const DCR_GLOBAL: &str = "dcr_global";

/// The registration rate limiter: fixed one-minute windows counted in the
/// database, so every node on one database shares the counts.
pub fn rate_limiter() -> AttemptLimiter {
    AttemptLimiter::new(Duration::from_secs(60), Sharing::Strict)
}

/// A refusal, answered in RFC 7591's terms.
enum Answer {
    /// 400 with the RFC 7591 §3.2.2 error.
    Invalid(RegistrationError),
    /// 401 `invalid_token` (RFC 6750 §3.1): a missing, unknown, expired or
    /// used-up initial access token, or a bad registration access token.
    Unauthorized(&'static str),
    /// 413: the body exceeds [`MAX_REGISTRATION_BYTES`].
    TooLarge,
    /// 429 with `Retry-After`.
    RateLimited {
        retry_after: i64,
    },
    Web(WebError),
}

impl From<RegistrationError> for Answer {
    fn from(e: RegistrationError) -> Self {
        Self::Invalid(e)
    }
}

impl From<WebError> for Answer {
    fn from(e: WebError) -> Self {
        Self::Web(e)
    }
}

fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let outcome = match &self {
            Answer::Invalid(_) | Answer::TooLarge => "invalid",
            Answer::Unauthorized(_) => "unauthorized",
            Answer::RateLimited { .. } => "rate_limited",
            Answer::Web(_) => "error",
        };
        metrics::counter!("steward_dcr_requests_total", "outcome" => outcome).increment(1);
        match self {
            Answer::Invalid(e) => {
                crate::request_log::security_event("registration_refused", None, e.code.as_str());
                let mut res = no_store((StatusCode::BAD_REQUEST, Json(&e)).into_response());
                res.extensions_mut()
                    .insert(crate::request_log::ErrorCodeSent(e.code.as_str()));
                res
            }
            Answer::Unauthorized(description) => {
                let mut res = no_store(
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({ "error": "invalid_token", "error_description": description })),
                    )
                        .into_response(),
                );
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                res
            }
            Answer::TooLarge => no_store(
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Json(json!({
                        "error": "invalid_client_metadata",
                        "error_description": format!("the request body exceeds {MAX_REGISTRATION_BYTES} bytes"),
                    })),
                )
                    .into_response(),
            ),
            Answer::RateLimited { retry_after } => {
                let mut res = no_store(
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        Json(json!({
                            "error": "temporarily_unavailable",
                            "error_description": "too many registrations; retry after the time in Retry-After",
                        })),
                    )
                        .into_response(),
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
                res
            }
            Answer::Web(e) => e.into_response(),
        }
    }
}

fn request_rules(state: &AppState) -> RequestRules {
    RequestRules {
        // Native apps may use private-use schemes (OAuth 2.1 §8.4.1, RFC 8252 §7.1).
        redirect: RedirectUriRules {
            allow_private_use_schemes: true,
        },
        allow_networks: state.settings.egress.allow_networks.clone(),
    }
}

/// The bearer token in `Authorization`, if any. Another scheme is refused.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Answer> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| Answer::Unauthorized("the Authorization header is not a Bearer token"))?;
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(Answer::Unauthorized(
            "the Authorization header is not a Bearer token",
        )),
    }
}

/// RFC 7591 §3.1: the body is `application/json`.
fn json_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, Answer> {
    let body = match body {
        Ok(b) if b.len() > MAX_REGISTRATION_BYTES => return Err(Answer::TooLarge),
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(Answer::TooLarge),
        Err(_) => return Err(RegistrationError::metadata("the request body could not be read").into()),
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(RegistrationError::metadata(
            "the request must be sent as Content-Type: application/json",
        )
        .into());
    }
    Ok(body)
}

async fn rate_limit(state: &AppState, address: IpAddr, now: UnixTime) -> Result<(), Answer> {
    let limits = &state.settings.dcr.rate_limit;
    let checks = vec![
        Check::new(
            DCR_ADDRESS,
            &[&limits::address_key(address)],
            limits.per_address_per_minute,
        ),
        Check::new(DCR_GLOBAL, &[], limits.global_per_minute),
    ];
    match state
        .oauth
        .registrations
        .reserve(state.store.as_ref(), now, checks)
        .await
    {
        // Every registration attempt counts, whatever its outcome.
        Ok(reservation) => {
            reservation.keep();
            Ok(())
        }
        Err(Refused::Locked(_)) => Err(Answer::RateLimited {
            retry_after: 60 - now.0.rem_euclid(60),
        }),
        Err(Refused::Store(e)) => Err(WebError::internal(e).into()),
    }
}

/// Who stands behind a new registration: an initial access token, or nobody.
async fn backing(state: &AppState, headers: &HeaderMap, now: UnixTime) -> Result<Backing, Answer> {
    let Some(token) = bearer(headers)? else {
        return Ok(Backing::Anonymous);
    };
    let found = state
        .store
        .initial_token_by_hash(&token_hash(token))
        .await
        .map_err(WebError::internal)?;
    match found {
        Some(t) if t.usable(now) => Ok(Backing::InitialToken {
            id: t.id,
            tier: t.tier,
        }),
        Some(_) => Err(Answer::Unauthorized(
            "the initial access token is expired, revoked or used up",
        )),
        None => Err(Answer::Unauthorized("unknown initial access token")),
    }
}

/// The request with its software statement applied (RFC 7591 §2.3): the
/// statement's issuer must be in `[[dcr.trusted_issuers]]` (else
/// `unapproved_software_statement`, before any key is fetched), its
/// signature must verify with that issuer's keys (else
/// `invalid_software_statement`), and its claims replace the body's members,
/// read again by the same rules. Returns the issuer that backs it.
async fn with_statement<'a>(
    state: &'a AppState,
    body: &[u8],
    req: RequestedMetadata,
    purpose: Purpose<'_>,
    now: UnixTime,
) -> Result<(RequestedMetadata, Option<&'a TrustedIssuer>), Answer> {
    let Some(statement) = req.software_statement.clone() else {
        return Ok((req, None));
    };
    let issuer = statement::trusted_issuer(&state.settings.dcr.trusted_issuers, &statement)?;
    let jwks = issuer_keys(state, issuer).await?;
    let claims = match statement::verify(issuer, &jwks, &statement, &state.issuer, now) {
        Ok(c) => c,
        Err(e) => {
            if let (StatementError::UnknownKid(_), IssuerKeys::Uri(uri)) = (&e, issuer.keys()) {
                // The issuer may have rotated its keys: refetch, at most
                // once per cache lifetime, for the client's next attempt.
                state.cimd.key_sets().unknown_kid(uri);
            }
            return Err(RegistrationError::statement(e.to_string()).into());
        }
    };
    let merged = statement::overlay(body, &claims)?;
    let req = parse_request(&merged, &request_rules(state), purpose)?;
    Ok((req, Some(issuer)))
}

/// A trusted issuer's key set: inline, or fetched from its `jwks_uri`
/// through the guarded fetcher (the registration endpoint may wait on the
/// network; the key set is then held like a client's).
async fn issuer_keys(state: &AppState, issuer: &TrustedIssuer) -> Result<Value, Answer> {
    match issuer.keys() {
        IssuerKeys::Inline(keys) => Ok(keys.clone()),
        IssuerKeys::Uri(uri) => {
            let sets = state.cimd.key_sets();
            sets.prefetch(uri).await;
            match sets.for_token(uri) {
                KeySetLookup::Ready(keys) => Ok((*keys).clone()),
                KeySetLookup::Pending { .. } => Err(RegistrationError::statement(format!(
                    "the keys of {} at {uri} could not be fetched yet; retry shortly",
                    issuer.issuer
                ))
                .into()),
                KeySetLookup::Failed { reason } => Err(RegistrationError::statement(format!(
                    "the keys of {} at {uri} could not be fetched ({reason})",
                    issuer.issuer
                ))
                .into()),
            }
        }
    }
}

/// Asks the `register` action for the scope ceiling; refused when nothing
/// is left.
fn ceiling(
    state: &AppState,
    view: &ClientView,
    req: &RequestedMetadata,
    issuer: Option<&TrustedIssuer>,
    address: IpAddr,
) -> Result<(Vec<String>, Value), Answer> {
    let requested: Option<Vec<String>> = req.scope.as_ref().map(|s| s.iter().map(str::to_owned).collect());
    let decided = state
        .governance
        .registrable_scopes(
            view,
            requested.as_deref(),
            issuer.map(|i| i.scopes.as_slice()),
            Some(address),
        )
        .map_err(WebError::internal)?;
    let dropped: Vec<Value> = decided
        .dropped
        .iter()
        .map(|(s, r)| json!({ "scope": s, "reason": r.as_str() }))
        .collect();
    if decided.accepted.is_empty() {
        let what = if requested.is_some() {
            "none of the requested scopes may be registered here"
        } else {
            "this server offers no self-service scopes; name the scopes you need in scope"
        };
        let why: Vec<String> = decided
            .dropped
            .iter()
            .map(|(s, r)| format!("{s} ({})", r.as_str()))
            .collect();
        return Err(RegistrationError::metadata(if why.is_empty() {
            what.to_owned()
        } else {
            format!("{what}: {}", why.join(", "))
        })
        .into());
    }
    Ok((
        decided.accepted,
        json!({ "dropped": dropped, "policy_ids": decided.policy_ids }),
    ))
}

fn audit(now: UnixTime, actor: &str, action: &str, client_id: &str, detail: Value) -> NewAuditEvent {
    NewAuditEvent {
        at: now,
        actor: actor.to_owned(),
        action: action.to_owned(),
        client_id: Some(client_id.to_owned()),
        subject: None,
        detail: detail.to_string(),
    }
}

fn configuration_uri(state: &AppState, client_id: &str) -> String {
    format!(
        "{}{REGISTER_PATH}/{}",
        state.issuer.trim_end_matches('/'),
        url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>()
    )
}

/// The registration response body (RFC 7591 §3.2.1, RFC 7592 §3).
fn response_body(
    state: &AppState,
    client_id: &str,
    issued_at: UnixTime,
    meta: &RegisteredMetadata,
    secret: Option<&steward_core::secret::Secret>,
    access_token: Option<&steward_core::secret::Secret>,
) -> Value {
    let mut map = meta.response_members();
    map.insert("client_id".into(), json!(client_id));
    map.insert("client_id_issued_at".into(), json!(issued_at.0));
    if let Some(s) = secret {
        map.insert("client_secret".into(), json!(s.expose()));
        // RFC 7591 §3.2.1: REQUIRED with a secret; 0 = it does not expire.
        map.insert("client_secret_expires_at".into(), json!(0));
    }
    if let Some(t) = access_token {
        map.insert("registration_access_token".into(), json!(t.expose()));
    }
    map.insert(
        "registration_client_uri".into(),
        json!(configuration_uri(state, client_id)),
    );
    Value::Object(map)
}

/// `POST /register` (RFC 7591 §3.1).
pub async fn register(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match register_inner(&state, address, &headers, body).await {
        Ok(res) => res,
        Err(answer) => answer.into_response(),
    }
}

async fn register_inner(
    state: &AppState,
    address: IpAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Answer> {
    let now = state.clock.now();
    rate_limit(state, address, now).await?;
    let body = json_body(headers, body)?;
    let token = backing(state, headers, now).await?;
    let req = parse_request(&body, &request_rules(state), Purpose::Register)?;
    let (req, issuer) = with_statement(state, &body, req, Purpose::Register, now).await?;
    // A verified statement backs the registration with its issuer's tier; an
    // initial access token sent with it is still checked and counted.
    let backing = match issuer {
        Some(i) => Backing::Statement {
            issuer: i.issuer.clone(),
            tier: i.tier,
        },
        None => token.clone(),
    };
    let admitted = match admit(state.settings.dcr.mode, &backing, &req) {
        Ok(a) => a,
        Err(Refusal::CredentialRequired) => {
            return Err(Answer::Unauthorized(
                "registration on this server needs an initial access token (Authorization: Bearer) \
                 or a software statement from a trusted issuer",
            ));
        }
        Err(Refusal::Invalid(e)) => return Err(e.into()),
    };
    let issued = IssuedCredentials::new(admitted.auth_method);
    // Decide the ceiling on the registration as asked (its claims are the
    // facts the policy sees), then store the registration with it.
    let asked = RegisteredMetadata::new(
        &req,
        &admitted,
        req.scope
            .as_ref()
            .map(|s| s.iter().map(str::to_owned).collect())
            .unwrap_or_default(),
    );
    let view = registration::new_registration(&issued.client_id, admitted.tier, &asked.to_json(), now);
    let (scopes, decision) = ceiling(state, &view, &req, issuer, address)?;
    let meta = RegisteredMetadata::new(&req, &admitted, scopes);
    let registration_json = meta.to_json();
    let record = ClientRecord {
        client_id: issued.client_id.clone(),
        kind: ClientKind::Dynamic,
        display_name: meta.client_name.clone(),
        first_seen: now,
        last_seen: now,
        state: LifecycleState::Active,
        owner_organization: None,
        owner_business: None,
        owner_technical: None,
        owner_contact: None,
        trust_tier: admitted.tier,
        secret_hash: issued
            .client_secret
            .as_ref()
            .map(|s| hash_client_secret(&state.oauth.secret_key, s.expose())),
        registration: registration_json,
        created_at: now,
        updated_at: now,
    };
    let token_id = match &token {
        Backing::InitialToken { id, .. } => Some(id.clone()),
        _ => None,
    };
    let backed_by = match &backing {
        Backing::Anonymous => json!("anonymous"),
        Backing::InitialToken { id, .. } => json!({ "initial_access_token": id }),
        Backing::Statement { issuer, .. } => {
            json!({ "software_statement": issuer, "initial_access_token": token_id })
        }
    };
    let registration = DcrRegistration {
        client_id: issued.client_id.clone(),
        source_address: Some(address.to_string()),
        software_id: meta.software_id.clone(),
        statement_issuer: match &backing {
            Backing::Statement { issuer, .. } => Some(issuer.clone()),
            _ => None,
        },
        initial_token_id: token_id,
        dedupe_key: dedupe_key(&meta, Some(address)),
        access_token_hash: token_hash(issued.registration_access_token.expose()),
        registered_at: now,
        last_authorized_at: None,
        last_token_at: None,
    };
    let detail = json!({
        "source_address": address.to_string(),
        "software_id": meta.software_id,
        "client_name": meta.client_name,
        "token_endpoint_auth_method": meta.token_endpoint_auth_method,
        "grant_types": meta.grant_types,
        "scopes": meta.scopes,
        "backed_by": backed_by,
        "tier": admitted.tier.as_str(),
        "decision": decision,
    });
    let window = i64::try_from(state.settings.dcr.dedupe_window_secs).unwrap_or(i64::MAX);
    let outcome = state
        .store
        .register_client(&NewRegistration {
            client: &record,
            registration: &registration,
            dedupe_since: UnixTime(now.0.saturating_sub(window)),
            created_event: &audit(
                now,
                "system:dcr",
                "client.registered",
                &record.client_id,
                detail.clone(),
            ),
            dedupe_event: &audit(
                now,
                "system:dcr",
                "client.registration_deduplicated",
                &record.client_id,
                json!({ "source_address": address.to_string(), "software_id": meta.software_id }),
            ),
        })
        .await
        .map_err(WebError::internal)?;
    let body = match outcome {
        RegisterOutcome::Created => {
            metrics::counter!("steward_dcr_requests_total", "outcome" => "registered").increment(1);
            tracing::info!(client_id = %record.client_id, source = %address, "client registered");
            // The token endpoint verifies private_key_jwt with held keys
            // only; fetch them now, through the guarded fetcher.
            if let Some(uri) = &meta.jwks_uri {
                state.cimd.key_sets().prefetch(uri).await;
            }
            response_body(
                state,
                &record.client_id,
                now,
                &meta,
                issued.client_secret.as_ref(),
                Some(&issued.registration_access_token),
            )
        }
        RegisterOutcome::Existing {
            client_id,
            registration,
        } => {
            metrics::counter!("steward_dcr_requests_total", "outcome" => "deduplicated").increment(1);
            let existing: RegisteredMetadata = serde_json::from_str(&registration)
                .map_err(|e| WebError::internal(format!("stored registration of {client_id}: {e}")))?;
            let reg = state
                .store
                .dcr_registration(&client_id)
                .await
                .map_err(WebError::internal)?;
            let issued_at = reg.map_or(now, |r| r.registered_at);
            // The stored secret was replaced only when this request issued
            // one; a secret client deduplicated from a public request would
            // otherwise get back a registration it cannot use.
            if existing.auth_method().is_some_and(|m| m.uses_secret()) && issued.client_secret.is_none() {
                return Err(RegistrationError::metadata(
                    "a confidential client with this software_id is already registered from this address; \
                     register it the same way",
                )
                .into());
            }
            response_body(
                state,
                &client_id,
                issued_at,
                &existing,
                issued.client_secret.as_ref(),
                Some(&issued.registration_access_token),
            )
        }
        RegisterOutcome::TokenRefused => {
            return Err(Answer::Unauthorized(
                "the initial access token is expired, revoked or used up",
            ));
        }
    };
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// Records that a dynamic client was used (the liveness sweeps read it);
/// a failure is logged, never fails the request that used the client.
pub async fn mark_use(state: &AppState, client_id: &str, what: steward_store::DcrUse) {
    let key = (client_id.to_owned(), what == steward_store::DcrUse::Token);
    if state.oauth.dcr_uses.contains_key(&key) {
        return;
    }
    match state.store.mark_dcr_use(client_id, what, state.clock.now()).await {
        Ok(()) => state.oauth.dcr_uses.insert(key, ()),
        Err(e) => tracing::warn!(error = %e, client_id, "could not record a registered client's use"),
    }
}

/// The registration the registration access token in `headers` is for, if
/// it is `client_id`'s and the client may still be managed. RFC 7592 §2:
/// anything else is 401, and an unknown client is not told apart from a
/// bad token.
async fn managed(
    state: &AppState,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<(DcrRegistration, ClientRecord), Answer> {
    const BAD: &str = "the registration access token is not valid for this client";
    let token = bearer(headers)?.ok_or(Answer::Unauthorized(BAD))?;
    let reg = state
        .store
        .registration_by_token(&token_hash(token))
        .await
        .map_err(WebError::internal)?
        .filter(|r| r.client_id == client_id)
        .ok_or(Answer::Unauthorized(BAD))?;
    let record = state
        .store
        .get_client(client_id)
        .await
        .map_err(WebError::internal)?
        .filter(|c| c.kind == ClientKind::Dynamic && !matches!(c.state, LifecycleState::Revoked))
        .ok_or(Answer::Unauthorized(BAD))?;
    Ok((reg, record))
}

fn stored_metadata(record: &ClientRecord) -> Result<RegisteredMetadata, Answer> {
    serde_json::from_str(&record.registration).map_err(|e| {
        Answer::Web(WebError::internal(format!(
            "stored registration of {}: {e}",
            record.client_id
        )))
    })
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
pub async fn read(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (reg, record) = managed(&state, &headers, &client_id).await?;
        let meta = stored_metadata(&record)?;
        let body = response_body(&state, &client_id, reg.registered_at, &meta, None, None);
        Ok::<_, Answer>(no_store(Json(body).into_response()))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the registration,
/// recorded as a new version of the client's history. The scope ceiling is
/// decided again; the authentication method cannot change (a new method
/// means new credentials: register a new client).
pub async fn update(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let (reg, record) = managed(&state, &headers, &client_id).await?;
        let body = json_body(&headers, body)?;
        let req = parse_request(
            &body,
            &request_rules(&state),
            Purpose::Update {
                client_id: &client_id,
            },
        )?;
        let now = state.clock.now();
        let (req, issuer) = with_statement(
            &state,
            &body,
            req,
            Purpose::Update {
                client_id: &client_id,
            },
            now,
        )
        .await?;
        // What a statement asserted, only a statement from the same issuer
        // may change: otherwise a PUT without it would rewrite signed claims
        // (redirect URIs, software id) with unsigned ones.
        if issuer.map(|i| i.issuer.as_str()) != reg.statement_issuer.as_deref() {
            return Err(match &reg.statement_issuer {
                Some(backer) => RegistrationError::statement(format!(
                    "this client was registered with a software statement from {backer}; \
                     an update must carry a current one from the same issuer"
                )),
                None => RegistrationError::metadata(
                    "this client was registered without a software statement; \
                     register a new client to be backed by one",
                ),
            }
            .into());
        }
        let current = stored_metadata(&record)?;
        if let Some(sent) = &req.client_secret {
            let matches = record
                .secret_hash
                .as_deref()
                .is_some_and(|h| verify_client_secret(&state.oauth.secret_key, sent, h));
            if !matches {
                return Err(
                    RegistrationError::metadata("client_secret does not match (RFC 7592 §2.2)").into(),
                );
            }
        }
        // The client keeps the standing it registered with: the registration
        // access token proves it is the same client, not a new backer.
        let backing = match &reg.initial_token_id {
            None if reg.statement_issuer.is_none() => Backing::Anonymous,
            _ => Backing::InitialToken {
                id: reg.initial_token_id.clone().unwrap_or_default(),
                tier: record.trust_tier,
            },
        };
        let mut admitted = match admit(steward_dcr::Mode::Open, &backing, &req) {
            Ok(a) => a,
            Err(Refusal::Invalid(e)) => return Err(e.into()),
            Err(Refusal::CredentialRequired) => {
                return Err(Answer::Unauthorized("registration access token required"));
            }
        };
        admitted.tier = record.trust_tier;
        if Some(admitted.auth_method) != current.auth_method() {
            return Err(RegistrationError::metadata(format!(
                "token_endpoint_auth_method cannot change from {} (register a new client for another method)",
                current.token_endpoint_auth_method
            ))
            .into());
        }
        let stored = state
            .store
            .client_view(&client_id)
            .await
            .map_err(WebError::internal)?
            .ok_or(Answer::Unauthorized(
                "the registration access token is not valid for this client",
            ))?;
        let asked = RegisteredMetadata::new(
            &req,
            &admitted,
            req.scope
                .as_ref()
                .map(|s| s.iter().map(str::to_owned).collect())
                .unwrap_or_default(),
        );
        let view = registration::updated_registration(stored, asked.to_json());
        let (scopes, decision) = ceiling(&state, &view, &req, issuer, address)?;
        let meta = RegisteredMetadata::new(&req, &admitted, scopes);
        let event = audit(
            now,
            &format!("client:{client_id}"),
            "client.registration_updated",
            &client_id,
            json!({
                "source_address": address.to_string(),
                "before_digest": steward_governance::facts::sha256_hex(&record.registration),
                "after_digest": steward_governance::facts::sha256_hex(&meta.to_json()),
                "scopes": meta.scopes,
                "decision": decision,
            }),
        );
        let updated = state
            .store
            .update_dcr_client(
                &client_id,
                &meta.to_json(),
                meta.client_name.as_deref(),
                now,
                &event,
            )
            .await
            .map_err(WebError::internal)?;
        if !updated {
            return Err(Answer::Unauthorized(
                "the registration access token is not valid for this client",
            ));
        }
        let body = response_body(&state, &client_id, reg.registered_at, &meta, None, None);
        Ok::<_, Answer>(no_store(Json(body).into_response()))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): the client is revoked —
/// through the governance room, with its refresh families and tokens — and
/// its registration access token stops working with it.
pub async fn delete(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        managed(&state, &headers, &client_id).await?;
        match state
            .governance
            .transition(
                &client_id,
                LifecycleState::Revoked,
                By::System(SystemCause::Deregistration),
                "the client deleted its registration (RFC 7592 §2.3)",
            )
            .await
        {
            Ok(()) => {}
            // Expired: it cannot end itself this way; it is already out of use.
            Err(steward_governance::GovernanceError::Lifecycle(_)) => {
                return Err(Answer::Unauthorized(
                    "the registration access token is not valid for this client",
                ));
            }
            Err(e) => return Err(WebError::internal(e).into()),
        }
        Ok::<_, Answer>(no_store(StatusCode::NO_CONTENT.into_response()))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// What one liveness sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// `false`: another node holds this interval's sweep.
    pub ran: bool,
    /// Registrations never authorized within `dcr.unused_ttl_secs`, deleted.
    pub deleted: Vec<String>,
    /// Registrations issued no token for `dcr.idle_ttl_secs`, expired.
    pub expired: Vec<String>,
}

/// Most clients one sweep deletes or expires; the next interval goes on.
pub const SWEEP_BATCH: u32 = 500;

/// The liveness sweep (issue 14 §3): deletes registrations nobody used and
/// expires idle ones, through the governance room. One node per interval
/// runs it: the nodes race for a counter limited to one in the database
/// (the attempt counters every node shares), and only the winner sweeps.
pub async fn sweep(state: &AppState, interval_secs: u64) -> Result<SweepReport, WebError> {
    let now = state.clock.now();
    let dcr = &state.settings.dcr;
    let interval = i64::try_from(interval_secs.max(1)).unwrap_or(i64::MAX);
    let window = now.0 - now.0.rem_euclid(interval);
    let claimed = state
        .store
        .reserve_attempt(
            "sweep:dcr_liveness",
            UnixTime(window),
            UnixTime(window.saturating_add(interval)),
            1,
        )
        .await
        .map_err(WebError::internal)?;
    if claimed.is_none() {
        tracing::debug!(window, "registration sweep held by another node");
        return Ok(SweepReport::default());
    }
    tracing::debug!(window, "registration sweep claimed");
    let mut report = SweepReport {
        ran: true,
        ..SweepReport::default()
    };
    let ago = |secs: u64| now.plus_secs(-i64::try_from(secs).unwrap_or(i64::MAX));
    let unused_before = ago(dcr.unused_ttl_secs);
    for id in state
        .store
        .unused_dcr_clients(unused_before, SWEEP_BATCH)
        .await
        .map_err(WebError::internal)?
    {
        let event = audit(
            now,
            "system:sweep",
            "client.registration_deleted_unused",
            &id,
            json!({ "unused_ttl_secs": dcr.unused_ttl_secs }),
        );
        if state
            .store
            .delete_unused_dcr_client(&id, unused_before, &event)
            .await
            .map_err(WebError::internal)?
        {
            report.deleted.push(id);
        }
    }
    let reason = format!(
        "no token was issued to this registered client for {} days (dcr.idle_ttl_secs)",
        dcr.idle_ttl_secs / 86_400
    );
    for id in state
        .store
        .idle_dcr_clients(ago(dcr.idle_ttl_secs), SWEEP_BATCH)
        .await
        .map_err(WebError::internal)?
    {
        match state.governance.expire(&id, SystemCause::Sweep, &reason).await {
            Ok(()) => report.expired.push(id),
            // Moved meanwhile (suspended, revoked): nothing to expire.
            Err(e) => tracing::info!(client_id = %id, error = %e, "idle registration not expired"),
        }
    }
    for (kind, n) in [
        ("dcr_unused", report.deleted.len()),
        ("dcr_idle", report.expired.len()),
    ] {
        metrics::counter!("steward_purge_rows_total", "kind" => kind)
            .increment(u64::try_from(n).unwrap_or(0));
    }
    Ok(report)
}
