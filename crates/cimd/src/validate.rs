//! Validating a fetched Client ID Metadata Document.
//!
//! The rules are CIMD -02 §4 and SPEC_CHECKLIST §0.2 (items 12–19), §4.4 and
//! §20. Every problem is collected, not just the first, because the checker
//! shows a client developer the whole list at once.

use crate::client_id::{ClientIdUrl, UrlRules};
use crate::problem::{Problem, ValidationFailure as F};
use crate::strict_json::{self, StrictJsonError};
use serde::Serialize;
use serde_json::{Map, Value};
use steward_core::{RedirectUri, RedirectUriRules};

/// Local policy applied to client ids and documents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValidationPolicy {
    /// Accept a query in the client id (see [`UrlRules::allow_query`]).
    pub allow_query: bool,
    /// Accept reverse-domain private-use redirect schemes (OAuth 2.1 §8.4.3);
    /// off by default because MCP requires localhost or https.
    pub allow_private_use_schemes: bool,
}

impl ValidationPolicy {
    pub fn url_rules(&self) -> UrlRules {
        UrlRules {
            allow_query: self.allow_query,
        }
    }
}

/// How the client authenticates at the token endpoint. CIMD clients can hold
/// no shared secret (CIMD -01 §4.1), so these are the only two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client.
    None,
    /// RFC 7523 §2.2 with a key from the document (CIMD PR #68: then required).
    PrivateKeyJwt,
}

/// Grant types Steward issues to metadata-document clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
}

/// Response types Steward supports (OAuth 2.1 has only `code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    Code,
}

/// The usable content of a valid document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientMetadata {
    pub client_id: String,
    pub client_name: String,
    /// The usable redirect URIs: the only ones Steward ever redirects to.
    pub redirect_uris: Vec<RedirectUri>,
    /// Entries of `redirect_uris` Steward will not use, kept so the checker
    /// and the audit trail can say which and why.
    pub dropped_redirect_uris: Vec<DroppedRedirectUri>,
    /// Supported values only; unknown ones were filtered out.
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<ResponseType>,
    pub auth_method: AuthMethod,
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub scope: Option<String>,
    pub contacts: Vec<String>,
    pub software_statement: Option<String>,
    /// `client_uri` shares the client id's origin; a client_uri elsewhere is
    /// a self-asserted claim the consent screen must not present as verified.
    pub client_uri_same_origin: bool,
}

impl ClientMetadata {
    /// True when every redirect URI is an http loopback URI, which anyone on
    /// the user's machine can receive (MCP Security "Localhost Redirect URI Risks").
    pub fn loopback_only(&self) -> bool {
        self.redirect_uris.iter().all(RedirectUri::is_loopback)
    }
}

/// A `redirect_uris` entry that Steward will not use (a private-use scheme
/// the deployment does not allow, an http URI off loopback, a fragment...).
///
/// Unusable entries are dropped, as unknown grant types are (SPEC_CHECKLIST
/// §20.11), rather than refusing the whole document: a real MCP inspector
/// lists private-use-scheme URIs beside its loopback one, and refusing it
/// would lock the client out entirely. Steward never redirects to a dropped
/// entry; the document is refused only when no usable entry remains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DroppedRedirectUri {
    /// Position in the document's `redirect_uris` array.
    pub index: usize,
    /// The entry, cut to [`DROPPED_URI_MAX`] bytes: it is client-chosen text.
    pub uri: String,
    /// Why Steward will not use it.
    pub reason: String,
}

/// Longest dropped entry kept for reports and audit events.
pub const DROPPED_URI_MAX: usize = 256;

impl std::fmt::Display for DroppedRedirectUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "redirect_uris entry {} ({:?}) is not used: {}",
            self.index, self.uri, self.reason
        )
    }
}

/// Members whose presence alone makes a document invalid (CIMD -01 §4.1).
const FORBIDDEN_MEMBERS: [&str; 2] = ["client_secret", "client_secret_expires_at"];

/// JWK members that carry private or symmetric key material (RFC 7518 §6.2.2,
/// §6.3.2, §6.4.1). A document is public, so such a key is already leaked.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

const URI_MEMBERS: [&str; 5] = ["client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri"];

/// Validates `body` as the document for `client_id`.
pub fn validate_document(
    client_id: &ClientIdUrl,
    body: &[u8],
    policy: &ValidationPolicy,
) -> Result<ClientMetadata, Vec<Problem>> {
    let value = strict_json::parse(body).map_err(|e| {
        let kind = match e {
            StrictJsonError::NotUtf8 => F::NotUtf8,
            StrictJsonError::Syntax(_) => F::InvalidJson,
            StrictJsonError::DuplicateKey(_) => F::DuplicateKey,
        };
        vec![Problem::new(kind, None, e.to_string())]
    })?;
    let Value::Object(doc) = value else {
        return Err(vec![Problem::new(
            F::NotAnObject,
            None,
            "the document must be a JSON object",
        )]);
    };
    let mut v = Validator {
        doc: &doc,
        problems: Vec::new(),
    };

    let id = v.client_id(client_id);
    let client_name = v.client_name();
    let (redirect_uris, dropped_redirect_uris) = v.redirect_uris(policy);
    v.forbidden_members();
    let uris = v.uri_members();
    let auth_method = v.auth_method();
    let jwks = v.jwks();
    v.keys_for(auth_method);
    v.private_key_material();
    let grant_types = v.grant_types();
    let response_types = v.response_types();
    let scope = v.optional_string("scope");
    let software_statement = v.optional_string("software_statement");
    let contacts = v.contacts();

    let client_uri_same_origin = uris
        .client_uri
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| u.origin() == client_id.url().origin());

    match (v.problems.is_empty(), id, client_name, redirect_uris, auth_method) {
        (true, Some(client_id), Some(client_name), Some(redirect_uris), Some(auth_method)) => {
            Ok(ClientMetadata {
                client_id,
                client_name,
                redirect_uris,
                dropped_redirect_uris,
                grant_types,
                response_types,
                auth_method,
                jwks,
                jwks_uri: uris.jwks_uri,
                client_uri: uris.client_uri,
                logo_uri: uris.logo_uri,
                tos_uri: uris.tos_uri,
                policy_uri: uris.policy_uri,
                scope,
                contacts,
                software_statement,
                client_uri_same_origin,
            })
        }
        _ => Err(v.problems),
    }
}

#[derive(Default)]
struct UriMembers {
    client_uri: Option<String>,
    logo_uri: Option<String>,
    tos_uri: Option<String>,
    policy_uri: Option<String>,
    jwks_uri: Option<String>,
}

struct Validator<'a> {
    doc: &'a Map<String, Value>,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn push(&mut self, kind: F, member: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(kind, Some(member), message));
    }

    fn wrong_type(&mut self, member: &str, expected: &str) {
        self.push(F::InvalidMemberType, member, format!("must be {expected}"));
    }

    /// CIMD -02 §4: the document's `client_id` equals the requested id by
    /// simple string comparison; no normalisation, so `:443` or case matter.
    fn client_id(&mut self, expected: &ClientIdUrl) -> Option<String> {
        match self.doc.get("client_id") {
            None => {
                self.push(
                    F::ClientIdMissing,
                    "client_id",
                    "the document must contain client_id",
                );
                None
            }
            Some(Value::String(s)) if s == expected.as_str() => Some(s.clone()),
            Some(Value::String(s)) => {
                self.push(
                    F::ClientIdMismatch,
                    "client_id",
                    format!("{s:?} is not the document URL {:?}", expected.as_str()),
                );
                None
            }
            Some(_) => {
                self.push(
                    F::ClientIdMismatch,
                    "client_id",
                    "must be a string equal to the document URL",
                );
                None
            }
        }
    }

    fn client_name(&mut self) -> Option<String> {
        match self.doc.get("client_name") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            _ => {
                self.push(
                    F::ClientNameRequired,
                    "client_name",
                    "a non-empty client_name string is required (MCP)",
                );
                None
            }
        }
    }

    /// The usable redirect URIs and the dropped ones. A non-string entry is
    /// a malformed document (a problem); a string Steward will not use is
    /// dropped. With no usable entry left, each dropped one is a problem.
    fn redirect_uris(
        &mut self,
        policy: &ValidationPolicy,
    ) -> (Option<Vec<RedirectUri>>, Vec<DroppedRedirectUri>) {
        let items = match self.doc.get("redirect_uris") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => {
                self.push(
                    F::RedirectUrisRequired,
                    "redirect_uris",
                    "a non-empty array of redirect URI strings is required",
                );
                return (None, Vec::new());
            }
        };
        let rules = RedirectUriRules {
            allow_private_use_schemes: policy.allow_private_use_schemes,
        };
        let mut out = Vec::with_capacity(items.len());
        let mut dropped = Vec::new();
        let mut malformed = false;
        for (i, item) in items.iter().enumerate() {
            match item.as_str().map(|s| (s, RedirectUri::parse(s, rules))) {
                Some((_, Ok(uri))) => out.push(uri),
                Some((s, Err(e))) => dropped.push(DroppedRedirectUri {
                    index: i,
                    uri: cut(s, DROPPED_URI_MAX).to_owned(),
                    reason: e.to_string(),
                }),
                None => {
                    malformed = true;
                    self.push(
                        F::InvalidRedirectUri,
                        "redirect_uris",
                        format!("entry {i} is not a string"),
                    );
                }
            }
        }
        if out.is_empty() {
            for d in &dropped {
                self.push(
                    F::InvalidRedirectUri,
                    "redirect_uris",
                    format!("entry {}: {}", d.index, d.reason),
                );
            }
            return (None, dropped);
        }
        ((!malformed).then_some(out), dropped)
    }

    fn forbidden_members(&mut self) {
        for member in FORBIDDEN_MEMBERS {
            if self.doc.contains_key(member) {
                self.push(
                    F::ForbiddenMember,
                    member,
                    "a metadata document is public and cannot carry a shared secret",
                );
            }
        }
    }

    fn uri_members(&mut self) -> UriMembers {
        let mut out = UriMembers::default();
        for member in URI_MEMBERS {
            let Some(value) = self.doc.get(member) else {
                continue;
            };
            let Some(s) = value.as_str() else {
                self.wrong_type(member, "a string");
                continue;
            };
            let https = url::Url::parse(s)
                .is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()));
            if !https {
                self.push(F::UriNotHttps, member, "must be an absolute https URL");
                continue;
            }
            let slot = match member {
                "client_uri" => &mut out.client_uri,
                "logo_uri" => &mut out.logo_uri,
                "tos_uri" => &mut out.tos_uri,
                "policy_uri" => &mut out.policy_uri,
                _ => &mut out.jwks_uri,
            };
            *slot = Some(s.to_owned());
        }
        out
    }

    /// SPEC_CHECKLIST §20.2: a missing method means a public client (RFC
    /// 7591's `client_secret_basic` default is forbidden here). With
    /// `token_endpoint_auth_methods_supported`, pick from the intersection
    /// with Steward's methods, preferring `private_key_jwt`.
    fn auth_method(&mut self) -> Option<AuthMethod> {
        const MEMBER: &str = "token_endpoint_auth_method";
        const PLURAL: &str = "token_endpoint_auth_methods_supported";
        if let Some(value) = self.doc.get(MEMBER) {
            return match value.as_str() {
                Some("none") => Some(AuthMethod::None),
                Some("private_key_jwt") => Some(AuthMethod::PrivateKeyJwt),
                Some(m @ ("client_secret_basic" | "client_secret_post" | "client_secret_jwt")) => {
                    self.push(
                        F::ForbiddenAuthMethod,
                        MEMBER,
                        format!("{m} needs a shared secret, which a metadata document cannot have"),
                    );
                    None
                }
                Some(m) => {
                    self.push(
                        F::ForbiddenAuthMethod,
                        MEMBER,
                        format!("{m:?} is not supported; use \"none\" or \"private_key_jwt\""),
                    );
                    None
                }
                None => {
                    self.wrong_type(MEMBER, "a string");
                    None
                }
            };
        }
        let Some(value) = self.doc.get(PLURAL) else {
            return Some(AuthMethod::None);
        };
        let Some(methods) = string_array(value) else {
            self.wrong_type(PLURAL, "an array of strings");
            return None;
        };
        if methods.contains(&"private_key_jwt") {
            Some(AuthMethod::PrivateKeyJwt)
        } else if methods.contains(&"none") {
            Some(AuthMethod::None)
        } else {
            self.push(
                F::NoSupportedAuthMethod,
                PLURAL,
                "lists neither \"private_key_jwt\" nor \"none\"",
            );
            None
        }
    }

    fn jwks(&mut self) -> Option<Value> {
        let value = self.doc.get("jwks")?;
        let keys_ok = value
            .get("keys")
            .and_then(Value::as_array)
            .is_some_and(|keys| keys.iter().all(Value::is_object));
        if !keys_ok {
            self.push(
                F::InvalidJwks,
                "jwks",
                "must be a JWK Set: an object with a \"keys\" array of objects",
            );
            return None;
        }
        Some(value.clone())
    }

    /// CIMD #100: `private_key_jwt` needs the key it is verified with, from
    /// exactly one source so there is no doubt which key counts.
    fn keys_for(&mut self, method: Option<AuthMethod>) {
        let has_jwks = self.doc.contains_key("jwks");
        let has_uri = self.doc.contains_key("jwks_uri");
        if has_jwks && has_uri {
            self.push(F::KeysRequired, "jwks", "give either jwks or jwks_uri, not both");
            return;
        }
        if method == Some(AuthMethod::PrivateKeyJwt) && !has_jwks && !has_uri {
            self.push(
                F::KeysRequired,
                "token_endpoint_auth_method",
                "private_key_jwt needs the public keys in jwks or jwks_uri",
            );
        }
    }

    /// CIMD -02 §4.1: only public keys, anywhere in the document. Every
    /// member's value is scanned to any depth — `jwks` included, not only its
    /// `keys` — for an object that looks like a JWK (has `kty`, or is an
    /// element of a `keys` array) and carries private or symmetric members.
    fn private_key_material(&mut self) {
        let mut found = Vec::new();
        for (member, value) in self.doc {
            if contains_private_jwk(value, false) {
                found.push(member.as_str());
            }
        }
        for member in found {
            self.push(
                F::PrivateKeyMaterial,
                member,
                "contains private or symmetric key material (d, p, q, dp, dq, qi, oth or k)",
            );
        }
    }

    fn grant_types(&mut self) -> Vec<GrantType> {
        let parsed = self.filtered("grant_types", |s| match s {
            "authorization_code" => Some(GrantType::AuthorizationCode),
            "refresh_token" => Some(GrantType::RefreshToken),
            _ => None,
        });
        match parsed {
            Filtered::Absent => vec![GrantType::AuthorizationCode],
            Filtered::Values(v) if !v.is_empty() => v,
            Filtered::Values(_) => {
                self.push(
                    F::UnsupportedGrantTypes,
                    "grant_types",
                    "lists no grant type Steward supports (authorization_code, refresh_token)",
                );
                Vec::new()
            }
            Filtered::WrongType => Vec::new(),
        }
    }

    fn response_types(&mut self) -> Vec<ResponseType> {
        let parsed = self.filtered("response_types", |s| (s == "code").then_some(ResponseType::Code));
        match parsed {
            Filtered::Absent => vec![ResponseType::Code],
            Filtered::Values(v) if !v.is_empty() => v,
            Filtered::Values(_) => {
                self.push(
                    F::UnsupportedResponseTypes,
                    "response_types",
                    "lists no response type Steward supports (code)",
                );
                Vec::new()
            }
            Filtered::WrongType => Vec::new(),
        }
    }

    /// SPEC_CHECKLIST §20.11: unsupported values are dropped, not fatal.
    fn filtered<T: PartialEq>(&mut self, member: &str, known: impl Fn(&str) -> Option<T>) -> Filtered<T> {
        let Some(value) = self.doc.get(member) else {
            return Filtered::Absent;
        };
        let Some(items) = string_array(value) else {
            self.wrong_type(member, "an array of strings");
            return Filtered::WrongType;
        };
        let mut out = Vec::new();
        for t in items.into_iter().filter_map(known) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        Filtered::Values(out)
    }

    fn optional_string(&mut self, member: &str) -> Option<String> {
        match self.doc.get(member) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.wrong_type(member, "a string");
                None
            }
        }
    }

    fn contacts(&mut self) -> Vec<String> {
        match self.doc.get("contacts") {
            None => Vec::new(),
            Some(value) => match string_array(value) {
                Some(items) => items.into_iter().map(str::to_owned).collect(),
                None => {
                    self.wrong_type("contacts", "an array of strings");
                    Vec::new()
                }
            },
        }
    }
}

enum Filtered<T> {
    Absent,
    Values(Vec<T>),
    WrongType,
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn string_array(value: &Value) -> Option<Vec<&str>> {
    value.as_array()?.iter().map(Value::as_str).collect()
}

fn has_private_members(key: &Map<String, Value>) -> bool {
    PRIVATE_JWK_MEMBERS.iter().any(|m| key.contains_key(*m))
}

/// Whether `value`, or anything inside it, is a JWK with private members.
/// `in_keys` marks the elements of a `keys` array (a JWK Set's keys), which
/// count as JWKs even without `kty`. Shared with dynamic registration, whose
/// `jwks` member is as public as a metadata document's.
pub fn contains_private_jwk(value: &Value, in_keys: bool) -> bool {
    match value {
        Value::Object(map) => {
            ((in_keys || map.contains_key("kty")) && has_private_members(map))
                || map.iter().any(|(name, inner)| match inner {
                    Value::Array(items) if name == "keys" => {
                        items.iter().any(|item| contains_private_jwk(item, true))
                    }
                    _ => contains_private_jwk(inner, false),
                })
        }
        Value::Array(items) => items.iter().any(|item| contains_private_jwk(item, false)),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
