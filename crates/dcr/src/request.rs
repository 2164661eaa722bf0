//! Reading a registration request body (RFC 7591 §2, §3.1; RFC 7592 §2.2).
//!
//! Everything a client sends is a self-asserted claim (RFC 7591 §5), so the
//! body is read strictly: one JSON object, no duplicate member at any depth
//! (two parsers could read two different registrations from it), every
//! member Steward uses of the type RFC 7591 gives it, and members it does
//! not understand ignored (RFC 7591 §2 MUST). What the request may *get*
//! is decided afterwards, by [`crate::mode`] and the governance policy.

use crate::error::RegistrationError;
use ipnet::IpNet;
use serde_json::{Map, Value};
use std::net::IpAddr;
use steward_cimd::strict_json::{self, StrictJsonError};
use steward_core::scope::ScopeSet;
use steward_core::{RedirectUri, RedirectUriRules};

/// Most redirect URIs one client may register: a real client needs a few;
/// an open endpoint must not store thousands (SPEC_CHECKLIST §13 "cap the
/// number and length of `redirect_uris`").
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI or other URL member, in bytes.
pub const MAX_URI_BYTES: usize = 2000;
/// Longest `client_name`, `software_id`, `software_version`, contact, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Most `contacts` entries.
pub const MAX_CONTACTS: usize = 10;
/// Longest `scope` value, in bytes.
pub const MAX_SCOPE_BYTES: usize = 2000;
/// Longest `software_statement`, in bytes.
pub const MAX_STATEMENT_BYTES: usize = 16 * 1024;

/// How the client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A public client (OAuth 2.1 §2.1).
    None,
    ClientSecretBasic,
    ClientSecretPost,
    /// RFC 7523 §2.2 with the keys registered in `jwks` or `jwks_uri`.
    PrivateKeyJwt,
}

impl AuthMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "client_secret_basic" => Self::ClientSecretBasic,
            "client_secret_post" => Self::ClientSecretPost,
            "private_key_jwt" => Self::PrivateKeyJwt,
            _ => return None,
        })
    }

    /// A shared secret is issued for these.
    pub const fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }
}

/// The grant types Steward issues (OAuth 2.1 has no implicit or password grant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "authorization_code" => Self::AuthorizationCode,
            "refresh_token" => Self::RefreshToken,
            "client_credentials" => Self::ClientCredentials,
            _ => return None,
        })
    }
}

/// OpenID Connect Registration's `application_type`, which MCP clients send.
/// Stored and returned; it never makes a loopback redirect URI invalid
/// (SPEC_CHECKLIST §13: clients that omit it are not "web" clients).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplicationType {
    Native,
    Web,
}

impl ApplicationType {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Web => "web",
        }
    }
}

/// What the server's settings allow in a request.
#[derive(Clone, Debug, Default)]
pub struct RequestRules {
    /// Redirect URI forms (private-use schemes for native clients).
    pub redirect: RedirectUriRules,
    /// `egress.allow_networks`: special-purpose ranges a `jwks_uri` may name.
    pub allow_networks: Vec<IpNet>,
}

/// Which request is being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// `POST /register` (RFC 7591 §3.1).
    Register,
    /// `PUT` on the client configuration endpoint (RFC 7592 §2.2): the body
    /// must name `client_id` and must not carry the server-issued members.
    Update { client_id: &'a str },
}

/// A registration request, read and checked member by member. What each
/// member *means* for the client (its defaults, what the mode allows) is
/// decided by [`crate::mode::admit`].
#[derive(Clone, Debug, PartialEq)]
pub struct RequestedMetadata {
    pub redirect_uris: Vec<RedirectUri>,
    /// `None`: the member was absent (its default depends on the mode).
    pub auth_method: Option<AuthMethod>,
    /// `None`: absent (RFC 7591 default `["authorization_code"]`).
    pub grant_types: Option<Vec<GrantType>>,
    pub application_type: Option<ApplicationType>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    /// `None`: absent (the self-service set, never "everything").
    pub scope: Option<ScopeSet>,
    pub contacts: Vec<String>,
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub software_statement: Option<String>,
    /// RFC 7592 §2.2: a client may resend its secret; it must match.
    pub client_secret: Option<String>,
}

/// Members only the server issues: a client sending them on an update is
/// refused (RFC 7592 §2.2 MUST NOT).
const SERVER_ISSUED: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

/// Reads `body` as a registration request.
pub fn parse_request(
    body: &[u8],
    rules: &RequestRules,
    purpose: Purpose<'_>,
) -> Result<RequestedMetadata, RegistrationError> {
    let doc = match strict_json::parse(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Err(RegistrationError::metadata(
                "the request body must be a JSON object",
            ));
        }
        Err(StrictJsonError::DuplicateKey(k)) => {
            return Err(RegistrationError::metadata(format!(
                "the member {k:?} appears more than once"
            )));
        }
        Err(e) => return Err(RegistrationError::metadata(e.to_string())),
    };
    let r = Reader { doc: &doc };
    if let Purpose::Update { client_id } = purpose {
        for m in SERVER_ISSUED {
            if doc.contains_key(m) {
                return Err(RegistrationError::metadata(format!(
                    "{m} is issued by the server and must not be sent in an update (RFC 7592 §2.2)"
                )));
            }
        }
        if r.string("client_id", usize::MAX)?.as_deref() != Some(client_id) {
            return Err(RegistrationError::metadata(
                "client_id must be present and equal the client being updated (RFC 7592 §2.2)",
            ));
        }
    }
    let redirect_uris = r.redirect_uris(rules)?;
    let auth_method = match r.string("token_endpoint_auth_method", 64)? {
        None => None,
        Some(m) => Some(AuthMethod::parse(&m).ok_or_else(|| {
            RegistrationError::metadata(format!(
                "token_endpoint_auth_method {m:?} is not supported; use none, client_secret_basic, \
                 client_secret_post or private_key_jwt"
            ))
        })?),
    };
    let grant_types = r.grant_types()?;
    r.response_types(grant_types.as_deref())?;
    let application_type = match r.string("application_type", 16)?.as_deref() {
        None => None,
        Some("native") => Some(ApplicationType::Native),
        Some("web") => Some(ApplicationType::Web),
        Some(other) => {
            return Err(RegistrationError::metadata(format!(
                "application_type {other:?} is neither \"native\" nor \"web\""
            )));
        }
    };
    let scope = match r.string("scope", MAX_SCOPE_BYTES)? {
        None => None,
        Some(s) => Some(ScopeSet::parse(&s).map_err(|_| {
            RegistrationError::metadata("scope must be space-separated scope tokens (RFC 6749 §3.3)")
        })?),
    };
    let (jwks, jwks_uri) = r.keys(rules)?;
    let statement = r.string("software_statement", MAX_STATEMENT_BYTES)?;
    Ok(RequestedMetadata {
        redirect_uris,
        auth_method,
        grant_types,
        application_type,
        client_name: r.text("client_name")?,
        client_uri: r.https_url("client_uri")?,
        logo_uri: r.https_url("logo_uri")?,
        tos_uri: r.https_url("tos_uri")?,
        policy_uri: r.https_url("policy_uri")?,
        scope,
        contacts: r.contacts()?,
        jwks,
        jwks_uri,
        software_id: r.text("software_id")?,
        software_version: r.text("software_version")?,
        software_statement: statement,
        client_secret: r.string("client_secret", 512)?,
    })
}

struct Reader<'a> {
    doc: &'a Map<String, Value>,
}

impl Reader<'_> {
    fn string(&self, member: &str, max_bytes: usize) -> Result<Option<String>, RegistrationError> {
        match self.doc.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= max_bytes => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(RegistrationError::metadata(format!(
                "{member} is longer than {max_bytes} bytes"
            ))),
            Some(_) => Err(RegistrationError::metadata(format!("{member} must be a string"))),
        }
    }

    /// A human-readable claim: bounded, no control characters (it is shown
    /// on the consent page and in the inventory).
    fn text(&self, member: &str) -> Result<Option<String>, RegistrationError> {
        let Some(s) = self.string(member, MAX_TEXT_CHARS * 4)? else {
            return Ok(None);
        };
        if s.chars().count() > MAX_TEXT_CHARS {
            return Err(RegistrationError::metadata(format!(
                "{member} is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        if s.chars().any(char::is_control) {
            return Err(RegistrationError::metadata(format!(
                "{member} contains a control character"
            )));
        }
        let trimmed = s.trim();
        Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
    }

    fn https_url(&self, member: &str) -> Result<Option<String>, RegistrationError> {
        let Some(s) = self.string(member, MAX_URI_BYTES)? else {
            return Ok(None);
        };
        let ok = url::Url::parse(&s).is_ok_and(|u| {
            u.scheme() == "https"
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none()
        });
        if !ok {
            return Err(RegistrationError::metadata(format!(
                "{member} must be an absolute https URL without userinfo"
            )));
        }
        Ok(Some(s))
    }

    fn string_array(&self, member: &str) -> Result<Option<Vec<String>>, RegistrationError> {
        match self.doc.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| RegistrationError::metadata(format!("{member} must be an array of strings"))),
            Some(_) => Err(RegistrationError::metadata(format!(
                "{member} must be an array of strings"
            ))),
        }
    }

    fn redirect_uris(&self, rules: &RequestRules) -> Result<Vec<RedirectUri>, RegistrationError> {
        let raw = match self.doc.get("redirect_uris") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(RegistrationError::redirect(
                    "redirect_uris must be an array of strings",
                ));
            }
        };
        if raw.len() > MAX_REDIRECT_URIS {
            return Err(RegistrationError::redirect(format!(
                "at most {MAX_REDIRECT_URIS} redirect URIs may be registered"
            )));
        }
        let mut out: Vec<RedirectUri> = Vec::with_capacity(raw.len());
        for (i, v) in raw.iter().enumerate() {
            let Some(s) = v.as_str() else {
                return Err(RegistrationError::redirect(
                    "redirect_uris must be an array of strings",
                ));
            };
            if s.len() > MAX_URI_BYTES {
                return Err(RegistrationError::redirect(format!(
                    "redirect_uris[{i}] is longer than {MAX_URI_BYTES} bytes"
                )));
            }
            let uri = RedirectUri::parse(s, rules.redirect).map_err(|e| {
                RegistrationError::redirect(format!(
                    "redirect_uris[{i}]: {e}; use https, http on a loopback host, or a private-use \
                     scheme in reverse-domain form"
                ))
            })?;
            if !out.contains(&uri) {
                out.push(uri);
            }
        }
        Ok(out)
    }

    fn grant_types(&self) -> Result<Option<Vec<GrantType>>, RegistrationError> {
        let Some(raw) = self.string_array("grant_types")? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(raw.len());
        for g in &raw {
            let grant = GrantType::parse(g).ok_or_else(|| {
                RegistrationError::metadata(format!(
                    "grant type {g:?} is not supported; use authorization_code, refresh_token or \
                     client_credentials"
                ))
            })?;
            if !out.contains(&grant) {
                out.push(grant);
            }
        }
        if out.is_empty() {
            return Err(RegistrationError::metadata("grant_types must not be empty"));
        }
        out.sort();
        Ok(Some(out))
    }

    /// `response_types` must agree with `grant_types` (RFC 7591 §2.1):
    /// `code` for authorization_code, nothing else exists in OAuth 2.1.
    fn response_types(&self, grants: Option<&[GrantType]>) -> Result<(), RegistrationError> {
        let Some(raw) = self.string_array("response_types")? else {
            return Ok(());
        };
        if let Some(other) = raw.iter().find(|r| *r != "code") {
            return Err(RegistrationError::metadata(format!(
                "response type {other:?} is not supported; only \"code\" (OAuth 2.1)"
            )));
        }
        let code_grant = grants.is_none_or(|g| g.contains(&GrantType::AuthorizationCode));
        if raw.is_empty() == code_grant {
            return Err(RegistrationError::metadata(
                "response_types must be [\"code\"] exactly when grant_types includes authorization_code",
            ));
        }
        Ok(())
    }

    fn contacts(&self) -> Result<Vec<String>, RegistrationError> {
        let Some(raw) = self.string_array("contacts")? else {
            return Ok(Vec::new());
        };
        if raw.len() > MAX_CONTACTS {
            return Err(RegistrationError::metadata(format!(
                "at most {MAX_CONTACTS} contacts"
            )));
        }
        for c in &raw {
            if c.chars().count() > MAX_TEXT_CHARS || c.chars().any(char::is_control) {
                return Err(RegistrationError::metadata(
                    "each contact must be at most 200 characters without control characters",
                ));
            }
        }
        Ok(raw)
    }

    /// `jwks` (public keys only: a registration is no place for a private
    /// key, and one sent here is compromised already) or `jwks_uri` (https,
    /// never a special-purpose address literal), not both (RFC 7591 §2).
    fn keys(&self, rules: &RequestRules) -> Result<(Option<Value>, Option<String>), RegistrationError> {
        let jwks = match self.doc.get("jwks") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(map)) => {
                let has_keys = map
                    .get("keys")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if !has_keys {
                    return Err(RegistrationError::metadata(
                        "jwks must be a JWK Set with a non-empty keys array",
                    ));
                }
                if steward_cimd::contains_private_jwk(v, false) {
                    return Err(RegistrationError::metadata(
                        "jwks contains private or symmetric key material (d, p, q, dp, dq, qi, oth or k); \
                         register public keys only",
                    ));
                }
                Some(v.clone())
            }
            Some(_) => return Err(RegistrationError::metadata("jwks must be a JSON object")),
        };
        let jwks_uri = self.https_url("jwks_uri")?;
        if let Some(uri) = &jwks_uri {
            forbidden_key_host(uri, &rules.allow_networks)?;
        }
        if jwks.is_some() && jwks_uri.is_some() {
            return Err(RegistrationError::metadata(
                "give either jwks or jwks_uri, not both (RFC 7591 §2)",
            ));
        }
        Ok((jwks, jwks_uri))
    }
}

/// A `jwks_uri` naming `localhost` or a special-purpose address literal is
/// refused at registration, before anything is stored. (A DNS name is
/// checked where it is used: the guarded fetcher resolves it and refuses
/// any special-purpose answer, so it cannot be rebound to one later.)
fn forbidden_key_host(uri: &str, allow: &[IpNet]) -> Result<(), RegistrationError> {
    let Ok(url) = url::Url::parse(uri) else {
        return Ok(());
    };
    let ip: Option<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(a)) => Some(a.into()),
        Some(url::Host::Ipv6(a)) => Some(a.into()),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                return Err(RegistrationError::metadata(
                    "jwks_uri names localhost, which this server will not fetch from",
                ));
            }
            None
        }
        None => None,
    };
    if let Some(ip) = ip
        && let Err(blocked) = steward_egress::address::check(ip, allow)
    {
        return Err(RegistrationError::metadata(format!(
            "jwks_uri names {ip}, an address this server will not fetch from ({})",
            blocked.range.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
