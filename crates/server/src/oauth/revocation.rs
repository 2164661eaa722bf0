//! Token revocation (RFC 7009) and introspection (RFC 7662).
//!
//! Both authenticate the caller as at the token endpoint. Revocation answers
//! 200 whatever the token (RFC 7009 §2.2), and acts only on tokens issued to
//! the caller: a token of another client is left alone, without saying it
//! exists. Revoking a refresh token revokes its family and every access
//! token of the grant. Introspection is for confidential callers; a token
//! that is unknown, expired, revoked, or neither issued to the caller nor for
//! a resource the caller may introspect is `{"active": false}` (§2.2).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use steward_core::secret::token_hash;
use steward_core::{ErrorCode, OAuthError};
use steward_store::AccessTokenRecord;

use crate::client_address::ClientAddress;
use crate::error::WebError;
use crate::oauth::client_auth;
use crate::oauth::params::Params;
use crate::state::AppState;

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Finds the access-token record for a presented token: by `jti` for JWTs
/// (after checking Steward's own signature), by hash for opaque tokens.
async fn find_access_token(state: &AppState, token: &str) -> Result<Option<AccessTokenRecord>, WebError> {
    if token.matches('.').count() == 2 {
        let expectations = steward_jose::Expectations {
            typ: Some("at+jwt"),
            issuer: &state.issuer,
            audience: None,
            now: state.clock.now(),
            // Expired tokens are still found (to revoke or report inactive).
            leeway: u64::MAX / 4,
        };
        let Ok(claims) = state.keys.verifier().verify::<Value>(token, &expectations) else {
            return Ok(None);
        };
        let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
            return Ok(None);
        };
        state
            .store
            .get_access_token(jti)
            .await
            .map_err(WebError::internal)
    } else {
        state
            .store
            .get_access_token_by_hash(&token_hash(token))
            .await
            .map_err(WebError::internal)
    }
}

fn form_params(headers: &HeaderMap, body: &str) -> Result<Params, WebError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(WebError::oauth(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        )));
    }
    let params = Params::parse(body);
    if params.first_repeated().is_some() {
        return Err(WebError::oauth(OAuthError::invalid_request(
            "a parameter is repeated",
        )));
    }
    Ok(params)
}

pub async fn revoke(
    State(state): State<AppState>,
    ClientAddress(client_address): ClientAddress,
    headers: HeaderMap,
    body: String,
) -> Result<Response, WebError> {
    let params = form_params(&headers, &body)?;
    let auth = client_auth::authenticate(
        &state,
        &headers,
        &params,
        client_address,
        crate::oauth::clients::View::Skip,
    )
    .await?;
    let token = params
        .get("token")
        .ok_or_else(|| WebError::oauth(OAuthError::invalid_request("token is required")))?;
    let now = state.clock.now();
    let hint = params.get("token_type_hint");
    // The hint only orders the look-ups (RFC 7009 §2.1).
    let refresh_first = hint != Some("access_token");
    for kind in if refresh_first {
        ["refresh", "access"]
    } else {
        ["access", "refresh"]
    } {
        if kind == "refresh" {
            if let Some(r) = state
                .store
                .get_refresh(&token_hash(token))
                .await
                .map_err(WebError::internal)?
            {
                if r.family.client_id == auth.client.id {
                    state
                        .store
                        .revoke_family(&r.family.id, now)
                        .await
                        .map_err(WebError::internal)?;
                    state
                        .store
                        .revoke_access_tokens_of_grant(&r.family.grant_id, now)
                        .await
                        .map_err(WebError::internal)?;
                    state
                        .store
                        .revoke_access_tokens_of_family(&r.family.id, now)
                        .await
                        .map_err(WebError::internal)?;
                }
                return Ok(no_store(StatusCode::OK.into_response()));
            }
        } else if let Some(a) = find_access_token(&state, token).await? {
            if a.client_id == auth.client.id {
                state
                    .store
                    .revoke_access_token(&a.jti, now)
                    .await
                    .map_err(WebError::internal)?;
            }
            return Ok(no_store(StatusCode::OK.into_response()));
        }
    }
    Ok(no_store(StatusCode::OK.into_response()))
}

pub async fn introspect(
    State(state): State<AppState>,
    ClientAddress(client_address): ClientAddress,
    headers: HeaderMap,
    body: String,
) -> Result<Response, WebError> {
    let params = form_params(&headers, &body)?;
    let auth = client_auth::authenticate(
        &state,
        &headers,
        &params,
        client_address,
        crate::oauth::clients::View::Skip,
    )
    .await?;
    if !auth.confidential {
        return Err(WebError::oauth(OAuthError::new(
            ErrorCode::InvalidClient,
            "introspection requires client authentication",
        )));
    }
    let token = params
        .get("token")
        .ok_or_else(|| WebError::oauth(OAuthError::invalid_request("token is required")))?;
    let now = state.clock.now();
    let inactive = || Ok(no_store(Json(json!({ "active": false })).into_response()));
    if let Some(a) = find_access_token(&state, token).await? {
        let aud = a.resource.clone().unwrap_or_else(|| state.issuer.to_string());
        let visible =
            a.client_id == auth.client.id || state.oauth.resources.may_introspect(&auth.client.id, &aud);
        if !visible || a.revoked_at.is_some() || a.expires_at <= now {
            return inactive();
        }
        // A suspended, revoked or expired client's tokens are inactive at
        // once, on every node (issue 13 item 2). The caller's own client was
        // checked when it authenticated; a resource server asking about
        // another client's token needs that client's state read here.
        if a.client_id != auth.client.id && !client_in_use(&state, &a.client_id).await? {
            return inactive();
        }
        let body = json!({
            "active": true,
            "scope": a.scopes,
            "client_id": a.client_id,
            "sub": a.user_id.clone().unwrap_or_else(|| a.client_id.clone()),
            "aud": aud,
            "iss": &*state.issuer,
            "exp": a.expires_at.seconds(),
            "iat": a.issued_at.seconds(),
            "jti": a.jti,
            "token_type": "Bearer",
        });
        return Ok(no_store(Json(body).into_response()));
    }
    if let Some(r) = state
        .store
        .get_refresh(&token_hash(token))
        .await
        .map_err(WebError::internal)?
    {
        let live = r.family.revoked_at.is_none() && r.token.used_at.is_none() && r.token.expires_at > now;
        if !live || r.family.client_id != auth.client.id {
            return inactive();
        }
        let body = json!({
            "active": true,
            "scope": r.family.scopes,
            "client_id": r.family.client_id,
            "sub": r.family.user_id,
            "aud": r.family.resource,
            "iss": &*state.issuer,
            "exp": r.token.expires_at.seconds(),
            "iat": r.token.created_at.seconds(),
            "token_type": "refresh_token",
        });
        return Ok(no_store(Json(body).into_response()));
    }
    inactive()
}

/// Whether the client's lifecycle state lets its tokens be used.
async fn client_in_use(state: &AppState, client_id: &str) -> Result<bool, WebError> {
    let record = state
        .store
        .get_client(client_id)
        .await
        .map_err(WebError::internal)?;
    Ok(record.is_some_and(|r| r.state.in_use()))
}
