//! One resolution path for the three kinds of client.
//!
//! - Pre-registered (configuration `[[clients]]`, synced into the inventory
//!   at start-up) and dynamically registered clients are read from the store.
//! - Metadata-document clients (an https `client_id`) are resolved through
//!   the CIMD resolver at the authorization endpoint (which may fetch), and
//!   from their stored version at the token endpoint (which never fetches:
//!   ARCHITECTURE "POST /token never touches the network").
//!
//! Whatever the kind, a client whose inventory state is not `active` gets
//! nothing: revocation and suspension take effect at once.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use steward_cimd::{AuthMethod, ClientMetadata, GrantType, ResolveError};
use steward_core::scope::ScopeSet;
use steward_core::{ClientKind, LifecycleState, RedirectUri, RedirectUriRules, TrustTier};
use steward_store::{ClientRecord, StoreError};

use crate::governance::HeldView;
use crate::settings::ClientSettings;
use crate::state::AppState;

/// How a client proves itself at the token endpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientAuth {
    /// A public client: identified by `client_id` alone.
    None,
    /// A shared secret, stored as a keyed hash (see `client_auth::hash_client_secret`).
    Secret(String),
    /// RFC 7523 private_key_jwt with the client's published keys.
    PrivateKeyJwt {
        jwks: Option<Value>,
        jwks_uri: Option<String>,
    },
}

/// A client as the protocol endpoints see it, whatever its kind.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub kind: ClientKind,
    pub name: Option<String>,
    /// The client's claimed logo (metadata-document clients), shown from a stored copy.
    pub logo_uri: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    /// `authorization_code`, `refresh_token`, `client_credentials`.
    pub grant_types: Vec<String>,
    /// Scopes the client may obtain; `None` means any scope of the resource.
    pub allowed_scopes: Option<ScopeSet>,
    pub auth: ClientAuth,
    /// For metadata-document clients: the stored version this view came from.
    pub metadata_version: Option<i64>,
    pub trust_tier: TrustTier,
    /// The client's governance view, read with its record (or held by
    /// this node at the revision the record carries): the policy is asked
    /// with it during this request, without another read.
    pub view: Option<Arc<HeldView>>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.auth == ClientAuth::None
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unknown client")]
    Unknown,
    #[error("the client is {0}")]
    NotActive(LifecycleState),
    /// The `client_id` host is denied, or missing from a non-empty allow
    /// list (`governance.domains`): refused before any lookup or fetch.
    #[error("the client's domain is not allowed on this server")]
    DomainRefused,
    #[error("the client's metadata document could not be used: {0}")]
    Metadata(ResolveError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("the client's stored registration is unreadable")]
    CorruptRegistration,
}

/// The registration data of a pre-registered or dynamic client, as stored in
/// the inventory's `registration` column.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Registration {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Dynamic clients (RFC 7591): how the client authenticates. Absent for
    /// pre-registered clients, whose stored secret says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Dynamic clients: the registered logo, shown (from Steward's own
    /// copy) beside the name as the client's unverified claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
}

fn is_metadata_document(state: &AppState, client_id: &str) -> bool {
    state.settings.cimd.enabled && steward_cimd::looks_like_metadata_document_id(client_id)
}

/// With `cimd.require_listed`, only metadata-document URLs named by a
/// `[[clients]]` entry are accepted; the list is compared byte for byte,
/// as the identity is the exact URL string (CIMD -02 §3).
fn listed_or_unknown(state: &AppState, client_id: &str) -> Result<(), ClientError> {
    if state.settings.cimd.require_listed && !state.settings.clients.iter().any(|c| c.client_id == client_id)
    {
        return Err(ClientError::Unknown);
    }
    Ok(())
}

/// `governance.domains`: a denied host (or one outside a non-empty allow
/// list) is refused here, before the resolver looks anything up.
fn domain_allowed(state: &AppState, client_id: &str) -> Result<(), ClientError> {
    match crate::governance::client_id_host(client_id) {
        Some(h) if crate::governance::host_refused(&state.governance, &h) => {
            metrics::counter!("steward_cimd_resolutions_total", "outcome" => "domain_refused").increment(1);
            Err(ClientError::DomainRefused)
        }
        _ => Ok(()),
    }
}

/// Resolves a client at the authorization endpoint. May fetch a metadata
/// document; a refusal is logged and audited under `request_id`.
pub async fn resolve_for_authorize(
    state: &AppState,
    client_id: &str,
    request_id: &crate::request_id::RequestId,
) -> Result<Client, ClientError> {
    let client = if is_metadata_document(state, client_id) {
        listed_or_unknown(state, client_id)?;
        domain_allowed(state, client_id)?;
        let resolved = crate::cimd::resolve_for_request(state, client_id, Some(request_id))
            .await
            .map_err(ClientError::Metadata)?;
        // The token endpoint verifies private_key_jwt with held keys only;
        // fetch them here, where fetching is allowed, so they are held by
        // the time the code is redeemed (steward_cimd::key_sets).
        if matches!(resolved.metadata.auth_method, AuthMethod::PrivateKeyJwt)
            && resolved.metadata.jwks.is_none()
            && let Some(uri) = &resolved.metadata.jwks_uri
        {
            state.cimd.key_sets().prefetch(uri).await;
        }
        let read = read_client(state, client_id, View::Read).await?;
        from_metadata(state, &resolved.metadata, Some(resolved.version_id), read)
    } else {
        from_store(state, client_id, View::Read).await
    };
    // For the request's log line: the client it was for, once it exists.
    client.inspect(|c| crate::request_log::note_client(&c.id, c.kind, None))
}

/// Resolves a client at the token endpoint, from stored data only. A
/// metadata-document client is read from `pinned_version` (the version the
/// user consented to) or, without one, from what the resolver may still
/// trust of it: its latest version, bounded by `cimd.max_cache_seconds`
/// and revalidated in the background (`steward_cimd::Resolver::for_token`).
pub async fn resolve_for_token(
    state: &AppState,
    client_id: &str,
    pinned_version: Option<i64>,
    view: View,
) -> Result<Client, ClientError> {
    if is_metadata_document(state, client_id) {
        listed_or_unknown(state, client_id)?;
        domain_allowed(state, client_id)?;
        let id = crate::cimd::parse_client_id(state, client_id)
            .await
            .map_err(ClientError::Metadata)?;
        let stored = match pinned_version {
            Some(v) => state.cimd.stored(&id, v).await,
            None => state.cimd.for_token(&id).await,
        }
        .map_err(ClientError::Metadata)?
        .ok_or(ClientError::Unknown)?;
        let read = read_client(state, client_id, view).await?;
        from_metadata(state, &stored.metadata, Some(stored.version_id), read)
    } else {
        from_store(state, client_id, view).await
    }
}

/// Whether the caller will ask the policy about this client in this
/// request (the token endpoint) or only needs its record (introspection,
/// revocation): the governance view costs a heavier read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Read,
    Skip,
}

async fn read_client(
    state: &AppState,
    client_id: &str,
    want: View,
) -> Result<Option<(ClientRecord, Option<Arc<HeldView>>)>, ClientError> {
    Ok(match want {
        View::Read => {
            let Some((record, revision)) = state.store.client_and_revision(client_id).await? else {
                return Ok(None);
            };
            if let Some(held) = state.oauth.views.get(client_id)
                && held.view.revision == revision
            {
                return Ok(Some((record, Some(held))));
            }
            // Changed since this node last read it (or never read): the
            // record read with the view replaces the one above, so both
            // describe the same moment.
            let Some((record, view)) = state.store.client_with_view(client_id).await? else {
                return Ok(None);
            };
            let held = Arc::new(HeldView::new(view));
            state.oauth.views.insert(client_id.to_owned(), Arc::clone(&held));
            Some((record, Some(held)))
        }
        View::Skip => state.store.get_client(client_id).await?.map(|r| (r, None)),
    })
}

fn check_active(record: Option<&ClientRecord>) -> Result<(), ClientError> {
    match record.map(|r| r.state) {
        None => Ok(()),
        Some(s) if s.in_use() => Ok(()),
        Some(other) => Err(ClientError::NotActive(other)),
    }
}

fn from_metadata(
    state: &AppState,
    m: &ClientMetadata,
    version: Option<i64>,
    read: Option<(ClientRecord, Option<Arc<HeldView>>)>,
) -> Result<Client, ClientError> {
    let (record, view) = match read {
        Some((r, v)) => (Some(r), v),
        None => (None, None),
    };
    let record = record.as_ref();
    check_active(record)?;
    let mut grant_types: Vec<String> = m
        .grant_types
        .iter()
        .map(|g| match g {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
        })
        .map(str::to_owned)
        .collect();
    let auth = match m.auth_method {
        AuthMethod::None => ClientAuth::None,
        AuthMethod::PrivateKeyJwt => ClientAuth::PrivateKeyJwt {
            jwks: m.jwks.clone(),
            jwks_uri: m.jwks_uri.clone(),
        },
    };
    let mut allowed_scopes = None;
    let mut trust_tier = record.map_or(TrustTier::Unverified, |r| r.trust_tier);
    // An operator's allow-list entry for this URL narrows what the document claims.
    if let Some(entry) = state.settings.clients.iter().find(|c| c.client_id == m.client_id) {
        if !entry.grant_types.is_empty() {
            grant_types.retain(|g| entry.grant_types.contains(g));
        }
        if !entry.scopes.is_empty() {
            allowed_scopes = ScopeSet::from_tokens(entry.scopes.iter().cloned()).ok();
        }
        if trust_tier == TrustTier::Unverified {
            trust_tier = TrustTier::Verified;
        }
    }
    Ok(Client {
        id: m.client_id.clone(),
        kind: ClientKind::MetadataDocument,
        name: Some(m.client_name.clone()),
        logo_uri: m.logo_uri.clone(),
        redirect_uris: m.redirect_uris.clone(),
        grant_types,
        allowed_scopes,
        auth,
        metadata_version: version,
        trust_tier,
        view,
    })
}

async fn from_store(state: &AppState, client_id: &str, want: View) -> Result<Client, ClientError> {
    let (record, view) = read_client(state, client_id, want)
        .await?
        .ok_or(ClientError::Unknown)?;
    if record.kind == ClientKind::MetadataDocument {
        // Metadata-document clients are resolved by URL only.
        return Err(ClientError::Unknown);
    }
    check_active(Some(&record))?;
    let reg: Registration =
        serde_json::from_str(&record.registration).map_err(|_| ClientError::CorruptRegistration)?;
    let rules = RedirectUriRules {
        allow_private_use_schemes: state.settings.cimd.allow_private_use_schemes,
    };
    let redirect_uris = reg
        .redirect_uris
        .iter()
        .map(|r| RedirectUri::parse(r, rules))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ClientError::CorruptRegistration)?;
    // A dynamic client's ceiling is what its registration was granted,
    // even when that is nothing: an empty list never means "any scope".
    let allowed_scopes = if reg.scopes.is_empty() && record.kind != ClientKind::Dynamic {
        None
    } else {
        Some(
            ScopeSet::from_tokens(reg.scopes.iter().cloned())
                .map_err(|_| ClientError::CorruptRegistration)?,
        )
    };
    Ok(Client {
        id: record.client_id.clone(),
        kind: record.kind,
        name: record.display_name.clone(),
        logo_uri: if record.kind == ClientKind::Dynamic {
            reg.logo_uri.clone()
        } else {
            None
        },
        redirect_uris,
        grant_types: reg.grant_types,
        allowed_scopes,
        auth: match (
            reg.token_endpoint_auth_method.as_deref(),
            record.secret_hash.clone(),
        ) {
            (Some("private_key_jwt"), _) => ClientAuth::PrivateKeyJwt {
                jwks: reg.jwks,
                jwks_uri: reg.jwks_uri,
            },
            (_, Some(hash)) => ClientAuth::Secret(hash),
            (_, None) => ClientAuth::None,
        },
        metadata_version: None,
        trust_tier: record.trust_tier,
        view,
    })
}

/// Why a configured client cannot be used, naming the entry.
#[derive(Debug, thiserror::Error)]
#[error("clients[{client_id}]: {reason}")]
pub struct ConfiguredClientError {
    pub client_id: String,
    pub reason: String,
}

/// Writes the `[[clients]]` entries with non-URL ids into the inventory as
/// pre-registered clients (configuration is their source of truth). Entries
/// whose id is an https URL are allow-list settings for metadata-document
/// clients and are applied at resolution.
pub async fn sync_configured_clients(
    state: &AppState,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<usize, SyncError> {
    let now = state.clock.now();
    let mut synced = 0;
    for c in &state.settings.clients {
        if steward_cimd::looks_like_metadata_document_id(&c.client_id) {
            continue;
        }
        let record = configured_record(state, c, env, now)?;
        let existing = state
            .store
            .get_client(&c.client_id)
            .await
            .map_err(SyncError::Store)?;
        let record = match existing {
            // Keep the operator-managed lifecycle state (a suspended client stays suspended).
            Some(e) => ClientRecord {
                state: e.state,
                first_seen: e.first_seen,
                last_seen: e.last_seen,
                ..record
            },
            None => record,
        };
        state
            .store
            .upsert_client(&record)
            .await
            .map_err(SyncError::Store)?;
        synced += 1;
    }
    // Accountability named in configuration (metadata-document entries too,
    // once the document has been seen and the client exists).
    for c in &state.settings.clients {
        if c.organization.is_none() && c.owners.is_empty() {
            continue;
        }
        let owners = c
            .owners
            .iter()
            .map(|o| crate::governance::parse_owner(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| ConfiguredClientError {
                client_id: c.client_id.clone(),
                reason,
            })?;
        match state
            .governance
            .apply_configured_ownership(&c.client_id, c.organization.as_deref(), &owners)
            .await
        {
            Ok(_) => {}
            Err(steward_governance::GovernanceError::UnknownClient(_))
                if steward_cimd::looks_like_metadata_document_id(&c.client_id) => {}
            Err(steward_governance::GovernanceError::UnknownUser(u)) => {
                return Err(SyncError::Config(ConfiguredClientError {
                    client_id: c.client_id.clone(),
                    reason: format!("owners: no user {u:?} (create it with `steward users add {u}`)"),
                }));
            }
            Err(e) => {
                return Err(SyncError::Config(ConfiguredClientError {
                    client_id: c.client_id.clone(),
                    reason: format!("owners: {e}"),
                }));
            }
        }
    }
    Ok(synced)
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Config(#[from] ConfiguredClientError),
    #[error("storing configured clients: {0}")]
    Store(StoreError),
}

fn configured_record(
    state: &AppState,
    c: &ClientSettings,
    env: &dyn Fn(&str) -> Option<String>,
    now: steward_core::UnixTime,
) -> Result<ClientRecord, ConfiguredClientError> {
    let err = |reason: String| ConfiguredClientError {
        client_id: c.client_id.clone(),
        reason,
    };
    let secret_hash = match (&c.secret_env, &c.secret_hash) {
        (Some(var), _) => {
            let secret = env(var).ok_or_else(|| err(format!("environment variable {var} is not set")))?;
            if secret.len() < 16 {
                return Err(err(format!("the secret in {var} is shorter than 16 characters")));
            }
            Some(crate::oauth::client_auth::hash_client_secret(
                &state.oauth.secret_key,
                &secret,
            ))
        }
        (None, Some(hash)) => Some(hash.clone()),
        (None, None) => None,
    };
    pre_registered_record(
        c,
        secret_hash,
        RedirectUriRules {
            allow_private_use_schemes: state.settings.cimd.allow_private_use_schemes,
        },
        now,
    )
}

/// Validates a pre-registered client's settings and builds its inventory
/// record. Shared by `[[clients]]` configuration and `steward clients create`,
/// so both refuse the same mistakes. Issued ids never start with `https://`
/// (that form names a metadata document, CIMD -02 §3).
pub fn pre_registered_record(
    c: &ClientSettings,
    secret_hash: Option<String>,
    rules: RedirectUriRules,
    now: steward_core::UnixTime,
) -> Result<ClientRecord, ConfiguredClientError> {
    let err = |reason: String| ConfiguredClientError {
        client_id: c.client_id.clone(),
        reason,
    };
    if c.client_id.is_empty() || steward_cimd::looks_like_metadata_document_id(&c.client_id) {
        return Err(err(
            "a pre-registered client_id must not be empty or an https URL".to_owned(),
        ));
    }
    if !c.client_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err("client_id must be printable ASCII without spaces".to_owned()));
    }
    for r in &c.redirect_uris {
        RedirectUri::parse(r, rules).map_err(|e| err(format!("redirect URI {r:?}: {e}")))?;
    }
    let grant_types = c.effective_grant_types();
    for g in &grant_types {
        if !matches!(
            g.as_str(),
            "authorization_code" | "refresh_token" | "client_credentials"
        ) {
            return Err(err(format!("unsupported grant type {g:?}")));
        }
    }
    if grant_types.iter().any(|g| g == "authorization_code") && c.redirect_uris.is_empty() {
        return Err(err(
            "authorization_code needs at least one redirect URI".to_owned()
        ));
    }
    ScopeSet::from_tokens(c.scopes.iter().cloned()).map_err(|e| err(e.to_string()))?;
    if secret_hash.is_none() && grant_types.iter().any(|g| g == "client_credentials") {
        return Err(err(
            "client_credentials needs a confidential client (secret_env or secret_hash)".to_owned(),
        ));
    }
    let registration = Registration {
        redirect_uris: c.redirect_uris.clone(),
        grant_types,
        scopes: c.scopes.clone(),
        ..Registration::default()
    };
    Ok(ClientRecord {
        client_id: c.client_id.clone(),
        kind: ClientKind::PreRegistered,
        display_name: c.name.clone(),
        first_seen: now,
        last_seen: now,
        state: LifecycleState::Active,
        owner_organization: None,
        owner_business: None,
        owner_technical: None,
        owner_contact: None,
        trust_tier: TrustTier::Trusted,
        secret_hash,
        registration: serde_json::to_string(&registration).unwrap_or_else(|_| "{}".to_owned()),
        created_at: now,
        updated_at: now,
    })
}
