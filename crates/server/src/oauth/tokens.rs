//! Minting access and refresh tokens.
//!
//! Access tokens are RFC 9068 JWTs (`typ: at+jwt`) signed with the active key,
//! or opaque random strings when `tokens.format = "opaque"`. Either way the
//! token is recorded by `jti` so it can be revoked and introspected. Refresh
//! tokens are random, stored as SHA-256 hashes, and belong to a family whose
//! reuse revokes it (OAuth 2.1 §4.3.1).

use steward_core::scope::ScopeSet;
use steward_core::secret::{ordered_id, random_token, token_hash};
use steward_core::{OAuthError, UnixTime};
use steward_jose::{AccessTokenClaims, sign_access_token};
use steward_store::AccessTokenRecord;

use crate::error::WebError;
use crate::state::AppState;

/// What an access token is for.
pub struct AccessGrant<'a> {
    pub client_id: &'a str,
    /// The user, or `None` for client_credentials (then `sub` = client_id).
    pub user_id: Option<&'a str>,
    pub grant_id: Option<&'a str>,
    pub family_id: Option<&'a str>,
    pub scopes: &'a ScopeSet,
    pub resource: &'a str,
    pub auth_time: Option<UnixTime>,
}

/// User ids are opaque (`usr_…`) and can never look like a URL, so a token
/// for a user is never mistaken for one whose `sub` is a metadata-document
/// client (OAuth 2.1 §7.4, RFC 9700 §4.15).
pub fn new_user_id() -> String {
    format!("usr_{}", &random_token().expose()[..22])
}

fn looks_like_url(s: &str) -> bool {
    s.contains("://") || s.contains(':')
}

/// A signed (or opaque) access token, with the record that makes it
/// revocable and introspectable. Nothing is stored yet: the caller records
/// it, alone ([`issue_access_token`]) or in the transaction of its flow.
pub struct Minted {
    pub token: String,
    pub lifetime: u64,
    pub record: AccessTokenRecord,
}

/// Mints an access token for `g`.
pub fn mint_access_token(state: &AppState, g: &AccessGrant<'_>) -> Result<Minted, WebError> {
    let now = state.clock.now();
    let lifetime = state.settings.tokens.access_token_lifetime_secs;
    let expires_at = now.plus_secs(i64::try_from(lifetime).unwrap_or(i64::MAX));
    let jti = ordered_id(now);
    let sub = match g.user_id {
        Some(user) if looks_like_url(user) => return Err(WebError::internal("a user id looks like a URL")),
        Some(user) => user.to_owned(),
        None => g.client_id.to_owned(),
    };
    let (token, token_hash_value) = if state.settings.tokens.format == "opaque" {
        let t = random_token();
        let h = token_hash(t.expose());
        (t.expose().to_owned(), Some(h))
    } else {
        let claims = AccessTokenClaims {
            iss: state.issuer.to_string(),
            sub,
            aud: g.resource.to_owned(),
            client_id: g.client_id.to_owned(),
            scope: g.scopes.to_string(),
            iat: now.seconds(),
            exp: expires_at.seconds(),
            jti: jti.clone(),
            auth_time: g.auth_time.map(UnixTime::seconds),
        };
        let key = state.keys.active();
        (
            sign_access_token(&key, &claims).map_err(WebError::internal)?,
            None,
        )
    };
    let record = AccessTokenRecord {
        jti,
        token_hash: token_hash_value,
        client_id: g.client_id.to_owned(),
        user_id: g.user_id.map(str::to_owned),
        grant_id: g.grant_id.map(str::to_owned),
        family_id: g.family_id.map(str::to_owned),
        scopes: g.scopes.to_string(),
        resource: Some(g.resource.to_owned()),
        issued_at: now,
        expires_at,
        revoked_at: None,
    };
    Ok(Minted {
        token,
        lifetime,
        record,
    })
}

/// Mints and records an access token; returns it with its lifetime.
pub async fn issue_access_token(state: &AppState, g: &AccessGrant<'_>) -> Result<(String, u64), WebError> {
    let minted = mint_access_token(state, g)?;
    state
        .store
        .insert_access_token(&minted.record)
        .await
        .map_err(WebError::internal)?;
    Ok((minted.token, minted.lifetime))
}

/// A fresh refresh token and the hash that is stored.
pub fn new_refresh_token(state: &AppState) -> (String, steward_store::NewRefreshToken) {
    let t = random_token();
    let lifetime = state.settings.tokens.refresh_token_lifetime_secs;
    let expires_at = state
        .clock
        .now()
        .plus_secs(i64::try_from(lifetime).unwrap_or(i64::MAX));
    let hash = token_hash(t.expose());
    (
        t.expose().to_owned(),
        steward_store::NewRefreshToken {
            token_hash: hash,
            expires_at,
        },
    )
}

pub fn invalid_grant(d: &'static str) -> WebError {
    WebError::oauth(OAuthError::new(steward_core::ErrorCode::InvalidGrant, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_never_look_like_urls() {
        for _ in 0..100 {
            let id = new_user_id();
            assert!(id.starts_with("usr_"));
            assert!(!looks_like_url(&id), "{id}");
        }
    }
}
