//! Logout: `GET /logout` shows a confirmation form, `POST /logout` ends the
//! session.
//!
//! The post is a state change, so it carries the session-bound CSRF value
//! and must come from Steward's own origin (see [`crate::oauth::session`]):
//! otherwise any page could sign the user out (logout CSRF). Ending the
//! session deletes its row — the cookie alone is not trusted to disappear —
//! and clears the cookie. Tokens already issued to applications are not
//! revoked: they belong to the user's approvals, not to the browser session
//! (revocation is `POST /revoke`, or revoking the grant).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::oauth::pages;
use crate::oauth::params::Params;
use crate::oauth::session::{self, SESSION_COOKIE};
use crate::state::AppState;

fn action(state: &AppState) -> String {
    format!("{}/logout", state.issuer.trim_end_matches('/'))
}

pub async fn logout_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session::current(&state, &headers).await {
        Some(s) => pages::logout_form(&action(&state), &session::session_csrf(&state, &s)),
        None => pages::signed_out(),
    }
}

pub async fn logout_post(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let p = Params::parse(&body);
    if !session::same_origin(&state, &headers) {
        return refused();
    }
    let Some(s) = session::current(&state, &headers).await else {
        // Nothing to end (expired, or already signed out); the cookie, if any, goes.
        return session::with_cookies(
            pages::signed_out(),
            [session::clear_cookie(&state, SESSION_COOKIE)],
        );
    };
    if !session::session_csrf_ok(&state, &s, p.get("csrf")) {
        return refused();
    }
    if let Err(e) = state.store.delete_session(&s.id_hash).await {
        tracing::error!(error = %e, "could not end session");
        return pages::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "You are still signed in. Try again in a few minutes; if it keeps happening, give the \
             administrator the request id below.",
            None,
        );
    }
    crate::oauth::authorize::audit(
        &state,
        "user.logout",
        None,
        Some(&s.user_id),
        serde_json::json!({}),
    )
    .await;
    session::with_cookies(
        pages::signed_out(),
        [session::clear_cookie(&state, SESSION_COOKIE)],
    )
}

fn refused() -> Response {
    pages::error_page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "The form expired or was not sent by this site. Go back and try again.",
        None,
    )
}
