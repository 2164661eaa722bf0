//! The authorization endpoint (OAuth 2.1 §4.1), with login and consent.
//!
//! Order matters (OAuth 2.1 §4.1.2.1, SPEC_CHECKLIST §19): the client is
//! checked first, the redirect URI second. Until both are valid nothing is
//! redirected — an unknown client, a metadata document that cannot be used,
//! or a redirect URI that is not registered gets an error page, because
//! redirecting would make Steward an open redirector. After that, every
//! error goes back to the client with `state` and `iss` (RFC 9207).

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use steward_core::pkce::{CodeChallenge, PkceError};
use steward_core::scope::ScopeSet;
use steward_core::secret::{ordered_id, random_token, token_hash};
use steward_core::{ErrorCode, OAuthError, UnixTime};
use steward_store::{AuthorizationCode, NewAuditEvent, NewGrant, Session};
use subtle::ConstantTimeEq;

use crate::oauth::clients::{Client, ClientError, resolve_for_authorize};
use crate::oauth::pages::{self, ConsentView};
use crate::oauth::params::Params;
use crate::oauth::resources::Resource;
use crate::state::AppState;

/// A request that passed validation: the client, and where to send the answer.
struct Validated {
    client: Client,
    /// The redirect URI exactly as the request sent it (or the sole registered one).
    redirect_uri: String,
    /// The registered redirect URI it matched: grants are kept per registered URI.
    registered: String,
    state: Option<String>,
    challenge: CodeChallenge,
    resource: Resource,
    scopes: ScopeSet,
    prompt: Prompt,
    /// The raw request, replayed after login and consent.
    raw: String,
}

#[derive(Clone, Copy, Default)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

fn host_of(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| uri.to_owned())
}

/// The redirect back to the client: `code` or `error`, plus `state` and `iss`.
fn redirect_to(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{sep}{}", ser.finish());
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    pages::secure_headers(res.headers_mut());
    res
}

fn error_redirect(state: &AppState, v_redirect: &str, v_state: Option<&str>, e: &OAuthError) -> Response {
    let description = e.wire_description();
    let mut pairs = vec![
        ("error", e.code.as_str()),
        ("error_description", description.as_str()),
    ];
    if let Some(s) = v_state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.issuer));
    redirect_to(v_redirect, &pairs)
}

fn client_error_page(e: &ClientError) -> Response {
    match e {
        ClientError::Metadata(m) if m.is_transient() => pages::error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The application's metadata is temporarily unavailable",
            &format!(
                "Steward could not fetch the application's metadata document ({}). Try again shortly.",
                m.reason()
            ),
            Some(m.retry_after_secs().unwrap_or(30)),
        ),
        ClientError::Metadata(m) => pages::error_page(
            StatusCode::BAD_REQUEST,
            "This application cannot be used",
            &format!("Its client metadata document was refused: {m} [{}]", m.reason()),
            None,
        ),
        ClientError::Unknown => pages::error_page(
            StatusCode::BAD_REQUEST,
            "Unknown application",
            "The client_id is not known to this server.",
            None,
        ),
        ClientError::NotActive(s) => pages::error_page(
            StatusCode::FORBIDDEN,
            "This application is blocked",
            &format!("The application is {s} on this server."),
            None,
        ),
        ClientError::Store(_) | ClientError::CorruptRegistration => {
            tracing::error!(error = %e, "client resolution failed");
            pages::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Please try again later.",
                None,
            )
        }
    }
}

/// Validates an authorization request. `Err` is the response to send: an
/// error page before the redirect URI is trusted, a redirect after.
async fn validate(state: &AppState, raw: &str) -> Result<Validated, Response> {
    let p = Params::parse(raw);
    let bad_page = |msg: &str| {
        pages::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            msg,
            None,
        )
    };
    // 1. The client.
    if p.is_repeated("client_id") {
        return Err(bad_page("client_id is repeated."));
    }
    let Some(client_id) = p.get("client_id") else {
        return Err(bad_page("client_id is missing."));
    };
    let client = resolve_for_authorize(state, client_id)
        .await
        .map_err(|e| client_error_page(&e))?;
    // 2. The redirect URI.
    if p.is_repeated("redirect_uri") {
        return Err(bad_page("redirect_uri is repeated."));
    }
    let (redirect_uri, registered) = match p.get("redirect_uri") {
        Some(sent) => match client.redirect_uris.iter().find(|r| r.matches(sent)) {
            Some(r) => (sent.to_owned(), r.as_str().to_owned()),
            None => return Err(bad_page("redirect_uri is not registered for this application.")),
        },
        None => match client.redirect_uris.as_slice() {
            [only] => (only.as_str().to_owned(), only.as_str().to_owned()),
            [] => return Err(bad_page("this application has no registered redirect URI.")),
            _ => {
                return Err(bad_page(
                    "redirect_uri is required: the application registered several.",
                ));
            }
        },
    };
    // From here on, errors go back to the client.
    let v_state = if p.is_repeated("state") {
        None
    } else {
        p.get("state").map(str::to_owned)
    };
    let fail = |e: OAuthError| error_redirect(state, &redirect_uri, v_state.as_deref(), &e);
    if p.first_repeated().is_some() {
        return Err(fail(OAuthError::invalid_request("a parameter is repeated")));
    }
    match p.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(fail(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            )));
        }
        None => return Err(fail(OAuthError::invalid_request("response_type is required"))),
    }
    if !client.allows_grant("authorization_code") {
        return Err(fail(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client may not use the authorization code grant",
        )));
    }
    let challenge = CodeChallenge::from_request(p.get("code_challenge"), p.get("code_challenge_method"))
        .map_err(|e| {
            fail(OAuthError::invalid_request(match e {
                PkceError::MissingChallenge => "code_challenge is required (PKCE S256)",
                PkceError::UnsupportedMethod => "code_challenge_method must be S256",
                PkceError::MalformedChallenge => "code_challenge is malformed",
            }))
        })?;
    let resource = state
        .oauth
        .resources
        .select(p.resources(), &state.issuer)
        .map_err(&fail)?;
    let scopes = state
        .oauth
        .resources
        .grant_scopes(&resource, p.get("scope"), &client)
        .map_err(&fail)?;
    let mut prompt = Prompt::default();
    if let Some(list) = p.get("prompt") {
        for v in list.split(' ') {
            match v {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                _ => {
                    return Err(fail(OAuthError::invalid_request(
                        "prompt must be none, login or consent",
                    )));
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(fail(OAuthError::invalid_request(
                "prompt=none cannot be combined",
            )));
        }
    }
    Ok(Validated {
        client,
        redirect_uri,
        registered,
        state: v_state,
        challenge,
        resource,
        scopes,
        prompt,
        raw: raw.to_owned(),
    })
}

// ---- cookies ---------------------------------------------------------------

/// Cookie names: `__Host-` (Secure, Path=/, no Domain) when the issuer is
/// https. Browsers refuse `__Host-` cookies without Secure, so on a plain-http
/// loopback issuer (development) the names carry no prefix.
fn cookie_name(state: &AppState, base: &str) -> String {
    name_for(state.issuer.starts_with("https://"), base)
}

fn name_for(secure: bool, base: &str) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn cookie_attrs(state: &AppState, max_age: Option<u64>) -> String {
    attrs_for(state.issuer.starts_with("https://"), max_age)
}

fn attrs_for(secure: bool, max_age: Option<u64>) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    format!("; Path=/; HttpOnly; SameSite=Lax{secure}{age}")
}

fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The per-browser CSRF value (double-submit: a cookie the form must echo;
/// SameSite=Lax keeps other sites from sending it with a POST).
fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    match read_cookie(headers, &cookie_name(state, "steward_csrf")) {
        Some(v) if v.len() >= 32 => (v, None),
        _ => {
            let v = random_token().expose().to_owned();
            let set = format!(
                "{}={v}{}",
                cookie_name(state, "steward_csrf"),
                cookie_attrs(state, None)
            );
            (v, Some(set))
        }
    }
}

fn csrf_ok(state: &AppState, headers: &HeaderMap, presented: Option<&str>) -> bool {
    match (
        read_cookie(headers, &cookie_name(state, "steward_csrf")),
        presented,
    ) {
        (Some(c), Some(p)) => c.len() >= 32 && bool::from(c.as_bytes().ct_eq(p.as_bytes())),
        _ => false,
    }
}

fn with_cookie(mut res: Response, set: Option<String>) -> Response {
    if let Some(v) = set.and_then(|s| HeaderValue::from_str(&s).ok()) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn session_user(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let id = read_cookie(headers, &cookie_name(state, "steward_session"))?;
    state
        .store
        .get_session(&token_hash(&id), state.clock.now())
        .await
        .ok()
        .flatten()
}

// ---- handlers --------------------------------------------------------------

pub async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    authorize(&state, &headers, q.unwrap_or_default()).await
}

pub async fn authorize_post(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    authorize(&state, &headers, body).await
}

async fn authorize(state: &AppState, headers: &HeaderMap, raw: String) -> Response {
    let v = match validate(state, &raw).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    // Development auto-approval: signs in as the configured user and approves.
    if let Some(user_id) = &state.oauth.dev_user_id {
        return issue_code(state, &v, user_id, state.clock.now()).await;
    }
    let session = if v.prompt.login {
        None
    } else {
        session_user(state, headers).await
    };
    let Some(session) = session else {
        if v.prompt.none {
            let e = OAuthError::new(ErrorCode::LoginRequired, "the user is not signed in");
            return error_redirect(state, &v.redirect_uri, v.state.as_deref(), &e);
        }
        let (csrf, set) = csrf_token(state, headers);
        let action = format!("{}/authorize/login", state.issuer.trim_end_matches('/'));
        return with_cookie(
            pages::login(&action, &csrf, &v.raw, &host_of(&v.client.id), None),
            set,
        );
    };
    signed_in(state, headers, &v, &session).await
}

/// The user is signed in: ask for consent when it is needed, else issue the code.
async fn signed_in(state: &AppState, headers: &HeaderMap, v: &Validated, session: &Session) -> Response {
    let warnings = consent_warnings(state, v, &session.user_id).await;
    if v.prompt.consent || warnings.needs_consent {
        if v.prompt.none {
            let e = OAuthError::new(ErrorCode::ConsentRequired, "the user must approve this request");
            return error_redirect(state, &v.redirect_uri, v.state.as_deref(), &e);
        }
        let (csrf, set) = csrf_token(state, headers);
        return with_cookie(render_consent(state, v, &csrf, warnings.messages).await, set);
    }
    issue_code(state, v, &session.user_id, session.auth_time).await
}

struct ConsentCheck {
    needs_consent: bool,
    messages: Vec<&'static str>,
}

/// Whether the user must be asked, and what to warn about.
async fn consent_warnings(state: &AppState, v: &Validated, user_id: &str) -> ConsentCheck {
    let mut messages = Vec::new();
    let mut needs_consent = false;
    if v.client.loopback_only() {
        messages.push("Every redirect address of this application is on this device: any program on this device can use this client.");
        // OAuth 2.1 §7.3.1: its identity cannot be assured, so ask every time.
        if v.client.is_public() {
            needs_consent = true;
        }
    }
    let now = state.clock.now();
    if let Ok(Some(record)) = state.store.get_client(&v.client.id).await
        && now.seconds() - record.first_seen.seconds() < 86_400
    {
        messages.push("This application is new to this server.");
    }
    match state.store.find_grant(user_id, &v.client.id, &v.registered).await {
        Ok(Some(g)) if g.revoked_at.is_none() => {
            let granted = ScopeSet::parse(&g.scopes).unwrap_or_default();
            if !v.scopes.is_subset(&granted) || g.resource.as_deref() != Some(v.resource.uri.as_str()) {
                needs_consent = true;
            }
            if g.metadata_version_id.is_some() && g.metadata_version_id != v.client.metadata_version {
                messages.push("This application's metadata changed since you last approved it.");
                needs_consent = true;
            }
        }
        _ => needs_consent = true,
    }
    ConsentCheck {
        needs_consent,
        messages,
    }
}

async fn render_consent(
    state: &AppState,
    v: &Validated,
    csrf: &str,
    warnings: Vec<&'static str>,
) -> Response {
    let scopes = v
        .scopes
        .iter()
        .map(|s| {
            (
                s.to_owned(),
                v.resource.scopes.get(s).cloned().unwrap_or_else(|| s.to_owned()),
            )
        })
        .collect();
    let logo = match &v.client.logo_uri {
        Some(uri) => crate::oauth::logo::logo_url(state, uri).await,
        None => None,
    };
    let view = ConsentView {
        logo_url: logo.as_deref(),
        client_host: &host_of(&v.client.id),
        redirect_host: &host_of(&v.redirect_uri),
        client_name: v.client.name.as_deref(),
        client_id: &v.client.id,
        resource_name: &v.resource.name,
        scopes,
        warnings,
    };
    let action = format!("{}/authorize/consent", state.issuer.trim_end_matches('/'));
    pages::consent(&action, csrf, &v.raw, &view)
}

/// Records the grant, stores the code (bound to client, exact redirect URI,
/// PKCE challenge, scopes, resource, user and metadata version) and
/// redirects with `code`, `state` and `iss`.
async fn issue_code(state: &AppState, v: &Validated, user_id: &str, auth_time: UnixTime) -> Response {
    let now = state.clock.now();
    let grant = NewGrant {
        id: format!("grt_{}", ordered_id(now)),
        user_id: user_id.to_owned(),
        client_id: v.client.id.clone(),
        redirect_uri: v.registered.clone(),
        scopes: v.scopes.to_string(),
        resource: Some(v.resource.uri.clone()),
        metadata_version_id: v.client.metadata_version,
        now,
    };
    let code = random_token();
    let lifetime = i64::try_from(state.settings.tokens.code_lifetime_secs).unwrap_or(60);
    let record = AuthorizationCode {
        code_hash: token_hash(code.expose()),
        client_id: v.client.id.clone(),
        user_id: user_id.to_owned(),
        // Replaced by the stored grant's id (a re-approval keeps its grant).
        grant_id: grant.id.clone(),
        redirect_uri: v.redirect_uri.clone(),
        code_challenge: v.challenge.as_str().to_owned(),
        scopes: v.scopes.to_string(),
        resource: Some(v.resource.uri.clone()),
        metadata_version_id: v.client.metadata_version,
        auth_time,
        created_at: now,
        expires_at: now.plus_secs(lifetime),
        consumed_at: None,
        family_id: None,
    };
    // Grant, code and the client's last-seen time: one transaction.
    if let Err(e) = state.store.record_authorization(&grant, &record).await {
        return server_error(state, v, &e);
    }
    let mut pairs = vec![("code", code.expose())];
    if let Some(s) = &v.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.issuer));
    redirect_to(&v.redirect_uri, &pairs)
}

fn server_error(state: &AppState, v: &Validated, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "authorization failed");
    error_redirect(
        state,
        &v.redirect_uri,
        v.state.as_deref(),
        &OAuthError::server_error(),
    )
}

async fn audit(
    state: &AppState,
    action: &str,
    client_id: Option<&str>,
    subject: Option<&str>,
    detail: serde_json::Value,
) {
    let event = NewAuditEvent {
        at: state.clock.now(),
        actor: subject.unwrap_or("anonymous").to_owned(),
        action: action.to_owned(),
        client_id: client_id.map(str::to_owned),
        subject: subject.map(str::to_owned),
        detail: detail.to_string(),
    };
    if let Err(e) = state.store.append_audit(&event).await {
        tracing::warn!(error = %e, "could not write audit event");
    }
}

// ---- login -----------------------------------------------------------------

pub async fn login_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let p = Params::parse(&body);
    if !csrf_ok(&state, &headers, p.get("csrf")) {
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "The form expired or was not sent by this site. Go back and try again.",
            None,
        );
    }
    let raw = p.get("request").unwrap_or_default().to_owned();
    let v = match validate(&state, &raw).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let username = p.get("username").unwrap_or_default();
    let password = p.get("password").unwrap_or_default();
    let (csrf, _) = csrf_token(&state, &headers);
    let action = format!("{}/authorize/login", state.issuer.trim_end_matches('/'));
    let client_host = host_of(&v.client.id);
    // Reserved before the password is checked (issue 11 items 10-11).
    let checks = crate::oauth::limits::login_checks(&state.settings.login, username, peer.ip());
    let reservation = state
        .oauth
        .login_failures
        .reserve(&*state.store, state.clock.now(), checks)
        .await;
    let reservation = match reservation {
        Ok(r) => r,
        Err(crate::oauth::limits::Refused::Store(e)) => {
            tracing::error!(error = %e, "could not reserve a login attempt");
            return pages::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Please try again later.",
                None,
            );
        }
        Err(crate::oauth::limits::Refused::Locked(_)) => {
            let mut res = pages::login(
                &action,
                &csrf,
                &raw,
                &client_host,
                Some("Too many failed attempts. Try again later."),
            );
            *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            return res;
        }
    };
    let verified = crate::oauth::users::verify_login(&state, username, password).await;
    match &verified {
        Ok(None) => reservation.failed(&*state.store, |_| true).await,
        Ok(Some(_)) | Err(_) => reservation.succeeded(&*state.store).await,
    }
    match verified {
        Ok(Some(user)) => {
            let now = state.clock.now();
            let id = random_token();
            let lifetime = state.settings.login.session_lifetime_secs;
            let session = Session {
                id_hash: token_hash(id.expose()),
                user_id: user.id.clone(),
                created_at: now,
                expires_at: now.plus_secs(i64::try_from(lifetime).unwrap_or(i64::MAX)),
                auth_time: now,
            };
            if let Err(e) = state.store.create_session(&session).await {
                tracing::error!(error = %e, "could not create session");
                return pages::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Please try again later.",
                    None,
                );
            }
            audit(
                &state,
                "user.login",
                Some(&v.client.id),
                Some(&user.id),
                serde_json::json!({}),
            )
            .await;
            let cookie = format!(
                "{}={}{}",
                cookie_name(&state, "steward_session"),
                id.expose(),
                cookie_attrs(&state, Some(lifetime))
            );
            // Continue the flow with the fresh session rather than replaying the
            // request through /authorize: a replayed `prompt=login` would ask
            // for the password again, forever (OIDC Core §3.1.2.1 semantics).
            let res = signed_in(&state, &headers, &v, &session).await;
            with_cookie(res, Some(cookie))
        }
        Ok(None) => {
            audit(
                &state,
                "user.login_failed",
                Some(&v.client.id),
                None,
                serde_json::json!({ "address": peer.ip().to_string() }),
            )
            .await;
            // The same words whether or not the user exists.
            pages::login(
                &action,
                &csrf,
                &raw,
                &client_host,
                Some("The username or password is incorrect."),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "login failed");
            pages::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Please try again later.",
                None,
            )
        }
    }
}

// ---- consent ---------------------------------------------------------------

pub async fn consent_post(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let p = Params::parse(&body);
    if !csrf_ok(&state, &headers, p.get("csrf")) {
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "The form expired or was not sent by this site. Go back and try again.",
            None,
        );
    }
    let raw = p.get("request").unwrap_or_default().to_owned();
    let v = match validate(&state, &raw).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let Some(session) = session_user(&state, &headers).await else {
        let (csrf, set) = csrf_token(&state, &headers);
        let action = format!("{}/authorize/login", state.issuer.trim_end_matches('/'));
        return with_cookie(
            pages::login(&action, &csrf, &raw, &host_of(&v.client.id), None),
            set,
        );
    };
    match p.get("decision") {
        Some("approve") => {
            audit(
                &state,
                "consent.approved",
                Some(&v.client.id),
                Some(&session.user_id),
                serde_json::json!({
                    "scopes": v.scopes.to_string(), "resource": v.resource.uri, "redirect_uri": v.registered,
                    "metadata_version_id": v.client.metadata_version,
                }),
            )
            .await;
            issue_code(&state, &v, &session.user_id, session.auth_time).await
        }
        Some("deny") => {
            audit(
                &state,
                "consent.denied",
                Some(&v.client.id),
                Some(&session.user_id),
                serde_json::json!({}),
            )
            .await;
            let e = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            error_redirect(&state, &v.redirect_uri, v.state.as_deref(), &e)
        }
        _ => pages::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "Choose Allow or Deny.",
            None,
        ),
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
