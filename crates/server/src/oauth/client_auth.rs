//! Client authentication at the token, revocation and introspection
//! endpoints (OAuth 2.1 §2.4, RFC 7523).
//!
//! Methods: `none` (public clients send `client_id`), `client_secret_basic`,
//! `client_secret_post`, `private_key_jwt`. A request using more than one
//! method is `invalid_request` (OAuth 2.1 §2.4). A failure is `invalid_client`,
//! answered 401 with `WWW-Authenticate` when the Authorization header was used
//! (§3.2.4). Secrets are stored as keyed hashes — HMAC-SHA256 under a key
//! derived from the key-encryption key — and compared in constant time: fast
//! enough for the token endpoint, useless to whoever steals the database.

use aws_lc_rs::hmac;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use std::sync::Arc;
use steward_cimd::KeySetLookup;
use steward_core::{ErrorCode, OAuthError};
use steward_jose::AssertionError;
use subtle::ConstantTimeEq;

use crate::error::WebError;
use crate::oauth::clients::{self, Client, ClientAuth, ClientError};
use crate::oauth::limits;
use crate::oauth::params::Params;
use crate::state::AppState;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The keyed hash stored for a client secret: lowercase hex HMAC-SHA256.
pub fn hash_client_secret(key: &[u8; 32], secret: &str) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    hex::encode(hmac::sign(&k, secret.as_bytes()).as_ref())
}

/// Does `secret` match the stored keyed hash? Constant time in the secret.
pub fn verify_client_secret(key: &[u8; 32], secret: &str, stored_hash: &str) -> bool {
    let computed = hash_client_secret(key, secret);
    computed.len() == stored_hash.len() && bool::from(computed.as_bytes().ct_eq(stored_hash.as_bytes()))
}

/// What the request presented.
enum Presented {
    Public { client_id: String },
    Secret { client_id: String, secret: String },
    Assertion { client_id: String, assertion: String },
}

/// The authenticated (or, for public clients, identified) client.
pub struct Authenticated {
    pub client: Client,
    /// Whether the client proved possession of a credential.
    pub confidential: bool,
}

fn invalid_client(via_header: bool, d: &'static str) -> WebError {
    let error = OAuthError::new(ErrorCode::InvalidClient, d);
    WebError::OAuth {
        error,
        status: StatusCode::UNAUTHORIZED,
        www_authenticate: via_header.then(|| "Basic realm=\"steward\", charset=\"UTF-8\"".to_owned()),
    }
}

fn invalid_request(d: &'static str) -> WebError {
    WebError::oauth(OAuthError::invalid_request(d))
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
fn parse_basic(headers: &HeaderMap) -> Result<Option<(String, String)>, WebError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| invalid_client(true, "malformed Authorization header"))?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(invalid_client(true, "unsupported authorization scheme"));
    };
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid_client(true, "malformed Basic credentials"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| invalid_client(true, "malformed Basic credentials"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| invalid_client(true, "malformed Basic credentials"))?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// The unverified `iss` of an assertion, to find the client when the request
/// carries no `client_id` (RFC 7523 §3: client_id is optional).
fn assertion_issuer(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

fn presented(headers: &HeaderMap, params: &Params) -> Result<(Presented, bool), WebError> {
    for name in [
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    ] {
        if params.is_repeated(name) {
            return Err(invalid_request("a client authentication parameter is repeated"));
        }
    }
    let basic = parse_basic(headers)?;
    let post_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let methods =
        usize::from(basic.is_some()) + usize::from(post_secret.is_some()) + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(invalid_request("more than one client authentication method"));
    }
    let body_id = params.get("client_id");
    if let Some((id, secret)) = basic {
        if body_id.is_some_and(|b| b != id) {
            return Err(invalid_request(
                "client_id does not match the Authorization header",
            ));
        }
        return Ok((
            Presented::Secret {
                client_id: id,
                secret,
            },
            true,
        ));
    }
    if let Some(secret) = post_secret {
        let id = body_id.ok_or_else(|| invalid_request("client_id is required with client_secret"))?;
        return Ok((
            Presented::Secret {
                client_id: id.to_owned(),
                secret: secret.to_owned(),
            },
            false,
        ));
    }
    if let Some(assertion) = assertion {
        if params.get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(invalid_request(
                "client_assertion_type must be the RFC 7523 JWT bearer type",
            ));
        }
        let id = match body_id {
            Some(id) => id.to_owned(),
            None => assertion_issuer(assertion)
                .ok_or_else(|| invalid_client(false, "malformed client assertion"))?,
        };
        return Ok((
            Presented::Assertion {
                client_id: id,
                assertion: assertion.to_owned(),
            },
            false,
        ));
    }
    let id = body_id.ok_or_else(|| invalid_client(false, "client authentication is required"))?;
    Ok((
        Presented::Public {
            client_id: id.to_owned(),
        },
        false,
    ))
}

/// Authenticates the client of a token, revocation or introspection request.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    peer: std::net::IpAddr,
    view: clients::View,
) -> Result<Authenticated, WebError> {
    let (presented, via_header) = presented(headers, params)?;
    let client_id = match &presented {
        Presented::Public { client_id }
        | Presented::Secret { client_id, .. }
        | Presented::Assertion { client_id, .. } => client_id.clone(),
    };
    let client = match clients::resolve_for_token(state, &client_id, None, view).await {
        Ok(c) => c,
        Err(ClientError::Store(e)) => return Err(WebError::internal(e)),
        Err(ClientError::Metadata(e)) if e.is_transient() => {
            return Err(WebError::oauth(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "client metadata is temporarily unavailable",
            )));
        }
        Err(_) => {
            crate::request_log::security_event("client_auth_failed", None, "unknown or inactive client");
            return Err(invalid_client(via_header, "unknown or inactive client"));
        }
    };
    crate::request_log::note_client(&client.id, client.kind, params.get("grant_type"));
    if matches!(client.auth, ClientAuth::None) {
        return check_credential(state, client, presented, via_header, &mut false).await;
    }
    // Reserved before the credential is checked (issue 11 items 10-11).
    let checks = limits::client_auth_checks(&state.settings.tokens, &client.id, peer);
    let reservation = match state
        .oauth
        .client_auth_failures
        .reserve(&*state.store, state.clock.now(), checks)
        .await
    {
        Ok(r) => r,
        Err(limits::Refused::Locked(_)) => {
            return Err(invalid_client(
                via_header,
                "too many failed authentications; try again later",
            ));
        }
        Err(limits::Refused::Store(e)) => return Err(WebError::internal(e)),
    };
    let mut replayed = false;
    let client_id = client.id.clone();
    let result = check_credential(state, client, presented, via_header, &mut replayed).await;
    if result.is_err() {
        let reason = if replayed {
            "client assertion replayed"
        } else {
            "wrong credential"
        };
        crate::request_log::security_event("client_auth_failed", Some(&client_id), reason);
    }
    match &result {
        Ok(_) => reservation.succeeded(&*state.store).await,
        // A replayed assertion is no guess at the client's key: counting it
        // against the client would let whoever captured one lock the client
        // out (issue 11 item 17). It counts against its address only.
        Err(_) if replayed => {
            reservation
                .failed(&*state.store, |l| l == limits::CLIENT_ADDRESS)
                .await;
        }
        Err(_) => reservation.failed(&*state.store, |_| true).await,
    }
    result
}

/// Checks what was presented against the client's registered method.
async fn check_credential(
    state: &AppState,
    client: Client,
    presented: Presented,
    via_header: bool,
    replayed: &mut bool,
) -> Result<Authenticated, WebError> {
    match (&client.auth, presented) {
        (ClientAuth::None, Presented::Public { .. }) => Ok(Authenticated {
            client,
            confidential: false,
        }),
        (ClientAuth::Secret(hash), Presented::Secret { secret, .. }) => {
            if verify_client_secret(&state.oauth.secret_key, &secret, hash) {
                Ok(Authenticated {
                    client,
                    confidential: true,
                })
            } else {
                Err(invalid_client(via_header, "client authentication failed"))
            }
        }
        (ClientAuth::PrivateKeyJwt { jwks, jwks_uri }, Presented::Assertion { assertion, .. }) => {
            let keys = match (jwks, jwks_uri) {
                (Some(k), _) => Arc::new(k.clone()),
                (None, Some(uri)) => held_key_set(state, uri)?,
                (None, None) => return Err(invalid_client(false, "the client publishes no keys")),
            };
            let now = state.clock.now();
            let claims = match steward_jose::verify_client_assertion(
                &assertion,
                &client.id,
                &state.issuer,
                &keys,
                now,
                300,
            ) {
                Ok(claims) => claims,
                Err(e) => {
                    if matches!(e, AssertionError::UnknownKid(_))
                        && jwks.is_none()
                        && let Some(uri) = jwks_uri
                    {
                        // The client may have rotated: one background
                        // refetch per cache lifetime, never on this request.
                        state.cimd.key_sets().unknown_kid(uri);
                    }
                    return Err(invalid_client(false, "client assertion rejected"));
                }
            };
            // RFC 7523 §3 item 7: a jti is accepted once, across every node
            // sharing the database, and remembered for as long as the
            // assertion itself would be accepted (exp plus the leeway).
            let first_use = state
                .store
                .record_assertion_jti(&client.id, &claims.jti, claims.remember_until, now)
                .await
                .map_err(WebError::internal)?;
            if !first_use {
                *replayed = true;
                return Err(invalid_client(false, "client assertion replayed"));
            }
            Ok(Authenticated {
                client,
                confidential: true,
            })
        }
        // A confidential client must use its registered method; a public one must not claim a credential.
        _ => Err(invalid_client(via_header, "client authentication failed")),
    }
}

/// The key set held for a client's `jwks_uri` (CIMD -02 §8.6: fetched
/// through the guarded fetcher, off the request path — see
/// `steward_cimd::key_sets`). Nothing held yet is `temporarily_unavailable`:
/// a background fetch has been started and a retry will find the keys.
fn held_key_set(state: &AppState, uri: &str) -> Result<Arc<Value>, WebError> {
    match state.cimd.key_sets().for_token(uri) {
        KeySetLookup::Ready(keys) => Ok(keys),
        KeySetLookup::Pending { retry_after_secs } => {
            tracing::info!(retry_after_secs, "no key set held for a jwks_uri yet");
            Err(WebError::oauth(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the client's keys are unavailable",
            )))
        }
        KeySetLookup::Failed { reason } => {
            tracing::info!(reason, "the client's jwks_uri failed");
            Err(invalid_client(false, "the client's keys could not be fetched"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hash_verifies_only_the_right_secret() {
        let key = [7u8; 32];
        let h = hash_client_secret(&key, "correct horse battery staple");
        assert!(verify_client_secret(&key, "correct horse battery staple", &h));
        assert!(!verify_client_secret(&key, "correct horse battery stapl", &h));
        assert!(!verify_client_secret(
            &[8u8; 32],
            "correct horse battery staple",
            &h
        ));
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        let mut headers = HeaderMap::new();
        let raw = STANDARD.encode("my%20client:p%3Ass+word");
        headers.insert(header::AUTHORIZATION, format!("Basic {raw}").parse().unwrap());
        let (id, secret) = parse_basic(&headers).unwrap().unwrap();
        assert_eq!(id, "my client");
        assert_eq!(secret, "p:ss word");
    }

    #[test]
    fn two_methods_are_invalid_request() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("a:b")).parse().unwrap(),
        );
        let params = Params::parse("client_id=a&client_secret=b");
        assert!(matches!(
            presented(&headers, &params),
            Err(WebError::OAuth { error, .. }) if error.code == ErrorCode::InvalidRequest
        ));
    }
}
