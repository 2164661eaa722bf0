//! The HTML pages of the authorization flow: login, consent, errors, the
//! interstitial for errors of unverified clients, and logout.
//!
//! Server-rendered from askama templates (`crates/server/templates`), which
//! escape every value by default: a client's name, a host or a request id
//! can never become markup. No JavaScript, no third-party resources. Every page is
//! sent with a CSP that forbids framing (`frame-ancestors 'none'`, OAuth 2.1
//! §7.11 clickjacking) and loading anything from elsewhere, and with
//! `Referrer-Policy: no-referrer` (RFC 9700 §4.2.4). Form field names are
//! fixed for automation: `username`, `password`, `decision=approve|deny` (and `switch`, to sign
//! in as someone else).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::request_id::RequestId;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Renders `page` with the headers every flow page carries. A template
/// that fails to render (it cannot, for these types: kept for the type
/// system) is a bare 500, never a half-written page.
fn render(status: StatusCode, page: &impl Template) -> Response {
    let mut res = match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    secure_headers(res.headers_mut());
    res
}

pub fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    reason: &'a str,
    details: Option<&'a str>,
    request_id: &'a str,
}

/// An error shown to the person, never a redirect (OAuth 2.1 §4.1.2.1).
/// `reason` says what happened and what the person can do next, in their
/// terms (issue 15 item 5). Every error page carries the request id, so the
/// person can quote it and an administrator find the log line.
pub fn error_page(status: StatusCode, title: &str, reason: &str, retry_after: Option<u64>) -> Response {
    error_page_for_developer(status, title, reason, None, retry_after)
}

/// [`error_page`] with a line for the application's developer (what went
/// wrong in protocol terms), shown apart from the sentence for the person.
pub fn error_page_for_developer(
    status: StatusCode,
    title: &str,
    reason: &str,
    details: Option<&str>,
    retry_after: Option<u64>,
) -> Response {
    let request_id = RequestId::current();
    let mut res = render(
        status,
        &ErrorPage {
            title,
            reason,
            details,
            request_id: request_id.as_str(),
        },
    );
    if let Some(secs) = retry_after {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

#[derive(Template)]
#[template(path = "interstitial.html")]
struct Interstitial<'a> {
    title: &'a str,
    description: &'a str,
    host: &'a str,
    location: &'a str,
    request_id: &'a str,
}

/// An error for an application Steward has not verified, before the user
/// has authenticated with it: shown, not redirected (RFC 9700 §4.11.2 — with
/// metadata documents anyone can "register" a redirect URI by publishing a
/// file, so an automatic error redirect would be an open redirector). The
/// page names the destination host and leaves the choice to the person.
pub fn redirect_interstitial(
    description: &str,
    destination_host: &str,
    location: &str,
    request_id: &RequestId,
) -> Response {
    render(
        StatusCode::BAD_REQUEST,
        &Interstitial {
            title: "Request cannot be completed",
            description,
            host: destination_host,
            location,
            request_id: request_id.as_str(),
        },
    )
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutForm<'a> {
    title: &'a str,
    action: &'a str,
    csrf: &'a str,
}

/// The logout confirmation form (GET /logout, signed in).
pub fn logout_form(action: &str, csrf: &str) -> Response {
    render(
        StatusCode::OK,
        &LogoutForm {
            title: "Sign out",
            action,
            csrf,
        },
    )
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOut<'a> {
    title: &'a str,
}

/// After logout, or for a browser that holds no session.
pub fn signed_out() -> Response {
    render(StatusCode::OK, &SignedOut { title: "Signed out" })
}

/// Who a page says is asking, led by what Steward knows rather than what
/// the client says (issue 15 item 5): a configured client by the name its
/// operators gave it, a metadata-document client by its URL's host, a
/// registered client as such. A name the client gave itself is only ever
/// shown as its own claim ([`ClientLabel::claimed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientLabel {
    /// A configured client, by its configured name.
    Configured(String),
    /// A configured client without a name, by its client id.
    Unnamed(String),
    /// A metadata-document client: its URL's host, and the name its
    /// document claims.
    Document(String, Option<String>),
    /// A dynamically registered client, and the name it registered.
    Registered(Option<String>),
}

impl ClientLabel {
    /// The name the client gave itself, never the operators' name.
    pub fn claimed(&self) -> Option<&str> {
        match self {
            ClientLabel::Document(_, name) | ClientLabel::Registered(name) => name.as_deref(),
            ClientLabel::Configured(_) | ClientLabel::Unnamed(_) => None,
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct Login<'a> {
    title: &'a str,
    action: &'a str,
    csrf: &'a str,
    request: &'a str,
    client: &'a ClientLabel,
    message: Option<&'a str>,
}

/// The login form; `request` is the original authorization request, replayed after login.
pub fn login(
    action: &str,
    csrf: &str,
    request: &str,
    client: &ClientLabel,
    message: Option<&str>,
) -> Response {
    let status = if message.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    render(
        status,
        &Login {
            title: "Sign in",
            action,
            csrf,
            request,
            client,
            message,
        },
    )
}

/// What the consent page shows.
pub struct ConsentView<'a> {
    /// The signed-in user's name, shown with a way to switch account.
    pub signed_in_as: Option<&'a str>,
    pub client: &'a ClientLabel,
    pub redirect_host: &'a str,
    /// Steward's own stored copy of the client's logo, never the client's URL.
    pub logo_url: Option<&'a str>,
    pub client_id: &'a str,
    pub resource_name: &'a str,
    pub scopes: Vec<(String, String)>,
    pub warnings: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct Consent<'a> {
    title: &'a str,
    action: &'a str,
    csrf: &'a str,
    request: &'a str,
    client: &'a ClientLabel,
    logo_url: Option<&'a str>,
    resource_name: &'a str,
    redirect_host: &'a str,
    warnings: &'a [&'static str],
    scopes: &'a [(String, String)],
    client_id: &'a str,
    /// The signed-in user and the form action that signs in as someone else.
    account: Option<(&'a str, &'a str)>,
}

pub fn consent(action: &str, csrf: &str, request: &str, v: &ConsentView<'_>) -> Response {
    render(
        StatusCode::OK,
        &Consent {
            title: "Allow access?",
            action,
            csrf,
            request,
            client: v.client,
            logo_url: v.logo_url,
            resource_name: v.resource_name,
            redirect_host: v.redirect_host,
            warnings: &v.warnings,
            scopes: &v.scopes,
            client_id: v.client_id,
            account: v.signed_in_as.map(|u| (u, action)),
        },
    )
}

/// What the access-request pages show (issue 13 item 7): the client by its
/// `client_id` host first, the resource and the scopes waiting for approval.
pub struct AccessRequestView<'a> {
    pub client: &'a ClientLabel,
    pub client_id: &'a str,
    /// The signed-in user, with the form action that signs in as someone
    /// else (the consent endpoint's `decision=switch`).
    pub signed_in_as: Option<(&'a str, &'a str)>,
    pub resource_name: &'a str,
    /// (scope, description) of the scopes that need an approver.
    pub scopes: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "access_request.html")]
struct AccessRequest<'a> {
    title: &'a str,
    action: &'a str,
    csrf: &'a str,
    request: &'a str,
    client: &'a ClientLabel,
    resource_name: &'a str,
    scopes: &'a [(String, String)],
    client_id: &'a str,
    account: Option<(&'a str, &'a str)>,
}

/// The policy wants an approver's decision before this client gets these
/// scopes: no code is issued; the user may send a request with a reason.
pub fn access_request(action: &str, csrf: &str, request: &str, v: &AccessRequestView<'_>) -> Response {
    render(
        StatusCode::FORBIDDEN,
        &AccessRequest {
            title: "Approval needed",
            action,
            csrf,
            request,
            client: v.client,
            resource_name: v.resource_name,
            scopes: &v.scopes,
            client_id: v.client_id,
            account: v.signed_in_as,
        },
    )
}

#[derive(Template)]
#[template(path = "access_requested.html")]
struct AccessRequested<'a> {
    title: &'a str,
    client: &'a ClientLabel,
    resource_name: &'a str,
    scopes: &'a [(String, String)],
    request_id: &'a str,
}

/// The access request is stored and waits for the platform team.
pub fn access_requested(request_id: &str, v: &AccessRequestView<'_>) -> Response {
    render(
        StatusCode::ACCEPTED,
        &AccessRequested {
            title: "Request sent",
            client: v.client,
            resource_name: v.resource_name,
            scopes: &v.scopes,
            request_id,
        },
    )
}
