//! The authorization endpoint (OAuth 2.1 §4.1), with login and consent.
//!
//! Order matters (OAuth 2.1 §4.1.2.1, SPEC_CHECKLIST §19): the client is
//! checked first, the redirect URI second. Until both are valid nothing is
//! redirected — an unknown client, a metadata document that cannot be used,
//! or a redirect URI that is not registered gets an error page, because
//! redirecting would make Steward an open redirector. After that, an error
//! goes back to the client with `state` and `iss` (RFC 9207) — when Steward
//! trusts the redirect URI. A metadata-document client "registers" its
//! redirect URI by publishing a file, so for a client Steward has not
//! verified, before the user has approved it, an error is an interstitial
//! page naming the destination host instead (RFC 9700 §4.11.2; see
//! [`refuse`]).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use steward_core::pkce::{CodeChallenge, PkceError};
use steward_core::scope::ScopeSet;
use steward_core::secret::{ordered_id, random_token, token_hash};
use steward_core::{ErrorCode, OAuthError, TrustTier, UnixTime};
use steward_store::{AuthorizationCode, NewAuditEvent, NewGrant, Session};

use crate::client_address::ClientAddress;
use crate::oauth::clients::{Client, ClientError, resolve_for_authorize};
use crate::oauth::pages::{self, ConsentView};
use crate::oauth::params::Params;
use crate::oauth::resources::Resource;
use crate::oauth::session::{self, LOGIN_COOKIE, SESSION_COOKIE};
use crate::request_id::RequestId;
use crate::state::AppState;

/// Where the answer to a request goes, once client and redirect URI are valid.
#[derive(Clone, Debug)]
struct Destination {
    client_id: String,
    trust_tier: TrustTier,
    /// The redirect URI exactly as the request sent it (or the sole registered one).
    redirect_uri: String,
    /// The registered redirect URI it matched: grants are kept per registered URI.
    registered: String,
    /// The redirect URI of *this request* is http loopback: any program on
    /// the device may be listening on it (OAuth 2.1 §7.3.1).
    loopback: bool,
    state: Option<String>,
}

/// Why a request is not carried out.
enum Refusal {
    /// Before the redirect URI is trusted: an error page.
    Page(Response),
    /// After: an error for the client, delivered by [`refuse`].
    Client(Box<Destination>, OAuthError),
}

/// A request that passed validation: the client, and where to send the answer.
#[derive(Clone)]
struct Validated {
    client: Client,
    to: Destination,
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

/// The next step after a failure on Steward's side.
const SOMETHING_WRONG: &str =
    "Try again in a few minutes. If it keeps happening, give the administrator the request id below.";

/// How the pages name the client (see [`pages::ClientLabel`]), from its kind.
fn client_label(client: &crate::oauth::clients::Client) -> pages::ClientLabel {
    use steward_core::ClientKind;
    match (client.kind, &client.name) {
        (ClientKind::PreRegistered, Some(name)) => pages::ClientLabel::Configured(name.clone()),
        (ClientKind::PreRegistered, None) => pages::ClientLabel::Unnamed(client.id.clone()),
        (ClientKind::MetadataDocument, name) => {
            pages::ClientLabel::Document(host_of(&client.id), name.clone())
        }
        (ClientKind::Dynamic, name) => pages::ClientLabel::Registered(name.clone()),
    }
}

fn host_of(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| uri.to_owned())
}

/// The redirect URI with the answer to the client: `code` or `error`, plus
/// `state` and `iss`.
fn location(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{sep}{}", ser.finish())
}

fn found(location: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    pages::secure_headers(res.headers_mut());
    res
}

fn error_location(state: &AppState, to: &Destination, e: &OAuthError) -> String {
    let description = e.wire_description();
    let mut pairs = vec![
        ("error", e.code.as_str()),
        ("error_description", description.as_str()),
    ];
    if let Some(s) = &to.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.issuer));
    location(&to.redirect_uri, &pairs)
}

fn error_redirect(state: &AppState, to: &Destination, e: &OAuthError) -> Response {
    found(&error_location(state, to, e))
}

/// Delivers an error to the client — or, when Steward does not trust the
/// redirect URI enough to send the browser there unasked, shows it.
///
/// RFC 9700 §4.11.2: an authorization server should redirect automatically
/// only to URIs it trusts. With metadata documents, "registering" a client
/// is publishing a file, so a document whose only redirect URI is the
/// attacker's landing page turns every error redirect into an open
/// redirector. The redirect is trusted when the client is not of the
/// `unverified` tier (pre-registered, or approved by an operator), or when
/// the signed-in `user` has already approved this client at this redirect
/// URI. Otherwise — first contact, before the user has authenticated and
/// approved — the answer is an interstitial page naming the destination host.
async fn refuse(
    state: &AppState,
    to: &Destination,
    user: Option<&str>,
    e: &OAuthError,
    request_id: &RequestId,
) -> Response {
    if redirect_trusted(state, to, user).await {
        return error_redirect(state, to, e);
    }
    tracing::info!(
        request_id = request_id.as_str(),
        client_id = to.client_id,
        error = e.code.as_str(),
        "authorization error shown, not redirected: the client is unverified and not approved by this user"
    );
    pages::redirect_interstitial(
        &e.wire_description(),
        &host_of(&to.redirect_uri),
        &error_location(state, to, e),
        request_id,
    )
}

async fn redirect_trusted(state: &AppState, to: &Destination, user: Option<&str>) -> bool {
    if to.trust_tier != TrustTier::Unverified {
        return true;
    }
    let Some(user) = user else {
        return false;
    };
    matches!(
        state.store.find_grant(user, &to.client_id, &to.registered).await,
        Ok(Some(g)) if g.revoked_at.is_none()
    )
}

/// The page for a client that cannot be used. The visitor may be anyone,
/// and the client_id anything they typed, so the page gives a short reason
/// and the request id, never the details (issue 11 item 3): which address an
/// internal name resolves to, whether a port inside `allow_networks` is
/// closed, open or speaking TLS, or the document's own text. Every failure
/// to fetch the document therefore gets the same page, status and headers;
/// the details are logged with the request id and written to the audit trail
/// (see `crate::cimd::record_refusal`).
fn client_error_page(e: &ClientError, request_id: &RequestId) -> Response {
    use steward_cimd::ResolveError;
    // What went wrong is for the application's developer; the person is
    // told what they can do.
    let unusable = |details: String| {
        pages::error_page_for_developer(
            StatusCode::BAD_REQUEST,
            "This application cannot be used",
            "This server cannot accept the application that sent you here. Go back to it and try again; \
             if it keeps happening, tell its developer.",
            Some(&details),
            None,
        )
    };
    match e {
        ClientError::Metadata(ResolveError::InvalidClientId(err)) => unusable(format!(
            "the client_id is not a usable metadata document URL ({})",
            err.reason()
        )),
        ClientError::Metadata(ResolveError::Invalid(problems)) => {
            // Rule ids are Steward's own words; a member name is shown only
            // when it is one Steward knows, never text from the document.
            let mut rules: Vec<String> = problems
                .iter()
                .map(|p| match p.known_member() {
                    Some(m) => format!("{} ({m})", p.rule),
                    None => p.rule.to_owned(),
                })
                .collect();
            rules.dedup();
            unusable(format!(
                "its client metadata document breaks these rules: {}. `steward cimd check <client_id>` \
                 explains each.",
                rules.join(", ")
            ))
        }
        ClientError::Metadata(m) => pages::error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The application's metadata is unavailable",
            "Steward could not retrieve the application's metadata document. Try again later.",
            Some(m.retry_after_secs().unwrap_or(30)),
        ),
        ClientError::Unknown => pages::error_page(
            StatusCode::BAD_REQUEST,
            "Unknown application",
            "This server does not know the application that sent you here. Go back to it and check \
             which server it is set up to use.",
            None,
        ),
        ClientError::DomainRefused => pages::error_page(
            StatusCode::FORBIDDEN,
            "This application is not allowed",
            "This server's administrators do not allow applications from this domain. Ask them if you \
             need it; quote the request id.",
            None,
        ),
        ClientError::NotActive(s) => pages::error_page(
            StatusCode::FORBIDDEN,
            "This application is blocked",
            &format!(
                "This application is {s} on this server, so it cannot sign you in. Ask the server's \
                 administrators if you need it, quoting the request id below."
            ),
            None,
        ),
        ClientError::Store(_) | ClientError::CorruptRegistration => {
            tracing::error!(request_id = request_id.as_str(), error = %e, "client resolution failed");
            pages::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                SOMETHING_WRONG,
                None,
            )
        }
    }
}

/// Validates an authorization request. `Err` says what to answer: an error
/// page before the redirect URI is trusted, an error for the client after.
async fn validate(state: &AppState, raw: &str, request_id: &RequestId) -> Result<Validated, Refusal> {
    let p = Params::parse(raw);
    let bad_page = |msg: &str| {
        Refusal::Page(pages::error_page_for_developer(
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            "The application sent a sign-in request this server cannot accept. Go back to it and try \
             again; if it keeps happening, tell its developer.",
            Some(msg),
            None,
        ))
    };
    // 1. The client.
    if p.is_repeated("client_id") {
        return Err(bad_page("client_id is repeated."));
    }
    let Some(client_id) = p.get("client_id") else {
        return Err(bad_page("client_id is missing."));
    };
    let client = resolve_for_authorize(state, client_id, request_id)
        .await
        .map_err(|e| Refusal::Page(client_error_page(&e, request_id)))?;
    // 2. The redirect URI.
    if p.is_repeated("redirect_uri") {
        return Err(bad_page("redirect_uri is repeated."));
    }
    let (redirect_uri, registered) = match p.get("redirect_uri") {
        Some(sent) => match client.redirect_uris.iter().find(|r| r.matches(sent)) {
            Some(r) => (sent.to_owned(), r.clone()),
            None => return Err(bad_page("redirect_uri is not registered for this application.")),
        },
        None => match client.redirect_uris.as_slice() {
            [only] => (only.as_str().to_owned(), only.clone()),
            [] => return Err(bad_page("this application has no registered redirect URI.")),
            _ => {
                return Err(bad_page(
                    "redirect_uri is required: the application registered several.",
                ));
            }
        },
    };
    // From here on, errors are for the client (see `refuse`).
    let to = Destination {
        client_id: client.id.clone(),
        trust_tier: client.trust_tier,
        redirect_uri,
        registered: registered.as_str().to_owned(),
        loopback: registered.is_loopback(),
        state: if p.is_repeated("state") {
            None
        } else {
            p.get("state").map(str::to_owned)
        },
    };
    let fail = |e: OAuthError| Refusal::Client(Box::new(to.clone()), e);
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
        to,
        challenge,
        resource,
        scopes,
        prompt,
        raw: raw.to_owned(),
    })
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

/// The user this browser is signed in as (or the development auto-approval
/// user), for deciding whether an error may be redirected.
async fn browser_user(state: &AppState, headers: &HeaderMap) -> Option<String> {
    match &state.oauth.dev_user_id {
        Some(u) => Some(u.clone()),
        None => session::current(state, headers).await.map(|s| s.user_id),
    }
}

/// The login form for `v`, with this browser's login nonce (set when new).
fn login_page(state: &AppState, headers: &HeaderMap, v: &Validated) -> Response {
    let (csrf, set) = session::login_csrf(state, headers);
    let action = format!("{}/authorize/login", state.issuer.trim_end_matches('/'));
    session::with_cookies(
        pages::login(&action, &csrf, &v.raw, &client_label(&v.client), None),
        set,
    )
}

async fn authorize(state: &AppState, headers: &HeaderMap, raw: String) -> Response {
    let request_id = RequestId::current();
    let v = match validate(state, &raw, &request_id).await {
        Ok(v) => v,
        Err(Refusal::Page(res)) => return res,
        Err(Refusal::Client(to, e)) => {
            let user = browser_user(state, headers).await;
            return refuse(state, &to, user.as_deref(), &e, &request_id).await;
        }
    };
    // Development auto-approval: signs in as the configured user and approves
    // (what the policy grants; an approval it needs is requested for them).
    if let Some(user_id) = &state.oauth.dev_user_id {
        let mut v = v;
        return match govern(state, &mut v, user_id).await {
            Ok(()) => issue_code(state, &v, user_id, state.clock.now()).await,
            Err(Governed::Refused(e)) => refuse(state, &v.to, Some(user_id), &e, &request_id).await,
            Err(Governed::NeedsApproval(needed)) => {
                let reason = "requested by [dev] auto_approve_user";
                send_access_request(state, &v, user_id, &needed, reason, &request_id).await
            }
        };
    }
    let session = if v.prompt.login {
        None
    } else {
        session::current(state, headers).await
    };
    let Some(session) = session else {
        if v.prompt.none {
            let e = OAuthError::new(ErrorCode::LoginRequired, "the user is not signed in");
            return refuse(state, &v.to, None, &e, &request_id).await;
        }
        return login_page(state, headers, &v);
    };
    signed_in(state, &v, &session, &request_id).await
}

/// The user is signed in: ask for consent when it is needed, else issue the
/// code. The consent form's CSRF value is bound to `session`.
async fn signed_in(state: &AppState, v: &Validated, session: &Session, request_id: &RequestId) -> Response {
    let mut v = v.clone();
    let v = &mut v;
    match govern(state, v, &session.user_id).await {
        Ok(()) => {}
        Err(Governed::Refused(e)) => {
            return refuse(state, &v.to, Some(&session.user_id), &e, request_id).await;
        }
        Err(Governed::NeedsApproval(needed)) => {
            if v.prompt.none {
                let e = OAuthError::new(
                    ErrorCode::AccessDenied,
                    "the platform team must approve this client for the requested scopes",
                );
                return refuse(state, &v.to, Some(&session.user_id), &e, request_id).await;
            }
            return access_request_page(state, v, session, &needed).await;
        }
    }
    let v = &*v;
    let warnings = consent_warnings(state, v, &session.user_id).await;
    if v.prompt.consent || warnings.needs_consent {
        if v.prompt.none {
            let e = OAuthError::new(ErrorCode::ConsentRequired, "the user must approve this request");
            return refuse(state, &v.to, Some(&session.user_id), &e, request_id).await;
        }
        let csrf = session::session_csrf(state, session);
        return render_consent(state, v, session, &csrf, warnings.messages).await;
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
    // Judged by the redirect URI of *this* request, not by the client's list:
    // a client registering an https and a loopback URI, once approved, must
    // not hand codes silently to whatever local process asks on a loopback
    // port (OAuth 2.1 §7.3.1, MCP security best practices "Localhost
    // Redirect URI Risks"). A public client cannot prove who is listening,
    // so it is asked every time; a confidential one authenticates at the
    // token endpoint, so a stolen code is useless to another process.
    if v.to.loopback {
        messages.push(
            "This request returns to an address on this device: any program on this device can use this client.",
        );
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
    match state
        .store
        .find_grant(user_id, &v.client.id, &v.to.registered)
        .await
    {
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

/// RFC 7591 §5 "watch for impersonating client names": a dynamically
/// registered client's name is its own unverified claim; when another
/// client known here — configured, a metadata document, or registered from
/// another address — goes by the same name, the person deciding is told.
async fn impersonation_warning(
    state: &AppState,
    client: &crate::oauth::clients::Client,
) -> Option<&'static str> {
    if client.kind != steward_core::ClientKind::Dynamic {
        return None;
    }
    let name = steward_store::name_key(client.name.as_deref()?);
    if state.settings.clients.iter().any(|c| {
        c.client_id != client.id
            && c.name
                .as_deref()
                .is_some_and(|n| steward_store::name_key(n) == name)
    }) {
        return Some(IMPERSONATION);
    }
    // Only the clients of this name, by index: an open registration
    // endpoint lets anyone grow the inventory, and this runs on every
    // consent page a registered client shows.
    let namesakes = state
        .store
        .list_clients(&steward_store::ClientFilter {
            name: Some(name),
            limit: Some(NAMESAKES_READ),
            ..Default::default()
        })
        .await
        .ok()?;
    if namesakes.len() >= NAMESAKES_READ as usize {
        return Some(IMPERSONATION);
    }
    let source = |id: &str| {
        let id = id.to_owned();
        async move {
            state
                .store
                .dcr_registration(&id)
                .await
                .ok()
                .flatten()
                .and_then(|r| r.source_address)
        }
    };
    let mine = source(&client.id).await;
    for other in namesakes.iter().filter(|o| o.client_id != client.id) {
        if other.kind != steward_core::ClientKind::Dynamic || source(&other.client_id).await != mine {
            return Some(IMPERSONATION);
        }
    }
    None
}

/// Clients of one name read for the check. A name this many clients share
/// is warned about without looking further: otherwise whoever registered
/// that many from one address would push a genuine namesake out of view.
const NAMESAKES_READ: u32 = 50;

const IMPERSONATION: &str = "Another application known to this server uses the same name. The name is this \
     application's own unverified claim: make sure it is the one you meant before allowing it.";

async fn render_consent(
    state: &AppState,
    v: &Validated,
    session: &Session,
    csrf: &str,
    mut warnings: Vec<&'static str>,
) -> Response {
    if let Some(w) = impersonation_warning(state, &v.client).await {
        warnings.push(w);
    }
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
    let username = user_context(state, &session.user_id).await.map(|u| u.username);
    let view = ConsentView {
        signed_in_as: username.as_deref(),
        logo_url: logo.as_deref(),
        client: &client_label(&v.client),
        redirect_host: &host_of(&v.to.redirect_uri),
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
        redirect_uri: v.to.registered.clone(),
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
        redirect_uri: v.to.redirect_uri.clone(),
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
    if v.client.kind == steward_core::ClientKind::Dynamic {
        crate::oauth::registration::mark_use(state, &v.client.id, steward_store::DcrUse::Authorized).await;
    }
    let mut pairs = vec![("code", code.expose())];
    if let Some(s) = &v.to.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.issuer));
    found(&location(&v.to.redirect_uri, &pairs))
}

/// A failure after the user approved: the client is told (the user saw
/// the consent page naming the destination host and chose to go there).
fn server_error(state: &AppState, v: &Validated, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "authorization failed");
    error_redirect(state, &v.to, &OAuthError::server_error())
}

pub(crate) async fn audit(
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
    crate::request_log::audited(action, client_id);
    if let Err(e) = state.store.append_audit(&event).await {
        tracing::warn!(error = %e, "could not write audit event");
    }
}

// ---- login -----------------------------------------------------------------

pub async fn login_post(
    State(state): State<AppState>,
    ClientAddress(client_address): ClientAddress,
    headers: HeaderMap,
    body: String,
) -> Response {
    let p = Params::parse(&body);
    // Bound to this browser's login nonce, and posted from our own origin.
    if !session::same_origin(&state, &headers) || !session::login_csrf_ok(&state, &headers, p.get("csrf")) {
        return form_refused();
    }
    let request_id = RequestId::current();
    let raw = p.get("request").unwrap_or_default().to_owned();
    let v = match validate(&state, &raw, &request_id).await {
        Ok(v) => v,
        Err(Refusal::Page(res)) => return res,
        // Not signed in yet: an unverified client's error is not redirected.
        Err(Refusal::Client(to, e)) => return refuse(&state, &to, None, &e, &request_id).await,
    };
    let username = p.get("username").unwrap_or_default();
    let password = p.get("password").unwrap_or_default();
    let (csrf, _) = session::login_csrf(&state, &headers);
    let action = format!("{}/authorize/login", state.issuer.trim_end_matches('/'));
    let login_for = client_label(&v.client);
    // Reserved before the password is checked (issue 11 items 10-11).
    let checks = crate::oauth::limits::login_checks(&state.settings.login, username, client_address);
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
                SOMETHING_WRONG,
                None,
            );
        }
        Err(crate::oauth::limits::Refused::Locked(_)) => {
            let mut res = pages::login(
                &action,
                &csrf,
                &raw,
                &login_for,
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
            // A sign-in ends the session this browser held, whoever it was
            // for: two live sessions for one browser is one too many, and a
            // session planted before sign-in must not survive it.
            if let Some(old) = session::presented_session_hash(&state, &headers)
                && let Err(e) = state.store.delete_session(&old).await
            {
                tracing::error!(error = %e, "could not end the previous session");
                return pages::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    SOMETHING_WRONG,
                    None,
                );
            }
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
                    SOMETHING_WRONG,
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
            let cookie = session::set_cookie(&state, SESSION_COOKIE, id.expose(), Some(lifetime));
            // Continue the flow with the fresh session rather than replaying the
            // request through /authorize: a replayed `prompt=login` would ask
            // for the password again, forever (OIDC Core §3.1.2.1 semantics).
            // The consent form's CSRF value is now the new session's: the
            // pre-login value (and its nonce cookie) are spent.
            let res = signed_in(&state, &v, &session, &request_id).await;
            session::with_cookies(res, [cookie, session::clear_cookie(&state, LOGIN_COOKIE)])
        }
        Ok(None) => {
            audit(
                &state,
                "user.login_failed",
                Some(&v.client.id),
                None,
                serde_json::json!({ "address": client_address.to_string() }),
            )
            .await;
            // The same words whether or not the user exists.
            pages::login(
                &action,
                &csrf,
                &raw,
                &login_for,
                Some("The username or password is incorrect."),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "login failed");
            pages::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                SOMETHING_WRONG,
                None,
            )
        }
    }
}

// ---- consent ---------------------------------------------------------------

pub async fn consent_post(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let p = Params::parse(&body);
    let request_id = RequestId::current();
    let (session, v) = match signed_in_form(&state, &headers, &p, &request_id).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    let mut v = v;
    if p.get("decision") == Some("approve") {
        // Decided again: the policy, the client's state or its approvals
        // may have changed while the consent page was open.
        match govern(&state, &mut v, &session.user_id).await {
            Ok(()) => {}
            Err(Governed::Refused(e)) => {
                return refuse(&state, &v.to, Some(&session.user_id), &e, &request_id).await;
            }
            Err(Governed::NeedsApproval(needed)) => {
                return access_request_page(&state, &v, &session, &needed).await;
            }
        }
    }
    match p.get("decision") {
        Some("approve") => {
            audit(
                &state,
                "consent.approved",
                Some(&v.client.id),
                Some(&session.user_id),
                serde_json::json!({
                    "scopes": v.scopes.to_string(), "resource": v.resource.uri, "redirect_uri": v.to.registered,
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
            // The user saw the consent page naming the destination host and
            // chose: the answer goes back to the client.
            let e = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            error_redirect(&state, &v.to, &e)
        }
        // "Not you?": this browser's session ends and the same request
        // asks for a sign-in again (issue 15 item 5). Bound to the session's
        // CSRF value like the decision, so no other site can sign anyone out.
        Some("switch") => {
            if let Err(e) = state.store.delete_session(&session.id_hash).await {
                tracing::error!(error = %e, "could not end session");
                return pages::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "You are still signed in. Go back and try again in a moment.",
                    None,
                );
            }
            audit(
                &state,
                "user.logout",
                Some(&v.client.id),
                Some(&session.user_id),
                serde_json::json!({ "reason": "switch_account" }),
            )
            .await;
            session::with_cookies(
                login_page(&state, &headers, &v),
                [session::clear_cookie(&state, SESSION_COOKIE)],
            )
        }
        _ => pages::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "Go back and choose Allow or Deny.",
            None,
        ),
    }
}

// ---- governance: policy above identity (issue 13) ----------------------------

/// Why the governance room stopped a request.
enum Governed {
    /// An OAuth error for the client (every scope refused).
    Refused(OAuthError),
    /// These scopes need an approver's decision first.
    NeedsApproval(Vec<String>),
}

/// The signed-in user as the policy sees them.
async fn user_context(state: &AppState, user_id: &str) -> Option<steward_governance::UserContext> {
    crate::governance::user_context(state, user_id)
        .await
        .ok()
        .flatten()
}

/// Asks the room whether this client may have the requested scopes now
/// (`authorize` action), and narrows `v.scopes` to what it grants.
async fn govern(state: &AppState, v: &mut Validated, user_id: &str) -> Result<(), Governed> {
    let user = user_context(state, user_id).await;
    let ask = crate::governance::Ask {
        client_id: &v.client.id,
        view: v.client.view.as_deref(),
        action: steward_governance::Action::Authorize,
        resource: &v.resource.uri,
        scopes: &v.scopes,
        user: user.as_ref(),
        address: crate::request_log::current_client_address(),
    };
    match crate::governance::ask(&state.governance, &ask).await {
        Ok(crate::governance::Outcome::Granted(granted)) => {
            v.scopes = granted;
            Ok(())
        }
        Ok(crate::governance::Outcome::NeedsApproval { granted, needed }) => {
            // What an approver already decided against is dropped, not asked again.
            let settled = state
                .governance
                .already_decided(&v.client.id, &v.resource.uri, &needed)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "could not read decided access requests");
                    Governed::Refused(OAuthError::server_error())
                })?;
            let open: Vec<String> = needed.into_iter().filter(|s| !settled.contains(s)).collect();
            if !open.is_empty() {
                return Err(Governed::NeedsApproval(open));
            }
            if granted.is_empty() && !v.scopes.is_empty() {
                return Err(Governed::Refused(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "the platform team did not approve the requested scopes for this client",
                )));
            }
            v.scopes = granted;
            Ok(())
        }
        Err(e) => Err(Governed::Refused(e)),
    }
}

fn access_request_view<'a>(
    v: &'a Validated,
    client: &'a pages::ClientLabel,
    needed: &[String],
    signed_in_as: Option<(&'a str, &'a str)>,
) -> pages::AccessRequestView<'a> {
    pages::AccessRequestView {
        client,
        client_id: &v.client.id,
        signed_in_as,
        resource_name: &v.resource.name,
        scopes: needed
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    v.resource.scopes.get(s).cloned().unwrap_or_else(|| s.clone()),
                )
            })
            .collect(),
    }
}

/// No code: the page that names the client and the scopes waiting for
/// approval, with a field for the user's justification.
async fn access_request_page(
    state: &AppState,
    v: &Validated,
    session: &Session,
    needed: &[String],
) -> Response {
    let csrf = session::session_csrf(state, session);
    let issuer = state.issuer.trim_end_matches('/');
    let action = format!("{issuer}/authorize/request");
    let switch = format!("{issuer}/authorize/consent");
    let label = client_label(&v.client);
    let username = user_context(state, &session.user_id).await.map(|u| u.username);
    let signed_in = username.as_deref().map(|u| (u, switch.as_str()));
    pages::access_request(
        &action,
        &csrf,
        &v.raw,
        &access_request_view(v, &label, needed, signed_in),
    )
}

/// Stores the access request (the room dedupes a pending one for the same
/// client, user, resource and scopes) and says it was sent.
async fn send_access_request(
    state: &AppState,
    v: &Validated,
    user_id: &str,
    needed: &[String],
    justification: &str,
    request_id: &RequestId,
) -> Response {
    let Some(user) = user_context(state, user_id).await else {
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "Sign in again",
            "Your account could not be found. Sign in again from the application.",
            None,
        );
    };
    match state
        .governance
        .open_request(&v.client.id, &v.resource.uri, needed, &user, justification, None)
        .await
    {
        Ok(r) => {
            let label = client_label(&v.client);
            pages::access_requested(&r.id, &access_request_view(v, &label, needed, None))
        }
        Err(e) => {
            tracing::warn!(request_id = request_id.as_str(), error = %e, "access request not stored");
            pages::error_page(
                StatusCode::BAD_REQUEST,
                "The request could not be sent",
                "Steward could not record this access request. Try again; if it keeps failing, quote the \
                 request id to the administrator.",
                None,
            )
        }
    }
}

/// `POST /authorize/request`: the user asks the platform team to approve
/// what the policy would not grant without them.
pub async fn request_post(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let p = Params::parse(&body);
    let request_id = RequestId::current();
    let (session, mut v) = match signed_in_form(&state, &headers, &p, &request_id).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    let justification = p.get("justification").unwrap_or_default().trim().to_owned();
    match govern(&state, &mut v, &session.user_id).await {
        Err(Governed::NeedsApproval(needed)) if justification.is_empty() => {
            access_request_page(&state, &v, &session, &needed).await
        }
        Err(Governed::NeedsApproval(needed)) => {
            send_access_request(&state, &v, &session.user_id, &needed, &justification, &request_id).await
        }
        // Approved meanwhile (or refused): carry on as a fresh request would.
        Ok(()) | Err(Governed::Refused(_)) => signed_in(&state, &v, &session, &request_id).await,
    }
}

/// The checks every form posted by a signed-in user passes first: same
/// origin, a live session (else the login page: nothing is decided), the
/// session-bound CSRF value (a value from another browser, or from before
/// this sign-in, is refused), and the authorization request it carries,
/// validated again.
async fn signed_in_form(
    state: &AppState,
    headers: &HeaderMap,
    p: &Params,
    request_id: &RequestId,
) -> Result<(Session, Validated), Response> {
    if !session::same_origin(state, headers) {
        return Err(form_refused());
    }
    let raw = p.get("request").unwrap_or_default().to_owned();
    let Some(session) = session::current(state, headers).await else {
        return Err(match validate(state, &raw, request_id).await {
            Ok(v) => login_page(state, headers, &v),
            Err(Refusal::Page(res)) => res,
            Err(Refusal::Client(to, e)) => refuse(state, &to, None, &e, request_id).await,
        });
    };
    if !session::session_csrf_ok(state, &session, p.get("csrf")) {
        return Err(form_refused());
    }
    match validate(state, &raw, request_id).await {
        Ok(v) => Ok((session, v)),
        Err(Refusal::Page(res)) => Err(res),
        Err(Refusal::Client(to, e)) => Err(refuse(state, &to, Some(&session.user_id), &e, request_id).await),
    }
}

fn form_refused() -> Response {
    pages::error_page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "The form expired or was not sent by this site. Go back and try again.",
        None,
    )
}
