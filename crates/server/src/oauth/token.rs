//! The token endpoint (OAuth 2.1 §3.2): `authorization_code`,
//! `refresh_token` and `client_credentials`. It never touches the network:
//! clients, their metadata and their `jwks_uri` key sets come from the store
//! and from what the resolver holds (`steward_cimd::key_sets`, `token_view`).
//!
//! Every response carries `Cache-Control: no-store` (§3.2.3); errors follow
//! RFC 6749 §5.2 through `WebError`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use steward_core::pkce::CodeChallenge;
use steward_core::scope::ScopeSet;
use steward_core::secret::{ordered_id, token_hash};
use steward_core::{ErrorCode, OAuthError};
use steward_governance::Action;
use steward_store::{CodeConsumption, NewAuditEvent, NewRefreshFamily, Rotation};

use crate::client_address::ClientAddress;
use crate::error::WebError;
use crate::oauth::client_auth::{self, Authenticated};
use crate::oauth::params::Params;
use crate::oauth::tokens::{
    AccessGrant, invalid_grant, issue_access_token, mint_access_token, new_refresh_token,
};
use crate::state::AppState;

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

fn no_store(body: TokenResponse) -> Response {
    let mut res = Json(body).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

fn form_only(headers: &HeaderMap) -> Result<(), WebError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    {
        Ok(())
    } else {
        Err(WebError::oauth(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        )))
    }
}

pub async fn token(
    State(state): State<AppState>,
    ClientAddress(client_address): ClientAddress,
    headers: HeaderMap,
    body: String,
) -> Result<Response, WebError> {
    form_only(&headers)?;
    let params = Params::parse(&body);
    if params.first_repeated().is_some() {
        return Err(WebError::oauth(OAuthError::invalid_request(
            "a parameter is repeated",
        )));
    }
    let auth = client_auth::authenticate(
        &state,
        &headers,
        &params,
        client_address,
        crate::oauth::clients::View::Read,
    )
    .await?;
    let answer = match params.get("grant_type") {
        Some("authorization_code") => authorization_code(&state, &auth, &params).await,
        Some("refresh_token") => refresh_token(&state, &auth, &params).await,
        Some("client_credentials") => client_credentials(&state, &auth, &params).await,
        Some(_) => Err(WebError::oauth(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "the grant type is not supported",
        ))),
        None => Err(WebError::oauth(OAuthError::invalid_request(
            "grant_type is required",
        ))),
    };
    if answer.is_ok() && auth.client.kind == steward_core::ClientKind::Dynamic {
        crate::oauth::registration::mark_use(&state, &auth.client.id, steward_store::DcrUse::Token).await;
    }
    answer
}

fn unauthorized_grant() -> WebError {
    WebError::oauth(OAuthError::new(
        ErrorCode::UnauthorizedClient,
        "the client may not use this grant type",
    ))
}

async fn audit(
    state: &AppState,
    action: &str,
    client_id: &str,
    subject: Option<&str>,
    detail: serde_json::Value,
) {
    let event = NewAuditEvent {
        at: state.clock.now(),
        actor: "steward".to_owned(),
        action: action.to_owned(),
        client_id: Some(client_id.to_owned()),
        subject: subject.map(str::to_owned),
        detail: detail.to_string(),
    };
    crate::request_log::audited(action, Some(client_id));
    if let Err(e) = state.store.append_audit(&event).await {
        tracing::warn!(error = %e, "could not write audit event");
    }
}

/// OAuth 2.1 §4.1.3. The code is checked, then consumed atomically before
/// anything is issued, so of any number of concurrent redemptions exactly
/// one succeeds.
///
/// Everything that binds the code to its rightful redeemer — the client it
/// was issued to, the PKCE verifier, the redirect URI — is checked on a
/// read of the code *before* it is consumed. A "use" of the code in the
/// sense of §4.1.3 ("if an authorization code is used more than once") is a
/// redemption by the client it was issued to that proves the PKCE secret;
/// a presentation that fails those checks changes nothing. Otherwise whoever
/// holds a leaked code could burn it with a wrong verifier, and the rightful
/// redemption would count as a replay and revoke the user's tokens — PKCE,
/// the defence RFC 9700 §4.5 prescribes against exactly that code, would
/// become a lever to sign the user out.
async fn authorization_code(
    state: &AppState,
    auth: &Authenticated,
    params: &Params,
) -> Result<Response, WebError> {
    let client = &auth.client;
    if !client.allows_grant("authorization_code") {
        return Err(unauthorized_grant());
    }
    let code = params
        .get("code")
        .ok_or_else(|| WebError::oauth(OAuthError::invalid_request("code is required")))?;
    let hash = token_hash(code);
    let Some(record) = state.store.get_code(&hash).await.map_err(WebError::internal)? else {
        return Err(invalid_grant("the authorization code is invalid"));
    };
    if record.client_id != client.id {
        return Err(invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    let Some(verifier) = params.get("code_verifier") else {
        return Err(WebError::oauth(OAuthError::invalid_request(
            "code_verifier is required",
        )));
    };
    if !CodeChallenge::from_stored(record.code_challenge.clone()).verify(verifier) {
        return Err(invalid_grant("code_verifier does not match the code challenge"));
    }
    // OAuth 2.1 §10.2: if sent, redirect_uri must equal the request's, port included.
    if let Some(sent) = params.get("redirect_uri")
        && sent != record.redirect_uri
    {
        return Err(invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    let resource = record
        .resource
        .clone()
        .unwrap_or_else(|| state.issuer.to_string());
    if !params.resources().is_empty() && params.resources().iter().any(|r| r != &resource) {
        return Err(WebError::oauth(OAuthError::new(
            ErrorCode::InvalidTarget,
            "the resource was not authorized",
        )));
    }
    // The version the user consented to must still be usable.
    if let Some(version) = record.metadata_version_id {
        crate::oauth::clients::resolve_for_token(
            state,
            &client.id,
            Some(version),
            crate::oauth::clients::View::Skip,
        )
        .await
        .map_err(|_| invalid_grant("the client's metadata changed and is no longer valid"))?;
    }
    // Policy above identity, at redemption too (issue 13 item 5): decided
    // before the code is consumed, so a refusal changes nothing.
    let asked = ScopeSet::parse(&record.scopes).unwrap_or_default();
    let scopes = govern(
        state,
        client,
        Action::RedeemCode,
        &resource,
        &asked,
        Some(&record.user_id),
    )
    .await?;
    let now = state.clock.now();
    let record = match state
        .store
        .consume_code(&hash, now)
        .await
        .map_err(WebError::internal)?
    {
        CodeConsumption::Consumed(c) => c,
        CodeConsumption::Replayed(c) => {
            // The presenter passed the client and PKCE checks above, so this
            // is a genuine second use (§4.1.3): deny, and revoke what the
            // code produced. Mark first, then revoke: a first redemption
            // still issuing either completed before the mark (what it issued
            // is returned here) or will see the mark and revoke its own.
            match state.store.mark_code_replayed(&c.code_hash, now).await {
                Ok(Some(issued)) => {
                    revoke_issued_from_code(state, issued.family_id.as_deref(), issued.access_jti.as_deref())
                        .await;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "could not mark a replayed code"),
            }
            audit(
                state,
                "token.code_replayed",
                &client.id,
                Some(&c.user_id),
                serde_json::json!({"grant_id": c.grant_id}),
            )
            .await;
            return Err(invalid_grant("the authorization code was already used"));
        }
        CodeConsumption::Expired => return Err(invalid_grant("the authorization code has expired")),
        CodeConsumption::NotFound => return Err(invalid_grant("the authorization code is invalid")),
    };
    let refresh = client.allows_grant("refresh_token").then(|| {
        let (token, first) = new_refresh_token(state);
        let family = NewRefreshFamily {
            id: format!("fam_{}", ordered_id(now)),
            grant_id: record.grant_id.clone(),
            client_id: client.id.clone(),
            user_id: Some(record.user_id.clone()),
            scopes: record.scopes.clone(),
            resource: record.resource.clone(),
            auth_time: Some(record.auth_time),
            created_at: now,
        };
        (token, family, first)
    });
    let family_id = refresh.as_ref().map(|(_, f, _)| f.id.as_str());
    let access = mint_access_token(
        state,
        &AccessGrant {
            client_id: &client.id,
            user_id: Some(&record.user_id),
            grant_id: Some(&record.grant_id),
            family_id,
            scopes: &scopes,
            resource: &resource,
            auth_time: Some(record.auth_time),
        },
    )?;
    // Family, first refresh token, access token and the code's completion:
    // one transaction.
    let completed = state
        .store
        .record_redemption(
            &record.code_hash,
            refresh.as_ref().map(|(_, f, first)| (f, first)),
            &access.record,
        )
        .await
        .map_err(WebError::internal)?;
    if !completed {
        // A valid replay arrived while this redemption was issuing. This is
        // still the code's one issuance (the replay was refused), but the
        // code has leaked, so what it produced is revoked (OAuth 2.1 §4.1.3)
        // here, because the replay could not see it yet.
        revoke_issued_from_code(state, family_id, Some(&access.record.jti)).await;
    }
    Ok(no_store(TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.lifetime,
        scope: scopes.to_string(),
        refresh_token: refresh.map(|(t, _, _)| t),
    }))
}

/// Revokes exactly what one authorization code produced (OAuth 2.1
/// §4.1.3): its refresh family with that family's access tokens, and the
/// access token the redemption issued. Nothing else of the grant: earlier
/// codes of the same user and client produced tokens this code did not.
async fn revoke_issued_from_code(state: &AppState, family: Option<&str>, access_jti: Option<&str>) {
    let now = state.clock.now();
    if let Some(family) = family {
        let result = match state.store.revoke_family(family, now).await {
            Ok(_) => state
                .store
                .revoke_access_tokens_of_family(family, now)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "could not revoke the refresh family of a replayed code");
        }
    }
    if let Some(jti) = access_jti
        && let Err(e) = state.store.revoke_access_token(jti, now).await
    {
        tracing::error!(error = %e, "could not revoke the access token of a replayed code");
    }
}

/// OAuth 2.1 §4.3: rotation on every use; a reused token revokes its family;
/// scope may narrow, never widen; the resource must stay within the grant.
async fn refresh_token(
    state: &AppState,
    auth: &Authenticated,
    params: &Params,
) -> Result<Response, WebError> {
    let client = &auth.client;
    if !client.allows_grant("refresh_token") {
        return Err(unauthorized_grant());
    }
    let presented = params
        .get("refresh_token")
        .ok_or_else(|| WebError::oauth(OAuthError::invalid_request("refresh_token is required")))?;
    let hash = token_hash(presented);
    let now = state.clock.now();
    // Check the binding before rotating, so another client cannot burn the token.
    let current = state.store.get_refresh(&hash).await.map_err(WebError::internal)?;
    let Some(current) = current else {
        return Err(invalid_grant("the refresh token is invalid"));
    };
    if current.family.client_id != client.id {
        return Err(invalid_grant("the refresh token was issued to another client"));
    }
    let granted = ScopeSet::parse(&current.family.scopes).unwrap_or_default();
    let scopes = match params.get("scope") {
        Some(s) => {
            let asked = ScopeSet::parse(s).map_err(|_| {
                WebError::oauth(OAuthError::new(ErrorCode::InvalidScope, "the scope is malformed"))
            })?;
            if !asked.is_subset(&granted) {
                return Err(WebError::oauth(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "the requested scope exceeds the original grant",
                )));
            }
            asked
        }
        None => granted,
    };
    let resource = current
        .family
        .resource
        .clone()
        .unwrap_or_else(|| state.issuer.to_string());
    if params.resources().iter().any(|r| r != &resource) {
        return Err(WebError::oauth(OAuthError::new(
            ErrorCode::InvalidTarget,
            "the resource was not authorized",
        )));
    }
    // Decided before rotating: a refusal consumes nothing, and the family
    // keeps its scopes, so what the policy restores later is restored.
    let scopes = govern(
        state,
        client,
        Action::Refresh,
        &resource,
        &scopes,
        current.family.user_id.as_deref(),
    )
    .await?;
    // Minted from the family as read: its fields never change but
    // `revoked_at`, which the rotation itself checks.
    let family = &current.family;
    let access = mint_access_token(
        state,
        &AccessGrant {
            client_id: &client.id,
            user_id: family.user_id.as_deref(),
            grant_id: Some(&family.grant_id),
            family_id: Some(&family.id),
            scopes: &scopes,
            resource: &resource,
            auth_time: family.auth_time,
        },
    )?;
    let (token, next) = new_refresh_token(state);
    match state
        .store
        .rotate_refresh(&hash, &next, now, Some(&access.record))
        .await
        .map_err(WebError::internal)?
    {
        Rotation::Rotated(_) => {}
        Rotation::Reused { family_id } => {
            audit(
                state,
                "token.refresh_reused",
                &client.id,
                current.family.user_id.as_deref(),
                serde_json::json!({"family_id": family_id}),
            )
            .await;
            return Err(invalid_grant(
                "the refresh token was already used; its family is revoked",
            ));
        }
        Rotation::Revoked => return Err(invalid_grant("the refresh token is revoked")),
        Rotation::Expired => return Err(invalid_grant("the refresh token has expired")),
        Rotation::NotFound => return Err(invalid_grant("the refresh token is invalid")),
    }
    Ok(no_store(TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.lifetime,
        scope: scopes.to_string(),
        refresh_token: Some(token),
    }))
}

/// OAuth 2.1 §4.2: confidential clients only; `sub` is the client.
async fn client_credentials(
    state: &AppState,
    auth: &Authenticated,
    params: &Params,
) -> Result<Response, WebError> {
    let client = &auth.client;
    if !auth.confidential || !client.allows_grant("client_credentials") {
        return Err(unauthorized_grant());
    }
    let resource = state
        .oauth
        .resources
        .select(params.resources(), &state.issuer)
        .map_err(WebError::oauth)?;
    let scopes = state
        .oauth
        .resources
        .grant_scopes(&resource, params.get("scope"), client)
        .map_err(WebError::oauth)?;
    let scopes = govern(
        state,
        client,
        Action::ClientCredentials,
        &resource.uri,
        &scopes,
        None,
    )
    .await?;
    let (access_token, expires_in) = issue_access_token(
        state,
        &AccessGrant {
            client_id: &client.id,
            user_id: None,
            grant_id: None,
            family_id: None,
            scopes: &scopes,
            resource: &resource.uri,
            auth_time: None,
        },
    )
    .await?;
    Ok(no_store(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        scope: scopes.to_string(),
        refresh_token: None,
    }))
}

/// Asks the governance room at the token endpoint; the scopes it grants
/// (a subset of `asked`, and the response's `scope` says which). Nothing
/// waits for an approver here: a scope that needs one is not granted.
async fn govern(
    state: &AppState,
    client: &crate::oauth::clients::Client,
    action: Action,
    resource: &str,
    asked: &ScopeSet,
    user_id: Option<&str>,
) -> Result<ScopeSet, WebError> {
    let user = match user_id {
        Some(id) => crate::governance::user_context(state, id)
            .await
            .map_err(WebError::internal)?,
        None => None,
    };
    let client_id = client.id.as_str();
    let ask = crate::governance::Ask {
        client_id,
        view: client.view.as_deref(),
        action,
        resource,
        scopes: asked,
        user: user.as_ref(),
        address: crate::request_log::current_client_address(),
    };
    match crate::governance::ask(&state.governance, &ask).await {
        Ok(crate::governance::Outcome::Granted(g)) => Ok(g),
        Ok(crate::governance::Outcome::NeedsApproval { granted, needed }) => {
            if granted.is_empty() && !asked.is_empty() {
                tracing::warn!(
                    client_id,
                    action = action.as_str(),
                    ?needed,
                    "policy denial: approval needed"
                );
                Err(WebError::oauth(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "the requested scopes need the platform team's approval for this client",
                )))
            } else {
                Ok(granted)
            }
        }
        Err(e) => Err(WebError::oauth(e)),
    }
}
