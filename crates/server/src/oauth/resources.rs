//! Resources (RFC 8707) and the scopes granted for them (OAuth 2.1 §1.4.1).
//!
//! Access tokens are audience-bound: `aud` is the resource. A request names
//! at most one resource; none means `default_resource`; an unknown, relative
//! or fragment-carrying resource is `invalid_target`. Scope absent means
//! `default_scopes`; requested scopes the resource or the client does not
//! allow are dropped (the token response then says what was granted), and a
//! request left with nothing of what it asked for is `invalid_scope`.

use std::collections::BTreeMap;
use steward_core::scope::ScopeSet;
use steward_core::{ErrorCode, OAuthError};

use crate::oauth::clients::Client;
use crate::settings::Settings;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub uri: String,
    pub name: String,
    /// Scope → description shown on the consent page. Empty: any scope.
    pub scopes: BTreeMap<String, String>,
    /// Clients allowed to introspect this resource's tokens.
    pub introspection_clients: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Resources {
    list: Vec<Resource>,
    default: Option<String>,
    default_scopes: Vec<String>,
}

fn invalid_target(d: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidTarget, d)
}

impl Resources {
    pub fn from_settings(s: &Settings) -> Resources {
        Resources {
            list: s
                .resources
                .iter()
                .map(|r| Resource {
                    uri: r.uri.clone(),
                    name: r.name.clone(),
                    scopes: r.scopes.clone(),
                    introspection_clients: r.introspection_clients.clone(),
                })
                .collect(),
            default: s.default_resource.clone(),
            default_scopes: s.default_scopes.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// May `client_id` introspect tokens whose audience is `aud`?
    pub fn may_introspect(&self, client_id: &str, aud: &str) -> bool {
        self.list
            .iter()
            .any(|r| r.uri == aud && r.introspection_clients.iter().any(|c| c == client_id))
    }

    /// Every scope any resource defines, for `scopes_supported`.
    pub fn all_scopes(&self) -> Vec<String> {
        let mut all: Vec<String> = self.list.iter().flat_map(|r| r.scopes.keys().cloned()).collect();
        all.sort();
        all.dedup();
        all
    }

    /// Picks the resource a request is for.
    ///
    /// With no `[[resources]]` configured, a request naming none gets the
    /// issuer itself as audience (tokens then serve Steward's own endpoints
    /// and resource servers that accept the issuer as audience); a request
    /// naming one is refused, since Steward knows no resource to bind it to.
    pub fn select(&self, requested: &[String], issuer: &str) -> Result<Resource, OAuthError> {
        let wanted = match requested {
            [] => None,
            [one] => Some(one.as_str()),
            [first, rest @ ..] if rest.iter().all(|r| r == first) => Some(first.as_str()),
            _ => return Err(invalid_target("only one resource per request is supported")),
        };
        match wanted {
            Some(uri) => {
                if uri.contains('#') {
                    return Err(invalid_target("the resource must not have a fragment"));
                }
                if url::Url::parse(uri).is_err() {
                    return Err(invalid_target("the resource must be an absolute URI"));
                }
                self.list
                    .iter()
                    .find(|r| r.uri == uri)
                    .cloned()
                    .ok_or_else(|| invalid_target("the resource is not known to this server"))
            }
            None => match &self.default {
                Some(d) => self
                    .list
                    .iter()
                    .find(|r| &r.uri == d)
                    .cloned()
                    .ok_or_else(|| invalid_target("the default resource is not configured")),
                None if self.list.is_empty() => Ok(Resource {
                    uri: issuer.to_owned(),
                    name: issuer.to_owned(),
                    scopes: BTreeMap::new(),
                    introspection_clients: Vec::new(),
                }),
                None => Err(invalid_target("a resource parameter is required")),
            },
        }
    }

    /// The scopes to grant for `resource` to `client`.
    pub fn grant_scopes(
        &self,
        resource: &Resource,
        requested: Option<&str>,
        client: &Client,
    ) -> Result<ScopeSet, OAuthError> {
        let asked = match requested {
            Some(s) => ScopeSet::parse(s)
                .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "the scope parameter is malformed"))?,
            None => ScopeSet::from_tokens(self.default_scopes.iter().cloned())
                .map_err(|_| OAuthError::server_error())?,
        };
        let mut granted = asked.clone();
        if !resource.scopes.is_empty() {
            let known = ScopeSet::from_tokens(resource.scopes.keys().cloned())
                .map_err(|_| OAuthError::server_error())?;
            granted = granted.intersection(&known);
        }
        if let Some(allowed) = &client.allowed_scopes {
            granted = granted.intersection(allowed);
        }
        if !asked.is_empty() && granted.is_empty() {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "none of the requested scopes can be granted",
            ));
        }
        Ok(granted)
    }
}
