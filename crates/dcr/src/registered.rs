//! The registered client: what is stored as the inventory record's
//! `registration` and returned to the client (RFC 7591 §3.2.1 "all
//! registered metadata, including values the server substituted").

use crate::mode::Admitted;
use crate::request::{AuthMethod, RequestedMetadata};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use steward_core::secret::{Secret, random_token};

/// Prefix of every id this server issues to a registered client: never
/// `https://`, so "URL ⇒ metadata document" dispatch stays unambiguous
/// (CIMD -01 §6.9).
pub const CLIENT_ID_PREFIX: &str = "dcr_";
/// Prefix of registration access tokens (RFC 7592 §3), so a leaked one is
/// recognisable to secret scanners.
pub const REGISTRATION_TOKEN_PREFIX: &str = "stw_rat_";
/// Prefix of initial access tokens (RFC 7591 §3).
pub const INITIAL_TOKEN_PREFIX: &str = "stw_iat_";
/// Prefix of issued client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "stw_cs_";

/// The stored registration of a dynamically registered client. Field names
/// are RFC 7591's; `scopes` is the scope ceiling as a list, the same member
/// pre-registered clients store, so the protocol endpoints read every kind
/// of stored client alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisteredMetadata {
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    /// The scopes the client may ask for (what the `register` policy
    /// accepted). Never empty: a registration that may have nothing is refused.
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// The verified statement, returned as RFC 7591 §3.2.1 asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_statement: Option<String>,
}

impl RegisteredMetadata {
    /// The registration of an admitted request with `scopes` accepted.
    pub fn new(req: &RequestedMetadata, admitted: &Admitted, scopes: Vec<String>) -> Self {
        let keyed = admitted.auth_method == AuthMethod::PrivateKeyJwt;
        let code = admitted
            .grant_types
            .contains(&crate::request::GrantType::AuthorizationCode);
        Self {
            redirect_uris: req.redirect_uris.iter().map(|r| r.as_str().to_owned()).collect(),
            token_endpoint_auth_method: admitted.auth_method.as_str().to_owned(),
            grant_types: admitted
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            response_types: if code { vec!["code".to_owned()] } else { Vec::new() },
            scopes,
            application_type: req.application_type.map(|a| a.as_str().to_owned()),
            client_name: req.client_name.clone(),
            client_uri: req.client_uri.clone(),
            logo_uri: req.logo_uri.clone(),
            tos_uri: req.tos_uri.clone(),
            policy_uri: req.policy_uri.clone(),
            contacts: req.contacts.clone(),
            // Keys only where they are used: a client that authenticates
            // otherwise has no business registering them.
            jwks: if keyed { req.jwks.clone() } else { None },
            jwks_uri: if keyed { req.jwks_uri.clone() } else { None },
            software_id: req.software_id.clone(),
            software_version: req.software_version.clone(),
            software_statement: req.software_statement.clone(),
        }
    }

    pub fn auth_method(&self) -> Option<AuthMethod> {
        AuthMethod::parse(&self.token_endpoint_auth_method)
    }

    /// The stored form (the inventory's `registration` column).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The metadata members of a registration response (RFC 7591 §3.2.1):
    /// the ceiling as the RFC's space-separated `scope`, without the
    /// internal list.
    pub fn response_members(&self) -> serde_json::Map<String, Value> {
        let mut map = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        map.remove("scopes");
        map.insert("scope".to_owned(), Value::String(self.scopes.join(" ")));
        map
    }
}

/// The credentials a registration issues, shown once.
pub struct IssuedCredentials {
    pub client_id: String,
    /// For `client_secret_basic` / `client_secret_post`.
    pub client_secret: Option<Secret>,
    /// RFC 7592 §3.
    pub registration_access_token: Secret,
}

impl IssuedCredentials {
    pub fn new(auth_method: AuthMethod) -> Self {
        let id = random_token();
        Self {
            client_id: format!("{CLIENT_ID_PREFIX}{}", &id.expose()[..22]),
            client_secret: auth_method.uses_secret().then(new_client_secret),
            registration_access_token: new_registration_token(),
        }
    }
}

pub fn new_client_secret() -> Secret {
    Secret::new(format!("{CLIENT_SECRET_PREFIX}{}", random_token().expose()))
}

pub fn new_registration_token() -> Secret {
    Secret::new(format!("{REGISTRATION_TOKEN_PREFIX}{}", random_token().expose()))
}

pub fn new_initial_token() -> Secret {
    Secret::new(format!("{INITIAL_TOKEN_PREFIX}{}", random_token().expose()))
}

/// The public id of an initial access token whose SHA-256 is `hash`: what
/// lists, revocation and the audit trail name it by, never the token.
pub fn initial_token_id(hash: &str) -> String {
    format!("iat_{}", hash.get(..16).unwrap_or(hash))
}

/// The key under which two registrations count as the same one (issue 14
/// §3): the same `software_id` from the same source, or, without one, the
/// same name, from the same source — and in both cases the same redirect
/// URIs and auth method. The redirect URIs are in the key even with a
/// `software_id` because products send one id for every installation
/// (mcp-remote does): two instances on one host with different callbacks
/// must not be handed one client, whose redirect URIs would refuse the
/// second. A digest, so the stored key says nothing by itself.
pub fn dedupe_key(meta: &RegisteredMetadata, source: Option<IpAddr>) -> String {
    let source = source.map(|a| a.to_string()).unwrap_or_default();
    let mut h = Sha256::new();
    match &meta.software_id {
        Some(id) => {
            h.update(b"software_id\0");
            h.update(id.as_bytes());
        }
        None => {
            h.update(b"metadata\0");
            h.update(meta.client_name.as_deref().unwrap_or("").as_bytes());
        }
    }
    let mut uris = meta.redirect_uris.clone();
    uris.sort();
    for u in &uris {
        h.update(b"\0");
        h.update(u.as_bytes());
    }
    h.update(b"\0");
    h.update(meta.token_endpoint_auth_method.as_bytes());
    h.update(b"\0source\0");
    h.update(source.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Purpose, RequestRules, parse_request};

    fn meta(body: &str) -> RegisteredMetadata {
        let req = parse_request(body.as_bytes(), &RequestRules::default(), Purpose::Register).unwrap();
        let admitted = crate::mode::admit(crate::Mode::Open, &crate::Backing::Anonymous, &req).unwrap();
        RegisteredMetadata::new(&req, &admitted, vec!["s".into()])
    }

    #[test]
    fn one_software_id_with_other_callbacks_is_another_registration() {
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        let a = meta(r#"{"software_id":"sw","client_name":"A","redirect_uris":["http://127.0.0.1/cb"]}"#);
        let renamed =
            meta(r#"{"software_id":"sw","client_name":"B","redirect_uris":["http://127.0.0.1/cb"]}"#);
        let other_cb = meta(
            r#"{"software_id":"sw","client_name":"A","redirect_uris":["http://127.0.0.1/oauth/callback"]}"#,
        );
        assert_eq!(
            dedupe_key(&a, Some(here)),
            dedupe_key(&renamed, Some(here)),
            "the id, not the name"
        );
        assert_ne!(dedupe_key(&a, Some(here)), dedupe_key(&other_cb, Some(here)));
        assert_ne!(
            dedupe_key(&a, Some(here)),
            dedupe_key(&a, Some("127.0.0.2".parse().unwrap()))
        );
    }
}
