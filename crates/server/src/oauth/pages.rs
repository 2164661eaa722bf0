//! The HTML pages of the authorization flow: login, consent, errors, the
//! interstitial for errors of unverified clients, and logout.
//!
//! Server-rendered, no JavaScript, no third-party resources. Every page is
//! sent with a CSP that forbids framing (`frame-ancestors 'none'`, OAuth 2.1
//! §7.11 clickjacking) and loading anything from elsewhere, and with
//! `Referrer-Policy: no-referrer` (RFC 9700 §4.2.4). Form field names are
//! fixed for automation: `username`, `password`, `decision=approve|deny` (and `switch`, to sign
//! in as someone else).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::escape_html;
use crate::request_id::RequestId;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;\
color:#1b1b1b}h1{font-size:1.4rem}.warn{background:#fff4e5;border-left:4px solid #e69500;padding:.5rem .8rem;\
margin:.6rem 0}.host{font-family:ui-monospace,monospace;font-weight:600}label{display:block;margin:.6rem 0}\
input[type=text],input[type=password]{width:100%;padding:.4rem}button{padding:.5rem 1.2rem;margin-right:.5rem}\
ul{padding-left:1.2rem}.claim{color:#555;font-size:.9rem}\
button.link{padding:0;margin:0;border:0;background:none;color:#0645ad;text-decoration:underline;cursor:pointer;\
font:inherit}.account{margin-top:1.2rem}";

/// Wraps page content with the headers every flow page carries.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>",
        escape_html(title)
    );
    let mut res = (status, Html(html)).into_response();
    secure_headers(res.headers_mut());
    res
}

pub fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An error shown to the person, never a redirect (OAuth 2.1 §4.1.2.1).
/// `reason` says what happened and what the person can do next, in their
/// terms (issue 15 item 5); `details`, when given, is for the application's
/// developer and shown apart from it. Every error page carries the request
/// id, so the person can quote it and an administrator find the log line.
pub fn error_page(status: StatusCode, title: &str, reason: &str, retry_after: Option<u64>) -> Response {
    error_page_for_developer(status, title, reason, None, retry_after)
}

/// [`error_page`] with a line for the application's developer.
pub fn error_page_for_developer(
    status: StatusCode,
    title: &str,
    reason: &str,
    details: Option<&str>,
    retry_after: Option<u64>,
) -> Response {
    let details = details
        .map(|d| {
            format!(
                "<p class=\"claim\">For the application&#39;s developer: {}</p>",
                escape_html(d)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>{}</h1><p>{}</p>{details}{}",
        escape_html(title),
        escape_html(reason),
        request_id_line(&RequestId::current())
    );
    let mut res = page(status, title, &body);
    if let Some(secs) = retry_after {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

fn request_id_line(request_id: &RequestId) -> String {
    format!(
        "<p class=\"claim\">Request id: <code class=\"request-id\">{}</code> (give it to the administrator \
         to find the details)</p>",
        escape_html(request_id.as_str())
    )
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
    let body = format!(
        "<h1>This request cannot be completed</h1><p>{d}</p>\
         <p class=\"warn\">The application asked to send you to <span class=\"host\">{h}</span>. \
         Steward has not verified this application, so it does not send you there by itself.</p>\
         <p><a href=\"{l}\" rel=\"noreferrer\">Continue to <span class=\"host\">{h}</span></a> \
         only if you trust it; otherwise close this page.</p>{rid}",
        d = escape_html(description),
        h = escape_html(destination_host),
        l = escape_html(location),
        rid = request_id_line(request_id),
    );
    page(StatusCode::BAD_REQUEST, "Request cannot be completed", &body)
}

/// The logout confirmation form (GET /logout, signed in).
pub fn logout_form(action: &str, csrf: &str) -> Response {
    let body = format!(
        "<h1>Sign out?</h1><p>This ends your Steward session in this browser. Applications keep the \
         access you already approved.</p><form method=\"post\" action=\"{action}\">{csrf}\
         <button type=\"submit\">Sign out</button></form>",
        action = escape_html(action),
        csrf = hidden("csrf", csrf),
    );
    page(StatusCode::OK, "Sign out", &body)
}

/// After logout, or for a browser that holds no session.
pub fn signed_out() -> Response {
    page(
        StatusCode::OK,
        "Signed out",
        "<h1>You are signed out</h1><p>This browser holds no Steward session. You can close this page.</p>",
    )
}

pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape_html(name),
        escape_html(value)
    )
}

/// Who the login page says the person is signing in to, led by what
/// Steward knows (issue 15 item 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginFor {
    /// A configured client, by the name its operators gave it.
    Configured(String),
    /// A metadata-document client (or an unnamed one), by its host.
    Host(String),
    /// A registered client, its name only as its own claim.
    Registered(Option<String>),
}

impl LoginFor {
    fn html(&self) -> String {
        match self {
            LoginFor::Configured(name) => format!("<strong>{}</strong>", escape_html(name)),
            LoginFor::Host(host) => format!("<span class=\"host\">{}</span>", escape_html(host)),
            LoginFor::Registered(None) => "an application that registered itself with this server".to_owned(),
            LoginFor::Registered(Some(name)) => format!(
                "an application that registered itself with this server, calling itself \u{201c}{}\u{201d}",
                escape_html(name)
            ),
        }
    }
}

/// The login form; `request` is the original authorization request, replayed after login.
pub fn login(action: &str, csrf: &str, request: &str, client: &LoginFor, message: Option<&str>) -> Response {
    let msg = message
        .map(|m| format!("<p class=\"warn\">{}</p>", escape_html(m)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1><p>to continue to {who}</p>{msg}\
         <form method=\"post\" action=\"{action}\">{csrf}{req}\
         <label>Username <input type=\"text\" name=\"username\" autocomplete=\"username\" required></label>\
         <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form>",
        who = client.html(),
        action = escape_html(action),
        csrf = hidden("csrf", csrf),
        req = hidden("request", request),
    );
    page(
        if message.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        },
        "Sign in",
        &body,
    )
}

/// What the consent page shows.
pub struct ConsentView<'a> {
    /// The signed-in user's name, shown with a way to switch account.
    pub signed_in_as: Option<&'a str>,
    pub client_host: &'a str,
    pub redirect_host: &'a str,
    pub client_name: Option<&'a str>,
    /// Whether the name is the client's own claim (a metadata document's or
    /// a registration's), or the operator's (a `[[clients]]` entry), which
    /// must not be labelled as the client's word.
    pub name_is_claim: bool,
    /// Steward's own stored copy of the client's logo, never the client's URL.
    pub logo_url: Option<&'a str>,
    pub client_id: &'a str,
    pub resource_name: &'a str,
    pub scopes: Vec<(String, String)>,
    pub warnings: Vec<&'static str>,
}

pub fn consent(action: &str, csrf: &str, request: &str, v: &ConsentView<'_>) -> Response {
    let scopes: String = if v.scopes.is_empty() {
        "<li>No specific permissions</li>".to_owned()
    } else {
        v.scopes
            .iter()
            .map(|(s, d)| {
                format!(
                    "<li>{} <span class=\"claim\">({})</span></li>",
                    escape_html(d),
                    escape_html(s)
                )
            })
            .collect()
    };
    let warnings: String = v
        .warnings
        .iter()
        .map(|w| format!("<p class=\"warn\">{}</p>", escape_html(w)))
        .collect();
    let (who, name) = who_asks(v.client_host, v.client_id, v.name_is_claim, v.client_name);
    let logo = v
        .logo_url
        .map(|u| {
            format!(
                "<img src=\"{}\" alt=\"\" width=\"64\" height=\"64\" class=\"logo\">",
                escape_html(u)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "{logo}<h1>Allow access?</h1>\
         <p>{who} wants to access <strong>{res}</strong> on your behalf.</p>\
         <p>After you decide, you will be sent to <span class=\"host\">{rh}</span>.</p>{name}{warnings}\
         <p>It asks to:</p><ul>{scopes}</ul><p class=\"claim\">Client id: {cid}</p>\
         <form method=\"post\" action=\"{action}\">{csrf}{req}\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>{account}",
        account = v
            .signed_in_as
            .map(|u| switch_account(u, action, csrf, request))
            .unwrap_or_default(),
        rh = escape_html(v.redirect_host),
        res = escape_html(v.resource_name),
        cid = escape_html(v.client_id),
        action = escape_html(action),
        csrf = hidden("csrf", csrf),
        req = hidden("request", request),
    );
    page(StatusCode::OK, "Allow access?", &body)
}

/// Who is asking, led by what Steward knows rather than what the client
/// says: a metadata-document client by its URL's host; a configured client
/// by the name its operators gave it; a registered one as such, its name
/// only as its own claim. Returns the lead phrase and the claim line.
fn who_asks(
    client_host: &str,
    client_id: &str,
    name_is_claim: bool,
    client_name: Option<&str>,
) -> (String, String) {
    let is_url = client_host != client_id;
    match (is_url, name_is_claim, client_name) {
        (false, false, Some(n)) => (
            format!("<strong>{}</strong>, registered on this server,", escape_html(n)),
            String::new(),
        ),
        (true, _, _) => (
            format!(
                "The application at <span class=\"host\">{}</span>",
                escape_html(client_host)
            ),
            claimed_name(client_name),
        ),
        (false, true, _) => (
            "An application that registered itself with this server".to_owned(),
            claimed_name(client_name),
        ),
        (false, false, None) => (
            "An application registered on this server".to_owned(),
            String::new(),
        ),
    }
}

/// Who is deciding, and a way to decide as someone else: the session ends
/// and the same request asks for a sign-in.
fn switch_account(username: &str, action: &str, csrf: &str, request: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\" class=\"account\">{csrf}{req}\
         <p class=\"claim\">Signed in as <strong>{user}</strong>. \
         <button type=\"submit\" name=\"decision\" value=\"switch\" class=\"link\">Not you? Sign in as someone else</button></p></form>",
        user = escape_html(username),
        action = escape_html(action),
        csrf = hidden("csrf", csrf),
        req = hidden("request", request),
    )
}

/// A client's own name, said to be its claim.
fn claimed_name(name: Option<&str>) -> String {
    name.map(|n| {
        format!(
            "<p class=\"claim\">It calls itself “{}” (the client's own claim).</p>",
            escape_html(n)
        )
    })
    .unwrap_or_default()
}

/// What the access-request pages show (issue 13 item 7): the client by its
/// `client_id` host first, the resource and the scopes waiting for approval.
pub struct AccessRequestView<'a> {
    pub client_host: &'a str,
    pub client_id: &'a str,
    pub client_name: Option<&'a str>,
    /// As in [`ConsentView::name_is_claim`].
    pub name_is_claim: bool,
    /// The signed-in user, with the form action that signs in as someone
    /// else (the consent endpoint's `decision=switch`).
    pub signed_in_as: Option<(&'a str, &'a str)>,
    pub resource_name: &'a str,
    /// (scope, description) of the scopes that need an approver.
    pub scopes: Vec<(String, String)>,
}

fn scope_list(scopes: &[(String, String)]) -> String {
    scopes
        .iter()
        .map(|(s, d)| {
            format!(
                "<li>{} <span class=\"claim\">({})</span></li>",
                escape_html(d),
                escape_html(s)
            )
        })
        .collect()
}

/// The policy wants an approver's decision before this client gets these
/// scopes: no code is issued; the user may send a request with a reason.
pub fn access_request(action: &str, csrf: &str, request: &str, v: &AccessRequestView<'_>) -> Response {
    let (who, name) = who_asks(v.client_host, v.client_id, v.name_is_claim, v.client_name);
    let body = format!(
        "<h1>Approval needed</h1>\
         <p>{who} asks for access to <strong>{res}</strong> \
         that this server's platform team has not approved for it:</p>{name}<ul>{scopes}</ul>\
         <p>You can ask them to approve it. Say why you need it; they will see your name and your reason.</p>\
         <form method=\"post\" action=\"{action}\">{csrf}{req}\
         <label>Why do you need this? <input type=\"text\" name=\"justification\" maxlength=\"2000\" required></label>\
         <button type=\"submit\">Ask for approval</button></form>\
         <p class=\"claim\">Client id: {cid}</p>{account}",
        account = v
            .signed_in_as
            .map(|(user, switch)| switch_account(user, switch, csrf, request))
            .unwrap_or_default(),
        res = escape_html(v.resource_name),
        scopes = scope_list(&v.scopes),
        cid = escape_html(v.client_id),
        action = escape_html(action),
        csrf = hidden("csrf", csrf),
        req = hidden("request", request),
    );
    page(StatusCode::FORBIDDEN, "Approval needed", &body)
}

/// The access request is stored and waits for the platform team.
pub fn access_requested(request_id: &str, v: &AccessRequestView<'_>) -> Response {
    let body = format!(
        "<h1>Request sent</h1>\
         <p>Your request for {who} to access <strong>{res}</strong> was sent to \
         the platform team:</p><ul>{scopes}</ul>\
         <p>Once they approve it, start the sign-in from the application again. Nothing was shared with the \
         application.</p><p class=\"claim\">Access request: <code class=\"request-id\">{rid}</code></p>",
        who = match (v.client_host != v.client_id, v.name_is_claim, v.client_name) {
            (false, false, Some(n)) => format!("<strong>{}</strong>", escape_html(n)),
            (true, _, _) => format!("<span class=\"host\">{}</span>", escape_html(v.client_host)),
            _ => "this application".to_owned(),
        },
        res = escape_html(v.resource_name),
        scopes = scope_list(&v.scopes),
        rid = escape_html(request_id),
    );
    page(StatusCode::ACCEPTED, "Request sent", &body)
}
