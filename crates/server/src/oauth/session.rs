//! Browser sessions, their cookies, and the CSRF values of the forms.
//!
//! A double-submit CSRF cookie that the form merely echoes proves nothing
//! against an attacker who can plant cookies: on a plain-http loopback
//! deployment every other local port is the same site, and a planted
//! cookie/value pair from the attacker's own browser passed the check, so a
//! victim could be signed into the attacker's account or approve in their
//! name (login CSRF, RFC 9700 §4.7 and OWASP "Cross-Site Request Forgery").
//! Here every CSRF value is a MAC of something the attacker cannot plant:
//!
//! - before sign-in, of a random login nonce kept in an HttpOnly cookie;
//! - after sign-in, of the session (its stored id hash), so the value
//!   changes at sign-in and a pair taken from another browser is worthless.
//!
//! And because a cookie tossed from a sibling origin is still possible
//! before sign-in, form posts must also come from Steward's own origin when
//! the browser says where they come from (`Origin`, `Sec-Fetch-Site`).
//!
//! Sign-in always creates a new session id (no fixation) and ends the one
//! the browser held; `POST /logout` ends the session and clears the cookie.

use aws_lc_rs::hmac;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use steward_core::secret::{random_token, token_hash};
use steward_store::Session;
use subtle::ConstantTimeEq;

use crate::state::AppState;

/// The session cookie: the random session id (the store keeps its hash).
pub const SESSION_COOKIE: &str = "steward_session";
/// The pre-session cookie: a random nonce the login form's CSRF value is bound to.
pub const LOGIN_COOKIE: &str = "steward_login";

/// The key CSRF values are computed with, derived from the client-secret
/// key (itself from the key-encryption key), so every node of a deployment
/// computes the same values and a restart does not void open forms.
pub fn derive_csrf_key(secret_key: &[u8; 32]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret_key);
    let tag = hmac::sign(&key, b"steward/csrf/v1");
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn mac(state: &AppState, purpose: &str, value: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &state.oauth.csrf_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(purpose.as_bytes());
    ctx.update(&[0]);
    ctx.update(value.as_bytes());
    URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
}

fn equal(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| bool::from(expected.as_bytes().ct_eq(p.as_bytes())))
}

// ---- cookies ---------------------------------------------------------------

/// Cookie names: `__Host-` (Secure, Path=/, no Domain) when the issuer is
/// https. Browsers refuse `__Host-` cookies without Secure, so on a plain-http
/// loopback issuer (development) the names carry no prefix.
pub fn cookie_name(state: &AppState, base: &str) -> String {
    name_for(state.issuer.starts_with("https://"), base)
}

pub(crate) fn name_for(secure: bool, base: &str) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn cookie_attrs(state: &AppState, max_age: Option<u64>) -> String {
    attrs_for(state.issuer.starts_with("https://"), max_age)
}

pub(crate) fn attrs_for(secure: bool, max_age: Option<u64>) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    format!("; Path=/; HttpOnly; SameSite=Lax{secure}{age}")
}

/// The value of cookie `name`; an empty value counts as absent (a cleared cookie).
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for `base` with `value`.
pub fn set_cookie(state: &AppState, base: &str, value: &str, max_age: Option<u64>) -> String {
    format!(
        "{}={value}{}",
        cookie_name(state, base),
        cookie_attrs(state, max_age)
    )
}

/// `Set-Cookie` that removes `base` from the browser.
pub fn clear_cookie(state: &AppState, base: &str) -> String {
    set_cookie(state, base, "", Some(0))
}

/// Appends each `Set-Cookie` to `res`.
pub fn with_cookies(mut res: Response, cookies: impl IntoIterator<Item = String>) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

// ---- sessions --------------------------------------------------------------

/// The session the browser's cookie names, if it is live.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let id = read_cookie(headers, &cookie_name(state, SESSION_COOKIE))?;
    state
        .store
        .get_session(&token_hash(&id), state.clock.now())
        .await
        .ok()
        .flatten()
}

/// The hash of the session id the browser presented, live or not: what a new
/// sign-in or a logout ends.
pub fn presented_session_hash(state: &AppState, headers: &HeaderMap) -> Option<String> {
    read_cookie(headers, &cookie_name(state, SESSION_COOKIE)).map(|id| token_hash(&id))
}

// ---- CSRF ------------------------------------------------------------------

/// The login form's CSRF value, bound to the browser's login nonce; creates
/// the nonce (and returns its `Set-Cookie`) when the browser has none.
pub fn login_csrf(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    match read_cookie(headers, &cookie_name(state, LOGIN_COOKIE)) {
        Some(nonce) if nonce.len() >= 32 => (mac(state, "login", &nonce), None),
        _ => {
            let nonce = random_token();
            let set = set_cookie(state, LOGIN_COOKIE, nonce.expose(), None);
            (mac(state, "login", nonce.expose()), Some(set))
        }
    }
}

/// Whether `presented` is the CSRF value of this browser's login nonce.
pub fn login_csrf_ok(state: &AppState, headers: &HeaderMap, presented: Option<&str>) -> bool {
    match read_cookie(headers, &cookie_name(state, LOGIN_COOKIE)) {
        Some(nonce) if nonce.len() >= 32 => equal(&mac(state, "login", &nonce), presented),
        _ => false,
    }
}

/// The CSRF value of the forms a signed-in user submits (consent, logout):
/// a MAC of the session, so it changes at every sign-in.
pub fn session_csrf(state: &AppState, session: &Session) -> String {
    mac(state, "session", &session.id_hash)
}

pub fn session_csrf_ok(state: &AppState, session: &Session, presented: Option<&str>) -> bool {
    equal(&session_csrf(state, session), presented)
}

/// Whether a form post comes from Steward's own origin, as far as the
/// browser says: `Sec-Fetch-Site` must be `same-origin` and `Origin` the
/// issuer's origin when they are sent. A sibling port on localhost is the
/// same *site* (SameSite=Lax lets its posts carry our cookies) but not the
/// same *origin*; this refuses it. Clients that send neither (not browsers)
/// still need the CSRF value.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return false;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => url::Url::parse(&state.issuer)
            .is_ok_and(|issuer| origin.as_bytes() == issuer.origin().ascii_serialization().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::{attrs_for, name_for};

    #[test]
    fn https_cookies_are_host_prefixed_secure_httponly_lax() {
        assert_eq!(name_for(true, "steward_session"), "__Host-steward_session");
        assert_eq!(
            attrs_for(true, Some(60)),
            "; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"
        );
        // Browsers refuse `__Host-` without Secure, so plain-http loopback
        // development drops the prefix and the flag, never HttpOnly or SameSite.
        assert_eq!(name_for(false, "steward_session"), "steward_session");
        assert_eq!(attrs_for(false, None), "; Path=/; HttpOnly; SameSite=Lax");
    }
}
